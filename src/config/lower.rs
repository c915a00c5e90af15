//! Lowering: the validated wire model becomes the runtime [`Snapshot`] workers serve from.
//!
//! Owns: defaults that need context (route names, addresses), compiling matchers and policies,
//! pre-rendering direct responses, resolving backend addresses, loading TLS material. Every
//! problem is collected with its path; nothing here runs on the request path.
//! Not here: YAML/serde (`model`), structural rules that need no runtime types (`validate`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{parse_duration, ConfigError, ConfigErrors};
use crate::auth::lower::{self as lower_auth, AuthExtras};
use crate::auth::policy::Source;
use crate::metrics::RouteLabels;
use crate::routing::{
    self, HeaderMatch, QueryMatch, RouteMatch, RouteSpec, RouteTable, ValueMatch,
};
use crate::schema as model;
use crate::snapshot::{Backend, Bind, Listener, Policies, Route, Settings, Snapshot};

mod authz;
mod backends;
mod policies;
mod settings;

use backends::lower_backends;
use backends::McpCtx;
use policies::lower_policies;
use settings::lower_settings;

/// Lowers a validated config. `base_dir` resolves relative file paths (TLS certificates).
pub(crate) fn lower(
    cfg: &model::LocalConfig,
    base_dir: Option<&Path>,
) -> Result<Snapshot, ConfigErrors> {
    // The default upstream TLS configuration reads the system's store when asked to: here, on
    // the control thread, never on a worker's first HTTPS connection.
    let _ = crate::net::client::tls::UpstreamTls::default_roots();
    let mut errs = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut cert_files = Vec::new();
    let mut warnings = Vec::new();
    let settings = lower_settings(cfg.config.as_ref(), &mut errs, &mut warnings);
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
            let listener_name = l.name.clone().unwrap_or_else(|| format!("listener{li}"));
            let at = LabelAt {
                gateway: &settings.metrics.gateway,
                port: b.port,
                listener: &listener_name,
            };
            for (ri, r) in l.routes.iter().flatten().enumerate() {
                let rpath = format!("{lpath}.routes[{ri}]");
                if let Some(spec) = lower_route(
                    r,
                    ri,
                    &rpath,
                    &at,
                    base_dir,
                    &settings,
                    &mut errs,
                    &mut extras,
                    &mut cert_files,
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
                name: listener_name,
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
    if let Some(p) = &settings.peering {
        if binds.iter().any(|b| b.port == p.addr.port()) {
            errs.push(ConfigError::new(
                "env PORTCULLIS_PEER_ADDR",
                format!(
                    "port {} is also a bind's port: the peer listener needs a port of its own",
                    p.addr.port()
                ),
            ));
        }
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
            dump: Arc::from("{}"),
        })
    } else {
        Err(ConfigErrors(errs))
    }
}

/// Where a route is, for its metric labels.
struct LabelAt<'a> {
    gateway: &'a str,
    port: u16,
    listener: &'a str,
}

/// A route's metric labels. `backend` is agentgateway's backend name where Portcullis has one to
/// give: the `host` (several joined with `,`), or `mcp`.
fn route_labels(r: &model::Route, name: &Arc<str>, at: &LabelAt<'_>) -> RouteLabels {
    let hosts: Vec<&str> = r
        .backends
        .iter()
        .filter_map(|b| b.host.as_deref())
        .collect();
    let mcp = r.backends.iter().any(|b| b.mcp.is_some());
    let (backend, protocol) = match (mcp, hosts.is_empty()) {
        (true, _) => ("mcp".to_owned(), "mcp"),
        (false, false) => (hosts.join(","), "http"),
        (false, true) => ("unknown".to_owned(), "unknown"),
    };
    RouteLabels::new(
        at.gateway,
        at.port,
        at.listener,
        r.namespace.as_deref().unwrap_or("default"),
        name,
        r.rule_name.as_deref(),
        &backend,
        protocol,
    )
}

#[allow(clippy::too_many_arguments)]
fn lower_route(
    r: &model::Route,
    idx: usize,
    path: &str,
    at: &LabelAt<'_>,
    base_dir: Option<&Path>,
    settings: &Settings,
    errs: &mut Vec<ConfigError>,
    extras: &mut AuthExtras,
    tls_files: &mut Vec<std::path::PathBuf>,
) -> Option<RouteSpec<Route>> {
    let before = errs.len();
    let name: Arc<str> = Arc::from(r.name.clone().unwrap_or_else(|| format!("route{idx}")));
    let labels = route_labels(r, &name, at);
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
    let mut policies = match &r.policies {
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
    // Authorization rules: the route's and its backends' (agentgateway composes
    // `mcpAuthorization` into one set; each `authorization` set must pass on its own).
    let mut mcp_rules = Vec::new();
    let mut http_rules = Vec::new();
    if let Some(p) = &r.policies {
        let pp = format!("{path}.policies");
        if let Some(m) = &p.mcp_authorization {
            mcp_rules.push((m, format!("{pp}.mcpAuthorization")));
        }
        if let Some(a) = &p.authorization {
            http_rules.push((a, format!("{pp}.authorization")));
        }
    }
    for (bi, b) in r.backends.iter().enumerate() {
        let Some(p) = &b.policies else { continue };
        let pp = format!("{path}.backends[{bi}].policies");
        if let Some(m) = &p.mcp_authorization {
            mcp_rules.push((m, format!("{pp}.mcpAuthorization")));
        }
        if let Some(a) = &p.authorization {
            if r.backends.len() > 1 {
                errs.push(ConfigError::new(
                    format!("{pp}.authorization"),
                    "backend authorization is supported on routes with one backend (put it in the route's policies)",
                ));
            }
            http_rules.push((a, format!("{pp}.authorization")));
        }
    }
    for set in &http_rules {
        let compiled = authz::compile(
            std::slice::from_ref(set),
            crate::policy::authz::Policy::Http,
            errs,
            &mut extras.warnings,
        );
        policies.authorization.extend(compiled);
    }
    let mcp_authorization = if mcp_rules.is_empty() {
        None
    } else {
        authz::compile(
            &mcp_rules,
            crate::policy::authz::Policy::Mcp,
            errs,
            &mut extras.warnings,
        )
    };
    policies.backend_tls =
        lower_backend_tls(r, path, base_dir, errs, &mut extras.warnings, tls_files);
    let mcp_ctx = McpCtx {
        route: name.clone(),
        metric_scope: labels.scope.clone(),
        key: {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (path, &*name).hash(&mut h);
            h.finish()
        },
        allowed_origins: r
            .policies
            .as_ref()
            .and_then(|p| p.cors.as_ref())
            .map(|c| c.allow_origins.clone())
            .unwrap_or_default(),
        passthrough: policies.auth_passthrough,
        authorization: mcp_authorization,
        tls: policies.backend_tls.clone(),
        session_ttl: settings.mcp_session_ttl,
        upstream: settings.upstream,
        // On an MCP route, `timeout` bounds each JSON-RPC call (the shorter of the two).
        call_timeout: [policies.timeouts.request, policies.timeouts.backend]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(crate::snapshot::DEFAULT_MCP_CALL_TIMEOUT),
    };
    let mcp_rules_at = mcp_rules.first().map(|(_, p)| p.clone());
    let backend = lower_backends(&r.backends, &format!("{path}.backends"), &mcp_ctx, errs);
    if let (Some(at), false) = (mcp_rules_at, matches!(backend, Backend::Mcp(_))) {
        // Rules that could never apply are refused, not ignored.
        errs.push(ConfigError::new(
            at,
            "mcpAuthorization applies to routes whose backend is `mcp`",
        ));
    }
    if errs.len() > before {
        return None;
    }
    Some(RouteSpec {
        hostnames: r.hostnames.clone(),
        matches,
        key: name.to_string(),
        value: Route {
            name,
            labels,
            policies,
            backend,
        },
    })
}

/// The route's `backendTLS` (route policy, or its backend's policy in the current dialect),
/// its files read and added to the watched certificate files.
fn lower_backend_tls(
    r: &model::Route,
    path: &str,
    base_dir: Option<&Path>,
    errs: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
    tls_files: &mut Vec<std::path::PathBuf>,
) -> Option<Arc<crate::net::client::tls::UpstreamTls>> {
    let mut found = Vec::new();
    if let Some(t) = r.policies.as_ref().and_then(|p| p.backend_tls.as_ref()) {
        found.push((t, format!("{path}.policies.backendTLS")));
    }
    for (bi, b) in r.backends.iter().enumerate() {
        if let Some(t) = b.policies.as_ref().and_then(|p| p.backend_tls.as_ref()) {
            found.push((t, format!("{path}.backends[{bi}].policies.backendTLS")));
        }
    }
    if found.len() > 1 {
        errs.push(ConfigError::new(
            found[1].1.clone(),
            format!("backendTLS is already set at {}; set it once", found[0].1),
        ));
        return None;
    }
    let (t, at) = found.pop()?;
    if t.insecure {
        warnings.push(format!(
            "{at}.insecure: the backend's certificate is not verified (agentgateway `insecure`)"
        ));
    } else if t.insecure_host {
        warnings.push(format!(
            "{at}.insecureHost: the backend's certificate is not checked against its name"
        ));
    }
    match super::tls::backend_tls(t, base_dir) {
        Ok((tls, files)) => {
            tls_files.extend(files);
            Some(Arc::new(tls))
        }
        Err(e) => {
            errs.push(ConfigError::new(at, e));
            None
        }
    }
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
