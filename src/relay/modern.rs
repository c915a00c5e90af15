//! MCP 2026-07-28 requests relayed to a streamable-HTTP server that speaks the revision: one
//! POST per request on the worker that received it — no session, no owner hop, the body and its
//! JSON-RPC id untouched — with the mirrored headers (`Mcp-Method`, `Mcp-Name`, every
//! `Mcp-Param-*`) sent on as they came. The answer is relayed as it arrives: a JSON answer with
//! the server's status (so a server's own refusal, such as -32022, reaches the client that must
//! act on it), or an SSE stream event by event, ended after the request's response.
//!
//! A `subscriptions/listen` stream is relayed for as long as the client keeps it open (the
//! route's call timeout bounds only the wait for its head; the client side sends keep-alive
//! comments while it is idle).
//!
//! Cancellation is the revision's: when the client closes its stream, the reply channel closes,
//! the caller drops this future and with it the upstream connection — the server sees its
//! stream closed, which is the cancellation of that request.
//!
//! Not here: the header checks (`mcp::modern`, before anything is sent), which routes may take
//! this path (`server::mcp`), 2025-era sessions (`relay::call`).

use std::rc::Rc;
use std::sync::Arc;

use futures_channel::mpsc::UnboundedSender;

use crate::http::h1::{self, ChunkedDecoder, RespBody};
use crate::http::response::itoa_buf;
use crate::mcp::jsonrpc::{self, Kind};
use crate::mcp::sse::{self, SseParser};
use crate::mcp::{compat, modern};
use crate::net::client::{self, Conn, Failed, HeadError, Tls};
use crate::relay::authorize::{self, Authz};
use crate::relay::reject::Reject;
use crate::relay::{ReplyPart, MAX_MESSAGE};
use crate::shard::Shard;
use crate::snapshot::{McpRoute, McpTargetKind};

/// One 2026-07-28 request, checked.
pub(crate) struct ModernCall {
    pub body: Vec<u8>,
    /// The request's raw JSON id (`None`: a notification).
    pub id: Option<String>,
    /// Header lines to send on as they came (`name: value\r\n`): the mirrored headers, and the
    /// client's `Authorization` when the route passes it through.
    pub headers: Vec<u8>,
    /// The route's `mcpAuthorization` and the caller (lists are filtered on the way back).
    pub authz: Option<Authz>,
    /// The method, when it is a list method and the answer must be filtered.
    pub list_method: Option<&'static str>,
    /// `subscriptions/listen`: the stream lasts as long as the client keeps it; the route's
    /// call timeout bounds only the wait for the answer's head.
    pub listen: bool,
}

impl ModernCall {
    /// The answer as the client may see it: a list filtered by the route's rules.
    fn screened(&self, shard: &Shard, route: &McpRoute, answer: Vec<u8>) -> Vec<u8> {
        match (&self.authz, self.list_method, self.id.as_deref()) {
            (Some(a), Some(m), Some(id)) => {
                // Filtered for this caller: no cache may share it (`cacheScope`).
                compat::private_cache(authorize::filter_answer(shard, route, a, m, id, answer))
            }
            _ => answer,
        }
    }
}

/// Whether `route` relays 2026-07-28 requests natively: one streamable-HTTP target.
pub(crate) fn serves_modern(route: &McpRoute) -> bool {
    // A prefixed route (`prefixMode: always`) names its tools `<target>_<name>`, which only the
    // 2025 relay rewrites: modern clients fall back to it.
    !route.prefix
        && matches!(&route.targets[..], [t] if matches!(t.kind, McpTargetKind::Http { .. }))
}

/// Relays `call` to the route's server; the answer goes to `reply`.
pub(crate) async fn forward(
    shard: Rc<Shard>,
    route: Arc<McpRoute>,
    call: ModernCall,
    reply: UnboundedSender<ReplyPart>,
) {
    forward_to(&shard, &route, 0, &call, &reply).await
}

/// Relays `call` to the route's server number `target`; the answer goes to `reply`.
pub(crate) async fn forward_to(
    shard: &Shard,
    route: &McpRoute,
    target: usize,
    call: &ModernCall,
    reply: &UnboundedSender<ReplyPart>,
) {
    let run = async {
        match exchange(shard, route, target, call).await {
            None => Err(Broke::BeforeAnswer),
            Some(Answer::Whole(part)) => {
                let _ = reply.unbounded_send(part);
                Ok(())
            }
            // Boxed: the SSE relay's state would otherwise make every call's future larger.
            Some(Answer::Stream(s)) => Box::pin(stream(shard, route, s, call, reply)).await,
        }
    };
    // A listen stream ends with its client (or its server), not with the call timeout.
    let limit = if call.listen {
        LISTEN_LIMIT
    } else {
        route.call_timeout
    };
    match monoio::time::timeout(limit, run).await {
        Ok(Ok(())) => {}
        Ok(Err(Broke::BeforeAnswer)) => {
            let _ = reply.unbounded_send(Reject::ServerUnreachable.reply(call.id.as_deref()));
        }
        // The client has part of an SSE answer: end it; it sees no response and may retry.
        Ok(Err(Broke::Streaming)) => {
            let _ = reply.unbounded_send(ReplyPart::End);
        }
        Err(_) => {
            let _ = reply.unbounded_send(Reject::ServerTimedOut.reply(call.id.as_deref()));
        }
    }
}

/// Relays the SSE answer `s` to `call` until `deadline`, to `reply` (which it owns: the
/// answer's end is its end).
pub(crate) async fn relay_stream(
    shard: &Shard,
    route: &McpRoute,
    s: Streaming,
    call: &ModernCall,
    reply: UnboundedSender<ReplyPart>,
    deadline: monoio::time::Instant,
) {
    let run = Box::pin(stream(shard, route, s, call, &reply));
    if !matches!(monoio::time::timeout_at(deadline, run).await, Ok(Ok(()))) {
        // The client has part of an SSE answer: end it; it sees no response and may retry.
        let _ = reply.unbounded_send(ReplyPart::End);
    }
}

/// The longest a `subscriptions/listen` stream is relayed (the client then listens again).
pub(crate) const LISTEN_LIMIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Where a relay broke: before any answer (the client gets a refusal) or inside an SSE answer
/// already started.
enum Broke {
    BeforeAnswer,
    Streaming,
}

/// What a server answered, as far as its head.
pub(crate) enum Answer {
    /// The whole answer: `Relayed` (list answers screened) or `Accepted`.
    Whole(ReplyPart),
    /// An SSE answer, relayed event by event by [`relay_stream`].
    Stream(Streaming),
}

/// An SSE answer whose head is read: the connection it arrives on, and what is buffered of it.
pub(crate) struct Streaming {
    conn: Conn,
    buf: Vec<u8>,
    body: RespBody,
}

/// Sends `call` to the route's server number `target` and reads its answer (a JSON one whole,
/// an SSE one as far as its head). `None`: the server could not be reached or broke off before
/// answering.
pub(crate) async fn exchange(
    shard: &Shard,
    route: &McpRoute,
    target: usize,
    call: &ModernCall,
) -> Option<Answer> {
    let Some(McpTargetKind::Http {
        target,
        path,
        https,
        tls,
    }) = route.targets.get(target).map(|t| &t.kind)
    else {
        return None;
    };
    // Borrowed from the snapshot: a call allocates nothing for its upstream.
    let tls = Tls::to(&target.authority, *https, tls.as_deref());
    let settings = route.upstream;
    let to = client::resolve(&target.addr, &settings).await.ok()?;
    let (addr, mut c) = client::checkout(
        &to,
        tls,
        settings.pool_idle_timeout,
        settings.connect_timeout,
    )
    .await
    .ok()?;
    let mut request = render(&target.authority, path, call);
    // Sent again on a fresh connection only when the reused one failed in a way that shows the
    // server never acted on it (a POST is not idempotent).
    let (head, sse) = loop {
        let resend = |failed| client::may_resend(c.reused_after, failed, true, false);
        let (res, back) = c.conn.write_all(request).await;
        request = back;
        if res.is_err() {
            if resend(Failed::Write) {
                c = client::fresh(addr, tls, settings.connect_timeout)
                    .await
                    .ok()?;
                continue;
            }
            return None;
        }
        let is_sse = |_: &client::Head, hdrs: &[httparse::Header<'_>]| {
            h1::find_header(hdrs, "content-type")
                .is_some_and(|v| v.starts_with(b"text/event-stream"))
        };
        let head = client::read_head(&mut c.conn, &mut c.buf, false, is_sse);
        let head = if call.listen {
            monoio::time::timeout(route.call_timeout, head).await.ok()?
        } else {
            head.await
        };
        match head {
            Ok(h) => break h,
            Err(HeadError::Closed) if c.buf.is_empty() && resend(Failed::BeforeAnswer) => {
                c = client::fresh(addr, tls, settings.connect_timeout)
                    .await
                    .ok()?;
            }
            Err(_) => return None,
        }
    };
    c.buf.drain(..head.head_len);
    if sse && (200..300).contains(&head.status) {
        return Some(Answer::Stream(Streaming {
            conn: c.conn,
            buf: c.buf,
            body: head.body,
        }));
    }
    let (body, reusable) = client::read_body(&mut c.conn, &mut c.buf, head.body, MAX_MESSAGE)
        .await
        .ok()?;
    if reusable && head.keep_alive {
        client::release(addr, tls, c.conn, c.buf, settings.pool_max_idle);
    }
    if head.status == 202 && body.is_empty() {
        return Some(Answer::Whole(ReplyPart::Accepted));
    }
    let body = if (200..300).contains(&head.status) {
        call.screened(shard, route, body)
    } else {
        body
    };
    Some(Answer::Whole(ReplyPart::Relayed {
        status: head.status,
        body,
    }))
}

/// The POST: the request line, the headers the server needs, the client's mirrored headers as
/// they came, and the body.
fn render(authority: &str, path: &str, call: &ModernCall) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + call.headers.len() + call.body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    h1::write_header(&mut out, "host", authority.as_bytes());
    h1::write_header(&mut out, "accept", b"application/json, text/event-stream");
    h1::write_header(&mut out, "content-type", b"application/json");
    h1::write_header(&mut out, "mcp-protocol-version", modern::VERSION.as_bytes());
    out.extend_from_slice(&call.headers);
    let n = itoa_buf(call.body.len() as u64);
    h1::write_header(&mut out, "content-length", n.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&call.body);
    out
}

/// Relays an SSE answer event by event until the request's response (then the stream ends
/// here: a server SHOULD end it there) or the server's end of the stream. The connection is
/// not pooled: what is left of the stream is not read.
async fn stream(
    shard: &Shard,
    route: &McpRoute,
    s: Streaming,
    call: &ModernCall,
    reply: &UnboundedSender<ReplyPart>,
) -> Result<(), Broke> {
    let Streaming {
        mut conn,
        mut buf,
        body,
    } = s;
    if reply
        .unbounded_send(ReplyPart::SseStart { session: None })
        .is_err()
    {
        return Ok(());
    }
    let mut parser = SseParser::new(MAX_MESSAGE);
    let mut dec = ChunkedDecoder::new(u64::MAX);
    let mut left = match body {
        RespBody::Length(n) => Some(n),
        _ => None,
    };
    loop {
        let mut data = Vec::new();
        let used = match body {
            RespBody::Chunked => {
                let (used, _) = client::dechunk(&mut dec, &buf, |d| data.extend_from_slice(d))
                    .map_err(|_| Broke::Streaming)?;
                used
            }
            _ => {
                let take = left.map_or(buf.len(), |l| (l as usize).min(buf.len()));
                data.extend_from_slice(&buf[..take]);
                if let Some(l) = left.as_mut() {
                    *l -= take as u64;
                }
                take
            }
        };
        buf.drain(..used);
        parser.feed(&data).map_err(|_| Broke::Streaming)?;
        while let Some(ev) = parser.next_event() {
            if ev.data.is_empty() {
                continue;
            }
            let peeked = jsonrpc::peek(ev.data.as_bytes()).map(|e| (e.kind, e.id));
            let answered = call.id.is_some()
                && matches!(
                    peeked,
                    Ok((Kind::Response, Some(rid))) if Some(rid) == call.id.as_deref()
                );
            // Every response (or anything unreadable) of a filtered list is filtered: the
            // client may match an id that is not byte-for-byte its own (`"\u0031"`, `1.0`).
            let screen = call.list_method.is_some()
                && !matches!(peeked, Ok((Kind::Notification | Kind::Request, _)));
            let mut out = Vec::with_capacity(ev.data.len() + 16);
            if screen {
                let data = call.screened(shard, route, ev.data.into_bytes());
                sse::write_event(&mut out, None, ev.event.as_deref(), &data);
            } else {
                sse::write_event(&mut out, None, ev.event.as_deref(), ev.data.as_bytes());
            }
            if reply.unbounded_send(ReplyPart::Event(out)).is_err() {
                // The client went away: dropping the connection cancels the request upstream.
                return Ok(());
            }
            if answered {
                let _ = reply.unbounded_send(ReplyPart::End);
                return Ok(());
            }
        }
        if left == Some(0) {
            let _ = reply.unbounded_send(ReplyPart::End);
            return Ok(());
        }
        match conn.read_more(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = reply.unbounded_send(ReplyPart::End);
                return Ok(());
            }
            Ok(_) => {}
        }
    }
}
