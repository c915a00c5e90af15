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
#![warn(unreachable_pub)]

mod auth;
mod config;
mod http;
mod mcp;
mod metrics;
mod net;
mod policy;
mod readiness;
mod relay;
mod routing;
mod runtime;
mod server;
mod shard;
mod snapshot;
mod telemetry;

// What the `portcullis` and `mcp-load` commands and the integration tests use.
pub use config::{load_bytes, ConfigErrors};
pub use runtime::{build_runtime, run, ConfigSource, RunOptions, Runtime};
pub use snapshot::Snapshot;
pub use telemetry::{init as init_logging, LogGuard};

/// Entry points for `fuzz/` and `benches/` (not an API).
#[doc(hidden)]
pub mod fuzzing;
