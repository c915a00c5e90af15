use std::time::Duration;

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn spec(origins: &[&str]) -> CorsSpec {
    CorsSpec {
        allow_origins: s(origins),
        ..CorsSpec::default()
    }
}

fn h<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
    httparse::Header {
        name,
        value: value.as_bytes(),
    }
}

fn preflight(cors: &Cors, headers: &[httparse::Header<'_>]) -> String {
    let mut out = Vec::new();
    cors.write_preflight(headers, &mut out);
    String::from_utf8(out).unwrap()
}

fn actual(cors: &Cors, origin: Option<&str>) -> String {
    let mut out = Vec::new();
    cors.write_actual(origin.map(str::as_bytes), &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn is_preflight_rules() {
    let full = [
        h("Origin", "https://a.com"),
        h("access-control-request-method", "PUT"),
    ];
    assert!(Cors::is_preflight("OPTIONS", &full));
    assert!(!Cors::is_preflight("GET", &full));
    assert!(!Cors::is_preflight("OPTIONS", &full[..1]));
    assert!(!Cors::is_preflight("OPTIONS", &full[1..]));
    let empty = [
        h("origin", "https://a.com"),
        h("Access-Control-Request-Method", ""),
    ];
    assert!(!Cors::is_preflight("OPTIONS", &empty));
}

#[test]
fn preflight_allowed_list() {
    let cors = Cors::compile(&CorsSpec {
        allow_methods: s(&["GET", "POST"]),
        allow_headers: s(&["content-type", "mcp-session-id"]),
        max_age: Some(Duration::from_millis(3_600_900)),
        ..spec(&["https://app.example.com"])
    })
    .unwrap();
    let req = [
        h("origin", "https://app.example.com"),
        h("access-control-request-method", "POST"),
    ];
    assert_eq!(
        preflight(&cors, &req),
        "Access-Control-Allow-Origin: https://app.example.com\r\n\
         Vary: Origin\r\n\
         Access-Control-Allow-Methods: GET, POST\r\n\
         Access-Control-Allow-Headers: content-type, mcp-session-id\r\n\
         Access-Control-Max-Age: 3600\r\n"
    );
}

#[test]
fn preflight_not_allowed_writes_nothing() {
    let cors = Cors::compile(&spec(&["https://app.example.com"])).unwrap();
    let req = [
        h("origin", "https://evil.com"),
        h("access-control-request-method", "GET"),
    ];
    assert_eq!(preflight(&cors, &req), "");
    assert_eq!(preflight(&cors, &req[1..]), "");
    // Empty allowOrigins allows nothing.
    let none = Cors::compile(&CorsSpec::default()).unwrap();
    assert_eq!(preflight(&none, &req), "");
    assert_eq!(actual(&none, Some("https://evil.com")), "");
}

#[test]
fn preflight_wildcards_without_credentials() {
    let cors = Cors::compile(&CorsSpec {
        allow_methods: s(&["*"]),
        allow_headers: s(&["*"]),
        ..spec(&["*"])
    })
    .unwrap();
    let req = [
        h("origin", "null"),
        h("access-control-request-method", " PUT "),
        h("access-control-request-headers", "x-a,  x-b ,,bad header"),
    ];
    assert_eq!(
        preflight(&cors, &req),
        "Access-Control-Allow-Origin: *\r\n\
         Vary: Access-Control-Request-Method, Access-Control-Request-Headers\r\n\
         Access-Control-Allow-Methods: PUT\r\n\
         Access-Control-Allow-Headers: x-a, x-b\r\n"
    );
    // Nothing to echo: `*`.
    let bare = [
        h("origin", "https://x.io"),
        h("access-control-request-method", "GET"),
    ];
    let out = preflight(&cors, &bare);
    assert!(
        out.contains("Access-Control-Allow-Methods: GET\r\n"),
        "{out}"
    );
    assert!(out.contains("Access-Control-Allow-Headers: *\r\n"), "{out}");
}

#[test]
fn preflight_wildcards_with_credentials() {
    let cors = Cors::compile(&CorsSpec {
        allow_credentials: true,
        allow_methods: s(&["*"]),
        allow_headers: s(&["*"]),
        expose_headers: s(&["Mcp-Session-Id"]),
        ..spec(&["*"])
    })
    .unwrap();
    let req = [
        h("Origin", "https://app.example.com"),
        h("Access-Control-Request-Method", "DELETE"),
    ];
    assert_eq!(
        preflight(&cors, &req),
        "Access-Control-Allow-Origin: https://app.example.com\r\n\
         Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n\
         Access-Control-Allow-Methods: DELETE\r\n\
         Access-Control-Allow-Credentials: true\r\n\
         Access-Control-Expose-Headers: Mcp-Session-Id\r\n"
    );
    assert_eq!(cors.expose_headers(), &s(&["Mcp-Session-Id"])[..]);
}

#[test]
fn pattern_origins() {
    let cors = Cors::compile(&spec(&["https://*.example.com"])).unwrap();
    assert!(cors.allows(b"https://a.example.com"));
    assert!(cors.allows(b"https://a.b.example.com"));
    assert!(cors.allows(b"HTTPS://A.Example.COM"));
    assert!(cors.allows(b"https://a.example.com:443"));
    assert!(!cors.allows(b"https://example.com"));
    assert!(!cors.allows(b"http://a.example.com"));
    assert!(!cors.allows(b"https://a.example.com:8443"));
    assert!(!cors.allows(b"https://a.example.com.evil.com"));
    assert!(!cors.allows(b"https://a.example.com/"));
    assert!(!cors.allows(b"https://*.example.com"));
    assert!(!cors.allows(b"null"));
    let any_https = Cors::compile(&spec(&["https://*"])).unwrap();
    assert!(any_https.allows(b"https://internal"));
    assert!(!any_https.allows(b"http://internal"));
}

#[test]
fn default_port_normalisation() {
    let cors = Cors::compile(&spec(&[
        "http://a.com:80",
        "https://b.com",
        "http://c.com:8080",
    ]))
    .unwrap();
    assert!(cors.allows(b"http://a.com"));
    assert!(cors.allows(b"http://a.com:80"));
    assert!(cors.allows(b"https://b.com:443"));
    assert!(!cors.allows(b"https://b.com:80"));
    assert!(cors.allows(b"http://c.com:8080"));
    assert!(!cors.allows(b"http://c.com"));
    let v6 = Cors::compile(&spec(&["http://[::1]:3000"])).unwrap();
    assert!(v6.allows(b"http://[::1]:3000"));
    assert!(!v6.allows(b"http://[::1]"));
}

#[test]
fn actual_responses_and_vary() {
    let list = Cors::compile(&CorsSpec {
        allow_credentials: true,
        expose_headers: s(&["Mcp-Session-Id", "X-Trace"]),
        ..spec(&["https://app.example.com"])
    })
    .unwrap();
    assert_eq!(
        actual(&list, Some("https://app.example.com")),
        "Access-Control-Allow-Origin: https://app.example.com\r\n\
         Vary: Origin\r\n\
         Access-Control-Allow-Credentials: true\r\n\
         Access-Control-Expose-Headers: Mcp-Session-Id, X-Trace\r\n"
    );
    assert_eq!(actual(&list, Some("https://other.com")), "");
    assert_eq!(actual(&list, None), "");

    let star = Cors::compile(&spec(&["*"])).unwrap();
    assert_eq!(
        actual(&star, Some("https://x.io")),
        "Access-Control-Allow-Origin: *\r\n"
    );
    let star_creds = Cors::compile(&CorsSpec {
        allow_credentials: true,
        ..spec(&["*"])
    })
    .unwrap();
    assert_eq!(
        actual(&star_creds, Some("https://x.io")),
        "Access-Control-Allow-Origin: https://x.io\r\nVary: Origin\r\n\
         Access-Control-Allow-Credentials: true\r\n"
    );
}

#[test]
fn compile_errors_name_the_value() {
    let bad = [
        CorsSpec {
            allow_headers: s(&["ok", "bad header"]),
            ..CorsSpec::default()
        },
        CorsSpec {
            allow_methods: s(&["GE T"]),
            ..CorsSpec::default()
        },
        CorsSpec {
            expose_headers: s(&["x(y)"]),
            ..CorsSpec::default()
        },
        spec(&["ftp://a.com"]),
        spec(&["https://a.com/path"]),
        spec(&["https://a.com:0"]),
        spec(&["a.com"]),
    ];
    let names = [
        "bad header",
        "GE T",
        "x(y)",
        "ftp://a.com",
        "https://a.com/path",
        "https://a.com:0",
        "a.com",
    ];
    for (spec, name) in bad.iter().zip(names) {
        let err = Cors::compile(spec).unwrap_err();
        assert!(err.contains(name), "{err} should name {name}");
    }
}
