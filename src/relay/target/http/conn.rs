//! A connection to an HTTP MCP server (plain or TLS), the per-target pool of idle ones, and
//! reading the rest of an answer after the relay has what it needs (to reuse the connection).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::h1::{self, ChunkedDecoder};
use crate::net::addr::{HostAddr, HostTarget};

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the rest of an SSE answer may take once its response event has arrived. Servers
/// SHOULD end the stream then; one that keeps it open loses the connection (it is closed, not
/// pooled) instead of holding a socket and a task for as long as it likes.
pub(super) const FINAL_DRAIN: Duration = Duration::from_secs(1);

pub(super) type Pool = RefCell<Vec<(Conn, Vec<u8>, Instant)>>;

/// Puts a connection whose answer was read to the end back into `pool`, with its (empty) read
/// buffer; a buffer that grew for a large message is not kept for the next one.
pub(super) fn pool_put(pool: &Pool, conn: Conn, mut buf: Vec<u8>) {
    if buf.capacity() > 64 * 1024 {
        buf = Vec::with_capacity(16 * 1024);
    }
    pool.borrow_mut().push((conn, buf, Instant::now()));
}

/// What is left of an answer body when its response event has been handed on.
pub(super) enum Tail {
    Chunked(ChunkedDecoder),
    /// Bytes left of a `content-length` body.
    Length(usize),
}

/// Decodes the chunked body bytes in `input`, handing the data to `sink`; returns how many bytes
/// were used and whether the body ended.
pub(super) fn dechunk(
    dec: &mut ChunkedDecoder,
    input: &[u8],
    mut sink: impl FnMut(&[u8]),
) -> Result<(usize, bool), h1::H1Error> {
    let mut consumed = 0;
    while consumed < input.len() {
        let c = dec.decode(&input[consumed..])?;
        sink(c.data);
        consumed += c.consumed;
        if c.done {
            return Ok((consumed, true));
        }
        if c.consumed == 0 {
            break;
        }
    }
    Ok((consumed, false))
}

/// Reads what is left of an answer (discarding it) for at most [`FINAL_DRAIN`], then returns
/// the connection to `pool`, unless the target is gone or the server did not end the body in
/// time: then the connection is closed.
pub(super) async fn drain_tail(mut conn: Conn, mut buf: Vec<u8>, mut tail: Tail, pool: Rc<Pool>) {
    let deadline = monoio::time::Instant::now() + FINAL_DRAIN;
    loop {
        let (consumed, done) = match &mut tail {
            Tail::Chunked(dec) => match dechunk(dec, &buf, |_| {}) {
                Ok(r) => r,
                Err(_) => return,
            },
            Tail::Length(left) => {
                let n = (*left).min(buf.len());
                *left -= n;
                (n, *left == 0)
            }
        };
        buf.drain(..consumed);
        if done {
            // The target holds the other reference; without it nobody would take the connection.
            if buf.is_empty() && Rc::strong_count(&pool) > 1 {
                pool_put(&pool, conn, buf);
            }
            return;
        }
        match monoio::time::timeout_at(deadline, conn.read_more(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
}

impl Conn {
    pub(crate) async fn write_all(&mut self, data: Vec<u8>) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(data).await.0.map(|_| ()),
            Conn::Tls(s) => s.write_all(data).await.0.map(|_| ()),
        }
    }

    pub(crate) async fn read_more(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        if buf.capacity() - buf.len() < 8192 {
            buf.reserve(32 * 1024);
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

pub(super) fn tls() -> monoio_rustls::TlsConnector {
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

/// A new connection to `upstream`, with TLS when `https`.
pub(crate) async fn connect(upstream: &HostTarget, https: bool) -> Result<Conn, String> {
    let addr: SocketAddr = match &upstream.addr {
        HostAddr::Resolved(a) => *a,
        HostAddr::Name(h, p) => crate::net::dns::resolve(h, *p)
            .await
            .ok_or_else(|| format!("cannot resolve {h}"))?,
    };
    let tcp = match monoio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect_addr(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect to {addr}: {e}")),
        Err(_) => return Err(format!("connect to {addr}: timed out")),
    };
    let _ = tcp.set_nodelay(true);
    if !https {
        return Ok(Conn::Plain(tcp));
    }
    let host = upstream
        .authority
        .rsplit_once(':')
        .map_or(upstream.authority.as_str(), |(h, _)| h);
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let s = tls()
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS to {host}: {e}"))?;
    Ok(Conn::Tls(Box::new(s)))
}
