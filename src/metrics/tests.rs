use std::sync::Arc;
use std::time::Duration;

use super::*;

fn labels(name: &str) -> RouteLabels {
    RouteLabels::new(
        "ns/gw",
        3000,
        "listener0",
        "default",
        &Arc::from(name),
        None,
        "backend:1",
        "http",
    )
}

fn text(workers: &[WorkerMetrics]) -> String {
    let control = ControlStats::default();
    control.fetched("jwks:https://idp/keys", "jwks", Ok(2));
    control.fetched("jwks:https://idp/keys", "jwks", Err(()));
    render(
        workers,
        &Extra {
            control: &control,
            stdio_processes: 3,
        },
    )
}

#[test]
fn merges_and_renders() {
    let r1 = labels("r1");
    let r2 = labels("r\"2");
    let get = method_index("GET");
    let mut a = WorkerMetrics::default();
    a.record(&r1, get, 200, Reason::Upstream, Duration::from_micros(50));
    a.open_connections = 2;
    let mut b = WorkerMetrics::default();
    b.record(&r1, get, 200, Reason::Upstream, Duration::from_millis(2));
    b.record(
        &r2,
        method_index("BREW"),
        404,
        Reason::NotFound,
        Duration::from_secs(9),
    );
    a.rate_limited("r1");
    b.rate_limited("r1");
    b.refuse(Refused::StdioProcesses);
    b.auth(AuthResult::Invalid(
        crate::policy::mcp_auth::AuthReject::Expired,
    ));
    b.auth(AuthResult::Accepted);
    b.cache.hits = 5;
    let text = text(&[a, b]);
    for want in [
        "portcullis_rate_limited_total{route=\"r1\"} 2",
        "portcullis_refused_total{reason=\"rate_limit\"} 2",
        "portcullis_refused_total{reason=\"stdio_processes\"} 1",
        "portcullis_refused_total{reason=\"body_too_slow\"} 0",
        "portcullis_requests_total{route=\"r1\",status=\"200\"} 2",
        "route=\"r\\\"2\",status=\"404\"} 1",
        "portcullis_request_duration_seconds_bucket{le=\"0.0001\"} 1",
        "portcullis_request_duration_seconds_bucket{le=\"+Inf\"} 3",
        "portcullis_open_connections{worker=\"0\"} 2",
        "portcullis_request_duration_seconds_count 3",
        "agentgateway_requests_total{backend=\"backend:1\",protocol=\"http\",bind=\"bind/3000\",gateway=\"ns/gw\",listener=\"listener0\",route=\"default/r1\",route_rule=\"unknown\",method=\"GET\",status=\"200\",reason=\"Upstream\"} 2",
        "route=\"default/r\\\"2\",route_rule=\"unknown\",method=\"OTHER\",status=\"404\",reason=\"NotFound\"} 1",
        "agentgateway_request_duration_seconds_bucket{backend=\"backend:1\",protocol=\"http\",bind=\"bind/3000\",gateway=\"ns/gw\",listener=\"listener0\",route=\"default/r1\",route_rule=\"unknown\",le=\"0.005\"} 2",
        "portcullis_auth_decisions_total{result=\"expired\"} 1",
        "portcullis_auth_decisions_total{result=\"accepted\"} 1",
        "portcullis_token_cache_hits_total 5",
        "portcullis_jwks_fetches_total{source=\"jwks:https://idp/keys\",kind=\"jwks\"} 2",
        "portcullis_jwks_fetch_failures_total{source=\"jwks:https://idp/keys\",kind=\"jwks\"} 1",
        "portcullis_jwks_keys{source=\"jwks:https://idp/keys\",kind=\"jwks\"} 2",
        "portcullis_stdio_processes 3",
        "# TYPE agentgateway_requests counter",
        "# TYPE agentgateway_request_duration_seconds histogram",
        "agentgateway_build_info{tag=\"",
    ] {
        assert!(text.contains(want), "missing {want}\n{text}");
    }
}

#[test]
fn mcp_series_are_bounded() {
    let mut m = WorkerMetrics::default();
    let scope = "bind=\"bind/1\"";
    m.mcp_request(
        "r",
        scope,
        "tools/call",
        Some("t"),
        Some("echo"),
        Some(Duration::from_millis(1)),
    );
    m.mcp_request("r", scope, "tools/call", Some("t"), Some("echo"), None);
    m.mcp_request("r", scope, "x/invented", Some("t"), Some("zzz"), None);
    m.mcp_request(
        "r",
        scope,
        "tools/call",
        Some("t"),
        Some(&"n".repeat(500)),
        None,
    );
    for i in 0..(MAX_MCP_SERIES + 10) {
        m.mcp_request(
            "r",
            scope,
            "tools/call",
            Some("t"),
            Some(&format!("tool{i}")),
            None,
        );
    }
    assert!(m.mcp.len() <= MAX_MCP_SERIES + 1, "{}", m.mcp.len());
    let count = |method: &str, kind: &str, res: &str| {
        let want = format!(
            "method=\"{method}\",resource_type=\"{kind}\",server=\"t\",resource=\"{res}\",{scope}"
        );
        m.mcp.values().find(|(l, _)| **l == *want).map(|(_, n)| *n)
    };
    assert_eq!(count("tools/call", "tool", "echo"), Some(2));
    assert_eq!(count("other", "unknown", "unknown"), Some(1));
    assert!(count("tools/call", "tool", "overflow").is_some_and(|n| n >= 11));
    assert_eq!(m.mcp_latency.len(), 1);
}

#[test]
fn removed_families_are_not_rendered() {
    let mut m = WorkerMetrics::default();
    m.record(
        &labels("r"),
        0,
        200,
        Reason::Upstream,
        Duration::from_millis(1),
    );
    m.export = Some(Arc::new(MetricsExport {
        gateway: "/".into(),
        removed: vec!["requests".into(), "portcullis_requests_total".into()],
    }));
    let t = text(&[m]);
    assert!(!t.contains("agentgateway_requests_total"), "{t}");
    assert!(!t.contains("portcullis_requests_total"), "{t}");
    assert!(
        t.contains("agentgateway_request_duration_seconds_count"),
        "{t}"
    );
    assert!(is_known("requests") && is_known("gen_ai_client_cost") && !is_known("nope"));
}
