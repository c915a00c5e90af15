//! Config error types and the translation of serde/YAML errors into path-carrying
//! [`ConfigError`]s.
//!
//! Owns the path syntax (`binds[0].listeners[0].routes[0].policies.cors`) and message
//! rewriting (serde's "unknown field `x`, expected one of …" becomes "unknown field" with the key
//! in the path). Does not decide what is an error; callers do.

use std::fmt;

/// One problem in the config, located by a path like `binds[0].listeners[0].routes[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in one config, in document order where practical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// Path shown for errors that are not inside any key (YAML syntax, top-level type).
pub const ROOT: &str = "(root)";

/// Joins a parent path and a key: `join("a[0]", "b") == "a[0].b"`, `join("", "b") == "b"`.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `index("a", 2) == "a[2]"`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Converts a serde_path_to_error failure into a [`ConfigError`].
pub fn from_serde(err: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    for seg in err.path().iter() {
        match seg {
            Segment::Seq { index: i } => path = index(&path, *i),
            Segment::Map { key } | Segment::Enum { variant: key } => path = join(&path, key),
            Segment::Unknown => path = join(&path, "?"),
        }
    }
    if path.is_empty() {
        path = ROOT.to_owned();
    }
    let message = rewrite_message(&err.inner().to_string());
    ConfigError { path, message }
}

/// Shortens serde's unknown-field message (the key is already the last path segment) and adds
/// a suggestion when a known field is one or two edits away.
fn rewrite_message(msg: &str) -> String {
    if msg == "invalid value: map, expected map with a single key" {
        return "expected exactly one key (these options are mutually exclusive)".to_owned();
    }
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg.to_owned();
    };
    let Some((key, tail)) = rest.split_once('`') else {
        return msg.to_owned();
    };
    let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    match expected
        .iter()
        .map(|e| (edit_distance(key, e), *e))
        .filter(|(d, _)| *d <= 2)
        .min()
    {
        Some((_, best)) => format!("unknown field (did you mean `{best}`?)"),
        None => "unknown field".to_owned(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
