//! MCP authentication as lowered from the config (`auth::lower`) and read by the workers
//! and the key manager: per-route policies with their answers pre-rendered, the key sources and
//! discovery documents the control plane keeps fresh, and what the well-known paths serve.

use std::sync::Arc;

use crate::http::response::Prebuilt;
use crate::net::addr::HostTarget;

/// Something the control plane fetches (or reads) and publishes to every worker by `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: Arc<str>,
    pub kind: SourceKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    JwksUrl(String),
    JwksFile(std::path::PathBuf),
    JwksInline(Vec<u8>),
    /// An OpenID discovery document, rewritten for the gateway and served as AS metadata.
    AsMetadata {
        url: String,
        rewrite: AsRewrite,
        /// The configured issuer, checked against the document's (trailing slash included).
        issuer: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsRewrite {
    Generic,
    /// `registration_endpoint` replaced by the gateway's DCR proxy. When the route's public
    /// origin is not configured, the URL starts with [`ORIGIN_PLACEHOLDER`], replaced per request.
    Keycloak {
        registration_url: String,
    },
    Auth0 {
        audience: String,
    },
}

/// Stands for the requesting origin (`scheme://host`) in documents whose origin is only known
/// per request.
pub(crate) const ORIGIN_PLACEHOLDER: &str = "{{portcullis-origin}}";

/// An authentication policy compiled for one route.
#[derive(Debug)]
pub struct AuthPolicy {
    pub mode: AuthMode,
    pub providers: Vec<AuthProvider>,
    /// MCP resource-server behaviour (`mcpAuthentication`): discovery and challenges.
    pub mcp: Option<Arc<McpAuthMeta>>,
    /// Keep the client's `Authorization` header when forwarding (`backendAuth: passthrough`).
    pub passthrough: bool,
    /// Answers rendered at load: no token, invalid token, keys not loaded yet.
    pub missing: Prebuilt,
    pub invalid: Prebuilt,
    pub unavailable: Prebuilt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A valid token is required.
    Strict,
    /// No token passes; an invalid one is rejected.
    Optional,
    /// Never rejects; claims are attached when a token is valid.
    Permissive,
}

#[derive(Debug)]
pub struct AuthProvider {
    /// Unique within a snapshot: verified-token caches are kept per provider, so a token accepted
    /// for one audience is never taken from the cache for another.
    pub id: u64,
    /// The key set's [`Source`] id.
    pub keys: Arc<str>,
    pub validation: crate::policy::mcp_auth::Validation,
}

/// Discovery for one protected MCP route.
#[derive(Debug)]
pub struct McpAuthMeta {
    /// The public path of the MCP endpoint (from `resourceMetadata.resource`, else the route).
    pub route_path: String,
    /// `resource` as configured; when absent it is derived per request from scheme, Host and
    /// `route_path`.
    pub resource: Option<String>,
    pub authorization_servers: Vec<String>,
    pub resource_metadata: std::collections::BTreeMap<String, serde_json::Value>,
    pub scopes: Vec<String>,
    /// The protected-resource metadata, rendered once when `resource` is configured.
    pub prm: Option<Prebuilt>,
    /// AS metadata served at the gateway (`Source` id), for providers that need it.
    pub as_metadata: Option<Arc<str>>,
    /// Where the DCR proxy forwards registrations (Keycloak).
    pub registration_upstream: Option<Registration>,
}

/// What a well-known path on a listener serves.
#[derive(Debug, Clone)]
pub enum WellKnown {
    Prm(Arc<McpAuthMeta>),
    AsMetadata(Arc<McpAuthMeta>),
    Registration(Arc<McpAuthMeta>),
}

/// The IdP endpoint the DCR proxy forwards registrations to.
#[derive(Debug)]
pub struct Registration {
    pub target: HostTarget,
    pub path: String,
    /// HTTPS (with the Mozilla roots).
    pub https: bool,
}
