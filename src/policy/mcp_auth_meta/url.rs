//! Resource-URL handling: a small RFC 3986 splitter for the absolute `http(s)` URLs used as
//! RFC 9728 resource identifiers, the RFC 9728 §3.1 / RFC 8414 §3.1 well-known insertion, and
//! the case-folding comparisons of MCP's "Canonical Server URI" (A16).
//!
//! Owns: syntax checks and string assembly. Does not: resolve, normalise percent-encoding or
//! dot segments, or accept anything but `http`/`https` (the PRM must be fetchable by clients).
//! No `url` crate: the grammar needed is tiny and the original bytes must be kept verbatim
//! (the PRM `resource` has to be byte-identical to what clients use, RFC 9728 §3.3).

use std::fmt;

/// Well-known suffix for RFC 9728 Protected Resource Metadata.
pub(crate) const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// An absolute `http(s)` URL split as written. `scheme` and `authority` keep their original
/// case (byte identity matters for `resource`); the comparison helpers fold case.
/// `path` is empty or starts with `/`; `query` excludes the `?`. Fragments are rejected
/// (RFC 9728 §1.2 / RFC 8707 §2: a resource identifier has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceUrl {
    pub scheme: String,
    pub authority: String,
    pub path: String,
    /// Deviation from the brief's three-field struct: the query is kept apart so that
    /// well-known insertion can put it after the path.
    pub query: Option<String>,
}

/// Splits `scheme://authority[/path][?query]`. Rejects: other schemes, userinfo, empty host,
/// non-numeric or empty port, fragments, and bytes that cannot appear in a URI (spaces,
/// controls, non-ASCII, `"`, `\`, `<`, `>`, …).
pub(crate) fn parse_resource_url(s: &str) -> Result<ResourceUrl, String> {
    if let Some(bad) = s.bytes().find(|&b| !is_uri_byte(b)) {
        return Err(format!(
            "URL {s:?} contains a byte not allowed in a URI (0x{bad:02x})"
        ));
    }
    if s.contains('#') {
        return Err(format!("URL {s:?} must not contain a fragment"));
    }
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("URL {s:?} is not absolute (expected scheme://authority/path)"))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("URL {s:?} must use http or https"));
    }
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    check_authority(authority).map_err(|why| format!("URL {s:?}: {why}"))?;
    let tail = &rest[auth_end..];
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (tail, None),
    };
    Ok(ResourceUrl {
        scheme: scheme.to_owned(),
        authority: authority.to_owned(),
        path: path.to_owned(),
        query,
    })
}

/// RFC 9728 §3.1: `https://h/a/b?q` → `https://h/.well-known/oauth-protected-resource/a/b?q`.
/// A path of exactly `/` is dropped first; any other trailing slash is kept.
pub(crate) fn prm_url(resource: &str) -> Result<String, String> {
    Ok(parse_resource_url(resource)?.well_known_url(PRM_WELL_KNOWN))
}

impl ResourceUrl {
    /// Host without port; IPv6 literals keep their brackets.
    pub(crate) fn host(&self) -> &str {
        split_host_port(&self.authority).0
    }

    /// Explicit port, if any.
    pub(crate) fn port(&self) -> Option<u16> {
        split_host_port(&self.authority).1
    }

    /// Explicit port, or 80/443 from the scheme.
    pub(crate) fn effective_port(&self) -> u16 {
        self.port()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }

    pub(crate) fn is_https(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("https")
    }

    /// Same scheme, host (ASCII case-insensitive) and effective port.
    pub(crate) fn same_origin(&self, other: &Self) -> bool {
        self.scheme.eq_ignore_ascii_case(&other.scheme)
            && self.host().eq_ignore_ascii_case(other.host())
            && self.effective_port() == other.effective_port()
    }

    /// Same origin (case-folded, default ports normalised) and byte-identical path and query:
    /// the comparison MCP's "Canonical Server URI" section asks servers to accept (A16).
    pub(crate) fn canonical_eq(&self, other: &Self) -> bool {
        self.same_origin(other) && self.path == other.path && self.query == other.query
    }

    /// `scheme://authority` as written.
    pub(crate) fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// Path (a lone `/` dropped) plus `?query`, prefixed by `well_known`; e.g. the request
    /// path a gateway must answer for the PRM of this resource.
    pub(crate) fn well_known_path(&self, well_known: &str) -> String {
        let path = if self.path == "/" { "" } else { &self.path };
        let mut out = String::with_capacity(well_known.len() + path.len() + 1);
        out.push_str(well_known);
        out.push_str(path);
        if let Some(q) = &self.query {
            out.push('?');
            out.push_str(q);
        }
        out
    }

    /// Origin + [`Self::well_known_path`].
    pub(crate) fn well_known_url(&self, well_known: &str) -> String {
        self.origin() + &self.well_known_path(well_known)
    }
}

impl fmt::Display for ResourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        match &self.query {
            Some(q) => write!(f, "?{q}"),
            None => Ok(()),
        }
    }
}

/// RFC 3986 unreserved / gen-delims / sub-delims / `%`.
fn is_uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

fn check_authority(a: &str) -> Result<(), &'static str> {
    if a.contains('@') {
        return Err("userinfo is not allowed in a resource URL");
    }
    let host_end = if a.starts_with('[') {
        a.find(']').ok_or("unterminated IPv6 literal")? + 1
    } else {
        a.find(':').unwrap_or(a.len())
    };
    let (host, port) = a.split_at(host_end);
    if host.is_empty() || host == "[]" {
        return Err("empty host");
    }
    if !host.starts_with('[') && host.contains(['[', ']']) {
        return Err("brackets outside an IPv6 literal");
    }
    if let Some(p) = port.strip_prefix(':') {
        if p.is_empty() || p.parse::<u16>().is_err() {
            return Err("invalid port");
        }
    } else if !port.is_empty() {
        return Err("unexpected characters after the host");
    }
    Ok(())
}

/// Only called on authorities that passed [`check_authority`].
fn split_host_port(a: &str) -> (&str, Option<u16>) {
    let (host, port) = crate::http::authority::split_host_port(a);
    (host, port.and_then(|p| p.parse().ok()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (query-component safe).
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xF)] as char);
        }
    }
    out
}
