//! mcpAuthentication against a real OpenID provider (oidc-provider in Keycloak's layout):
//! the seed config as written, client_credentials tokens, key rotation without restart or
//! failed requests, and IdP outages.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::both_drivers;
use crate::harness::*;
use crate::idp::Idp;

fn seed_for(idp: &Idp) -> String {
    let seed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/seed.yaml")).unwrap();
    // Only the ports differ from what users run: the proxy's and the IdP's are ephemeral here.
    let seed = seed
        .replace("localhost:7080", &format!("127.0.0.1:{}", idp.port))
        .replace("3000", "{PORT}");
    format!("{CONFIG_HEAD}{seed}")
}

fn call(p: &Proxy, token: Option<&str>) -> Response {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    p.req(&format!(
        "POST /hello/mcp HTTP/1.1\r\nHost: localhost:{}\r\n{auth}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        p.port
    ))
}

both_drivers!(seed_discovery_and_keycloak_adapter, |d| {
    let idp = Idp::start(&[("AUDIENCE_MODE", "fixed:mcp_proxy"), ("AT_TYP", "JWT")]);
    // The seed's `uv run src/main.py` runs in the project folder of the FastMCP fixture.
    let (server_dir, path) = crate::idp::stdio_server();
    let p = Proxy::start_full(
        &seed_for(&idp),
        d,
        &[],
        &[],
        &[("PATH", path.as_str()), ("UV_PYTHON_DOWNLOADS", "never")],
        Some(&server_dir),
    );
    let origin = format!("http://localhost:{}", p.port);

    // 1. The 401 names the metadata URL.
    let r = call(&p, None);
    assert_eq!(r.status, 401);
    let prm_url = format!("{origin}/.well-known/oauth-protected-resource/hello/mcp");
    assert!(
        r.header("www-authenticate").unwrap().contains(&prm_url),
        "{:?}",
        r.header("www-authenticate")
    );

    // 2. The metadata is served although the seed routes only /hello/mcp.
    let prm = p.get("/.well-known/oauth-protected-resource/hello/mcp");
    assert_eq!(prm.status, 200, "{}", prm.text());
    let doc: serde_json::Value = serde_json::from_slice(&prm.body).unwrap();
    assert_eq!(doc["resource"], format!("{origin}/hello/mcp"));
    assert_eq!(
        doc["authorization_servers"],
        serde_json::json!([idp.issuer]),
        "the IdP's issuer, byte for byte"
    );
    assert_eq!(
        doc["resource_documentation"],
        format!("{origin}/hello/docs")
    );

    // 3. The IdP's own discovery (what modern clients use) has that same issuer.
    let disc = request(
        idp.addr(),
        format!("GET /realms/mcp/.well-known/openid-configuration HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", idp.port).as_bytes(),
    );
    let disc: serde_json::Value = serde_json::from_slice(&disc.body).unwrap();
    assert_eq!(disc["issuer"], idp.issuer);

    // 4. The gateway's copy of the AS metadata (Keycloak adapter): issuer unchanged,
    //    registration through the gateway's CORS-enabled proxy.
    let deadline = Instant::now() + Duration::from_secs(10);
    let asm = loop {
        let r = p.get("/.well-known/oauth-authorization-server/hello/mcp");
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(asm.status, 200, "{}", asm.text());
    let asd: serde_json::Value = serde_json::from_slice(&asm.body).unwrap();
    assert_eq!(asd["issuer"], idp.issuer);
    let reg = asd["registration_endpoint"].as_str().unwrap().to_owned();
    assert_eq!(
        reg,
        format!("{origin}/.well-known/oauth-authorization-server/hello/mcp/client-registration")
    );
    assert_eq!(asd["token_endpoint"], disc["token_endpoint"]);

    // 5. Dynamic client registration through the proxy, with CORS (Keycloak sends none).
    let reg_path = reg.trim_start_matches(&origin);
    let pre = p.req(&format!("OPTIONS {reg_path} HTTP/1.1\r\nHost: h\r\nOrigin: http://inspector.test\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"));
    assert!(pre.status == 200 || pre.status == 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    let body = r#"{"redirect_uris":["http://127.0.0.1:1/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code"],"response_types":["code"],"client_name":"it"}"#;
    let created = p.req(&format!(
        "POST {reg_path} HTTP/1.1\r\nHost: h\r\nOrigin: http://inspector.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("access-control-allow-origin"), Some("*"));
    let client: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    assert!(client["client_id"].as_str().is_some_and(|c| !c.is_empty()));

    // 6. A token from the IdP (aud mcp_proxy via the fixed audience, typ JWT like Keycloak)
    //    opens an MCP session with the seed's stdio server and calls its tool.
    let token = idp.token("http://127.0.0.1/any");
    let r = call(&p, Some(&format!("{token}x")));
    assert_eq!(r.status, 401);
    let mut c = crate::mcp::Mcp::new(p.addr());
    c.path = "/hello/mcp".into();
    c.token = Some(token);
    let init = c.initialize();
    assert_eq!(init.status, 200, "{}", init.text());
    assert_eq!(
        crate::mcp::messages(&init)[0]["result"]["serverInfo"]["name"],
        "hello-world"
    );
    let v = c.tool("echo", r#"{"message":"from the seed"}"#);
    assert_eq!(
        v["result"]["content"][0]["text"], "echo: from the seed",
        "{v}"
    );
    // Every request is authenticated, sessions included.
    c.token = None;
    assert_eq!(c.call("tools/list", "{}").0.status, 401);
});

both_drivers!(client_credentials_rotation_and_outage, |d| {
    let mut idp = Idp::start(&[("AT_ALG", "RS256")]);
    let up = Upstream::echo();
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - name: mcp\n      matches: [{{path: {{exact: /hello/mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {}\n          audiences: ['http://localhost:{{PORT}}/hello/mcp']\n          jwks:\n            url: {}/protocol/openid-connect/certs\n          mode: strict\n          resourceMetadata:\n            resource: http://localhost:{{PORT}}/hello/mcp\n      backends: [{{host: '127.0.0.1:{}'}}]\n",
        idp.issuer, idp.issuer, up.port
    );
    let p = Proxy::start(&cfg, d);
    let resource = format!("http://localhost:{}/hello/mcp", p.port);
    let t1 = idp.token(&resource);
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&p, Some(&t1)).status == 503 {
        assert!(Instant::now() < deadline, "keys never loaded:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(call(&p, Some(&t1)).status, 200);
    // A token for another resource is refused (audience binding).
    assert_eq!(
        call(&p, Some(&idp.token("http://localhost:1/other"))).status,
        401
    );

    // Rotation at the IdP: the first request with the new key succeeds (refetch on unknown kid).
    idp.rotate(false);
    let t2 = idp.token(&resource);
    let r = call(&p, Some(&t2));
    assert_eq!(r.status, 200, "{}", r.text());

    // IdP down: keys already fetched keep serving.
    idp.stop();
    for _ in 0..5 {
        assert_eq!(call(&p, Some(&t2)).status, 200);
    }
    // IdP back with fresh keys: its new tokens are accepted without a restart of the proxy.
    idp.restart();
    let t3 = idp.token(&resource);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = call(&p, Some(&t3)).status;
        if s == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refresh did not resume: {s}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = request(
        SocketAddr::from(([127, 0, 0, 1], p.stats)),
        b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert!(!m.text().contains("status=\"500\""));
});

#[test]
fn issuer_mismatch_with_the_idp_is_reported() {
    let idp = Idp::start(&[]);
    let cfg = format!(
        "{CONFIG_HEAD}binds:\n- port: {{PORT}}\n  listeners:\n  - routes:\n    - matches: [{{path: {{exact: /mcp}}}}]\n      policies:\n        mcpAuthentication:\n          issuer: {}/\n          jwksUrl: {}/protocol/openid-connect/certs\n          audience: a\n          provider: {{keycloak: {{}}}}\n          resourceMetadata: {{resource: 'http://localhost:{{PORT}}/mcp'}}\n      backends: [{{host: '127.0.0.1:1'}}]\n",
        idp.issuer, idp.issuer
    );
    let p = Proxy::start(&cfg, Driver::Uring);
    assert!(
        p.wait_log("trailing slash", 10),
        "the trailing-slash mismatch is reported:\n{}",
        p.log()
    );
}
