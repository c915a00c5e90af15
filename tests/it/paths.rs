//! Request paths are normalised before routing and forwarded normalised: dot-segments (plain or
//! percent-encoded) cannot walk from an open prefix route into a protected one, and encoded
//! separators, backslashes, `%00` and bad escapes are refused with 400.
use std::io::{BufReader, Read, Write};
use std::sync::atomic::Ordering;

use crate::both_drivers;
use crate::harness::*;
use crate::tokens::*;

const ISS: &str = "http://idp.test/realms/mcp";
const AUD: &str = "mcp_proxy";

/// `/api` needs a token and has its own upstream; `/echo` is open; `/old` is open and rewritten
/// to `/new`. Both open routes share the `UP` echo upstream.
fn config(key: &TestKey) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: api\n      matches: [{{path: {{pathPrefix: /api}}}}]\n      policies:\n        jwtAuth:\n          mode: strict\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n      backends: [{{host: '127.0.0.1:{{API}}'}}]\n    - name: old\n      matches: [{{path: {{pathPrefix: /old}}}}]\n      policies:\n        urlRewrite:\n          path: {{prefix: /new}}\n      backends: [{{host: '127.0.0.1:{{UP}}'}}]\n    - name: echo\n      matches: [{{path: {{pathPrefix: /echo}}}}]\n      backends: [{{host: '127.0.0.1:{{UP}}'}}]\n",
        jwks(&[key])
    )
}

fn get(p: &Proxy, target: &str, token: Option<&str>) -> Response {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    p.req(&format!(
        "GET {target} HTTP/1.1\r\nHost: h\r\n{auth}Connection: close\r\n\r\n"
    ))
}

/// The request line the echo upstream saw, from its answer.
fn seen(r: &Response) -> String {
    r.text().lines().next().unwrap_or("").to_owned()
}

both_drivers!(dot_segments_cannot_leave_an_open_prefix_route, |d| {
    let key = TestKey::es256("k1");
    let (up, api) = (Upstream::echo(), Upstream::echo());
    let p = Proxy::start_with(
        &config(&key),
        d,
        &[("UP", up.port.to_string()), ("API", api.port.to_string())],
        &[],
    );
    let attacks = [
        "/echo/../api/secret",
        "/echo/%2e%2e/api/secret",
        "/echo/%2E%2E/api/secret",
        "/echo/.%2e/api/secret",
        "/echo/%2e./api/secret",
        "/echo/x/../../api/secret",
        "/./api/secret",
        "/old/../api/secret",
        "http://h/echo/../api/secret",
    ];
    for a in attacks {
        let r = get(&p, a, None);
        assert_eq!(
            r.status,
            401,
            "{a} must reach the protected /api route: {}",
            r.text()
        );
        assert!(r.header("www-authenticate").is_some(), "{a}");
    }
    assert_eq!(
        up.requests.load(Ordering::Relaxed),
        0,
        "the open routes' upstream saw none of them"
    );
    assert_eq!(api.requests.load(Ordering::Relaxed), 0);

    // With a token the protected upstream receives the normalised path, query untouched.
    let token = key.sign(&claims(ISS, AUD, "gina"));
    let r = get(&p, "/echo/%2e%2e/api/./secret?q=/../x%2e", Some(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(seen(&r), "GET /api/secret?q=/../x%2e");
});

both_drivers!(open_routes_get_the_normalised_path, |d| {
    let key = TestKey::es256("k1");
    let (up, api) = (Upstream::echo(), Upstream::echo());
    let p = Proxy::start_with(
        &config(&key),
        d,
        &[("UP", up.port.to_string()), ("API", api.port.to_string())],
        &[],
    );
    for (sent, forwarded) in [
        ("/echo/a/./b/../c", "GET /echo/a/c"),
        ("/echo/%7Euser/%3a%41", "GET /echo/~user/%3AA"),
        ("/echo/a/..", "GET /echo/"),
        ("/echo//x", "GET /echo//x"),
        ("/echo/.well-known/x", "GET /echo/.well-known/x"),
        ("/api/../echo/x", "GET /echo/x"),
        // urlRewrite's prefix replacement sees the normalised path.
        ("/old/a/../b?k=v", "GET /new/b?k=v"),
        ("/x/../old", "GET /new"),
    ] {
        let r = get(&p, sent, None);
        assert_eq!(r.status, 200, "{sent}: {}", r.text());
        assert_eq!(seen(&r), forwarded, "{sent}");
    }
    assert_eq!(api.requests.load(Ordering::Relaxed), 0);
});

both_drivers!(encoded_separators_and_bad_escapes_are_refused, |d| {
    let key = TestKey::es256("k1");
    let (up, api) = (Upstream::echo(), Upstream::echo());
    let p = Proxy::start_with(
        &config(&key),
        d,
        &[("UP", up.port.to_string()), ("API", api.port.to_string())],
        &[],
    );
    for (target, reason) in [
        ("/echo/..%2Fapi/secret", "(%2F, %5C)"),
        ("/echo%2f..%2fapi%2fsecret", "(%2F, %5C)"),
        ("/echo/..%5Capi%5Csecret", "(%2F, %5C)"),
        ("/echo\\..\\api\\secret", "'\\' in the request path"),
        ("/echo/%00/x", "%00"),
        ("/echo/%zz", "percent-encoding"),
        ("/echo/%2", "percent-encoding"),
        ("/echo/..;/api/secret", "'..;'"),
        ("/echo/..;jsessionid=x/api/secret", "'..;'"),
        ("/echo/%2e%2e;/api/secret", "'..;'"),
        ("/echo/.;/x", "'..;'"),
    ] {
        let mut s = connect(p.addr());
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
        assert!(resp.text().contains(reason), "{target}: {}", resp.text());
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{target}: the connection closes");
    }
    assert_eq!(up.requests.load(Ordering::Relaxed), 0);
    assert_eq!(api.requests.load(Ordering::Relaxed), 0);
});
