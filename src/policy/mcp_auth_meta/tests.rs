use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

const KEYCLOAK: &[u8] = include_bytes!("testdata/keycloak-openid-configuration.json");
const AUTH0: &[u8] = include_bytes!("testdata/auth0-openid-configuration.json");
const SEED_RESOURCE: &str = "http://localhost:3000/hello/mcp";
const SEED_ISSUER: &str = "http://localhost:7080/realms/mcp";
const SEED_PRM_URL: &str = "http://localhost:3000/.well-known/oauth-protected-resource/hello/mcp";

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn meta(v: Value) -> BTreeMap<String, Value> {
    let Value::Object(m) = v else {
        panic!("object")
    };
    m.into_iter().collect()
}

fn obj(bytes: &[u8]) -> serde_json::Map<String, Value> {
    match serde_json::from_slice(bytes).unwrap() {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

// === prm_url / parse_resource_url ===

#[test]
fn prm_url_spec_examples() {
    // mcp-spec-notes §1.1 (RFC 9728 §3.1).
    let cases = [
        (
            "https://proxy.example.com/mcp",
            "https://proxy.example.com/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "https://proxy.example.com/team-a/mcp",
            "https://proxy.example.com/.well-known/oauth-protected-resource/team-a/mcp",
        ),
        (
            "https://proxy.example.com",
            "https://proxy.example.com/.well-known/oauth-protected-resource",
        ),
        (
            "https://proxy.example.com/",
            "https://proxy.example.com/.well-known/oauth-protected-resource",
        ),
        (
            "https://proxy.example.com/mcp/",
            "https://proxy.example.com/.well-known/oauth-protected-resource/mcp/",
        ),
        (
            "https://proxy.example.com/mcp?tenant=a&x=1",
            "https://proxy.example.com/.well-known/oauth-protected-resource/mcp?tenant=a&x=1",
        ),
        (
            "https://proxy.example.com/?tenant=a",
            "https://proxy.example.com/.well-known/oauth-protected-resource?tenant=a",
        ),
        (
            "https://proxy.example.com?tenant=a",
            "https://proxy.example.com/.well-known/oauth-protected-resource?tenant=a",
        ),
        (
            "http://[::1]:8080/mcp",
            "http://[::1]:8080/.well-known/oauth-protected-resource/mcp",
        ),
        // Case and explicit port kept as written.
        (
            "HTTPS://Proxy.Example.com:443/MCP",
            "HTTPS://Proxy.Example.com:443/.well-known/oauth-protected-resource/MCP",
        ),
        // agentgateway's seed 401 URL (anchor §2.4).
        (SEED_RESOURCE, SEED_PRM_URL),
    ];
    for (resource, want) in cases {
        assert_eq!(prm_url(resource).as_deref(), Ok(want), "{resource}");
    }
}

#[test]
fn parse_rejects_non_resource_urls() {
    for bad in [
        "",
        "/hello/mcp",
        "localhost:3000/mcp",
        "ftp://example.com/mcp",
        "https://example.com/mcp#frag",
        "https://user:pw@example.com/mcp",
        "https:///mcp",
        "https://example.com:/mcp",
        "https://example.com:99999/mcp",
        "https://example.com:8x/mcp",
        "https://example.com/m cp",
        "https://example.com/\"mcp",
        "https://example.com/mcp\r\nX: y",
        "https://exämple.com/mcp",
        "https://[::1/mcp",
        "https://[::1]x/mcp",
    ] {
        assert!(parse_resource_url(bad).is_err(), "accepted {bad:?}");
        assert!(prm_url(bad).is_err(), "prm_url accepted {bad:?}");
    }
}

#[test]
fn parse_splits_and_compares() {
    let u = parse_resource_url("HTTPS://API.Example.com:8443/a/b?x=1").unwrap();
    assert_eq!(
        u,
        ResourceUrl {
            scheme: "HTTPS".into(),
            authority: "API.Example.com:8443".into(),
            path: "/a/b".into(),
            query: Some("x=1".into()),
        }
    );
    assert_eq!(u.host(), "API.Example.com");
    assert_eq!(u.port(), Some(8443));
    assert_eq!(u.to_string(), "HTTPS://API.Example.com:8443/a/b?x=1");
    assert_eq!(
        u.well_known_path(PRM_WELL_KNOWN),
        "/.well-known/oauth-protected-resource/a/b?x=1"
    );

    let v6 = parse_resource_url("http://[2001:db8::1]/").unwrap();
    assert_eq!(
        (v6.host(), v6.port(), v6.effective_port()),
        ("[2001:db8::1]", None, 80)
    );

    let a = parse_resource_url("https://api.example.com/mcp").unwrap();
    let b = parse_resource_url("HTTPS://API.EXAMPLE.COM:443/mcp").unwrap();
    let c = parse_resource_url("https://api.example.com:8443/mcp").unwrap();
    let d = parse_resource_url("https://api.example.com/MCP").unwrap();
    assert!(a.same_origin(&b) && a.canonical_eq(&b));
    assert!(!a.same_origin(&c));
    assert!(
        a.same_origin(&d) && !a.canonical_eq(&d),
        "paths stay case-sensitive"
    );
    assert!(!a.same_origin(&parse_resource_url("http://api.example.com/mcp").unwrap()));
}

// === render_prm / camel_to_snake ===

#[test]
fn render_prm_seed_exact() {
    let m = meta(json!({
        "resource": SEED_RESOURCE,
        "scopesSupported": ["profile", "offline_access", "openid"],
        "bearerMethodsSupported": ["header", "body", "query"],
        "resourceDocumentation": "http://localhost:3000/hello/docs",
        "resourcePolicyUri": "http://localhost:3000/hello/policies",
    }));
    let body = render_prm(SEED_RESOURCE, &s(&[SEED_ISSUER]), &m);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        concat!(
            r#"{"resource":"http://localhost:3000/hello/mcp","#,
            r#""authorization_servers":["http://localhost:7080/realms/mcp"],"#,
            r#""mcp_protocol_version":"2025-06-18","resource_type":"mcp-server","#,
            r#""bearer_methods_supported":["header","body","query"],"#,
            r#""resource_documentation":"http://localhost:3000/hello/docs","#,
            r#""resource_policy_uri":"http://localhost:3000/hello/policies","#,
            r#""scopes_supported":["profile","offline_access","openid"]}"#,
        )
    );
}

#[test]
fn render_prm_user_keys_override_in_place() {
    let m = meta(json!({
        "authorizationServers": ["https://idp.example.com/"],
        "resource": "https://public.example.com/mcp",
        "resourceName": "Hello \"MCP\"",
        "jwksUri": "https://public.example.com/jwks",
        "mcp_protocol_version": "2025-11-25",
        "nested": {"z": 1, "a": [true, null]},
    }));
    let body = render_prm("http://internal:3000/mcp", &s(&["http://ignored"]), &m);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        concat!(
            r#"{"resource":"https://public.example.com/mcp","#,
            r#""authorization_servers":["https://idp.example.com/"],"#,
            r#""mcp_protocol_version":"2025-11-25","resource_type":"mcp-server","#,
            r#""jwks_uri":"https://public.example.com/jwks","#,
            r#""nested":{"a":[true,null],"z":1},"#,
            r#""resource_name":"Hello \"MCP\""}"#,
        )
    );
}

#[test]
fn render_prm_colliding_keys_last_in_map_order_wins() {
    // "scopesSupported" sorts before "scopes_supported" ('S' < '_').
    let m = meta(json!({"scopesSupported": ["a"], "scopes_supported": ["b"]}));
    let doc = obj(&render_prm("https://x/mcp", &[], &m));
    assert_eq!(doc["scopes_supported"], json!(["b"]));
    assert_eq!(doc["authorization_servers"], json!([]));
}

#[test]
fn camel_to_snake_matches_heck() {
    for (input, want) in [
        ("scopesSupported", "scopes_supported"),
        ("bearerMethodsSupported", "bearer_methods_supported"),
        ("resourceDocumentation", "resource_documentation"),
        ("resourcePolicyUri", "resource_policy_uri"),
        ("authorizationServers", "authorization_servers"),
        ("resourceName", "resource_name"),
        ("jwksUri", "jwks_uri"),
        (
            "resourceSigningAlgValuesSupported",
            "resource_signing_alg_values_supported",
        ),
        ("resource", "resource"),
        ("scopes_supported", "scopes_supported"),
        (
            "tls_client_certificate_bound_access_tokens",
            "tls_client_certificate_bound_access_tokens",
        ),
        ("JWKSUri", "jwks_uri"),
        ("resourceTOSUri", "resource_tos_uri"),
        ("ResourceName", "resource_name"),
        ("oauth2Client", "oauth2_client"),
        ("kebab-case-key", "kebab_case_key"),
        ("_leading", "leading"),
        ("", ""),
    ] {
        assert_eq!(camel_to_snake(input), want, "{input}");
    }
}

// === challenges and bodies ===

#[test]
fn challenge_missing_seed_and_scopes() {
    assert_eq!(
        challenge_missing(SEED_PRM_URL, &[]),
        format!(r#"Bearer resource_metadata="{SEED_PRM_URL}""#),
        "agentgateway-compatible when no scopes are configured"
    );
    assert_eq!(
        challenge_missing(
            SEED_PRM_URL,
            &s(&["profile", "offline_access", "openid", "profile"])
        ),
        format!(r#"Bearer resource_metadata="{SEED_PRM_URL}", scope="profile openid""#)
    );
    assert_eq!(
        challenge_missing("https://x/p", &s(&["offline_access"])),
        r#"Bearer resource_metadata="https://x/p""#
    );
}

#[test]
fn challenge_invalid_quotes_and_sanitises() {
    assert_eq!(
        challenge_invalid("https://x/p", &s(&["mcp:read"]), r#"token "abc" bad\path"#),
        concat!(
            r#"Bearer resource_metadata="https://x/p", scope="mcp:read", "#,
            r#"error="invalid_token", error_description="token \"abc\" bad\\path""#
        )
    );
    assert_eq!(
        challenge_invalid("https://x/p", &[], "line1\r\nSet-Cookie: a=b\tö"),
        concat!(
            r#"Bearer resource_metadata="https://x/p", error="invalid_token", "#,
            r#"error_description="line1  Set-Cookie: a=b ?""#
        )
    );
    assert_eq!(
        challenge_invalid("https://x/p", &[], ""),
        r#"Bearer resource_metadata="https://x/p", error="invalid_token""#
    );
}

#[test]
fn challenge_insufficient_scope_lists_needed() {
    assert_eq!(
        challenge_insufficient_scope(
            Some("https://x/p"),
            &s(&["files:read", "offline_access", "files:write"]),
            "needs files:write"
        ),
        concat!(
            r#"Bearer resource_metadata="https://x/p", scope="files:read files:write", "#,
            r#"error="insufficient_scope", error_description="needs files:write""#
        )
    );
    assert_eq!(
        challenge_insufficient_scope(None, &s(&["a"]), ""),
        r#"Bearer scope="a", error="insufficient_scope""#
    );
}

#[test]
fn bodies() {
    assert_eq!(
        BODY_MISSING,
        br#"{"error":"unauthorized","error_description":"JWT token required"}"#
    );
    assert_eq!(
        body_invalid("token expired"),
        br#"{"error":"invalid_token","error_description":"token expired"}"#
    );
    let tricky = "a \"q\" \\ \n é";
    let parsed = obj(&body_invalid(tricky));
    assert_eq!(parsed["error_description"], tricky);
    assert_eq!(
        body_insufficient_scope("x"),
        br#"{"error":"insufficient_scope","error_description":"x"}"#
    );
}

#[test]
fn scope_token_syntax() {
    assert!(is_scope_token("files:read") && is_scope_token("https://api/x.read"));
    for bad in ["", "a b", "a\"b", "a\\b", "é"] {
        assert!(!is_scope_token(bad), "{bad:?}");
    }
}

// === provider adapters ===

#[test]
fn default_urls() {
    assert_eq!(
        default_jwks_url(SEED_ISSUER, Provider::Keycloak),
        "http://localhost:7080/realms/mcp/protocol/openid-connect/certs"
    );
    assert_eq!(
        default_jwks_url("https://t.auth0.com/", Provider::Auth0),
        "https://t.auth0.com/.well-known/jwks.json"
    );
    assert_eq!(
        default_jwks_url("https://idp.example.com", Provider::Generic),
        "https://idp.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        discovery_url(SEED_ISSUER),
        "http://localhost:7080/realms/mcp/.well-known/openid-configuration"
    );
    assert_eq!(
        discovery_url("https://t.auth0.com/"),
        "https://t.auth0.com/.well-known/openid-configuration"
    );
    assert_eq!(
        keycloak_registration_target(&format!("{SEED_ISSUER}/")),
        "http://localhost:7080/realms/mcp/clients-registrations/openid-connect"
    );
    assert_eq!(Provider::default(), Provider::Generic);
}

#[test]
fn keycloak_adapter_replaces_only_registration_endpoint() {
    let proxy = "http://localhost:3000/.well-known/oauth-authorization-server/hello/mcp/client-registration";
    let out = obj(&keycloak_as_metadata(KEYCLOAK, proxy).unwrap());
    let mut input = obj(KEYCLOAK);
    assert_eq!(out["registration_endpoint"], proxy);
    assert_eq!(
        out["issuer"], SEED_ISSUER,
        "issuer must stay byte-identical"
    );
    assert_eq!(
        out["code_challenge_methods_supported"],
        json!(["plain", "S256"])
    );
    input.insert("registration_endpoint".into(), proxy.into());
    assert_eq!(out, input, "nothing else changes (mtls aliases included)");
}

#[test]
fn keycloak_adapter_adds_s256_and_registration_when_absent() {
    let doc = br#"{"issuer":"https://kc/realms/r","authorization_endpoint":"https://kc/a"}"#;
    let out = obj(&keycloak_as_metadata(doc, "https://gw/reg").unwrap());
    assert_eq!(out["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(out["registration_endpoint"], "https://gw/reg");
    assert_eq!(out["issuer"], "https://kc/realms/r");
}

#[test]
fn auth0_adapter_adds_audience() {
    let out = obj(&auth0_as_metadata(AUTH0, "https://api.example.com/mcp").unwrap());
    assert_eq!(
        out["authorization_endpoint"],
        "https://dev-portcullis.us.auth0.com/authorize?audience=https%3A%2F%2Fapi.example.com%2Fmcp"
    );
    assert_eq!(
        out["issuer"], "https://dev-portcullis.us.auth0.com/",
        "trailing slash kept"
    );
    assert_eq!(
        out["registration_endpoint"],
        "https://dev-portcullis.us.auth0.com/oidc/register"
    );
    let mut input = obj(AUTH0);
    input.insert(
        "authorization_endpoint".into(),
        out["authorization_endpoint"].clone(),
    );
    assert_eq!(out, input);
}

#[test]
fn auth0_audience_with_existing_query() {
    let run = |endpoint: &str, audience: &str| -> String {
        let doc = json!({"issuer": "https://t.auth0.com/", "authorization_endpoint": endpoint});
        let out = auth0_as_metadata(doc.to_string().as_bytes(), audience).unwrap();
        obj(&out)["authorization_endpoint"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        run("https://t/authorize", "mcp_proxy"),
        "https://t/authorize?audience=mcp_proxy"
    );
    assert_eq!(
        run("https://t/authorize?connection=github", "a b&c"),
        "https://t/authorize?connection=github&audience=a%20b%26c"
    );
    assert_eq!(
        run("https://t/authorize?", "x"),
        "https://t/authorize?audience=x"
    );
    assert_eq!(
        run("https://t/authorize?a=1&", "x"),
        "https://t/authorize?a=1&audience=x"
    );
    assert_eq!(
        run("https://t/authorize#f", "x"),
        "https://t/authorize?audience=x#f"
    );
    // Not duplicated when already present (whatever its value).
    assert_eq!(
        run("https://t/authorize?audience=x", "x"),
        "https://t/authorize?audience=x"
    );
    assert_eq!(
        run("https://t/authorize?a=1&audience=other", "x"),
        "https://t/authorize?a=1&audience=other"
    );
    // A parameter merely *ending* in "audience" is not the same parameter.
    assert_eq!(
        run("https://t/authorize?default_audience=y", "x"),
        "https://t/authorize?default_audience=y&audience=x"
    );
}

#[test]
fn auth0_adapter_requires_authorization_endpoint() {
    assert!(auth0_as_metadata(br#"{"issuer":"https://t/"}"#, "x").is_err());
    assert!(auth0_as_metadata(
        br#"{"issuer":"https://t/","authorization_endpoint":1}"#,
        "x"
    )
    .is_err());
}

#[test]
fn generic_adapter_passes_bytes_through() {
    assert_eq!(generic_as_metadata(KEYCLOAK).unwrap(), KEYCLOAK);
    assert_eq!(generic_as_metadata(AUTH0).unwrap(), AUTH0);
}

#[test]
fn adapters_reject_bad_documents() {
    for bad in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"issuer":""}"#,
        br#"{"issuer":42}"#,
        br#"{"issuer":"https://a"} trailing"#,
    ] {
        assert!(generic_as_metadata(bad).is_err(), "{bad:?}");
        assert!(
            keycloak_as_metadata(bad, "https://gw/reg").is_err(),
            "{bad:?}"
        );
        assert!(auth0_as_metadata(bad, "aud").is_err(), "{bad:?}");
    }
}

// === sanity warnings ===

#[test]
fn sanity_clean_config_has_no_warnings() {
    let w = sanity_warnings(
        Some(SEED_RESOURCE),
        Some(SEED_RESOURCE),
        SEED_ISSUER,
        Some(SEED_ISSUER),
        &s(&["header"]),
    );
    assert!(w.is_empty(), "{w:?}");
    assert!(sanity_warnings(None, None, SEED_ISSUER, None, &[]).is_empty());
}

#[test]
fn sanity_seed_warns_about_body_and_query() {
    let w = sanity_warnings(
        Some(SEED_RESOURCE),
        Some(SEED_RESOURCE),
        SEED_ISSUER,
        Some(SEED_ISSUER),
        &s(&["header", "body", "query"]),
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("mcpAuthentication.resourceMetadata.bearerMethodsSupported"));
    assert!(w[0].contains(r#"["body", "query"]"#) && w[0].contains("Authorization header"));
}

#[test]
fn sanity_resource_mismatch() {
    let w = sanity_warnings(
        Some("https://gw.example.com/hello/mcp"),
        Some("https://gw.example.com/hello"),
        SEED_ISSUER,
        None,
        &[],
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("mcpAuthentication.resourceMetadata.resource"));
    assert!(w[0].contains("does not match the route's public URL"));

    let w = sanity_warnings(
        Some("https://gw.example.com/hello/mcp"),
        Some("HTTPS://GW.example.com:443/hello/mcp"),
        SEED_ISSUER,
        None,
        &[],
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("only after case folding"), "{w:?}");

    let w = sanity_warnings(
        None,
        Some("https://gw.example.com/mcp#x"),
        SEED_ISSUER,
        None,
        &[],
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("not a usable resource identifier") && w[0].contains("fragment"));
}

#[test]
fn sanity_issuer_mismatch() {
    let w = sanity_warnings(
        None,
        None,
        "https://t.auth0.com",
        Some("https://t.auth0.com/"),
        &[],
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("mcpAuthentication.issuer"));
    assert!(w[0].contains("only by a trailing slash"));

    let w = sanity_warnings(
        None,
        None,
        SEED_ISSUER,
        Some("http://localhost:7080/realms/other"),
        &[],
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("differs from the issuer") && !w[0].contains("trailing slash"));
}
