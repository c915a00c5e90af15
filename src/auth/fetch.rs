//! The control plane's HTTP client (GET of JWKS and OpenID discovery documents, POST of trace
//! exports), with `ureq`: a well-kept
//! blocking client (rustls with ring and the Mozilla roots, as the workers use) that brings
//! what a hand-written one lacked: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment
//! (an IdP behind a corporate proxy), and HTTP/1.1 framing, chunked bodies and timeouts handled
//! by a client that many projects exercise.
//!
//! Runs only on control-plane threads, never on a worker (it blocks, and resolves names with the
//! system resolver). Not here: caching or scheduling (`auth::keys`), request-path HTTP
//! (`net::client`).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Largest document accepted (a JWKS with dozens of RSA keys is far below this).
const MAX_BODY: u64 = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Fetched {
    pub status: u16,
    pub body: Vec<u8>,
    /// Freshness from `Cache-Control: max-age` or `Expires`, if the server gave one.
    pub max_age: Option<Duration>,
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            // Statuses are the caller's to judge (a 404 JWKS is reported as such).
            .http_status_as_error(false)
            // An IdP's JWKS URL is exact: a redirect is answered as what it is, not followed.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config())
            .build()
            .into()
    })
}

/// Mozilla's roots, or with `PORTCULLIS_SYSTEM_ROOTS=1` the system's store (on Linux
/// distributions it holds Mozilla's set too, plus what the operator installed).
fn tls_config() -> ureq::tls::TlsConfig {
    let system = crate::net::client::tls::system_roots();
    let roots = if system.is_empty() {
        ureq::tls::RootCerts::WebPki
    } else {
        let certs: Vec<ureq::tls::Certificate<'static>> = system
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        ureq::tls::RootCerts::new_with_certs(&certs)
    };
    ureq::tls::TlsConfig::builder().root_certs(roots).build()
}

/// GET `url` with an overall deadline.
pub(crate) fn get(url: &str, timeout: Duration) -> Result<Fetched, String> {
    let resp = agent()
        .get(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("accept", "application/json")
        .call()
        .map_err(|e| describe(&e))?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let max_age = freshness(&header("cache-control"), &header("expires"));
    let body = resp
        .into_body()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => "document too large".to_owned(),
            e => describe(&e),
        })?;
    Ok(Fetched {
        status,
        body,
        max_age,
    })
}

/// POST `body` (of `content_type`, with `headers`) to `url` with an overall deadline; the status.
/// (The tracing exporter's: OTLP over HTTP.)
pub(crate) fn post(
    url: &str,
    content_type: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<u16, String> {
    let mut req = agent()
        .post(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send(body).map_err(|e| describe(&e))?;
    Ok(resp.status().as_u16())
}

/// An error as the key manager's log line and `/ready` show it.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "cannot resolve the host".to_owned(),
        e => e.to_string(),
    }
}

/// How long a document stays fresh: `Cache-Control` `max-age`/`s-maxage` (`no-cache`,
/// `no-store`: not at all), else `Expires`; `None` when the server said nothing.
fn freshness(cache_control: &str, expires: &str) -> Option<Duration> {
    let mut max_age = None;
    for d in cache_control.split(',') {
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
    max_age.or_else(|| {
        let t = httpdate::parse_http_date(expires.trim()).ok()?;
        Some(
            t.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

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

    /// Serves `answer` to one request on a local port; returns the URL.
    fn serve_once(answer: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", l.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            c.write_all(answer).unwrap();
            String::from_utf8_lossy(&req).into_owned()
        });
        (url, t)
    }

    #[test]
    fn documents_with_cache_headers_chunked_and_redirects() {
        let (url, t) = serve_once(
            b"HTTP/1.1 200 OK\r\nCache-Control: public, max-age=120\r\nContent-Length: 2\r\n\r\n{}",
        );
        let r = get(&url, Duration::from_secs(5)).unwrap();
        let req = t.join().unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.max_age),
            (200, &b"{}"[..], Some(Duration::from_secs(120)))
        );
        assert!(
            req.to_ascii_lowercase()
                .contains("accept: application/json"),
            "{req}"
        );
        let (url, t) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        );
        let r = get(&url, Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert_eq!((r.body.as_slice(), r.max_age), (&b"{}"[..], None));
        // A redirect is not followed: the caller sees it.
        let (url, t) = serve_once(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(get(&url, Duration::from_secs(5)).unwrap().status, 302);
        t.join().unwrap();
        // A body shorter than its length is an error, not a document.
        let (url, t) =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{}");
        assert!(get(&url, Duration::from_secs(5)).is_err());
        t.join().unwrap();
    }

    #[test]
    fn freshness_from_cache_control_then_expires() {
        let s = Duration::from_secs;
        assert_eq!(freshness("public, max-age=120", ""), Some(s(120)));
        assert_eq!(freshness("s-maxage=\"60\"", ""), Some(s(60)));
        assert_eq!(freshness("no-store", ""), Some(Duration::ZERO));
        assert_eq!(freshness("", ""), None);
        assert_eq!(
            freshness("", "Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + s(3600));
        assert!(freshness("", &later).is_some_and(|d| d > s(3500)));
        assert_eq!(freshness("max-age=5", &later), Some(s(5)));
    }
}
