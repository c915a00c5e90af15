//! HTTP/1.1: the sans-IO codec (`h1`), the per-request decision (`dispatch`), locally generated
//! responses (`response`), and the I/O that moves bytes (`conn` downstream, `proxy` + `pool`
//! upstream).
//!
//! Not here: HTTP/2 (a prior-knowledge preface is refused with a clear error), WebSocket upgrades.

pub mod auth;
pub mod conn;
pub mod discovery;
pub mod dispatch;
pub mod h1;
pub mod pool;
pub mod proxy;
pub mod response;
pub mod tls_conn;
pub mod upstream;
