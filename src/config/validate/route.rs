//! Validation of one route: matches (regexes, header names), backends (exactly one supported
//! kind, `host:port`, weights) and MCP targets (the agentgateway host/port/path rule).
//!
//! Policies are delegated to the sibling `policy` module.

use super::{index, is_token, join, policy, unsupported_msg, Errors};
use crate::schema::{
    Backend, HttpTarget, Match, McpBackend, McpTarget, PathMatch, Route, ValueMatch,
};

const PSEUDO_HEADERS: [&str; 4] = [":authority", ":method", ":path", ":scheme"];

pub(super) fn route(e: &mut Errors, path: &str, r: &Route) {
    // Every field, named: a new one does not compile until it is handled or refused here.
    // `namespace` and `ruleName` only name the route in agentgateway (its route key); Portcullis
    // names a route by `name` (else `route<i>`) in metrics and logs.
    let Route {
        name: _,
        namespace: _,
        rule_name: _,
        hostnames: _,
        matches: _,
        policies: _,
        backends: _,
    } = r;
    for (i, h) in r.hostnames.iter().enumerate() {
        if h.is_empty() || h.contains(['/', ' ', ':']) {
            e.push(
                index(&join(path, "hostnames"), i),
                format!("invalid hostname {h:?}"),
            );
        }
    }
    for (i, m) in r.matches.iter().enumerate() {
        route_match(e, &index(&join(path, "matches"), i), m);
    }
    if let Some(p) = &r.policies {
        let pp = join(path, "policies");
        policy::policies(e, &pp, p, r.backends.len());
        if r.backends.iter().any(|b| b.mcp.is_some()) {
            // The MCP relay builds its own upstream requests and client answers: these HTTP
            // filters would not be applied, so they are refused rather than ignored. (`timeout`
            // is applied: it bounds each JSON-RPC call.)
            for (key, set) in [
                ("requestHeaderModifier", p.request_header_modifier.is_some()),
                (
                    "responseHeaderModifier",
                    p.response_header_modifier.is_some(),
                ),
                ("urlRewrite", p.url_rewrite.is_some()),
            ] {
                if set {
                    e.push(
                        join(&pp, key),
                        unsupported_msg(&format!("{key} on a route with an mcp backend")),
                    );
                }
            }
        }
    }
    for (i, b) in r.backends.iter().enumerate() {
        backend(e, &index(&join(path, "backends"), i), b);
    }
    if r.backends.len() > 1 && r.backends.iter().all(|b| b.weight == 0) {
        e.push(
            join(path, "backends"),
            "at least one backend must have a weight > 0",
        );
    }
}

fn route_match(e: &mut Errors, path: &str, m: &Match) {
    match &m.path {
        PathMatch::Exact(p) | PathMatch::PathPrefix(p) => {
            if !p.starts_with('/') {
                e.push(
                    join(path, "path"),
                    format!("path {p:?} must start with '/'"),
                );
            } else {
                // Requests are matched after normalisation: a path that normalises to
                // something else would never match.
                match crate::http::h1::normalize_path(p) {
                    Ok(n) if n != p.as_str() => e.push(
                        join(path, "path"),
                        format!(
                            "path {p:?} would never match: request paths are normalised before routing (dot-segments removed, escapes of unreserved characters decoded, other escapes uppercased); write {n:?}"
                        ),
                    ),
                    Ok(_) => {}
                    Err(err) => e.push(
                        join(path, "path"),
                        format!("path {p:?} would never match: such requests are refused ({err})"),
                    ),
                }
            }
        }
        PathMatch::Regex(re) => e.regex(join(path, "path.regex"), &re.pattern),
    }
    if let Some(method) = &m.method {
        if !is_token(method) {
            e.push(
                join(path, "method"),
                format!("invalid HTTP method {method:?}"),
            );
        }
    }
    for (i, h) in m.headers.iter().enumerate() {
        let hp = index(&join(path, "headers"), i);
        if !is_token(&h.name) && !PSEUDO_HEADERS.contains(&h.name.as_str()) {
            e.push(
                join(&hp, "name"),
                format!("invalid header name {:?}", h.name),
            );
        }
        if let ValueMatch::Regex(re) = &h.value {
            e.regex(join(&hp, "value.regex"), re);
        }
    }
    for (i, q) in m.query.iter().enumerate() {
        let qp = index(&join(path, "query"), i);
        if q.name.is_empty() {
            e.push(join(&qp, "name"), "must not be empty");
        }
        if let ValueMatch::Regex(re) = &q.value {
            e.regex(join(&qp, "value.regex"), re);
        }
    }
}

fn backend(e: &mut Errors, path: &str, b: &Backend) {
    let unsupported = [
        ("service", &b.service),
        ("dynamic", &b.dynamic),
        ("ai", &b.ai),
        ("aws", &b.aws),
        ("backend", &b.backend),
        ("routeGroup", &b.route_group),
        ("internal", &b.internal),
        ("invalid", &b.invalid),
    ];
    e.unsupported(path, &unsupported);
    if let Some(p) = &b.policies {
        backend_policies(e, &join(path, "policies"), p, b.mcp.is_some());
    }
    let unsupported_kinds = unsupported.iter().filter(|(_, v)| v.is_some()).count();
    let kinds = usize::from(b.host.is_some()) + usize::from(b.mcp.is_some()) + unsupported_kinds;
    if kinds == 0 {
        e.push(path, "backend needs exactly one kind: `host` or `mcp`");
    } else if kinds > 1 {
        e.push(
            path,
            "backend must have exactly one kind (`host` or `mcp`), found several",
        );
    }
    if let Some(h) = &b.host {
        if !is_host_port(h) {
            e.push(
                join(path, "host"),
                format!("invalid host {h:?}: expected \"address:port\""),
            );
        }
    }
    if let Some(m) = &b.mcp {
        mcp_backend(e, &join(path, "mcp"), m);
    }
}

/// `name:port`, `1.2.3.4:port` or `[::1]:port`.
fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c))
    };
    host_ok && port.parse::<u16>().is_ok()
}

fn mcp_backend(e: &mut Errors, path: &str, m: &McpBackend) {
    e.unsupported(
        path,
        &[
            ("failureMode", &m.failure_mode),
            ("dnsRebindingProtection", &m.dns_rebinding_protection),
        ],
    );
    if m.targets.is_empty() {
        e.push(join(path, "targets"), "at least one target is required");
    }
    let mut seen = std::collections::HashSet::new();
    for (i, t) in m.targets.iter().enumerate() {
        let tp = index(&join(path, "targets"), i);
        if !seen.insert(t.name.as_str()) {
            e.push(
                join(&tp, "name"),
                format!("duplicate target name {:?}", t.name),
            );
        }
        target(e, &tp, t);
    }
}

fn target(e: &mut Errors, path: &str, t: &McpTarget) {
    if t.name.is_empty() {
        e.push(join(path, "name"), "must not be empty");
    }
    e.unsupported(path, &[("openapi", &t.openapi), ("policies", &t.policies)]);
    let kinds = [
        t.stdio.is_some(),
        t.mcp.is_some(),
        t.sse.is_some(),
        t.openapi.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => e.push(path, "target needs exactly one of `stdio`, `mcp`, `sse`"),
        1 => {}
        _ => e.push(
            path,
            "target must have exactly one of `stdio`, `mcp`, `sse`, found several",
        ),
    }
    if let Some(s) = &t.stdio {
        if s.cmd.is_empty() {
            e.push(join(path, "stdio.cmd"), "must not be empty");
        }
    }
    if let Some(h) = &t.mcp {
        http_target(e, &join(path, "mcp"), h);
    }
    if let Some(h) = &t.sse {
        http_target(e, &join(path, "sse"), h);
    }
}

/// agentgateway's `McpBackendHost::process` rule: `host` + `port` + `path`, or only `host` as an
/// `http://` / `https://` URL.
fn http_target(e: &mut Errors, path: &str, h: &HttpTarget) {
    e.unsupported(path, &[("backend", &h.backend)]);
    let Some(host) = &h.host else {
        if h.backend.is_none() {
            e.push(path, "missing field `host`");
        }
        return;
    };
    let is_url = host.starts_with("http://") || host.starts_with("https://");
    match (h.port, &h.path) {
        (Some(_), Some(p)) => {
            if host.contains("://") {
                e.push(
                    join(path, "host"),
                    "must be a hostname or IP when `port` and `path` are set (or give only `host` as a URL)",
                );
            }
            if !p.starts_with('/') {
                e.push(
                    join(path, "path"),
                    format!("path {p:?} must start with '/'"),
                );
            }
        }
        (None, None) => {
            if !is_url {
                e.push(
                    join(path, "host"),
                    format!("{host:?} must be an http:// or https:// URL when `port` and `path` are omitted"),
                );
            }
        }
        (Some(_), None) => e.push(
            path,
            "`port` is set but `path` is missing (set both, or only `host` as a URL)",
        ),
        (None, Some(_)) => e.push(
            path,
            "`path` is set but `port` is missing (set both, or only `host` as a URL)",
        ),
    }
}

/// `backends[].policies`: the authorization rule sets (compiled in lowering); the rest by name.
fn backend_policies(e: &mut Errors, path: &str, p: &crate::schema::BackendPolicies, mcp: bool) {
    let crate::schema::BackendPolicies {
        mcp_authorization,
        authorization: _,
        a2a,
        ai,
        backend_auth,
        backend_tls,
        backend_tunnel,
        ext_authz,
        health,
        http,
        inference_routing,
        mcp_guardrails,
        request_header_modifier,
        request_redirect,
        response_header_modifier,
        session_affinity,
        tcp,
        transformations,
    } = p;
    e.unsupported(
        path,
        &[
            ("a2a", a2a),
            ("ai", ai),
            ("backendAuth", backend_auth),
            ("backendTunnel", backend_tunnel),
            ("extAuthz", ext_authz),
            ("health", health),
            ("http", http),
            ("inferenceRouting", inference_routing),
            ("mcpGuardrails", mcp_guardrails),
            ("requestHeaderModifier", request_header_modifier),
            ("requestRedirect", request_redirect),
            ("responseHeaderModifier", response_header_modifier),
            ("sessionAffinity", session_affinity),
            ("tcp", tcp),
            ("transformations", transformations),
        ],
    );
    if let Some(t) = backend_tls {
        policy::backend_tls(e, &join(path, "backendTLS"), t);
    }
    if mcp_authorization.is_some() && !mcp {
        e.push(
            join(path, "mcpAuthorization"),
            "mcpAuthorization applies to `mcp` backends only",
        );
    }
}
