//! Route `policies` (agentgateway `FilterOrPolicy`), both dialects, minus the auth policies
//! which live in [`super::auth`].
//!
//! Every key agentgateway accepts here is a field: implemented ones are typed, the rest are
//! [`Unsupported`] so validation can name them. Values (durations, status codes, header names)
//! are checked in `config::validate`, not here.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::auth::{JwtAuth, McpAuthentication};
use super::serde_util::{Body, Unsupported};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Policies {
    pub request_header_modifier: Option<HeaderModifier>,
    pub response_header_modifier: Option<HeaderModifier>,
    pub request_redirect: Option<RequestRedirect>,
    pub url_rewrite: Option<UrlRewrite>,
    pub direct_response: Option<DirectResponse>,
    pub cors: Option<Cors>,
    /// Backend policy: the route must have exactly one backend.
    pub mcp_authentication: Option<McpAuthentication>,
    pub jwt_auth: Option<JwtAuth>,
    /// Backend policy: the route must have exactly one backend.
    pub backend_auth: Option<BackendAuth>,
    pub timeout: Option<Timeout>,

    pub request_mirror: Option<Unsupported>,
    /// Backend policy (agentgateway applies it to the route's one backend): which tools,
    /// prompts and resources a caller may see and use.
    pub mcp_authorization: Option<RuleSet>,
    pub mcp_guardrails: Option<Unsupported>,
    /// Which HTTP requests the route serves (403 otherwise).
    pub authorization: Option<RuleSet>,
    pub a2a: Option<Unsupported>,
    pub ai: Option<Unsupported>,
    /// Backend policy: TLS to the route's backend (and its MCP targets).
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<BackendTls>,
    pub backend_tunnel: Option<Unsupported>,
    /// A list of token buckets (both dialects); the current dialect's `{conditional: …}` form
    /// is refused by name. Parsed in lowering, which names every bad field with its path.
    pub local_rate_limit: Option<serde_json::Value>,
    pub remote_rate_limit: Option<Unsupported>,
    pub oidc: Option<Unsupported>,
    pub basic_auth: Option<Unsupported>,
    pub api_key: Option<Unsupported>,
    pub ext_authz: Option<Unsupported>,
    pub ext_proc: Option<Unsupported>,
    pub transformations: Option<Unsupported>,
    pub csrf: Option<Unsupported>,
    pub buffer: Option<Unsupported>,
    pub retry: Option<Unsupported>,
    pub delay: Option<Unsupported>,
}

/// `backendTLS` (agentgateway `LocalBackendTLS`, both dialects; `subjectAltNames`,
/// `keyExchangeGroups` and `spiffe` are current only).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BackendTls {
    /// Client certificate chain (PEM file) for mTLS.
    pub cert: Option<String>,
    /// Its private key (PEM file).
    pub key: Option<String>,
    /// Root certificates (PEM file) instead of the Mozilla set.
    pub root: Option<String>,
    /// The name checked and sent as SNI instead of the backend's host.
    pub hostname: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub insecure_host: bool,
    pub alpn: Option<Vec<String>>,
    pub subject_alt_names: Option<Vec<String>>,
    pub key_exchange_groups: Option<Unsupported>,
    pub spiffe: Option<Unsupported>,
}

/// `mcpAuthorization` / `authorization`: CEL rules (agentgateway `RuleSet`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RuleSet {
    pub rules: Vec<Rule>,
}

/// One rule: a bare string allows (both dialects); the current dialect also has `{allow: …}`,
/// `{deny: …}` and `{require: …}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Rule {
    Allow(String),
    Keyed(KeyedRule),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum KeyedRule {
    Allow(String),
    Deny(String),
    Require(String),
}

/// `requestHeaderModifier` / `responseHeaderModifier`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct HeaderModifier {
    /// Appended without replacing existing values.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Replace existing values.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Authority rewrite for `urlRewrite` / `requestRedirect`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum HostRedirect {
    /// Replace host and port.
    Full(String),
    /// Replace the host, keep the port.
    Host(String),
    /// Replace the port.
    Port(u16),
    /// Use the selected backend's host.
    Auto,
    /// Leave unchanged (current only).
    #[serde(rename = "none")]
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum PathRedirect {
    Full(String),
    /// Replace the matched prefix.
    Prefix(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UrlRewrite {
    pub authority: Option<HostRedirect>,
    pub path: Option<PathRedirect>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RequestRedirect {
    pub scheme: Option<String>,
    pub authority: Option<HostRedirect>,
    pub path: Option<PathRedirect>,
    /// Default 302.
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DirectResponse {
    #[serde(default)]
    pub body: Body,
    /// Required (validated so that current's `conditional` form gets a precise error).
    pub status: Option<u16>,
    pub body_expression: Option<Unsupported>,
    pub headers: Option<Unsupported>,
    pub conditional: Option<Unsupported>,
}

/// CORS, agentgateway `CorsSerde`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Cors {
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// `*`, exact origins, or wildcard-host origins.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Go duration for `Access-Control-Max-Age`.
    pub max_age: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Timeout {
    /// Whole downstream request (Go duration).
    pub request_timeout: Option<String>,
    /// Each upstream request (Go duration).
    pub backend_request_timeout: Option<String>,
}

/// `backendAuth`: only `passthrough` is implemented; the other kinds are named so validation can
/// reject them by name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BackendAuth {
    /// Re-send the validated client token as `Authorization: Bearer` to HTTP targets.
    pub passthrough: Option<Passthrough>,
    pub key: Option<Unsupported>,
    pub gcp: Option<Unsupported>,
    pub aws: Option<Unsupported>,
    pub azure: Option<Unsupported>,
    pub jwt_sign: Option<Unsupported>,
    pub oauth_token_exchange: Option<Unsupported>,
    pub cross_app_access: Option<Unsupported>,
    pub credentials: Option<Unsupported>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Passthrough {
    /// Current only.
    pub location: Option<Unsupported>,
}
