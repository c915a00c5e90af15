//! CORS: preflights answered locally before anything else, headers on actual answers and on the
//! errors the proxy generates itself.
use crate::both_drivers;
use crate::harness::*;

fn config() -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: direct\n      matches:\n      - path: {{pathPrefix: /d}}\n      policies:\n        cors:\n          allowOrigins: ['https://app.example.com', 'https://*.corp.example']\n          allowMethods: [GET, POST]\n          allowHeaders: [content-type, mcp-protocol-version]\n          exposeHeaders: [mcp-session-id]\n          allowCredentials: true\n          maxAge: 10m\n        directResponse: {{body: hello, status: 200}}\n    - name: broken-upstream\n      matches:\n      - path: {{pathPrefix: /up}}\n      policies:\n        cors:\n          allowOrigins: ['*']\n      backends:\n      - host: 127.0.0.1:{{DEAD}}\n"
    )
}

fn dead_port() -> String {
    // A port nothing listens on: bind, note, close.
    free_port().to_string()
}

both_drivers!(preflight_allowed, |d| {
    let p = Proxy::start_with(&config(), d, &[("DEAD", dead_port())], &[]);
    let r = p.req("OPTIONS /d/x HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let methods = r.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    assert!(r
        .header("access-control-allow-headers")
        .unwrap()
        .contains("mcp-protocol-version"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r
        .header("vary")
        .unwrap()
        .to_ascii_lowercase()
        .contains("origin"));
    assert!(
        r.body.is_empty(),
        "preflight is answered locally, not by the direct response"
    );
});

both_drivers!(preflight_wildcard_subdomain_and_rejected_origin, |d| {
    let p = Proxy::start_with(&config(), d, &[("DEAD", dead_port())], &[]);
    let ok = p.req("OPTIONS /d HTTP/1.1\r\nHost: h\r\nOrigin: https://team.corp.example\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n");
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://team.corp.example")
    );
    let bad = p.req("OPTIONS /d HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n");
    assert_eq!(bad.status, 200);
    assert_eq!(bad.header("access-control-allow-origin"), None);
});

both_drivers!(actual_request_gets_cors_headers, |d| {
    let p = Proxy::start_with(&config(), d, &[("DEAD", dead_port())], &[]);
    let r = p.req("GET /d HTTP/1.1\r\nHost: h\r\nOrigin: https://app.example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase()
        .contains("mcp-session-id"));
    // No Origin: no CORS headers.
    let plain = p.get("/d");
    assert_eq!(plain.header("access-control-allow-origin"), None);
});

both_drivers!(errors_generated_by_the_proxy_carry_cors, |d| {
    let p = Proxy::start_with(&config(), d, &[("DEAD", dead_port())], &[]);
    let r = p.req("GET /up HTTP/1.1\r\nHost: h\r\nOrigin: https://anywhere.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.header("access-control-allow-origin").is_some(),
        "{:?}",
        r.headers
    );
});
