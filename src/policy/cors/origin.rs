//! CORS origin patterns: `scheme://host[:port]` with default-port normalisation
//! (`http` → 80, `https` → 443) and `*` globs in the host (`https://*.example.com`).
//!
//! Owns: parsing configured patterns (allocates, at compile time) and matching request
//! `Origin` bytes against them (no allocation). Does not: handle the `*` allow-all entry
//! (see `cors`) or accept schemes other than http/https (`null` origins never match a pattern).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// A parsed configured origin; `host` is lowercase and may contain `*` globs.
#[derive(Debug, Clone)]
pub(crate) struct OriginPattern {
    scheme: Scheme,
    host: String,
    port: u16,
}

/// Borrowed parts of `scheme://host[:port]`.
struct Parts<'a> {
    scheme: Scheme,
    host: &'a [u8],
    port: u16,
}

fn parse(value: &[u8]) -> Option<Parts<'_>> {
    let sep = memchr::memmem::find(value, b"://")?;
    let (scheme, rest) = (&value[..sep], &value[sep + 3..]);
    let scheme = if scheme.eq_ignore_ascii_case(b"http") {
        Scheme::Http
    } else if scheme.eq_ignore_ascii_case(b"https") {
        Scheme::Https
    } else {
        return None;
    };
    if rest.is_empty() || rest.iter().any(|b| matches!(b, b'/' | b'?' | b'#')) {
        return None;
    }
    let default_port = match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    // Bracketed IPv6 hosts keep their brackets; the port, if any, follows `]:`.
    let split = if rest.first() == Some(&b'[') {
        let close = memchr::memchr(b']', rest)?;
        match &rest[close + 1..] {
            [] => None,
            [b':', ..] => Some(close + 1),
            _ => return None,
        }
    } else {
        memchr::memrchr(b':', rest)
    };
    let (host, port) = match split {
        Some(colon) => {
            let (host, port) = (&rest[..colon], &rest[colon + 1..]);
            if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let port = std::str::from_utf8(port).ok()?.parse::<u16>().ok()?;
            (host, port)
        }
        None => (rest, default_port),
    };
    if host.is_empty() || port == 0 || (host[0] != b'[' && host.contains(&b':')) {
        return None;
    }
    Some(Parts { scheme, host, port })
}

impl OriginPattern {
    /// Parses a configured origin such as `https://app.example.com:8443` or
    /// `https://*.example.com`.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let p = parse(value.as_bytes())?;
        Some(OriginPattern {
            scheme: p.scheme,
            host: std::str::from_utf8(p.host).ok()?.to_ascii_lowercase(),
            port: p.port,
        })
    }

    /// Matches a request `Origin` value; host compare is ASCII case-insensitive.
    pub(crate) fn matches(&self, origin: &[u8]) -> bool {
        let Some(o) = parse(origin) else {
            return false;
        };
        if o.host.contains(&b'*') {
            return false;
        }
        o.scheme == self.scheme && o.port == self.port && glob(self.host.as_bytes(), o.host)
    }
}

/// `*` matches any run of bytes (including dots), like agentgateway's host wildcard.
/// `pattern` is lowercase; `value` is compared case-insensitively. Iterative, no recursion.
fn glob(pattern: &[u8], value: &[u8]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, v));
            p += 1;
        } else if p < pattern.len() && pattern[p] == value[v].to_ascii_lowercase() {
            p += 1;
            v += 1;
        } else if let Some((sp, sv)) = star {
            p = sp + 1;
            v = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}
