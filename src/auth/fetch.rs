//! A small blocking HTTP/1.1 GET client for the control plane (JWKS and OpenID discovery
//! documents), over plain TCP or TLS (rustls with the Mozilla root set).
//!
//! Runs only on control-plane threads, never on a worker. Not here: caching or scheduling
//! (`auth::keys`), request-path HTTP (`server::proxy`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::net::url::parse_url;

/// Largest document accepted (a JWKS with dozens of RSA keys is far below this).
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Fetched {
    pub status: u16,
    pub body: Vec<u8>,
    /// Freshness from `Cache-Control: max-age` or `Expires`, if the server gave one.
    pub max_age: Option<Duration>,
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CFG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(cfg)
    })
    .clone()
}

/// GET `url` with an overall deadline. Redirects are not followed (an IdP's JWKS URL is exact).
#[allow(clippy::disallowed_methods)] // the key manager's thread, never a worker
pub(crate) fn get(url: &str, timeout: Duration) -> Result<Fetched, String> {
    let u = parse_url(url)?;
    let deadline = Instant::now() + timeout;
    let addr = (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", u.host))?
        .next()
        .ok_or_else(|| format!("cannot resolve {}", u.host))?;
    let sock =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_read_timeout(Some(timeout)).ok();
    sock.set_write_timeout(Some(timeout)).ok();
    let host_header = if (u.https && u.port == 443) || (!u.https && u.port == 80) {
        u.host.clone()
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\nUser-Agent: portcullis/{}\r\nConnection: close\r\n\r\n",
        u.path,
        env!("CARGO_PKG_VERSION")
    );
    let raw = if u.https {
        let name = rustls::pki_types::ServerName::try_from(u.host.clone())
            .map_err(|e| format!("bad TLS name {}: {e}", u.host))?;
        let conn = rustls::ClientConnection::new(tls_config(), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(req.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        read_all(&mut tls, deadline)?
    } else {
        let mut s = sock;
        s.write_all(req.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        read_all(&mut s, deadline)?
    };
    parse_response(&raw)
}

/// Reads until the response is complete (by its framing) or the peer closes.
fn read_all<R: Read>(r: &mut R, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(8192);
    let mut buf = [0u8; 8192];
    loop {
        if Instant::now() > deadline {
            return Err("timed out".into());
        }
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > MAX_BODY + 64 * 1024 {
                    return Err("response too large".into());
                }
                if is_complete(&out) {
                    return Ok(out);
                }
            }
            // A TLS peer that closes without close_notify still delivered everything we asked.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {
                return Ok(out)
            }
            // The socket's read timeout (the fetch timeout) expired: say so, not "resource
            // temporarily unavailable" (EAGAIN is how the kernel reports it).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "timed out waiting for the response ({} bytes received)",
                    out.len()
                ))
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Whether `raw` holds a whole response according to its Content-Length or chunked framing.
fn is_complete(raw: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = resp.parse(raw) else {
        return false;
    };
    let rest = &raw[head_len..];
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: usize = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(usize::MAX);
            return rest.len() >= n;
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return matches!(
                crate::http::h1::decode_all(rest, MAX_BODY as u64, &[]),
                (_, Ok(Some(_))) | (_, Err(_))
            );
        }
    }
    false
}

fn parse_response(raw: &[u8]) -> Result<Fetched, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("truncated response head".into()),
        Err(e) => return Err(format!("invalid response: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let mut chunked = false;
    let mut length = None;
    let mut max_age = None;
    let mut expires = None;
    for h in resp.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = v.parse::<usize>().ok();
        } else if h.name.eq_ignore_ascii_case("cache-control") {
            for d in v.split(',') {
                let d = d.trim();
                if let Some(n) = d
                    .strip_prefix("max-age=")
                    .or_else(|| d.strip_prefix("s-maxage="))
                {
                    if let Ok(s) = n.trim_matches('"').parse::<u64>() {
                        max_age = Some(Duration::from_secs(s));
                    }
                } else if d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store") {
                    max_age = Some(Duration::ZERO);
                }
            }
        } else if h.name.eq_ignore_ascii_case("expires") {
            expires = httpdate::parse_http_date(v).ok();
        }
    }
    if max_age.is_none() {
        if let Some(t) = expires {
            max_age = Some(
                t.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            );
        }
    }
    let rest = &raw[head_len..];
    let body = if chunked {
        match crate::http::h1::decode_all(rest, MAX_BODY as u64, &[]) {
            (body, Ok(Some(_))) => body,
            (_, Ok(None)) => return Err("truncated chunked body".into()),
            (_, Err(e)) => return Err(format!("bad chunked body: {e}")),
        }
    } else if let Some(n) = length {
        if rest.len() < n {
            return Err("truncated body".into());
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > MAX_BODY {
        return Err("document too large".into());
    }
    Ok(Fetched {
        status,
        body,
        max_age,
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// A server that accepts and never answers: the error says it timed out.
    #[test]
    fn a_hung_server_is_a_timeout() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", l.local_addr().unwrap());
        let hold = std::thread::spawn(move || {
            let c = l.accept();
            std::thread::sleep(Duration::from_millis(600));
            drop(c);
        });
        let e = get(&url, Duration::from_millis(200)).err().unwrap();
        hold.join().unwrap();
        assert!(e.contains("timed out"), "{e}");
    }

    #[test]
    fn responses_with_cache_headers() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nCache-Control: public, max-age=120\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.max_age),
            (200, &b"{}"[..], Some(Duration::from_secs(120)))
        );
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"{}");
        assert_eq!(r.max_age, None);
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.max_age, Some(Duration::ZERO));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
    }
}
