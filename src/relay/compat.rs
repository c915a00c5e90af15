//! The compatibility mode: MCP 2026-07-28 clients served by servers that speak only the 2025
//! revisions (2025 stdio and SSE servers, streamable-HTTP servers that refuse
//! `server/discover`, and routes with several servers unless all of them are streamable-HTTP or
//! stdio servers that speak the revision), so a modern client never has to fall back.
//!
//! Portcullis holds the 2025 sessions itself: one per route and principal (issuer + subject,
//! the binding 2025 sessions have) on the worker that received the request, opened with
//! `initialize` on first use and kept like any session — counted against the session caps,
//! ended after the route's idle TTL, opened again when its server ended it (a 404: the call it
//! refused is sent again in the new session). An upstream session, and so a stdio process, is
//! never shared between principals; on a route without authentication every caller is the same
//! (anonymous) principal. Each 2026-07-28 request goes through the principal's session with
//! its envelope stripped, and its answer comes back in the revision's shape (`mcp::compat`):
//! `server/discover` is answered from the session's `initialize` result, log messages reach
//! only a client that asked for them, and a server's requests to its client (sampling,
//! elicitation, roots) are answered with an error, since a 2026-07-28 client cannot answer
//! them. Portcullis checks what the revision has the server check: a `tools/call`'s
//! `Mcp-Param-*` headers against the arguments the tool declares (`x-mcp-header`, learned from
//! the session's `tools/list` answers; on a stateless route, from the route's, per worker, for
//! [`ERA_TTL`]). `subscriptions/listen` is served from the principal's session: the change
//! notifications its servers send, as far as they announce them ([`listen`]); a stateless route
//! has no session to listen to and refuses it. On a stateless route each request gets fresh
//! targets, as 2025 requests there do.
//!
//! For a route with one streamable-HTTP server, each worker learns which revision the server
//! speaks from its answer to `server/discover` (the client's, or one sent for the purpose),
//! for [`ERA_TTL`]; a server that speaks 2026-07-28 gets its requests natively
//! (`relay::modern`). A route whose servers are all streamable HTTP asks each of them
//! (`relay::fanout`): if all speak the revision, the route is served natively, fanned out. For
//! a route with a stdio server (alone, or among streamable-HTTP and stdio servers), the
//! question goes to processes started for it (a stdio connection's first message fixes its
//! revision); if every server speaks 2026-07-28, the processes are kept, per principal, and get
//! each request as it came (fanned out when there are several servers).
//!
//! Not here: the message translations (`mcp::compat`, sans-IO), the HTTP rules
//! (`server::mcp`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use futures_util::StreamExt;

use crate::mcp::jsonrpc::{self, Kind};
use crate::mcp::sse::{self, SseParser};
use crate::mcp::{compat, modern};
use crate::relay::authorize::Authz;
use crate::relay::call::{self as relay_call, Guard};
use crate::relay::fanout;
use crate::relay::modern::{self as relay_modern, ModernCall};
use crate::relay::reject::Reject;
use crate::relay::session::Session;
use crate::relay::target::Target;
use crate::relay::{Relay, ReplyPart, Subject, MAX_MESSAGE};
use crate::snapshot::{McpRoute, McpTargetKind};

/// How long a worker trusts what it learned of a server's revision.
pub(crate) const ERA_TTL: Duration = Duration::from_secs(60);

type Starting = Shared<LocalBoxFuture<'static, Result<Rc<Upstream>, Reject>>>;

/// One worker's compatibility sessions and what it learned of servers' revisions.
#[derive(Default)]
pub(crate) struct Compat {
    /// The upstream session of each (route, principal), or its start in progress (shared by
    /// the calls that wait for it).
    pool: RefCell<HashMap<(u64, Subject), Starting, foldhash::fast::RandomState>>,
    /// Per route key: whether its server speaks 2026-07-28, and until when that is trusted.
    eras: RefCell<HashMap<u64, (bool, Instant), foldhash::fast::RandomState>>,
    /// The stdio server processes of each (route, principal) whose servers speak 2026-07-28
    /// themselves: requests go to them as they came (no `initialize`, `_meta` untouched).
    native: RefCell<HashMap<(u64, Subject), Rc<Session>, foldhash::fast::RandomState>>,
    /// Per stateless route key: its tools' `x-mcp-header` declarations (from the last
    /// `tools/list` answer seen), and until when they are trusted.
    declared: RefCell<HashMap<u64, (Rc<Declared>, Instant), foldhash::fast::RandomState>>,
}

/// The tools' mirrored parameters (`x-mcp-header`), by tool name.
type Declared = HashMap<String, compat::HeaderParams>;

impl Compat {
    /// What this worker knows of route `key`'s server: `Some(true)` if it speaks 2026-07-28.
    pub(crate) fn era(&self, key: u64) -> Option<bool> {
        let eras = self.eras.borrow();
        let (modern, until) = eras.get(&key)?;
        (Instant::now() < *until).then_some(*modern)
    }

    fn learn(&self, key: u64, modern: bool) {
        self.eras
            .borrow_mut()
            .insert(key, (modern, Instant::now() + ERA_TTL));
    }

    /// What this worker knows of stateless route `key`'s tools' mirrored parameters.
    fn declared(&self, key: u64) -> Option<Rc<Declared>> {
        let declared = self.declared.borrow();
        let (d, until) = declared.get(&key)?;
        (Instant::now() < *until).then(|| d.clone())
    }

    /// Learns stateless route `key`'s tools' mirrored parameters from a `tools/list` answer,
    /// adding to what is known (a list filtered for one caller holds only some of the tools).
    fn learn_declared(&self, key: u64, answer: &[u8]) {
        let Some(mut p) = compat::header_params(answer) else {
            return;
        };
        let mut declared = self.declared.borrow_mut();
        let now = Instant::now();
        // What is known is added to until it expires (then it is learned afresh): a tool the
        // server changed is known as it is now within ERA_TTL.
        let until = match declared.get(&key) {
            Some((known, until)) if now < *until => {
                for (tool, decls) in known.iter() {
                    p.entry(tool.clone()).or_insert_with(|| decls.clone());
                }
                *until
            }
            _ => now + ERA_TTL,
        };
        declared.insert(key, (Rc::new(p), until));
    }
}

/// An upstream session held for one principal.
pub(crate) struct Upstream {
    session: Rc<Session>,
    /// The `server/discover` result, from the session's `initialize` answer.
    discover: Vec<u8>,
    /// The tools' `x-mcp-header` declarations, from the last `tools/list` answer seen (`None`:
    /// none yet).
    header_params: RefCell<Option<Declared>>,
    /// The resources subscribed to upstream for this session's listen streams, and how many
    /// streams want each (subscribed on the first, unsubscribed after the last).
    subscribed: RefCell<HashMap<String, usize>>,
    /// The GET streams of its streamable-HTTP servers while it has listen streams: whether their
    /// answers have begun.
    events: RefCell<Option<Shared<LocalBoxFuture<'static, ()>>>>,
}

impl Upstream {
    /// Learns the tools' mirrored parameters from a `tools/list` answer.
    fn learn(&self, answer: &[u8]) {
        if let Some(p) = compat::header_params(answer) {
            *self.header_params.borrow_mut() = Some(p);
        }
    }
}

/// A checked 2026-07-28 request to serve through the compatibility mode.
pub(crate) struct CompatCall {
    /// As the client sent it (envelope included).
    pub body: Vec<u8>,
    /// Its raw JSON id; `None` for a notification.
    pub id: Option<String>,
    pub method: String,
    pub subject: Subject,
    /// The client's `Authorization`, when the route passes it to its servers.
    pub authorization: Option<String>,
    pub authz: Option<Authz>,
    pub trace: Option<Vec<u8>>,
    /// Its `Mcp-Param-*` headers: (suffix in lowercase, value as sent).
    pub params: Vec<(String, Vec<u8>)>,
}

/// Serves `call` through the principal's upstream session.
pub(crate) async fn serve(
    ctx: Rc<Relay>,
    route: Arc<McpRoute>,
    call: CompatCall,
    reply: UnboundedSender<ReplyPart>,
) {
    let refuse = |r: Reject| {
        let _ = reply.unbounded_send(r.reply(call.id.as_deref()));
    };
    let Some(legacy) = compat::to_legacy(&call.body) else {
        return refuse(Reject::NotJsonRpc(jsonrpc::PeekError::Parse));
    };
    let Some(id) = call.id.as_deref() else {
        // 2026-07-28 clients send no notification a 2025 session needs (cancelling is closing
        // the request's stream).
        let _ = reply.unbounded_send(ReplyPart::Accepted);
        return;
    };
    if !compat::METHODS.contains(&call.method.as_str()) {
        let msg = format!("{} is not a method of MCP 2026-07-28", call.method);
        let body = jsonrpc::error_object(Some(id), jsonrpc::METHOD_NOT_FOUND, &msg, None);
        let _ = reply.unbounded_send(ReplyPart::Error { status: 404, body });
        return;
    }
    if call.method == "subscriptions/listen" {
        if route.stateful {
            return Box::pin(listen(ctx, route, call, reply)).await;
        }
        let msg = "subscriptions/listen through a server that speaks only the 2025 revisions \
                   needs a stateful route (its notifications come from the session Portcullis \
                   holds); this route is stateless";
        let body = jsonrpc::error_object(Some(id), jsonrpc::METHOD_NOT_FOUND, msg, None);
        let _ = reply.unbounded_send(ReplyPart::Json {
            body,
            session: None,
        });
        return;
    }
    let discover = call.method == "server/discover";
    let trace = call.trace.as_deref();
    if !route.stateful {
        if call.method == "tools/call" {
            // As on a stateful route: the mirrored parameters, checked before the call is sent.
            if let Err(why) = check_stateless_params(&ctx, &route, &call, &legacy.body).await {
                let body = jsonrpc::error_object(Some(id), modern::HEADER_MISMATCH, &why, None);
                let _ = reply.unbounded_send(ReplyPart::Error { status: 400, body });
                return;
            }
        }
        // Fresh targets for this one message, as for a 2025 request on this route.
        let (tx, rx) = unbounded();
        let (body, shape) = if discover {
            (compat::legacy_initialize(&call.body), Shape::Discover(id))
        } else {
            (legacy.body, Shape::Answer(&call.method, legacy.wants_logs))
        };
        // A `tools/list` answer teaches the tools' mirrored parameters.
        let key = route.key;
        let learn = |msg: &[u8]| ctx.compat.learn_declared(key, msg);
        let learn = (call.method == "tools/list").then_some(&learn as Learn<'_>);
        let run = relay_call::stateless(
            &ctx,
            route.clone(),
            body,
            call.authorization.clone(),
            call.authz.clone(),
            tx,
            call.trace.clone(),
            true,
        );
        futures_util::future::join(run, translate(rx, &reply, shape, None, learn, None)).await;
        return;
    }
    for attempt in 0..2 {
        let up = match upstream(&ctx, &route, &call, trace).await {
            Ok(up) => up,
            Err(r) => return refuse(r),
        };
        if discover {
            let body = jsonrpc::result_object(id, &up.discover);
            let _ = reply.unbounded_send(ReplyPart::Json {
                body,
                session: None,
            });
            return;
        }
        if call.method == "tools/call" {
            // Portcullis answers for the server here: the `Mcp-Param-*` headers must mirror the
            // arguments the tool declares (`x-mcp-header`), checked before the call is sent.
            if let Err(why) = check_params(&ctx, &up, &call, &legacy.body, trace).await {
                let body = jsonrpc::error_object(Some(id), modern::HEADER_MISMATCH, &why, None);
                let _ = reply.unbounded_send(ReplyPart::Error { status: 400, body });
                return;
            }
        }
        let (tx, rx) = unbounded();
        let s = &up.session;
        let guard = call.authz.as_ref().map(|authz| Guard {
            shard: &ctx.shard,
            authz,
        });
        let body = legacy.body.clone();
        let shard = &ctx.shard;
        let run = async move {
            relay_call::post(shard, s, body, &tx, None, guard.as_ref(), trace).await;
        };
        // A server that ended the session refused the call without acting on it: it goes
        // again, once, in a new session.
        let retry = (attempt == 0).then_some(s);
        let shape = Shape::Answer(&call.method, legacy.wants_logs);
        let learn = |msg: &[u8]| up.learn(msg);
        let learn = (call.method == "tools/list").then_some(&learn as Learn<'_>);
        let translated = translate(rx, &reply, shape, retry, learn, Some(s));
        let ((), again) = futures_util::future::join(run, translated).await;
        if s.is_closed() {
            ctx.sessions.remove(&s.id);
            let s = s.clone();
            monoio::spawn(async move { s.close().await });
        }
        if !again {
            return;
        }
        tracing::info!(route = %route.name, "the MCP server ended a compatibility session; the call goes again in a new one");
    }
}

/// `subscriptions/listen` through the principal's compatibility session: the stream carries
/// the change notifications its servers send outside any request (stdio and SSE servers on
/// their one stream; a streamable-HTTP server on the GET stream opened for as long as this one
/// lasts), those the client asked for and the servers' capabilities allow, stamped with the
/// request's id. Resource subscriptions become `resources/subscribe` upstream (and
/// `resources/unsubscribe` when the stream ends); a URI the server refuses is not acknowledged.
/// The stream keeps the session from idling out; it ends with the client (or after
/// [`relay_modern::LISTEN_LIMIT`]), or with the session, then with the revision's final result.
async fn listen(
    ctx: Rc<Relay>,
    route: Arc<McpRoute>,
    call: CompatCall,
    reply: UnboundedSender<ReplyPart>,
) {
    let id = call.id.as_deref().unwrap_or("null");
    let Some(asked) = compat::Listen::asked(&call.body) else {
        let msg = "subscriptions/listen needs params.notifications";
        let body = jsonrpc::error_object(Some(id), jsonrpc::INVALID_PARAMS, msg, None);
        let _ = reply.unbounded_send(ReplyPart::Error { status: 400, body });
        return;
    };
    let trace = call.trace.as_deref();
    let up = match upstream(&ctx, &route, &call, trace).await {
        Ok(up) => up,
        Err(r) => {
            let _ = reply.unbounded_send(r.reply(Some(id)));
            return;
        }
    };
    let s = up.session.clone();
    let mut events = s.listen();
    // A streamable-HTTP server sends its notifications on a GET stream: one per session, shared
    // by its listen streams; the acknowledgement waits until it is open (or refused), so nothing
    // sent after it is missed.
    let ready = http_events(&up, &route.name);
    let _ = monoio::time::timeout(route.call_timeout, ready).await;
    let mut honored = asked.honored_by(&up.discover);
    let mut subscribed = Unsubscribe {
        ctx: ctx.clone(),
        up: up.clone(),
        uris: Vec::new(),
    };
    for uri in std::mem::take(&mut honored.uris) {
        // Another listen stream of this session has it already.
        if let Some(n) = up.subscribed.borrow_mut().get_mut(&uri) {
            *n += 1;
            subscribed.uris.push(uri);
            continue;
        }
        let body = resource_request("resources/subscribe", &uri);
        let (tx, rx) = unbounded();
        relay_call::post(&ctx.shard, &s, body, &tx, None, None, trace).await;
        drop(tx);
        if final_message(rx)
            .await
            .as_deref()
            .and_then(result_of)
            .is_some()
        {
            *up.subscribed.borrow_mut().entry(uri.clone()).or_insert(0) += 1;
            subscribed.uris.push(uri);
        }
    }
    honored.uris = subscribed.uris.clone();
    let event = |msg: &[u8]| {
        let mut out = Vec::with_capacity(msg.len() + 16);
        sse::write_event(&mut out, None, None, msg);
        ReplyPart::Event(out)
    };
    let _ = reply.unbounded_send(ReplyPart::SseStart { session: None });
    let _ = reply.unbounded_send(event(&honored.acknowledgement(id)));
    let stream = async {
        loop {
            let tick = std::pin::pin!(monoio::time::sleep(LISTEN_TICK));
            match futures_util::future::select(events.next(), tick).await {
                futures_util::future::Either::Left((Some(msg), _)) => {
                    s.touch();
                    if let Some(ev) = honored.event(&msg, id) {
                        if reply.unbounded_send(event(&ev)).is_err() {
                            return;
                        }
                    }
                }
                futures_util::future::Either::Left((None, _)) => break,
                futures_util::future::Either::Right(_) => {
                    if s.is_closed() {
                        break;
                    }
                    s.touch();
                }
            }
        }
        // The session ended: the stream ends as the revision ends one deliberately.
        let _ = reply.unbounded_send(event(&compat::listen_ended(id)));
        let _ = reply.unbounded_send(ReplyPart::End);
    };
    let _ = monoio::time::timeout(relay_modern::LISTEN_LIMIT, stream).await;
}

/// Starts the GET streams of the session's streamable-HTTP servers, unless they run already;
/// what they carry goes to the session's listen streams. They end when the session has no listen
/// stream left (checked every [`LISTEN_TICK`]) or ends. The returned future completes when
/// every stream's answer has begun (or failed).
fn http_events(up: &Rc<Upstream>, route: &str) -> Shared<LocalBoxFuture<'static, ()>> {
    if let Some(ready) = up.events.borrow().as_ref() {
        return ready.clone();
    }
    let (ready_tx, ready_rx) = futures_channel::oneshot::channel::<()>();
    let ready = ready_rx.map(|_| ()).boxed_local().shared();
    *up.events.borrow_mut() = Some(ready.clone());
    let (up, route) = (up.clone(), route.to_owned());
    monoio::spawn(async move {
        let s = up.session.clone();
        let (out, mut rx) = unbounded();
        let mut heads = Vec::new();
        let gets: Vec<_> = s
            .targets
            .iter()
            .filter_map(|t| match t {
                Target::Http(h) => Some(h.clone()),
                _ => None,
            })
            .map(|h| {
                let (head_tx, head_rx) = futures_channel::oneshot::channel::<()>();
                heads.push(head_rx);
                let (out, route) = (out.clone(), route.clone());
                async move {
                    if let Err(e) = h.listen(&out, head_tx).await {
                        tracing::info!(route = %route, target_name = %h.target, error = %e, "no event stream from the MCP server for subscriptions/listen");
                    }
                }
            })
            .collect();
        drop(out);
        let opened = async move {
            futures_util::future::join_all(heads).await;
            let _ = ready_tx.send(());
            std::future::pending::<()>().await
        };
        let pump = async {
            futures_util::future::join(futures_util::future::join_all(gets), opened).await;
        };
        let forward = async {
            let mut open = true;
            loop {
                let tick = monoio::time::sleep(LISTEN_TICK);
                if open {
                    match futures_util::future::select(rx.next(), std::pin::pin!(tick)).await {
                        futures_util::future::Either::Left((Some(msg), _)) => {
                            s.notify_listeners(&msg)
                        }
                        // Every GET stream ended (or none was opened): only the checks remain.
                        futures_util::future::Either::Left((None, _)) => open = false,
                        futures_util::future::Either::Right(_) => {}
                    }
                } else {
                    tick.await;
                }
                if s.is_closed() || !s.has_listeners() {
                    return;
                }
            }
        };
        futures_util::future::select(std::pin::pin!(pump), std::pin::pin!(forward)).await;
        *up.events.borrow_mut() = None;
    });
    ready
}

/// A `resources/subscribe` or `resources/unsubscribe` request for `uri`, as Portcullis sends it.
fn resource_request(method: &str, uri: &str) -> Vec<u8> {
    let params = serde_json::json!({ "uri": uri }).to_string();
    jsonrpc::request("\"portcullis-listen\"", method, Some(params.as_bytes()))
}

/// How often a listen stream through a compatibility session checks its session (and keeps it
/// from idling out).
const LISTEN_TICK: Duration = Duration::from_secs(5);

/// The resource subscriptions of a listen stream, ended upstream when the stream ends (however
/// it ends: the future is dropped when the client goes away) and no other stream of the session
/// still wants them.
struct Unsubscribe {
    ctx: Rc<Relay>,
    up: Rc<Upstream>,
    uris: Vec<String>,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut last = Vec::new();
        {
            let mut held = self.up.subscribed.borrow_mut();
            for uri in self.uris.drain(..) {
                if let Some(n) = held.get_mut(&uri) {
                    *n -= 1;
                    if *n == 0 {
                        held.remove(&uri);
                        last.push(uri);
                    }
                }
            }
        }
        let s = &self.up.session;
        if last.is_empty() || s.is_closed() {
            return;
        }
        let (ctx, s, uris) = (self.ctx.clone(), s.clone(), last);
        monoio::spawn(async move {
            for uri in uris {
                let body = resource_request("resources/unsubscribe", &uri);
                let (tx, _rx) = unbounded();
                relay_call::post(&ctx.shard, &s, body, &tx, None, None, None).await;
            }
        });
    }
}

/// Checks a `tools/call`'s mirrored parameters against the tool's declarations, listing the
/// tools through the session first if it has not seen them.
async fn check_params(
    ctx: &Relay,
    up: &Upstream,
    call: &CompatCall,
    body: &[u8],
    trace: Option<&[u8]>,
) -> Result<(), String> {
    if up.header_params.borrow().is_none() {
        let (tx, rx) = unbounded();
        relay_call::post(
            &ctx.shard,
            &up.session,
            TOOLS_LIST.to_vec(),
            &tx,
            None,
            None,
            trace,
        )
        .await;
        drop(tx);
        match final_message(rx).await {
            Some(answer) => up.learn(&answer),
            None => *up.header_params.borrow_mut() = Some(HashMap::new()),
        }
    }
    let held = up.header_params.borrow();
    compare_params(held.as_ref(), call, body)
}

/// [`check_params`] on a stateless route: the declarations this worker learned from the route's
/// `tools/list` answers, or, when it has none (or they are older than [`ERA_TTL`]), from a
/// `tools/list` sent for the purpose (fresh servers, as every request there gets).
async fn check_stateless_params(
    ctx: &Relay,
    route: &Arc<McpRoute>,
    call: &CompatCall,
    body: &[u8],
) -> Result<(), String> {
    let declared = match ctx.compat.declared(route.key) {
        Some(d) => d,
        None => {
            let (tx, rx) = unbounded();
            let ask = relay_call::stateless(
                ctx,
                route.clone(),
                TOOLS_LIST.to_vec(),
                call.authorization.clone(),
                None,
                tx,
                call.trace.clone(),
                true,
            );
            let (_, answer) = futures_util::future::join(ask, final_message(rx)).await;
            // No list (the server failed it): nothing to check against, nothing kept.
            if let Some(answer) = answer {
                ctx.compat.learn_declared(route.key, &answer);
            }
            ctx.compat.declared(route.key).unwrap_or_default()
        }
    };
    compare_params(Some(&declared), call, body)
}

/// The `tools/list` Portcullis sends to learn the tools' mirrored parameters.
const TOOLS_LIST: &[u8] =
    br#"{"jsonrpc":"2.0","id":"portcullis-tools","method":"tools/list","params":{}}"#;

/// A `tools/call`'s `Mcp-Param-*` headers against what its tool declares.
fn compare_params(
    declared: Option<&Declared>,
    call: &CompatCall,
    body: &[u8],
) -> Result<(), String> {
    let name = jsonrpc::peek(body)
        .ok()
        .and_then(|e| e.name.map(|n| n.into_owned()))
        .unwrap_or_default();
    match declared.and_then(|p| p.get(&name)) {
        Some(decls) => compat::check_header_params(decls, body, &call.params),
        // A tool that declares nothing takes no `Mcp-Param-*` header to check.
        None => Ok(()),
    }
}

/// The principal's upstream session on this worker: the one held, or a new one.
async fn upstream(
    ctx: &Rc<Relay>,
    route: &Arc<McpRoute>,
    call: &CompatCall,
    trace: Option<&[u8]>,
) -> Result<Rc<Upstream>, Reject> {
    let key = (route.key, call.subject.clone());
    let held = ctx.compat.pool.borrow().get(&key).cloned();
    if let Some(held) = held {
        match held.peek() {
            Some(Ok(up)) if !up.session.is_closed() => {
                up.session.touch();
                return Ok(up.clone());
            }
            Some(_) => {}              // failed, or ended: a new one
            None => return held.await, // another call is starting it
        }
    }
    let start = open(
        ctx.clone(),
        route.clone(),
        call.subject.clone(),
        call.authorization.clone(),
        compat::legacy_initialize(&call.body),
        trace.map(<[u8]>::to_vec),
    )
    .boxed_local()
    .shared();
    {
        let mut pool = ctx.compat.pool.borrow_mut();
        // Ended sessions and failed starts leave the pool as new ones come in: it holds at most
        // what the session caps allow, plus those.
        pool.retain(|_, p| match p.peek() {
            Some(Ok(up)) => !up.session.is_closed(),
            Some(Err(_)) => false,
            None => true,
        });
        pool.insert(key, start.clone());
    }
    start.await
}

/// A session Portcullis holds for a principal (never named to clients), registered on this
/// worker.
fn open_held(
    ctx: &Relay,
    route: &Arc<McpRoute>,
    subject: Subject,
    authorization: Option<String>,
) -> Result<Rc<Session>, Reject> {
    let s = relay_call::open(ctx, route, subject, authorization)?;
    s.compat.set(true);
    ctx.sessions.insert(s.clone());
    Ok(s)
}

/// Opens a compatibility session: `initialize` (with `init`), then `notifications/initialized`.
async fn open(
    ctx: Rc<Relay>,
    route: Arc<McpRoute>,
    subject: Subject,
    authorization: Option<String>,
    init: Vec<u8>,
    trace: Option<Vec<u8>>,
) -> Result<Rc<Upstream>, Reject> {
    let s = open_held(&ctx, &route, subject, authorization)?;
    let (tx, rx) = unbounded();
    relay_call::post(&ctx.shard, &s, init, &tx, None, None, trace.as_deref()).await;
    drop(tx);
    let answer = final_message(rx).await;
    let discover = answer
        .as_deref()
        .and_then(result_of)
        .and_then(|r| compat::discover_result(&r).ok());
    let Some(discover) = discover else {
        tracing::warn!(route = %route.name, "the MCP server did not answer initialize; no compatibility session");
        ctx.sessions.remove(&s.id);
        monoio::spawn(async move { s.close().await });
        return Err(Reject::ServerNotStarted);
    };
    for t in &s.targets {
        t.send(INITIALIZED.to_vec()).await;
    }
    tracing::info!(mcp.session = %s.id, route = %route.name, "mcp compatibility session started");
    Ok(Rc::new(Upstream {
        session: s,
        discover,
        header_params: RefCell::new(None),
        subscribed: RefCell::new(HashMap::new()),
        events: RefCell::new(None),
    }))
}

const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The `result` of a JSON-RPC response.
fn result_of(msg: &[u8]) -> Option<Vec<u8>> {
    crate::mcp::merge::find_member(msg, "result")
        .ok()
        .flatten()
        .map(|r| r.get().as_bytes().to_vec())
}

/// The response among the reply parts of a call (JSON, or in an SSE stream).
async fn final_message(mut rx: UnboundedReceiver<ReplyPart>) -> Option<Vec<u8>> {
    let mut parser = SseParser::new(MAX_MESSAGE);
    while let Some(part) = rx.next().await {
        match part {
            ReplyPart::Json { body, .. } | ReplyPart::Relayed { body, .. } => return Some(body),
            ReplyPart::Event(ev) => {
                if parser.feed(&ev).is_err() {
                    return None;
                }
                while let Some(e) = parser.next_event() {
                    if jsonrpc::peek(e.data.as_bytes()).is_ok_and(|p| p.kind == Kind::Response) {
                        return Some(e.data.into_bytes());
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// What the client asked, for translating the answer.
#[derive(Clone, Copy)]
enum Shape<'a> {
    /// A request for `method`; whether the client asked for log messages.
    Answer(&'a str, bool),
    /// `server/discover` (client's id), answered by `initialize` upstream.
    Discover(&'a str),
}

impl Shape<'_> {
    /// A message of the answer as the client gets it; `None`: not for this client.
    fn message(self, msg: Vec<u8>) -> Option<Vec<u8>> {
        match self {
            Shape::Answer(method, wants_logs) => {
                if !wants_logs && compat::is_log_message(&msg) {
                    return None;
                }
                Some(compat::to_modern_answer(method, msg))
            }
            Shape::Discover(id) => {
                let env = jsonrpc::peek(&msg).ok()?;
                if env.kind != Kind::Response {
                    return None;
                }
                Some(match result_of(&msg).map(|r| compat::discover_result(&r)) {
                    Some(Ok(d)) => jsonrpc::result_object(id, &d),
                    _ => msg,
                })
            }
        }
    }
}

/// What learns from an answer's messages (the tools' mirrored parameters).
type Learn<'a> = &'a dyn Fn(&[u8]);

/// Copies a 2025 session's answer to the client in the 2026-07-28 shape. With `retry`, a
/// first answer that is an error because the server ended the session is held back: returns
/// true, and the caller sends the request again. Change notifications a server sends while it
/// answers (list changes, resource updates) ride only `subscriptions/listen` streams in
/// 2026-07-28: they go to the listen streams of `held` (the session answering), not to the call.
async fn translate(
    mut rx: UnboundedReceiver<ReplyPart>,
    reply: &UnboundedSender<ReplyPart>,
    shape: Shape<'_>,
    retry: Option<&Rc<Session>>,
    learn: Option<Learn<'_>>,
    held: Option<&Session>,
) -> bool {
    // A `tools/list` answer teaches the tools' mirrored parameters.
    let learn = |msg: &[u8]| {
        if let Some(learn) = learn {
            if jsonrpc::peek(msg).is_ok_and(|e| e.kind == Kind::Response) {
                learn(msg);
            }
        }
    };
    let mut parser = SseParser::new(MAX_MESSAGE);
    let mut first = true;
    while let Some(part) = rx.next().await {
        let out = match part {
            ReplyPart::Json { body, .. } => {
                let ended = retry.is_some_and(|s| s.targets.iter().any(|t| t.ended_by_server()));
                if first && ended {
                    return true;
                }
                learn(&body);
                match shape.message(body) {
                    // The revision gives some errors their own status.
                    Some(body) => match compat::error_status(&body) {
                        Some(status) => ReplyPart::Error { status, body },
                        None => ReplyPart::Json {
                            body,
                            session: None,
                        },
                    },
                    None => continue,
                }
            }
            ReplyPart::SseStart { .. } => ReplyPart::SseStart { session: None },
            ReplyPart::Event(ev) => {
                if parser.feed(&ev).is_err() {
                    continue;
                }
                let mut out = Vec::with_capacity(ev.len() + 64);
                while let Some(e) = parser.next_event() {
                    learn(e.data.as_bytes());
                    if compat::is_change_notification(e.data.as_bytes()) {
                        if let Some(s) = held {
                            s.notify_listeners(e.data.as_bytes());
                        }
                        continue;
                    }
                    if let Some(data) = shape.message(e.data.into_bytes()) {
                        sse::write_event(&mut out, None, e.event.as_deref(), &data);
                    }
                }
                if out.is_empty() {
                    continue;
                }
                ReplyPart::Event(out)
            }
            other => other,
        };
        first = false;
        if reply.unbounded_send(out).is_err() {
            // The client went away: dropping `rx` ends the call (and cancels it upstream).
            return false;
        }
    }
    false
}

/// A 2026-07-28 request on a route with one streamable-HTTP server whose revision this worker
/// does not know (or no longer trusts): the server's answer to `server/discover` decides —
/// the client's own, relayed if the server speaks the revision, or one sent for the purpose.
/// A server that speaks it gets the request natively; one that does not, through the principal's
/// compatibility session. A server that cannot be reached teaches nothing. Returns whether the
/// request was relayed natively (a compatibility session counts its own calls).
pub(crate) async fn serve_unknown(
    ctx: Rc<Relay>,
    route: Arc<McpRoute>,
    call: ModernCall,
    fallback: CompatCall,
    reply: UnboundedSender<ReplyPart>,
) -> bool {
    if stdio_candidate(&route) {
        // A request that goes through a session is counted by it.
        return serve_stdio(ctx, route, call, fallback, reply).await;
    }
    let discover = fallback.method == "server/discover";
    let (probe, rest) = if discover {
        (call, None)
    } else {
        (probe_call(fallback.authorization.as_deref()), Some(call))
    };
    let fan = fanout::fans_out(&route);
    let (verdict, parts) = if fan {
        // Several servers: each is asked; the route speaks the revision if all of them do.
        fanout::discover(&ctx.shard, &route, &probe, None).await
    } else {
        let (tx, rx) = unbounded();
        relay_modern::forward(ctx.shard.clone(), route.clone(), probe, tx).await;
        let parts: Vec<ReplyPart> = rx.collect().await;
        (verdict(&parts), parts)
    };
    if let Some(modern) = verdict {
        ctx.compat.learn(route.key, modern);
    }
    match (verdict, rest) {
        (Some(false), _) => {
            serve(ctx, route, fallback, reply).await;
            false
        }
        (_, Some(call)) if fan => {
            fanout::serve(&ctx.shard, &route, call, None, reply).await;
            true
        }
        (_, Some(call)) => {
            relay_modern::forward(ctx.shard.clone(), route, call, reply).await;
            true
        }
        (_, None) => {
            for p in parts {
                let _ = reply.unbounded_send(p);
            }
            true
        }
    }
}

/// Whether `route` has a stdio server, and its servers may all speak 2026-07-28: one stdio
/// server, or several servers (stdio and streamable HTTP) to fan out. The compatibility mode
/// must be on: it serves the route if one of them does not speak the revision.
pub(crate) fn stdio_candidate(route: &McpRoute) -> bool {
    let one = !route.prefix
        && matches!(&route.targets[..], [t] if matches!(t.kind, McpTargetKind::Stdio { .. }));
    route.compat && (one || (fanout::fans_out(route) && fanout::runs_processes(route)))
}

/// How long a stdio server started to answer `server/discover` has to answer it.
const STDIO_PROBE_WAIT: Duration = Duration::from_secs(10);

/// A 2026-07-28 request for a route with a stdio server. Over stdio, the first message decides
/// which revision a connection speaks, so the question is asked of processes started for it:
/// `server/discover` (the client's own, or one sent for the purpose) as their first message
/// (on a route with several servers, asked of each, streamable-HTTP servers included,
/// `relay::fanout`). If every server answers with 2026-07-28 among its versions, the processes
/// are kept (per principal and worker, like a session: counted against the caps, ended by the
/// TTL) and get each request as it came (fanned out on a route with several servers); if one
/// refuses, they are stopped, and the route is served through the compatibility mode. What was
/// learned holds for [`ERA_TTL`] on this worker; a principal whose processes answered keeps
/// them after that (they are not asked again). A server that cannot be reached teaches
/// nothing: on a route with several servers the request is then served natively (the others
/// may still answer), on a route with one, through the compatibility mode. Returns whether the
/// request was fanned out natively (a session counts the calls it carries itself).
async fn serve_stdio(
    ctx: Rc<Relay>,
    route: Arc<McpRoute>,
    call: ModernCall,
    fallback: CompatCall,
    reply: UnboundedSender<ReplyPart>,
) -> bool {
    let refuse = |r: Reject| {
        let _ = reply.unbounded_send(r.reply(call.id.as_deref()));
        false
    };
    let fan = fanout::fans_out(&route);
    let trace = fallback.trace.clone();
    let key = (route.key, fallback.subject.clone());
    let held = || {
        ctx.compat
            .native
            .borrow()
            .get(&key)
            .filter(|s| !s.is_closed())
            .cloned()
    };
    let mut era = ctx.compat.era(route.key);
    let mut kept = None;
    if era.is_none() && route.stateful {
        // The principal's processes answered as 2026-07-28 servers: they still are one (a
        // connection's revision is fixed), and no new ones are started to ask again.
        kept = held();
        if kept.is_some() {
            era = Some(true);
        }
    }
    // On a route with several servers, one that could not be reached teaches nothing: the
    // request is served natively, as on a route of streamable-HTTP servers, and nothing is
    // learned.
    let mut native = era == Some(true);
    if era.is_none() {
        let s = match open_held(&ctx, &route, key.1.clone(), fallback.authorization.clone()) {
            Ok(s) => s,
            Err(r) => return refuse(r),
        };
        let discover = fallback.method == "server/discover";
        let parts = if fan {
            let probe = (!discover).then(|| probe_call(fallback.authorization.as_deref()));
            let asked = fanout::discover(
                &ctx.shard,
                &route,
                probe.as_ref().unwrap_or(&call),
                Some(&s),
            );
            match monoio::time::timeout(STDIO_PROBE_WAIT, asked).await {
                Ok((verdict, parts)) => {
                    era = verdict;
                    parts
                }
                Err(_) => vec![Reject::ServerTimedOut.reply(call.id.as_deref())],
            }
        } else {
            let body = if discover {
                call.body.clone()
            } else {
                probe_call(None).body
            };
            let (tx, rx) = unbounded();
            let asked = relay_call::post(&ctx.shard, &s, body, &tx, None, None, trace.as_deref());
            let answered = monoio::time::timeout(STDIO_PROBE_WAIT, asked).await.is_ok();
            drop(tx);
            let parts: Vec<ReplyPart> = rx.collect().await;
            era = if answered { verdict(&parts) } else { None };
            parts
        };
        if let Some(modern) = era {
            ctx.compat.learn(route.key, modern);
        }
        tracing::info!(route = %route.name, speaks_2026 = ?era, "asked a stdio MCP server started for the purpose which revision it speaks");
        native = era == Some(true) || (fan && era.is_none());
        if native && route.stateful && !s.is_closed() {
            if discover {
                for p in parts {
                    let _ = reply.unbounded_send(p);
                }
                ctx.compat.native.borrow_mut().insert(key, s);
                return fan;
            }
            kept = Some(s);
        } else {
            ctx.sessions.remove(&s.id);
            monoio::spawn(async move { s.close().await });
            if native && discover {
                for p in parts {
                    let _ = reply.unbounded_send(p);
                }
                return fan;
            }
        }
    }
    if !native {
        serve(ctx, route, fallback, reply).await;
        return false;
    }
    if !route.stateful {
        // Processes for this one request, which take it as their first message.
        let (authorization, authz) = (fallback.authorization.clone(), fallback.authz.clone());
        if fan {
            let s = match relay_call::open_fresh(&ctx, &route, authorization) {
                Ok(s) => s,
                Err(r) => return refuse(r),
            };
            fanout::serve(&ctx.shard, &route, call, Some(&s), reply).await;
            monoio::spawn(async move { s.close().await });
            return true;
        }
        relay_call::stateless(
            &ctx,
            route,
            call.body,
            authorization,
            authz,
            reply,
            trace,
            false,
        )
        .await;
        return false;
    }
    let s = match kept.or_else(held) {
        Some(s) => s,
        None => {
            // New processes for this principal: each takes its first request as its first
            // message.
            let s = match open_held(&ctx, &route, key.1.clone(), fallback.authorization.clone()) {
                Ok(s) => s,
                Err(r) => return refuse(r),
            };
            tracing::info!(mcp.session = %s.id, route = %route.name, "mcp 2026-07-28 stdio server started");
            s
        }
    };
    s.touch();
    {
        let mut native = ctx.compat.native.borrow_mut();
        native.retain(|_, held| !held.is_closed());
        native.insert(key, s.clone());
    }
    if fan {
        fanout::serve(&ctx.shard, &route, call, Some(&s), reply).await;
    } else {
        let guard = fallback.authz.as_ref().map(|authz| Guard {
            shard: &ctx.shard,
            authz,
        });
        relay_call::post(
            &ctx.shard,
            &s,
            call.body,
            &reply,
            None,
            guard.as_ref(),
            trace.as_deref(),
        )
        .await;
    }
    if s.is_closed() {
        ctx.sessions.remove(&s.id);
        monoio::spawn(async move { s.close().await });
    }
    fan
}

/// The `server/discover` Portcullis sends to learn a server's revision.
fn probe_call(authorization: Option<&str>) -> ModernCall {
    let params = format!(
        r#"{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"{v}","io.modelcontextprotocol/clientInfo":{{"name":"portcullis","version":"{p}"}},"io.modelcontextprotocol/clientCapabilities":{{}}}}}}"#,
        v = modern::VERSION,
        p = env!("CARGO_PKG_VERSION"),
    );
    let body = jsonrpc::request(
        "\"portcullis-probe\"",
        "server/discover",
        Some(params.as_bytes()),
    );
    let mut headers = b"mcp-method: server/discover\r\n".to_vec();
    if let Some(a) = authorization {
        crate::http::h1::write_header(&mut headers, "authorization", a.as_bytes());
    }
    ModernCall {
        body,
        id: Some("\"portcullis-probe\"".into()),
        headers,
        authz: None,
        list_method: None,
        listen: false,
    }
}

/// What an answer to `server/discover` says: `Some(true)`, the server speaks 2026-07-28;
/// `Some(false)`, it answered without (a refusal, or a result without the version); `None`, no
/// answer from the server (unreachable, timed out).
fn verdict(parts: &[ReplyPart]) -> Option<bool> {
    let mut parser = SseParser::new(MAX_MESSAGE);
    for p in parts {
        match p {
            ReplyPart::Relayed { status, body } => {
                return Some((200..300).contains(status) && compat::speaks_modern(body))
            }
            ReplyPart::Accepted => return Some(false),
            // A stdio server's answer, through a session.
            ReplyPart::Json { body, .. } => return Some(compat::speaks_modern(body)),
            ReplyPart::Event(ev) => {
                if parser.feed(ev).is_err() {
                    return Some(false);
                }
                while let Some(e) = parser.next_event() {
                    if jsonrpc::peek(e.data.as_bytes()).is_ok_and(|p| p.kind == Kind::Response) {
                        return Some(compat::speaks_modern(e.data.as_bytes()));
                    }
                }
            }
            ReplyPart::Error { .. } => return None,
            _ => {}
        }
    }
    None
}
