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
pub(crate) const ROOT: &str = "(root)";

/// Joins a parent path and a key: `join("a[0]", "b") == "a[0].b"`, `join("", "b") == "b"`.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `index("a", 2) == "a[2]"`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Converts a serde_path_to_error failure into a [`ConfigError`].
pub(crate) fn from_serde(err: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = from_serde_path(err.path());
    let message = rewrite_message(&err.inner().to_string());
    ConfigError { path, message }
}

/// The next error of a document: its path as [`from_serde_path`] renders it, and serde's message.
pub(crate) type NextError<'a> = &'a dyn Fn(&serde_json::Value) -> Option<(String, String)>;

/// Gets `value` past the error at `path` (a serde error's location, `message` serde's text) so
/// that the next pass finds the next error: an unknown key is taken out; a missing required key
/// gets a stand-in; a value of the wrong type or shape is taken out too, unless its field is
/// required, in which case a stand-in takes its place. Stand-ins are the first of `0`, `""`,
/// `false`, `[]`, `{}` that gets past the error. Returns the path of what was changed, or
/// `None` when there is nothing to change.
pub(crate) fn take_out(
    value: &mut serde_json::Value,
    path: &[serde_path_to_error::Segment],
    message: &str,
    next_error: NextError<'_>,
) -> Option<String> {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
        .map(|(k, _)| k.to_owned());
    if let Some(key) = missing {
        // The object at `path` lacks `key`: give it a stand-in that leaves no error at or below
        // the key; when none fits, take out the key that holds the object.
        let at = from_path(path);
        let shown = join(if at == ROOT { "" } else { &at }, &key);
        walk(value, path)?.as_object_mut()?;
        let fits = stand_in(value, path, &key, None, &|v| {
            next_error(v).is_none_or(|(p, m)| !(within(&p, &shown) || p == at && m == message))
        });
        if fits {
            return Some(shown);
        }
        walk(value, path)?.as_object_mut()?.remove(&key);
        let (parent, holder, shown) = locate(path)?;
        walk(value, parent)?.as_object_mut()?.remove(holder)?;
        return Some(shown);
    }
    let (parent, key, shown) = locate(path)?;
    let old = walk(value, parent)?.as_object_mut()?.remove(key)?;
    if message.starts_with("unknown field `") {
        return Some(shown);
    }
    let parent_shown = match shown[..shown.len() - key.len()].trim_end_matches('.') {
        "" => ROOT,
        p => p,
    };
    let missing = format!("missing field `{key}`");
    let passes = |v: &serde_json::Value| match next_error(v) {
        None => true,
        Some((p, msg)) => !(within(&p, &shown) || p == parent_shown && msg == missing),
    };
    if !passes(value) && !stand_in(value, parent, key, Some(&old), &passes) {
        // Nothing fits: leave the key out; the next pass reports its holder.
        walk(value, parent)?.as_object_mut()?.remove(key);
    }
    Some(shown)
}

/// Puts the first stand-in (other than `old`) under `key` of the object at `parent` that
/// `passes`; false (and the key left set to the last one tried) when none does.
fn stand_in(
    value: &mut serde_json::Value,
    parent: &[serde_path_to_error::Segment],
    key: &str,
    old: Option<&serde_json::Value>,
    passes: &dyn Fn(&serde_json::Value) -> bool,
) -> bool {
    use serde_json::json;
    for candidate in [json!(0), json!(""), json!(false), json!([]), json!({})] {
        if Some(&candidate) == old {
            continue;
        }
        let Some(holder) = walk(value, parent).and_then(|v| v.as_object_mut()) else {
            return false;
        };
        holder.insert(key.to_owned(), candidate);
        if passes(value) {
            return true;
        }
    }
    false
}

/// `path` is `ancestor` or below it (`a.b[0]` is within `a.b`; `a.bc` is not).
pub(crate) fn within(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Splits an error path at its innermost key: the segments of the object holding it, the key,
/// and the key's rendered path.
fn locate(
    path: &[serde_path_to_error::Segment],
) -> Option<(&[serde_path_to_error::Segment], &str, String)> {
    use serde_path_to_error::Segment;
    let last = path
        .iter()
        .rposition(|s| matches!(s, Segment::Map { .. }))?;
    let Segment::Map { key } = &path[last] else {
        return None;
    };
    let mut shown = String::new();
    for seg in &path[..=last] {
        shown = match seg {
            Segment::Seq { index: i } => index(&shown, *i),
            Segment::Map { key } | Segment::Enum { variant: key } => join(&shown, key),
            Segment::Unknown => return None,
        };
    }
    Some((&path[..last], key.as_str(), shown))
}

fn walk<'v>(
    mut node: &'v mut serde_json::Value,
    path: &[serde_path_to_error::Segment],
) -> Option<&'v mut serde_json::Value> {
    use serde_path_to_error::Segment;
    for seg in path {
        node = match seg {
            Segment::Seq { index: i } => node.get_mut(*i)?,
            Segment::Map { key } | Segment::Enum { variant: key } => node.get_mut(key.as_str())?,
            Segment::Unknown => return None,
        };
    }
    Some(node)
}

/// A serde error's location in our path syntax ([`ROOT`] when it is the whole document).
pub(crate) fn from_serde_path(p: &serde_path_to_error::Path) -> String {
    from_path(&p.iter().cloned().collect::<Vec<_>>())
}

fn from_path(p: &[serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    for seg in p {
        match seg {
            Segment::Seq { index: i } => path = index(&path, *i),
            Segment::Map { key } | Segment::Enum { variant: key } => path = join(&path, key),
            Segment::Unknown => path = join(&path, "?"),
        }
    }
    if path.is_empty() {
        path = ROOT.to_owned();
    }
    path
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
