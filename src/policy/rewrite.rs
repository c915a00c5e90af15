//! `urlRewrite.path`: full replacement or Gateway API `ReplacePrefixMatch`.
//!
//! Owns: producing the rewritten path. Does not: touch the query string (the caller
//! re-appends it), authority rewrites, or redirects.

#[cfg(test)]
mod tests;

use crate::routing::PathMatch;

/// A configured path rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Replace the whole path.
    Full(String),
    /// Replace the part matched by a `PathMatch::Prefix`.
    Prefix(String),
}

impl PathRewrite {
    /// Appends the rewritten path to `out` (`out` is not cleared).
    ///
    /// `Prefix` is segment-aware: with match prefix `/foo` and rewrite `/bar`, `/foo/x` →
    /// `/bar/x` and `/foo` → `/bar`; rewriting to `/` gives `/x`, never `//x`. When the
    /// route matched by exact path or regex (or `path` does not start with the prefix),
    /// `Prefix` behaves like `Full`.
    pub fn apply(&self, matched: &PathMatch, path: &str, out: &mut String) {
        let (replacement, rest) = match (self, matched) {
            (PathRewrite::Full(p), _) => (p.as_str(), None),
            (PathRewrite::Prefix(p), PathMatch::Prefix(m)) => {
                let rest = path.strip_prefix(m.trim_end_matches('/'));
                (
                    p.as_str(),
                    rest.filter(|r| r.is_empty() || r.starts_with('/')),
                )
            }
            (PathRewrite::Prefix(p), _) => (p.as_str(), None),
        };
        let Some(rest) = rest else {
            out.push_str(replacement);
            return;
        };
        let start = out.len();
        out.push_str(replacement.trim_end_matches('/'));
        out.push_str(rest);
        if out.len() == start {
            out.push('/');
        }
    }
}
