//! Request-path normalisation before routing: RFC 3986 §6.2.2 syntax-based normalisation of an
//! origin-form path (the part of the target before `?`).
//!
//! Why: routes are matched on the path, and a backend that resolves dot-segments or decodes
//! escapes itself would otherwise serve a different resource than the one the proxy authorised
//! (`/echo/../api/secret` matches an open `/echo` prefix, the backend serves `/api/secret`).
//! The proxy therefore routes on, and forwards, one canonical spelling:
//!
//! - `%XX` escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded (§2.3), so
//!   `%2e%2e` is `..`; every other escape is kept, its hex digits uppercased (§6.2.2.1).
//! - Dot-segments are removed (§5.2.4); `..` above the root stays at `/`.
//! - Empty segments (`//`) are kept: agentgateway and Envoy leave `merge_slashes` off by default,
//!   and some backends give `//` meaning. Route prefixes are segment-aware, so `//api` does not
//!   match an `/api` route; a backend that merges slashes behind a catch-all route is a
//!   configuration the operator owns.
//! - Refused with 400: `%2F` and `%5C` (an encoded `/` or `\`) and a literal `\`. Decoding them
//!   would change the segment structure after the route was chosen; keeping them encoded (Envoy's
//!   default, `path_with_escaped_slashes_action: KEEP_UNCHANGED`) leaves a backend that decodes
//!   them — or, for `\`, treats it as a separator (IIS, many Windows and some Java stacks) — free
//!   to see `/echo%2F..%2Fapi` as `/api`. Refusing (Envoy's opt-in `REJECT_REQUEST`) is the one
//!   choice that is safe whatever the backend does. The cost: APIs that carry `%2F` inside a
//!   segment (GitLab's `projects/group%2Frepo`) cannot be proxied.
//! - Refused with 400: `%00` (a NUL truncates paths in C backends) and malformed escapes (`%`
//!   not followed by two hex digits).
//! - Refused with 400: a dot-segment carrying path parameters (`/echo/..;/api`, `.;x`, also
//!   escaped): servlet containers (Tomcat, Jetty) drop `;parameters` and then resolve the `..`,
//!   so the backend would serve `/api` behind a route chosen for `/echo`.
//!
//! The query string is not touched. Fast path: a path with no `%`, no `\` and no dot-segment is
//! returned borrowed, without allocating; otherwise one pass builds the result.

use std::borrow::Cow;

use super::H1Error;

/// Normalises an origin-form request path (it must start with `/`); see the module docs.
///
/// `Ok(Cow::Borrowed)` when the path is already normal and needed no work.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, H1Error> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(H1Error::InvalidTarget);
    }
    if !needs_work(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    let mut segments = path[1..].split('/').peekable();
    // Reported after every escape was checked (the order the reference gives).
    let mut dot_params = false;
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        out.push('/');
        let mark = out.len();
        decode_segment(seg, &mut out)?;
        dot_params |= is_dot_with_params(&out[mark..]);
        let dots = match &out[mark..] {
            "." => 1,
            ".." => 2,
            _ => continue,
        };
        // Drop the dot-segment and its `/`; for `..` also the segment before it.
        out.truncate(mark - 1);
        if dots == 2 {
            let cut = out.rfind('/').unwrap_or(0);
            out.truncate(cut);
        }
        // `/a/.` and `/a/b/..` both name the directory `/a/`.
        if last {
            out.push('/');
        }
    }
    if dot_params {
        return Err(H1Error::DotSegmentParameters);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// `.;…` or `..;…`: a dot-segment with path parameters.
fn is_dot_with_params(seg: &str) -> bool {
    seg.starts_with(".;") || seg.starts_with("..;")
}

/// Whether the path contains `%`, `\` or a `.`/`..` segment. Dots elsewhere (`/.well-known`,
/// `/a.b`, `/...`) take the fast path.
fn needs_work(b: &[u8]) -> bool {
    if memchr::memchr2(b'%', b'\\', b).is_some() {
        return true;
    }
    memchr::memchr_iter(b'.', b).any(|i| {
        i > 0
            && b[i - 1] == b'/'
            && match b.get(i + 1) {
                None | Some(b'/' | b';') => true,
                Some(b'.') => matches!(b.get(i + 2), None | Some(b'/' | b';')),
                _ => false,
            }
    })
}

/// Appends `seg` (no `/` in it) to `out`, decoding escapes of unreserved characters and
/// uppercasing the rest.
fn decode_segment(seg: &str, out: &mut String) -> Result<(), H1Error> {
    let b = seg.as_bytes();
    let mut run = 0;
    while let Some(off) = memchr::memchr2(b'%', b'\\', &b[run..]) {
        let i = run + off;
        if b[i] == b'\\' {
            return Err(H1Error::BackslashInPath);
        }
        out.push_str(&seg[run..i]);
        let (Some(hi), Some(lo)) = (
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(H1Error::InvalidPercentEncoding);
        };
        match hi << 4 | lo {
            0 => return Err(H1Error::EncodedNul),
            b'/' | b'\\' => return Err(H1Error::EncodedPathSeparator),
            c if is_unreserved(c) => out.push(char::from(c)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(hi)]));
                out.push(char::from(HEX[usize::from(lo)]));
            }
        }
        run = i + 3;
    }
    out.push_str(&seg[run..]);
    Ok(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// A literal transcription of RFC 3986 §5.2.4 (string buffers, rules A–E), applied after
/// decoding unreserved escapes over the whole path: the oracle the tests and the fuzz target
/// compare [`normalize_path`] with. Slow on purpose.
#[doc(hidden)]
pub(crate) fn reference_normalize(path: &str) -> Result<String, H1Error> {
    if !path.starts_with('/') {
        return Err(H1Error::InvalidTarget);
    }
    let mut decoded = String::new();
    decode_segment(path, &mut decoded)?;
    if decoded.split('/').any(is_dot_with_params) {
        return Err(H1Error::DotSegmentParameters);
    }
    let mut input = decoded;
    let mut output = String::new();
    let pop = |o: &mut String| {
        let cut = o.rfind('/').unwrap_or(0);
        o.truncate(cut);
    };
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_owned();
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_owned();
        } else if let Some(rest) = input.strip_prefix("/./") {
            input = format!("/{rest}");
        } else if input == "/." {
            input = "/".to_owned();
        } else if let Some(rest) = input.strip_prefix("/../") {
            input = format!("/{rest}");
            pop(&mut output);
        } else if input == "/.." {
            input = "/".to_owned();
            pop(&mut output);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input.drain(..end);
        }
    }
    Ok(output)
}

/// Fuzz entry point: normalises `data` (as UTF-8) and checks the invariants routing relies on.
#[doc(hidden)]
pub(crate) fn fuzz_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let got = normalize_path(path);
    let reference = reference_normalize(path);
    match (&got, &reference) {
        (Ok(g), Ok(r)) => assert_eq!(g, r, "differs from RFC 3986 §5.2.4 for {path:?}"),
        (Err(g), Err(r)) => assert_eq!(g, r, "different refusal for {path:?}"),
        _ => panic!("{path:?}: {got:?} vs reference {reference:?}"),
    }
    let Ok(n) = got else {
        return;
    };
    assert!(n.starts_with('/'), "{n:?}");
    assert!(n.len() <= path.len(), "{path:?} grew to {n:?}");
    for seg in n.split('/') {
        assert!(seg != "." && seg != "..", "dot-segment left in {n:?}");
    }
    assert!(!n.contains('\\'), "{n:?}");
    let b = n.as_bytes();
    for i in memchr::memchr_iter(b'%', b) {
        let (hi, lo) = (b[i + 1], b[i + 2]);
        assert!(hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit(), "{n:?}");
        assert!(
            !hi.is_ascii_lowercase() && !lo.is_ascii_lowercase(),
            "{n:?}"
        );
        let c = hex(hi).unwrap() << 4 | hex(lo).unwrap();
        assert!(!is_unreserved(c) && !matches!(c, 0 | b'/' | b'\\'), "{n:?}");
    }
    let again = normalize_path(&n).expect("a normalised path is accepted");
    assert_eq!(again, n, "not idempotent");
    if !n.contains('%') {
        assert!(
            matches!(again, Cow::Borrowed(_)),
            "{n:?} missed the fast path"
        );
    }
}

#[cfg(test)]
mod tests;
