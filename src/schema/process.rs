//! The top-level `config:` section (process settings read at startup), both dialects.
//!
//! Keys with no security meaning that Portcullis does not use are typed [`Ignored`]; keys whose
//! behaviour Portcullis does not implement are [`Unsupported`] and rejected by validation.
//! Durations stay Go-style strings here; `config::validate` checks them.
//!
//! Ignored (accepted, no effect; each one set is named in a warning at every load, see
//! `config::lower::settings`): `enableIpv6`, `localXdsPath`, `caAddress`, `caAuthToken`,
//! `xdsAddress`, `xdsAuthToken`, `trustDomain`, `additionalTrustDomains`,
//! `skipValidateTrustDomain`, `serviceAccount`, `clusterId`, `network`,
//! `hbone`, `dns`, `histograms`, `standardAttributes`, `modelCatalog`, `customFunctions`.
//! Used: `namespace` and `gateway` (the `gateway` metric label), `metrics.remove`.
//! Unsupported (rejected): `database`, `storage`, `spiffe`, `session`, `sensitiveHeaders`,
//! `logging.database`, `tracing`, `metrics.fields`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::serde_util::{Ignored, StringOrList, Unsupported, WorkerThreads};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Config {
    /// Admin UI address, `ip:port` (agentgateway default `localhost:15000`).
    pub admin_addr: Option<String>,
    /// Prometheus metrics address (agentgateway default `[::]:15020`).
    pub stats_addr: Option<String>,
    /// Readiness probe address (agentgateway default `[::]:15021`).
    pub readiness_addr: Option<String>,
    /// Max time to drain connections on shutdown (Go duration).
    pub connection_termination_deadline: Option<String>,
    /// Min time to allow for graceful termination (Go duration).
    pub connection_min_termination_deadline: Option<String>,
    pub worker_threads: Option<WorkerThreads>,
    pub logging: Option<Logging>,
    pub backend: Option<BackendConfig>,
    /// v0.10.5 only (moved to `frontendPolicies` in current).
    pub listener: Option<ListenerConfig>,

    pub enable_ipv6: Option<Ignored>,
    pub local_xds_path: Option<Ignored>,
    pub ca_address: Option<Ignored>,
    pub ca_auth_token: Option<Ignored>,
    pub xds_address: Option<Ignored>,
    pub xds_auth_token: Option<Ignored>,
    /// With `gateway`, agentgateway's `gateway` metric label (`<namespace>/<gateway>`).
    pub namespace: Option<String>,
    pub gateway: Option<String>,
    pub trust_domain: Option<Ignored>,
    pub additional_trust_domains: Option<Ignored>,
    pub skip_validate_trust_domain: Option<Ignored>,
    pub service_account: Option<Ignored>,
    pub cluster_id: Option<Ignored>,
    pub network: Option<Ignored>,
    /// OTLP tracing (v0.10.5 shape; the current dialect moved it to `frontendPolicies`).
    pub tracing: Option<TracingConfig>,
    pub metrics: Option<MetricsConfig>,
    pub hbone: Option<Ignored>,
    /// `lookupFamily` is used; `edns0` has no effect (the system resolver's setting stays).
    pub dns: Option<DnsConfig>,
    pub histograms: Option<Ignored>,
    pub standard_attributes: Option<Ignored>,
    pub model_catalog: Option<Ignored>,
    pub custom_functions: Option<Ignored>,

    pub database: Option<Unsupported>,
    pub storage: Option<Unsupported>,
    pub spiffe: Option<Unsupported>,
    pub session: Option<Unsupported>,
    /// MCP process settings (current dialect): `sessionTtl`.
    pub mcp: Option<McpSettings>,
    pub sensitive_headers: Option<Unsupported>,
}

/// `config.tracing`: exported over OTLP/HTTP; sampling expressions must be constants.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TracingConfig {
    /// The collector, e.g. `http://otel-collector:4318`.
    pub otlp_endpoint: Option<String>,
    /// Headers of each export request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `http` (OTLP/HTTP, protobuf). agentgateway's default `grpc` is refused: say `http`.
    pub otlp_protocol: Option<String>,
    /// The OTLP path, default `/v1/traces`.
    pub path: Option<String>,
    /// Custom span fields (CEL): refused.
    pub fields: Option<Unsupported>,
    /// Probability (0–1, or true/false) of tracing a request without a trace context; default 0.
    pub random_sampling: Option<serde_json::Value>,
    /// Probability of tracing a request that carries one; default 1.
    pub client_sampling: Option<serde_json::Value>,
}

/// `config.dns` (current dialect).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DnsConfig {
    /// `All`, `Auto`, `V4Preferred`, `V4Only` or `V6Only`.
    pub lookup_family: Option<String>,
    pub edns0: Option<Ignored>,
}

/// `config.metrics`: `remove` is honoured; custom `fields` (CEL) are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// Metric names not to export (agentgateway's short names or full names).
    #[serde(default)]
    pub remove: Vec<String>,
    pub fields: Option<Unsupported>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Logging {
    /// CEL expression selecting which requests are logged.
    pub filter: Option<String>,
    pub fields: Option<LoggingFields>,
    /// A level (`info`), a comma list, or a list of `target=level` directives.
    pub level: Option<StringOrList>,
    pub format: Option<LogFormat>,
    pub database: Option<Unsupported>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LoggingFields {
    #[serde(default)]
    pub remove: Vec<String>,
    /// Field name → CEL expression.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BackendConfig {
    pub keepalives: Option<Keepalives>,
    /// Default `10s`.
    pub connect_timeout: Option<String>,
    /// Default `1m30s`.
    pub pool_idle_timeout: Option<String>,
    pub pool_max_size: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Keepalives {
    /// Default `true`.
    pub enabled: Option<bool>,
    /// Default `3m0s`.
    pub time: Option<String>,
    /// Default `3m0s`.
    pub interval: Option<String>,
    /// Default 9.
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ListenerConfig {
    /// Default 2097152.
    pub max_buffer_size: Option<u64>,
    /// Default `15s`.
    pub tls_handshake_timeout: Option<String>,
    pub http1_max_headers: Option<u64>,
    /// Default `10m0s`.
    pub http1_idle_timeout: Option<String>,
    pub http2_window_size: Option<u32>,
    pub http2_connection_window_size: Option<u32>,
    pub http2_frame_size: Option<u32>,
    pub http2_keepalive_interval: Option<String>,
    pub http2_keepalive_timeout: Option<String>,
}

/// `config.mcp`: MCP session settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct McpSettings {
    /// Idle MCP sessions end after this long (Go duration; default 30m).
    pub session_ttl: Option<String>,
    /// Portcullis: sessions one subject (or client) may hold at once (default 64) → 429.
    pub max_sessions_per_subject: Option<u32>,
    /// Portcullis: sessions one worker may own (default 1000) → 503.
    pub max_sessions_per_worker: Option<u32>,
    /// Portcullis: stdio MCP server processes running at once (default 256) → 503.
    pub max_stdio_processes: Option<u32>,
    /// Portcullis: bytes of MCP request bodies one worker buffers at once (default 64 MiB) → 503.
    pub max_buffered_bytes: Option<u64>,
}
