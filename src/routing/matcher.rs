//! Per-request match conditions: path, method, headers and query parameters of one
//! `matches[]` entry, and the code that evaluates them against a [`RequestView`].
//!
//! Owns: the compiled condition types and their zero-allocation evaluation.
//! Does not: order routes (see `table`), look at hostnames (see `host`), or percent-decode
//! anything — paths are compared as `http::h1::normalize_path` left them (dot-segments removed,
//! unreserved escapes decoded, other escapes uppercased), query values as they arrived.

use regex::Regex;

use super::RequestView;

/// How a request path is matched.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The (normalised) path must equal this string byte for byte.
    Exact(String),
    /// Segment-aware prefix: trailing `/` is ignored on both sides, then the rest of the path
    /// must be empty or start with `/`. `/hello` matches `/hello`, `/hello/`, `/hello/x`, not
    /// `/helloX`; `/` matches every path that starts with `/`.
    Prefix(String),
    /// The regex must match the whole path. Build with [`PathMatch::regex`] to get an anchored
    /// pattern; an unanchored `Regex` is still checked as "leftmost match spans the whole path"
    /// (agentgateway's `find()` rule).
    Regex(Regex),
}

/// How a header or query-parameter value is matched.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// Byte-equal comparison.
    Exact(String),
    /// Whole-value regex; see [`PathMatch::Regex`] for the anchoring rule.
    Regex(Regex),
}

/// One header condition. `name` is stored lowercase; request header names are compared
/// ASCII case-insensitively. With repeated header lines, any line whose value matches is
/// enough (comma-joined values inside one line are not split).
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// One query-parameter condition. Names compare exactly (case-sensitive). With a repeated
/// parameter, any occurrence whose value matches is enough. Values are not percent-decoded.
#[derive(Debug, Clone)]
pub struct QueryMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// One `matches[]` entry: every present condition must hold (AND).
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Compared case-sensitively (HTTP methods are case-sensitive).
    pub method: Option<String>,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
}

/// Compiles `pattern` as `^(?:pattern)$` so it can only match a whole value.
fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// True if the leftmost match of `re` covers all of `s`.
fn whole_match(re: &Regex, s: &str) -> bool {
    re.find(s)
        .is_some_and(|m| m.start() == 0 && m.end() == s.len())
}

impl PathMatch {
    /// A whole-path regex, anchored at compile time.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        anchored(pattern).map(PathMatch::Regex)
    }

    /// The default match of a route without `matches`: prefix `/`.
    pub fn default_prefix() -> Self {
        PathMatch::Prefix("/".to_owned())
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => prefix_matches(p, path),
            PathMatch::Regex(re) => whole_match(re, path),
        }
    }
}

/// Segment-aware prefix rule shared by matching and `policy::rewrite`.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.trim_end_matches('/').strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl ValueMatch {
    /// A whole-value regex, anchored at compile time.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        anchored(pattern).map(ValueMatch::Regex)
    }

    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            ValueMatch::Exact(v) => v.as_bytes() == value,
            // Non-UTF-8 values cannot match a `regex::Regex`.
            ValueMatch::Regex(re) => std::str::from_utf8(value).is_ok_and(|s| whole_match(re, s)),
        }
    }
}

impl HeaderMatch {
    /// Builds a header condition, lowercasing `name`.
    pub fn new(name: &str, value: ValueMatch) -> Self {
        HeaderMatch {
            name: name.to_ascii_lowercase(),
            value,
        }
    }

    pub fn matches(&self, headers: &[httparse::Header<'_>]) -> bool {
        headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(&self.name) && self.value.matches(h.value))
    }
}

impl QueryMatch {
    pub fn matches(&self, query: &str) -> bool {
        query_pairs(query).any(|(k, v)| k == self.name && self.value.matches(v.as_bytes()))
    }
}

/// Iterates `a=1&b=2` as `(name, value)` pairs without allocating. A pair without `=` has an
/// empty value; empty pairs (`a=1&&b=2`) are skipped. No percent- or `+`-decoding.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

impl RouteMatch {
    /// A match on the path only.
    pub fn path(path: PathMatch) -> Self {
        RouteMatch {
            path,
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        }
    }

    /// AND of all conditions; cheapest checks first.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(m) = &self.method {
            if m != req.method {
                return false;
            }
        }
        self.path.matches(req.path)
            && self.headers.iter().all(|h| h.matches(req.headers))
            && self.query.iter().all(|q| q.matches(req.query))
    }
}
