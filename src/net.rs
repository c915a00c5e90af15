//! Socket-level building blocks shared by the server, the relay and the control plane: the
//! connection trait and buffers of a downstream connection (`io`), the server side of TLS
//! (`tls_conn`), the idle pool of upstream connections (`pool`) and URL parsing (`url`).
//!
//! Not here: HTTP semantics (`http`, `server`) or MCP (`relay`).

pub mod addr;
pub mod io;
pub mod pool;
pub mod tls_conn;
pub mod url;
