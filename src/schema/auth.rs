//! `mcpAuthentication` and `jwtAuth` in both dialects.
//!
//! v0.10.5 `mcpAuthentication` has `audience` (string) and `jwksUrl` (string, `""` = derive);
//! current has `audiences` (list), `jwks` (`{url}`, `{file}` or inline JSON), `mode`,
//! `jwtValidationOptions`, `clientId`, `clientSecret`. Both sets are optional fields here;
//! `config::validate` enforces presence and rejects mixing dialects for the same field.
//! JWKS derivation from issuer/provider is lowering's job, not this module's.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::serde_util::Unsupported;

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct McpAuthentication {
    /// Compared with the token's `iss`; base for authorization-server metadata.
    pub issuer: String,
    /// v0.10.5: the single accepted `aud`.
    pub audience: Option<String>,
    /// Current: accepted `aud` values.
    pub audiences: Option<Vec<String>>,
    /// v0.10.5: JWKS URL; `""` means derive from issuer and provider.
    pub jwks_url: Option<String>,
    /// Current: JWKS source; absent means derive from issuer and provider.
    pub jwks: Option<Jwks>,
    pub provider: Option<McpProvider>,
    /// RFC 9728 protected-resource metadata; free-form, camelCase keys are emitted snake_case.
    /// Sorted by key, like agentgateway's `BTreeMap`.
    pub resource_metadata: BTreeMap<String, serde_json::Value>,
    /// Current only; current agentgateway defaults to `strict`.
    pub mode: Option<AuthMode>,
    pub jwt_validation_options: Option<JwtValidationOptions>,
    /// Current only: mock dynamic client registration.
    pub client_id: Option<String>,
    /// Current only: injected into proxied token requests (Entra).
    pub client_secret: Option<String>,
    pub authorization_location: Option<Unsupported>,
}

/// Identity-provider adapter (externally tagged empty objects, e.g. `{keycloak: {}}`).
/// v0.10.5 knows `auth0` and `keycloak`; the others are current only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) enum McpProvider {
    Auth0 {},
    Keycloak {},
    Okta {},
    Descope {},
    Authentik {},
    Entra {},
}

/// `strict` | `optional` | `permissive` for both `mcpAuthentication.mode` and `jwtAuth.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum AuthMode {
    Strict,
    Optional,
    Permissive,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct JwtValidationOptions {
    /// Default `["exp"]`.
    pub required_claims: Option<Vec<String>>,
}

/// JWKS source: `{url: ..}`, `{file: ..}` or an inline JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Jwks {
    Url(String),
    File(String),
    Inline(String),
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JwksObject {
    url: Option<String>,
    file: Option<String>,
}

impl<'de> Deserialize<'de> for Jwks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Jwks;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an inline JWKS string, {url: ..} or {file: ..}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Jwks::Inline(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                // Going through the original MapAccess keeps path tracking for unknown keys.
                let obj = JwksObject::deserialize(MapAccessDeserializer::new(map))?;
                match (obj.url, obj.file) {
                    (Some(u), None) => Ok(Jwks::Url(u)),
                    (None, Some(f)) => Ok(Jwks::File(f)),
                    _ => Err(de::Error::custom("expected exactly one of `url` or `file`")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Jwks {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Jwks".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The key set: an inline JWKS (a JSON string), {url} or {file}.",
            "anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"], "additionalProperties": false},
                {"type": "object", "properties": {"file": {"type": "string"}}, "required": ["file"], "additionalProperties": false}
            ]
        })
    }
}

/// `jwtAuth`: single provider (`issuer`, `audiences`, `jwks` at top level) or multi
/// (`providers: [..]`). Exactly one form is enforced by validation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct JwtAuth {
    /// Default `optional`.
    pub mode: Option<AuthMode>,
    pub location: Option<Unsupported>,
    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub jwks: Option<Jwks>,
    pub jwt_validation_options: Option<JwtValidationOptions>,
    pub providers: Option<Vec<JwtProvider>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct JwtProvider {
    pub issuer: String,
    pub audiences: Option<Vec<String>>,
    pub jwks: Jwks,
    pub jwt_validation_options: Option<JwtValidationOptions>,
}
