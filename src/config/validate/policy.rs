//! Validation of route `policies`: unsupported features by name, filter values (durations,
//! status codes, header names), and the auth policies' presence and dialect rules.
//!
//! Does not decide defaults (e.g. JWKS URL derivation, default `mode`); lowering does.

use super::{index, is_token, join, unsupported_msg, Errors};
use crate::policy::mcp_auth::SUPPORTED_REQUIRED_CLAIMS;
use crate::schema::{
    BackendAuth, Cors, HeaderModifier, Jwks, JwtAuth, JwtProvider, JwtValidationOptions,
    McpAuthentication, Policies,
};

pub(super) fn policies(e: &mut Errors, path: &str, p: &Policies, backends: usize) {
    // Every field, named: one added to the wire model does not compile until it is either
    // checked and lowered (`config::lower::policies`) or refused here by name.
    let Policies {
        request_header_modifier: _,
        response_header_modifier: _,
        request_redirect: _,
        url_rewrite: _,
        direct_response: _,
        cors: _,
        mcp_authentication: _,
        jwt_auth: _,
        backend_auth: _,
        timeout: _,
        local_rate_limit: _,
        request_mirror,
        mcp_authorization,
        mcp_guardrails,
        authorization: _,
        a2a,
        ai,
        backend_tls: _,
        backend_tunnel,
        remote_rate_limit,
        oidc,
        basic_auth,
        api_key,
        ext_authz,
        ext_proc,
        transformations,
        csrf,
        buffer,
        retry,
        delay,
    } = p;
    e.unsupported(
        path,
        &[
            ("requestMirror", request_mirror),
            ("mcpGuardrails", mcp_guardrails),
            ("a2a", a2a),
            ("ai", ai),
            ("backendTunnel", backend_tunnel),
            ("remoteRateLimit", remote_rate_limit),
            ("oidc", oidc),
            ("basicAuth", basic_auth),
            ("apiKey", api_key),
            ("extAuthz", ext_authz),
            ("extProc", ext_proc),
            ("transformations", transformations),
            ("csrf", csrf),
            ("buffer", buffer),
            ("retry", retry),
            ("delay", delay),
        ],
    );
    if let Some(h) = &p.request_header_modifier {
        header_modifier(e, &join(path, "requestHeaderModifier"), h);
    }
    if let Some(h) = &p.response_header_modifier {
        header_modifier(e, &join(path, "responseHeaderModifier"), h);
    }
    if let Some(r) = &p.request_redirect {
        let rp = join(path, "requestRedirect");
        if let Some(s) = &r.scheme {
            if s != "http" && s != "https" {
                e.push(
                    join(&rp, "scheme"),
                    format!("scheme {s:?} must be \"http\" or \"https\""),
                );
            }
        }
        if let Some(s) = r.status {
            if !(300..=399).contains(&s) {
                e.push(
                    join(&rp, "status"),
                    format!("redirect status {s} must be in 300..=399"),
                );
            }
        }
    }
    if let Some(d) = &p.direct_response {
        let dp = join(path, "directResponse");
        e.unsupported(
            &dp,
            &[
                ("bodyExpression", &d.body_expression),
                ("headers", &d.headers),
                ("conditional", &d.conditional),
            ],
        );
        match d.status {
            Some(s) if !(100..=599).contains(&s) => e.push(
                join(&dp, "status"),
                format!("status {s} must be in 100..=599"),
            ),
            None if d.conditional.is_none() => e.push(&dp, "missing field `status`"),
            _ => {}
        }
    }
    if let Some(c) = &p.cors {
        cors(e, &join(path, "cors"), c);
    }
    if let Some(t) = &p.timeout {
        let tp = join(path, "timeout");
        e.duration(join(&tp, "requestTimeout"), &t.request_timeout);
        e.duration(
            join(&tp, "backendRequestTimeout"),
            &t.backend_request_timeout,
        );
    }
    if let Some(m) = &p.mcp_authentication {
        let mp = join(path, "mcpAuthentication");
        exactly_one_backend(e, &mp, backends);
        mcp_authentication(e, &mp, m);
    }
    if let Some(j) = &p.jwt_auth {
        jwt_auth(e, &join(path, "jwtAuth"), j);
    }
    if let Some(t) = &p.backend_tls {
        let tp = join(path, "backendTLS");
        exactly_one_backend(e, &tp, backends);
        backend_tls(e, &tp, t);
    }
    if mcp_authorization.is_some() {
        // A backend policy in agentgateway; its rules are compiled in lowering.
        exactly_one_backend(e, &join(path, "mcpAuthorization"), backends);
    }
    if let Some(b) = &p.backend_auth {
        let bp = join(path, "backendAuth");
        exactly_one_backend(e, &bp, backends);
        backend_auth(e, &bp, b);
    }
}

/// `backendTLS`: what Portcullis cannot do is refused by name; a certificate needs its key.
pub(super) fn backend_tls(e: &mut Errors, path: &str, t: &crate::schema::BackendTls) {
    let crate::schema::BackendTls {
        cert,
        key,
        root: _,
        hostname: _,
        insecure: _,
        insecure_host: _,
        alpn,
        subject_alt_names: _,
        key_exchange_groups,
        spiffe,
    } = t;
    e.unsupported(
        path,
        &[
            ("keyExchangeGroups", key_exchange_groups),
            ("spiffe", spiffe),
        ],
    );
    if cert.is_some() != key.is_some() {
        e.push(path, "a client certificate needs both `cert` and `key`");
    }
    for (i, a) in alpn.iter().flatten().enumerate() {
        if a != "http/1.1" {
            e.push(
                format!("{path}.alpn[{i}]"),
                format!("Portcullis speaks HTTP/1.1 to backends; ALPN {a:?} is not supported"),
            );
        }
    }
}

/// agentgateway: "backend policies currently only work with exactly 1 backend".
fn exactly_one_backend(e: &mut Errors, path: &str, backends: usize) {
    if backends != 1 {
        e.push(
            path,
            format!("backend policies require exactly 1 backend on the route (found {backends})"),
        );
    }
}

fn header_modifier(e: &mut Errors, path: &str, h: &HeaderModifier) {
    for (key, map) in [("add", &h.add), ("set", &h.set)] {
        for (name, value) in map {
            let p = join(&join(path, key), name);
            if !is_token(name) {
                e.push(&p, format!("invalid header name {name:?}"));
            } else if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                e.push(&p, "header value must not contain CR, LF or NUL");
            }
        }
    }
    for (i, name) in h.remove.iter().enumerate() {
        if !is_token(name) {
            e.push(
                index(&join(path, "remove"), i),
                format!("invalid header name {name:?}"),
            );
        }
    }
}

fn cors(e: &mut Errors, path: &str, c: &Cors) {
    for (key, list) in [
        ("allowHeaders", &c.allow_headers),
        ("allowMethods", &c.allow_methods),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, v) in list.iter().enumerate() {
            if !is_token(v) {
                e.push(index(&join(path, key), i), format!("invalid token {v:?}"));
            }
        }
    }
    for (i, o) in c.allow_origins.iter().enumerate() {
        if o.is_empty()
            || o.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            e.push(
                index(&join(path, "allowOrigins"), i),
                format!("invalid origin {o:?}"),
            );
        }
    }
    e.duration(join(path, "maxAge"), &c.max_age);
}

fn jwks(e: &mut Errors, path: &str, j: &Jwks) {
    match j {
        Jwks::Url(u) if !url_or_empty(u) => e.push(
            join(path, "url"),
            format!("JWKS url {u:?} must start with http:// or https://"),
        ),
        Jwks::File(f) if f.is_empty() => e.push(join(path, "file"), "must not be empty"),
        Jwks::Inline(s) if serde_json::from_str::<serde_json::Value>(s).is_err() => {
            e.push(path, "inline JWKS is not valid JSON")
        }
        _ => {}
    }
}

fn audiences(e: &mut Errors, path: &str, list: &[String]) {
    if list.is_empty() {
        e.push(path, "must list at least one audience");
    }
    for (i, a) in list.iter().enumerate() {
        if a.is_empty() {
            e.push(index(path, i), "must not be empty");
        }
    }
}

fn mcp_authentication(e: &mut Errors, path: &str, m: &McpAuthentication) {
    e.unsupported(
        path,
        &[("authorizationLocation", &m.authorization_location)],
    );
    // agentgateway answers client registrations itself when `clientId` is set (mock DCR) and
    // injects `clientSecret` into Entra token requests; Portcullis does neither, so saying
    // nothing would send clients down a registration path the operator did not configure.
    if m.client_id.is_some() {
        e.push(
            join(path, "clientId"),
            "agentgateway feature 'clientId' (mock client registration) is not supported by Portcullis",
        );
    }
    if m.client_secret.is_some() {
        e.push(
            join(path, "clientSecret"),
            "agentgateway feature 'clientSecret' (Entra token proxy) is not supported by Portcullis",
        );
    }
    if m.issuer.is_empty() {
        e.push(join(path, "issuer"), "must not be empty");
    }
    match (&m.audience, &m.audiences) {
        (Some(_), Some(_)) => e.push(
            join(path, "audiences"),
            "`audience` (v0.10.5) and `audiences` (current) are mutually exclusive; use one",
        ),
        (Some(a), None) if a.is_empty() => e.push(join(path, "audience"), "must not be empty"),
        (None, Some(list)) => audiences(e, &join(path, "audiences"), list),
        (None, None) => e.push(path, "missing field `audiences` (or v0.10.5 `audience`)"),
        _ => {}
    }
    match (&m.jwks_url, &m.jwks) {
        (Some(_), Some(_)) => e.push(
            join(path, "jwks"),
            "`jwksUrl` (v0.10.5) and `jwks` (current) are mutually exclusive; use one",
        ),
        (Some(u), None) if !url_or_empty(u) => e.push(
            join(path, "jwksUrl"),
            format!("JWKS url {u:?} must start with http:// or https://"),
        ),
        (None, Some(j)) => jwks(e, &join(path, "jwks"), j),
        // v0.10.5 requires `jwksUrl` (may be ""); current derives the JWKS when `jwks` is absent.
        (None, None) if m.audience.is_some() => e.push(
            path,
            "missing field `jwksUrl` (use \"\" to derive it, or current `jwks`)",
        ),
        _ => {}
    }
    validation_options(e, path, m.jwt_validation_options.as_ref());
}

fn jwt_auth(e: &mut Errors, path: &str, j: &JwtAuth) {
    e.unsupported(path, &[("location", &j.location)]);
    let single = j.issuer.is_some()
        || j.audiences.is_some()
        || j.jwks.is_some()
        || j.jwt_validation_options.is_some();
    match (&j.providers, single) {
        (Some(_), true) => e.push(
            path,
            "use either `providers` or a single provider (`issuer`, `audiences`, `jwks`), not both",
        ),
        (Some(list), false) => {
            if list.is_empty() {
                e.push(join(path, "providers"), "must list at least one provider");
            }
            for (i, p) in list.iter().enumerate() {
                provider(e, &index(&join(path, "providers"), i), p);
            }
        }
        (None, _) => {
            match &j.issuer {
                None => e.push(path, "missing field `issuer` (or `providers`)"),
                Some(s) if s.is_empty() => e.push(join(path, "issuer"), "must not be empty"),
                Some(_) => {}
            }
            match &j.jwks {
                None => e.push(path, "missing field `jwks`"),
                Some(k) => jwks(e, &join(path, "jwks"), k),
            }
            if let Some(a) = &j.audiences {
                audiences(e, &join(path, "audiences"), a);
            }
            validation_options(e, path, j.jwt_validation_options.as_ref());
        }
    }
}

/// `requiredClaims` may only name claims token validation checks: any other name would be
/// treated as absent and every token refused.
fn validation_options(e: &mut Errors, path: &str, o: Option<&JwtValidationOptions>) {
    let Some(list) = o.and_then(|o| o.required_claims.as_ref()) else {
        return;
    };
    let at = join(&join(path, "jwtValidationOptions"), "requiredClaims");
    for (i, c) in list.iter().enumerate() {
        if !SUPPORTED_REQUIRED_CLAIMS.contains(&c.as_str()) {
            e.push(
                index(&at, i),
                format!(
                    "unknown claim {c:?}: requiredClaims may list {}",
                    SUPPORTED_REQUIRED_CLAIMS.join(", ")
                ),
            );
        }
    }
}

fn provider(e: &mut Errors, path: &str, p: &JwtProvider) {
    if p.issuer.is_empty() {
        e.push(join(path, "issuer"), "must not be empty");
    }
    jwks(e, &join(path, "jwks"), &p.jwks);
    if let Some(a) = &p.audiences {
        audiences(e, &join(path, "audiences"), a);
    }
    validation_options(e, path, p.jwt_validation_options.as_ref());
}

fn backend_auth(e: &mut Errors, path: &str, b: &BackendAuth) {
    let others = [
        ("key", &b.key),
        ("gcp", &b.gcp),
        ("aws", &b.aws),
        ("azure", &b.azure),
        ("jwtSign", &b.jwt_sign),
        ("oauthTokenExchange", &b.oauth_token_exchange),
        ("crossAppAccess", &b.cross_app_access),
        ("credentials", &b.credentials),
    ];
    for (key, v) in others {
        if v.is_some() {
            e.push(
                join(path, key),
                unsupported_msg(&format!("backendAuth.{key}")),
            );
        }
    }
    let count =
        usize::from(b.passthrough.is_some()) + others.iter().filter(|(_, v)| v.is_some()).count();
    if count == 0 {
        e.push(
            path,
            "backendAuth needs exactly one kind, e.g. `passthrough: {}`",
        );
    } else if count > 1 {
        e.push(path, "backendAuth must have exactly one kind");
    }
    if let Some(p) = &b.passthrough {
        e.unsupported(&join(path, "passthrough"), &[("location", &p.location)]);
    }
}

/// `""` (derive later) or an `http(s)://` URL.
fn url_or_empty(u: &str) -> bool {
    u.is_empty() || u.starts_with("http://") || u.starts_with("https://")
}
