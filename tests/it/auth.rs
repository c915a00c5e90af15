//! mcpAuthentication and jwtAuth through the real binary: challenges, validation outcomes,
//! discovery documents, token stripping, JWKS fetching, rotation and outages.
use std::io::{BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;
use crate::tokens::*;

const ISS: &str = "http://idp.test/realms/mcp";
const AUD: &str = "mcp_proxy";

/// A JWKS endpoint whose answer the test controls: (status, body).
pub struct JwksServer {
    pub up: Upstream,
    pub state: Arc<Mutex<(u16, String)>>,
}

impl JwksServer {
    pub fn start(body: String) -> JwksServer {
        let state = Arc::new(Mutex::new((200u16, body)));
        let st = state.clone();
        let up = Upstream::start(move |s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            while let Ok(Some(_)) = read_request(&mut r) {
                let (status, body) = st.lock().unwrap().clone();
                let head = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncache-control: max-age=3600\r\ncontent-length: {}\r\n\r\n", body.len());
                if w.write_all(head.as_bytes()).is_err() || w.write_all(body.as_bytes()).is_err() {
                    break;
                }
            }
        });
        JwksServer { up, state }
    }
    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/realms/mcp/protocol/openid-connect/certs",
            self.up.port
        )
    }
    pub fn set(&self, status: u16, body: String) {
        *self.state.lock().unwrap() = (status, body);
    }
}

fn mcp_config(jwks: &str, extra_policies: &str) -> String {
    format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches:\n      - path: {{exact: /hello/mcp}}\n      policies:\n        cors:\n          allowOrigins: ['*']\n          allowHeaders: [mcp-protocol-version, content-type, authorization]\n        mcpAuthentication:\n          issuer: {ISS}\n          {jwks}\n          audience: {AUD}\n          resourceMetadata:\n            resource: http://localhost:{{PORT}}/hello/mcp\n            scopesSupported: [profile, offline_access, openid]\n            bearerMethodsSupported: [header]\n{extra_policies}      backends:\n      - host: 127.0.0.1:{{UP}}\n"
    )
}

/// The MCP route of [`mcp_config`] with one ES256 key (inline JWKS) in front of an echo
/// upstream, started with `envs`.
fn mcp_proxy_with_env(d: Driver, envs: &[(&str, &str)]) -> (TestKey, Upstream, Proxy) {
    let key = TestKey::es256("k1");
    let up = Upstream::echo();
    let cfg = mcp_config(&format!("jwks: '{}'", jwks(&[&key])), "");
    let p = Proxy::start_env(&cfg, d, &[("UP", up.port.to_string())], &[], envs);
    (key, up, p)
}

fn post(p: &Proxy, token: Option<&str>) -> Response {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    p.req(&format!(
        "POST /hello/mcp HTTP/1.1\r\nHost: localhost:{}\r\n{auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        p.port
    ))
}

both_drivers!(challenges_validation_and_stripping, |d| {
    let key = TestKey::es256("k1");
    let other = TestKey::es256("k1");
    let up = Upstream::echo();
    let jwks = format!("jwks: '{}'", jwks(&[&key]));
    let p = Proxy::start_with(
        &mcp_config(&jwks, ""),
        d,
        &[("UP", up.port.to_string())],
        &[],
    );
    let prm_url = format!(
        "http://localhost:{}/.well-known/oauth-protected-resource/hello/mcp",
        p.port
    );

    // No token: 401 with the metadata URL and scopes (never offline_access), agentgateway body.
    let r = post(&p, None);
    assert_eq!(r.status, 401);
    let wa = r.header("www-authenticate").unwrap().to_owned();
    assert!(wa.starts_with("Bearer "), "{wa}");
    assert!(
        wa.contains(&format!("resource_metadata=\"{prm_url}\"")),
        "{wa}"
    );
    assert!(wa.contains("scope=\"profile openid\""), "{wa}");
    assert!(
        !wa.contains("error="),
        "no error code without a token: {wa}"
    );
    assert_eq!(
        r.text(),
        r#"{"error":"unauthorized","error_description":"JWT token required"}"#
    );

    // Valid token: reaches the upstream without the Authorization header.
    let good = key.sign(&claims(ISS, AUD, "alice"));
    let r = post(&p, Some(&good));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        !r.text().to_ascii_lowercase().contains("authorization"),
        "token must not be forwarded: {}",
        r.text()
    );
    assert!(r.text().starts_with("POST /hello/mcp\n"));

    // Invalid tokens: 401 invalid_token, generic description, never the token.
    let n = now();
    let bad = [
        ("other key", other.sign(&claims(ISS, AUD, "alice"))),
        (
            "expired",
            key.sign(&format!(
                r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"a","exp":{}}}"#,
                n - 3600
            )),
        ),
        (
            "wrong audience",
            key.sign(&claims(ISS, "someone-else", "alice")),
        ),
        (
            "wrong issuer",
            key.sign(&claims("http://idp.test/realms/mcp/", AUD, "alice")),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","kid":"k1"}"#),
                b64(claims(ISS, AUD, "a").as_bytes())
            ),
        ),
    ];
    for (what, t) in &bad {
        let r = post(&p, Some(t));
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let wa = r.header("www-authenticate").unwrap();
        assert!(wa.contains("error=\"invalid_token\""), "{what}: {wa}");
        assert!(wa.contains(&prm_url), "{what}: {wa}");
        assert!(
            !r.text().contains(t.as_str()) && !wa.contains(t.as_str()),
            "{what}: the token is never echoed"
        );
    }
    // A token in the query string is not a credential.
    let r = p.req(&format!("POST /hello/mcp?access_token={good} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 401);
    assert!(!r.header("www-authenticate").unwrap().contains("error="));
    // Scheme is case-insensitive.
    let r = p.req(&format!("POST /hello/mcp HTTP/1.1\r\nHost: h\r\nAuthorization: bearer {good}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 200);
    let log = p.log();
    assert!(!log.contains(&good), "tokens are never logged");
});

both_drivers!(cors_before_auth_and_on_401, |d| {
    let key = TestKey::eddsa("ed");
    let up = Upstream::echo();
    let p = Proxy::start_with(
        &mcp_config(&format!("jwks: '{}'", jwks(&[&key])), ""),
        d,
        &[("UP", up.port.to_string())],
        &[],
    );
    let pre = p.req("OPTIONS /hello/mcp HTTP/1.1\r\nHost: h\r\nOrigin: http://app.test\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization\r\nConnection: close\r\n\r\n");
    assert_eq!(pre.status, 200, "preflight needs no token");
    assert!(pre.header("access-control-allow-origin").is_some());
    let r = p.req("POST /hello/mcp HTTP/1.1\r\nHost: h\r\nOrigin: http://app.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 401);
    assert!(
        r.header("access-control-allow-origin").is_some(),
        "{:?}",
        r.headers
    );
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase()
        .contains("www-authenticate"));
    // EdDSA tokens verify.
    assert_eq!(
        post(&p, Some(&key.sign(&claims(ISS, AUD, "bob")))).status,
        200
    );
});

both_drivers!(protected_resource_metadata_is_served, |d| {
    let key = TestKey::es256("k1");
    let up = Upstream::echo();
    let p = Proxy::start_with(
        &mcp_config(&format!("jwks: '{}'", jwks(&[&key])), ""),
        d,
        &[("UP", up.port.to_string())],
        &[],
    );
    for path in [
        "/.well-known/oauth-protected-resource/hello/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = p.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            doc["resource"],
            format!("http://localhost:{}/hello/mcp", p.port)
        );
        assert_eq!(doc["authorization_servers"], serde_json::json!([ISS]));
        assert!(doc["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "openid"));
        assert_eq!(
            doc["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
        assert!(doc.get("mcp_protocol_version").is_some() && doc.get("resource_type").is_some());
    }
    let head = p.req("HEAD /.well-known/oauth-protected-resource/hello/mcp HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    let opt = p.req("OPTIONS /.well-known/oauth-protected-resource/hello/mcp HTTP/1.1\r\nHost: h\r\nOrigin: http://x\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n");
    assert!(opt.status == 200 || opt.status == 204);
    assert_eq!(opt.header("access-control-allow-origin"), Some("*"));
});

both_drivers!(passthrough_keeps_the_token, |d| {
    let key = TestKey::es256("k1");
    let up = Upstream::echo();
    let cfg = mcp_config(
        &format!("jwks: '{}'", jwks(&[&key])),
        "        backendAuth:\n          passthrough: {}\n",
    );
    let p = Proxy::start_with(&cfg, d, &[("UP", up.port.to_string())], &[]);
    let t = key.sign(&claims(ISS, AUD, "carol"));
    let r = post(&p, Some(&t));
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains(&format!("authorization: Bearer {t}")),
        "{}",
        r.text()
    );
});

both_drivers!(a_malformed_bearer_credential_is_invalid_not_missing, |d| {
    let key = TestKey::es256("k1");
    let up = Upstream::echo();
    let cfg = mcp_config(&format!("jwks: '{}'", jwks(&[&key])), "");
    let p = Proxy::start_with(&cfg, d, &[("UP", up.port.to_string())], &[]);
    let good = key.sign(&claims(ISS, AUD, "carol"));
    let (head, tail) = good.split_at(20);
    for value in [
        format!("Bearer {head} {tail}"),
        format!("Bearer {head}%20{tail}"),
        format!("Bearer {head}\t{tail}"),
        "Bearer".to_owned(),
    ] {
        let r = p.req(&format!(
            "POST /hello/mcp HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: {value}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            p.port
        ));
        assert_eq!(r.status, 401, "{value:?}");
        let challenge = r.header("www-authenticate").unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{value:?}: {challenge}"
        );
    }
    // Another scheme is no bearer credential at all: the plain challenge.
    let r = p.req(&format!("POST /hello/mcp HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Basic YTpi\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", p.port));
    assert_eq!(r.status, 401);
    assert!(!r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
});

both_drivers!(failed_verifications_are_budgeted_per_address, |d| {
    let (key, _up, p) = mcp_proxy_with_env(d, &[("PORTCULLIS_AUTH_FAILURES_PER_SEC", "0.25")]);
    // A client whose token is verified (and cached by the worker of its connection).
    let cached = key.sign(&claims(ISS, AUD, "early"));
    let keep = connect(p.addr());
    let mut keep_r = BufReader::new(keep.try_clone().unwrap());
    let mut keep_w = keep;
    let mut keep_post = || {
        keep_w.write_all(format!(
            "POST /hello/mcp HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {cached}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
            p.port
        ).as_bytes()).unwrap();
        read_response(&mut keep_r, false).unwrap().status
    };
    assert_eq!(keep_post(), 200);
    // Unique tokens with bad signatures from 127.0.0.1: past the burst (50 per worker; the
    // budget is per worker, and connections spread over both), none is verified.
    let forger = TestKey::es256("k1");
    for i in 0..200 {
        let bad = forger.sign(&claims(ISS, AUD, &format!("mallory-{i}")));
        let r = post(&p, Some(&bad));
        assert_eq!(r.status, 401);
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"));
    }
    // Past the bursts of both workers (≤ 100 verified), the rest was refused unchecked.
    let throttled = p.metric("portcullis_refused_total{reason=\"failed_verifications\"}");
    assert!((100..=200).contains(&throttled), "{throttled}");
    // Meanwhile the token verified before is still served from the cache...
    assert_eq!(keep_post(), 200);
    // ...a new valid token from the same address waits for the budget...
    let fresh = key.sign(&claims(ISS, AUD, "late"));
    assert_eq!(
        post(&p, Some(&fresh)).status,
        401,
        "over budget: not verified"
    );
    // ...and from another address it is verified at once.
    let other = {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        s.connect(&p.addr().into()).unwrap();
        std::net::TcpStream::from(s)
    };
    let mut other = other;
    other.write_all(format!(
        "POST /hello/mcp HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {fresh}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        p.port
    ).as_bytes()).unwrap();
    let r = read_response(&mut BufReader::new(other), false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The budget refills (one failure per 4 s here).
    std::thread::sleep(Duration::from_millis(4500));
    let fresh2 = key.sign(&claims(ISS, AUD, "later"));
    assert_eq!(post(&p, Some(&fresh2)).status, 200);
});

both_drivers!(an_unknown_kid_of_a_static_key_set_is_refused_at_once, |d| {
    // Inline (and file) key sets have nothing to refetch: no wait for a key that cannot come.
    let key = TestKey::es256("k1");
    let up = Upstream::echo();
    let cfg = mcp_config(&format!("jwks: '{}'", jwks(&[&key])), "");
    let p = Proxy::start_with(&cfg, d, &[("UP", up.port.to_string())], &[]);
    let stranger = TestKey::es256("k-unknown");
    for i in 0..3 {
        let t0 = Instant::now();
        let r = post(
            &p,
            Some(&stranger.sign(&claims(ISS, AUD, &format!("s{i}")))),
        );
        assert_eq!(r.status, 401);
        assert!(
            t0.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t0.elapsed()
        );
    }
});

both_drivers!(two_authorization_headers_are_refused, |d| {
    // The valid token first, then an unverified one with a forged subject: with passthrough
    // both would reach the backend, which may read either. One credential per request.
    let key = TestKey::es256("k1");
    let up = Upstream::echo();
    let cfg = mcp_config(
        &format!("jwks: '{}'", jwks(&[&key])),
        "        backendAuth:\n          passthrough: {}\n",
    );
    let p = Proxy::start_with(&cfg, d, &[("UP", up.port.to_string())], &[]);
    let good = key.sign(&claims(ISS, AUD, "carol"));
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    for (a, b) in [(good.as_str(), forged), (forged, good.as_str())] {
        let r = p.req(&format!(
            "POST /hello/mcp HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {a}\r\nauthorization: Bearer {b}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            p.port
        ));
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.text().contains("more than one Authorization header"),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing reached the backend"
    );
    // One header still works.
    assert_eq!(post(&p, Some(&good)).status, 200);
});

both_drivers!(jwks_url_rotation_and_outage, |d| {
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::es256("k2");
    // The JWKS server starts broken: the proxy keeps retrying in the background.
    let js = JwksServer::start(String::new());
    js.set(500, "oops".into());
    let up = Upstream::echo();
    let cfg = mcp_config(&format!("jwksUrl: {}", js.url()), "");
    let p = Proxy::start_with(&cfg, d, &[("UP", up.port.to_string())], &[]);
    let t1 = k1.sign(&claims(ISS, AUD, "dave"));
    let r = post(&p, Some(&t1));
    assert_eq!(r.status, 503, "no keys yet: {}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        post(&p, None).status,
        401,
        "token-less requests still get the challenge"
    );
    // The IdP comes up: keys arrive with the next retry.
    js.set(200, jwks(&[&k1]));
    let deadline = Instant::now() + Duration::from_secs(15);
    while post(&p, Some(&t1)).status != 200 {
        assert!(Instant::now() < deadline, "keys never loaded:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Rotation: a token signed by a new kid triggers a refetch; the request itself succeeds.
    js.set(200, jwks(&[&k1, &k2]));
    let t2 = k2.sign(&claims(ISS, AUD, "erin"));
    let r = post(&p, Some(&t2));
    assert_eq!(
        r.status,
        200,
        "unknown kid → refetch → accepted: {}",
        r.text()
    );
    // The IdP goes down: cached keys keep serving.
    js.set(503, "down".into());
    drop(js);
    assert_eq!(post(&p, Some(&t1)).status, 200);
    assert_eq!(post(&p, Some(&t2)).status, 200);
    // An unknown kid with the IdP down is an invalid token, not a hang.
    let k3 = TestKey::es256("k3");
    let t0 = Instant::now();
    let r = post(&p, Some(&k3.sign(&claims(ISS, AUD, "frank"))));
    assert_eq!(r.status, 401);
    assert!(t0.elapsed() < Duration::from_secs(4));
});

// The key manager honours `HTTP_PROXY` (as operators behind an egress proxy set it): the JWKS
// of an IdP whose name only the proxy can reach is fetched through a `CONNECT` tunnel.
both_drivers!(jwks_fetched_through_the_environment_proxy, |d| {
    let key = TestKey::es256("k1");
    let doc = jwks(&[&key]);
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let egress = Upstream::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while let Ok(Some(req)) = read_request(&mut r) {
            seen2
                .lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.target));
            if req.method == "CONNECT" {
                // The tunnel is this connection: the next request is the client's own.
                if w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .is_err()
                {
                    break;
                }
                continue;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                doc.len()
            );
            if w.write_all(head.as_bytes()).is_err() || w.write_all(doc.as_bytes()).is_err() {
                break;
            }
        }
    });
    let up = Upstream::echo();
    // `.test` names never resolve: only the proxy can reach this IdP.
    let cfg = mcp_config("jwksUrl: http://idp.proxied.test/realms/mcp/certs", "");
    let proxy_url = format!("http://127.0.0.1:{}", egress.port);
    let envs = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("http_proxy", proxy_url.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let p = Proxy::start_env(&cfg, d, &[("UP", up.port.to_string())], &[], &envs);
    let t = key.sign(&claims(ISS, AUD, "ivan"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while post(&p, Some(&t)).status != 200 {
        assert!(Instant::now() < deadline, "keys never loaded:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().any(|l| l == "CONNECT idp.proxied.test:80")
            && seen.iter().any(|l| l == "GET /realms/mcp/certs"),
        "the proxy saw {seen:?}"
    );
});

both_drivers!(jwt_auth_modes, |d| {
    let key = TestKey::es256("k1");
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: strict\n      matches: [{{path: {{pathPrefix: /strict}}}}]\n      policies:\n        jwtAuth:\n          mode: strict\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{0}'\n        directResponse: {{body: ok, status: 200}}\n    - name: optional\n      matches: [{{path: {{pathPrefix: /optional}}}}]\n      policies:\n        jwtAuth:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{0}'\n        directResponse: {{body: ok, status: 200}}\n    - name: permissive\n      matches: [{{path: {{pathPrefix: /permissive}}}}]\n      policies:\n        jwtAuth:\n          mode: permissive\n          providers:\n          - issuer: {ISS}\n            audiences: [{AUD}]\n            jwks: '{0}'\n        directResponse: {{body: ok, status: 200}}\n",
        jwks(&[&key])
    );
    let p = Proxy::start(&cfg, d);
    let good = key.sign(&claims(ISS, AUD, "gina"));
    let bad = key.sign(&claims(ISS, "nope", "gina"));
    let call = |path: &str, t: Option<&str>| {
        let auth = t
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        p.req(&format!(
            "GET {path} HTTP/1.1\r\nHost: h\r\n{auth}Connection: close\r\n\r\n"
        ))
        .status
    };
    assert_eq!(call("/strict", None), 401);
    assert_eq!(call("/strict", Some(&bad)), 401);
    assert_eq!(call("/strict", Some(&good)), 200);
    assert_eq!(call("/optional", None), 200);
    assert_eq!(call("/optional", Some(&bad)), 401);
    assert_eq!(call("/optional", Some(&good)), 200);
    assert_eq!(call("/permissive", None), 200);
    assert_eq!(call("/permissive", Some(&bad)), 200);
    let r = p.req(&format!("GET /strict HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {bad}\r\nConnection: close\r\n\r\n"));
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token"),
        "jwtAuth 401s carry a challenge too"
    );
});

both_drivers!(session_and_process_caps, |d| {
    let key = TestKey::es256("k1");
    let cfg = format!(
        "{CONFIG_HEAD}  mcp:\n    maxSessionsPerSubject: 2\n    maxStdioProcesses: 3\nbinds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n          resourceMetadata:\n            resource: http://127.0.0.1:{{PORT}}/mcp\n      backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{}']}}\n",
        jwks(&[&key]),
        crate::mcp::mini_server()
    );
    let p = Proxy::start(&cfg, d);
    let client = |sub: &str| {
        let mut c = crate::mcp::Mcp::new(p.addr());
        c.token = Some(key.sign(&claims(ISS, AUD, sub)));
        c
    };
    let mut alice1 = client("alice");
    assert_eq!(alice1.initialize().status, 200);
    let mut alice2 = client("alice");
    assert_eq!(alice2.initialize().status, 200);
    // A third session for alice: 429, with when to retry and why.
    let r = client("alice").raw("POST", crate::mcp::INIT, "");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("30"));
    assert!(
        r.text().contains("maxSessionsPerSubject = 2"),
        "{}",
        r.text()
    );
    // Bob gets the third process; a fourth is over the proxy's cap: 503.
    let mut bob1 = client("bob");
    assert_eq!(bob1.initialize().status, 200);
    let r = client("bob").raw("POST", crate::mcp::INIT, "");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.text().contains("maxStdioProcesses = 3"), "{}", r.text());
    assert_eq!(crate::mcp::children(p.pid()).len(), 3);
    assert_eq!(
        p.metric("portcullis_refused_total{reason=\"sessions_per_subject\"}"),
        1
    );
    assert_eq!(
        p.metric("portcullis_refused_total{reason=\"stdio_processes\"}"),
        1
    );
    // Alice ends a session: its process and her count are given back.
    assert_eq!(alice1.raw("DELETE", "", "").status, 200);
    let t0 = Instant::now();
    let mut bob2 = client("bob");
    loop {
        let r = bob2.initialize();
        if r.status == 200 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        client("alice").initialize().status,
        503,
        "no process left for her either"
    );
});

both_drivers!(sessions_are_bound_to_the_subject, |d| {
    let key = TestKey::es256("k1");
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {ISS}\n          audiences: [{AUD}]\n          jwks: '{}'\n          resourceMetadata:\n            resource: http://127.0.0.1:{{PORT}}/mcp\n      backends:\n      - mcp:\n          targets:\n          - name: mini\n            stdio: {{cmd: python3, args: ['{}']}}\n",
        jwks(&[&key]),
        crate::mcp::mini_server()
    );
    let p = Proxy::start(&cfg, d);
    let mut alice = crate::mcp::Mcp::new(p.addr());
    alice.token = Some(key.sign(&claims(ISS, AUD, "alice")));
    assert_eq!(alice.initialize().status, 200);
    assert_eq!(alice.call("tools/list", "{}").0.status, 200);
    // Bob holds a valid token of his own, and Alice's session id: that is not enough (A14).
    let mut bob = crate::mcp::Mcp::new(p.addr());
    bob.token = Some(key.sign(&claims(ISS, AUD, "bob")));
    bob.session = alice.session.clone();
    assert_eq!(bob.call("tools/list", "{}").0.status, 404);
    assert_eq!(bob.raw("DELETE", "", "").status, 404, "nor can he end it");
    assert_eq!(alice.call("tools/list", "{}").0.status, 200);
    // A session id without any token is an unauthenticated request.
    let mut anon = crate::mcp::Mcp::new(p.addr());
    anon.session = alice.session.clone();
    assert_eq!(anon.call("tools/list", "{}").0.status, 401);

    // Tokens without `sub` (or with an empty one) bind to their client: two clients of the
    // same issuer do not share a session.
    let n = now();
    let subless = |extra: &str| {
        key.sign(&format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"iat":{n}{extra}}}"#,
            n + 3600
        ))
    };
    let mut c1 = crate::mcp::Mcp::new(p.addr());
    c1.token = Some(subless(r#","client_id":"app-1""#));
    assert_eq!(c1.initialize().status, 200);
    assert_eq!(c1.call("tools/list", "{}").0.status, 200);
    let mut c2 = crate::mcp::Mcp::new(p.addr());
    c2.token = Some(subless(r#","sub":"","azp":"app-2""#));
    c2.session = c1.session.clone();
    assert_eq!(
        c2.call("tools/list", "{}").0.status,
        404,
        "another client's session"
    );
    // A client id equal to a user's subject is still another party.
    let mut c3 = crate::mcp::Mcp::new(p.addr());
    c3.token = Some(subless(r#","client_id":"alice""#));
    c3.session = alice.session.clone();
    assert_eq!(c3.call("tools/list", "{}").0.status, 404);
    // Neither a subject nor a client: no session at all, with a clear 403.
    let mut nobody = crate::mcp::Mcp::new(p.addr());
    nobody.token = Some(subless(r#","sub":"""#));
    let r = nobody.raw("POST", crate::mcp::INIT, "");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("names no subject (sub) or client"),
        "{}",
        r.text()
    );
});

both_drivers!(
    signature_checks_beyond_the_worker_share_wait_their_turn,
    |d| {
        // A tiny share of each 10 ms window for signature checks, and no per-address budget: a
        // flood of fresh (broken) tokens is checked a few at a time, each still answered 401 (or
        // 503 when too many wait), while a client whose token is cached keeps getting 200.
        let (key, _up, p) = mcp_proxy_with_env(
            d,
            &[
                ("PORTCULLIS_AUTH_FAILURES_PER_SEC", "0"),
                ("PORTCULLIS_VERIFY_SHARE", "0.01"),
            ],
        );
        let good = key.sign(&claims(ISS, AUD, "steady"));
        assert_eq!(post(&p, Some(&good)).status, 200);
        let addr = p.addr();
        let port = p.port;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flood: Vec<_> = (0..6)
        .map(|t| {
            let stop = stop.clone();
            let key = TestKey::es256("k1");
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 200 {
                    i += 1;
                    // Signed by another key with the same kid: a signature check that fails.
                    let bad = key.sign(&claims(ISS, AUD, &format!("flood-{t}-{i}")));
                    let r = try_request(
                        addr,
                        format!("POST /hello/mcp HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {bad}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").as_bytes(),
                    );
                    statuses.push(r.map(|r| r.status).unwrap_or(0));
                }
                statuses
            })
        })
        .collect();
        // Meanwhile the cached token keeps working.
        let t0 = Instant::now();
        let mut ok = 0;
        while t0.elapsed() < Duration::from_secs(2) {
            assert_eq!(post(&p, Some(&good)).status, 200);
            ok += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let statuses: Vec<u16> = flood.into_iter().flat_map(|t| t.join().unwrap()).collect();
        assert!(ok > 5, "{ok}");
        assert!(!statuses.is_empty());
        assert!(
            statuses.iter().all(|s| *s == 401 || *s == 503),
            "every flood request is refused, none lost: {statuses:?}"
        );
    }
);
