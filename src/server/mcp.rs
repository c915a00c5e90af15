//! The streamable-HTTP rules toward clients, on the worker that received the request: method,
//! `Accept` (406), `Content-Type` (415), `MCP-Protocol-Version` (400; a 2026-07-28 request is
//! relayed natively where the route's server can take it — see `relay::modern` — and refused
//! with -32022 elsewhere so the client falls back), `Origin` (403, DNS-rebinding protection),
//! session id presence (400) and ownership (hand-off to the owning worker), then writing the
//! answer as JSON or as an SSE stream flushed event by event, watching the client meanwhile.
//!
//! Not here: what happens on the owner (`relay::call`), reading the request body
//! (`server::conn`).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

use crate::http::h1;
use crate::http::response::{itoa_buf, LocalError, CLIENT_CLOSED};
use crate::mcp::{jsonrpc, modern, protocol, sse};
use crate::net::io::{Bufs, ConnIo};
use crate::policy::mcp_auth::Principal;
use crate::relay::authorize::{self, Asker, Authz};
use crate::relay::call as relay_call;
use crate::relay::compat as relay_compat;
use crate::relay::fanout as relay_fanout;
use crate::relay::modern as relay_modern;
use crate::relay::reject::{self, Reject};
use crate::relay::{self, session, CallOp, McpCall, NoIdentity, Relay, ReplyPart, Subject};
use crate::snapshot::McpRoute;

mod head;

pub(crate) use head::McpHead;

/// Keep-alive comments on an idle server-to-client stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Handles one MCP request whose body (if any) is already read. Returns the status sent and
/// whether the connection can carry another request.
///
/// Work for a session this worker owns runs inside the connection's task, next to the writing of
/// its answer (no task spawned per call); work for another worker's session runs there. The
/// job ends with its answer (what an upstream sends after it is drained by a task of its own,
/// see `relay::target::http`). A job is never moved to another task once polled: monoio's
/// timers keep the waker of their first poll and would not wake the new task.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle<S: ConnIo>(
    io: &mut S,
    ctx: &Rc<Relay>,
    bufs: &mut Bufs,
    route: &Arc<McpRoute>,
    head: McpHead,
    body: Vec<u8>,
    principal: Option<&Principal>,
    asker: Option<Asker>,
    decided: &Cell<Option<&'static str>>,
    cors: &[u8],
) -> (u16, bool) {
    let stateful = route.stateful;
    match start(ctx, route, &head, body, principal, asker, decided) {
        Err(part) => write_answer(io, bufs, part, &ctx.shard.date(), cors, stateful).await,
        Ok(Started::Reply(rx, None)) => write_reply(io, ctx, bufs, rx, cors, stateful).await,
        Ok(Started::Reply(rx, Some(job))) => {
            let reply = write_reply(io, ctx, bufs, rx, cors, stateful);
            futures_util::future::join(job.run(ctx.clone()), reply)
                .await
                .1
        }
        Ok(Started::Modern(job)) => modern(io, ctx, bufs, job, cors, stateful).await,
    }
}

/// How a request started.
enum Started {
    /// Its answer comes on the receiver: from the job, run here next to the writing of the
    /// answer, or from the worker the call was handed to.
    Reply(UnboundedReceiver<ReplyPart>, Option<Job>),
    /// A 2026-07-28 request, relayed on this worker (no session).
    Modern(ModernJob),
}

/// A 2026-07-28 request, checked.
struct ModernJob {
    route: Arc<McpRoute>,
    call: relay_modern::ModernCall,
    /// Its `Mcp-Method` and `Mcp-Name`, for the metrics.
    counted: (&'static str, Option<String>),
    /// The request for the compatibility mode, when the route's servers may not speak the
    /// revision (`relay::compat`).
    fallback: Option<Box<relay_compat::CompatCall>>,
    /// The servers do not speak the revision: `fallback` is served, `call` is not sent.
    compat_only: bool,
}

/// Serves a 2026-07-28 request. It ends with its client: when the answer is written or the
/// client goes away first, the relay is dropped, and with it the upstream connection — the
/// revision's cancellation.
async fn modern<S: ConnIo>(
    io: &mut S,
    ctx: &Rc<Relay>,
    bufs: &mut Bufs,
    job: ModernJob,
    cors: &[u8],
    stateful: bool,
) -> (u16, bool) {
    let started = std::time::Instant::now();
    let ModernJob {
        route,
        call,
        counted,
        fallback,
        compat_only,
    } = job;
    let (written, native) = if fallback.is_none() && !call.listen && !relay_fanout::fans_out(&route)
    {
        let written = inline(io, ctx, bufs, &route, &call, started, cors, stateful).await;
        (written, true)
    } else {
        // Boxed: fanned-out, compatibility and listen calls keep their state out of the
        // common call's.
        let fallback_none = fallback.is_none();
        let (tx, rx) = unbounded();
        let run = modern_job(ctx.clone(), route.clone(), call, fallback, compat_only, tx);
        let reply = write_reply(io, ctx, bufs, rx, cors, stateful);
        Box::pin(async move {
            let (forward, reply) = (std::pin::pin!(run), std::pin::pin!(reply));
            match futures_util::future::select(forward, reply).await {
                futures_util::future::Either::Left((native, reply)) => (reply.await, native),
                futures_util::future::Either::Right((written, _forward)) => {
                    (written, fallback_none)
                }
            }
        })
        .await
    };
    // A call served through the compatibility mode was counted by its session (with the target
    // a multi-target route sent it to).
    if !native {
        return written;
    }
    let (method, name) = counted;
    let r = &route;
    // A fanned-out call is counted for the server its prefixed name names.
    let (server, resource) = if relay_fanout::fans_out(r) {
        relay_fanout::labels(r, name.as_deref())
    } else {
        (r.targets.first().map(|t| t.name.as_str()), name.as_deref())
    };
    ctx.shard.metrics.borrow_mut().mcp_request(
        &r.name,
        &r.metric_scope,
        method,
        server,
        resource,
        Some(started.elapsed()),
    );
    written
}

/// A 2026-07-28 call to the route's one streamable-HTTP server, answered here as it comes: no
/// reply channel, and one timer, which first marks when the client's connection starts to be
/// watched (a close cancels the call) and then the route's call timeout. An SSE answer is
/// relayed event by event as the other paths relay theirs.
#[allow(clippy::too_many_arguments)]
async fn inline<S: ConnIo>(
    io: &mut S,
    ctx: &Rc<Relay>,
    bufs: &mut Bufs,
    route: &McpRoute,
    call: &relay_modern::ModernCall,
    started: std::time::Instant,
    cors: &[u8],
    stateful: bool,
) -> (u16, bool) {
    use futures_util::future::{select, Either};
    let start = monoio::time::Instant::from_std(started);
    let deadline = call_deadline(start, route.call_timeout);
    let mut timer = std::pin::pin!(monoio::time::sleep_until(deadline.min(start + WATCH_AFTER)));
    let mut exchange = std::pin::pin!(relay_modern::exchange(&ctx.shard, route, 0, call));
    let first = match select(exchange.as_mut(), timer.as_mut()).await {
        Either::Left((answer, _)) => Some(answer),
        Either::Right(_) => None,
    };
    let answer = match first {
        Some(answer) => Some(answer),
        None if timer.deadline() >= deadline => None,
        None => {
            timer.as_mut().reset(deadline);
            match watching(io, bufs, select(exchange, timer)).await {
                None => return (CLIENT_CLOSED, false),
                Some(Either::Left((answer, _))) => Some(answer),
                Some(Either::Right(_)) => None,
            }
        }
    };
    let id = call.id.as_deref();
    let part = match answer {
        Some(Some(relay_modern::Answer::Whole(part))) => part,
        Some(Some(relay_modern::Answer::Stream(s))) => {
            // Boxed: the stream's writer stays out of the common call's state.
            return Box::pin(async {
                let (tx, rx) = unbounded();
                let shard = &ctx.shard;
                let relay = relay_modern::relay_stream(shard, route, s, call, tx, deadline);
                let reply = write_reply(io, ctx, bufs, rx, cors, stateful);
                let (relay, reply) = (std::pin::pin!(relay), std::pin::pin!(reply));
                match select(relay, reply).await {
                    Either::Left(((), reply)) => reply.await,
                    Either::Right((written, _relay)) => written,
                }
            })
            .await;
        }
        Some(None) => Reject::ServerUnreachable.reply(id),
        None => Reject::ServerTimedOut.reply(id),
    };
    write_answer(io, bufs, part, &ctx.shard.date(), cors, stateful).await
}

/// When a call started at `start` times out: a timeout too long to add to the clock (the
/// configuration takes any duration) is no timeout, as `monoio::time::timeout` reads it.
fn call_deadline(start: monoio::time::Instant, timeout: Duration) -> monoio::time::Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    start.checked_add(timeout).unwrap_or_else(|| start + FAR)
}

/// Work started by a request on this worker.
enum Job {
    /// A call for a session this worker owns.
    Call(McpCall),
    /// `initialize` on a stateful route: a new session owned by this worker.
    Initialize {
        route: Arc<McpRoute>,
        body: Vec<u8>,
        subject: Subject,
        authorization: Option<String>,
        authz: Option<Authz>,
        reply: UnboundedSender<ReplyPart>,
        trace: Option<Vec<u8>>,
    },
    /// A POST on a stateless route.
    Stateless {
        route: Arc<McpRoute>,
        body: Vec<u8>,
        authorization: Option<String>,
        authz: Option<Authz>,
        reply: UnboundedSender<ReplyPart>,
        trace: Option<Vec<u8>>,
    },
}

impl Job {
    async fn run(self, ctx: Rc<Relay>) {
        match self {
            Job::Call(call) => relay_call::run(ctx, call).await,
            Job::Initialize {
                route,
                body,
                subject,
                authorization,
                authz,
                reply,
                trace,
            } => {
                relay_call::initialize(
                    ctx,
                    route,
                    body,
                    subject,
                    authorization,
                    authz,
                    reply,
                    trace,
                )
                .await
            }
            Job::Stateless {
                route,
                body,
                authorization,
                authz,
                reply,
                trace,
            } => {
                relay_call::stateless(&ctx, route, body, authorization, authz, reply, trace, true)
                    .await
            }
        }
    }
}

/// How a 2026-07-28 request reaches its route's servers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Era {
    /// Relayed as it is: the one server speaks the revision (or the route does not translate).
    Native,
    /// The one server's revision is not known on this worker yet: its `server/discover` decides.
    Unknown,
    /// Through the compatibility mode.
    Compat,
}

/// Runs a 2026-07-28 request: natively, through the compatibility mode, or after learning which
/// the route's server needs. Returns whether it was relayed natively.
async fn modern_job(
    ctx: Rc<Relay>,
    route: Arc<McpRoute>,
    call: relay_modern::ModernCall,
    fallback: Option<Box<relay_compat::CompatCall>>,
    compat_only: bool,
    reply: UnboundedSender<ReplyPart>,
) -> bool {
    // The compatibility mode's futures are large and boxed: the native relay's state, which
    // every 2026-07-28 call moves into place, stays small.
    match fallback {
        None if relay_fanout::fans_out(&route) => {
            Box::pin(relay_fanout::serve(&ctx.shard, &route, call, None, reply)).await;
            true
        }
        None => {
            relay_modern::forward(ctx.shard.clone(), route, call, reply).await;
            true
        }
        Some(f) if compat_only => {
            Box::pin(relay_compat::serve(ctx, route, *f, reply)).await;
            false
        }
        Some(f) => Box::pin(relay_compat::serve_unknown(ctx, route, call, *f, reply)).await,
    }
}

/// Whether a (non-batch) message is an `initialize` request. The full parse is left to the
/// exchange: a message that holds neither the word nor a JSON escape cannot be one.
fn is_initialize(body: &[u8]) -> bool {
    thread_local! {
        static WORD: memchr::memmem::Finder<'static> = memchr::memmem::Finder::new(b"initialize");
    }
    (WORD.with(|w| w.find(body).is_some()) || memchr::memchr(b'\\', body).is_some())
        && jsonrpc::peek(body).ok().and_then(|e| e.method) == Some("initialize")
}

/// Checks the request and starts it (locally or on the owning worker).
fn start(
    ctx: &Rc<Relay>,
    route: &Arc<McpRoute>,
    head: &McpHead,
    body: Vec<u8>,
    principal: Option<&Principal>,
    asker: Option<Asker>,
    decided: &Cell<Option<&'static str>>,
) -> Result<Started, ReplyPart> {
    // DNS rebinding: a page on a foreign name that resolves to 127.0.0.1 reaches a loopback
    // listener with its own name as Host (and Origin), so on loopback the Host must be a
    // loopback name, or one the route's CORS policy allows.
    if head.local_loopback
        && !protocol::is_loopback_host(head.host())
        && !protocol::host_allowed(head.host(), &route.allowed_origins)
    {
        return Err(Reject::HostNotAllowed.reply(None));
    }
    if let Some(origin) = head.origin() {
        if !protocol::origin_allowed(origin, head.host(), &route.allowed_origins) {
            return Err(Reject::OriginNotAllowed.reply(None));
        }
    }
    // 2026-07-28: self-contained POSTs, relayed natively where the route's server speaks the
    // revision, else through the compatibility mode; with that mode off, the version is refused
    // below (-32022) and the client falls back to 2025.
    if head.method() == b"POST" && modern::is_modern(head.version()) {
        // One streamable-HTTP server, or several (fanned out): relayed as they are when the
        // servers speak the revision.
        let native = relay_modern::serves_modern(route)
            || (relay_fanout::fans_out(route) && !relay_fanout::runs_processes(route));
        // A stdio server (alone, or among others to fan out): processes started for the
        // question tell whether it speaks the revision (`relay::compat`).
        let stdio = relay_compat::stdio_candidate(route);
        // Only a route whose servers may speak the revision asks what this worker learned.
        let era = if (native && route.compat) || stdio {
            ctx.compat.era(route.key)
        } else {
            None
        };
        let mode = match (native, route.compat, era) {
            (true, false, _) | (true, true, Some(true)) => Some(Era::Native),
            (true, true, None) => Some(Era::Unknown),
            (false, true, Some(true) | None) if stdio => Some(Era::Unknown),
            (_, true, _) => Some(Era::Compat),
            (false, false, _) => None,
        };
        if let Some(mode) = mode {
            return start_modern(ctx, route, head, body, principal, asker, decided, mode);
        }
    }
    // Sessions are bound to who the token names; stateless routes keep no session.
    let subject = match relay::binding(principal) {
        Ok(s) => s,
        Err(NoIdentity) if !route.stateful => None,
        Err(NoIdentity) => return Err(Reject::NoIdentity.reply(None)),
    };
    if let protocol::VersionCheck::Unsupported = protocol::check_version(head.version()) {
        let requested = String::from_utf8_lossy(head.version().unwrap_or_default());
        // The refusal answers the request by its id (a batch or a GET has none).
        let env = jsonrpc::peek(&body).ok();
        let id = env.as_ref().and_then(|e| e.id);
        return Err(reject::unsupported_version(&requested, id));
    }
    let (tx, rx) = unbounded();
    match head.method() {
        b"POST" => {
            if !protocol::accepts_post(head.accept()) {
                return Err(Reject::NotAcceptablePost.reply(None));
            }
            if !protocol::is_json_content_type(head.content_type()) {
                return Err(Reject::UnsupportedMediaType.reply(None));
            }
            // A call the rules deny is answered here: it never reaches the owner or a server.
            // Only a list's answer needs the rules where it is answered.
            let authz = match (asker, &route.authorization) {
                (Some(a), Some(set)) => {
                    let check = authorize::Check {
                        shard: &ctx.shard,
                        route,
                        set,
                        asker: &a,
                        decided,
                    };
                    let lists = check.message(&body)?;
                    lists.then(|| a.with_rules(set))
                }
                _ => None,
            };
            if !route.stateful {
                let job = Job::Stateless {
                    route: route.clone(),
                    body,
                    authorization: head.authorization(),
                    authz,
                    reply: tx,
                    trace: head.traceparent().map(<[u8]>::to_vec),
                };
                return Ok(Started::Reply(rx, Some(job)));
            }
            if !jsonrpc::is_batch(&body) && is_initialize(&body) {
                let job = Job::Initialize {
                    route: route.clone(),
                    body,
                    subject,
                    authorization: head.authorization(),
                    authz,
                    reply: tx,
                    trace: head.traceparent().map(<[u8]>::to_vec),
                };
                return Ok(Started::Reply(rx, Some(job)));
            }
            let job = hand_off(ctx, route, head, CallOp::Post(body), subject, authz, tx)?;
            Ok(Started::Reply(rx, job))
        }
        b"GET" => {
            if !route.stateful {
                return Err(Reject::MethodNotAllowed.reply(None));
            }
            if !protocol::accepts_sse(head.accept()) {
                return Err(Reject::NotAcceptableStream.reply(None));
            }
            let job = hand_off(
                ctx,
                route,
                head,
                CallOp::Get(head.last_event_id()),
                subject,
                None,
                tx,
            )?;
            Ok(Started::Reply(rx, job))
        }
        b"DELETE" => {
            if !route.stateful {
                return Err(Reject::MethodNotAllowed.reply(None));
            }
            let job = hand_off(ctx, route, head, CallOp::Delete, subject, None, tx)?;
            Ok(Started::Reply(rx, job))
        }
        _ => Err(Reject::MethodNotAllowed.reply(None)),
    }
}

/// Checks a 2026-07-28 POST (the transport rules, then its mirrored headers against the body)
/// and starts its relay on this worker.
#[allow(clippy::too_many_arguments)]
fn start_modern(
    ctx: &Rc<Relay>,
    route: &Arc<McpRoute>,
    head: &McpHead,
    body: Vec<u8>,
    principal: Option<&Principal>,
    asker: Option<Asker>,
    decided: &Cell<Option<&'static str>>,
    mode: Era,
) -> Result<Started, ReplyPart> {
    // A refusal answers the request by its id, when it has one.
    let id_of = || {
        jsonrpc::peek(&body)
            .ok()
            .and_then(|e| e.id.map(str::to_owned))
    };
    if !protocol::accepts_post(head.accept()) {
        return Err(Reject::NotAcceptablePost.reply(id_of().as_deref()));
    }
    if !protocol::is_json_content_type(head.content_type()) {
        return Err(Reject::UnsupportedMediaType.reply(id_of().as_deref()));
    }
    let mirrored = modern::Mirrored {
        version: head.version().unwrap_or_default(),
        method: head.mcp_method(),
        name: head.mcp_name(),
    };
    let checked = modern::check(mirrored, &body).map_err(|r| reject::modern_refused(&r))?;
    let mut authz = None;
    let mut list_method = None;
    if let (Some(a), Some(set)) = (asker, &route.authorization) {
        // Decided on the body's own method and name (decoded; `Mcp-Name` is base64 for some
        // names and is not tied to the body for every method): what the server will run.
        let env = jsonrpc::peek(&body).map_err(|e| Reject::NotJsonRpc(e).reply(None))?;
        let name = env.name.as_deref().unwrap_or("");
        let id = checked.id.as_deref();
        let method = env.method.unwrap_or("");
        let check = authorize::Check {
            shard: &ctx.shard,
            route,
            set,
            asker: &a,
            decided,
        };
        check.call(id, method, name)?;
        list_method = authorize::list_method(method);
        authz = list_method.map(|_| a.with_rules(set));
    }
    let mut headers = Vec::with_capacity(128);
    if let Some(m) = head.mcp_method() {
        h1::write_header(&mut headers, "mcp-method", m);
    }
    if let Some(n) = head.mcp_name() {
        h1::write_header(&mut headers, "mcp-name", n);
    }
    if let Some(t) = head.traceparent() {
        h1::write_header(&mut headers, "traceparent", t);
    }
    for (name, value) in head.mcp_params() {
        headers.extend_from_slice(name);
        headers.extend_from_slice(b": ");
        headers.extend_from_slice(value);
        headers.extend_from_slice(b"\r\n");
    }
    if let Some(a) = head.authorization() {
        h1::write_header(&mut headers, "authorization", a.as_bytes());
    }
    // The compatibility mode holds sessions per principal (none on a stateless route).
    let fallback = match mode {
        Era::Native => None,
        Era::Unknown | Era::Compat => {
            // Bound only here: a native call holds no session.
            let subject = match relay::binding(principal) {
                Ok(s) => s,
                Err(NoIdentity) if !route.stateful => None,
                Err(NoIdentity) => return Err(Reject::NoIdentity.reply(checked.id.as_deref())),
            };
            Some(Box::new(relay_compat::CompatCall {
                body: Vec::new(),
                id: checked.id.clone(),
                method: String::from_utf8_lossy(head.mcp_method().unwrap_or_default())
                    .trim()
                    .to_owned(),
                subject,
                authorization: head.authorization(),
                authz: authz.clone(),
                trace: head.traceparent().map(<[u8]>::to_vec),
                params: head
                    .mcp_params()
                    .map(|(n, v)| {
                        let suffix = n.get(b"mcp-param-".len()..).unwrap_or_default();
                        (
                            String::from_utf8_lossy(suffix).to_ascii_lowercase(),
                            v.to_vec(),
                        )
                    })
                    .collect(),
            }))
        }
    };
    let (body, fallback) = match (mode, fallback) {
        (Era::Compat, Some(mut f)) => {
            f.body = body;
            (Vec::new(), Some(f))
        }
        (_, Some(mut f)) => {
            f.body = body.clone();
            (body, Some(f))
        }
        (_, None) => (body, None),
    };
    let call = relay_modern::ModernCall {
        body,
        id: checked.id,
        headers,
        list_method,
        authz,
        listen: head.mcp_method().map(<[u8]>::trim_ascii) == Some(b"subscriptions/listen"),
    };
    // The mirrored headers were checked against the body: they name what the server runs. A
    // base64-encoded name (non-ASCII) is not decoded for a label.
    let text = |v: Option<&[u8]>| {
        v.and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    };
    let name = text(head.mcp_name()).filter(|n| !n.starts_with("=?"));
    Ok(Started::Modern(ModernJob {
        route: route.clone(),
        call,
        // The method as its (static) metric label: no copy of the header.
        counted: (
            std::str::from_utf8(head.mcp_method().unwrap_or_default())
                .map_or("other", crate::metrics::mcp_method_label),
            name,
        ),
        fallback,
        compat_only: mode == Era::Compat,
    }))
}

/// The call for the request's session: returned to run here if this worker owns the session,
/// else sent to the owner. A request without a session id is a 400 (T12).
fn hand_off(
    ctx: &Rc<Relay>,
    route: &McpRoute,
    head: &McpHead,
    op: CallOp,
    subject: Subject,
    authz: Option<Authz>,
    reply: UnboundedSender<ReplyPart>,
) -> Result<Option<Job>, ReplyPart> {
    let Some(session) = head.session() else {
        return Err(Reject::SessionIdRequired.reply(None));
    };
    let call = McpCall {
        session,
        route: route.key,
        op,
        subject,
        authz,
        reply,
        trace: head.traceparent().map(<[u8]>::to_vec),
    };
    let not_found = || Reject::SessionNotFound.reply(None);
    let snap = ctx.shard.snapshot();
    let Some(owner) = session::owner_of(&call.session, snap.settings.peering.as_deref()) else {
        return Err(not_found());
    };
    if owner == ctx.shard.id {
        return Ok(Some(Job::Call(call)));
    }
    match ctx.inbox(owner) {
        Some(inbox) => inbox
            .unbounded_send(call)
            .map(|()| None)
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
    extra: Option<(&str, &[u8])>,
    body: &[u8],
) {
    head(out, status, date, cors, session);
    if let Some((name, value)) = extra {
        h1::write_header(out, name, value);
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

/// The first part of a call's answer, or `None`: the call ended without a word, or the client
/// closed its connection meanwhile (see [`next_part`]).
async fn first_part<S: ConnIo>(
    io: &mut S,
    bufs: &mut Bufs,
    rx: &mut UnboundedReceiver<ReplyPart>,
) -> Option<ReplyPart> {
    match next_part(io, bufs, rx, None).await {
        Next::Part(p) => Some(p),
        Next::Ended | Next::Gone | Next::Idle => None,
    }
}

/// What waiting for the next part of an answer gave.
enum Next {
    Part(ReplyPart),
    /// The call sent its last part.
    Ended,
    /// The client closed its connection (dropping the receiver tells the call: a 2026-07-28
    /// request is cancelled upstream; a 2025 call goes on).
    Gone,
    /// Nothing for `idle` (an SSE stream then gets a keep-alive comment).
    Idle,
}

/// The next part of a call's answer, watching the client's connection once the wait passes
/// [`WATCH_AFTER`]: a close ends the wait (`Gone`). Bytes the client pipelines meanwhile are
/// kept for its next request (watching stops once [`WATCH_PIPELINED`] bytes wait). Most parts
/// come at once, so the watching read (and its cancellation) is paid only by slow ones.
async fn next_part<S: ConnIo>(
    io: &mut S,
    bufs: &mut Bufs,
    rx: &mut UnboundedReceiver<ReplyPart>,
    idle: Option<Duration>,
) -> Next {
    let got = |p: Option<ReplyPart>| p.map_or(Next::Ended, Next::Part);
    let deadline = idle.map(|d| monoio::time::Instant::now() + d);
    let quick = idle.map_or(WATCH_AFTER, |d| d.min(WATCH_AFTER));
    if let Ok(part) = monoio::time::timeout(quick, rx.next()).await {
        return got(part);
    }
    let wait = async {
        match deadline {
            Some(d) => monoio::time::timeout_at(d, rx.next()).await.ok(),
            None => Some(rx.next().await),
        }
    };
    match watching(io, bufs, wait).await {
        None => Next::Gone,
        Some(part) => part.map_or(Next::Idle, got),
    }
}

/// Waits for `wait`, watching the client's connection meanwhile: `None` when it closes first.
/// Bytes the client pipelines meanwhile are kept for its next request (watching stops once
/// [`WATCH_PIPELINED`] bytes wait).
async fn watching<S: ConnIo, T>(
    io: &mut S,
    bufs: &mut Bufs,
    wait: impl std::future::Future<Output = T>,
) -> Option<T> {
    use futures_util::future::{select, Either};
    let mut wait = std::pin::pin!(wait);
    loop {
        if bufs.pending().len() >= WATCH_PIPELINED {
            return Some(wait.await);
        }
        let canceller = monoio::io::Canceller::new();
        let read = std::pin::pin!(bufs.read_more(io, Some(canceller.handle())));
        match select(wait.as_mut(), read).await {
            Either::Left((done, read)) => {
                let _ = canceller.cancel();
                // The read ends now: cancelled, or with bytes that stay in `bufs`.
                let _ = read.await;
                return Some(done);
            }
            Either::Right((Ok(0) | Err(_), _)) => return None,
            Either::Right((Ok(_), _)) => continue,
        }
    }
}

/// How long a call runs before its client's connection is watched.
const WATCH_AFTER: Duration = Duration::from_millis(250);

/// The most pipelined bytes read while an answer is prepared.
const WATCH_PIPELINED: usize = 64 * 1024;

async fn write_reply<S: ConnIo>(
    io: &mut S,
    ctx: &Rc<Relay>,
    bufs: &mut Bufs,
    mut rx: UnboundedReceiver<ReplyPart>,
    cors: &[u8],
    stateful: bool,
) -> (u16, bool) {
    let date = ctx.shard.date();
    let Some(first) = first_part(io, bufs, &mut rx).await else {
        // The client went away (dropping `rx` tells the call, which cancels it upstream), or
        // the call ended without a word.
        return (CLIENT_CLOSED, false);
    };
    let first = match whole_answer(&mut bufs.out, first, &date, cors, stateful) {
        Ok(status) => return (status, bufs.flush(io).await.is_ok()),
        Err(part) => part,
    };
    let out = &mut bufs.out;
    match first {
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
                match next_part(io, bufs, &mut rx, Some(KEEPALIVE)).await {
                    Next::Part(ReplyPart::Event(ev)) => h1::write_chunk(&mut bufs.out, &ev),
                    Next::Part(ReplyPart::End) | Next::Ended => {
                        h1::write_last_chunk(&mut bufs.out);
                        return (200, bufs.flush(io).await.is_ok());
                    }
                    Next::Part(_) => continue,
                    Next::Idle => {
                        let mut c = Vec::new();
                        sse::write_comment(&mut c, "keep-alive");
                        h1::write_chunk(&mut bufs.out, &c);
                    }
                    // The client went away; a 2025 call goes on (a disconnect is not a
                    // cancellation there), a 2026-07-28 one is dropped with `rx`.
                    Next::Gone => return (200, false),
                }
                if bufs.flush(io).await.is_err() {
                    // The client went away; the call goes on (a disconnect is not a cancellation).
                    return (200, false);
                }
            }
        }
        // A stream's part before its start: a relay bug, never a client's doing; the connection
        // closes without an answer.
        _ => (LocalError::UpstreamProtocol.status(), false),
    }
}

/// Writes a whole answer: its status; a stream's part is given back.
fn whole_answer(
    out: &mut Vec<u8>,
    part: ReplyPart,
    date: &[u8],
    cors: &[u8],
    stateful: bool,
) -> Result<u16, ReplyPart> {
    let (status, session, extra, body) = match &part {
        ReplyPart::Json { body, session } => (200, session.as_deref(), None, &body[..]),
        ReplyPart::Error { status, body } => {
            let extra = reject::refusal_header(*status, stateful);
            (*status, None, extra, &body[..])
        }
        ReplyPart::Forbidden { challenge, body } => {
            let extra = Some(("www-authenticate", challenge.as_bytes()));
            (403, None, extra, &body[..])
        }
        ReplyPart::Relayed { status, body } => (*status, None, None, &body[..]),
        ReplyPart::Accepted => (202, None, None, &b""[..]),
        ReplyPart::SessionDeleted => (200, None, None, &b""[..]),
        ReplyPart::SseStart { .. } | ReplyPart::Event(_) | ReplyPart::End => return Err(part),
    };
    whole(out, status, date, cors, session, extra, body);
    Ok(status)
}

/// Writes a whole answer and sends it (with whatever waits in `bufs`).
async fn write_answer<S: ConnIo>(
    io: &mut S,
    bufs: &mut Bufs,
    part: ReplyPart,
    date: &[u8],
    cors: &[u8],
    stateful: bool,
) -> (u16, bool) {
    match whole_answer(&mut bufs.out, part, date, cors, stateful) {
        Ok(status) => (status, bufs.flush(io).await.is_ok()),
        // A stream's part without its stream: a relay bug, never a client's doing; the
        // connection closes without an answer.
        Err(_) => (LocalError::UpstreamProtocol.status(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_timeout_past_the_clock_is_no_timeout() {
        let start = monoio::time::Instant::now();
        assert_eq!(
            call_deadline(start, Duration::from_secs(7)),
            start + Duration::from_secs(7)
        );
        for huge in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
            assert!(call_deadline(start, huge) >= start + Duration::from_secs(365 * 86_400));
        }
    }
}
