//! Per-worker metrics, kept in plain (non-atomic) counters owned by one worker and copied out
//! when the stats endpoint scrapes; the admin thread sums the copies and renders them.
//!
//! Owns: the counters (requests by route, method, status and reason; MCP requests by method,
//! server and resource; authentication results; connections; connect and handshake times) and
//! their label vocabularies. agentgateway's series (`agentgateway_*`) and Portcullis's own
//! (`portcullis_*`) are both rendered from these counters (`render`). Control-plane figures (key
//! sets) live in [`ControlStats`], written by the key manager. Not here: the HTTP server for
//! `/metrics` (see `runtime::admin`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

mod control;
pub(crate) mod labels;
mod render;
#[cfg(test)]
mod tests;

pub(crate) use control::ControlStats;
pub(crate) use labels::{
    escape_label, mcp_method_label, MetricsExport, RouteLabels, REGISTRATION, UNMATCHED,
};
pub(crate) use render::{is_known, render, Extra};

type Fold = foldhash::fast::RandomState;

/// Upper bounds of `portcullis_request_duration_seconds`' buckets, in seconds: fine enough
/// for a proxy that answers in microseconds.
pub(crate) const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// agentgateway's buckets for `agentgateway_request_duration_seconds` (its dashboards' quantiles
/// are computed from them).
pub(crate) const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 80.0,
];

/// agentgateway's buckets for connect and TLS handshake durations.
pub(crate) const CONNECT_BUCKETS: [f64; 10] = [
    0.0005, 0.0015, 0.0043, 0.0126, 0.0368, 0.108, 0.316, 0.924, 2.71, 8.0,
];

/// At most this many MCP series (method, server, resource) per worker: tool names come from
/// clients, so beyond it new names are counted under `resource="overflow"`.
pub(crate) const MAX_MCP_SERIES: usize = 4096;
/// Resource names longer than this are counted as `resource="overflow"` too.
pub(crate) const MAX_RESOURCE_LABEL: usize = 128;

/// A fixed-bucket histogram (at most 15 bounds; the last count is above the last bound).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub counts: [u64; 16],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, bounds: &[f64], secs: f64) {
        let i = bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(bounds.len());
        self.counts[i] += 1;
        self.sum += secs;
        self.count += 1;
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.sum += o.sum;
        self.count += o.count;
    }
}

/// Why a protection limit refused a request: the `reason` label of `portcullis_refused_total`
/// (README, "Limits and protection").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A route's `localRateLimit` (429; also counted per route).
    RateLimit,
    /// The client's address spent its budget of failed token verifications (401).
    FailedVerifications,
    /// More requests waiting for signature-check time than the worker queues (503).
    VerifyQueueFull,
    /// `config.mcp.maxSessionsPerSubject` (429).
    SessionsPerSubject,
    /// `config.mcp.maxSessionsPerWorker` (503).
    SessionsPerWorker,
    /// `config.mcp.maxStdioProcesses` (503).
    StdioProcesses,
    /// `config.mcp.maxBufferedBytes` (503).
    BufferedBodies,
    /// A request body arriving below the minimum rate (408).
    BodyTooSlow,
}

impl Refused {
    pub(crate) const ALL: [Refused; 8] = [
        Refused::RateLimit,
        Refused::FailedVerifications,
        Refused::VerifyQueueFull,
        Refused::SessionsPerSubject,
        Refused::SessionsPerWorker,
        Refused::StdioProcesses,
        Refused::BufferedBodies,
        Refused::BodyTooSlow,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Refused::RateLimit => "rate_limit",
            Refused::FailedVerifications => "failed_verifications",
            Refused::VerifyQueueFull => "verify_queue_full",
            Refused::SessionsPerSubject => "sessions_per_subject",
            Refused::SessionsPerWorker => "sessions_per_worker",
            Refused::StdioProcesses => "stdio_processes",
            Refused::BufferedBodies => "buffered_bodies",
            Refused::BodyTooSlow => "body_too_slow",
        }
    }
}

/// Why authorization refused something (`portcullis_authorization_denied_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// A tool call, prompt get or resource read no rule allows (never forwarded).
    Call,
    /// The same, where more scopes would allow it: answered 403 `insufficient_scope`.
    InsufficientScope,
    /// A tool, prompt or resource left out of a list.
    ListItem,
    /// An HTTP request `authorization` refused (403).
    Http,
}

impl Denied {
    pub(crate) const ALL: [Denied; 4] = [
        Denied::Call,
        Denied::InsufficientScope,
        Denied::ListItem,
        Denied::Http,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Denied::Call => "call",
            Denied::InsufficientScope => "insufficient_scope",
            Denied::ListItem => "list_item",
            Denied::Http => "http",
        }
    }
}

/// The `method` label of `agentgateway_requests_total`: the standard methods, and `OTHER` for
/// any extension method (a client cannot add series by inventing methods).
pub(crate) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER",
];

pub fn method_index(m: &str) -> u8 {
    METHODS[..9].iter().position(|x| *x == m).unwrap_or(9) as u8
}

/// agentgateway's `reason` label (its `ProxyResponseReason`): who produced the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Upstream,
    DirectResponse,
    NotFound,
    InvalidRequest,
    JwtAuth,
    Authorization,
    RateLimit,
    Timeout,
    UpstreamFailure,
    Internal,
    Mcp,
}

impl Reason {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Reason::Upstream => "Upstream",
            Reason::DirectResponse => "DirectResponse",
            Reason::NotFound => "NotFound",
            Reason::InvalidRequest => "InvalidRequest",
            Reason::JwtAuth => "JwtAuth",
            Reason::Authorization => "Authorization",
            Reason::RateLimit => "RateLimit",
            Reason::Timeout => "Timeout",
            Reason::UpstreamFailure => "UpstreamFailure",
            Reason::Internal => "Internal",
            Reason::Mcp => "MCP",
        }
    }

    /// An answer Portcullis wrote itself (`routed`: a route matched).
    pub(crate) fn local(status: u16, routed: bool) -> Reason {
        match status {
            401 => Reason::JwtAuth,
            403 => Reason::Authorization,
            429 => Reason::RateLimit,
            408 => Reason::Timeout,
            404 if !routed => Reason::NotFound,
            500..=599 => Reason::Internal,
            400..=499 => Reason::InvalidRequest,
            _ => Reason::DirectResponse,
        }
    }

    /// A forwarded request: the upstream answered, or (`failed`) could not be reached or
    /// broke off (502/504 written here).
    pub(crate) fn proxied(status: u16, failed: bool) -> Reason {
        match (failed, status) {
            (false, _) => Reason::Upstream,
            (true, 504 | 408) => Reason::Timeout,
            (true, 500..=599) => Reason::UpstreamFailure,
            (true, _) => Reason::InvalidRequest,
        }
    }

    /// An MCP request answered by the relay.
    pub(crate) fn mcp(status: u16) -> Reason {
        match status {
            401 => Reason::JwtAuth,
            403 => Reason::Authorization,
            429 => Reason::RateLimit,
            502 => Reason::UpstreamFailure,
            504 => Reason::Timeout,
            400..=599 => Reason::Mcp,
            _ => Reason::Upstream,
        }
    }
}

/// The `result` label of `portcullis_auth_decisions_total`: a verified token, no token where
/// none is required, or why a request was refused (the [`AuthReject`] codes among them).
///
/// [`AuthReject`]: crate::policy::mcp_auth::AuthReject
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthResult {
    Accepted,
    Anonymous,
    Missing,
    /// No key set has loaded yet (503).
    Unavailable,
    /// The worker's queue for signature checks is full (503).
    Busy,
    Invalid(crate::policy::mcp_auth::AuthReject),
}

const AUTH_FIXED: usize = 5;
pub(crate) const AUTH_RESULTS: usize = AUTH_FIXED + crate::policy::mcp_auth::AuthReject::ALL.len();

impl AuthResult {
    fn index(self) -> usize {
        use crate::policy::mcp_auth::AuthReject;
        match self {
            AuthResult::Accepted => 0,
            AuthResult::Anonymous => 1,
            AuthResult::Missing | AuthResult::Invalid(AuthReject::Missing) => 2,
            AuthResult::Unavailable => 3,
            AuthResult::Busy => 4,
            AuthResult::Invalid(r) => {
                AUTH_FIXED + AuthReject::ALL.iter().position(|x| *x == r).unwrap_or(0)
            }
        }
    }

    /// The label of index `i`; `None` for the one index never counted (a missing token is
    /// `missing` whichever way it is reported).
    pub(crate) fn label(i: usize) -> Option<&'static str> {
        use crate::policy::mcp_auth::AuthReject;
        let label = match i {
            0 => "accepted",
            1 => "anonymous",
            2 => "missing",
            3 => "unavailable",
            4 => "busy",
            _ => match AuthReject::ALL.get(i - AUTH_FIXED) {
                Some(AuthReject::Missing) | None => return None,
                Some(r) => r.as_str(),
            },
        };
        Some(label)
    }
}

/// One route's requests, by method, status and reason, and their durations.
#[derive(Debug, Clone, Default)]
pub struct RouteStats {
    /// Portcullis's `route` label.
    pub route: Box<str>,
    /// agentgateway's route labels (backend, protocol, bind, gateway, listener, route,
    /// route_rule), rendered once.
    pub labels: Box<str>,
    /// (method index, status, reason, count).
    pub counts: Vec<(u8, u16, Reason, u64)>,
    pub duration: Histogram,
}

/// The verified-token caches of one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests whose token was found in the cache (no signature check).
    pub hits: u64,
    /// Tokens verified afresh (accepted or refused).
    pub verifications: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Entries held now.
    pub entries: u64,
}

impl CacheStats {
    pub(crate) fn add(&mut self, o: CacheStats) {
        self.hits += o.hits;
        self.verifications += o.verifications;
        self.evictions += o.evictions;
        self.entries += o.entries;
    }
}

#[derive(Debug, Default, Clone)]
pub struct WorkerMetrics {
    /// Requests refused by a protection limit, indexed by [`Refused`] (as `usize`).
    pub refused: [u64; Refused::ALL.len()],
    /// Requests refused by `localRateLimit`, by route name.
    pub rate_limited: HashMap<Box<str>, u64, Fold>,
    /// Authorization denials (`mcpAuthorization`, `authorization`) by route, indexed by
    /// [`Denied`] (as `usize`).
    pub denied: HashMap<Box<str>, [u64; Denied::ALL.len()], Fold>,
    /// Requests by route ([`RouteLabels::id`]). Keyed by an id so that counting neither hashes
    /// the labels nor touches the snapshot's shared reference counts.
    pub http: HashMap<u64, RouteStats, Fold>,
    /// Every request's duration, at fine resolution.
    pub latency: Histogram,
    pub open_connections: u64,
    pub accepted_connections: u64,
    /// Downstream connections accepted, by (port, TLS).
    pub downstream: Vec<(u16, bool, u64)>,
    /// Inbound TLS handshakes that completed.
    pub tls_handshake: Histogram,
    /// Upstream connects (plaintext, tls); copied from the worker's thread at scrape.
    pub upstream_connect: [Histogram; 2],
    /// Authentication results, indexed by [`AuthResult`].
    pub auth: [u64; AUTH_RESULTS],
    /// MCP requests, by a hash of their labels: agentgateway's label set (rendered once) and
    /// the count.
    pub mcp: HashMap<u64, (Box<str>, u64), Fold>,
    /// MCP request durations by route, server and method (same keying).
    pub mcp_latency: HashMap<u64, (Box<str>, Histogram), Fold>,
    /// Sessions this worker owns (at scrape).
    pub sessions: u64,
    /// Requests for another replica's MCP session: forwarded to it, received from a peer, and
    /// answered 404 because the owner could not be reached.
    pub peer: [u64; 3],
    /// The token caches (at scrape).
    pub cache: CacheStats,
    /// What the snapshot says about rendering (at scrape).
    pub export: Option<std::sync::Arc<MetricsExport>>,
}

/// The key of a label set: the same on every worker, so that scrapes merge by it.
fn key_of(parts: &[&str]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
    for p in parts {
        h.write(p.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

thread_local! {
    /// Upstream connect durations of this thread (plaintext, tls): recorded where connections
    /// are made, which knows no worker state; read on the same thread at scrape.
    static CONNECTS: RefCell<[Histogram; 2]> = RefCell::new(Default::default());
}

/// Records one upstream connect (TCP, plus the TLS handshake when `tls`).
pub(crate) fn observe_connect(tls: bool, elapsed: Duration) {
    CONNECTS.with(|c| {
        c.borrow_mut()[usize::from(tls)].observe(&CONNECT_BUCKETS, elapsed.as_secs_f64())
    });
}

/// This thread's upstream connect durations.
pub(crate) fn thread_connects() -> [Histogram; 2] {
    CONNECTS.with(|c| c.borrow().clone())
}

impl WorkerMetrics {
    /// One finished request.
    pub fn record(
        &mut self,
        route: &RouteLabels,
        method: u8,
        status: u16,
        reason: Reason,
        elapsed: Duration,
    ) {
        let secs = elapsed.as_secs_f64();
        let stats = match self.http.get_mut(&route.id) {
            Some(s) => s,
            None => self.http.entry(route.id).or_insert_with(|| RouteStats {
                route: route.route.as_ref().into(),
                labels: route.text.clone(),
                ..RouteStats::default()
            }),
        };
        match stats
            .counts
            .iter_mut()
            .find(|(m, s, r, _)| *m == method && *s == status && *r == reason)
        {
            Some((.., n)) => *n += 1,
            None => stats.counts.push((method, status, reason, 1)),
        }
        stats.duration.observe(&REQUEST_BUCKETS, secs);
        self.latency.observe(&LATENCY_BUCKETS, secs);
    }

    pub(crate) fn refuse(&mut self, why: Refused) {
        self.refused[why as usize] += 1;
    }

    /// A request `localRateLimit` refused on `route`.
    pub(crate) fn rate_limited(&mut self, route: &str) {
        self.refuse(Refused::RateLimit);
        match self.rate_limited.get_mut(route) {
            Some(n) => *n += 1,
            None => {
                self.rate_limited.insert(route.into(), 1);
            }
        }
    }

    /// An authorization denial on `route`.
    pub(crate) fn denied(&mut self, route: &str, why: Denied, n: u64) {
        match self.denied.get_mut(route) {
            Some(c) => c[why as usize] += n,
            None => {
                let mut c = [0; Denied::ALL.len()];
                c[why as usize] = n;
                self.denied.insert(route.into(), c);
            }
        }
    }

    pub(crate) fn auth(&mut self, result: AuthResult) {
        self.auth[result.index()] += 1;
    }

    /// A downstream connection accepted on `port`.
    pub(crate) fn accepted(&mut self, port: u16, tls: bool) {
        self.open_connections += 1;
        self.accepted_connections += 1;
        match self
            .downstream
            .iter_mut()
            .find(|(p, t, _)| *p == port && *t == tls)
        {
            Some((.., n)) => *n += 1,
            None => self.downstream.push((port, tls, 1)),
        }
    }

    /// One MCP message relayed on `route` (`scope`: its agentgateway route labels): its method,
    /// the target that served it and the tool, prompt or resource it names; `elapsed` for
    /// requests (not notifications).
    pub fn mcp_request(
        &mut self,
        route: &str,
        scope: &str,
        method: &str,
        server: Option<&str>,
        resource: Option<&str>,
        elapsed: Option<Duration>,
    ) {
        let method = mcp_method_label(method);
        let kind = match method {
            "tools/call" => "tool",
            "prompts/get" => "prompt",
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "resource",
            _ => "unknown",
        };
        let server = server.unwrap_or("unknown");
        let mut resource = match resource {
            Some(r) if kind != "unknown" && r.len() <= MAX_RESOURCE_LABEL => r,
            Some(_) if kind != "unknown" => "overflow",
            _ => "unknown",
        };
        let mut key = key_of(&[scope, method, server, resource]);
        match self.mcp.get_mut(&key) {
            Some((_, n)) => *n += 1,
            None => {
                if self.mcp.len() >= MAX_MCP_SERIES {
                    resource = "overflow";
                    key = key_of(&[scope, method, server, resource]);
                }
                let labels = || {
                    format!(
                        "method=\"{method}\",resource_type=\"{kind}\",server=\"{}\",resource=\"{}\",{scope}",
                        escape_label(server),
                        escape_label(resource)
                    )
                };
                self.mcp
                    .entry(key)
                    .or_insert_with(|| (labels().into(), 0))
                    .1 += 1;
            }
        }
        if let Some(elapsed) = elapsed {
            let key = key_of(&[route, server, method]);
            let secs = elapsed.as_secs_f64();
            let entry = match self.mcp_latency.get_mut(&key) {
                Some(e) => e,
                None => self.mcp_latency.entry(key).or_insert_with(|| {
                    let labels = format!(
                        "route=\"{}\",server=\"{}\",method=\"{method}\"",
                        escape_label(route),
                        escape_label(server)
                    );
                    (labels.into(), Histogram::default())
                }),
            };
            entry.1.observe(&LATENCY_BUCKETS, secs);
        }
    }

    /// Adds `other`'s counts. Destructured so that a field added to [`WorkerMetrics`] does not
    /// compile until it is merged here (a forgotten field would read 0 at every scrape).
    pub(crate) fn merge(&mut self, other: &WorkerMetrics) {
        let WorkerMetrics {
            refused,
            rate_limited,
            denied,
            http,
            latency,
            open_connections,
            accepted_connections,
            downstream,
            tls_handshake,
            upstream_connect,
            auth,
            mcp,
            mcp_latency,
            sessions,
            peer,
            cache,
            export,
        } = other;
        for (a, b) in self.refused.iter_mut().zip(refused.iter()) {
            *a += b;
        }
        for (route, n) in rate_limited {
            *self.rate_limited.entry(route.clone()).or_default() += n;
        }
        for (route, counts) in denied {
            let mine = self.denied.entry(route.clone()).or_default();
            for (a, b) in mine.iter_mut().zip(counts) {
                *a += b;
            }
        }
        for (id, theirs) in http {
            let mine = self.http.entry(*id).or_insert_with(|| RouteStats {
                route: theirs.route.clone(),
                labels: theirs.labels.clone(),
                ..RouteStats::default()
            });
            for &(m, s, r, n) in &theirs.counts {
                match mine
                    .counts
                    .iter_mut()
                    .find(|(m2, s2, r2, _)| *m2 == m && *s2 == s && *r2 == r)
                {
                    Some((.., k)) => *k += n,
                    None => mine.counts.push((m, s, r, n)),
                }
            }
            mine.duration.merge(&theirs.duration);
        }
        self.latency.merge(latency);
        self.open_connections += open_connections;
        self.accepted_connections += accepted_connections;
        for &(p, t, n) in downstream {
            match self
                .downstream
                .iter_mut()
                .find(|(p2, t2, _)| *p2 == p && *t2 == t)
            {
                Some((.., k)) => *k += n,
                None => self.downstream.push((p, t, n)),
            }
        }
        self.tls_handshake.merge(tls_handshake);
        for (a, b) in self.upstream_connect.iter_mut().zip(upstream_connect) {
            a.merge(b);
        }
        for (a, b) in self.auth.iter_mut().zip(auth.iter()) {
            *a += b;
        }
        for (k, (labels, n)) in mcp {
            self.mcp.entry(*k).or_insert_with(|| (labels.clone(), 0)).1 += n;
        }
        for (k, (labels, h)) in mcp_latency {
            self.mcp_latency
                .entry(*k)
                .or_insert_with(|| (labels.clone(), Histogram::default()))
                .1
                .merge(h);
        }
        self.sessions += sessions;
        for (a, b) in self.peer.iter_mut().zip(peer.iter()) {
            *a += b;
        }
        self.cache.add(*cache);
        if self.export.is_none() {
            self.export = export.clone();
        }
    }
}
