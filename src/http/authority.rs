//! An authority (`host[:port]`, RFC 3986 §3.2) split into host and port, as `Host` headers and
//! configured URLs carry it. One splitter for the routing, the forwarded head and the discovery
//! URLs.

/// Removes a `:port` suffix from a `Host` value. `[::1]:8080` → `[::1]` (brackets kept),
/// `example.com:443` → `example.com`, `example.com` unchanged. A colon not followed only by
/// digits (e.g. an unbracketed IPv6 literal) is left alone.
pub(crate) fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match memchr::memchr(b']', host) {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match memchr::memrchr(b':', host) {
        Some(colon)
            if host[colon + 1..].iter().all(u8::is_ascii_digit)
                && !host[..colon].contains(&b':') =>
        {
            &host[..colon]
        }
        _ => host,
    }
}

/// `host[:port]` → (host, port text). `[::1]:8080` → (`[::1]`, `8080`), `example.com` →
/// (`example.com`, none); a colon not followed only by digits belongs to the host.
pub(crate) fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    let host = std::str::from_utf8(strip_port(authority.as_bytes())).unwrap_or(authority);
    let rest = &authority[host.len()..];
    (host, rest.strip_prefix(':'))
}

#[cfg(test)]
mod tests {
    use super::{split_host_port, strip_port};

    #[test]
    fn authorities_split_at_the_port() {
        assert_eq!(
            split_host_port("example.com:443"),
            ("example.com", Some("443"))
        );
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }

    #[test]
    fn strip_port_forms() {
        assert_eq!(strip_port(b"[::1]:8080"), b"[::1]");
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
        assert_eq!(strip_port(b"example.com:443"), b"example.com");
        assert_eq!(strip_port(b"example.com"), b"example.com");
        assert_eq!(strip_port(b"example.com:"), b"example.com");
        assert_eq!(strip_port(b"::1"), b"::1");
        assert_eq!(strip_port(b""), b"");
    }
}
