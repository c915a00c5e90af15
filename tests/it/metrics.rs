//! `/metrics` after known traffic: agentgateway's series with its labels, Portcullis's own
//! (authentication results, token cache, key sets, MCP calls, sessions, stdio processes),
//! `config.metrics.remove`, and every series the Grafana dashboard in `deploy/` queries.
use crate::both_drivers;
use crate::harness::*;
use crate::mcp::{mini_server, Mcp};
use crate::tokens::*;

const ISS: &str = "https://idp.test";
const AUD: &str = "api";

fn config(key: &TestKey, upstream: u16) -> String {
    format!(
        "{CONFIG_HEAD}  namespace: edge\n  gateway: gw\n  metrics: {{remove: [portcullis_connections_accepted_total]}}\nbinds:\n- port: {{PORT}}\n  listeners:\n  - name: main\n    routes:\n    - name: api\n      matches: [{{path: {{pathPrefix: /api}}}}]\n      policies:\n        jwtAuth:\n          mode: strict\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n        authorization:\n          rules: ['request.path != \"/api/forbidden\"']\n      backends: [{{host: '127.0.0.1:{upstream}'}}]\n    - name: limited\n      matches: [{{path: {{pathPrefix: /limited}}}}]\n      policies:\n        localRateLimit: [{{maxTokens: 1, tokensPerFill: 1, fillInterval: 1h}}]\n      backends: [{{host: '127.0.0.1:{upstream}'}}]\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{}']}}\n",
        jwks(&[key]),
        mini_server()
    )
}

/// The value of the sample whose line starts with `prefix` (labels included) and contains
/// every one of `having`.
fn sample(text: &str, prefix: &str, having: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(prefix) && having.iter().all(|h| l.contains(h)))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

both_drivers!(metrics_after_known_traffic, |d| {
    let key = TestKey::es256("k1");
    let up = Upstream::echo();
    let p = Proxy::start(&config(&key, up.port), d);
    let n = now();
    let good = key.sign(&format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","exp":{}}}"#,
        n + 600
    ));
    let expired = key.sign(&format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","exp":{}}}"#,
        n - 600
    ));
    let get = |path: &str, token: Option<&str>| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        p.req(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
        ))
        .status
    };
    assert_eq!(get("/api/a", Some(&good)), 200);
    assert_eq!(get("/api/b", Some(&good)), 200);
    assert_eq!(get("/api/a", None), 401);
    assert_eq!(get("/api/a", Some(&expired)), 401);
    assert_eq!(get("/api/forbidden", Some(&good)), 403);
    assert_eq!(get("/nowhere", None), 404);
    let limited: Vec<u16> = (0..8).map(|_| get("/limited", None)).collect();
    assert!(limited.contains(&429), "{limited:?}");
    let mut mcp = Mcp::new(p.addr());
    assert_eq!(mcp.initialize().status, 200);
    mcp.tool("echo", r#"{"message":"hi"}"#);
    mcp.call("tools/list", "{}");

    let m = p.metrics();
    let scope = "bind=\"bind/";
    let api = "gateway=\"edge/gw\",listener=\"main\",route=\"default/api\",route_rule=\"unknown\"";
    let ok = sample(
        &m,
        "agentgateway_requests_total{backend=\"127.0.0.1:",
        &[
            api,
            "method=\"GET\",status=\"200\",reason=\"Upstream\"",
            "protocol=\"http\"",
        ],
    );
    assert_eq!(ok, Some(2.0), "{m}");
    let jwt = sample(
        &m,
        "agentgateway_requests_total{",
        &[api, "status=\"401\",reason=\"JwtAuth\""],
    );
    assert_eq!(jwt, Some(2.0), "{m}");
    let authz = sample(
        &m,
        "agentgateway_requests_total{",
        &[api, "status=\"403\",reason=\"Authorization\""],
    );
    assert_eq!(authz, Some(1.0), "{m}");
    let lost = sample(
        &m,
        "agentgateway_requests_total{",
        &["route=\"unknown\"", "status=\"404\",reason=\"NotFound\""],
    );
    assert_eq!(lost, Some(1.0), "{m}");
    let limited = sample(
        &m,
        "agentgateway_requests_total{",
        &["default/limited", "status=\"429\",reason=\"RateLimit\""],
    );
    assert!(limited.is_some_and(|n| n >= 1.0), "{m}");
    assert!(
        sample(&m, "agentgateway_request_duration_seconds_count{", &[api])
            .is_some_and(|n| n >= 5.0),
        "{m}"
    );
    let call = sample(
        &m,
        "agentgateway_mcp_requests_total{method=\"tools/call\",resource_type=\"tool\",server=\"mini\",resource=\"echo\",",
        &[scope, "route=\"default/mcp\""],
    );
    assert_eq!(call, Some(1.0), "{m}");
    let list = sample(&m, "agentgateway_mcp_requests_total{method=\"tools/list\",resource_type=\"unknown\",server=\"mini\",resource=\"unknown\"", &[]);
    assert_eq!(list, Some(1.0), "{m}");
    assert_eq!(
        sample(
            &m,
            "agentgateway_mcp_requests_total{method=\"notifications/initialized\"",
            &[]
        ),
        Some(1.0),
        "{m}"
    );
    let took = sample(
        &m,
        "portcullis_mcp_request_duration_seconds_count{route=\"mcp\",server=\"mini\",method=\"tools/call\"}",
        &[],
    );
    assert_eq!(took, Some(1.0), "{m}");
    for (result, want) in [("accepted", 3.0), ("missing", 1.0), ("expired", 1.0)] {
        let got = sample(
            &m,
            &format!("portcullis_auth_decisions_total{{result=\"{result}\"}}"),
            &[],
        );
        assert_eq!(got, Some(want), "{result}: {m}");
    }
    // The first good request verified the token; the next two found it cached (per worker, so
    // at least one hit whatever worker took them).
    let hits = sample(&m, "portcullis_token_cache_hits_total", &[]).unwrap_or(0.0);
    let verified = sample(&m, "portcullis_token_cache_verifications_total", &[]).unwrap_or(0.0);
    assert!(hits + verified >= 3.0 && verified >= 2.0, "{m}");
    assert!(
        sample(&m, "portcullis_token_cache_entries", &[]).is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "portcullis_jwks_keys{", &["kind=\"jwks\""]),
        Some(1.0),
        "{m}"
    );
    assert!(
        sample(&m, "portcullis_jwks_last_success_timestamp_seconds{", &[])
            .is_some_and(|t| t > n as f64 - 60.0),
        "{m}"
    );
    assert_eq!(sample(&m, "portcullis_mcp_sessions", &[]), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, "portcullis_stdio_processes", &[]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "portcullis_authorization_denied_total{route=\"api\",reason=\"http\"}",
            &[]
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "agentgateway_upstream_connect_duration_seconds_count{transport=\"plaintext\"}",
            &[]
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "agentgateway_downstream_connections_total{bind=\"bind/",
            &["gateway=\"edge/gw\"", "protocol=\"http\""]
        )
        .is_some_and(|n| n >= 10.0),
        "{m}"
    );
    assert!(m.contains("agentgateway_build_info{tag=\""), "{m}");
    // config.metrics.remove
    assert!(!m.contains("portcullis_connections_accepted_total"), "{m}");
    assert!(m.contains("portcullis_open_connections{"), "{m}");

    // Every series the shipped dashboard queries has samples now.
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/portcullis-dashboard.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dash).unwrap();
    let mut queried = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("agentgateway_") || word.starts_with("portcullis_") {
                    queried.push(word.to_owned());
                }
            }
        }
    }
    queried.sort();
    queried.dedup();
    assert!(queried.len() >= 15, "{queried:?}");
    for series in &queried {
        let present = m.lines().any(|l| {
            l.strip_prefix(series.as_str())
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        });
        assert!(
            present,
            "the dashboard queries {series}, which /metrics does not show:\n{m}"
        );
    }
});
