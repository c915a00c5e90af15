//! `mcpAuthorization` in the relay: calls checked before anything is sent to a server, lists
//! filtered on their way back.
//!
//! Calls (`tools/call`, `prompts/get`, `resources/read|subscribe|unsubscribe`) are decided on
//! the worker that received them, before a session is looked up: a denied call never reaches
//! the session's owner, let alone a server. It is answered as agentgateway answers it — 400
//! with JSON-RPC -32602 `Unknown tool: <name>` (the name as the client sent it), so a caller
//! cannot tell a forbidden tool from a missing one — or, when the rules would allow it with
//! more scopes, 403 with an `insufficient_scope` challenge naming them all.
//!
//! Lists (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`) are
//! filtered where they are answered: every page, both eras, each entry decided by its name as
//! its server has it (unprefixed, with `mcp.<kind>.target` naming the server). A list that
//! cannot be read to be filtered is refused (fail closed). Notifications pass untouched.
//!
//! Verdicts come from the worker's decision cache ([`Decisions`] in the shard).

use std::cell::Cell;
use std::sync::Arc;

use crate::mcp::jsonrpc::{self, Kind};
use crate::mcp::merge;
use crate::metrics::Denied;
use crate::policy::authz::{Caller, Decider, Item, ItemKind, RuleSet, Verdict};
use crate::relay::reject;
use crate::relay::ReplyPart;
use crate::shard::Shard;
use crate::snapshot::McpRoute;

/// What a request on a route with `mcpAuthorization` carries to wherever it is answered.
#[derive(Debug, Clone)]
pub(crate) struct Authz {
    pub set: Arc<RuleSet>,
    pub caller: Caller,
    /// The protected-resource metadata URL a 403 challenge names (`None` on `jwtAuth` routes).
    pub challenge_url: Option<Arc<str>>,
}

/// The kind of item a call acts on.
pub(crate) fn call_kind(method: &str) -> Option<ItemKind> {
    match method {
        "tools/call" => Some(ItemKind::Tool),
        "prompts/get" => Some(ItemKind::Prompt),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Some(ItemKind::Resource)
        }
        _ => None,
    }
}

/// The list member and item kind of a list method.
pub(crate) fn list_of(method: &str) -> Option<(&'static str, ItemKind)> {
    match method {
        "tools/list" => Some(("tools", ItemKind::Tool)),
        "prompts/list" => Some(("prompts", ItemKind::Prompt)),
        "resources/list" => Some(("resources", ItemKind::Resource)),
        "resources/templates/list" => Some(("resourceTemplates", ItemKind::Resource)),
        _ => None,
    }
}

/// `method` as a `'static` name, when it is a list method.
pub(crate) fn list_method(method: &str) -> Option<&'static str> {
    [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ]
    .into_iter()
    .find(|m| *m == method)
}

/// The item a call names, as the rules see it: on a prefixed route the target and the name it
/// has there; a name of no target keeps its whole self and an empty target.
fn item_of<'a>(route: &'a McpRoute, kind: ItemKind, name: &'a str) -> Item<'a> {
    let single = route.targets.first().map_or("", |t| t.name.as_str());
    if route.prefix && kind != ItemKind::Resource {
        let names: Vec<&str> = route.targets.iter().map(|t| t.name.as_str()).collect();
        if let Some((target, inner)) = merge::split(name, &names) {
            return Item {
                kind,
                target,
                name: inner,
            };
        }
        return Item {
            kind,
            target: "",
            name,
        };
    }
    Item {
        kind,
        target: single,
        name,
    }
}

/// Decides one call; `Err` is the answer to send instead of forwarding it.
/// The verdict is also left in `decided` (for the access log).
pub(crate) fn check_call(
    shard: &Shard,
    route: &McpRoute,
    authz: &Authz,
    id: Option<&str>,
    method: &str,
    name: &str,
    decided: &Cell<Option<&'static str>>,
) -> Result<(), ReplyPart> {
    let Some(kind) = call_kind(method) else {
        return Ok(());
    };
    let item = item_of(route, kind, name);
    let verdict = {
        let mut cache = shard.decisions.borrow_mut();
        Decider::new(&authz.set, &authz.caller, &mut cache).decide(Some(item))
    };
    decided.set(Some(verdict.as_str()));
    let why = match verdict {
        Verdict::Allow => return Ok(()),
        Verdict::Deny => Denied::Call,
        Verdict::NeedsScopes(_) => Denied::InsufficientScope,
    };
    shard.metrics.borrow_mut().denied(&route.name, why, 1);
    tracing::info!(
        route = %route.name,
        authz.decision = verdict.as_str(),
        mcp.method = method,
        "mcp call refused by mcpAuthorization"
    );
    Err(match verdict {
        Verdict::NeedsScopes(scopes) => {
            reject::insufficient_scope(authz.challenge_url.as_deref(), &scopes)
        }
        _ => reject::unknown_item(id.unwrap_or("null"), kind, name),
    })
}

/// Checks every call in a POSTed message (or batch; one denied call refuses the batch).
pub(crate) fn check_message(
    shard: &Shard,
    route: &McpRoute,
    authz: &Authz,
    body: &[u8],
    decided: &Cell<Option<&'static str>>,
) -> Result<(), ReplyPart> {
    if jsonrpc::is_batch(body) {
        let Ok(parts) = jsonrpc::split_batch(body) else {
            return Ok(()); // refused as malformed where it is handled
        };
        for p in parts {
            check_message(shard, route, authz, p, decided)?;
        }
        return Ok(());
    }
    let Ok(env) = jsonrpc::peek(body) else {
        return Ok(());
    };
    match (env.kind, env.method, env.name.as_deref()) {
        (Kind::Request, Some(m), Some(name)) => {
            check_call(shard, route, authz, env.id, m, name, decided)
        }
        // A call without a string name cannot be decided by name: only if nothing is denied.
        (Kind::Request, Some(m), None) if call_kind(m).is_some() => {
            check_call(shard, route, authz, env.id, m, "", decided)
        }
        _ => Ok(()),
    }
}

/// Filters one server's answer to a list method (a whole JSON-RPC response; anything else is
/// returned as it is). An answer that cannot be filtered becomes an error: fail closed.
pub(crate) fn filter_answer(
    shard: &Shard,
    route: &McpRoute,
    authz: &Authz,
    method: &str,
    id: &str,
    msg: Vec<u8>,
) -> Vec<u8> {
    let Some((key, kind)) = list_of(method) else {
        return msg;
    };
    let target = route.targets.first().map_or("", |t| t.name.as_str());
    let filtered = {
        let mut cache = shard.decisions.borrow_mut();
        let mut d = Decider::new(&authz.set, &authz.caller, &mut cache);
        merge::filter_response(&msg, key, &mut |name| {
            d.decide(Some(Item { kind, target, name })).allowed()
        })
    };
    match filtered {
        Ok((out, dropped)) => {
            if dropped > 0 {
                shard
                    .metrics
                    .borrow_mut()
                    .denied(&route.name, Denied::ListItem, dropped as u64);
            }
            out
        }
        Err(e) => {
            tracing::warn!(route = %route.name, error = %e, "a list answer could not be filtered; refused");
            jsonrpc::error_object(
                Some(id),
                jsonrpc::INTERNAL_ERROR,
                "the MCP server's list could not be checked against mcpAuthorization",
                None,
            )
        }
    }
}

/// Merges several targets' list results keeping what the rules allow.
pub(crate) fn merge_filtered(
    shard: &Shard,
    route: &McpRoute,
    authz: Option<&Authz>,
    method: &str,
    results: &[(&str, &[u8])],
) -> Result<Vec<u8>, String> {
    let Some((key, kind)) = list_of(method) else {
        return merge::merge_list(method, results, route.prefix);
    };
    let Some(authz) = authz else {
        return merge::merge_list(key, results, route.prefix);
    };
    let mut cache = shard.decisions.borrow_mut();
    let mut d = Decider::new(&authz.set, &authz.caller, &mut cache);
    let mut keep = |t: &str, n: &str| {
        d.decide(Some(Item {
            kind,
            target: t,
            name: n,
        }))
        .allowed()
    };
    let (out, dropped) = merge::merge_list_filtered(key, results, route.prefix, Some(&mut keep))?;
    drop(cache);
    if dropped > 0 {
        shard
            .metrics
            .borrow_mut()
            .denied(&route.name, Denied::ListItem, dropped as u64);
    }
    Ok(out)
}
