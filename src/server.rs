//! Serving downstream connections: the per-connection loop (`conn`), the per-request decision
//! (`dispatch`), authorization rules (`authorize`), OAuth discovery documents (`discovery`), the request head sent upstream
//! (`forward_head`), the plain HTTP forward (`proxy`), the streamable-HTTP rules of MCP toward
//! clients (`mcp`, which hands calls to the relay) and the per-worker state a connection uses
//! (`ctx`).
//!
//! Not here: the codec (`http`), authentication state and key management (`auth`), MCP
//! sessions and targets (`relay`), threads and lifecycles (`runtime`).

pub(crate) mod authorize;
pub(crate) mod conn;
pub(crate) mod ctx;
pub(crate) mod decision;
pub(crate) mod discovery;
pub(crate) mod dispatch;
pub(crate) mod forward_head;
pub(crate) mod mcp;
pub(crate) mod proxy;
