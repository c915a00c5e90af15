//! Serving downstream connections: the per-connection loop (`conn`), the per-request decision
//! (`dispatch`), OAuth discovery documents (`discovery`), the request head sent upstream
//! (`forward_head`), the plain HTTP forward (`proxy`), the streamable-HTTP rules of MCP toward
//! clients (`mcp`, which hands calls to the relay) and the per-worker state a connection uses
//! (`ctx`).
//!
//! Not here: the codec (`http`), authentication state and key management (`auth`), MCP
//! sessions and targets (`relay`), threads and lifecycles (`runtime`).

pub mod conn;
pub mod ctx;
pub mod decision;
pub mod discovery;
pub mod dispatch;
pub mod forward_head;
pub mod mcp;
pub mod proxy;
