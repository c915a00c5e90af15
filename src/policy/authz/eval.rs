//! Evaluating a rule set for one caller: a CEL context built once per caller (claims parsed,
//! request attributes bound) and reused for every item asked about — a `tools/list` of 500
//! tools builds it once.

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Value};

use super::{Caller, Item, RuleKind, RuleSet, Verdict};

/// A rule set bound to one caller.
pub struct Evaluator<'s> {
    set: &'s RuleSet,
    ctx: Context<'static, 'static>,
    /// The caller's claims with every scope the rules name added (only when the rules name
    /// scopes and the caller has a token): what "would the caller pass with more scopes" asks.
    augmented: Option<(Value, Vec<String>)>,
}

impl<'s> Evaluator<'s> {
    pub fn new(set: &'s RuleSet, caller: &Caller) -> Self {
        let mut ctx = Context::with_env(super::compile::env());
        let claims = caller.claims.as_deref().and_then(parse_claims);
        let mut augmented = None;
        if let Some(serde_json::Value::Object(map)) = &claims {
            if !set.scopes.is_empty() {
                let own = own_scopes(map);
                let mut more = map.clone();
                let mut all = own.clone();
                for s in &set.scopes {
                    if !all.contains(s) {
                        all.push(s.clone());
                    }
                }
                more.insert("scope".into(), all.join(" ").into());
                more.insert(
                    "scp".into(),
                    serde_json::Value::Array(all.iter().map(|s| s.as_str().into()).collect()),
                );
                augmented = Some((to_cel(&serde_json::Value::Object(more)), own));
            }
        }
        if let Some(c) = &claims {
            ctx.add_variable_from_value("jwt", to_cel(c));
        }
        if let Some(r) = &caller.request {
            let headers: HashMap<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            let mut req: HashMap<&str, Value> = HashMap::new();
            req.insert("method", r.method.as_str().into());
            req.insert("uri", r.uri.as_str().into());
            req.insert("path", r.path.as_str().into());
            req.insert("host", r.host.as_str().into());
            req.insert("scheme", r.scheme.into());
            req.insert("headers", headers.into());
            ctx.add_variable_from_value("request", req);
            if let Some(a) = r.source {
                let mut src: HashMap<&str, Value> = HashMap::new();
                src.insert("address", a.ip().to_string().into());
                src.insert("port", Value::Int(i64::from(a.port())));
                ctx.add_variable_from_value("source", src);
            }
        }
        Evaluator {
            set,
            ctx,
            augmented,
        }
    }

    /// The verdict for `item` (`None` for an HTTP request).
    pub fn decide(&self, item: Option<Item<'_>>) -> Verdict {
        if self.set.rules.is_empty() {
            return Verdict::Allow;
        }
        let mut scope = self.ctx.new_inner_scope();
        if let Some(it) = item {
            scope.add_variable_from_value("mcp", mcp_value(it));
        }
        let first: Vec<bool> = self.set.rules.iter().map(|r| holds(r, &scope)).collect();
        if self.set.combine(&first) {
            return Verdict::Allow;
        }
        let Some((claims, own)) = &self.augmented else {
            return Verdict::Deny;
        };
        scope.add_variable_from_value("jwt", claims.clone());
        let second: Vec<bool> = self.set.rules.iter().map(|r| holds(r, &scope)).collect();
        if !self.set.combine(&second) {
            return Verdict::Deny;
        }
        // The scopes of the rules that more scopes made pass, after the token's own: all the
        // operation needs in one challenge, and nothing the client already holds is lost.
        let mut needed = own.clone();
        for (i, r) in self.set.rules.iter().enumerate() {
            if first[i] != second[i] {
                for s in &r.scopes {
                    if !needed.contains(s) {
                        needed.push(s.clone());
                    }
                }
            }
        }
        if needed.len() == own.len() {
            // The token holds them already (the rules read another claim): asking for the
            // same scopes again could only loop.
            return Verdict::Deny;
        }
        Verdict::NeedsScopes(Arc::from(needed.join(" ")))
    }
}

impl RuleSet {
    /// agentgateway's combination of rule outcomes (see the module doc).
    fn combine(&self, held: &[bool]) -> bool {
        let mut allowed = false;
        for (r, &h) in self.rules.iter().zip(held) {
            match r.kind {
                RuleKind::Deny if h => return false,
                RuleKind::Require if !h => return false,
                RuleKind::Allow if h => allowed = true,
                _ => {}
            }
        }
        allowed || !self.has_allow
    }
}

/// A rule's outcome: only a boolean `true` holds; errors and other values do not.
fn holds(r: &super::Rule, ctx: &Context<'_, '_>) -> bool {
    matches!(r.program.execute(ctx), Ok(Value::Bool(true)))
}

fn parse_claims(json: &str) -> Option<serde_json::Value> {
    serde_json::from_str(json).ok()
}

/// The token's scopes: `scope` split on spaces, else `scp` (a list or a string).
fn own_scopes(claims: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let split = |s: &str| {
        s.split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match (claims.get("scope"), claims.get("scp")) {
        (Some(serde_json::Value::String(s)), _) => split(s),
        (_, Some(serde_json::Value::String(s))) => split(s),
        (_, Some(serde_json::Value::Array(a))) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn mcp_value(it: Item<'_>) -> Value {
    let mut inner: HashMap<&str, Value> = HashMap::with_capacity(2);
    inner.insert("name", it.name.into());
    inner.insert("target", it.target.into());
    let mut outer: HashMap<&str, Value> = HashMap::with_capacity(1);
    outer.insert(it.kind.as_str(), inner.into());
    outer.into()
}

/// JSON claims as CEL values (integers stay integers, so `jwt.exp > 0` works).
pub(super) fn to_cel(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => s.as_str().into(),
        serde_json::Value::Array(a) => a.iter().map(to_cel).collect::<Vec<_>>().into(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), to_cel(v)))
            .collect::<HashMap<String, Value>>()
            .into(),
    }
}
