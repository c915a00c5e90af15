//! Portcullis: a thread-per-core, io_uring edge proxy that puts MCP Authorization in front of
//! MCP servers and reads agentgateway's YAML configuration.
//!
//! The map of the code, its layers and invariants are in `ARCHITECTURE.md`. In brief: `config`
//! lowers agentgateway YAML (either dialect) into an immutable `Snapshot`; `runtime` runs one
//! monoio worker per core, each with its own listeners, and the control plane (config watch,
//! key manager, DNS) off the workers; `server` answers each request (routing, policies, MCP
//! authentication from `auth`), forwards it with the upstream client in `net`, or hands MCP
//! calls to `relay`, which owns the sessions and the stdio / HTTP / SSE targets. `http`,
//! `routing`, `policy` and `mcp` are sans-IO, fuzzed and benchmarked.
//!
//! Not here: HTTP/2 (refused with a clear error), TCP/TLS passthrough listeners.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod auth;
mod cluster;
mod config;
mod http;
mod mcp;
mod metrics;
mod net;
mod otel;
mod policy;
mod readiness;
mod relay;
mod routing;
mod runtime;
mod schema;
mod server;
mod shard;
mod snapshot;
mod telemetry;

// What the `portcullis` and `mcp-load` commands and the integration tests use.
pub use config::{load_bytes, ConfigErrors};
pub use runtime::{build_runtime, run, ConfigSource, RunOptions, Runtime};
pub use schema::json_schema as config_schema;
pub use snapshot::Snapshot;
pub use telemetry::{init as init_logging, LogGuard};

/// Entry points for `fuzz/` and `benches/` (not an API).
#[doc(hidden)]
pub mod fuzzing;
/// Token minting for `mcp-load` and the integration tests (not an API).
#[doc(hidden)]
pub mod mint;
