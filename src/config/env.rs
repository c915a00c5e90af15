//! Environment-variable expansion of the raw config text, like agentgateway's `shellexpand::full`.
//!
//! Owns `$VAR`, `${VAR}`, `${VAR:-default}` and `$$` → `$`. A `$` not followed by a name or `{`
//! is kept literally (so regexes such as `^/a$` survive). Full-line `#` comments are copied
//! unexpanded, which neutralises `# yaml-language-server: $schema=…`. Does not do `~` expansion
//! (agentgateway only expands a `~` at the very start of the file, which YAML configs never have)
//! and does not read the process environment itself: the caller passes `lookup`.

use crate::schema::ConfigError;

/// Path used for expansion errors (they happen before there is a YAML tree).
const ENV_PATH: &str = "(env)";

/// Expands environment references in `text`; an undefined variable is an error naming it.
pub(crate) fn expand_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        expand_line(line, n + 1, lookup, &mut out)?;
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn expand_line(
    line: &str,
    lineno: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), ConfigError> {
    let undefined = |name: &str| {
        ConfigError::new(
            ENV_PATH,
            format!("environment variable `{name}` is not defined (line {lineno})"),
        )
    };
    let mut rest = line;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let Some(close) = braced.find('}') else {
                return Err(ConfigError::new(
                    ENV_PATH,
                    format!("unterminated `${{` (line {lineno})"),
                ));
            };
            let inner = &braced[..close];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(ConfigError::new(
                    ENV_PATH,
                    format!("invalid variable name `{name}` in `${{{inner}}}` (line {lineno})"),
                ));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(undefined(name)),
            }
            rest = &braced[close + 1..];
        } else {
            let len = after
                .find(|c: char| !is_name_char(c))
                .unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                let name = &after[..len];
                out.push_str(&lookup(name).ok_or_else(|| undefined(name))?);
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(())
}
