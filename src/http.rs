//! HTTP/1.1 without I/O: the codec (`h1`: request heads, bodies, chunked framing, path
//! normalization) and the bytes of locally generated responses (`response`).
//!
//! Not here: anything that reads or writes a socket (`net`, `server`), HTTP/2 (a
//! prior-knowledge preface is refused with a clear error), WebSocket upgrades.

pub(crate) mod authority;
pub(crate) mod h1;
pub(crate) mod response;
