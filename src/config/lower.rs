//! Lowering: the validated wire model becomes the runtime [`Snapshot`] workers serve from.
//!
//! Owns: defaults that need context (route names, addresses), compiling matchers and policies,
//! pre-rendering direct responses, resolving backend addresses, loading TLS material. Every
//! problem is collected with its path; nothing here runs on the request path.
//! Not here: YAML/serde (`model`), structural rules that need no runtime types (`validate`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::lower_auth::{self, AuthExtras};
use super::model;
use super::{parse_duration, parse_worker_threads, ConfigError, ConfigErrors, ThreadCount};
use crate::auth::policy::Source;
use crate::http::response::Prebuilt;
use crate::net::addr::{HostAddr, HostTarget};
use crate::policy::cors::{Cors, CorsSpec};
use crate::policy::headers::HeaderModifier;
use crate::policy::rewrite::PathRewrite;
use crate::routing::{
    self, HeaderMatch, QueryMatch, RouteMatch, RouteSpec, RouteTable, ValueMatch,
};
use crate::snapshot::{
    AuthorityRewrite, Backend, Bind, Listener, LogSettings, McpRoute, McpTarget, McpTargetKind,
    Policies, Redirect, Rewrite, Route, Settings, Snapshot, Timeouts, WorkerThreads,
};

/// Lowers a validated config. `base_dir` resolves relative file paths (TLS certificates).
pub(crate) fn lower(
    cfg: &model::LocalConfig,
    base_dir: Option<&Path>,
) -> Result<Snapshot, ConfigErrors> {
    let mut errs = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut cert_files = Vec::new();
    let mut warnings = Vec::new();
    let settings = lower_settings(cfg.config.as_ref(), &mut errs);
    let mut binds = Vec::with_capacity(cfg.binds.len());
    for (bi, b) in cfg.binds.iter().enumerate() {
        let path = format!("binds[{bi}]");
        let mut listeners = Vec::with_capacity(b.listeners.len());
        let mut certs = Vec::new();
        for (li, l) in b.listeners.iter().enumerate() {
            let lpath = format!("{path}.listeners[{li}]");
            let https = matches!(l.protocol, model::Protocol::Https);
            if https {
                match l.tls.as_ref() {
                    Some(t) => {
                        cert_files.extend(super::tls::files(t, base_dir));
                        match super::tls::load_certified_key(t, base_dir) {
                            Ok(k) => certs.push((l.hostname.clone(), k)),
                            Err(e) => errs.push(ConfigError::new(format!("{lpath}.tls"), e)),
                        }
                    }
                    None => errs.push(ConfigError::new(
                        format!("{lpath}.tls"),
                        "HTTPS listeners need tls {cert, key}",
                    )),
                }
            }
            let mut specs = Vec::new();
            let mut extras = AuthExtras::default();
            for (ri, r) in l.routes.iter().flatten().enumerate() {
                let rpath = format!("{lpath}.routes[{ri}]");
                if let Some(spec) = lower_route(
                    r,
                    ri,
                    &rpath,
                    base_dir,
                    settings.mcp_session_ttl,
                    &mut errs,
                    &mut extras,
                ) {
                    specs.push(spec);
                }
            }
            let mut well_known = lower_auth::root_well_known(&extras.well_known);
            well_known.extend(extras.well_known);
            for s in extras.sources {
                if !sources.iter().any(|x| x.id == s.id) {
                    sources.push(s);
                }
            }
            warnings.extend(extras.warnings);
            listeners.push(Listener {
                name: l.name.clone().unwrap_or_else(|| format!("listener{li}")),
                hostname: l.hostname.clone().filter(|h| !h.is_empty()),
                https,
                routes: RouteTable::new(specs),
                well_known,
            });
        }
        let tls = if certs.is_empty() {
            None
        } else if certs.len() != listeners.iter().filter(|l| l.https).count()
            || certs.len() != listeners.len()
        {
            errs.push(ConfigError::new(
                format!("{path}.listeners"),
                "HTTP and HTTPS listeners cannot share one port",
            ));
            None
        } else {
            Some(super::tls::server_config(certs))
        };
        binds.push(Bind {
            port: b.port,
            tls,
            listeners,
        });
    }
    if errs.is_empty() {
        cert_files.sort();
        cert_files.dedup();
        Ok(Snapshot {
            generation: 1,
            settings,
            binds,
            sources,
            cert_files,
            warnings,
        })
    } else {
        Err(ConfigErrors(errs))
    }
}

fn dur(v: &Option<String>, path: &str, errs: &mut Vec<ConfigError>) -> Option<Duration> {
    let s = v.as_deref()?;
    match parse_duration(s) {
        Ok(d) => Some(d),
        Err(e) => {
            errs.push(ConfigError::new(path, e));
            None
        }
    }
}

#[allow(clippy::disallowed_methods)] // loading runs on the control thread, never a worker
fn addr(
    v: &Option<String>,
    path: &str,
    default: SocketAddr,
    errs: &mut Vec<ConfigError>,
) -> SocketAddr {
    let Some(s) = v.as_deref() else {
        return default;
    };
    match s.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => {
            errs.push(ConfigError::new(
                path,
                format!("invalid address {s:?} (expected host:port)"),
            ));
            default
        }
    }
}

fn lower_settings(cfg: Option<&model::Config>, errs: &mut Vec<ConfigError>) -> Settings {
    let mut s = Settings::default();
    if let Some(c) = cfg {
        s.stats_addr = addr(&c.stats_addr, "config.statsAddr", s.stats_addr, errs);
        s.readiness_addr = addr(
            &c.readiness_addr,
            "config.readinessAddr",
            s.readiness_addr,
            errs,
        );
        if let Some(d) = dur(
            &c.connection_termination_deadline,
            "config.connectionTerminationDeadline",
            errs,
        ) {
            s.termination_deadline = d;
        }
        if let Some(w) = &c.worker_threads {
            match parse_worker_threads(w) {
                Ok(ThreadCount::Fixed(n)) => s.worker_threads = Some(WorkerThreads::Count(n)),
                Ok(ThreadCount::PercentOfCores(p)) => {
                    s.worker_threads = Some(WorkerThreads::Percent(u32::from(p)))
                }
                Err(e) => errs.push(ConfigError::new("config.workerThreads", e)),
            }
        }
        if let Some(l) = &c.listener {
            if let Some(m) = l.max_buffer_size {
                s.limits.max_body = m;
            }
            if let Some(d) = dur(
                &l.http1_idle_timeout,
                "config.listener.http1IdleTimeout",
                errs,
            ) {
                s.limits.idle_timeout = d;
            }
            if let Some(d) = dur(
                &l.tls_handshake_timeout,
                "config.listener.tlsHandshakeTimeout",
                errs,
            ) {
                s.limits.tls_handshake_timeout = d;
            }
        }
        if let Some(b) = &c.backend {
            if let Some(d) = dur(&b.connect_timeout, "config.backend.connectTimeout", errs) {
                s.upstream.connect_timeout = d;
            }
            if let Some(d) = dur(&b.pool_idle_timeout, "config.backend.poolIdleTimeout", errs) {
                s.upstream.pool_idle_timeout = d;
            }
            if let Some(n) = b.pool_max_size {
                s.upstream.pool_max_idle = n as usize;
            }
        }
        if let Some(m) = &c.mcp {
            if let Some(d) = dur(&m.session_ttl, "config.mcp.sessionTtl", errs) {
                s.mcp_session_ttl = d;
            }
            for (v, field, path) in [
                (
                    m.max_sessions_per_subject,
                    &mut s.mcp_limits.sessions_per_subject,
                    "config.mcp.maxSessionsPerSubject",
                ),
                (
                    m.max_sessions_per_worker,
                    &mut s.mcp_limits.sessions_per_worker,
                    "config.mcp.maxSessionsPerWorker",
                ),
                (
                    m.max_stdio_processes,
                    &mut s.mcp_limits.stdio_processes,
                    "config.mcp.maxStdioProcesses",
                ),
            ] {
                match v {
                    Some(0) => errs.push(ConfigError::new(path, "must be at least 1")),
                    Some(n) => *field = n as usize,
                    None => {}
                }
            }
            match m.max_buffered_bytes {
                Some(n) if n < 65536 => errs.push(ConfigError::new(
                    "config.mcp.maxBufferedBytes",
                    "must be at least 65536 (64 KiB)",
                )),
                Some(n) => s.mcp_limits.buffered_bytes = n,
                None => {}
            }
        }
        if let Some(l) = &c.logging {
            let level = match &l.level {
                Some(model::StringOrList::One(v)) => Some(v.clone()),
                Some(model::StringOrList::Many(v)) => Some(v.join(",")),
                None => None,
            };
            s.log = LogSettings {
                json: matches!(l.format, Some(model::LogFormat::Json)),
                filter: level.or_else(|| l.filter.clone()),
            };
        }
    }
    // Not an agentgateway key: the slowloris guard, overridable for tests and tight deployments.
    if let Ok(v) = std::env::var("PORTCULLIS_HEADER_TIMEOUT") {
        match parse_duration(&v) {
            Ok(d) if !d.is_zero() => s.limits.header_timeout = d,
            _ => errs.push(ConfigError::new(
                "env PORTCULLIS_HEADER_TIMEOUT",
                format!("invalid duration {v:?}"),
            )),
        }
    }
    // Not an agentgateway key either: the slow-body guard (bytes/s, 0 = off).
    if let Ok(v) = std::env::var("PORTCULLIS_BODY_MIN_RATE") {
        match v.trim().parse::<u64>() {
            Ok(n) => s.limits.body_min_rate = n,
            Err(_) => errs.push(ConfigError::new(
                "env PORTCULLIS_BODY_MIN_RATE",
                format!("{v:?} is not a number of bytes per second"),
            )),
        }
    }
    s
}

fn lower_route(
    r: &model::Route,
    idx: usize,
    path: &str,
    base_dir: Option<&Path>,
    mcp_ttl: Duration,
    errs: &mut Vec<ConfigError>,
    extras: &mut AuthExtras,
) -> Option<RouteSpec<Route>> {
    let before = errs.len();
    let name: Arc<str> = Arc::from(r.name.clone().unwrap_or_else(|| format!("route{idx}")));
    let mut matches = Vec::with_capacity(r.matches.len());
    for (mi, m) in r.matches.iter().enumerate() {
        let mpath = format!("{path}.matches[{mi}]");
        if let Some(rm) = lower_match(m, &mpath, errs) {
            matches.push(rm);
        }
    }
    // The paths this route is reached at (exact and prefix matches), for discovery documents.
    let route_paths: Vec<String> = r
        .matches
        .iter()
        .filter_map(|m| match &m.path {
            model::PathMatch::Exact(p) | model::PathMatch::PathPrefix(p) => Some(p.clone()),
            model::PathMatch::Regex(_) => None,
        })
        .collect();
    let policies = match &r.policies {
        Some(p) => lower_policies(
            p,
            &format!("{path}.policies"),
            &route_paths,
            base_dir,
            errs,
            extras,
        ),
        None => Policies::default(),
    };
    let mcp_ctx = McpCtx {
        route: name.clone(),
        allowed_origins: r
            .policies
            .as_ref()
            .and_then(|p| p.cors.as_ref())
            .map(|c| c.allow_origins.clone())
            .unwrap_or_default(),
        passthrough: policies.auth_passthrough,
        session_ttl: mcp_ttl,
        // On an MCP route, `timeout` bounds each JSON-RPC call (the shorter of the two).
        call_timeout: [policies.timeouts.request, policies.timeouts.backend]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(crate::snapshot::DEFAULT_MCP_CALL_TIMEOUT),
    };
    let backend = lower_backends(&r.backends, &format!("{path}.backends"), &mcp_ctx, errs);
    if errs.len() > before {
        return None;
    }
    Some(RouteSpec {
        hostnames: r.hostnames.clone(),
        matches,
        key: name.to_string(),
        value: Route {
            name,
            policies,
            backend,
        },
    })
}

fn value_match(
    v: &model::ValueMatch,
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<ValueMatch> {
    match v {
        model::ValueMatch::Exact(s) => Some(ValueMatch::Exact(s.clone())),
        model::ValueMatch::Regex(re) => match ValueMatch::regex(re) {
            Ok(m) => Some(m),
            Err(e) => {
                errs.push(ConfigError::new(
                    format!("{path}.regex"),
                    format!("invalid regex: {e}"),
                ));
                None
            }
        },
    }
}

fn lower_match(m: &model::Match, path: &str, errs: &mut Vec<ConfigError>) -> Option<RouteMatch> {
    let p = match &m.path {
        model::PathMatch::Exact(s) => routing::PathMatch::Exact(s.clone()),
        model::PathMatch::PathPrefix(s) => routing::PathMatch::Prefix(s.clone()),
        model::PathMatch::Regex(re) => match routing::PathMatch::regex(&re.pattern) {
            Ok(p) => p,
            Err(e) => {
                errs.push(ConfigError::new(
                    format!("{path}.path.regex"),
                    format!("invalid regex: {e}"),
                ));
                return None;
            }
        },
    };
    let mut headers = Vec::new();
    for (i, h) in m.headers.iter().enumerate() {
        let v = value_match(&h.value, &format!("{path}.headers[{i}].value"), errs)?;
        headers.push(HeaderMatch::new(&h.name, v));
    }
    let mut query = Vec::new();
    for (i, q) in m.query.iter().enumerate() {
        let v = value_match(&q.value, &format!("{path}.query[{i}].value"), errs)?;
        query.push(QueryMatch {
            name: q.name.clone(),
            value: v,
        });
    }
    Some(RouteMatch {
        path: p,
        method: m.method.clone(),
        headers,
        query,
    })
}

fn pairs(m: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn modifier(
    m: &model::HeaderModifier,
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<HeaderModifier> {
    match HeaderModifier::compile(&pairs(&m.add), &pairs(&m.set), &m.remove) {
        Ok(h) => Some(h),
        Err(e) => {
            errs.push(ConfigError::new(path, e));
            None
        }
    }
}

fn authority(a: &Option<model::HostRedirect>) -> Option<AuthorityRewrite> {
    match a.as_ref()? {
        model::HostRedirect::Full(f) => Some(AuthorityRewrite::Full(f.clone())),
        model::HostRedirect::Host(h) => Some(AuthorityRewrite::Host(h.clone())),
        model::HostRedirect::Port(p) => Some(AuthorityRewrite::Port(*p)),
        model::HostRedirect::Auto | model::HostRedirect::Unchanged => None,
    }
}

fn path_rewrite(p: &Option<model::PathRedirect>) -> Option<PathRewrite> {
    match p.as_ref()? {
        model::PathRedirect::Full(f) => Some(PathRewrite::Full(f.clone())),
        model::PathRedirect::Prefix(f) => Some(PathRewrite::Prefix(f.clone())),
    }
}

fn lower_policies(
    p: &model::Policies,
    path: &str,
    route_paths: &[String],
    base_dir: Option<&Path>,
    errs: &mut Vec<ConfigError>,
    extras: &mut AuthExtras,
) -> Policies {
    let mut out = Policies::default();
    let passthrough = p
        .backend_auth
        .as_ref()
        .is_some_and(|b| b.passthrough.is_some());
    if let Some(a) = &p.mcp_authentication {
        let apath = format!("{path}.mcpAuthentication");
        out.auth =
            lower_auth::lower_mcp_auth(a, route_paths, passthrough, base_dir, &apath, errs, extras);
    } else if let Some(j) = &p.jwt_auth {
        let jpath = format!("{path}.jwtAuth");
        out.auth = lower_auth::lower_jwt_auth(j, passthrough, base_dir, &jpath, errs, extras);
    }
    if let Some(c) = &p.cors {
        let max_age = dur(&c.max_age, &format!("{path}.cors.maxAge"), errs);
        let mut expose_headers = c.expose_headers.clone();
        // Browser MCP clients must be able to read the challenge of a protected route.
        if out.auth.is_some()
            && !expose_headers
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case("www-authenticate"))
        {
            expose_headers.push("www-authenticate".to_owned());
        }
        let spec = CorsSpec {
            allow_credentials: c.allow_credentials,
            allow_headers: c.allow_headers.clone(),
            allow_methods: c.allow_methods.clone(),
            allow_origins: c.allow_origins.clone(),
            expose_headers,
            max_age,
        };
        match Cors::compile(&spec) {
            Ok(c) => out.cors = Some(c),
            Err(e) => errs.push(ConfigError::new(format!("{path}.cors"), e)),
        }
    }
    if let Some(r) = &p.request_redirect {
        out.redirect = Some(Redirect {
            scheme: r.scheme.clone(),
            authority: authority(&r.authority),
            path: path_rewrite(&r.path),
            status: r.status.unwrap_or(302),
        });
    }
    if let Some(d) = &p.direct_response {
        out.direct = Some(Prebuilt::new(
            d.status.unwrap_or(200),
            None,
            &[],
            d.body.0.clone(),
        ));
    }
    if let Some(m) = &p.request_header_modifier {
        out.request_headers = modifier(m, &format!("{path}.requestHeaderModifier"), errs);
    }
    if let Some(m) = &p.response_header_modifier {
        out.response_headers = modifier(m, &format!("{path}.responseHeaderModifier"), errs);
    }
    if let Some(u) = &p.url_rewrite {
        out.rewrite = Some(Rewrite {
            path: path_rewrite(&u.path),
            authority: authority(&u.authority),
        });
    }
    if let Some(t) = &p.timeout {
        out.timeouts = Timeouts {
            request: dur(
                &t.request_timeout,
                &format!("{path}.timeout.requestTimeout"),
                errs,
            ),
            backend: dur(
                &t.backend_request_timeout,
                &format!("{path}.timeout.backendRequestTimeout"),
                errs,
            ),
        };
    }
    out.auth_passthrough = passthrough;
    if let Some(v) = &p.local_rate_limit {
        out.rate_limits = rate_limits(v, &format!("{path}.localRateLimit"), errs);
    }
    out
}

/// agentgateway's `localRateLimit` as a list of buckets: `maxTokens`, `tokensPerFill`,
/// `fillInterval` (required), `type: requests` (`tokens` counts LLM tokens: refused).
fn rate_limits(
    v: &serde_json::Value,
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> Vec<crate::policy::rate_limit::RateLimit> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Spec {
        #[serde(default)]
        max_tokens: u64,
        #[serde(default)]
        tokens_per_fill: u64,
        fill_interval: String,
        #[serde(rename = "type", default)]
        kind: Option<String>,
    }
    let items = match v {
        serde_json::Value::Null => return Vec::new(),
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) if o.contains_key("conditional") => {
            errs.push(ConfigError::new(
                format!("{path}.conditional"),
                crate::config::validate::unsupported_msg(
                    "conditional localRateLimit (CEL conditions)",
                ),
            ));
            return Vec::new();
        }
        _ => {
            errs.push(ConfigError::new(
                path,
                "expected a list of rate limits ({maxTokens, tokensPerFill, fillInterval})",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let spec: Spec = match serde_json::from_value(item.clone()) {
            Ok(s) => s,
            Err(e) => {
                errs.push(ConfigError::new(ip, e.to_string()));
                continue;
            }
        };
        match spec.kind.as_deref() {
            None | Some("requests") => {}
            Some("tokens") => {
                errs.push(ConfigError::new(
                    format!("{ip}.type"),
                    crate::config::validate::unsupported_msg(
                        "localRateLimit type tokens (LLM tokens)",
                    ),
                ));
                continue;
            }
            Some(other) => {
                errs.push(ConfigError::new(
                    format!("{ip}.type"),
                    format!("unknown type {other:?} (expected \"requests\")"),
                ));
                continue;
            }
        }
        let Some(interval) = dur(
            &Some(spec.fill_interval),
            &format!("{ip}.fillInterval"),
            errs,
        ) else {
            continue;
        };
        let mut bad =
            |field: &str, msg: &str| errs.push(ConfigError::new(format!("{ip}.{field}"), msg));
        if interval.is_zero() {
            bad("fillInterval", "must be longer than 0");
            continue;
        }
        if spec.max_tokens == 0 {
            bad(
                "maxTokens",
                "must be at least 1 (a bucket of 0 refuses every request)",
            );
            continue;
        }
        if spec.tokens_per_fill == 0 {
            bad(
                "tokensPerFill",
                "must be at least 1 (the bucket would never fill again)",
            );
            continue;
        }
        if spec.max_tokens < spec.tokens_per_fill {
            bad("maxTokens", "cannot be less than tokensPerFill");
            continue;
        }
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&ip, spec.max_tokens, spec.tokens_per_fill, interval).hash(&mut h);
            h.finish()
        };
        out.push(crate::policy::rate_limit::RateLimit {
            max_tokens: spec.max_tokens,
            tokens_per_fill: spec.tokens_per_fill,
            fill_interval: interval,
            key,
        });
    }
    out
}

/// What an `mcp` backend takes from its route and the process settings.
struct McpCtx {
    route: Arc<str>,
    allowed_origins: Vec<String>,
    passthrough: bool,
    session_ttl: Duration,
    call_timeout: Duration,
}

fn lower_backends(
    backends: &[model::Backend],
    path: &str,
    mcp_ctx: &McpCtx,
    errs: &mut Vec<ConfigError>,
) -> Backend {
    let mut hosts = Vec::new();
    let mut mcp = None;
    for (i, b) in backends.iter().enumerate() {
        match b.kind() {
            Some(model::BackendKind::Host(h)) => match parse_host(h) {
                Ok(addr) => hosts.push(HostTarget {
                    authority: h.to_owned(),
                    addr,
                    weight: b.weight,
                }),
                Err(e) => errs.push(ConfigError::new(format!("{path}[{i}].host"), e)),
            },
            Some(model::BackendKind::Mcp(m)) => {
                mcp = lower_mcp(m, &format!("{path}[{i}].mcp"), mcp_ctx, errs)
            }
            None => errs.push(ConfigError::new(
                format!("{path}[{i}]"),
                "a backend needs exactly one kind (host or mcp)",
            )),
        }
    }
    match (hosts.is_empty(), mcp) {
        (true, None) => Backend::None,
        (false, None) => Backend::Hosts(hosts),
        (true, Some(route)) => Backend::Mcp(route),
        (false, Some(_)) => {
            errs.push(ConfigError::new(
                path,
                "a route cannot mix host and mcp backends",
            ));
            Backend::None
        }
    }
}

fn lower_mcp(
    m: &model::McpBackend,
    path: &str,
    c: &McpCtx,
    errs: &mut Vec<ConfigError>,
) -> Option<Arc<McpRoute>> {
    let mut targets = Vec::with_capacity(m.targets.len());
    for (i, t) in m.targets.iter().enumerate() {
        let tpath = format!("{path}.targets[{i}]");
        let kind = match t.kind() {
            Some(model::McpTargetKind::Stdio(s)) => McpTargetKind::Stdio {
                cmd: s.cmd.clone(),
                args: s.args.clone(),
                env: s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
            Some(model::McpTargetKind::StreamableHttp(h)) => {
                let (target, path, https) = mcp_http_target(h, "/mcp", &tpath, errs)?;
                McpTargetKind::Http {
                    target,
                    path,
                    https,
                }
            }
            Some(model::McpTargetKind::Sse(h)) => {
                let (target, path, https) = mcp_http_target(h, "/sse", &tpath, errs)?;
                McpTargetKind::Sse {
                    target,
                    path,
                    https,
                }
            }
            None => {
                errs.push(ConfigError::new(
                    tpath,
                    "a target needs exactly one of stdio, mcp, sse",
                ));
                return None;
            }
        };
        if m.targets.len() > 1 && t.name.contains('_') {
            errs.push(ConfigError::new(
                format!("{tpath}.name"),
                "with several targets, names cannot contain '_' (it separates target and tool names)",
            ));
        }
        targets.push(McpTarget {
            name: t.name.clone(),
            kind,
        });
    }
    if targets.is_empty() {
        errs.push(ConfigError::new(
            format!("{path}.targets"),
            "an mcp backend needs at least one target",
        ));
        return None;
    }
    let prefix = match m.prefix_mode {
        Some(model::PrefixMode::Always) => true,
        Some(model::PrefixMode::Never) => false,
        _ => targets.len() > 1,
    };
    if matches!(m.prefix_mode, Some(model::PrefixMode::Never)) && targets.len() > 1 {
        errs.push(ConfigError::new(
            format!("{path}.prefixMode"),
            "prefixMode never with several targets is not supported by Portcullis",
        ));
    }
    Some(Arc::new(McpRoute {
        name: c.route.clone(),
        targets,
        stateful: !matches!(m.stateful_mode, Some(model::StatefulMode::Stateless)),
        prefix,
        session_ttl: c.session_ttl,
        call_timeout: c.call_timeout,
        allowed_origins: c.allowed_origins.clone(),
        passthrough_auth: c.passthrough,
    }))
}

/// agentgateway's rule: `host` + `port` + `path`, or only `host` as a full URL.
fn mcp_http_target(
    h: &model::HttpTarget,
    default_path: &str,
    path: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<(HostTarget, String, bool)> {
    let host = h.host.as_deref().unwrap_or("");
    let (https, authority, upath) = match (h.port, &h.path) {
        (Some(port), p) => (
            false,
            format!("{host}:{port}"),
            p.clone().unwrap_or_else(|| default_path.to_owned()),
        ),
        (None, _) => match crate::net::url::parse_url(host) {
            Ok(u) => {
                let p = if u.path == "/" {
                    default_path.to_owned()
                } else {
                    u.path.clone()
                };
                (u.https, format!("{}:{}", u.host, u.port), p)
            }
            Err(e) => {
                errs.push(ConfigError::new(format!("{path}.host"), e));
                return None;
            }
        },
    };
    match parse_host(&authority) {
        Ok(addr) => Some((
            HostTarget {
                authority,
                addr,
                weight: 1,
            },
            upath,
            https,
        )),
        Err(e) => {
            errs.push(ConfigError::new(format!("{path}.host"), e));
            None
        }
    }
}

/// `host:port`, `[v6]:port` or `name:port`. Names are resolved now (off the workers); one that
/// does not resolve yet is kept by name and resolved when a connection is opened.
#[allow(clippy::disallowed_methods)] // loading runs on the control thread, never a worker
pub(super) fn parse_host(h: &str) -> Result<HostAddr, String> {
    if let Ok(a) = h.parse::<SocketAddr>() {
        return Ok(HostAddr::Resolved(a));
    }
    let (name, port) = h
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid host {h:?}: expected host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("invalid port in {h:?}"))?;
    if name.is_empty() {
        return Err(format!("invalid host {h:?}: empty host name"));
    }
    match (name, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => Ok(HostAddr::Resolved(a)),
        None => Ok(HostAddr::Name(name.to_owned(), port)),
    }
}
