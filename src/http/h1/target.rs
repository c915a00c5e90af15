//! Request-target forms (RFC 9112 §3.2) and Host value syntax.
//!
//! Splits a target into path, query and, for absolute-form, authority. Does not decode
//! percent-escapes or normalise dot-segments: see `path` (applied by `dispatch`).

use super::H1Error;

/// A request target split into its parts, borrowed from the head.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Target<'b> {
    pub path: &'b str,
    pub query: &'b str,
    /// Authority of an absolute-form target.
    pub authority: Option<&'b [u8]>,
}

/// Classifies `target` for `method`. CONNECT (authority-form) is refused: Portcullis does not
/// tunnel, so the caller answers 501 and closes.
pub(super) fn split_target<'b>(method: &str, target: &'b str) -> Result<Target<'b>, H1Error> {
    if method == "CONNECT" {
        return Err(H1Error::ConnectNotSupported);
    }
    let bytes = target.as_bytes();
    // httparse allows UTF-8 in targets; HTTP does not. Fragments are never sent on the wire.
    if !bytes.is_ascii() || memchr::memchr(b'#', bytes).is_some() {
        return Err(H1Error::InvalidTarget);
    }
    match bytes.first() {
        Some(b'/') => {
            let (path, query) = split_query(target);
            Ok(Target {
                path,
                query,
                authority: None,
            })
        }
        Some(b'*') if bytes.len() == 1 => {
            if method == "OPTIONS" {
                Ok(Target {
                    path: target,
                    query: "",
                    authority: None,
                })
            } else {
                Err(H1Error::AsteriskNotOptions)
            }
        }
        _ => absolute_form(target),
    }
}

fn split_query(s: &str) -> (&str, &str) {
    match s.split_once('?') {
        Some((p, q)) => (p, q),
        None => (s, ""),
    }
}

fn absolute_form(target: &str) -> Result<Target<'_>, H1Error> {
    let rest = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"))
        .ok_or(H1Error::InvalidTarget)?;
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(auth_end);
    if authority.is_empty() || authority.contains('@') || !is_valid_host(authority.as_bytes()) {
        return Err(H1Error::InvalidTarget);
    }
    let (path, query) = split_query(path_and_query);
    Ok(Target {
        path: if path.is_empty() { "/" } else { path },
        query,
        authority: Some(authority.as_bytes()),
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `uri-host [ ":" port ]` by byte class: unreserved, sub-delims, `%`, `:` and `[` `]`
/// (IP literals). An empty value is valid (RFC 9112 §3.2). Rejects whitespace, `/`, `@`, etc.
pub(super) fn is_valid_host(value: &[u8]) -> bool {
    value.iter().all(|&b| {
        matches!(b,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
            | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')'
            | b'*' | b'+' | b',' | b';' | b'=' | b'%' | b':' | b'[' | b']')
    })
}
