//! Streamable-HTTP transport checks (mcp-spec-notes §2, T1–T16): `Accept` and `Content-Type`
//! negotiation, `MCP-Protocol-Version` validation and initialize negotiation, session-id
//! syntax, and the `Origin` / `Host` checks against DNS rebinding.
//!
//! Accept rules: a media range matches by the usual specificity (`text/event-stream` beats
//! `text/*` beats `*/*`), so `*/*` alone satisfies both POST types and `*/*, text/*;q=0` does
//! not. A `q` of zero (`0`, `0.`, `0.000`) excludes; any other or unparsable `q` includes.
//! Callers with several `Accept` lines pass them joined with `,`.
//!
//! Not here: any I/O, choosing HTTP status codes, session storage.

use super::jsonrpc;

/// Protocol versions served, newest first.
pub(crate) const SUPPORTED: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// POST: the client accepts both `application/json` and `text/event-stream`.
pub(crate) fn accepts_post(accept: Option<&[u8]>) -> bool {
    // What the SDK clients send, byte for byte, skips the q-value parse (~2k instructions).
    const COMMON: [&[u8]; 2] = [
        b"application/json, text/event-stream",
        b"text/event-stream, application/json",
    ];
    accept.is_some_and(|a| {
        COMMON.contains(&a)
            || (accepts(a, b"application", b"json") && accepts(a, b"text", b"event-stream"))
    })
}

/// GET: the client accepts `text/event-stream`.
pub(crate) fn accepts_sse(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| accepts(a, b"text", b"event-stream"))
}

/// Whether `ty/sub` is acceptable: the most specific matching range decides by its q.
fn accepts(accept: &[u8], ty: &[u8], sub: &[u8]) -> bool {
    let mut best: Option<(u8, bool)> = None;
    for item in accept.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let range = trim(parts.next().unwrap_or_default());
        let Some(slash) = range.iter().position(|&b| b == b'/') else {
            continue;
        };
        let (t, s) = (trim(&range[..slash]), trim(&range[slash + 1..]));
        let specificity = if t == b"*" && s == b"*" {
            0
        } else if t.eq_ignore_ascii_case(ty) && s == b"*" {
            1
        } else if t.eq_ignore_ascii_case(ty) && s.eq_ignore_ascii_case(sub) {
            2
        } else {
            continue;
        };
        let ok = !parts.any(is_q_zero);
        if best.is_none_or(|(sp, _)| specificity > sp) {
            best = Some((specificity, ok));
        } else if best.is_some_and(|(sp, _)| sp == specificity) && ok {
            best = Some((specificity, true));
        }
    }
    best.is_some_and(|(_, ok)| ok)
}

fn is_q_zero(param: &[u8]) -> bool {
    let param = trim(param);
    let Some(eq) = param.iter().position(|&b| b == b'=') else {
        return false;
    };
    if !trim(&param[..eq]).eq_ignore_ascii_case(b"q") {
        return false;
    }
    let v = trim(&param[eq + 1..]);
    v.first() == Some(&b'0') && v[1..].iter().all(|&b| b == b'0' || b == b'.')
}

/// `application/json`, optionally with parameters (`; charset=utf-8`), case-insensitive.
pub(crate) fn is_json_content_type(ct: Option<&[u8]>) -> bool {
    ct.is_some_and(|ct| {
        let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
        trim(essence).eq_ignore_ascii_case(b"application/json")
    })
}

/// The outcome of reading `MCP-Protocol-Version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VersionCheck {
    /// A supported version.
    Ok(&'static str),
    /// No header: assume [`DEFAULT_VERSION`] (T15).
    Missing,
    /// Anything else, including [`MODERN_UNSUPPORTED`] versions: answer 400.
    Unsupported,
}

pub(crate) fn check_version(header: Option<&[u8]>) -> VersionCheck {
    let Some(h) = header else {
        return VersionCheck::Missing;
    };
    let h = trim(h);
    match SUPPORTED.iter().find(|v| v.as_bytes() == h) {
        Some(v) => VersionCheck::Ok(v),
        None => VersionCheck::Unsupported,
    }
}

/// JSON-RPC error -32022 with `data: {supported, requested}`; the supported list holds only
/// 2025-era versions, so 2026-07-28 clients fall back to `initialize` (spec notes §2.3).
pub(crate) fn unsupported_version_error(requested: &str, id: Option<&str>) -> Vec<u8> {
    let data = serde_json::json!({ "supported": SUPPORTED, "requested": requested });
    jsonrpc::error_object(
        id,
        jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        Some(&data),
    )
}

/// The version to answer `initialize` with: the requested one if served, else the newest.
pub(crate) fn negotiate(requested: &str) -> &'static str {
    SUPPORTED
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(SUPPORTED[0])
}

/// An `Origin` (`scheme://host[:port]`) or `Host` (`host[:port]`) split into its parts.
struct Authority<'a> {
    scheme: Option<&'a [u8]>,
    host: &'a [u8],
    port: Option<u16>,
}

impl<'a> Authority<'a> {
    fn parse_origin(origin: &'a [u8]) -> Option<Self> {
        let at = origin.windows(3).position(|w| w == b"://")?;
        let mut a = Self::parse_host(&origin[at + 3..])?;
        a.scheme = Some(&origin[..at]);
        Some(a)
    }

    fn parse_host(s: &'a [u8]) -> Option<Self> {
        let (host, port) = match s.iter().rposition(|&b| b == b':') {
            Some(c) if !s[c + 1..].contains(&b']') => {
                let p = std::str::from_utf8(&s[c + 1..]).ok()?.parse::<u16>().ok()?;
                (&s[..c], Some(p))
            }
            _ => (s, None),
        };
        let bad = |b: &u8| b.is_ascii_control() || matches!(b, b'/' | b'@' | b' ' | b'?' | b'#');
        (!host.is_empty() && !host.iter().any(bad)).then_some(Self {
            scheme: None,
            host,
            port,
        })
    }

    fn default_port(&self) -> Option<u16> {
        match self.scheme {
            Some(s) if s.eq_ignore_ascii_case(b"http") || s.eq_ignore_ascii_case(b"ws") => Some(80),
            Some(s) if s.eq_ignore_ascii_case(b"https") || s.eq_ignore_ascii_case(b"wss") => {
                Some(443)
            }
            _ => None,
        }
    }

    fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| self.default_port())
    }
}

/// Whether a request's `Origin` may reach an MCP endpoint (403 otherwise).
///
/// Allowed: the same host as `host` (scheme ignored; a `Host` without port matches an origin on
/// its scheme's default port), an exact (case-insensitive) entry of `allow_list`, `*`, or a
/// pattern `scheme://*.example.com[:port]` (one or more labels). Same-host alone does not stop
/// DNS rebinding (the attacker controls both headers): pair it with [`host_allowed`].
pub(crate) fn origin_allowed(origin: &[u8], host: &[u8], allow_list: &[String]) -> bool {
    let origin = trim(origin);
    for entry in allow_list {
        let e = entry.as_bytes();
        if e == b"*" || e.eq_ignore_ascii_case(origin) || wildcard_origin(e, origin) {
            return true;
        }
    }
    let (Some(o), Some(h)) = (
        Authority::parse_origin(origin),
        Authority::parse_host(trim(host)),
    ) else {
        return false;
    };
    if !o.host.eq_ignore_ascii_case(h.host) {
        return false;
    }
    match h.port {
        Some(p) => o.effective_port() == Some(p),
        None => o.port.is_none() || o.port == o.default_port(),
    }
}

fn wildcard_origin(pattern: &[u8], origin: &[u8]) -> bool {
    let (Some(p), Some(o)) = (
        Authority::parse_origin(pattern),
        Authority::parse_origin(origin),
    ) else {
        return false;
    };
    let Some(suffix) = p.host.strip_prefix(b"*") else {
        return false;
    };
    suffix.first() == Some(&b'.')
        && o.host.len() > suffix.len()
        && o.host[o.host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        && p.scheme
            .zip(o.scheme)
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        && p.effective_port() == o.effective_port()
}

/// `localhost`, `127.0.0.1` (any 127/8 address) or `[::1]`, with or without a port.
pub(crate) fn is_loopback_host(host: &[u8]) -> bool {
    let host = trim(host);
    // What local clients send, without the general parse (it runs on every request a loopback
    // listener takes): a loopback name, then nothing or a port the parse below would accept.
    for name in [&b"127.0.0.1"[..], b"localhost", b"[::1]"] {
        let rest = match host.get(..name.len()) {
            Some(h) if h.eq_ignore_ascii_case(name) => &host[name.len()..],
            _ => continue,
        };
        let port = |p: &[u8]| {
            (1..=5).contains(&p.len())
                && p.iter().all(u8::is_ascii_digit)
                && p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 0xffff
        };
        match rest {
            [] => return true,
            [b':', p @ ..] if port(p) => return true,
            _ => break,
        }
    }
    loopback_by_parse(host)
}

/// [`is_loopback_host`] the long way (`host` trimmed).
fn loopback_by_parse(host: &[u8]) -> bool {
    let Some(a) = Authority::parse_host(host) else {
        return false;
    };
    let h = a.host;
    h.eq_ignore_ascii_case(b"localhost")
        || h == b"[::1]"
        || std::str::from_utf8(h)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
            .is_some_and(|ip| ip.is_loopback())
}

/// The `Host` check against DNS rebinding (the conformance `dns-rebinding-protection`
/// scenario): `host`'s name, port ignored, is listed exactly (case-insensitive) or matches a
/// `*.example.com` entry. For a loopback listener call it as
/// `is_loopback_host(host) || host_allowed(host, extra)`.
pub(crate) fn host_allowed(host: &[u8], allowed: &[String]) -> bool {
    let Some(a) = Authority::parse_host(trim(host)) else {
        return false;
    };
    allowed.iter().any(|e| {
        let e = e.as_bytes();
        match e.strip_prefix(b"*") {
            Some(sfx) if sfx.first() == Some(&b'.') => {
                a.host.len() > sfx.len()
                    && a.host[a.host.len() - sfx.len()..].eq_ignore_ascii_case(sfx)
            }
            _ => e == b"*" || e.eq_ignore_ascii_case(a.host),
        }
    })
}

#[cfg(test)]
mod tests;
