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
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

use crate::http::h1::{self, ChunkedDecoder, RespBody};
use crate::mcp::jsonrpc::{self, Kind};
use crate::mcp::sse::SseParser;
use crate::net::client::{self, Checkout, Conn, Failed, HeadError, Upstream};
use crate::relay::target::shared_stream::TargetMsg;
use crate::relay::MAX_MESSAGE;
use crate::snapshot::UpstreamSettings;

mod conn;

use conn::{drain_tail, PoolSlot, Tail};

/// One streamable-HTTP target of one session.
pub(crate) struct HttpTarget {
    pub target: String,
    upstream: Upstream,
    settings: UpstreamSettings,
    path: String,
    /// The upstream's own session id, learned from its initialize answer.
    session: RefCell<Option<String>>,
    pub version: Cell<&'static str>,
    authorization: Option<String>,
    alive: Cell<bool>,
    /// The server answered 404 to our session: it ended it, and acted on nothing sent since.
    ended: Cell<bool>,
    /// Bumped whenever `session` changes.
    session_gen: Cell<u64>,
    /// The POST head up to its `content-length`, with the version and session generation it was
    /// built for: rebuilt only when either changes.
    post_head: RefCell<(Vec<u8>, &'static str, u64)>,
}

impl HttpTarget {
    pub(crate) fn new(
        target: &str,
        upstream: Upstream,
        path: &str,
        authorization: Option<String>,
        settings: UpstreamSettings,
    ) -> Rc<HttpTarget> {
        Rc::new(HttpTarget {
            target: target.to_owned(),
            upstream,
            settings,
            path: path.to_owned(),
            session: RefCell::new(None),
            version: Cell::new("2025-06-18"),
            authorization,
            alive: Cell::new(true),
            ended: Cell::new(false),
            session_gen: Cell::new(0),
            post_head: RefCell::new((Vec::new(), "", 0)),
        })
    }

    pub(crate) fn alive(&self) -> bool {
        self.alive.get()
    }

    /// Whether the server ended our session (a 404): what was refused can be sent again in a
    /// new session.
    pub(crate) fn ended_by_server(&self) -> bool {
        self.ended.get()
    }

    /// The server's address and a connection to it from the worker's pool, or a new one.
    async fn checkout(&self) -> Result<(SocketAddr, Checkout), String> {
        let to = client::resolve(&self.upstream.target.addr, &self.settings)
            .await
            .map_err(|e| e.to_string())?;
        let (addr, c) = client::checkout(
            &to,
            self.upstream.tls(),
            self.settings.pool_idle_timeout,
            self.settings.connect_timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok((addr, c))
    }

    /// A new connection to `addr`, for sending again what failed on a reused one.
    async fn fresh(&self, addr: SocketAddr) -> Result<Checkout, String> {
        client::fresh(addr, self.upstream.tls(), self.settings.connect_timeout)
            .await
            .map_err(|e| e.to_string())
    }

    /// Where a connection whose answer was read to the end goes back to.
    fn pool_slot(&self, addr: SocketAddr) -> PoolSlot {
        PoolSlot {
            addr,
            tls: self.upstream.tls.clone(),
            max: self.settings.pool_max_idle,
        }
    }

    fn head(&self, method: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut h = Vec::with_capacity(512);
        h.extend_from_slice(method.as_bytes());
        h.push(b' ');
        h.extend_from_slice(self.path.as_bytes());
        h.extend_from_slice(b" HTTP/1.1\r\n");
        h1::write_header(&mut h, "host", self.upstream.target.authority.as_bytes());
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
    fn post_message(&self, msg: &[u8], trace: Option<&[u8]>) -> Vec<u8> {
        let mut cached = self.post_head.borrow_mut();
        let (version, generation) = (self.version.get(), self.session_gen.get());
        if cached.0.is_empty() || cached.1 != version || cached.2 != generation {
            let mut h = self.head("POST", &[("content-type", "application/json")]);
            h.truncate(h.len() - 2); // the blank line
            *cached = (h, version, generation);
        }
        let mut out = Vec::with_capacity(cached.0.len() + 48 + msg.len());
        out.extend_from_slice(&cached.0);
        if let Some(t) = trace {
            h1::write_header(&mut out, "traceparent", t);
        }
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
    pub(crate) fn request(
        self: &Rc<Self>,
        id: &str,
        msg: Vec<u8>,
        trace: Option<&[u8]>,
    ) -> UnboundedReceiver<TargetMsg> {
        let (tx, rx) = unbounded();
        let me = self.clone();
        let id = id.to_owned();
        let trace = trace.map(<[u8]>::to_vec);
        monoio::spawn(async move { me.request_into(&id, msg, trace.as_deref(), tx).await });
        rx
    }

    /// [`Self::request`] without a task of its own: the caller polls this future next to the
    /// one that reads `tx`'s receiver (the single-target hot path).
    pub(crate) async fn request_into(
        &self,
        id: &str,
        msg: Vec<u8>,
        trace: Option<&[u8]>,
        tx: UnboundedSender<TargetMsg>,
    ) {
        if let Err(e) = self.post(msg, Some(id), trace, &tx).await {
            let _ = tx.unbounded_send(TargetMsg::Failed(e));
        }
    }

    /// POSTs a notification or response; the upstream answers 202.
    pub(crate) async fn send(self: &Rc<Self>, msg: Vec<u8>) -> Result<(), String> {
        let (tx, _rx) = unbounded();
        self.post(msg, None, None, &tx).await
    }

    /// Ends the upstream session (DELETE), best effort.
    pub(crate) async fn terminate(&self) {
        self.alive.set(false);
        if self.session.borrow().is_none() {
            return;
        }
        if let Ok((_, mut c)) = self.checkout().await {
            let head = self.head("DELETE", &[("content-length", "0")]);
            if c.conn.write_all(head).await.0.is_ok() {
                let read = c.conn.read_more(&mut c.buf);
                let _ = monoio::time::timeout(Duration::from_secs(2), read).await;
            }
        }
    }

    /// The server's own event stream for the session (a GET): each message on it goes to `out`.
    /// Returns when the stream ends, when `out` is closed, or at once if the server has none
    /// (405) or cannot be reached (the error). The caller bounds it by dropping the future.
    /// `begun` is sent once the stream's answer has begun (dropped if it does not).
    pub(crate) async fn listen(
        &self,
        out: &UnboundedSender<Vec<u8>>,
        begun: futures_channel::oneshot::Sender<()>,
    ) -> Result<(), String> {
        let to = client::resolve(&self.upstream.target.addr, &self.settings)
            .await
            .map_err(|e| e.to_string())?;
        let (_, mut conn) =
            client::connect_any(&to, self.upstream.tls(), self.settings.connect_timeout)
                .await
                .map_err(|e| e.to_string())?;
        let head = self.head("GET", &[]);
        conn.write_all(head).await.0.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let got = client::read_head(&mut conn, &mut buf, false, |_, _| ()).await;
        let body = match got {
            Ok((h, ())) if h.status == 200 => {
                buf.drain(..h.head_len);
                let _ = begun.send(());
                h.body
            }
            Ok((h, ())) => return Err(format!("GET answered HTTP {}", h.status)),
            Err(_) => return Err("no answer to GET".into()),
        };
        let mut dec = ChunkedDecoder::new(u64::MAX);
        let mut parser = SseParser::new(MAX_MESSAGE);
        loop {
            let data = if matches!(body, RespBody::Chunked) {
                let mut data = Vec::new();
                let (used, _) = client::dechunk(&mut dec, &buf, |d| data.extend_from_slice(d))
                    .map_err(|e| e.to_string())?;
                buf.drain(..used);
                data
            } else {
                std::mem::take(&mut buf)
            };
            parser
                .feed(&data)
                .map_err(|_| "an SSE event over the size limit")?;
            while let Some(ev) = parser.next_event() {
                if !ev.data.is_empty() && out.unbounded_send(ev.data.into_bytes()).is_err() {
                    return Ok(());
                }
            }
            match conn.read_more(&mut buf).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        }
    }

    /// Learns the upstream's session id from an answer head; whether the answer is SSE.
    fn learn(&self, hdrs: &[httparse::Header<'_>]) -> bool {
        if let Some(sid) = h1::find_header(hdrs, "mcp-session-id") {
            let mut cur = self.session.borrow_mut();
            if cur.as_deref().map(str::as_bytes) != Some(sid) {
                *cur = Some(String::from_utf8_lossy(sid).into_owned());
                self.session_gen.set(self.session_gen.get() + 1);
            }
        }
        h1::find_header(hdrs, "content-type").is_some_and(|c| c.starts_with(b"text/event-stream"))
    }

    async fn post(
        &self,
        msg: Vec<u8>,
        id: Option<&str>,
        trace: Option<&[u8]>,
        tx: &UnboundedSender<TargetMsg>,
    ) -> Result<(), String> {
        let (addr, mut conn, mut buf, head, sse) = self.write_and_read_head(&msg, trace).await?;
        let (status, body_kind, keep_alive) = (head.status, head.body, head.keep_alive);
        buf.drain(..head.head_len);
        if status == 404 && self.session.borrow().is_some() {
            self.alive.set(false);
            self.ended.set(true);
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
                    let (n, end) = client::dechunk(&mut dec, &buf, |d| body.extend_from_slice(d))
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
                answered |= hand_on_events(&mut parser, id, tx);
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
                    monoio::spawn(drain_tail(conn, buf, tail, self.pool_slot(addr)));
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
            let max = self.settings.pool_max_idle;
            client::release(addr, self.upstream.tls(), conn, buf, max);
        }
        if !sse {
            return self.json_answer(status, body, id, tx);
        }
        Ok(())
    }

    /// Writes the message and reads the response head (and whether the answer is SSE). A
    /// reused connection the upstream closed while idle (uvicorn does after 5 s) fails at the
    /// write, or before any answer byte: the message goes once more on a fresh connection when
    /// [`client::may_resend`] allows it (a POST is not idempotent: after a read failure only
    /// when the connection had been idle for a while).
    async fn write_and_read_head(
        &self,
        msg: &[u8],
        trace: Option<&[u8]>,
    ) -> Result<(SocketAddr, Conn, Vec<u8>, client::Head, bool), String> {
        let (addr, mut c) = self.checkout().await?;
        loop {
            let may_resend = |failed| client::may_resend(c.reused_after, failed, true, false);
            let out = self.post_message(msg, trace);
            if let (Err(e), _) = c.conn.write_all(out).await {
                if may_resend(Failed::Write) {
                    c = self.fresh(addr).await?;
                    continue;
                }
                return Err(format!("send to {}: {e}", self.target));
            }
            match client::read_head(&mut c.conn, &mut c.buf, false, |_, h| self.learn(h)).await {
                Ok((head, sse)) => return Ok((addr, c.conn, c.buf, head, sse)),
                Err(HeadError::Closed) if c.buf.is_empty() && may_resend(Failed::BeforeAnswer) => {
                    c = self.fresh(addr).await?;
                }
                Err(HeadError::Closed) => {
                    return Err(format!("{} closed the connection", self.target))
                }
                Err(HeadError::Invalid) => {
                    return Err(format!("{} sent an invalid HTTP response", self.target))
                }
            }
        }
    }

    /// A JSON answer (not SSE): relayed as the request's answer when it is the JSON-RPC
    /// response to request `id` (an error status with a JSON-RPC body too); otherwise an error.
    fn json_answer(
        &self,
        status: u16,
        body: Vec<u8>,
        id: Option<&str>,
        tx: &UnboundedSender<TargetMsg>,
    ) -> Result<(), String> {
        if !(200..300).contains(&status) {
            if id.is_some() && !body.is_empty() && jsonrpc::peek(&body).is_ok() {
                let _ = tx.unbounded_send(TargetMsg::Final(body));
                return Ok(());
            }
            return Err(format!("{} answered HTTP {status}", self.target));
        }
        let Some(want) = id else {
            return Ok(());
        };
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
        Ok(())
    }
}

/// Hands the complete events of an SSE answer on: the JSON-RPC response to request `id` as the
/// answer (true when it came), everything else as events of the request's stream.
fn hand_on_events(
    parser: &mut SseParser,
    id: Option<&str>,
    tx: &UnboundedSender<TargetMsg>,
) -> bool {
    let mut answered = false;
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
    answered
}
