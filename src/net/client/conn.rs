//! A connection to an upstream server (plain TCP or TLS with rustls and the Mozilla roots) and
//! opening one.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::authority::split_host_port;
use crate::net::addr::HostTarget;

/// Where to connect: the server's configured authority and address, and the name its TLS
/// certificate must carry (`None`: plain TCP). Connections are pooled per address and name.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub target: HostTarget,
    pub tls_name: Option<Rc<str>>,
}

impl Upstream {
    pub(crate) fn new(target: &HostTarget, https: bool) -> Upstream {
        Upstream {
            tls_name: https.then(|| tls_name(&target.authority)),
            target: target.clone(),
        }
    }
}

/// The name a server's certificate is checked against: the authority's host (an IPv6 literal
/// without its brackets).
pub(crate) fn tls_name(authority: &str) -> Rc<str> {
    let host = split_host_port(authority).0;
    Rc::from(host.trim_start_matches('[').trim_end_matches(']'))
}

/// Why no connection could be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Resolve(String),
    Refused(SocketAddr, std::io::Error),
    Timeout(SocketAddr),
    Tls(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Resolve(h) => write!(f, "cannot resolve {h}"),
            ConnectError::Refused(a, e) => write!(f, "connect to {a}: {e}"),
            ConnectError::Timeout(a) => write!(f, "connect to {a}: timed out"),
            ConnectError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

/// A connection to an upstream server, plain or TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
}

impl Conn {
    /// Writes all of `data`; hands the buffer back (for a retry, or to be reused).
    pub(crate) async fn write_all(&mut self, data: Vec<u8>) -> (std::io::Result<()>, Vec<u8>) {
        let (res, data) = match self {
            Conn::Plain(s) => s.write_all(data).await,
            Conn::Tls(s) => s.write_all(data).await,
        };
        (res.map(|_| ()), data)
    }

    /// Reads what is available into the spare capacity of `buf` (grown when nearly full).
    /// `Ok(0)`: the server closed the connection.
    pub(crate) async fn read_more(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        if buf.capacity() - buf.len() < 8192 {
            buf.reserve(16 * 1024);
        }
        let b = std::mem::take(buf);
        let (len, cap) = (b.len(), b.capacity());
        let (res, slice) = match self {
            Conn::Plain(s) => s.read(SliceMut::new(b, len, cap)).await,
            Conn::Tls(s) => s.read(SliceMut::new(b, len, cap)).await,
        };
        *buf = slice.into_inner();
        res
    }
}

/// A new connection to `addr`, with TLS to `tls_name` if given (the handshake has `timeout`
/// too).
pub(crate) async fn connect(
    addr: SocketAddr,
    tls_name: Option<&Rc<str>>,
    timeout: Duration,
) -> Result<Conn, ConnectError> {
    let tcp = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ConnectError::Refused(addr, e)),
        Err(_) => return Err(ConnectError::Timeout(addr)),
    };
    let _ = tcp.set_nodelay(true);
    let Some(name) = tls_name else {
        return Ok(Conn::Plain(tcp));
    };
    let server = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| ConnectError::Tls(format!("{name}: {e}")))?;
    let s = monoio::time::timeout(timeout, tls().connect(server, tcp))
        .await
        .map_err(|_| ConnectError::Tls(format!("{name}: handshake timed out")))?
        .map_err(|e| ConnectError::Tls(format!("{name}: {e}")))?;
    Ok(Conn::Tls(Box::new(s)))
}

fn tls() -> monoio_rustls::TlsConnector {
    static CFG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let cfg = CFG.get_or_init(|| {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    monoio_rustls::TlsConnector::from(cfg.clone())
}
