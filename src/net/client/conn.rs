//! A connection to an upstream server (plain TCP, or TLS with rustls: the Mozilla roots, or a
//! route's `backendTLS`) and opening one.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::authority::split_host_port;
use crate::net::addr::HostTarget;
use crate::net::client::tls::UpstreamTls;

/// Where to connect: the server's configured authority and address, the name its TLS
/// certificate must carry (`None`: plain TCP) and the route's `backendTLS` (`None`: the
/// Mozilla roots). Connections are pooled per address, name and TLS configuration.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub target: HostTarget,
    pub tls: Option<OwnedTls>,
}

/// [`Tls`] for a connection owner that outlives the snapshot borrow (a session's target).
#[derive(Debug, Clone)]
pub(crate) struct OwnedTls {
    name: Rc<str>,
    /// `None`: the Mozilla roots.
    client: Option<Arc<UpstreamTls>>,
}

impl OwnedTls {
    pub(crate) fn tls(&self) -> Tls<'_> {
        Tls {
            name: &self.name,
            client: self
                .client
                .as_deref()
                .unwrap_or_else(|| UpstreamTls::default_roots()),
        }
    }
}

impl Upstream {
    /// TLS when the target is `https` or the route has `backendTLS`.
    pub(crate) fn new(
        target: &HostTarget,
        https: bool,
        backend_tls: Option<&Arc<UpstreamTls>>,
    ) -> Upstream {
        let name = || match backend_tls.and_then(|t| t.hostname.as_deref()) {
            Some(h) => Rc::from(h),
            None => tls_name(&target.authority),
        };
        Upstream {
            tls: (https || backend_tls.is_some()).then(|| OwnedTls {
                name: name(),
                client: backend_tls.cloned(),
            }),
            target: target.clone(),
        }
    }

    pub(crate) fn tls(&self) -> Option<Tls<'_>> {
        self.tls.as_ref().map(OwnedTls::tls)
    }
}

/// TLS toward one upstream: the name its certificate is checked against (and sent as SNI) and
/// the client configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tls<'a> {
    pub name: &'a str,
    pub client: &'a UpstreamTls,
}

impl<'a> Tls<'a> {
    /// TLS to `target` with `backend_tls` (its `hostname`, else the target's host), or with the
    /// Mozilla roots when the target is `https` without one; `None`: plain TCP.
    pub(crate) fn to(
        authority: &'a str,
        https: bool,
        backend_tls: Option<&'a UpstreamTls>,
    ) -> Option<Tls<'a>> {
        if !https && backend_tls.is_none() {
            return None;
        }
        let host = split_host_port(authority).0;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let client = backend_tls.unwrap_or_else(|| UpstreamTls::default_roots());
        Some(Tls {
            name: client.hostname.as_deref().unwrap_or(host),
            client,
        })
    }

    /// What the pool keys this TLS by.
    pub(crate) fn key(self) -> (&'a str, u64) {
        (self.name, self.client.id)
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

/// A new connection to `addr`, with `tls` if given (the handshake has `timeout` too).
pub(crate) async fn connect(
    addr: SocketAddr,
    tls: Option<Tls<'_>>,
    timeout: Duration,
) -> Result<Conn, ConnectError> {
    let t0 = std::time::Instant::now();
    let tcp = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ConnectError::Refused(addr, e)),
        Err(_) => return Err(ConnectError::Timeout(addr)),
    };
    let _ = tcp.set_nodelay(true);
    let Some(Tls { name, client }) = tls else {
        crate::metrics::observe_connect(false, t0.elapsed());
        return Ok(Conn::Plain(tcp));
    };
    let server = rustls::pki_types::ServerName::try_from(name.to_owned())
        .map_err(|e| ConnectError::Tls(format!("{name}: {e}")))?;
    let connector = monoio_rustls::TlsConnector::from(client.config.clone());
    let s = monoio::time::timeout(timeout, connector.connect(server, tcp))
        .await
        .map_err(|_| ConnectError::Tls(format!("{name}: handshake timed out")))?
        .map_err(|e| ConnectError::Tls(format!("{name}: {e}")))?;
    crate::metrics::observe_connect(true, t0.elapsed());
    Ok(Conn::Tls(Box::new(s)))
}
