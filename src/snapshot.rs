//! The validated runtime model: an immutable [`Snapshot`] of the whole configuration that workers
//! read on every request.
//!
//! Owns: the types the data plane uses (binds, listeners, compiled route tables, per-route policies
//! with their responses pre-rendered as bytes). Built only by `config::lower`; never mutated after.
//! Not here: serde, YAML, validation (that is `config`), or any I/O.

use crate::net::client::tls::UpstreamTls;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::policy::{AuthPolicy, Source, WellKnown};
use crate::http::response::Prebuilt;
use crate::net::addr::HostTarget;
use crate::policy::cors::Cors;
use crate::policy::headers::HeaderModifier;
use crate::policy::rewrite::PathRewrite;
use crate::routing::RouteTable;

/// Everything a worker needs to serve traffic. Shared across workers behind an `Arc`; each worker
/// keeps its own `Rc` handle so the request path never touches a shared reference count.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one on every successful (re)load.
    pub generation: u64,
    pub settings: Settings,
    pub binds: Vec<Bind>,
    /// Key sets and discovery documents the control plane keeps fresh for this config.
    pub sources: Vec<Source>,
    /// The certificate and key files of HTTPS listeners: a change to one reloads the config.
    pub cert_files: Vec<std::path::PathBuf>,
    /// Things that load but probably do not do what the author meant (logged at load).
    pub warnings: Vec<String>,
    /// The config as loaded (environment variables expanded), as pretty JSON with secrets
    /// redacted: the admin endpoint's `/config_dump`.
    pub dump: Arc<str>,
}

/// Process-wide settings from the top-level `config` block. Read at start-up; on reload only the
/// timeouts and limits are taken over (addresses and worker count need a restart).
#[derive(Debug, Clone)]
pub struct Settings {
    pub worker_threads: Option<WorkerThreads>,
    pub stats_addr: SocketAddr,
    pub readiness_addr: SocketAddr,
    /// The admin endpoints (`config.adminAddr`, default agentgateway's `localhost:15000`).
    pub admin_addr: SocketAddr,
    /// `config.adminAddr` was set: a taken port is an error (the default's is a warning).
    pub admin_explicit: bool,
    /// Grace period for in-flight requests after SIGTERM/SIGINT (`connectionTerminationDeadline`).
    pub termination_deadline: Duration,
    pub limits: Limits,
    pub upstream: UpstreamSettings,
    pub log: LogSettings,
    /// Idle MCP sessions end after this long (`config.mcp.sessionTtl`).
    pub mcp_session_ttl: Duration,
    /// Several replicas sharing MCP sessions (`PORTCULLIS_PEER_ADDR` and the peer key).
    pub peering: Option<Arc<crate::cluster::Peering>>,
    /// Caps on what MCP clients can make the proxy hold (`config.mcp.max*`).
    pub mcp_limits: McpLimits,
    /// How metrics are labelled and which families are left out.
    pub metrics: Arc<crate::metrics::MetricsExport>,
    /// `config.tracing`: where spans go and how requests are sampled.
    pub tracing: Option<Arc<crate::otel::TraceSettings>>,
}

/// Caps on MCP sessions and processes; see `config.mcp` in README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpLimits {
    pub sessions_per_subject: usize,
    pub sessions_per_worker: usize,
    pub stdio_processes: usize,
    /// Bytes of MCP request bodies one worker holds at once while reading and relaying them.
    pub buffered_bytes: u64,
}

impl Default for McpLimits {
    fn default() -> Self {
        McpLimits {
            sessions_per_subject: 64,
            sessions_per_worker: 1000,
            stdio_processes: 256,
            // Four messages of the largest size (16 MiB) per worker.
            buffered_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerThreads {
    Count(usize),
    /// Percentage of the CPUs available to the process, at least one worker.
    Percent(u32),
}

/// Limits and timeouts applied to every downstream connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted; larger → 413.
    pub max_body: u64,
    /// A request head must arrive completely within this time (slowloris guard) → 408.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// TLS handshakes that take longer are dropped.
    pub tls_handshake_timeout: Duration,
    /// A request body must arrive at this average rate (bytes/s) once the head timeout has
    /// passed since its first byte was due, or it gets 408 (0: no minimum).
    pub body_min_rate: u64,
}

impl Limits {
    /// The pace a request body must keep: within the header timeout, then at `body_min_rate`,
    /// each read within the idle timeout.
    pub fn body_pace(&self) -> crate::net::io::BodyPace {
        crate::net::io::BodyPace::new(self.header_timeout, self.body_min_rate, self.idle_timeout)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream address per worker.
    pub pool_max_idle: usize,
    /// `config.dns.lookupFamily`: which addresses of a host name are tried, in which order.
    pub lookup_family: crate::net::dns::LookupFamily,
    /// How often host names are looked up again (`PORTCULLIS_DNS_REFRESH`, default 30 s).
    pub dns_refresh: Duration,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub json: bool,
    pub filter: Option<String>,
}

impl Settings {
    /// The port of this replica's peer listener, when it has peers.
    pub(crate) fn peer_port(&self) -> Option<u16> {
        self.peering.as_ref().map(|p| p.addr.port())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            worker_threads: None,
            stats_addr: SocketAddr::from(([0, 0, 0, 0], 15020)),
            readiness_addr: SocketAddr::from(([0, 0, 0, 0], 15021)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 15000)),
            admin_explicit: false,
            termination_deadline: Duration::from_secs(5),
            limits: Limits {
                // MCP messages may be up to 16 MiB (`config.listener.maxBufferSize` overrides).
                max_body: 16 * 1024 * 1024,
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(600),
                tls_handshake_timeout: Duration::from_secs(15),
                body_min_rate: 1024,
            },
            upstream: UpstreamSettings {
                connect_timeout: Duration::from_secs(10),
                pool_idle_timeout: Duration::from_secs(90),
                pool_max_idle: 64,
                lookup_family: crate::net::dns::LookupFamily::Auto,
                dns_refresh: Duration::from_secs(30),
            },
            log: LogSettings {
                json: false,
                filter: None,
            },
            mcp_session_ttl: Duration::from_secs(30 * 60),
            peering: None,
            mcp_limits: McpLimits::default(),
            metrics: Arc::new(crate::metrics::MetricsExport {
                gateway: "/".into(),
                removed: Vec::new(),
            }),
            tracing: None,
        }
    }
}

/// One port, with the listeners that share it.
#[derive(Debug)]
pub struct Bind {
    pub port: u16,
    /// Set when the listeners on this port speak HTTPS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub listeners: Vec<Listener>,
}

impl Bind {
    /// The listener that serves `host` (port already stripped): the most specific hostname wins,
    /// a listener without hostname serves everything else.
    pub fn listener_for(&self, host: &str) -> Option<&Listener> {
        if self.listeners.len() == 1 {
            return self.listeners.first();
        }
        let mut best: Option<(&Listener, usize)> = None;
        for l in &self.listeners {
            let score = match &l.hostname {
                None => 1,
                Some(h) if crate::routing::hostname_matches(h, host) => {
                    if h.starts_with("*.") {
                        2 + h.len()
                    } else {
                        usize::MAX
                    }
                }
                Some(_) => continue,
            };
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((l, score));
            }
        }
        best.map(|(l, _)| l)
    }
}

#[derive(Debug)]
pub struct Listener {
    pub name: String,
    pub hostname: Option<String>,
    pub https: bool,
    pub routes: RouteTable<Route>,
    /// Discovery endpoints served for the protected routes of this listener, by exact path.
    pub well_known: Vec<(String, WellKnown)>,
}

/// A compiled route: what to do with a request once it matched.
#[derive(Debug)]
pub struct Route {
    /// `name` as configured, or agentgateway's default `route<idx>`; used in metrics and logs.
    pub name: Arc<str>,
    /// Its metric labels, rendered once.
    pub labels: crate::metrics::RouteLabels,
    pub policies: Policies,
    pub backend: Backend,
}

/// Per-route policies, in the order they are applied.
#[derive(Debug, Default)]
pub struct Policies {
    pub cors: Option<Cors>,
    /// `mcpAuthentication` or `jwtAuth`: checked after CORS preflights, before anything else.
    pub auth: Option<Arc<AuthPolicy>>,
    pub redirect: Option<Redirect>,
    pub direct: Option<Prebuilt>,
    pub request_headers: Option<HeaderModifier>,
    pub response_headers: Option<HeaderModifier>,
    pub rewrite: Option<Rewrite>,
    pub timeouts: Timeouts,
    /// Keep the client's `Authorization` header when forwarding (`backendAuth: {passthrough: {}}`).
    pub auth_passthrough: bool,
    /// `localRateLimit`: checked after CORS preflights, before authentication (a flood is
    /// refused without paying for token checks).
    pub rate_limits: Vec<crate::policy::rate_limit::RateLimit>,
    /// `backendTLS`: TLS to the route's `host` backends (and its MCP targets).
    pub backend_tls: Option<Arc<UpstreamTls>>,
    /// `authorization` rule sets (the route's, its backend's): each must allow the request,
    /// after authentication; 403 otherwise.
    pub authorization: Vec<Arc<crate::policy::authz::RuleSet>>,
}

#[derive(Debug, Default)]
pub struct Rewrite {
    pub path: Option<PathRewrite>,
    pub authority: Option<AuthorityRewrite>,
}

#[derive(Debug, Clone)]
pub enum AuthorityRewrite {
    /// Replace the whole `Host` with this value.
    Full(String),
    /// Keep the port, replace the host.
    Host(String),
    /// Keep the host, replace the port.
    Port(u16),
}

#[derive(Debug)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub authority: Option<AuthorityRewrite>,
    pub path: Option<PathRewrite>,
    pub status: u16,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// Whole request: from the end of the request head to the upstream response head.
    pub request: Option<Duration>,
    /// Upstream only: from sending the request to the upstream response head.
    pub backend: Option<Duration>,
}

#[derive(Debug)]
pub enum Backend {
    /// No backend: only policies that answer locally (direct response, redirect) make sense.
    None,
    Hosts(Vec<HostTarget>),
    /// An `mcp` backend: MCP streamable HTTP relayed to stdio, streamable-HTTP or SSE servers.
    Mcp(Arc<McpRoute>),
}

/// An `mcp` backend, compiled.
#[derive(Debug)]
pub struct McpRoute {
    /// The route name, for logs.
    pub name: Arc<str>,
    /// agentgateway's route labels (`bind` … `route_rule`) for MCP request series.
    pub metric_scope: Arc<str>,
    /// Which route of the config this is (from its place and name, the same across reloads
    /// that keep it): a session answers only on the route that opened it.
    pub key: u64,
    pub targets: Vec<McpTarget>,
    /// `statefulMode: stateful` (default): sessions with `Mcp-Session-Id`.
    pub stateful: bool,
    /// Tool and prompt names are `<target>_<name>` (`prefixMode: always`, or several targets).
    pub prefix: bool,
    /// 2026-07-28 clients are served through 2025 sessions Portcullis holds when the targets do
    /// not speak the revision (`modernCompat`, default true; `relay::compat`).
    pub compat: bool,
    /// Idle sessions end after this long (`config.mcp.sessionTtl`, default 30 min).
    pub session_ttl: Duration,
    /// How long one JSON-RPC call may wait for its answer (the route's `timeout`, else
    /// [`DEFAULT_MCP_CALL_TIMEOUT`]); then the client gets an error and the server a
    /// `notifications/cancelled`.
    pub call_timeout: Duration,
    /// Origins allowed besides the request's own host (from the route's CORS `allowOrigins`).
    pub allowed_origins: Vec<String>,
    /// Keep the client's `Authorization` for HTTP targets (`backendAuth: passthrough`).
    pub passthrough_auth: bool,
    /// `mcpAuthorization` (route and backend rules composed): which tools, prompts and
    /// resources a caller sees and uses.
    pub authorization: Option<Arc<crate::policy::authz::RuleSet>>,
    /// Connect timeout and keep-alive pool bounds for HTTP and SSE targets (`config.backend`).
    pub upstream: UpstreamSettings,
}

/// The bound on one MCP call when the route sets no `timeout`: long enough for slow tools,
/// short enough that a server that never answers cannot hold a client (and its connection)
/// forever.
pub(crate) const DEFAULT_MCP_CALL_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct McpTarget {
    pub name: String,
    pub kind: McpTargetKind,
}

#[derive(Debug, Clone)]
pub enum McpTargetKind {
    /// One child process per session.
    Stdio {
        cmd: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        /// Start from an empty environment (`clear_env: true`): the child inherits none of
        /// Portcullis's variables, only `env`.
        clear_env: bool,
    },
    /// A streamable-HTTP MCP server.
    Http {
        target: HostTarget,
        path: String,
        https: bool,
        /// The route's `backendTLS` (TLS even to an `http:` URL).
        tls: Option<Arc<UpstreamTls>>,
    },
    /// A 2024-11-05 HTTP+SSE MCP server.
    Sse {
        target: HostTarget,
        path: String,
        https: bool,
        tls: Option<Arc<UpstreamTls>>,
    },
}
