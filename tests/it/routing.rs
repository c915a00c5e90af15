//! Route precedence as agentgateway applies it, through the real binary.
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;

fn direct(name: &str) -> String {
    format!("      policies:\n        directResponse:\n          body: \"{name}\"\n          status: 200\n")
}

fn config() -> String {
    let mut c = String::from(CONFIG_HEAD);
    c.push_str("binds:\n- port: {PORT}\n  listeners:\n  - routes:\n");
    let routes: &[(&str, &str)] = &[
        ("catch-all", ""),
        ("prefix-api", "      matches:\n      - path: {pathPrefix: /api}\n"),
        ("prefix-api-v1", "      matches:\n      - path: {pathPrefix: /api/v1}\n"),
        ("exact-api-v1-x", "      matches:\n      - path: {exact: /api/v1/x}\n"),
        // Prefix beats regex whatever the lengths, so the regex routes get a host of their own.
        ("regex-v0105", "      hostnames: [re.test]\n      matches:\n      - path: {regex: ['/re/[0-9]+', 0]}\n"),
        ("regex-current", "      hostnames: [re.test]\n      matches:\n      - path: {regex: '/rx/[a-z]+'}\n"),
        ("post-api", "      matches:\n      - path: {pathPrefix: /api}\n        method: POST\n"),
        ("header-api", "      matches:\n      - path: {pathPrefix: /api}\n        headers:\n        - name: x-tenant\n          value: {exact: blue}\n"),
        ("header-regex", "      matches:\n      - path: {pathPrefix: /h}\n        headers:\n        - name: x-env\n          value: {regex: 'prod|stage'}\n"),
        ("query-api", "      matches:\n      - path: {pathPrefix: /q}\n        query:\n        - name: mode\n          value: {exact: fast}\n"),
        ("host-exact", "      hostnames: [api.example.com]\n      matches:\n      - path: {pathPrefix: /}\n"),
        ("host-wild", "      hostnames: ['*.example.com']\n      matches:\n      - path: {pathPrefix: /}\n"),
    ];
    for (name, matches) in routes {
        c.push_str(&format!("    - name: {name}\n{matches}{}", direct(name)));
    }
    c
}

fn route_of(p: &Proxy, method: &str, path: &str, host: &str, extra: &str) -> String {
    let r = p.req(&format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
    r.text()
}

both_drivers!(precedence_table, |d| {
    let p = Proxy::start(&config(), d);
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("GET", "/", "localhost", "", "catch-all"),
        ("GET", "/other", "localhost", "", "catch-all"),
        ("GET", "/api", "localhost", "", "prefix-api"),
        ("GET", "/api/", "localhost", "", "prefix-api"),
        ("GET", "/apix", "localhost", "", "catch-all"),
        ("GET", "/api/v1", "localhost", "", "prefix-api-v1"),
        ("GET", "/api/v1/y", "localhost", "", "prefix-api-v1"),
        ("GET", "/api/v1/x", "localhost", "", "exact-api-v1-x"),
        ("GET", "/api/v1/x/", "localhost", "", "prefix-api-v1"),
        ("GET", "/api/v1/x?y=1", "localhost", "", "exact-api-v1-x"),
        (
            "POST",
            "/api/v1/x",
            "localhost",
            "Content-Length: 0\r\n",
            "exact-api-v1-x",
        ),
        (
            "POST",
            "/api/z",
            "localhost",
            "Content-Length: 0\r\n",
            "post-api",
        ),
        (
            "GET",
            "/api/z",
            "localhost",
            "X-Tenant: blue\r\n",
            "header-api",
        ),
        (
            "GET",
            "/api/z",
            "localhost",
            "X-Tenant: red\r\n",
            "prefix-api",
        ),
        (
            "GET",
            "/h/1",
            "localhost",
            "X-Env: prod\r\n",
            "header-regex",
        ),
        (
            "GET",
            "/h/1",
            "localhost",
            "X-Env: production\r\n",
            "catch-all",
        ),
        ("GET", "/re/123", "re.test", "", "regex-v0105"),
        ("GET", "/re/123x", "re.test", "", "catch-all"),
        ("GET", "/rx/abc", "re.test", "", "regex-current"),
        ("GET", "/re/123", "localhost", "", "catch-all"),
        ("GET", "/q?mode=fast", "localhost", "", "query-api"),
        ("GET", "/q?a=1&mode=fast&b", "localhost", "", "query-api"),
        ("GET", "/q?mode=slow", "localhost", "", "catch-all"),
        ("GET", "/api", "api.example.com", "", "host-exact"),
        ("GET", "/api", "API.EXAMPLE.COM:8080", "", "host-exact"),
        ("GET", "/api", "www.example.com", "", "host-wild"),
        ("GET", "/api", "a.b.example.com", "", "host-wild"),
        ("GET", "/api", "example.com", "", "prefix-api"),
    ];
    for (m, path, host, extra, want) in cases {
        assert_eq!(
            &route_of(&p, m, path, host, extra),
            want,
            "{m} {path} host={host} {extra:?}"
        );
    }
});

both_drivers!(no_route_is_404, |d| {
    let cfg = format!("{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - matches:\n      - path: {{exact: /only}}\n{}", direct("only"));
    let p = Proxy::start(&cfg, d);
    let r = p.get("/elsewhere");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "route not found");
    assert_eq!(p.get("/only").text(), "only");
});

both_drivers!(listener_hostnames_split_one_port, |d| {
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - name: a\n    hostname: a.test\n    routes:\n    - name: ra\n{}  - name: any\n    routes:\n    - name: rany\n{}",
        direct("ra"),
        direct("rany")
    );
    let p = Proxy::start(&cfg, d);
    assert_eq!(route_of(&p, "GET", "/", "a.test", ""), "ra");
    assert_eq!(route_of(&p, "GET", "/", "b.test", ""), "rany");
});

both_drivers!(local_rate_limit_per_route, |d| {
    // 4 tokens, refilled by 4 every second, shared by the harness's 2 workers: 2 each.
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: limited\n      matches: [{{path: {{pathPrefix: /limited}}}}]\n      policies:\n        localRateLimit: [{{maxTokens: 4, tokensPerFill: 4, fillInterval: 1s}}]\n        directResponse: {{body: ok, status: 200}}\n    - name: free\n      policies:\n        directResponse: {{body: free, status: 200}}\n"
    );
    let p = Proxy::start(&cfg, d);
    let get = |path: &str| {
        p.req(&format!(
            "GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ))
    };
    let t0 = Instant::now();
    let answers: Vec<Response> = (0..12).map(|_| get("/limited")).collect();
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "too slow to test a 1 s window"
    );
    let ok = answers.iter().filter(|r| r.status == 200).count();
    // At most 2 per worker; at least one worker's 2.
    assert!((2..=4).contains(&ok), "{ok} passed");
    let refused = answers
        .iter()
        .find(|r| r.status == 429)
        .expect("some are refused");
    assert_eq!(refused.text(), "rate limit exceeded");
    assert_eq!(refused.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert!(refused.header("x-ratelimit-reset").is_some());
    assert!(refused.header("retry-after").is_some());
    let passed = answers.iter().find(|r| r.status == 200).unwrap();
    assert_eq!(passed.header("x-ratelimit-limit"), Some("2"));
    // Counted per route, and with the other refusals of protection limits.
    let n = (12 - ok) as u64;
    assert_eq!(
        p.metric("portcullis_rate_limited_total{route=\"limited\"}"),
        n
    );
    assert_eq!(
        p.metric("portcullis_refused_total{reason=\"rate_limit\"}"),
        n
    );
    // Other routes are not limited.
    for _ in 0..6 {
        assert_eq!(get("/").status, 200);
    }
    // After the fill interval, requests pass again.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get("/limited").status, 200);
});
