//! MCP authorization metadata, sans-IO: the RFC 9728 PRM document, `WWW-Authenticate`
//! challenges and error bodies, provider adapters over the IdP's discovery document, and config
//! sanity warnings. All of it is rendered once per config load (or per fetched document), never
//! per request. Does not: fetch, validate tokens, or route. Self-contained (bound for `mcp_auth`).
//!
//! # Design: how MCP clients discover the authorization server through Portcullis
//!
//! 1. A tokenless MCP request gets 401 + `Bearer resource_metadata="<PRM URL>"`; the PRM is also
//!    served at the path-inserted and root well-known URLs (A2, A3).
//! 2. PRM `authorization_servers` is `[issuer]` exactly as configured — the IdP's real issuer,
//!    trailing slash included — for every provider. Clients fetch AS metadata whose `issuer` is
//!    byte-identical, so RFC 8414 §3.3 checks pass, and the RFC 9207 `iss` on the redirect (the
//!    IdP's own) matches what they expect, which the Python SDK 2.x verifies.
//! 3. Keycloak ≤ 26.3 serves metadata only at `<issuer>/.well-known/openid-configuration`;
//!    modern clients (TS SDK since PR #748, Python SDK) try that path-append form themselves.
//! 4. For clients that only look at the MCP server's origin (2025-03-26 style, or RFC 8414 path
//!    insertion only) the gateway also serves AS metadata at
//!    `/.well-known/oauth-authorization-server<route path>` and at the root form: the IdP's
//!    document with `issuer` unchanged; for Keycloak `registration_endpoint` points at the
//!    gateway's CORS-enabled DCR proxy (`…/client-registration` →
//!    `<issuer>/clients-registrations/openid-connect`), for Auth0 `authorization_endpoint` gets
//!    `audience=`.
//!
//! Why not agentgateway's approach: with a provider set it lists the gateway URL in
//! `authorization_servers` and (at HEAD) rewrites the served `issuer` to the gateway URL. At
//! v0.10.5 the served `issuer` is the IdP's, so it differs from the `authorization_servers`
//! entry and strict clients abort on the RFC 8414 §3.3 check. At HEAD that check passes, but the
//! authorization response's `iss` (RFC 9207) and the ID token's `iss` are the IdP's, not the
//! gateway's, so clients that verify them (Python SDK 2.x; a MUST in 2026-07-28) reject the
//! login. A proxy may copy AS metadata, never impersonate the issuer.
//!
//! Trade-off: a browser client that follows the real issuer registers at Keycloak's own DCR
//! endpoint, which lacks CORS on Keycloak ≤ 26.4 (keycloak#39629), so browser DCR fails there
//! (pre-register the client or upgrade); the gateway-served copy only helps clients that look
//! at the gateway. Likewise Auth0 clients that follow the real issuer get no `audience=` unless
//! the tenant sets a default audience or enables the Resource Parameter Compatibility Profile.

mod challenge;
mod prm;
mod provider;
mod sanity;
mod url;

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use challenge::is_scope_token;
pub(crate) use challenge::{body_insufficient_scope, challenge_insufficient_scope};
pub(crate) use challenge::{body_invalid, challenge_invalid, challenge_missing, BODY_MISSING};
#[cfg(test)]
pub(crate) use prm::camel_to_snake;
pub(crate) use prm::render_prm;
pub(crate) use provider::{
    auth0_as_metadata, default_jwks_url, discovery_url, generic_as_metadata, keycloak_as_metadata,
    keycloak_registration_target, Provider,
};
pub(crate) use sanity::sanity_warnings;
pub(crate) use url::{parse_resource_url, prm_url};
#[cfg(test)]
pub(crate) use url::{ResourceUrl, PRM_WELL_KNOWN};
