//! Per-route HTTP policies that are pure functions of configuration and request bytes:
//! CORS (`cors`), request/response header modification (`headers`) and path rewriting
//! (`rewrite`). Each is compiled once at config lowering; the request path only reads.
//!
//! Does not: do I/O, decide status codes for errors, or run authentication (that lives in
//! `policy::mcp_auth`, owned elsewhere).

pub(crate) mod authz;
pub(crate) mod cors;
pub(crate) mod headers;
pub(crate) mod mcp_auth;
pub(crate) mod mcp_auth_meta;
pub(crate) mod rate_limit;
pub(crate) mod rewrite;
mod validate;
