//! `http://` and `https://` URLs as the config names upstreams and key sources: scheme, host
//! (IPv6 in brackets), port (default by scheme) and path; user info and fragment dropped.

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub path: String,
}

pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "{url:?}: only http:// and https:// URLs are supported"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: bad IPv6 host"))?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: empty host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port"))?,
        None if https => 443,
        None => 80,
    };
    let path = path.split('#').next().unwrap_or("/").to_owned();
    Ok(Url {
        https,
        host,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("https://login.example.com/realms/mcp/protocol/openid-connect/certs")
            .unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (
                true,
                "login.example.com",
                443,
                "/realms/mcp/protocol/openid-connect/certs"
            )
        );
        let u = parse_url("http://127.0.0.1:7080").unwrap();
        assert_eq!((u.port, u.path.as_str()), (7080, "/"));
        let u = parse_url("http://[::1]:81/x?y#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 81, "/x?y")
        );
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http://:80/").is_err());
    }
}
