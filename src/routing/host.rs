//! Hostname handling for routing: `Host`/`:authority` port stripping and route hostname
//! patterns (exact or `*.` wildcard), with the specificity order used for route precedence.
//!
//! Owns: ASCII case-insensitive, allocation-free host comparison.
//! Does not: validate hostnames (config lowering does), resolve IDNA, or strip a trailing dot.

use std::cmp::Ordering;

/// A compiled route hostname pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostnameMatch {
    /// Whole host, stored lowercase.
    Exact(String),
    /// `*.example.com`, stored as the lowercase suffix `.example.com`. Matches any subdomain
    /// depth (`a.example.com`, `a.b.example.com`), never `example.com` itself. A bare `*` is
    /// stored as the empty suffix and matches any non-empty host.
    Wildcard(String),
    /// The route lists no hostnames: matches every host, least specific.
    Any,
}

impl HostnameMatch {
    pub(crate) fn parse(pattern: &str) -> Self {
        let p = pattern.to_ascii_lowercase();
        if p == "*" {
            HostnameMatch::Wildcard(String::new())
        } else if p.starts_with("*.") {
            HostnameMatch::Wildcard(p[1..].to_owned())
        } else {
            HostnameMatch::Exact(p)
        }
    }

    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            HostnameMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostnameMatch::Wildcard(suffix) => wildcard_matches(suffix, host),
            HostnameMatch::Any => true,
        }
    }

    /// Precedence order: `Less` means `self` is more specific. Exact < longer wildcard <
    /// shorter wildcard < Any. For a given host only one exact pattern can match, so exact
    /// patterns compare equal among themselves.
    pub(crate) fn cmp_specificity(&self, other: &Self) -> Ordering {
        fn rank(h: &HostnameMatch) -> (u8, std::cmp::Reverse<usize>) {
            match h {
                HostnameMatch::Exact(_) => (0, std::cmp::Reverse(0)),
                HostnameMatch::Wildcard(s) => (1, std::cmp::Reverse(s.len())),
                HostnameMatch::Any => (2, std::cmp::Reverse(0)),
            }
        }
        rank(self).cmp(&rank(other))
    }
}

fn wildcard_matches(suffix: &str, host: &str) -> bool {
    let (h, s) = (host.as_bytes(), suffix.as_bytes());
    h.len() > s.len() && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
}

/// Matches `host` against a route hostname pattern without allocating: exact (ASCII
/// case-insensitive) or `*.example.com` (any subdomain depth, not the apex).
pub(crate) fn hostname_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        !host.is_empty()
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        suffix.starts_with('.') && wildcard_matches(suffix, host)
    } else {
        pattern.eq_ignore_ascii_case(host)
    }
}
