//! Authorization rules (`mcpAuthorization`, `authorization`): agentgateway's CEL rule sets,
//! compiled once at load and evaluated per caller and item, with a per-worker decision cache.
//!
//! Semantics (agentgateway's current ones, `http/authorization.rs`): no rules → allow; any
//! `deny` true → deny; any `require` not true → deny; any `allow` true → allow; otherwise allow
//! only if the set has no `allow` rule. A rule that fails to evaluate (a missing claim, no
//! token, a type error) counts as false: closed for `allow` and `require`, open for `deny` —
//! as agentgateway does, which is why load warns about `deny` rules.
//!
//! Variables: `jwt` (every claim of the verified token, nested), `mcp.tool|prompt|resource`
//! `.name` / `.target` (resources by URI, names without the multiplexing prefix), `request`
//! (`method`, `uri`, `path`, `host`, `scheme`, `headers`) and `source` (`address`, `port`).
//! A rule naming any other root is a load error, with its position.
//!
//! Speed: a rule set that reads neither `request` nor `source` decides the same for the same
//! token and item, so the verdict is cached per worker ([`Decisions`]); a hit is one keyed hash
//! and a comparison, no allocation. Evaluation (a miss) builds a CEL context: ~2 µs.
//!
//! Scopes: a rule that tests `"<scope>" in jwt.scope.split(" ")` (or `in jwt.scp`) names a
//! scope. When a caller is denied but would be allowed with the scopes the rules name, the
//! verdict is [`Verdict::NeedsScopes`] — the route answers 403 `insufficient_scope` listing them
//! all (MCP 2026-07-28 "Runtime Insufficient Scope Errors") so the client can step up.
//!
//! Not here: where the verdicts are enforced (`relay`, `server::dispatch`), or how they are
//! answered (`relay::reject`, `auth::challenge`).

mod cache;
mod compile;
mod eval;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use cache::Decisions;
pub(crate) use compile::CompileError;
pub use eval::Evaluator;

/// How a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Allow,
    Deny,
    Require,
}

/// Which policy a rule set is for: the roots its rules may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `mcpAuthorization`: `jwt`, `mcp`, `request`, `source`.
    Mcp,
    /// `authorization`: `jwt`, `request`, `source`.
    Http,
}

struct Rule {
    kind: RuleKind,
    program: cel::Program,
    /// Scopes the rule tests the token for (see the module doc).
    scopes: Vec<String>,
}

/// A compiled rule set (route and backend rules composed: agentgateway adds them up).
pub struct RuleSet {
    /// Unique per compiled set: the decision cache's key, so a reload never reuses a verdict.
    id: u64,
    rules: Vec<Rule>,
    has_allow: bool,
    /// Some rule reads `request` or `source`: verdicts differ per request and are not cached.
    per_request: bool,
    /// Every scope any rule names.
    scopes: Vec<String>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("id", &self.id)
            .field("rules", &self.rules.len())
            .field("per_request", &self.per_request)
            .finish()
    }
}

impl RuleSet {
    /// Whether verdicts depend on the request's attributes (and so are not cached).
    pub(crate) fn per_request(&self) -> bool {
        self.per_request
    }

    /// Whether any rule tests a scope (denials may then be `insufficient_scope`).
    pub(crate) fn names_scopes(&self) -> bool {
        !self.scopes.is_empty()
    }

    /// Whether any rule is a `deny` (they fail open on errors; load warns).
    pub(crate) fn has_deny(&self) -> bool {
        self.rules.iter().any(|r| r.kind == RuleKind::Deny)
    }
}

/// What an item is, for `mcp.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Tool,
    Prompt,
    Resource,
}

impl ItemKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ItemKind::Tool => "tool",
            ItemKind::Prompt => "prompt",
            ItemKind::Resource => "resource",
        }
    }
}

/// A tool, prompt or resource as the rules see it: its name on its server (a resource's URI)
/// and the target that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub kind: ItemKind,
    pub target: &'a str,
    pub name: &'a str,
}

/// The request attributes rules may read (`request.*`, `source.*`); built only for rule sets
/// that read them.
#[derive(Debug, Clone, Default)]
pub struct RequestAttrs {
    pub method: String,
    pub uri: String,
    pub path: String,
    pub host: String,
    pub scheme: &'static str,
    /// Lower-case names; repeated headers joined with `,`.
    pub headers: Vec<(String, String)>,
    pub source: Option<std::net::SocketAddr>,
}

/// Who is asking, in a form that can travel to the worker that owns a session: the verified
/// token's identity in the token cache (0 for no token) and its claims as JSON.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Unique per verified token entry (`Principal::id`); 0 when there is no token.
    pub id: u64,
    pub claims: Option<Arc<str>>,
    pub request: Option<Arc<RequestAttrs>>,
}

/// A decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// Denied, but the rules would allow it with these scopes (space-separated, the token's
    /// own first): a 403 `insufficient_scope` challenge.
    NeedsScopes(Arc<str>),
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        matches!(self, Verdict::Allow)
    }

    /// For metrics and the access log.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::NeedsScopes(_) => "insufficient_scope",
        }
    }
}

/// Compiles a rule set for `policy` (each rule with how it counts); the error names the rule
/// and the position in it.
pub fn compile(rules: &[(RuleKind, &str)], policy: Policy) -> Result<RuleSet, CompileError> {
    compile::compile(rules, policy)
}

/// Decisions for one caller against one rule set: the worker's cache first, rules evaluated
/// (the CEL context built once) on a miss.
pub struct Decider<'a> {
    set: &'a RuleSet,
    caller: &'a Caller,
    cache: &'a mut Decisions,
    eval: Option<Evaluator<'a>>,
}

impl<'a> Decider<'a> {
    pub fn new(set: &'a RuleSet, caller: &'a Caller, cache: &'a mut Decisions) -> Self {
        Decider {
            set,
            caller,
            cache,
            eval: None,
        }
    }

    pub fn decide(&mut self, item: Option<Item<'_>>) -> Verdict {
        let cacheable = !self.set.per_request;
        if cacheable {
            if let Some(v) = self.cache.get(self.caller.id, self.set.id, item) {
                return v.clone();
            }
        }
        let (set, caller) = (self.set, self.caller);
        let v = self
            .eval
            .get_or_insert_with(|| Evaluator::new(set, caller))
            .decide(item);
        if cacheable {
            self.cache.put(self.caller.id, self.set.id, item, v.clone());
        }
        v
    }
}
