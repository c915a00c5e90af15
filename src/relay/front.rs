//! The streamable-HTTP rules toward clients, on the worker that received the request: method,
//! `Accept` (406), `Content-Type` (415), `MCP-Protocol-Version` (400, with -32022 for
//! 2026-07-28 so new clients fall back), `Origin` (403, DNS-rebinding protection), session id
//! presence (400) and ownership (hand-off to the owning worker), then writing the answer as JSON
//! or as an SSE stream flushed event by event.
//!
//! Not here: what happens on the owner (`exchange`), reading the request body (`http::conn`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedReceiver};
use futures_util::StreamExt;

use crate::http::conn::{Bufs, ConnIo};
use crate::http::h1;
use crate::http::response::itoa_buf;
use crate::mcp::{jsonrpc, protocol, sse};
use crate::relay::{exchange, session, CallOp, McpCall, ReplyPart, Subject};
use crate::runtime::ctx::WorkerCtx;
use crate::runtime::worker::WorkerMsg;
use crate::snapshot::McpRoute;

/// What the relay needs from the request head, copied while the head is borrowed.
#[derive(Debug, Default)]
pub struct McpHead {
    pub method: String,
    pub accept: Option<Vec<u8>>,
    pub content_type: Option<Vec<u8>>,
    pub version: Option<Vec<u8>>,
    pub session: Option<String>,
    pub origin: Option<Vec<u8>>,
    pub host: Vec<u8>,
    pub last_event_id: Option<String>,
    /// Only kept when the route passes the client's token through (`backendAuth: passthrough`).
    pub authorization: Option<String>,
    /// The request arrived on a loopback address.
    pub local_loopback: bool,
}

impl McpHead {
    pub fn from_request(
        method: &str,
        host: &[u8],
        headers: &[httparse::Header<'_>],
        keep_authorization: bool,
        local_loopback: bool,
    ) -> McpHead {
        let get = |n: &str| h1::find_header(headers, n).map(<[u8]>::to_vec);
        let text =
            |n: &str| h1::find_header(headers, n).map(|v| String::from_utf8_lossy(v).into_owned());
        McpHead {
            method: method.to_owned(),
            accept: get("accept"),
            content_type: get("content-type"),
            version: get("mcp-protocol-version"),
            session: text("mcp-session-id"),
            origin: get("origin"),
            host: host.to_vec(),
            last_event_id: text("last-event-id"),
            authorization: if keep_authorization {
                text("authorization")
            } else {
                None
            },
            local_loopback,
        }
    }
}

/// Keep-alive comments on an idle server-to-client stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

fn reject(status: u16, code: i64, msg: &str) -> ReplyPart {
    ReplyPart::Error {
        status,
        body: jsonrpc::error_object(None, code, msg, None),
    }
}

/// Handles one MCP request whose body (if any) is already read. Returns the status sent and
/// whether the connection can carry another request.
#[allow(clippy::too_many_arguments)]
pub async fn handle<S: ConnIo>(
    io: &mut S,
    ctx: &Rc<WorkerCtx>,
    bufs: &mut Bufs,
    route: &Arc<McpRoute>,
    head: McpHead,
    body: Vec<u8>,
    subject: Subject,
    cors: &[u8],
) -> (u16, bool) {
    let rx = match start(ctx, route, &head, body, subject) {
        Ok(rx) => rx,
        Err(part) => {
            let (tx, rx) = unbounded();
            let _ = tx.unbounded_send(part);
            rx
        }
    };
    write_reply(io, ctx, bufs, rx, cors, route.stateful).await
}

/// Checks the request and starts it (locally or on the owning worker).
fn start(
    ctx: &Rc<WorkerCtx>,
    route: &Arc<McpRoute>,
    head: &McpHead,
    body: Vec<u8>,
    subject: Subject,
) -> Result<UnboundedReceiver<ReplyPart>, ReplyPart> {
    // DNS rebinding: a page on a foreign name that resolves to 127.0.0.1 reaches a loopback
    // listener with its own name as Host (and Origin), so on loopback the Host must be a
    // loopback name, or one the route's CORS policy allows.
    if head.local_loopback
        && !protocol::is_loopback_host(&head.host)
        && !protocol::host_allowed(&head.host, &route.allowed_origins)
    {
        return Err(reject(
            403,
            jsonrpc::INVALID_REQUEST,
            "Host not allowed (DNS rebinding protection)",
        ));
    }
    if let Some(origin) = &head.origin {
        if !protocol::origin_allowed(origin, &head.host, &route.allowed_origins) {
            return Err(reject(403, jsonrpc::INVALID_REQUEST, "Origin not allowed"));
        }
    }
    if let protocol::VersionCheck::Unsupported = protocol::check_version(head.version.as_deref()) {
        let requested =
            String::from_utf8_lossy(head.version.as_deref().unwrap_or_default()).into_owned();
        return Err(ReplyPart::Error {
            status: 400,
            body: protocol::unsupported_version_error(&requested, None),
        });
    }
    let (tx, rx) = unbounded();
    match head.method.as_str() {
        "POST" => {
            if !protocol::accepts_post(head.accept.as_deref()) {
                return Err(reject(406, jsonrpc::INVALID_REQUEST, "Not Acceptable: the client must accept both application/json and text/event-stream"));
            }
            if !protocol::is_json_content_type(head.content_type.as_deref()) {
                return Err(reject(
                    415,
                    jsonrpc::INVALID_REQUEST,
                    "Unsupported Media Type: Content-Type must be application/json",
                ));
            }
            let is_init = !jsonrpc::is_batch(&body)
                && jsonrpc::peek(&body).ok().and_then(|e| e.method) == Some("initialize");
            if !route.stateful {
                monoio::spawn(exchange::stateless(
                    route.clone(),
                    body,
                    head.authorization.clone(),
                    tx,
                ));
                return Ok(rx);
            }
            if is_init {
                monoio::spawn(exchange::initialize(
                    ctx.clone(),
                    route.clone(),
                    body,
                    subject,
                    head.authorization.clone(),
                    tx,
                ));
                return Ok(rx);
            }
            hand_off(ctx, head, CallOp::Post(body), subject, tx)?;
        }
        "GET" => {
            if !route.stateful {
                return Err(ReplyPart::Error {
                    status: 405,
                    body: Vec::new(),
                });
            }
            if !protocol::accepts_sse(head.accept.as_deref()) {
                return Err(reject(
                    406,
                    jsonrpc::INVALID_REQUEST,
                    "Not Acceptable: the client must accept text/event-stream",
                ));
            }
            hand_off(
                ctx,
                head,
                CallOp::Get(head.last_event_id.clone()),
                subject,
                tx,
            )?;
        }
        "DELETE" => {
            if !route.stateful {
                return Err(ReplyPart::Error {
                    status: 405,
                    body: Vec::new(),
                });
            }
            hand_off(ctx, head, CallOp::Delete, subject, tx)?;
        }
        _ => {
            return Err(ReplyPart::Error {
                status: 405,
                body: Vec::new(),
            })
        }
    }
    Ok(rx)
}

/// Runs the call for the request's session on this worker if it owns the session, else sends it
/// to the owner. A request without a session id is a 400 (T12).
fn hand_off(
    ctx: &Rc<WorkerCtx>,
    head: &McpHead,
    op: CallOp,
    subject: Subject,
    reply: futures_channel::mpsc::UnboundedSender<ReplyPart>,
) -> Result<(), ReplyPart> {
    let Some(session) = head.session.clone() else {
        return Err(reject(
            400,
            jsonrpc::INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header is required",
        ));
    };
    let call = McpCall {
        session,
        op,
        subject,
        reply,
    };
    let not_found = || reject(404, -32001, "session not found");
    let Some(owner) = session::owner_of(&call.session) else {
        return Err(not_found());
    };
    if owner == ctx.id {
        monoio::spawn(exchange::run(ctx.clone(), call));
        return Ok(());
    }
    match ctx.peer(owner) {
        Some(peer) => peer
            .unbounded_send(WorkerMsg::Mcp(call))
            .map_err(|_| not_found()),
        None => Err(not_found()),
    }
}

fn head(out: &mut Vec<u8>, status: u16, date: &[u8], cors: &[u8], session: Option<&str>) {
    h1::write_status_line(out, status);
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(cors);
    if let Some(s) = session {
        h1::write_header(out, "mcp-session-id", s.as_bytes());
    }
}

/// A whole (non-streamed) answer: JSON body if any, `Allow` for 405s.
fn whole(
    out: &mut Vec<u8>,
    status: u16,
    date: &[u8],
    cors: &[u8],
    session: Option<&str>,
    allow: Option<&[u8]>,
    body: &[u8],
) {
    head(out, status, date, cors, session);
    if let Some(a) = allow {
        h1::write_header(out, "allow", a);
    }
    if !body.is_empty() {
        h1::write_header(out, "content-type", b"application/json");
    }
    h1::write_header(
        out,
        "content-length",
        itoa_buf(body.len() as u64).as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

async fn write_reply<S: ConnIo>(
    io: &mut S,
    ctx: &Rc<WorkerCtx>,
    bufs: &mut Bufs,
    mut rx: UnboundedReceiver<ReplyPart>,
    cors: &[u8],
    stateful: bool,
) -> (u16, bool) {
    let date = ctx.date();
    let Some(first) = rx.next().await else {
        return (502, false);
    };
    let out = &mut bufs.out;
    match first {
        ReplyPart::Json {
            status,
            body,
            session,
        } => {
            whole(out, status, &date, cors, session.as_deref(), None, &body);
            (status, bufs.flush(io).await.is_ok())
        }
        ReplyPart::Error { status, body } => {
            // Stateless routes serve POST only (GET and DELETE are 405 there).
            let allow: &[u8] = if stateful {
                b"GET, POST, DELETE"
            } else {
                b"POST"
            };
            whole(
                out,
                status,
                &date,
                cors,
                None,
                (status == 405).then_some(allow),
                &body,
            );
            (status, bufs.flush(io).await.is_ok())
        }
        ReplyPart::Empty { status } => {
            whole(out, status, &date, cors, None, None, b"");
            (status, bufs.flush(io).await.is_ok())
        }
        ReplyPart::SseStart { session } => {
            head(out, 200, &date, cors, session.as_deref());
            h1::write_header(out, "content-type", b"text/event-stream");
            h1::write_header(out, "cache-control", b"no-cache");
            h1::write_header(out, "x-accel-buffering", b"no");
            h1::write_header(out, "transfer-encoding", b"chunked");
            out.extend_from_slice(b"\r\n");
            if bufs.flush(io).await.is_err() {
                return (200, false);
            }
            loop {
                let next = monoio::time::timeout(KEEPALIVE, rx.next()).await;
                match next {
                    Ok(Some(ReplyPart::Event(ev))) => h1::write_chunk(&mut bufs.out, &ev),
                    Ok(Some(ReplyPart::End)) | Ok(None) => {
                        h1::write_last_chunk(&mut bufs.out);
                        return (200, bufs.flush(io).await.is_ok());
                    }
                    Ok(Some(_)) => continue,
                    Err(_) => {
                        let mut c = Vec::new();
                        sse::write_comment(&mut c, "keep-alive");
                        h1::write_chunk(&mut bufs.out, &c);
                    }
                }
                if bufs.flush(io).await.is_err() {
                    // The client went away; the call goes on (a disconnect is not a cancellation).
                    return (200, false);
                }
            }
        }
        ReplyPart::Event(_) | ReplyPart::End => (502, false),
    }
}
