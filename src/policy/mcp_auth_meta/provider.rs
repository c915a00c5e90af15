//! Provider adapters: default URLs derived from the issuer, and the per-provider rewrite of
//! the IdP's OpenID configuration into the AS-metadata copy the gateway serves on its own
//! origin. Input is the document as fetched (bytes); output is the body to serve.
//!
//! Invariant for every adapter: `issuer` is never rewritten (RFC 8414 §3.3 byte identity;
//! the RFC 9207 `iss` on the redirect is the IdP's). Does not: fetch, cache, or decide which
//! paths serve the result.

use serde_json::{Map, Value};

use super::url::percent_encode;

/// `mcpAuthentication.provider`; absent means [`Provider::Generic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Provider {
    #[default]
    Generic,
    Keycloak,
    Auth0,
}

/// Keycloak: `<issuer>/protocol/openid-connect/certs`; others `<issuer>/.well-known/jwks.json`.
pub(crate) fn default_jwks_url(issuer: &str, provider: Provider) -> String {
    let base = trim_one_slash(issuer);
    match provider {
        Provider::Keycloak => format!("{base}/protocol/openid-connect/certs"),
        Provider::Generic | Provider::Auth0 => format!("{base}/.well-known/jwks.json"),
    }
}

/// OIDC Discovery 1.0 §4 path-append form, the only one Keycloak ≤ 26.3 serves.
pub(crate) fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        trim_one_slash(issuer)
    )
}

/// Where the gateway's DCR proxy (`…/client-registration`) forwards for Keycloak.
pub(crate) fn keycloak_registration_target(issuer: &str) -> String {
    format!(
        "{}/clients-registrations/openid-connect",
        trim_one_slash(issuer)
    )
}

/// `registration_endpoint` := `registration_url` (the gateway's CORS-enabled DCR proxy; set
/// even when the document lacks it, since Keycloak's endpoint exists regardless of
/// advertisement). `code_challenge_methods_supported` is kept when present and set to
/// `["S256"]` when absent: Keycloak has supported S256 for years, and MCP clients MUST refuse
/// an AS that does not advertise it. Everything else, `issuer` included, is unchanged.
pub(crate) fn keycloak_as_metadata(
    oidc_config: &[u8],
    registration_url: &str,
) -> Result<Vec<u8>, String> {
    let mut doc = parse_as_doc(oidc_config)?;
    doc.insert(
        "registration_endpoint".into(),
        Value::String(registration_url.into()),
    );
    doc.entry("code_challenge_methods_supported")
        .or_insert_with(|| Value::Array(vec![Value::String("S256".into())]));
    Ok(to_bytes(doc))
}

/// Adds `audience=<audience>` (percent-encoded) to `authorization_endpoint` with `?` or `&`,
/// before any fragment; unchanged if the query already has an `audience` parameter.
/// Auth0 ignores RFC 8707 `resource` unless a tenant profile is enabled, so without this the
/// token is not issued for the API. Errors if `authorization_endpoint` is missing.
pub(crate) fn auth0_as_metadata(oidc_config: &[u8], audience: &str) -> Result<Vec<u8>, String> {
    let mut doc = parse_as_doc(oidc_config)?;
    let endpoint = match doc.get("authorization_endpoint") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err("AS metadata has no string \"authorization_endpoint\"".into()),
    };
    let updated = add_query_param(endpoint, "audience", audience);
    doc.insert("authorization_endpoint".into(), Value::String(updated));
    Ok(to_bytes(doc))
}

/// Validates (a JSON object with a non-empty string `issuer`) and returns the bytes as fetched.
pub(crate) fn generic_as_metadata(oidc_config: &[u8]) -> Result<Vec<u8>, String> {
    parse_as_doc(oidc_config)?;
    Ok(oidc_config.to_vec())
}

fn parse_as_doc(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("AS metadata is not valid JSON: {e}"))?;
    let Value::Object(doc) = doc else {
        return Err("AS metadata is not a JSON object".into());
    };
    match doc.get("issuer") {
        Some(Value::String(s)) if !s.is_empty() => Ok(doc),
        _ => Err("AS metadata has no non-empty string \"issuer\"".into()),
    }
}

fn to_bytes(doc: Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(&Value::Object(doc)).expect("Value serialises")
}

fn add_query_param(url: &str, name: &str, value: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let query = base.split_once('?').map(|(_, q)| q);
    let present = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == name)
    });
    if present {
        return url.to_owned();
    }
    let sep = match query {
        None => "?",
        Some("") => "",
        Some(q) if q.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{base}{sep}{name}={}", percent_encode(value));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn trim_one_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}
