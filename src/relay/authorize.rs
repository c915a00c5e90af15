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

/// Who asks, on a route with `mcpAuthorization`: built on the worker that received the
/// request; the rules are borrowed from the route there.
#[derive(Debug, Clone)]
pub(crate) struct Asker {
    pub caller: Caller,
    /// The protected-resource metadata URL a 403 challenge names (`None` on `jwtAuth` routes).
    pub challenge_url: Option<Arc<str>>,
}

impl Asker {
    /// The asker with the rules, to travel with a request whose answer is filtered elsewhere
    /// (a list, on the session's owner). Only then is the rule set's `Arc` — which every worker
    /// shares — touched.
    pub(crate) fn with_rules(self, set: &Arc<RuleSet>) -> Authz {
        Authz {
            set: set.clone(),
            asker: self,
        }
    }
}

/// The rules and who asks: what a list request carries to where its answer is filtered.
#[derive(Debug, Clone)]
pub(crate) struct Authz {
    pub set: Arc<RuleSet>,
    pub asker: Asker,
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

/// Decisions for one request on the worker that received it.
pub(crate) struct Check<'a> {
    pub shard: &'a Shard,
    pub route: &'a McpRoute,
    pub set: &'a RuleSet,
    pub asker: &'a Asker,
    /// Where the verdict is left (for the access log).
    pub decided: &'a Cell<Option<&'static str>>,
}

impl Check<'_> {
    /// Decides one call; `Err` is the answer to send instead of forwarding it.
    pub(crate) fn call(&self, id: Option<&str>, method: &str, name: &str) -> Result<(), ReplyPart> {
        let Some(kind) = call_kind(method) else {
            return Ok(());
        };
        let item = item_of(self.route, kind, name);
        let verdict = {
            let mut cache = self.shard.decisions.borrow_mut();
            Decider::new(self.set, &self.asker.caller, &mut cache).decide(Some(item))
        };
        self.decided.set(Some(verdict.as_str()));
        let why = match verdict {
            Verdict::Allow => return Ok(()),
            Verdict::Deny => Denied::Call,
            Verdict::NeedsScopes(_) => Denied::InsufficientScope,
        };
        self.shard
            .metrics
            .borrow_mut()
            .denied(&self.route.name, why, 1);
        tracing::info!(
            route = %self.route.name,
            authz.decision = verdict.as_str(),
            mcp.method = method,
            "mcp call refused by mcpAuthorization"
        );
        Err(match verdict {
            Verdict::NeedsScopes(scopes) => {
                reject::insufficient_scope(self.asker.challenge_url.as_deref(), &scopes)
            }
            _ => reject::unknown_item(id.unwrap_or("null"), kind, name),
        })
    }

    /// Checks every call in a POSTed message (or batch; one denied call refuses the batch).
    /// `Ok(true)` when the answer may hold a list to filter (a list request, or a batch).
    pub(crate) fn message(&self, body: &[u8]) -> Result<bool, ReplyPart> {
        if jsonrpc::is_batch(body) {
            let Ok(parts) = jsonrpc::split_batch(body) else {
                return Ok(true); // refused as malformed where it is handled
            };
            for p in parts {
                self.message(p)?;
            }
            return Ok(true);
        }
        let Ok(env) = jsonrpc::peek(body) else {
            return Ok(false);
        };
        // A call sent as a notification (no id) is checked too: a lenient server may run it.
        match (env.kind, env.method, env.name.as_deref()) {
            (Kind::Request | Kind::Notification, Some(m), name) if call_kind(m).is_some() => {
                // A call without a string name is decided on the empty name.
                self.call(env.id, m, name.unwrap_or("")).map(|()| false)
            }
            (Kind::Request, Some(m), _) => Ok(list_of(m).is_some()),
            _ => Ok(false),
        }
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
        let mut d = Decider::new(&authz.set, &authz.asker.caller, &mut cache);
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
    let mut d = Decider::new(&authz.set, &authz.asker.caller, &mut cache);
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
