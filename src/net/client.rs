//! The upstream HTTP/1.1 client of the workers, used by `host` backends (`server::proxy`) and by
//! the MCP HTTP and SSE targets (`relay::target`): connecting (name resolution off the worker,
//! a connect timeout, TLS with rustls), the worker's keep-alive pool, the one rule for sending a
//! request again after a reused connection failed, reading a response head with the h1 codec
//! (interim 1xx answers skipped), and de-chunking.
//!
//! Each caller writes its own request and reads its own body: the proxy streams both ways, the
//! relay reads SSE events. Not here: the control plane's fetches (`auth::fetch`, blocking, off
//! the workers).

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use crate::http::h1::{self, ChunkedDecoder, RespBody, MAX_HEADERS};
use crate::net::addr::HostAddr;
use crate::net::pool;

pub(crate) mod conn;
pub(crate) mod tls;

pub(crate) use conn::{connect, Conn, ConnectError, OwnedTls, Tls, Upstream};

/// Where a target may be reached: its one address (an IP literal), or every address its name
/// resolves to, tried in order.
pub(crate) enum Candidates<'a> {
    One(SocketAddr),
    Name {
        host: &'a str,
        ips: Rc<[IpAddr]>,
        port: u16,
    },
}

impl Candidates<'_> {
    fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let (one, many) = match self {
            Candidates::One(a) => (Some(*a), None),
            Candidates::Name { ips, port, .. } => (None, Some((ips, *port))),
        };
        one.into_iter().chain(
            many.into_iter()
                .flat_map(|(ips, port)| ips.iter().map(move |ip| SocketAddr::new(*ip, port))),
        )
    }

    fn len(&self) -> usize {
        match self {
            Candidates::One(_) => 1,
            Candidates::Name { ips, .. } => ips.len(),
        }
    }
}

/// The addresses to connect to: the configured one, or the name's from the worker's DNS cache
/// (ordered for `family`).
pub(crate) async fn resolve<'a>(
    addr: &'a HostAddr,
    settings: &crate::snapshot::UpstreamSettings,
) -> Result<Candidates<'a>, ConnectError> {
    match addr {
        HostAddr::Resolved(a) => Ok(Candidates::One(*a)),
        HostAddr::Name(host, port) => {
            let (family, every) = (settings.lookup_family, settings.dns_refresh);
            let ips = crate::net::dns::resolve(host, family, every).await;
            if ips.is_empty() {
                return Err(ConnectError::Resolve(host.clone()));
            }
            Ok(Candidates::Name {
                host,
                ips,
                port: *port,
            })
        }
    }
}

/// A connection ready for a request: from the pool (with how long it sat idle there) or new.
pub(crate) struct Checkout {
    pub conn: Conn,
    /// The pooled connection's read buffer (empty; an empty `Vec` for a new connection).
    pub buf: Vec<u8>,
    pub reused_after: Option<Duration>,
}

/// The most recently used idle connection to one of `to` (with `tls`, or plain) younger than
/// `max_idle`, or a new one ([`connect_any`]); and the address it goes to.
pub(crate) async fn checkout(
    to: &Candidates<'_>,
    tls: Option<Tls<'_>>,
    max_idle: Duration,
    connect_timeout: Duration,
) -> Result<(SocketAddr, Checkout), ConnectError> {
    for addr in to.addrs() {
        if let Some((conn, buf, idle)) = pool::take(addr, tls.map(|t| t.key()), max_idle) {
            let c = Checkout {
                conn,
                buf,
                reused_after: Some(idle),
            };
            return Ok((addr, c));
        }
    }
    // Boxed: a connection attempt's state (a TLS handshake's, ~3 KB) would otherwise be part
    // of every checkout's future, copied whole wherever a request's future moves, although a
    // pooled connection (the common case) never runs it.
    let (addr, conn) = Box::pin(connect_any(to, tls, connect_timeout)).await?;
    let c = Checkout {
        conn,
        buf: Vec::new(),
        reused_after: None,
    };
    Ok((addr, c))
}

/// A new connection to the first of `to` that takes one, within `connect_timeout` in all (each
/// address gets an equal share of what is left). A TLS failure ends the search (the server was
/// reached). When a name's every address failed, the worker looks the name up again next time.
pub(crate) async fn connect_any(
    to: &Candidates<'_>,
    tls: Option<Tls<'_>>,
    connect_timeout: Duration,
) -> Result<(SocketAddr, Conn), ConnectError> {
    let deadline = std::time::Instant::now() + connect_timeout;
    let n = to.len();
    let mut last = None;
    for (i, addr) in to.addrs().enumerate() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let share = if i + 1 == n {
            left
        } else {
            left / (n - i) as u32
        };
        match connect(addr, tls, share).await {
            Ok(conn) => return Ok((addr, conn)),
            Err(e @ ConnectError::Tls(_)) => return Err(e),
            Err(e) => {
                if i + 1 < n {
                    tracing::debug!(upstream = %addr, error = %e, "connect failed; trying the next address");
                }
                last = Some(e);
            }
        }
    }
    if let Candidates::Name { host, .. } = to {
        crate::net::dns::forget(host);
    }
    Err(last.unwrap_or(ConnectError::Timeout(SocketAddr::from(([0, 0, 0, 0], 0)))))
}

/// A new connection to `addr` as a [`Checkout`] (not reused): what a request that failed on a
/// reused connection is sent again on.
pub(crate) async fn fresh(
    addr: SocketAddr,
    tls: Option<Tls<'_>>,
    connect_timeout: Duration,
) -> Result<Checkout, ConnectError> {
    Ok(Checkout {
        // Boxed, as in `checkout`: callers keep it in their futures for a rare path.
        conn: Box::pin(connect(addr, tls, connect_timeout)).await?,
        buf: Vec::new(),
        reused_after: None,
    })
}

/// Returns a connection whose last answer was read to its end to the worker's pool, with its
/// (empty) read buffer; at most `max` idle connections are kept per address.
pub(crate) fn release(
    addr: SocketAddr,
    tls: Option<Tls<'_>>,
    conn: Conn,
    mut buf: Vec<u8>,
    max: usize,
) {
    debug_assert!(buf.is_empty());
    buf.clear();
    // A buffer that grew for one large message is not kept for the next.
    if buf.capacity() > 64 * 1024 {
        buf = Vec::new();
    }
    pool::put(
        addr,
        tls.map(|t| (Rc::from(t.name), t.client.id)),
        conn,
        buf,
        max,
    );
}

/// A pooled connection idle this long that fails before answering was closed while idle (by
/// the server's keep-alive timeout, not a crash): the request may be sent again.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(1);

/// Where a request on a reused connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// Writing the request failed: the server cannot have seen it.
    Write,
    /// The connection closed before any byte of an answer.
    BeforeAnswer,
}

/// Whether a request that failed on a connection is sent once more on a fresh one.
///
/// Servers close idle keep-alive connections (uvicorn and Node after 5 s), and a request
/// written into such a connection fails before any answer byte. It is sent again only when
/// the connection was reused (`reused_after`), nothing would be lost (`replayable`: the whole
/// request is still at hand) and nothing can run twice: the write itself failed, or no answer
/// byte came back and the request is idempotent or the connection had been idle for
/// [`STALE_AFTER`] (an idle close, not a server that died while handling it).
pub(crate) fn may_resend(
    reused_after: Option<Duration>,
    failed: Failed,
    replayable: bool,
    idempotent: bool,
) -> bool {
    replayable
        && reused_after
            .is_some_and(|idle| failed == Failed::Write || idempotent || idle >= STALE_AFTER)
}

/// The final (non-1xx) response head, as the h1 codec parsed it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub status: u16,
    pub head_len: usize,
    pub body: RespBody,
    pub keep_alive: bool,
}

/// Why no response head was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The connection closed (or failed) first; `buf` says whether any byte came.
    Closed,
    /// Not an HTTP/1 response, a head over the limits, or a 101 that was never asked for.
    Invalid,
}

/// Reads the final response head into `buf` (interim 1xx heads are dropped from it), then
/// hands its fields to `inspect` while they are borrowed from `buf`. The head stays in `buf`:
/// its body starts at `Head::head_len`.
pub(crate) async fn read_head<T>(
    conn: &mut Conn,
    buf: &mut Vec<u8>,
    head_request: bool,
    inspect: impl FnOnce(&Head, &[httparse::Header<'_>]) -> T,
) -> Result<(Head, T), HeadError> {
    loop {
        {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
            match h1::parse_response(buf, &mut headers, head_request) {
                Ok(Some((h, hdrs))) => {
                    // Nobody asks an upstream to switch protocols (`Upgrade` is hop-by-hop).
                    if h.status == 101 {
                        return Err(HeadError::Invalid);
                    }
                    if (100..200).contains(&h.status) {
                        let n = h.head_len;
                        buf.drain(..n);
                        continue;
                    }
                    let head = Head {
                        status: h.status,
                        head_len: h.head_len,
                        body: h.body,
                        keep_alive: h.keep_alive,
                    };
                    let t = inspect(&head, hdrs);
                    return Ok((head, t));
                }
                Ok(None) => {}
                Err(_) => return Err(HeadError::Invalid),
            }
        }
        match conn.read_more(buf).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(_) => {}
        }
    }
}

/// Decodes the chunked body bytes in `input`, handing the data to `sink`; returns how many bytes
/// were used and whether the body ended.
pub(crate) fn dechunk(
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

/// Reads a whole (small) response body after its head, de-chunked, up to `max` bytes. `buf`
/// holds what was read past the head. `Ok((body, reusable))`: whether the connection ended the
/// answer at a message boundary and may go back to the pool.
pub(crate) async fn read_body(
    conn: &mut Conn,
    buf: &mut Vec<u8>,
    kind: RespBody,
    max: usize,
) -> Result<(Vec<u8>, bool), String> {
    let mut body = Vec::new();
    let mut dec = ChunkedDecoder::new(max as u64);
    loop {
        let done = match kind {
            RespBody::None => true,
            RespBody::Length(n) => {
                let take = (n.saturating_sub(body.len() as u64) as usize).min(buf.len());
                body.extend_from_slice(&buf[..take]);
                buf.drain(..take);
                body.len() as u64 >= n
            }
            RespBody::Chunked => {
                let (used, end) = dechunk(&mut dec, buf, |d| body.extend_from_slice(d))
                    .map_err(|e| e.to_string())?;
                buf.drain(..used);
                end
            }
            RespBody::UntilClose => {
                body.extend_from_slice(buf);
                buf.clear();
                false
            }
        };
        if body.len() > max {
            return Err(format!("an answer over {max} bytes"));
        }
        if done {
            return Ok((
                body,
                buf.is_empty() && !matches!(kind, RespBody::UntilClose),
            ));
        }
        match conn.read_more(buf).await {
            Ok(0) if matches!(kind, RespBody::UntilClose) => return Ok((body, false)),
            Ok(0) | Err(_) => return Err("the connection closed inside the answer".into()),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resend_only_what_cannot_run_twice() {
        let idle = |ms| Some(Duration::from_millis(ms));
        // A fresh connection is never retried.
        assert!(!may_resend(None, Failed::Write, true, true));
        // A failed write on a reused connection: the server never saw the request.
        assert!(may_resend(idle(5), Failed::Write, true, false));
        // Nothing to send again.
        assert!(!may_resend(idle(5000), Failed::Write, false, true));
        // No answer byte: only idempotent requests, or after an idle-close-sized pause.
        assert!(may_resend(idle(5), Failed::BeforeAnswer, true, true));
        assert!(!may_resend(idle(5), Failed::BeforeAnswer, true, false));
        assert!(may_resend(idle(1500), Failed::BeforeAnswer, true, false));
    }
}
