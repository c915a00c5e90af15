//! Lowering of route `backends`: `host` targets (addresses resolved at load where they can
//! be) and `mcp` backends with their stdio, streamable-HTTP and SSE targets.

use std::sync::Arc;
use std::time::Duration;

use crate::config::ConfigError;
use crate::net::addr::{HostAddr, HostTarget};
use crate::schema as model;
use crate::snapshot::{Backend, McpRoute, McpTarget, McpTargetKind, UpstreamSettings};

/// What an `mcp` backend takes from its route and the process settings.
pub(super) struct McpCtx {
    pub(super) route: Arc<str>,
    /// [`McpRoute::metric_scope`].
    pub(super) metric_scope: Arc<str>,
    /// [`McpRoute::key`].
    pub(super) key: u64,
    pub(super) allowed_origins: Vec<String>,
    pub(super) passthrough: bool,
    pub(super) authorization: Option<Arc<crate::policy::authz::RuleSet>>,
    /// The route's `backendTLS`, for every HTTP and SSE target.
    pub(super) tls: Option<Arc<crate::net::client::tls::UpstreamTls>>,
    pub(super) session_ttl: Duration,
    pub(super) upstream: UpstreamSettings,
    pub(super) call_timeout: Duration,
}

pub(super) fn lower_backends(
    backends: &[model::Backend],
    path: &str,
    mcp_ctx: &McpCtx,
    errs: &mut Vec<ConfigError>,
) -> Backend {
    let mut hosts = Vec::new();
    let mut mcp = None;
    for (i, b) in backends.iter().enumerate() {
        match b.kind() {
            Some(model::BackendKind::Host(h)) => match HostAddr::parse(h) {
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
    // Every field, named (here and for each target): one added to the wire model does not
    // compile until it is lowered here or refused in `config::validate`.
    let model::McpBackend {
        targets: _,
        stateful_mode: _,
        prefix_mode: _,
        failure_mode: _,
        dns_rebinding_protection: _,
        modern_compat,
    } = m;
    let mut targets = Vec::with_capacity(m.targets.len());
    for (i, t) in m.targets.iter().enumerate() {
        let tpath = format!("{path}.targets[{i}]");
        let model::McpTarget {
            name: _,
            stdio: _,
            mcp: _,
            sse: _,
            openapi: _,
            policies: _,
        } = t;
        let kind = match t.kind() {
            Some(model::McpTargetKind::Stdio(s)) => {
                let model::StdioTarget {
                    cmd,
                    args,
                    env,
                    clear_env,
                } = s;
                McpTargetKind::Stdio {
                    cmd: cmd.clone(),
                    args: args.clone(),
                    env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    clear_env: clear_env.unwrap_or(false),
                }
            }
            Some(model::McpTargetKind::StreamableHttp(h)) => {
                let (target, path, https) = mcp_http_target(h, "/mcp", &tpath, errs)?;
                McpTargetKind::Http {
                    target,
                    path,
                    https,
                    tls: c.tls.clone(),
                }
            }
            Some(model::McpTargetKind::Sse(h)) => {
                let (target, path, https) = mcp_http_target(h, "/sse", &tpath, errs)?;
                McpTargetKind::Sse {
                    target,
                    path,
                    https,
                    tls: c.tls.clone(),
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
        metric_scope: c.metric_scope.clone(),
        key: c.key,
        targets,
        stateful: !matches!(m.stateful_mode, Some(model::StatefulMode::Stateless)),
        prefix,
        compat: modern_compat.unwrap_or(true),
        session_ttl: c.session_ttl,
        upstream: c.upstream,
        call_timeout: c.call_timeout,
        allowed_origins: c.allowed_origins.clone(),
        passthrough_auth: c.passthrough,
        authorization: c.authorization.clone(),
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
    match HostAddr::parse(&authority) {
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
