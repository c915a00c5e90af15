//! Header modification (`requestHeaderModifier` / `responseHeaderModifier`): which incoming
//! headers to drop and which pre-rendered lines to append.
//!
//! Semantics follow agentgateway's apply order add → set → remove: `set` replaces every
//! existing value (including one from `add` with the same name), `remove` wins over both.
//! So at compile time `add` entries shadowed by `set`/`remove`, and `set` entries shadowed by
//! `remove` (or a later `set` of the same name), are dropped.
//! Does not: touch hop-by-hop or framing headers on its own (the codec owns those).

#[cfg(test)]
mod tests;

use super::validate::{is_field_value, is_token, push_line};

/// A compiled header modifier.
#[derive(Debug, Clone, Default)]
pub struct HeaderModifier {
    /// Lowercase names from `remove` and `set`.
    drops: Vec<String>,
    /// `set` lines then `add` lines, `name: value\r\n` each.
    extra: Vec<u8>,
}

fn check(name: &str, value: Option<&str>) -> Result<(), String> {
    if !is_token(name) {
        return Err(format!("invalid header name {name:?}"));
    }
    match value {
        Some(v) if !is_field_value(v) => Err(format!("invalid value for header {name:?}")),
        _ => Ok(()),
    }
}

impl HeaderModifier {
    /// Validates names and values and pre-renders the output lines.
    pub fn compile(
        add: &[(String, String)],
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<Self, String> {
        for (n, v) in add.iter().chain(set) {
            check(n, Some(v))?;
        }
        for n in remove {
            check(n, None)?;
        }
        let in_list =
            |list: &[String], name: &str| list.iter().any(|n| n.eq_ignore_ascii_case(name));
        let set_names: Vec<String> = set.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        let mut extra = Vec::new();
        for (i, (n, v)) in set.iter().enumerate() {
            let overwritten_later = in_list(&set_names[i + 1..], n);
            if !overwritten_later && !in_list(remove, n) {
                push_line(&mut extra, n, v.as_bytes());
            }
        }
        for (n, v) in add {
            if !in_list(&set_names, n) && !in_list(remove, n) {
                push_line(&mut extra, n, v.as_bytes());
            }
        }
        let mut drops: Vec<String> = remove.iter().map(|n| n.to_ascii_lowercase()).collect();
        drops.extend(set_names);
        drops.sort();
        drops.dedup();
        Ok(HeaderModifier { drops, extra })
    }

    /// True if an incoming header called `name` must not be forwarded (it is removed, or
    /// replaced by `set`). ASCII case-insensitive, no allocation.
    pub fn drops(&self, name: &str) -> bool {
        self.drops.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    /// Appends the pre-rendered `set` and `add` lines.
    pub fn write_extra(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.extra);
    }

    /// True if this modifier changes nothing.
    pub fn is_empty(&self) -> bool {
        self.drops.is_empty() && self.extra.is_empty()
    }
}
