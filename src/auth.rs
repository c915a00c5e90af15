//! MCP authentication end to end: lowering `mcpAuthentication` and `jwtAuth` from the wire
//! model (`lower`) into the types the workers read (`policy`), the only builder of the 401 and
//! 503 answers (`challenge`), and at run time the per-worker state that decides on one request's bearer
//! token (`request`: key sets, verified-token caches, failure and verification budgets), the key
//! manager thread that keeps JWKS and authorization-server metadata fresh (`keys`) and its
//! blocking HTTP fetcher (`fetch`).
//!
//! Not here: JWT parsing and signature checks (`policy::mcp_auth`, sans-IO), the discovery
//! documents' rendering (`policy::mcp_auth_meta`).

pub(crate) mod challenge;
pub(crate) mod fetch;
pub(crate) mod keys;
pub(crate) mod lower;
pub(crate) mod policy;
pub(crate) mod request;
