//! Streamable-HTTP MCP servers (and the POST half of legacy SSE servers): one client per session
//! and target, with its own keep-alive connections, the upstream's own `Mcp-Session-Id`, and SSE
//! answers parsed event by event so each message is relayed as it arrives.
//!
//! The client's token never goes upstream unless the route sets `backendAuth: passthrough`.
//! An upstream 404 on its session ends ours with a clear error (the client then re-initializes).
//! Not here: downstream HTTP (`server::mcp`), routing between targets (`relay::call`).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::h1::{self, ChunkedDecoder, RespBody};
use crate::mcp::jsonrpc::{self, Kind};
use crate::mcp::sse::SseParser;
use crate::net::addr::{HostAddr, HostTarget};
use crate::net::pool::STALE_AFTER;
use crate::relay::target::shared_stream::TargetMsg;
use crate::relay::MAX_MESSAGE;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the rest of an SSE answer may take once its response event has arrived. Servers
/// SHOULD end the stream then; one that keeps it open loses the connection (it is closed, not
/// pooled) instead of holding a socket and a task for as long as it likes.
const FINAL_DRAIN: Duration = Duration::from_secs(1);

type Pool = RefCell<Vec<(Conn, Vec<u8>, Instant)>>;

/// Puts a connection whose answer was read to the end back into `pool`, with its (empty) read
/// buffer; a buffer that grew for a large message is not kept for the next one.
fn pool_put(pool: &Pool, conn: Conn, mut buf: Vec<u8>) {
    if buf.capacity() > 64 * 1024 {
        buf = Vec::with_capacity(16 * 1024);
    }
    pool.borrow_mut().push((conn, buf, Instant::now()));
}

/// What is left of an answer body when its response event has been handed on.
enum Tail {
    Chunked(ChunkedDecoder),
    /// Bytes left of a `content-length` body.
    Length(usize),
}

/// Decodes the chunked body bytes in `input`, handing the data to `sink`; returns how many bytes
/// were used and whether the body ended.
fn dechunk(
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
async fn drain_tail(mut conn: Conn, mut buf: Vec<u8>, mut tail: Tail, pool: Rc<Pool>) {
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

/// One streamable-HTTP target of one session.
pub(crate) struct HttpTarget {
    pub target: String,
    upstream: HostTarget,
    path: String,
    https: bool,
    /// The upstream's own session id, learned from its initialize answer.
    session: RefCell<Option<String>>,
    pub version: Cell<&'static str>,
    /// Keep-alive connections, each with its (empty) read buffer, reused by the next request
    /// (shared with the tasks that finish reading answers, see [`drain_tail`]).
    idle: Rc<Pool>,
    authorization: Option<String>,
    alive: Cell<bool>,
    /// Bumped whenever `session` changes.
    session_gen: Cell<u64>,
    /// The POST head up to its `content-length`, with the version and session generation it was
    /// built for: rebuilt only when either changes.
    post_head: RefCell<(Vec<u8>, &'static str, u64)>,
}

impl HttpTarget {
    pub(crate) fn new(
        target: &str,
        upstream: &HostTarget,
        path: &str,
        https: bool,
        authorization: Option<String>,
    ) -> Rc<HttpTarget> {
        Rc::new(HttpTarget {
            target: target.to_owned(),
            upstream: upstream.clone(),
            path: path.to_owned(),
            https,
            session: RefCell::new(None),
            version: Cell::new("2025-06-18"),
            idle: Rc::new(RefCell::new(Vec::new())),
            authorization,
            alive: Cell::new(true),
            session_gen: Cell::new(0),
            post_head: RefCell::new((Vec::new(), "", 0)),
        })
    }

    pub(crate) fn alive(&self) -> bool {
        self.alive.get()
    }

    /// A pooled connection (with its read buffer and how long it was idle) or a new one.
    async fn connect(&self) -> Result<(Conn, Vec<u8>, Option<Duration>), String> {
        if let Some((c, buf, since)) = self.idle.borrow_mut().pop() {
            return Ok((c, buf, Some(since.elapsed())));
        }
        let c = connect(&self.upstream, self.https).await?;
        Ok((c, Vec::with_capacity(16 * 1024), None))
    }

    fn head(&self, method: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut h = Vec::with_capacity(512);
        h.extend_from_slice(method.as_bytes());
        h.push(b' ');
        h.extend_from_slice(self.path.as_bytes());
        h.extend_from_slice(b" HTTP/1.1\r\n");
        h1::write_header(&mut h, "host", self.upstream.authority.as_bytes());
        h1::write_header(&mut h, "accept", b"application/json, text/event-stream");
        h1::write_header(
            &mut h,
            "mcp-protocol-version",
            self.version.get().as_bytes(),
        );
        if let Some(s) = self.session.borrow().as_deref() {
            h1::write_header(&mut h, "mcp-session-id", s.as_bytes());
        }
        if let Some(a) = &self.authorization {
            h1::write_header(&mut h, "authorization", a.as_bytes());
        }
        for (n, v) in extra {
            h1::write_header(&mut h, n, v.as_bytes());
        }
        h.extend_from_slice(b"\r\n");
        h
    }

    /// The whole POST of `msg`: head (from the cached prefix) and body, for one write.
    fn post_message(&self, msg: &[u8]) -> Vec<u8> {
        let mut cached = self.post_head.borrow_mut();
        let (version, generation) = (self.version.get(), self.session_gen.get());
        if cached.0.is_empty() || cached.1 != version || cached.2 != generation {
            let mut h = self.head("POST", &[("content-type", "application/json")]);
            h.truncate(h.len() - 2); // the blank line
            *cached = (h, version, generation);
        }
        let mut out = Vec::with_capacity(cached.0.len() + 48 + msg.len());
        out.extend_from_slice(&cached.0);
        h1::write_header(
            &mut out,
            "content-length",
            crate::http::response::itoa_buf(msg.len() as u64).as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(msg);
        out
    }

    /// POSTs a request; events and the response arrive on the receiver as they come.
    pub(crate) fn request(self: &Rc<Self>, id: &str, msg: Vec<u8>) -> UnboundedReceiver<TargetMsg> {
        let (tx, rx) = unbounded();
        let me = self.clone();
        let id = id.to_owned();
        monoio::spawn(async move { me.request_into(&id, msg, tx).await });
        rx
    }

    /// [`Self::request`] without a task of its own: the caller polls this future next to the
    /// one that reads `tx`'s receiver (the single-target hot path).
    pub(crate) async fn request_into(
        &self,
        id: &str,
        msg: Vec<u8>,
        tx: UnboundedSender<TargetMsg>,
    ) {
        if let Err(e) = self.post(msg, Some(id), &tx).await {
            let _ = tx.unbounded_send(TargetMsg::Failed(e));
        }
    }

    /// POSTs a notification or response; the upstream answers 202.
    pub(crate) async fn send(self: &Rc<Self>, msg: Vec<u8>) -> Result<(), String> {
        let (tx, _rx) = unbounded();
        self.post(msg, None, &tx).await
    }

    /// Ends the upstream session (DELETE), best effort.
    pub(crate) async fn terminate(&self) {
        self.alive.set(false);
        if self.session.borrow().is_none() {
            return;
        }
        if let Ok((mut c, _, _)) = self.connect().await {
            let head = self.head("DELETE", &[("content-length", "0")]);
            if c.write_all(head).await.is_ok() {
                let mut buf = Vec::new();
                let _ = monoio::time::timeout(Duration::from_secs(2), c.read_more(&mut buf)).await;
            }
        }
        self.idle.borrow_mut().clear();
    }

    /// Reads an answer head (skipping 1xx), learning the upstream's session id. `Err(None)`: the
    /// connection closed first; `Err(Some(_))`: the answer is not HTTP.
    async fn read_head(
        &self,
        conn: &mut Conn,
        buf: &mut Vec<u8>,
    ) -> Result<(u16, RespBody, bool, usize, bool), Option<String>> {
        loop {
            {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                match h1::parse_response(buf, &mut headers, false) {
                    Ok(Some((h, hdrs))) => {
                        if (100..200).contains(&h.status) {
                            let n = h.head_len;
                            buf.drain(..n);
                            continue;
                        }
                        if let Some(sid) = h1::find_header(hdrs, "mcp-session-id") {
                            let mut cur = self.session.borrow_mut();
                            if cur.as_deref().map(str::as_bytes) != Some(sid) {
                                *cur = Some(String::from_utf8_lossy(sid).into_owned());
                                self.session_gen.set(self.session_gen.get() + 1);
                            }
                        }
                        let sse = h1::find_header(hdrs, "content-type")
                            .is_some_and(|c| c.starts_with(b"text/event-stream"));
                        return Ok((h.status, h.body, sse, h.head_len, h.keep_alive));
                    }
                    Ok(None) => {}
                    Err(_) => {
                        return Err(Some(format!(
                            "{} sent an invalid HTTP response",
                            self.target
                        )))
                    }
                }
            }
            match conn.read_more(buf).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(_) => {}
            }
        }
    }

    async fn post(
        &self,
        msg: Vec<u8>,
        id: Option<&str>,
        tx: &UnboundedSender<TargetMsg>,
    ) -> Result<(), String> {
        // A reused connection the upstream closed while idle (uvicorn does after 5 s) fails at
        // the write, or before any answer byte: the message goes once more on a fresh
        // connection — after a read failure only when the connection had been idle for
        // `STALE_AFTER`, so that a server that died while handling it does not run it twice.
        let mut attempt = 0;
        let (mut conn, mut buf, (status, body_kind, sse, head_len, keep_alive)) = loop {
            attempt += 1;
            let (mut conn, mut buf, reused_after) = self.connect().await?;
            let may_retry = |write_failed: bool| {
                attempt == 1 && reused_after.is_some_and(|idle| write_failed || idle >= STALE_AFTER)
            };
            let out = self.post_message(&msg);
            if let Err(e) = conn.write_all(out).await {
                if may_retry(true) {
                    self.idle.borrow_mut().clear();
                    continue;
                }
                return Err(format!("send to {}: {e}", self.target));
            }
            match self.read_head(&mut conn, &mut buf).await {
                Ok(h) => break (conn, buf, h),
                Err(None) if buf.is_empty() && may_retry(false) => {
                    self.idle.borrow_mut().clear();
                }
                Err(None) => return Err(format!("{} closed the connection", self.target)),
                Err(Some(e)) => return Err(e),
            }
        };
        buf.drain(..head_len);
        if status == 404 && self.session.borrow().is_some() {
            self.alive.set(false);
            return Err(format!("the MCP server {} ended its session", self.target));
        }
        let mut parser = SseParser::new(MAX_MESSAGE);
        let mut dec = ChunkedDecoder::new(MAX_MESSAGE as u64 * 4);
        let mut body = Vec::new();
        let mut left = match body_kind {
            RespBody::Length(n) => Some(n as usize),
            _ => None,
        };
        let mut done = matches!(body_kind, RespBody::None) || left == Some(0);
        // Set once the response event of an SSE answer has been handed on.
        let mut answered = false;
        loop {
            // Move what arrived into `body` (de-chunked), then hand complete events on.
            let consumed = match body_kind {
                RespBody::Chunked => {
                    let (n, end) = dechunk(&mut dec, &buf, |d| body.extend_from_slice(d))
                        .map_err(|e| format!("{}: {e}", self.target))?;
                    done = end;
                    n
                }
                _ => {
                    let take = left.map_or(buf.len(), |l| l.min(buf.len()));
                    body.extend_from_slice(&buf[..take]);
                    if let Some(l) = left.as_mut() {
                        *l -= take;
                        done = *l == 0;
                    }
                    take
                }
            };
            buf.drain(..consumed);
            if sse {
                parser
                    .feed(&body)
                    .map_err(|e| format!("{}: {e:?}", self.target))?;
                body.clear();
                while let Some(ev) = parser.next_event() {
                    if ev.data.is_empty() {
                        continue;
                    }
                    let data = ev.data.into_bytes();
                    match (
                        jsonrpc::peek(&data).map(|e| (e.kind, e.id.map(str::to_owned))),
                        id,
                    ) {
                        (Ok((Kind::Response, Some(rid))), Some(want)) if rid == want => {
                            answered = true;
                            let _ = tx.unbounded_send(TargetMsg::Final(data));
                        }
                        _ => {
                            let _ = tx.unbounded_send(TargetMsg::Event(data));
                        }
                    }
                }
            }
            if done {
                break;
            }
            if answered {
                // The answer is in; the rest of the stream is read only to reuse the connection,
                // in a task of its own, so that neither this call nor the client's connection
                // waits for a server that keeps the stream open.
                let tail = match (body_kind, left) {
                    (RespBody::Chunked, _) => Some(Tail::Chunked(dec)),
                    (_, Some(n)) => Some(Tail::Length(n)),
                    _ => None, // delimited by the close: nothing to reuse
                };
                if let Some(tail) = tail.filter(|_| keep_alive) {
                    monoio::spawn(drain_tail(conn, buf, tail, Rc::clone(&self.idle)));
                }
                return Ok(());
            }
            match conn.read_more(&mut buf).await {
                Ok(0) if matches!(body_kind, RespBody::UntilClose) => break,
                Ok(0) | Err(_) => return Err(format!("{} closed the stream early", self.target)),
                Ok(_) => {}
            }
        }
        if keep_alive && done && buf.is_empty() {
            pool_put(&self.idle, conn, buf);
        }
        if !sse {
            if !(200..300).contains(&status) {
                if id.is_some() && !body.is_empty() && jsonrpc::peek(&body).is_ok() {
                    let _ = tx.unbounded_send(TargetMsg::Final(body));
                    return Ok(());
                }
                return Err(format!("{} answered HTTP {status}", self.target));
            }
            if let Some(want) = id {
                if body.is_empty() {
                    return Err(format!("{} answered without a body", self.target));
                }
                // Only the JSON-RPC response to this request is relayed as its answer.
                let answers = matches!(
                    jsonrpc::peek(&body).map(|e| (e.kind, e.id)),
                    Ok((Kind::Response, Some(rid))) if rid == want
                );
                if !answers {
                    return Err(format!(
                        "{} answered with something other than the JSON-RPC response to this request",
                        self.target
                    ));
                }
                let _ = tx.unbounded_send(TargetMsg::Final(body));
            }
        }
        Ok(())
    }
}
