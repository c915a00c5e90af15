//! Structural validation of a deserialized [`LocalConfig`]: everything serde cannot express,
//! collected into one list of path-carrying errors (never just the first).
//!
//! Owns: rejection of agentgateway features Portcullis does not implement (by name), durations,
//! regexes, ports, listener/TLS rules, backend and MCP-target shape, auth-policy presence rules.
//! Does not: build runtime structures, resolve defaults, fetch or read files (lowering does).

mod policy;
mod route;

use std::collections::HashMap;

use super::values::{parse_duration, parse_worker_threads};
use crate::schema::error::{index, join};
use crate::schema::ConfigError;
use crate::schema::{Bind, Config, Listener, LocalConfig, Protocol, Unsupported};

/// Accumulates errors during one validation pass.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<ConfigError>);

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }

    /// Reports each set [`Unsupported`] field as `parent.key: agentgateway feature 'key' …`.
    pub(crate) fn unsupported(&mut self, parent: &str, fields: &[(&str, &Option<Unsupported>)]) {
        for (key, value) in fields {
            if value.as_ref().is_some_and(Unsupported::is_set) {
                self.push(join(parent, key), unsupported_msg(key));
            }
        }
    }

    pub(crate) fn duration(&mut self, path: String, value: &Option<String>) {
        if let Some(v) = value {
            if let Err(e) = parse_duration(v) {
                self.push(path, e);
            }
        }
    }

    pub(crate) fn regex(&mut self, path: String, pattern: &str) {
        if let Err(e) = regex::Regex::new(pattern) {
            // The regex crate's message is multi-line; keep the last, most specific line.
            let msg = e.to_string();
            let last = msg.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(&msg);
            let last = last.trim();
            let last = last.strip_prefix("error: ").unwrap_or(last);
            self.push(path, format!("invalid regex {pattern:?}: {last}"));
        }
    }
}

pub(crate) fn unsupported_msg(feature: &str) -> String {
    format!("agentgateway feature '{feature}' is not supported by Portcullis")
}

/// An RFC 9110 token (header names, methods). Pseudo-headers are handled by callers.
pub(crate) use crate::http::h1::is_token;

/// Validates the whole config; `Ok` means lowering may assume every documented invariant.
pub(crate) fn validate(cfg: &LocalConfig) -> Result<(), Vec<ConfigError>> {
    let mut e = Errors::default();
    e.unsupported(
        "",
        &[
            ("policies", &cfg.policies),
            ("gatewayPolicies", &cfg.gateway_policies),
            ("frontendPolicies", &cfg.frontend_policies),
            ("workloads", &cfg.workloads),
            ("services", &cfg.services),
            ("backends", &cfg.backends),
            ("routeGroups", &cfg.route_groups),
            ("gateways", &cfg.gateways),
            ("routes", &cfg.routes),
            ("tcpRoutes", &cfg.tcp_routes),
            ("llm", &cfg.llm),
            ("mcp", &cfg.mcp),
            ("ui", &cfg.ui),
        ],
    );
    if let Some(c) = &cfg.config {
        process(&mut e, c);
    }
    let mut ports: HashMap<u16, usize> = HashMap::new();
    for (i, b) in cfg.binds.iter().enumerate() {
        let path = index("binds", i);
        if let Some(first) = ports.insert(b.port, i) {
            ports.insert(b.port, first);
            e.push(
                join(&path, "port"),
                format!("duplicate port {} (already used by binds[{first}])", b.port),
            );
        }
        bind(&mut e, &path, b);
    }
    if e.0.is_empty() {
        Ok(())
    } else {
        Err(e.0)
    }
}

fn process(e: &mut Errors, c: &Config) {
    let p = "config";
    e.unsupported(
        p,
        &[
            ("database", &c.database),
            ("storage", &c.storage),
            ("spiffe", &c.spiffe),
            ("session", &c.session),
            ("sensitiveHeaders", &c.sensitive_headers),
        ],
    );
    if let Some(t) = &c.tracing {
        let p = "config.tracing";
        e.unsupported(p, &[("fields", &t.fields)]);
        match t.otlp_endpoint.as_deref() {
            None => e.push(
                join(p, "otlpEndpoint"),
                "required: the OTLP collector's URL",
            ),
            Some(u) if crate::net::url::parse_url(u).is_err() => e.push(
                join(p, "otlpEndpoint"),
                format!("not an http(s) URL: {u:?}"),
            ),
            Some(_) => {}
        }
        match t.otlp_protocol.as_deref() {
            Some("http") => {}
            Some("grpc") | None => e.push(
                join(p, "otlpProtocol"),
                "Portcullis exports OTLP over HTTP only: set `otlpProtocol: http` (and the \
                 collector's HTTP port, 4318); gRPC (agentgateway's default) is not supported",
            ),
            Some(other) => e.push(
                join(p, "otlpProtocol"),
                format!("unknown protocol {other:?} (expected http)"),
            ),
        }
        for (key, v) in [
            ("randomSampling", &t.random_sampling),
            ("clientSampling", &t.client_sampling),
        ] {
            if let Some(v) = v {
                if let Err(why) = crate::config::sampling(v) {
                    e.push(join(p, key), why);
                }
            }
        }
    }
    if let Some(m) = &c.metrics {
        e.unsupported("config.metrics", &[("fields", &m.fields)]);
        for (i, name) in m.remove.iter().enumerate() {
            if !crate::metrics::is_known(name) {
                e.push(
                    format!("config.metrics.remove[{i}]"),
                    format!("unknown metric {name:?} (names are agentgateway's, e.g. `requests`, or the full names /metrics shows)"),
                );
            }
        }
    }
    for (key, addr) in [
        ("adminAddr", &c.admin_addr),
        ("statsAddr", &c.stats_addr),
        ("readinessAddr", &c.readiness_addr),
    ] {
        if let Some(a) = addr {
            let port_ok = a
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                e.push(
                    join(p, key),
                    format!("invalid address {a:?}: expected \"host:port\""),
                );
            }
        }
    }
    e.duration(
        join(p, "connectionTerminationDeadline"),
        &c.connection_termination_deadline,
    );
    e.duration(
        join(p, "connectionMinTerminationDeadline"),
        &c.connection_min_termination_deadline,
    );
    if let Some(w) = &c.worker_threads {
        if let Err(msg) = parse_worker_threads(w) {
            e.push(join(p, "workerThreads"), msg);
        }
    }
    if let Some(l) = &c.logging {
        e.unsupported("config.logging", &[("database", &l.database)]);
    }
    if let Some(b) = &c.backend {
        let bp = "config.backend";
        e.duration(join(bp, "connectTimeout"), &b.connect_timeout);
        e.duration(join(bp, "poolIdleTimeout"), &b.pool_idle_timeout);
        if let Some(k) = &b.keepalives {
            e.duration(join(bp, "keepalives.time"), &k.time);
            e.duration(join(bp, "keepalives.interval"), &k.interval);
        }
    }
    if let Some(l) = &c.listener {
        let lp = "config.listener";
        e.duration(join(lp, "tlsHandshakeTimeout"), &l.tls_handshake_timeout);
        e.duration(join(lp, "http1IdleTimeout"), &l.http1_idle_timeout);
        e.duration(
            join(lp, "http2KeepaliveInterval"),
            &l.http2_keepalive_interval,
        );
        e.duration(
            join(lp, "http2KeepaliveTimeout"),
            &l.http2_keepalive_timeout,
        );
    }
}

fn bind(e: &mut Errors, path: &str, b: &Bind) {
    // Every field, named: a new one does not compile until it is handled or refused here.
    let Bind {
        port: _,
        listeners: _,
        tunnel_protocol,
        mode,
    } = b;
    e.unsupported(path, &[("tunnelProtocol", tunnel_protocol), ("mode", mode)]);
    for (i, l) in b.listeners.iter().enumerate() {
        listener(e, &index(&join(path, "listeners"), i), l);
    }
}

fn listener(e: &mut Errors, path: &str, l: &Listener) {
    // Every field, named: a new one does not compile until it is handled or refused here.
    // `name`, `gatewayName` and `namespace` only name the listener (logs, agentgateway's keys).
    let Listener {
        name: _,
        gateway_name: _,
        namespace: _,
        hostname: _,
        protocol: _,
        tls: _,
        routes: _,
        tcp_routes,
        policies,
    } = l;
    match l.protocol {
        Protocol::Http | Protocol::Https => {}
        Protocol::Tls => e.push(join(path, "protocol"), unsupported_msg("TLS listeners")),
        Protocol::Tcp => e.push(join(path, "protocol"), unsupported_msg("TCP listeners")),
        Protocol::Hbone => e.push(join(path, "protocol"), unsupported_msg("HBONE listeners")),
    }
    e.unsupported(path, &[("tcpRoutes", tcp_routes), ("policies", policies)]);
    match (&l.tls, l.protocol) {
        (None, Protocol::Https) => e.push(
            path,
            "missing field `tls` (required when protocol is HTTPS)",
        ),
        (Some(_), Protocol::Http) => e.push(
            join(path, "tls"),
            "`tls` is only allowed with protocol HTTPS",
        ),
        _ => {}
    }
    if let Some(t) = &l.tls {
        let tp = join(path, "tls");
        e.unsupported(
            &tp,
            &[
                ("mode", &t.mode),
                ("root", &t.root),
                ("spiffe", &t.spiffe),
                ("cipherSuites", &t.cipher_suites),
                ("minTLSVersion", &t.min_tls_version_upper),
                ("minTlsVersion", &t.min_tls_version),
                ("maxTLSVersion", &t.max_tls_version_upper),
                ("maxTlsVersion", &t.max_tls_version),
                ("keyExchangeGroups", &t.key_exchange_groups),
            ],
        );
        for (key, v) in [("cert", &t.cert), ("key", &t.key)] {
            match v {
                None => e.push(&tp, format!("missing field `{key}`")),
                Some(s) if s.is_empty() => e.push(join(&tp, key), "must not be empty"),
                Some(_) => {}
            }
        }
    }
    match (&l.routes, l.protocol) {
        (None, Protocol::Http | Protocol::Https) => e.push(
            path,
            "missing field `routes` (required for HTTP and HTTPS listeners)",
        ),
        (Some(routes), _) => {
            for (i, r) in routes.iter().enumerate() {
                route::route(e, &index(&join(path, "routes"), i), r);
            }
        }
        _ => {}
    }
}
