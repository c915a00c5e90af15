//! The Prometheus text exposition (format 0.0.4) of the summed worker counters.

use std::fmt::Write as _;

use super::{
    escape_label, AuthResult, ControlStats, Denied, Histogram, Refused, WorkerMetrics,
    AUTH_RESULTS, CONNECT_BUCKETS, LATENCY_BUCKETS, METHODS, REQUEST_BUCKETS,
};

/// What a scrape renders besides the workers' counters.
pub(crate) struct Extra<'a> {
    pub control: &'a ControlStats,
    /// MCP server processes running now (process-wide).
    pub stdio_processes: usize,
}

/// Every family, with agentgateway's short name where it is one of agentgateway's (what
/// `config.metrics.remove` names), and its type.
pub(crate) const FAMILIES: [(&str, Option<&str>, &str); 31] = [
    ("agentgateway_build_info", Some("build"), "gauge"),
    ("agentgateway_requests_total", Some("requests"), "counter"),
    (
        "agentgateway_request_duration_seconds",
        Some("request_duration"),
        "histogram",
    ),
    (
        "agentgateway_mcp_requests_total",
        Some("mcp_requests"),
        "counter",
    ),
    (
        "agentgateway_downstream_connections_total",
        Some("downstream_connections"),
        "counter",
    ),
    (
        "agentgateway_upstream_connect_duration_seconds",
        Some("upstream_connect_duration"),
        "histogram",
    ),
    (
        "agentgateway_tls_handshake_duration_seconds",
        Some("tls_handshake_duration"),
        "histogram",
    ),
    ("portcullis_build_info", None, "gauge"),
    ("portcullis_requests_total", None, "counter"),
    ("portcullis_request_duration_seconds", None, "histogram"),
    ("portcullis_refused_total", None, "counter"),
    ("portcullis_rate_limited_total", None, "counter"),
    ("portcullis_authorization_denied_total", None, "counter"),
    ("portcullis_auth_decisions_total", None, "counter"),
    ("portcullis_token_cache_hits_total", None, "counter"),
    (
        "portcullis_token_cache_verifications_total",
        None,
        "counter",
    ),
    ("portcullis_token_cache_evictions_total", None, "counter"),
    ("portcullis_token_cache_entries", None, "gauge"),
    ("portcullis_jwks_fetches_total", None, "counter"),
    ("portcullis_jwks_fetch_failures_total", None, "counter"),
    (
        "portcullis_jwks_last_success_timestamp_seconds",
        None,
        "gauge",
    ),
    ("portcullis_jwks_keys", None, "gauge"),
    ("portcullis_mcp_request_duration_seconds", None, "histogram"),
    ("portcullis_mcp_sessions", None, "gauge"),
    ("portcullis_peer_forwarded_total", None, "counter"),
    ("portcullis_peer_received_total", None, "counter"),
    ("portcullis_peer_owner_gone_total", None, "counter"),
    ("portcullis_stdio_processes", None, "gauge"),
    ("portcullis_open_connections", None, "gauge"),
    ("portcullis_connections_accepted_total", None, "counter"),
    ("portcullis_trace_spans_total", None, "counter"),
];

/// agentgateway metric names Portcullis does not produce: naming them in
/// `config.metrics.remove` is accepted (they are not exported either way).
pub(crate) const AGENTGATEWAY_ONLY: [&str; 14] = [
    "gen_ai_client_token_usage",
    "gen_ai_client_cost",
    "gen_ai_server_request_duration",
    "gen_ai_server_time_per_output_token",
    "gen_ai_server_time_to_first_token",
    "guardrail_checks",
    "cost_catalog_lookups",
    "response",
    "request_processing",
    "response_processing",
    "downstream_received",
    "downstream_sent",
    "upstream_call_duration",
    "retries",
];

/// Whether `name` is something `config.metrics.remove` may name.
pub(crate) fn is_known(name: &str) -> bool {
    FAMILIES
        .iter()
        .any(|(full, short, _)| *full == name || *short == Some(name))
        || AGENTGATEWAY_ONLY.contains(&name)
}

struct Out<'a> {
    s: String,
    removed: &'a [String],
}

impl Out<'_> {
    /// Starts family `name` (HELP and TYPE); false if `config.metrics.remove` names it.
    fn family(&mut self, name: &str, help: &str) -> bool {
        let (_, short, kind) = FAMILIES
            .iter()
            .find(|(n, ..)| *n == name)
            .expect("every rendered family is listed in FAMILIES");
        if self
            .removed
            .iter()
            .any(|r| r == name || Some(r.as_str()) == *short)
        {
            return false;
        }
        let base = match *kind {
            "counter" => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let _ = writeln!(self.s, "# HELP {base} {help}");
        let _ = writeln!(self.s, "# TYPE {base} {kind}");
        true
    }

    fn histogram(&mut self, name: &str, labels: &str, bounds: &[f64], h: &Histogram) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (i, b) in bounds.iter().enumerate() {
            cum += h.counts[i];
            let _ = writeln!(self.s, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        cum += h.counts[bounds.len()];
        let _ = writeln!(self.s, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(self.s, "{name}_sum{} {}", braces(labels), h.sum);
        let _ = writeln!(self.s, "{name}_count{} {}", braces(labels), h.count);
    }
}

/// Renders per-worker snapshots (index = worker id): totals summed across workers, and the
/// per-worker connection series.
pub(crate) fn render(workers: &[WorkerMetrics], extra: &Extra<'_>) -> String {
    let mut total = WorkerMetrics::default();
    for w in workers {
        total.merge(w);
    }
    let export = total.export.clone().unwrap_or_default();
    let gateway = escape_label(&export.gateway).into_owned();
    let mut o = Out {
        s: String::with_capacity(16 * 1024),
        removed: &export.removed,
    };
    let version = env!("CARGO_PKG_VERSION");

    // agentgateway's series.
    if o.family("agentgateway_build_info", "Agentgateway build information") {
        let _ = writeln!(o.s, "agentgateway_build_info{{tag=\"{version}\"}} 1");
    }
    let mut routes: Vec<_> = total.http.values().collect();
    routes.sort_by(|a, b| a.labels.cmp(&b.labels));
    if o.family(
        "agentgateway_requests_total",
        "The total number of HTTP requests sent",
    ) {
        for r in &routes {
            let mut counts = r.counts.clone();
            counts.sort_by_key(|(m, s, reason, _)| (*m, *s, *reason as u8));
            for (m, status, reason, n) in counts {
                let _ = writeln!(
                    o.s,
                    "agentgateway_requests_total{{{},method=\"{}\",status=\"{status}\",reason=\"{}\"}} {n}",
                    r.labels,
                    METHODS[usize::from(m)],
                    reason.as_str()
                );
            }
        }
    }
    if o.family(
        "agentgateway_request_duration_seconds",
        "Duration of HTTP requests (seconds)",
    ) {
        for r in &routes {
            o.histogram(
                "agentgateway_request_duration_seconds",
                &r.labels,
                &REQUEST_BUCKETS,
                &r.duration,
            );
        }
    }
    if o.family(
        "agentgateway_mcp_requests_total",
        "Total number of MCP tool calls",
    ) {
        let mut mcp: Vec<_> = total.mcp.values().collect();
        mcp.sort();
        for (labels, n) in mcp {
            let _ = writeln!(o.s, "agentgateway_mcp_requests_total{{{labels}}} {n}");
        }
    }
    if o.family(
        "agentgateway_downstream_connections_total",
        "The total number of downstream connections established",
    ) {
        let mut down = total.downstream.clone();
        down.sort();
        for (port, tls, n) in down {
            let protocol = if tls { "https" } else { "http" };
            let _ = writeln!(
                o.s,
                "agentgateway_downstream_connections_total{{bind=\"bind/{port}\",gateway=\"{gateway}\",listener=\"unknown\",protocol=\"{protocol}\"}} {n}"
            );
        }
    }
    if o.family(
        "agentgateway_upstream_connect_duration_seconds",
        "Duration to establish upstream connection (seconds)",
    ) {
        for (i, transport) in ["plaintext", "tls"].iter().enumerate() {
            o.histogram(
                "agentgateway_upstream_connect_duration_seconds",
                &format!("transport=\"{transport}\""),
                &CONNECT_BUCKETS,
                &total.upstream_connect[i],
            );
        }
    }
    if o.family(
        "agentgateway_tls_handshake_duration_seconds",
        "Duration to complete inbound TLS/HTTPS handshake (seconds)",
    ) {
        o.histogram(
            "agentgateway_tls_handshake_duration_seconds",
            "",
            &CONNECT_BUCKETS,
            &total.tls_handshake,
        );
    }

    // Portcullis's own.
    if o.family("portcullis_build_info", "Portcullis build information.") {
        let _ = writeln!(o.s, "portcullis_build_info{{version=\"{version}\"}} 1");
    }
    if o.family(
        "portcullis_requests_total",
        "HTTP requests served, by route and status.",
    ) {
        let mut rows: Vec<(&str, u16, u64)> = Vec::new();
        for r in total.http.values() {
            for &(_, status, _, n) in &r.counts {
                match rows
                    .iter_mut()
                    .find(|(route, s, _)| *route == &*r.route && *s == status)
                {
                    Some((.., k)) => *k += n,
                    None => rows.push((&r.route, status, n)),
                }
            }
        }
        rows.sort();
        for (route, status, n) in rows {
            let _ = writeln!(
                o.s,
                "portcullis_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape_label(route)
            );
        }
    }
    if o.family(
        "portcullis_request_duration_seconds",
        "Time from request head to response end.",
    ) {
        o.histogram(
            "portcullis_request_duration_seconds",
            "",
            &LATENCY_BUCKETS,
            &total.latency,
        );
    }
    if o.family(
        "portcullis_refused_total",
        "Requests refused by a protection limit, by reason.",
    ) {
        for why in Refused::ALL {
            let _ = writeln!(
                o.s,
                "portcullis_refused_total{{reason=\"{}\"}} {}",
                why.as_str(),
                total.refused[why as usize]
            );
        }
    }
    if o.family(
        "portcullis_rate_limited_total",
        "Requests refused by localRateLimit, by route.",
    ) {
        let mut limited: Vec<(&str, u64)> =
            total.rate_limited.iter().map(|(r, n)| (&**r, *n)).collect();
        limited.sort();
        for (route, n) in limited {
            let _ = writeln!(
                o.s,
                "portcullis_rate_limited_total{{route=\"{}\"}} {n}",
                escape_label(route)
            );
        }
    }
    if o.family(
        "portcullis_authorization_denied_total",
        "Requests and list items refused by mcpAuthorization or authorization, by route and reason.",
    ) {
        let mut denied: Vec<(&str, &[u64; Denied::ALL.len()])> =
            total.denied.iter().map(|(r, n)| (&**r, n)).collect();
        denied.sort();
        for (route, counts) in denied {
            for why in Denied::ALL {
                let _ = writeln!(
                    o.s,
                    "portcullis_authorization_denied_total{{route=\"{}\",reason=\"{}\"}} {}",
                    escape_label(route),
                    why.as_str(),
                    counts[why as usize]
                );
            }
        }
    }
    if o.family(
        "portcullis_auth_decisions_total",
        "Authentication results on routes with mcpAuthentication or jwtAuth, by result.",
    ) {
        for i in 0..AUTH_RESULTS {
            if let Some(label) = AuthResult::label(i) {
                let _ = writeln!(
                    o.s,
                    "portcullis_auth_decisions_total{{result=\"{label}\"}} {}",
                    total.auth[i]
                );
            }
        }
    }
    let c = total.cache;
    for (name, help, v) in [
        (
            "portcullis_token_cache_hits_total",
            "Requests whose token was found in a worker's verified-token cache.",
            c.hits,
        ),
        (
            "portcullis_token_cache_verifications_total",
            "Tokens verified afresh (signature checked), accepted or refused.",
            c.verifications,
        ),
        (
            "portcullis_token_cache_evictions_total",
            "Verified-token cache entries dropped to make room.",
            c.evictions,
        ),
        (
            "portcullis_token_cache_entries",
            "Verified tokens cached now, all workers.",
            c.entries,
        ),
    ] {
        if o.family(name, help) {
            let _ = writeln!(o.s, "{name} {v}");
        }
    }
    let sources = extra.control.snapshot();
    type Field = fn(&super::control::SourceStats) -> Option<f64>;
    let per_source: [(&str, &str, Field); 4] = [
        (
            "portcullis_jwks_fetches_total",
            "Fetches (or file reads) of a key set or authorization server metadata.",
            |s| Some(s.fetches as f64),
        ),
        (
            "portcullis_jwks_fetch_failures_total",
            "Of those, the ones that failed (the last good set is kept).",
            |s| Some(s.failures as f64),
        ),
        (
            "portcullis_jwks_last_success_timestamp_seconds",
            "When a fetch of the source last succeeded (Unix time).",
            |s| s.last_success,
        ),
        (
            "portcullis_jwks_keys",
            "Keys in the source's published key set.",
            |s| (s.kind == "jwks").then_some(s.keys as f64),
        ),
    ];
    for (name, help, field) in per_source {
        if o.family(name, help) {
            for (id, st) in &sources {
                if let Some(v) = field(st) {
                    let _ = writeln!(
                        o.s,
                        "{name}{{source=\"{}\",kind=\"{}\"}} {v}",
                        escape_label(id),
                        st.kind
                    );
                }
            }
        }
    }
    if o.family(
        "portcullis_mcp_request_duration_seconds",
        "MCP requests relayed, by route, server (target) and method: time until the answer.",
    ) {
        let mut lat: Vec<_> = total.mcp_latency.values().collect();
        lat.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, h) in lat {
            o.histogram(
                "portcullis_mcp_request_duration_seconds",
                labels,
                &LATENCY_BUCKETS,
                h,
            );
        }
    }
    if o.family(
        "portcullis_mcp_sessions",
        "MCP sessions open (2025 revisions), all workers.",
    ) {
        let _ = writeln!(o.s, "portcullis_mcp_sessions {}", total.sessions);
    }
    for (i, (name, help)) in [
        (
            "portcullis_peer_forwarded_total",
            "Requests for an MCP session another replica owns, forwarded to it.",
        ),
        (
            "portcullis_peer_received_total",
            "Requests another replica forwarded here (on the peer listener).",
        ),
        (
            "portcullis_peer_owner_gone_total",
            "Requests for another replica's MCP session answered 404: that replica did not answer.",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        if o.family(name, help) {
            let _ = writeln!(o.s, "{name} {}", total.peer[i]);
        }
    }
    if o.family(
        "portcullis_stdio_processes",
        "MCP server processes (stdio targets) running.",
    ) {
        let _ = writeln!(o.s, "portcullis_stdio_processes {}", extra.stdio_processes);
    }
    if o.family(
        "portcullis_open_connections",
        "Downstream connections open, per worker.",
    ) {
        for (i, w) in workers.iter().enumerate() {
            let _ = writeln!(
                o.s,
                "portcullis_open_connections{{worker=\"{i}\"}} {}",
                w.open_connections
            );
        }
    }
    if o.family(
        "portcullis_connections_accepted_total",
        "Downstream connections accepted, per worker.",
    ) {
        for (i, w) in workers.iter().enumerate() {
            let _ = writeln!(
                o.s,
                "portcullis_connections_accepted_total{{worker=\"{i}\"}} {}",
                w.accepted_connections
            );
        }
    }
    if o.family(
        "portcullis_trace_spans_total",
        "Spans of sampled requests (config.tracing): exported, failed to export, or dropped with the exporter's queue full.",
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let e = &crate::otel::export::STATS;
        for (outcome, n) in [
            ("exported", e.exported.load(Relaxed)),
            ("failed", e.failed.load(Relaxed)),
            ("dropped", e.dropped.load(Relaxed)),
        ] {
            let _ = writeln!(o.s, "portcullis_trace_spans_total{{outcome=\"{outcome}\"}} {n}");
        }
    }
    o.s
}
