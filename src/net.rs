//! Socket-level building blocks shared by the server, the relay and the control plane: the
//! connection trait and buffers of a downstream connection (`io`), the server side of TLS
//! (`tls_conn`), the upstream HTTP/1.1 client (`client`) and its idle pool (`pool`), name resolution off the
//! workers (`dns`) and URL parsing (`url`).
//!
//! Not here: HTTP semantics (`http`, `server`) or MCP (`relay`).

pub(crate) mod addr;
pub(crate) mod client;
pub(crate) mod dns;
pub(crate) mod io;
pub(crate) mod pool;
pub(crate) mod tls_conn;
pub(crate) mod url;
