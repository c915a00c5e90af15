//! Portcullis: a thread-per-core, io_uring edge proxy that puts MCP Authorization in front of
//! MCP servers and reads agentgateway's YAML configuration.
//!
//! Architecture in brief:
//! - `config` turns YAML (agentgateway v0.10.5 or current dialect) into a serde wire model, then
//!   lowers it into an immutable, validated [`snapshot::Snapshot`]; only lowering validates.
//! - `runtime` starts one monoio runtime per worker thread, each with its own SO_REUSEPORT
//!   listener per bind; a control thread watches the config and publishes new snapshots.
//! - `http` holds the sans-IO HTTP/1.1 codec (`http::h1`) and the per-connection I/O loop.
//! - `routing` and `policy` are pure: they match requests and decide, they never do I/O;
//!   `policy::mcp_auth` validates JWTs, `policy::mcp_auth_meta` renders discovery documents.
//! - `http::auth` decides per request with worker-local key sets and token caches, which the key
//!   manager (`runtime::keys`, off the workers) keeps fresh.
//! - `mcp` is the sans-IO MCP vocabulary (JSON-RPC, SSE, transport rules, merging); `relay`
//!   moves MCP traffic between clients and stdio / HTTP / SSE servers, sessions owned per worker.
//! - `admin` serves Prometheus metrics and readiness, aggregating per-worker counters at scrape.
//!
//! Not here: HTTP/2 (refused with a clear error), TCP/TLS passthrough listeners.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod readiness;
pub mod relay;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod snapshot;
pub mod telemetry;

#[doc(hidden)]
pub mod fuzzing;
