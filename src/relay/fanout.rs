//! MCP 2026-07-28 requests on a route with several servers (or with prefixed names) that all
//! speak the revision: served natively on the worker that received them, no session. A
//! streamable-HTTP server is reached with one self-contained POST per request
//! (`relay::modern`); a stdio server through the process the principal holds for it (the
//! compatibility mode's era question started it, `relay::compat`), each request given an id
//! of its own there and the client's back in the answer (`relay::call::to_target`).
//!
//! - `server/discover` goes to every server; their answers merge into the route's
//!   (`mcp::compat::merge_discover`: the versions all of them list, capabilities merged as
//!   `initialize` results are). A server that refuses it (a 2025-only server) makes the route
//!   refuse with that server's answer, which is what a client needs to fall back — unless the
//!   compatibility mode is on, which then serves the route (`relay::compat` decides that).
//! - Lists go to every server and are concatenated with `<server>_<name>` names, as on a 2025
//!   route with several servers (`mcp::merge`), filtered by `mcpAuthorization`; a server that
//!   fails its part is left out. The merged list is the proxy's own answer: `ttlMs: 0` and
//!   `cacheScope: "private"` (a merge is not any one server's to cache).
//! - `tools/call` and `prompts/get` go to the server the prefixed name names, with the name it
//!   has there in the body and in `Mcp-Name`; its answer (JSON or SSE) is relayed as it comes.
//! - Anything else that needs one server (`resources/read`, `completion/complete`,
//!   `subscriptions/listen`) is refused with -32601 naming the reason, as the 2025 relay refuses
//!   it on such routes.
//!
//! Not here: the header checks (`mcp::modern`), which routes take this path (`server::mcp`),
//! what a server's revision is (`relay::compat`).

use std::rc::Rc;

use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::StreamExt;

use crate::http::h1;
use crate::mcp::compat::{self, Discovered};
use crate::mcp::jsonrpc::{self, Kind};
use crate::mcp::sse::SseParser;
use crate::mcp::{merge, modern};
use crate::relay::authorize;
use crate::relay::call as relay_call;
use crate::relay::modern::{self as relay_modern, ModernCall};
use crate::relay::reject::Reject;
use crate::relay::session::Session;
use crate::relay::{ReplyPart, MAX_MESSAGE};
use crate::shard::Shard;
use crate::snapshot::{McpRoute, McpTargetKind};

/// Whether `route`'s 2026-07-28 requests are fanned out: every server is streamable HTTP or
/// stdio (a legacy SSE server speaks only 2024-11-05), and there are several (or names are
/// prefixed).
pub(crate) fn fans_out(route: &McpRoute) -> bool {
    (route.targets.len() > 1 || route.prefix)
        && route.targets.iter().all(|t| {
            matches!(
                t.kind,
                McpTargetKind::Http { .. } | McpTargetKind::Stdio { .. }
            )
        })
}

/// Whether one of `route`'s servers is a stdio process: reaching it takes the principal's
/// processes ([`serve`]'s `procs`), which only the compatibility mode's era question starts.
pub(crate) fn runs_processes(route: &McpRoute) -> bool {
    route
        .targets
        .iter()
        .any(|t| matches!(t.kind, McpTargetKind::Stdio { .. }))
}

/// The metric labels of a call on a fanned-out route: the server a prefixed name names and the
/// name it has there; `(None, name)` for anything else.
pub(crate) fn labels<'a>(
    route: &'a McpRoute,
    name: Option<&'a str>,
) -> (Option<&'a str>, Option<&'a str>) {
    let names: Vec<&str> = route.targets.iter().map(|t| t.name.as_str()).collect();
    match name.and_then(|n| merge::split(n, &names)) {
        Some((server, inner)) => (Some(server), Some(inner)),
        None => (None, name),
    }
}

/// Serves `call` across the route's servers; the answer goes to `reply`. `procs`: the session
/// whose processes are the route's stdio servers (`None` on a route without any).
pub(crate) async fn serve(
    shard: &Shard,
    route: &McpRoute,
    call: ModernCall,
    procs: Option<&Rc<Session>>,
    reply: UnboundedSender<ReplyPart>,
) {
    let env = match jsonrpc::peek(&call.body) {
        Ok(e) => e,
        Err(e) => {
            let _ = reply.unbounded_send(Reject::NotJsonRpc(e).reply(None));
            return;
        }
    };
    let (Some(id), Some(method)) = (call.id.as_deref(), env.method) else {
        // 2026-07-28 clients send no notification a server needs (cancelling is closing the
        // request's stream).
        let _ = reply.unbounded_send(ReplyPart::Accepted);
        return;
    };
    let name = env.name.map(|n| n.into_owned());
    match method {
        "server/discover" => {
            let (_, parts) = discover(shard, route, &call, procs).await;
            for p in parts {
                let _ = reply.unbounded_send(p);
            }
        }
        "tools/call" | "prompts/get" => {
            let kind = if method == "tools/call" {
                "tool"
            } else {
                "prompt"
            };
            by_name(shard, route, call, kind, name.as_deref(), procs, &reply).await
        }
        m if authorize::list_of(m).is_some() => list(shard, route, &call, m, procs, &reply).await,
        m => {
            let msg = format!("{m} is not supported when a route has several MCP servers");
            let body = jsonrpc::error_object(Some(id), jsonrpc::METHOD_NOT_FOUND, &msg, None);
            let _ = reply.unbounded_send(ReplyPart::Json {
                body,
                session: None,
            });
        }
    }
}

/// `server/discover` asked of every server and merged. Also returns what the answers say of
/// the servers: `Some(true)`, all speak 2026-07-28; `Some(false)`, one does not (its answer is
/// the route's); `None`, one could not be reached (the route's answer says so).
pub(crate) async fn discover(
    shard: &Shard,
    route: &McpRoute,
    call: &ModernCall,
    procs: Option<&Rc<Session>>,
) -> (Option<bool>, Vec<ReplyPart>) {
    let answers = ask_all(shard, route, call, procs).await;
    let mut results = Vec::with_capacity(answers.len());
    let mut unreachable = None;
    for (i, parts) in answers.into_iter().enumerate() {
        match answer_of(&parts) {
            Some((status, msg)) if (200..300).contains(&status) && compat::speaks_modern(&msg) => {
                match merge::find_member(&msg, "result") {
                    Ok(Some(r)) => results.push((i, r.get().as_bytes().to_vec())),
                    _ => return (Some(false), parts),
                }
            }
            // Refused (or a result without the revision): the route refuses with it.
            Some(_) => {
                tracing::info!(route = %route.name, target_name = %route.targets[i].name, "an MCP server refused server/discover");
                return (Some(false), parts);
            }
            None => {
                unreachable.get_or_insert(parts);
            }
        }
    }
    if let Some(parts) = unreachable {
        return (None, parts);
    }
    let id = call.id.as_deref().unwrap_or("null");
    let refs: Vec<(&str, &[u8])> = results
        .iter()
        .map(|(i, r)| (route.targets[*i].name.as_str(), r.as_slice()))
        .collect();
    let part = match compat::merge_discover(&refs) {
        Ok(Discovered::Result(r)) => ReplyPart::Json {
            body: jsonrpc::result_object(id, &r),
            session: None,
        },
        Ok(Discovered::NoModern(common)) => {
            // Nothing in common to speak natively: the 2025 versions they share, to fall back.
            let data = serde_json::json!({ "supported": common, "requested": modern::VERSION });
            let body = jsonrpc::error_object(
                Some(id),
                jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
                "the route's MCP servers have no protocol version in common with this request",
                Some(&data),
            );
            ReplyPart::Error { status: 400, body }
        }
        Err(e) => {
            tracing::warn!(route = %route.name, error = %e, "server/discover answers could not be merged");
            let body = jsonrpc::error_object(Some(id), jsonrpc::INTERNAL_ERROR, &e, None);
            ReplyPart::Error { status: 502, body }
        }
    };
    let modern = !matches!(part, ReplyPart::Error { status: 400, .. });
    (Some(modern), vec![part])
}

/// A list from every server, merged.
async fn list(
    shard: &Shard,
    route: &McpRoute,
    call: &ModernCall,
    method: &str,
    procs: Option<&Rc<Session>>,
    reply: &UnboundedSender<ReplyPart>,
) {
    let id = call.id.as_deref().unwrap_or("null");
    let answers = ask_all(shard, route, call, procs).await;
    let mut results = Vec::with_capacity(answers.len());
    for (i, parts) in answers.iter().enumerate() {
        let name = route.targets[i].name.as_str();
        let result = answer_of(parts)
            .filter(|(status, _)| (200..300).contains(status))
            .and_then(|(_, msg)| {
                merge::find_member(&msg, "result")
                    .ok()?
                    .map(|r| r.get().as_bytes().to_vec())
            });
        match result {
            Some(r) => results.push((name, r)),
            None => {
                tracing::warn!(route = %route.name, target_name = %name, method, "an MCP server failed the list; it is left out")
            }
        }
    }
    let refs: Vec<(&str, &[u8])> = results.iter().map(|(t, r)| (*t, r.as_slice())).collect();
    let key = authorize::list_of(method).map_or("tools", |(k, _)| k);
    let merged = match &call.authz {
        Some(a) => authorize::merge_filtered(shard, route, Some(a), method, &refs),
        None => merge::merge_list(key, &refs, true),
    };
    let body = match merged {
        Ok(m) => compat::to_modern_answer(method, jsonrpc::result_object(id, &m)),
        Err(e) => jsonrpc::error_object(Some(id), jsonrpc::INTERNAL_ERROR, &e, None),
    };
    let _ = reply.unbounded_send(ReplyPart::Json {
        body,
        session: None,
    });
}

/// `tools/call` or `prompts/get` (`kind`: "tool" or "prompt"): to the server its prefixed name
/// names, renamed there.
async fn by_name(
    shard: &Shard,
    route: &McpRoute,
    call: ModernCall,
    kind: &str,
    name: Option<&str>,
    procs: Option<&Rc<Session>>,
    reply: &UnboundedSender<ReplyPart>,
) {
    let id = call.id.as_deref().unwrap_or("null");
    let names: Vec<&str> = route.targets.iter().map(|t| t.name.as_str()).collect();
    let Some((target, inner)) = name.and_then(|n| merge::split(n, &names)) else {
        let msg = format!(
            "unknown {kind}: {} (names on this route are <server>_<name>; its servers: {})",
            name.unwrap_or(""),
            names.join(", ")
        );
        let body = jsonrpc::error_object(Some(id), jsonrpc::INVALID_PARAMS, &msg, None);
        let _ = reply.unbounded_send(ReplyPart::Json {
            body,
            session: None,
        });
        return;
    };
    let body = match merge::rename_param_name(&call.body, inner) {
        Ok(b) => b,
        Err(e) => {
            let _ = reply.unbounded_send(crate::relay::reject::invalid_params(id, &e));
            return;
        }
    };
    let ti = names.iter().position(|n| *n == target).unwrap_or(0);
    // The mirrored name is the one the server sees in the body.
    let mut headers = Vec::with_capacity(call.headers.len());
    for line in call.headers.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"mcp-name:") {
            headers.extend_from_slice(line);
        }
    }
    h1::write_header(&mut headers, "mcp-name", &modern::encode_value(inner));
    let call = ModernCall {
        body,
        headers,
        ..call
    };
    forward_one(shard, route, ti, &call, procs, reply).await
}

/// `call` to the route's server number `ti`: a POST to a streamable-HTTP server, or a message
/// to the principal's process of a stdio server.
async fn forward_one(
    shard: &Shard,
    route: &McpRoute,
    ti: usize,
    call: &ModernCall,
    procs: Option<&Rc<Session>>,
    reply: &UnboundedSender<ReplyPart>,
) {
    match (&route.targets[ti].kind, procs) {
        (McpTargetKind::Stdio { .. }, Some(s)) => {
            let id = call.id.as_deref().unwrap_or("null");
            relay_call::to_target(s, ti, id, &call.body, reply, None).await
        }
        (McpTargetKind::Stdio { .. }, None) => {
            // Not reached: such a route's requests come through the compatibility mode, which
            // starts the processes. Refused rather than sent nowhere.
            let _ = reply.unbounded_send(Reject::ServerNotStarted.reply(call.id.as_deref()));
        }
        _ => relay_modern::forward_to(shard, route, ti, call, reply).await,
    }
}

/// `call` sent to every server at once (its body and headers as they are); each server's
/// answer parts, in the route's order.
async fn ask_all(
    shard: &Shard,
    route: &McpRoute,
    call: &ModernCall,
    procs: Option<&Rc<Session>>,
) -> Vec<Vec<ReplyPart>> {
    let asks = (0..route.targets.len()).map(|i| async move {
        let one = ModernCall {
            body: call.body.clone(),
            id: call.id.clone(),
            headers: call.headers.clone(),
            // Filtered once merged, by the prefixed names' servers.
            authz: None,
            list_method: None,
            listen: false,
        };
        let (tx, rx) = unbounded();
        forward_one(shard, route, i, &one, procs, &tx).await;
        drop(tx);
        rx.collect::<Vec<_>>().await
    });
    futures_util::future::join_all(asks).await
}

/// The server's response among the parts of its answer, with the HTTP status it came with.
/// `None`: no answer from the server (unreachable, timed out, no response in its stream).
fn answer_of(parts: &[ReplyPart]) -> Option<(u16, Vec<u8>)> {
    let mut parser = SseParser::new(MAX_MESSAGE);
    for p in parts {
        match p {
            ReplyPart::Relayed { status, body } => return Some((*status, body.clone())),
            ReplyPart::Json { body, .. } => return Some((200, body.clone())),
            ReplyPart::Accepted => return Some((202, Vec::new())),
            ReplyPart::Event(ev) => {
                if parser.feed(ev).is_err() {
                    return None;
                }
                while let Some(e) = parser.next_event() {
                    if jsonrpc::peek(e.data.as_bytes()).is_ok_and(|p| p.kind == Kind::Response) {
                        return Some((200, e.data.into_bytes()));
                    }
                }
            }
            _ => {}
        }
    }
    None
}
