//! One MCP call on the worker that owns the session: routing a message to the right target(s),
//! merging answers from several targets, and turning target output into JSON or SSE replies.
//!
//! A request's answer is JSON when the target's first message is the response, and SSE when
//! notifications (progress, logging) or server requests come first — each relayed the moment it
//! arrives. With several targets: `initialize` and the list methods fan out and merge
//! (`<target>_<name>` prefixes), `tools/call` and `prompts/get` go to the prefixed target,
//! notifications fan out, and a failing target is reported without failing the others.
//! Not here: HTTP rules (`front`), process and connection handling (`stdio`, `upstream`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::mpsc::UnboundedSender;
use futures_util::StreamExt;

use crate::mcp::jsonrpc::{self, Kind};
use crate::mcp::{merge, protocol};
use crate::relay::authorize::{self, Authz};
use crate::relay::reject::{self, Reject};
use crate::relay::session::{self, Session};
use crate::relay::target::shared_stream::TargetMsg;
use crate::relay::target::Target;
use crate::relay::{CallOp, McpCall, Relay, ReplyPart, Subject};
use crate::shard::Shard;
use crate::snapshot::McpRoute;

mod in_flight;

use in_flight::{cancel_from_client, fan_out, relay, result_of, InFlight};

/// A route's `mcpAuthorization` on the worker running the call: the caller and the worker's
/// decision cache.
pub(crate) struct Guard<'a> {
    pub(crate) shard: &'a Shard,
    pub(crate) authz: &'a Authz,
}

impl<'a> Guard<'a> {
    fn new(shard: &'a Shard, authz: &'a Authz) -> Self {
        Guard { shard, authz }
    }
}

/// Filters the answer to a list request (`method`) before the client sees it.
pub(crate) struct ListFilter<'a> {
    guard: &'a Guard<'a>,
    method: &'a str,
}

impl ListFilter<'_> {
    /// The answer (a JSON-RPC message with the client's `id`) with what the rules allow.
    pub(crate) fn apply(&self, s: &Session, id: &str, msg: Vec<u8>) -> Vec<u8> {
        let g = self.guard;
        let filtered = authorize::filter_answer(g.shard, &s.route, g.authz, self.method, id, msg);
        // A 2026-07-28 answer filtered for this caller: no cache may share it (`cacheScope`).
        if memchr::memmem::find(&filtered, b"\"cacheScope\"").is_some() {
            crate::mcp::compat::private_cache(filtered)
        } else {
            filtered
        }
    }
}

/// Runs a call for a session this worker owns.
pub(crate) async fn run(ctx: Rc<Relay>, call: McpCall) {
    let McpCall {
        session,
        route,
        op,
        subject,
        authz,
        reply,
        trace,
    } = call;
    let Some(s) = ctx.sessions.get(&session) else {
        let _ = reply.unbounded_send(Reject::SessionNotFound.reply(None));
        return;
    };
    // Sessions are bound to their subject and their route: another subject, or the same id on
    // another route (whose policies, `mcpAuthorization` among them, were not the ones that
    // checked this request), sees the same as an unknown id (A14); so does a session the
    // compatibility mode holds (its id is never given out).
    if s.subject != subject || s.route.key != route || s.compat.get() {
        let _ = reply.unbounded_send(Reject::SessionNotFound.reply(None));
        return;
    }
    if s.is_closed() {
        ctx.sessions.remove(&session);
        s.close().await;
        let _ = reply.unbounded_send(Reject::SessionEnded.reply(None));
        return;
    }
    match op {
        CallOp::Delete => {
            ctx.sessions.remove(&session);
            s.close().await;
            let _ = reply.unbounded_send(ReplyPart::SessionDeleted);
        }
        CallOp::Get(last) => s.attach_stream(reply, last.and_then(|l| l.trim().parse().ok())),
        CallOp::Post(body) => {
            let guard = authz.as_ref().map(|a| Guard::new(&ctx.shard, a));
            post(
                &ctx.shard,
                &s,
                body,
                &reply,
                None,
                guard.as_ref(),
                trace.as_deref(),
            )
            .await;
            if s.is_closed() {
                ctx.sessions.remove(&session);
                close_later(s);
            }
        }
    }
}

/// `initialize` on a stateful route: a new session owned by this worker.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn initialize(
    ctx: Rc<Relay>,
    route: Arc<McpRoute>,
    body: Vec<u8>,
    subject: Subject,
    authorization: Option<String>,
    authz: Option<Authz>,
    reply: UnboundedSender<ReplyPart>,
    trace: Option<Vec<u8>>,
) {
    let env_id = || {
        jsonrpc::peek(&body)
            .ok()
            .and_then(|e| e.id.map(str::to_owned))
    };
    let s = match open(&ctx, &route, subject, authorization) {
        Ok(s) => s,
        Err(reject) => {
            let _ = reply.unbounded_send(reject.reply(env_id().as_deref()));
            return;
        }
    };
    let id = s.id.clone();
    ctx.sessions.insert(s.clone());
    tracing::info!(mcp.session = %id, route = %route.name, "mcp session started");
    let guard = authz.as_ref().map(|a| Guard::new(&ctx.shard, a));
    post(
        &ctx.shard,
        &s,
        body,
        &reply,
        Some(id.clone()),
        guard.as_ref(),
        trace.as_deref(),
    )
    .await;
    if s.is_closed() {
        ctx.sessions.remove(&id);
        close_later(s);
    }
}

/// A new session of `subject` on `route`, owned by this worker (not yet registered), within
/// the session caps; a refusal is counted.
pub(crate) fn open(
    ctx: &Relay,
    route: &Arc<McpRoute>,
    subject: Subject,
    authorization: Option<String>,
) -> Result<Rc<Session>, Reject> {
    let limits = ctx.shard.snapshot().settings.mcp_limits;
    if ctx.sessions.len() >= limits.sessions_per_worker {
        ctx.shard
            .metrics
            .borrow_mut()
            .refuse(crate::metrics::Refused::SessionsPerWorker);
        let max = limits.sessions_per_worker;
        return Err(Reject::SessionsPerWorker { max });
    }
    let slots = match session::Slots::take(&subject, route, &limits) {
        Ok(slots) => slots,
        Err(over) => {
            ctx.shard.metrics.borrow_mut().refuse(match over {
                session::OverCap::Subject(_) => crate::metrics::Refused::SessionsPerSubject,
                session::OverCap::Processes(_) => crate::metrics::Refused::StdioProcesses,
            });
            return Err(over_cap(over, &limits));
        }
    };
    let id = session::mint_id(
        ctx.shard.id,
        ctx.shard.snapshot().settings.peering.as_deref(),
    );
    Session::open(id, route, subject, authorization, slots).map_err(|e| {
        tracing::error!(route = %route.name, error = %e, "cannot start the MCP session");
        Reject::ServerNotStarted
    })
}

/// The status and message for a session refused by a cap: 429 for the client's own sessions,
/// 503 when the proxy as a whole is full.
fn over_cap(over: session::OverCap, limits: &crate::snapshot::McpLimits) -> Reject {
    match over {
        session::OverCap::Subject(held) => Reject::SessionsPerSubject {
            held,
            max: limits.sessions_per_subject,
        },
        session::OverCap::Processes(running) => Reject::StdioProcesses {
            running,
            max: limits.stdio_processes,
        },
    }
}

/// Tears a session down after its answer went out, in a task of its own: the call runs in the
/// client connection's task, which should not wait for a child's exit or an upstream DELETE
/// before it reads the next request.
fn close_later(s: Rc<Session>) {
    monoio::spawn(async move { s.close().await });
}

/// A POST on a stateless route: fresh targets for this one message, torn down afterwards.
/// `handshake`: each target gets a 2025 `initialize` first (a 2026-07-28 server over stdio
/// takes the request itself as its first message instead).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn stateless(
    ctx: &Relay,
    route: Arc<McpRoute>,
    body: Vec<u8>,
    authorization: Option<String>,
    authz: Option<Authz>,
    reply: UnboundedSender<ReplyPart>,
    trace: Option<Vec<u8>>,
    handshake: bool,
) {
    let s = match open_fresh(ctx, &route, authorization) {
        Ok(s) => s,
        Err(r) => {
            let _ = reply.unbounded_send(r.reply(None));
            return;
        }
    };
    let is_init = jsonrpc::peek(&body).ok().and_then(|e| e.method) == Some("initialize");
    if handshake && !is_init {
        // Each upstream needs its own handshake before the real message (agentgateway does the same).
        let init = jsonrpc::request(
            "\"portcullis-init\"",
            "initialize",
            Some(br#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"portcullis","version":"1"}}"#),
        );
        for t in &s.targets {
            let up = s.upstream_id();
            let msg = jsonrpc::replace_id(&init, &up).unwrap_or_else(|_| init.clone());
            let mut rx = t.request(&up, msg, trace.as_deref());
            let answered = monoio::time::timeout(route.call_timeout, async {
                while let Some(m) = rx.next().await {
                    if matches!(m, TargetMsg::Final(_) | TargetMsg::Failed(_)) {
                        break;
                    }
                }
            })
            .await;
            if answered.is_err() {
                t.cancel(&up, "timed out");
            }
            t.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec())
                .await;
        }
    }
    let guard = authz.as_ref().map(|a| Guard::new(&ctx.shard, a));
    post(
        &ctx.shard,
        &s,
        body,
        &reply,
        None,
        guard.as_ref(),
        trace.as_deref(),
    )
    .await;
    close_later(s);
}

/// Fresh targets for one message on a stateless route (no subject, never registered), within
/// the caps; a refusal is counted.
pub(crate) fn open_fresh(
    ctx: &Relay,
    route: &Arc<McpRoute>,
    authorization: Option<String>,
) -> Result<Rc<Session>, Reject> {
    let limits = ctx.shard.snapshot().settings.mcp_limits;
    let slots = session::Slots::take(&None, route, &limits).map_err(|over| {
        ctx.shard.metrics.borrow_mut().refuse(match over {
            session::OverCap::Subject(_) => crate::metrics::Refused::SessionsPerSubject,
            session::OverCap::Processes(_) => crate::metrics::Refused::StdioProcesses,
        });
        over_cap(over, &limits)
    })?;
    Session::open(String::new(), route, None, authorization, slots).map_err(|e| {
        tracing::error!(route = %route.name, error = %e, "cannot start the MCP server");
        Reject::ServerNotStarted
    })
}

/// One POSTed message (or batch) through a session's targets.
/// `trace`: the `traceparent` HTTP targets get with this message.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn post(
    shard: &Shard,
    s: &Rc<Session>,
    body: Vec<u8>,
    reply: &UnboundedSender<ReplyPart>,
    new_session: Option<String>,
    guard: Option<&Guard<'_>>,
    trace: Option<&[u8]>,
) {
    if jsonrpc::is_batch(&body) {
        // Batches exist only in 2025-03-26 (T4).
        if s.version.get() != "2025-03-26" {
            let _ = reply.unbounded_send(Reject::BatchNotAllowed.reply(None));
            return;
        }
        return batch(shard, s, body, reply, guard, trace).await;
    }
    let env = match jsonrpc::peek(&body) {
        Ok(e) => e,
        Err(e) => {
            let _ = reply.unbounded_send(Reject::NotJsonRpc(e).reply(None));
            return;
        }
    };
    match env.kind {
        Kind::Notification if env.method == Some("notifications/cancelled") => {
            // The client names its own id; the server knows the call by the one we gave it.
            cancel_from_client(s, &body);
            let _ = reply.unbounded_send(ReplyPart::Accepted);
        }
        Kind::Notification | Kind::Response => {
            if let Some(method) = env.method {
                count(shard, s, method, None, None);
            }
            for t in &s.targets {
                t.send(body.clone()).await;
            }
            let _ = reply.unbounded_send(ReplyPart::Accepted);
        }
        Kind::Request => {
            let id = env.id.unwrap_or("null").to_owned();
            let method = env.method.unwrap_or("").to_owned();
            if method == "initialize" {
                let requested = env.protocol_version.unwrap_or("2025-03-26");
                let v = protocol::negotiate(requested);
                s.version.set(v);
                for t in &s.targets {
                    t.set_version(v);
                }
            }
            let name = env.name.map(|n| n.into_owned());
            let started = Instant::now();
            request(
                s,
                &id,
                &method,
                name.as_deref(),
                body,
                reply,
                new_session,
                guard,
                trace,
            )
            .await;
            count(shard, s, &method, name.as_deref(), Some(started.elapsed()));
        }
    }
}

/// Counts an MCP message of session `s` (`agentgateway_mcp_requests_total`, and the duration
/// of a request): the target it went to, and the unprefixed name it called.
fn count(shard: &Shard, s: &Session, method: &str, name: Option<&str>, took: Option<Duration>) {
    let route = &s.route;
    let (server, resource) = if s.targets.len() == 1 && !route.prefix {
        (Some(s.targets[0].name()), name)
    } else {
        let names: Vec<&str> = s.targets.iter().map(Target::name).collect();
        match name.and_then(|n| merge::split(n, &names)) {
            Some((t, inner)) => (Some(t), Some(inner)),
            None => (None, name),
        }
    };
    shard.metrics.borrow_mut().mcp_request(
        &route.name,
        &route.metric_scope,
        method,
        server,
        resource,
        took,
    );
}

async fn batch(
    shard: &Shard,
    s: &Rc<Session>,
    body: Vec<u8>,
    reply: &UnboundedSender<ReplyPart>,
    guard: Option<&Guard<'_>>,
    trace: Option<&[u8]>,
) {
    let parts: Vec<Vec<u8>> = match jsonrpc::split_batch(&body) {
        Ok(p) => p.into_iter().map(<[u8]>::to_vec).collect(),
        Err(e) => {
            let _ = reply.unbounded_send(Reject::NotJsonRpc(e).reply(None));
            return;
        }
    };
    let mut answers = Vec::new();
    for p in parts {
        let (tx, mut rx) = futures_channel::mpsc::unbounded();
        Box::pin(post(shard, s, p, &tx, None, guard, trace)).await;
        drop(tx);
        while let Some(part) = rx.next().await {
            match part {
                ReplyPart::Json { body, .. } | ReplyPart::Error { body, .. } => answers.push(body),
                _ => {}
            }
        }
    }
    if answers.is_empty() {
        let _ = reply.unbounded_send(ReplyPart::Accepted);
        return;
    }
    let mut out = b"[".to_vec();
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(a);
    }
    out.push(b']');
    let _ = reply.unbounded_send(ReplyPart::Json {
        body: out,
        session: None,
    });
}

const LIST_METHODS: [(&str, &str); 4] = [
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
];

#[allow(clippy::too_many_arguments)]
async fn request(
    s: &Rc<Session>,
    id: &str,
    method: &str,
    name: Option<&str>,
    body: Vec<u8>,
    reply: &UnboundedSender<ReplyPart>,
    new_session: Option<String>,
    guard: Option<&Guard<'_>>,
    trace: Option<&[u8]>,
) {
    let route = &s.route;
    if s.targets.len() == 1 && !route.prefix {
        // A list's answer is filtered on its way back (`mcpAuthorization`).
        let filter = guard.filter(|_| authorize::list_of(method).is_some());
        let filter = filter.map(|g| ListFilter { guard: g, method });
        return single_target(s, id, body, reply, new_session, filter.as_ref(), trace).await;
    }
    if method == "initialize" {
        let finals = fan_out(s, id, &body, trace).await;
        let results: Vec<(&str, Vec<u8>)> = finals
            .iter()
            .filter_map(|(t, r)| result_of(r).map(|x| (*t, x)))
            .collect();
        let refs: Vec<(&str, &[u8])> = results.iter().map(|(t, r)| (*t, r.as_slice())).collect();
        let merged = merge::merge_initialize(&refs, s.version.get(), "portcullis");
        return send_merged(reply, id, merged, new_session);
    }
    if let Some((_, key)) = LIST_METHODS.iter().find(|(m, _)| *m == method) {
        let finals = fan_out(s, id, &body, trace).await;
        let mut results = Vec::new();
        for (t, r) in &finals {
            match result_of(r) {
                Some(x) => results.push((*t, x)),
                None => {
                    tracing::warn!(target_name = %t, method, "a target failed the list; it is left out")
                }
            }
        }
        let refs: Vec<(&str, &[u8])> = results.iter().map(|(t, r)| (*t, r.as_slice())).collect();
        let merged = match guard {
            Some(g) => authorize::merge_filtered(g.shard, route, Some(g.authz), method, &refs),
            None => merge::merge_list(key, &refs, route.prefix),
        };
        return send_merged(reply, id, merged, None);
    }
    match method {
        "tools/call" | "prompts/get" => call_by_name(s, id, method, name, body, reply, trace).await,
        "ping" => {
            let _ = reply.unbounded_send(ReplyPart::Json {
                body: jsonrpc::result_object(id, b"{}"),
                session: None,
            });
        }
        "logging/setLevel" => {
            let _ = fan_out(s, id, &body, trace).await;
            let _ = reply.unbounded_send(ReplyPart::Json {
                body: jsonrpc::result_object(id, b"{}"),
                session: None,
            });
        }
        _ => {
            let msg =
                format!("method {method} is not supported when a route has several MCP targets");
            let _ = reply.unbounded_send(ReplyPart::Json {
                body: jsonrpc::error_object(Some(id), jsonrpc::METHOD_NOT_FOUND, &msg, None),
                session: None,
            });
        }
    }
}

/// The answer to request `id` merged from every target's (or why they could not be merged).
fn send_merged(
    reply: &UnboundedSender<ReplyPart>,
    id: &str,
    merged: Result<Vec<u8>, String>,
    session: Option<String>,
) {
    let body = match merged {
        Ok(m) => jsonrpc::result_object(id, &m),
        Err(e) => jsonrpc::error_object(Some(id), jsonrpc::INTERNAL_ERROR, &e, None),
    };
    let _ = reply.unbounded_send(ReplyPart::Json { body, session });
}

/// A route with one target and no prefixes: the message goes through as it is.
async fn single_target(
    s: &Rc<Session>,
    id: &str,
    body: Vec<u8>,
    reply: &UnboundedSender<ReplyPart>,
    new_session: Option<String>,
    filter: Option<&ListFilter<'_>>,
    trace: Option<&[u8]>,
) {
    let (call, body) = InFlight::start(s, 0, id, &body);
    if let Target::Http(h) = &s.targets[0] {
        // The upstream exchange runs in this task, next to the relaying (no spawn); when
        // the relaying ends first (timeout, client gone), the exchange is dropped with it.
        let (tx, rx) = futures_channel::mpsc::unbounded();
        let up_id = call.upstream.clone();
        let up = std::pin::pin!(h.request_into(&up_id, body, trace, tx));
        let rel = std::pin::pin!(relay(s, call, id, rx, reply, new_session, filter));
        if let futures_util::future::Either::Left((_, rel)) =
            futures_util::future::select(up, rel).await
        {
            rel.await;
        }
        return;
    }
    let rx = s.targets[0].request(&call.upstream, body, trace);
    relay(s, call, id, rx, reply, new_session, filter).await
}

/// Request `body` (the client's id `id`) to target `ti` of session `s` alone, as it is (no
/// renaming, no merge); its answer, with the client's id, goes to `reply`.
pub(crate) async fn to_target(
    s: &Rc<Session>,
    ti: usize,
    id: &str,
    body: &[u8],
    reply: &UnboundedSender<ReplyPart>,
    trace: Option<&[u8]>,
) {
    let (call, body) = InFlight::start(s, ti, id, body);
    let rx = s.targets[ti].request(&call.upstream, body, trace);
    relay(s, call, id, rx, reply, None, None).await
}

/// `tools/call` or `prompts/get` on a route with several targets (or prefixes): sent to the
/// target the prefixed name names, with the name it has there.
async fn call_by_name(
    s: &Rc<Session>,
    id: &str,
    method: &str,
    name: Option<&str>,
    body: Vec<u8>,
    reply: &UnboundedSender<ReplyPart>,
    trace: Option<&[u8]>,
) {
    let names: Vec<&str> = s.targets.iter().map(Target::name).collect();
    let Some((target, inner)) = name.and_then(|n| merge::split(n, &names)) else {
        let msg = format!(
            "unknown {}: {}",
            if method == "tools/call" {
                "tool"
            } else {
                "prompt"
            },
            name.unwrap_or("")
        );
        let _ = reply.unbounded_send(ReplyPart::Json {
            body: jsonrpc::error_object(Some(id), jsonrpc::INVALID_PARAMS, &msg, None),
            session: None,
        });
        return;
    };
    let ti = s
        .targets
        .iter()
        .position(|t| t.name() == target)
        .expect("split returns a known target");
    let body = match merge::rename_param_name(&body, inner) {
        Ok(b) => b,
        Err(e) => {
            let _ = reply.unbounded_send(reject::invalid_params(id, &e));
            return;
        }
    };
    to_target(s, ti, id, &body, reply, trace).await
}
