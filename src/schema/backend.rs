//! `routes[].backends[]`: `host` and `mcp` backends with their MCP targets, both dialects.
//!
//! agentgateway's backend and target kinds are externally tagged enums flattened next to
//! `weight`/`name`; serde cannot combine `flatten` with `deny_unknown_fields`, so each kind is an
//! optional field here and `config::validate` enforces "exactly one kind". Unimplemented kinds
//! (`service`, `dynamic`, `ai`, `aws`, `backend`, `routeGroup`, `internal`, `invalid`, target
//! `openapi`) are [`Unsupported`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::policy::{BackendTls, RuleSet};
use super::serde_util::Unsupported;

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Backend {
    /// Relative load-balancing weight, default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// `"addr:port"` or `"name:port"`.
    pub host: Option<String>,
    pub mcp: Option<McpBackend>,

    pub service: Option<Unsupported>,
    pub dynamic: Option<Unsupported>,
    pub ai: Option<Unsupported>,
    pub aws: Option<Unsupported>,
    pub backend: Option<Unsupported>,
    pub route_group: Option<Unsupported>,
    pub internal: Option<Unsupported>,
    pub invalid: Option<Unsupported>,
    /// Current only: per-backend policies.
    pub policies: Option<BackendPolicies>,
}

/// `routes[].backends[].policies` (current dialect, agentgateway `LocalBackendPolicies`): the
/// authorization rule sets are implemented, every other key is refused by name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BackendPolicies {
    pub mcp_authorization: Option<RuleSet>,
    pub authorization: Option<RuleSet>,

    pub a2a: Option<Unsupported>,
    pub ai: Option<Unsupported>,
    pub backend_auth: Option<Unsupported>,
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<BackendTls>,
    pub backend_tunnel: Option<Unsupported>,
    pub ext_authz: Option<Unsupported>,
    pub health: Option<Unsupported>,
    pub http: Option<Unsupported>,
    pub inference_routing: Option<Unsupported>,
    pub mcp_guardrails: Option<Unsupported>,
    pub request_header_modifier: Option<Unsupported>,
    pub request_redirect: Option<Unsupported>,
    pub response_header_modifier: Option<Unsupported>,
    pub session_affinity: Option<Unsupported>,
    pub tcp: Option<Unsupported>,
    pub transformations: Option<Unsupported>,
}

fn default_weight() -> u32 {
    1
}

/// Which supported kind a validated [`Backend`] is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BackendKind<'a> {
    Host(&'a str),
    Mcp(&'a McpBackend),
}

impl Backend {
    /// The backend's kind; `None` only for configs that failed validation.
    pub(crate) fn kind(&self) -> Option<BackendKind<'_>> {
        match (&self.host, &self.mcp) {
            (Some(h), None) => Some(BackendKind::Host(h)),
            (None, Some(m)) => Some(BackendKind::Mcp(m)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct McpBackend {
    pub targets: Vec<McpTarget>,
    /// Default `stateful`.
    pub stateful_mode: Option<StatefulMode>,
    /// Default `conditional`.
    pub prefix_mode: Option<PrefixMode>,
    pub failure_mode: Option<Unsupported>,
    pub dns_rebinding_protection: Option<Unsupported>,
    /// Portcullis: serve MCP 2026-07-28 clients through 2025-era sessions that Portcullis holds
    /// per principal when the targets do not speak 2026-07-28 (default true). Off: those clients
    /// get -32022 and fall back to `initialize` themselves, as with agentgateway.
    pub modern_compat: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum StatefulMode {
    Stateful,
    Stateless,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum PrefixMode {
    /// Prefix tool names only when there are several targets.
    Conditional,
    Always,
    /// Current only.
    Never,
}

/// One upstream MCP server: `name` plus exactly one of `stdio`, `mcp` (streamable HTTP), `sse`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct McpTarget {
    pub name: String,
    pub stdio: Option<StdioTarget>,
    /// Streamable HTTP.
    pub mcp: Option<HttpTarget>,
    pub sse: Option<HttpTarget>,
    pub openapi: Option<Unsupported>,
    /// Current only: transport policies.
    pub policies: Option<Unsupported>,
}

/// Which supported kind a validated [`McpTarget`] is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum McpTargetKind<'a> {
    Stdio(&'a StdioTarget),
    StreamableHttp(&'a HttpTarget),
    Sse(&'a HttpTarget),
}

impl McpTarget {
    /// The target's kind; `None` only for configs that failed validation.
    pub(crate) fn kind(&self) -> Option<McpTargetKind<'_>> {
        match (&self.stdio, &self.mcp, &self.sse) {
            (Some(s), None, None) => Some(McpTargetKind::Stdio(s)),
            (None, Some(h), None) => Some(McpTargetKind::StreamableHttp(h)),
            (None, None, Some(h)) => Some(McpTargetKind::Sse(h)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct StdioTarget {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Current only; agentgateway spells it in snake_case.
    #[serde(rename = "clear_env")]
    pub clear_env: Option<bool>,
}

/// Either `host` + `port` + `path`, or only `host` as an `http(s)://` URL.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct HttpTarget {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    /// Current only: reference to a named top-level backend.
    pub backend: Option<Unsupported>,
}
