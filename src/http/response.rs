//! Responses the proxy writes itself, and the one place that maps errors to them.
//!
//! Owns: [`Prebuilt`] (a response rendered to bytes at config load: status line, fixed headers,
//! body) with the kinds of local answer the server writes (`json`, `no_content`, `empty_ok`,
//! `method_not_allowed`, `RATE_LIMITED`), and [`LocalError`] (every failure the proxy answers on
//! its own, with its status, body and whether the connection must close). A caller learns the
//! status it answered from [`Prebuilt::write`], never by repeating it. Not here: the MCP
//! authentication challenges (`auth::challenge`), MCP refusals (`relay::reject`), CORS decisions
//! (policy::cors) or any I/O.

use std::sync::LazyLock;

use crate::http::h1::{self, H1Error};

/// The status logs and metrics record for a request whose client went away before its answer
/// (nginx's 499); never written to a client.
pub(crate) const CLIENT_CLOSED: u16 = 499;

/// A response rendered once. At write time only `Date`, per-request headers (CORS, response
/// header modifiers) and `Connection: close` are added.
#[derive(Debug, Clone)]
pub struct Prebuilt {
    pub status: u16,
    /// Status line plus fixed headers (each ending in CRLF), without the blank line.
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Prebuilt {
    pub fn new(
        status: u16,
        content_type: Option<&str>,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Self {
        let mut head = Vec::with_capacity(128);
        h1::write_status_line(&mut head, status);
        if let Some(ct) = content_type {
            h1::write_header(&mut head, "content-type", ct.as_bytes());
        }
        for (n, v) in extra {
            h1::write_header(&mut head, n, v.as_bytes());
        }
        if !no_body_status(status) {
            let n = itoa_buf(body.len() as u64);
            h1::write_header(&mut head, "content-length", n.as_bytes());
        }
        Self { status, head, body }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self::new(status, Some("text/plain"), &[], body.as_bytes().to_vec())
    }

    /// A JSON document (discovery metadata) with `extra` headers.
    pub(crate) fn json(extra: &[(&str, &str)], body: Vec<u8>) -> Self {
        Self::new(200, Some("application/json"), extra, body)
    }

    /// An answer with nothing to say (a preflight): 204.
    pub(crate) fn no_content(extra: &[(&str, &str)]) -> Self {
        Self::new(204, None, extra, Vec::new())
    }

    /// A successful empty answer (agentgateway answers CORS preflights with 200).
    pub(crate) fn empty_ok() -> Self {
        Self::new(200, None, &[], Vec::new())
    }

    /// 405 with the methods that are allowed.
    pub(crate) fn method_not_allowed(allow: &str) -> Self {
        Self::new(
            405,
            Some("text/plain"),
            &[("allow", allow)],
            b"method not allowed".to_vec(),
        )
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Appends the whole response to `out`; returns its status (for logs and metrics). `extra`
    /// holds complete header lines (CRLF-terminated).
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        date: &[u8],
        extra: &[u8],
        close: bool,
        head_only: bool,
    ) -> u16 {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(extra);
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        self.status
    }
}

/// agentgateway's answer to a request over a `localRateLimit` (its headers are added per
/// request).
pub(crate) static RATE_LIMITED: LazyLock<Prebuilt> =
    LazyLock::new(|| Prebuilt::text(429, "rate limit exceeded"));

fn no_body_status(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Small stack buffer for formatting integers without allocating.
pub(crate) struct ItoaBuf {
    buf: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

pub(crate) fn itoa_buf(mut n: u64) -> ItoaBuf {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    ItoaBuf { buf, start: i }
}

/// CORS headers of discovery documents (protected-resource and AS metadata): any origin may
/// read them.
pub(crate) const DISCOVERY_CORS: [(&str, &str); 3] = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, HEAD, OPTIONS"),
    (
        "access-control-allow-headers",
        "content-type, mcp-protocol-version, authorization",
    ),
];

/// Every failure the proxy answers itself. The status, body and connection handling of each are
/// decided here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalError {
    /// The request head could not be accepted (syntax, limits, smuggling, HTTP/2 preface).
    Head(H1Error),
    /// The request body was malformed or too large.
    Body(H1Error),
    /// The head did not arrive within the header timeout.
    HeaderTimeout,
    RouteNotFound,
    /// A listener matched no route table for this host.
    NoListener,
    UpstreamConnect,
    UpstreamConnectTimeout,
    UpstreamTimeout,
    RequestTimeout,
    /// The upstream answered with something that is not HTTP/1.x.
    UpstreamProtocol,
    /// The upstream closed the connection before a complete response head.
    UpstreamClosed,
    /// The route has neither a backend nor a local response.
    NoBackend,
    /// The worker already buffers its maximum of request bodies (`config.mcp.maxBufferedBytes`).
    BodiesBuffered,
    /// A request on the peer listener without a valid `portcullis-peer` signature.
    PeerRefused,
    /// The replica that owns the request's MCP session cannot be reached: the session is gone
    /// (404, so that the client starts a new one).
    SessionGone,
}

impl LocalError {
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::Head(e) | Self::Body(e) => e.status(),
            Self::HeaderTimeout => 408,
            Self::RouteNotFound | Self::NoListener => 404,
            Self::UpstreamConnect | Self::UpstreamProtocol | Self::UpstreamClosed => 502,
            Self::UpstreamConnectTimeout | Self::UpstreamTimeout | Self::RequestTimeout => 504,
            Self::NoBackend | Self::BodiesBuffered => 503,
            Self::PeerRefused => 403,
            Self::SessionGone => 404,
        }
    }

    pub(crate) fn body(self) -> &'static str {
        match self {
            Self::Head(e) | Self::Body(e) => e.reason(),
            Self::HeaderTimeout => "request head not received within the header timeout",
            Self::RouteNotFound | Self::NoListener => "route not found",
            Self::UpstreamConnect => "upstream connect error: connection failed",
            Self::UpstreamConnectTimeout => "upstream connect timeout",
            Self::UpstreamTimeout => "upstream request timeout: no response head in time",
            Self::RequestTimeout => "request timeout",
            Self::UpstreamProtocol => "upstream sent an invalid HTTP/1.1 response",
            Self::UpstreamClosed => "upstream closed the connection before responding",
            Self::NoBackend => "route has no backend",
            Self::BodiesBuffered => {
                "the proxy buffers its maximum of request bodies (config.mcp.maxBufferedBytes); retry later"
            }
            Self::PeerRefused => "peer request refused: no valid portcullis-peer signature",
            Self::SessionGone => "session not found (the replica that held it is gone)",
        }
    }

    /// Whether the connection must close after this answer (its byte stream can no longer be
    /// trusted, or the peer is too slow).
    pub(crate) fn must_close(self) -> bool {
        match self {
            Self::Head(e) | Self::Body(e) => e.must_close(),
            Self::HeaderTimeout | Self::PeerRefused => true,
            _ => false,
        }
    }

    /// The response for this error, rendered once per process for the fixed cases.
    pub(crate) fn prebuilt(self) -> Prebuilt {
        match self {
            Self::RouteNotFound | Self::NoListener => ROUTE_NOT_FOUND.clone(),
            Self::BodiesBuffered => Prebuilt::new(
                503,
                Some("text/plain"),
                &[("retry-after", "1")],
                self.body().as_bytes().to_vec(),
            ),
            Self::SessionGone => SESSION_GONE.clone(),
            other => Prebuilt::text(other.status(), other.body()),
        }
    }
}

/// MCP's answer for a session that no longer exists (JSON-RPC -32001, as `relay::reject`
/// renders a session unknown to its owner).
static SESSION_GONE: LazyLock<Prebuilt> = LazyLock::new(|| {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32001,"message":"{}"}}}}"#,
        LocalError::SessionGone.body()
    );
    Prebuilt::new(404, Some("application/json"), &[], body.into_bytes())
});

/// The most common local answer (scanners, typos), kept ready.
pub(crate) static ROUTE_NOT_FOUND: LazyLock<Prebuilt> =
    LazyLock::new(|| Prebuilt::text(404, "route not found"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prebuilt_renders_head_date_extra_and_body() {
        let p = Prebuilt::text(404, "route not found");
        let mut out = Vec::new();
        p.write(
            &mut out,
            b"Mon, 30 Nov 2026 16:00:00 GMT",
            b"x-a: 1\r\n",
            true,
            false,
        );
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
        assert!(s.contains("content-length: 15\r\n"));
        assert!(s.contains("date: Mon, 30 Nov 2026 16:00:00 GMT\r\nx-a: 1\r\nconnection: close\r\n\r\nroute not found"));
        let mut head_only = Vec::new();
        p.write(&mut head_only, b"d", b"", false, true);
        assert!(head_only.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn itoa() {
        assert_eq!(itoa_buf(0).as_bytes(), b"0");
        assert_eq!(itoa_buf(1234567).as_bytes(), b"1234567");
        assert_eq!(
            itoa_buf(u64::MAX).as_bytes(),
            u64::MAX.to_string().as_bytes()
        );
    }
}
