//! `binds[]` and `binds[].listeners[]`, both dialects.
//!
//! Owns the shapes only; "HTTPS needs tls", "routes required", unique ports and the rejection of
//! TLS/TCP/HBONE listeners live in `config::validate`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::route::Route;
use super::serde_util::Unsupported;

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Bind {
    /// Listens on `[::]:port`. Required (current agentgateway's internal port-less binds are not
    /// supported).
    pub port: u16,
    pub listeners: Vec<Listener>,
    /// Current only: `direct` | … — unsupported.
    pub tunnel_protocol: Option<Unsupported>,
    /// Current only: `standard` | `internal` — unsupported.
    pub mode: Option<Unsupported>,
}

/// Listener protocol; agentgateway spells it UPPERCASE. Default `HTTP`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum Protocol {
    #[default]
    Http,
    Https,
    Tls,
    Tcp,
    Hbone,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Listener {
    /// Default `listener<idx>`.
    pub name: Option<String>,
    /// Default `bind/<port>`.
    pub gateway_name: Option<String>,
    /// Current only.
    pub namespace: Option<String>,
    /// May be a wildcard (`*.example.com`); absent or `""` means any host.
    pub hostname: Option<String>,
    #[serde(default)]
    pub protocol: Protocol,
    pub tls: Option<ListenerTls>,
    /// Required for HTTP/HTTPS.
    pub routes: Option<Vec<Route>>,
    pub tcp_routes: Option<Unsupported>,
    /// Current only: listener-level gateway policies — unsupported.
    pub policies: Option<Unsupported>,
}

/// Server TLS for an HTTPS listener: PEM file paths.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ListenerTls {
    /// Path to the certificate chain (PEM). Required.
    pub cert: Option<String>,
    /// Path to the private key (PEM). Required.
    pub key: Option<String>,
    pub mode: Option<Unsupported>,
    pub root: Option<Unsupported>,
    pub spiffe: Option<Unsupported>,
    pub cipher_suites: Option<Unsupported>,
    #[serde(rename = "minTLSVersion")]
    pub min_tls_version_upper: Option<Unsupported>,
    pub min_tls_version: Option<Unsupported>,
    #[serde(rename = "maxTLSVersion")]
    pub max_tls_version_upper: Option<Unsupported>,
    pub max_tls_version: Option<Unsupported>,
    pub key_exchange_groups: Option<Unsupported>,
}
