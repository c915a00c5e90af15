//! Serde wire model of agentgateway's local YAML config, accepting both the v0.10.5
//! (`schema/local.json`) and the current (`schema/config.json`) dialects in one set of types.
//!
//! Owns: field names, camelCase renames, `deny_unknown_fields`, defaults agentgateway applies at
//! parse time. Does not: validate values, resolve defaults that need context (names, JWKS URLs),
//! or build runtime structures — that is `config::validate` and lowering. Also the error type
//! that names a place in this model ([`ConfigError`], `error`). A leaf: it imports nothing of the
//! crate, so both `config` and `auth` (which lowers its own policies) can build on it.
//!
//! Every key agentgateway accepts is a field: implemented ones are typed, process-tuning ones are
//! [`Ignored`], and the rest are [`Unsupported`] so they are reported by name instead of dropped.
//! Top-level unsupported sections: `policies`, `gatewayPolicies`, `frontendPolicies`,
//! `workloads`, `services`, `backends`, `routeGroups`, `gateways`, `routes`, `tcpRoutes`, `llm`,
//! `mcp`, `ui`.

mod auth;
mod backend;
mod bind;
pub(crate) mod error;
mod policy;
mod process;
mod route;
mod serde_util;

use serde::Deserialize;

pub(crate) use error::ConfigError;
pub use error::ConfigErrors;

pub(crate) use auth::{
    AuthMode, Jwks, JwtAuth, JwtProvider, JwtValidationOptions, McpAuthentication, McpProvider,
};
pub(crate) use backend::{
    Backend, BackendKind, BackendPolicies, HttpTarget, McpBackend, McpTarget, McpTargetKind,
    PrefixMode, StatefulMode, StdioTarget,
};
pub(crate) use bind::{Bind, Listener, ListenerTls, Protocol};
pub(crate) use policy::{
    BackendAuth, BackendTls, Cors, DirectResponse, HeaderModifier, HostRedirect, KeyedRule,
    PathRedirect, Policies, RequestRedirect, Rule, RuleSet, Timeout, UrlRewrite,
};
pub(crate) use process::{BackendConfig, Config, ListenerConfig, LogFormat, Logging, McpSettings};
#[cfg(test)]
pub(crate) use route::PathRegex;
pub(crate) use route::{Match, PathMatch, Route, ValueMatch};
#[cfg(test)]
pub(crate) use serde_util::Body;
pub(crate) use serde_util::{StringOrList, Unsupported, WorkerThreads};

/// The whole file (agentgateway `LocalConfig`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[schemars(
    title = "Portcullis configuration",
    description = "agentgateway's local configuration (v0.10.5 and current dialects), as Portcullis accepts it. Keys marked x-portcullis: unsupported are agentgateway features Portcullis refuses; x-portcullis: no-effect keys load with a warning."
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LocalConfig {
    /// Process settings, read at startup only.
    pub config: Option<Config>,
    #[serde(default)]
    pub binds: Vec<Bind>,

    pub policies: Option<Unsupported>,
    pub gateway_policies: Option<Unsupported>,
    pub frontend_policies: Option<Unsupported>,
    pub workloads: Option<Unsupported>,
    pub services: Option<Unsupported>,
    pub backends: Option<Unsupported>,
    pub route_groups: Option<Unsupported>,
    pub gateways: Option<Unsupported>,
    pub routes: Option<Unsupported>,
    pub tcp_routes: Option<Unsupported>,
    pub llm: Option<Unsupported>,
    pub mcp: Option<Unsupported>,
    pub ui: Option<Unsupported>,
}

/// The JSON Schema (2020-12) of the config Portcullis accepts, generated from the wire model:
/// `portcullis schema` prints it, for editors (`# yaml-language-server: $schema=…`).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(LocalConfig);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
