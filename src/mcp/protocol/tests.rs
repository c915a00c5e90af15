use super::*;

fn post(a: &str) -> bool {
    accepts_post(Some(a.as_bytes()))
}

#[test]
fn accept_as_clients_send_it() {
    assert!(post("application/json, text/event-stream")); // TS and Python SDKs
    assert!(post("text/event-stream, application/json")); // agentgateway upstream
    assert!(post("application/json;q=0.9, text/event-stream;q=0.8"));
    assert!(post("Application/JSON , TEXT/Event-Stream; charset=utf-8"));
    assert!(post("*/*"));
    assert!(post("application/*, text/*"));
    assert!(post("application/json, text/*;q=0.5"));
    assert!(!post("application/json"));
    assert!(!post("text/event-stream"));
    assert!(!post("application/json, text/event-stream;q=0"));
    assert!(!post("application/json, text/event-stream; q=0.000"));
    assert!(
        !post("*/*, text/event-stream;q=0"),
        "the specific range wins"
    );
    assert!(post("*/*;q=0, application/json, text/event-stream"));
    assert!(
        post("application/json, text/event-stream;q=junk"),
        "loose q"
    );
    assert!(!post("application/jsonx, text/event-streams"));
    assert!(!post(""));
    assert!(!accepts_post(None));
}

#[test]
fn accept_for_get() {
    assert!(accepts_sse(Some(b"text/event-stream")));
    assert!(accepts_sse(Some(b"text/*")));
    assert!(accepts_sse(Some(b"*/*")));
    assert!(!accepts_sse(Some(b"application/json")));
    assert!(!accepts_sse(Some(b"text/event-stream;q=0")));
    assert!(!accepts_sse(None));
}

#[test]
fn content_type() {
    for ok in [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/Json ;x=y",
        " application/json ",
    ] {
        assert!(is_json_content_type(Some(ok.as_bytes())), "{ok}");
    }
    for bad in [
        "text/plain",
        "application/json-seq",
        "application/jsonx",
        "application/x-json",
        "",
    ] {
        assert!(!is_json_content_type(Some(bad.as_bytes())), "{bad}");
    }
    assert!(!is_json_content_type(None));
}

#[test]
fn versions() {
    assert_eq!(
        check_version(Some(b"2025-06-18")),
        VersionCheck::Ok("2025-06-18")
    );
    assert_eq!(
        check_version(Some(b" 2025-11-25 ")),
        VersionCheck::Ok("2025-11-25")
    );
    assert_eq!(
        check_version(Some(b"2025-03-26")),
        VersionCheck::Ok("2025-03-26")
    );
    assert_eq!(check_version(None), VersionCheck::Missing);
    for bad in [
        &b"2026-07-28"[..],
        b"2024-11-05",
        b"garbage",
        b"",
        b"2025-06-18x",
        b"\xff",
    ] {
        assert_eq!(
            check_version(Some(bad)),
            VersionCheck::Unsupported,
            "{bad:?}"
        );
    }
    assert_eq!(negotiate("2025-06-18"), "2025-06-18");
    assert_eq!(negotiate("2026-07-28"), "2025-11-25");
    assert_eq!(negotiate("2024-11-05"), "2025-11-25");
    assert_eq!(negotiate("junk"), SUPPORTED[0]);
}

#[test]
fn unsupported_version_body() {
    let body = unsupported_version_error("2026-07-28", Some("1"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(v["error"]["code"], -32022);
    assert_eq!(v["error"]["data"]["requested"], "2026-07-28");
    assert_eq!(
        v["error"]["data"]["supported"],
        serde_json::json!(SUPPORTED)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&unsupported_version_error("a\"b", None)).unwrap();
    assert_eq!(
        (v["id"].is_null(), &v["error"]["data"]["requested"]),
        (true, &"a\"b".into())
    );
}

fn origin(o: &str, host: &str, list: &[&str]) -> bool {
    let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    origin_allowed(o.as_bytes(), host.as_bytes(), &list)
}

#[test]
fn origins() {
    assert!(origin("http://localhost:8080", "localhost:8080", &[]));
    assert!(
        origin("https://LocalHost:8080", "localhost:8080", &[]),
        "scheme-agnostic, any case"
    );
    assert!(
        !origin("http://localhost:8080", "127.0.0.1:8080", &[]),
        "different host names"
    );
    assert!(
        !origin("http://localhost:9090", "localhost:8080", &[]),
        "different port"
    );
    assert!(origin("https://mcp.example.com", "mcp.example.com", &[]));
    assert!(origin("http://mcp.example.com:80", "mcp.example.com", &[]));
    assert!(origin(
        "https://mcp.example.com",
        "mcp.example.com:443",
        &[]
    ));
    assert!(!origin(
        "http://mcp.example.com",
        "mcp.example.com:443",
        &[]
    ));
    assert!(!origin(
        "http://mcp.example.com:8443",
        "mcp.example.com",
        &[]
    ));
    assert!(origin("http://[::1]:3000", "[::1]:3000", &[]));
    assert!(!origin("https://evil.example", "localhost:8080", &[]));
    assert!(!origin("null", "localhost:8080", &[]));
    assert!(
        !origin("localhost:8080", "localhost:8080", &[]),
        "not an origin"
    );
    // listed
    assert!(origin("https://evil.example", "localhost:8080", &["*"]));
    assert!(origin(
        "https://app.example.com",
        "localhost",
        &["https://App.Example.com"]
    ));
    assert!(origin(
        "https://a.b.example.com",
        "x",
        &["https://*.example.com"]
    ));
    assert!(!origin(
        "https://example.com",
        "x",
        &["https://*.example.com"]
    ));
    assert!(!origin(
        "http://a.example.com",
        "x",
        &["https://*.example.com"]
    ));
    assert!(!origin(
        "https://a.example.com:8443",
        "x",
        &["https://*.example.com"]
    ));
    assert!(origin(
        "https://a.example.com:8443",
        "x",
        &["https://*.example.com:8443"]
    ));
    assert!(!origin(
        "https://aexample.com",
        "x",
        &["https://*.example.com"]
    ));
    assert!(!origin(
        "https://a.example.com.evil",
        "x",
        &["https://*.example.com"]
    ));
}

#[test]
fn hosts() {
    for h in [
        "localhost",
        "localhost:8080",
        "127.0.0.1",
        "127.0.0.1:1",
        "127.1.2.3:80",
        "[::1]",
        "[::1]:3000",
        "LOCALHOST",
    ] {
        assert!(is_loopback_host(h.as_bytes()), "{h}");
    }
    for h in [
        "evil.example.com",
        "localhost.evil.com",
        "128.0.0.1",
        "",
        "[::2]:1",
        "localhost:abc",
    ] {
        assert!(!is_loopback_host(h.as_bytes()), "{h}");
    }
    // The shortcut for common loopback names answers as the general parse does.
    for name in [
        "127.0.0.1",
        "localhost",
        "LocalHost",
        "[::1]",
        "127.0.0.10",
        "localhos",
    ] {
        for tail in [
            "",
            ":",
            ":0",
            ":1",
            ":80",
            ":65535",
            ":65536",
            ":99999",
            ":123456",
            ":+80",
            ":8a",
            ":-1",
            "0",
            ".evil.com",
            "@evil",
            "/",
            " ",
            "\t",
            "]",
            ":80:80",
            "\r",
            ":080",
        ] {
            let h = format!("{name}{tail}");
            let b = h.as_bytes();
            assert_eq!(is_loopback_host(b), loopback_by_parse(trim(b)), "{h:?}");
        }
    }
    let list = vec!["mcp.example.com".to_string(), "*.corp.example".to_string()];
    assert!(host_allowed(b"MCP.example.com:8443", &list));
    assert!(host_allowed(b"a.corp.example", &list));
    assert!(!host_allowed(b"corp.example", &list));
    assert!(!host_allowed(b"evil.example.com", &list));
}
