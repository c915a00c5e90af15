//! Lowering of the top-level `config` block: process settings, limits, admin addresses.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::config::{parse_duration, parse_worker_threads, ConfigError};
use crate::schema as model;
use crate::snapshot::{LogSettings, Settings};

use super::*;

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

pub(super) fn lower_settings(
    cfg: Option<&model::Config>,
    errs: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Settings {
    let mut s = Settings::default();
    if let Some(c) = cfg {
        // Every field, named: one added to the wire model does not compile until it is lowered
        // here or refused (or declared without effect) in `config::validate`.
        let model::Config {
            admin_addr: _,
            stats_addr: _,
            readiness_addr: _,
            connection_termination_deadline: _,
            connection_min_termination_deadline,
            worker_threads: _,
            logging: _,
            backend: _,
            listener: _,
            enable_ipv6,
            local_xds_path,
            ca_address,
            ca_auth_token,
            xds_address,
            xds_auth_token,
            namespace,
            gateway,
            trust_domain,
            additional_trust_domains,
            skip_validate_trust_domain,
            service_account,
            cluster_id,
            network,
            tracing,
            metrics,
            hbone,
            dns,
            histograms,
            standard_attributes,
            model_catalog,
            custom_functions,
            database: _,
            storage: _,
            spiffe: _,
            session: _,
            mcp: _,
            sensitive_headers: _,
        } = c;
        // Accepted so that agentgateway configs load, but without effect here: said at every
        // load, never silently.
        let listener = c.listener.as_ref();
        let http2 = listener.is_some_and(|l| {
            l.http2_window_size.is_some()
                || l.http2_connection_window_size.is_some()
                || l.http2_frame_size.is_some()
                || l.http2_keepalive_interval.is_some()
                || l.http2_keepalive_timeout.is_some()
        });
        for (key, set) in [
            (
                "connectionMinTerminationDeadline",
                connection_min_termination_deadline.is_some(),
            ),
            (
                "backend.keepalives",
                c.backend.as_ref().is_some_and(|b| b.keepalives.is_some()),
            ),
            (
                "listener.http1MaxHeaders",
                listener.is_some_and(|l| l.http1_max_headers.is_some()),
            ),
            ("listener.http2* (HTTP/2 is not served)", http2),
            (
                "logging.fields",
                c.logging.as_ref().is_some_and(|l| l.fields.is_some()),
            ),
            ("enableIpv6", enable_ipv6.is_some()),
            ("localXdsPath", local_xds_path.is_some()),
            ("caAddress", ca_address.is_some()),
            ("caAuthToken", ca_auth_token.is_some()),
            ("xdsAddress", xds_address.is_some()),
            ("xdsAuthToken", xds_auth_token.is_some()),
            ("trustDomain", trust_domain.is_some()),
            ("additionalTrustDomains", additional_trust_domains.is_some()),
            (
                "skipValidateTrustDomain",
                skip_validate_trust_domain.is_some(),
            ),
            ("serviceAccount", service_account.is_some()),
            ("clusterId", cluster_id.is_some()),
            ("network", network.is_some()),
            ("hbone", hbone.is_some()),
            ("dns.edns0", dns.as_ref().is_some_and(|d| d.edns0.is_some())),
            ("histograms", histograms.is_some()),
            ("standardAttributes", standard_attributes.is_some()),
            ("modelCatalog", model_catalog.is_some()),
            ("customFunctions", custom_functions.is_some()),
        ] {
            if set {
                warnings.push(format!(
                    "config.{key}: accepted for agentgateway compatibility, but it has no effect in Portcullis"
                ));
            }
        }
        // agentgateway's `gateway` label is `<namespace>/<gateway>`, both empty by default.
        s.metrics = Arc::new(crate::metrics::MetricsExport {
            gateway: format!(
                "{}/{}",
                namespace.as_deref().unwrap_or(""),
                gateway.as_deref().unwrap_or("")
            ),
            removed: metrics
                .as_ref()
                .map(|m| m.remove.clone())
                .unwrap_or_default(),
        });
        if let Some(t) = tracing {
            // Validated: an endpoint, `otlpProtocol: http`, constant probabilities.
            let endpoint = t.otlp_endpoint.as_deref().unwrap_or("");
            let path = t.path.as_deref().unwrap_or("/v1/traces");
            let p = |v: &Option<serde_json::Value>, default: f64| {
                v.as_ref()
                    .map_or(Ok(default), crate::config::sampling)
                    .unwrap_or(default)
            };
            s.tracing = Some(Arc::new(crate::otel::TraceSettings {
                url: format!("{}{path}", endpoint.trim_end_matches('/')),
                headers: t
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                random: p(&t.random_sampling, 0.0),
                client: p(&t.client_sampling, 1.0),
            }));
        }
        if let Some(f) = dns.as_ref().and_then(|d| d.lookup_family.as_deref()) {
            match crate::net::dns::LookupFamily::parse(f) {
                Some(f) => s.upstream.lookup_family = f,
                None => errs.push(ConfigError::new(
                    "config.dns.lookupFamily",
                    format!(
                        "unknown value {f:?} (expected All, Auto, V4Preferred, V4Only or V6Only)"
                    ),
                )),
            }
        }
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
                Ok(n) => s.worker_threads = Some(n),
                Err(e) => errs.push(ConfigError::new("config.workerThreads", e)),
            }
        }
        if let Some(l) = &c.listener {
            // The http1MaxHeaders and http2* settings are warned about above.
            let model::ListenerConfig {
                max_buffer_size: _,
                tls_handshake_timeout: _,
                http1_max_headers: _,
                http1_idle_timeout: _,
                http2_window_size: _,
                http2_connection_window_size: _,
                http2_frame_size: _,
                http2_keepalive_interval: _,
                http2_keepalive_timeout: _,
            } = l;
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
            let model::BackendConfig {
                keepalives: _,
                connect_timeout: _,
                pool_idle_timeout: _,
                pool_max_size: _,
            } = b;
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
            let model::McpSettings {
                session_ttl: _,
                max_sessions_per_subject: _,
                max_sessions_per_worker: _,
                max_stdio_processes: _,
                max_buffered_bytes: _,
            } = m;
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
            let model::Logging {
                filter: _,
                fields: _,
                level: _,
                format: _,
                database: _,
            } = l;
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
    // Not an agentgateway key: how often host names are looked up again (at least 100 ms).
    if let Ok(v) = std::env::var("PORTCULLIS_DNS_REFRESH") {
        match parse_duration(&v) {
            Ok(d) => s.upstream.dns_refresh = d.max(Duration::from_millis(100)),
            Err(e) => errs.push(ConfigError::new("PORTCULLIS_DNS_REFRESH", e)),
        }
    }
    s.peering = peering(errs);
    // agentgateway's order: the `ADMIN_ADDR` environment variable, then `config.adminAddr`.
    let env = std::env::var("ADMIN_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let configured = cfg.and_then(|c| c.admin_addr.clone());
    let chosen = env
        .map(|v| (v, "ADMIN_ADDR"))
        .or(configured.map(|v| (v, "config.adminAddr")));
    if let Some((value, key)) = chosen {
        s.admin_addr = addr(&Some(value), key, s.admin_addr, errs);
        s.admin_explicit = true;
        if !s.admin_addr.ip().to_canonical().is_loopback() {
            warnings.push(format!(
                "{key}: {} is not a loopback address: whoever reaches it can read the config \
                 (secrets redacted), change the log filter and stop the proxy",
                s.admin_addr
            ));
        }
    }
    s
}

/// Not agentgateway keys: this replica's peer address and the replicas' shared key
/// (`PORTCULLIS_PEER_ADDR`, `PORTCULLIS_PEER_KEY_FILE` or `PORTCULLIS_PEER_KEY`), read again on
/// every reload (a rotated key file takes effect then).
fn peering(errs: &mut Vec<ConfigError>) -> Option<Arc<crate::cluster::Peering>> {
    let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let addr = var("PORTCULLIS_PEER_ADDR");
    let file = var("PORTCULLIS_PEER_KEY_FILE");
    let text = match &file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                errs.push(ConfigError::new(
                    "env PORTCULLIS_PEER_KEY_FILE",
                    format!("cannot read {path}: {e}"),
                ));
                return None;
            }
        },
        None => None,
    };
    let file_text = file.as_deref().zip(text.as_deref());
    let key = var("PORTCULLIS_PEER_KEY");
    match crate::cluster::from_env_values(addr.as_deref(), file_text, key.as_deref()) {
        Ok(p) => p.map(Arc::new),
        Err((name, why)) => {
            errs.push(ConfigError::new(format!("env {name}"), why));
            None
        }
    }
}
