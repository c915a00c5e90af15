//! Reading the rest of an answer after the relay has what it needs, so that the connection can
//! go back to the worker's pool.

use std::net::SocketAddr;
use std::time::Duration;

use crate::http::h1::ChunkedDecoder;
use crate::net::client::{self, Conn, OwnedTls};

/// How long the rest of an SSE answer may take once its response event has arrived. Servers
/// SHOULD end the stream then; one that keeps it open loses the connection (it is closed, not
/// pooled) instead of holding a socket and a task for as long as it likes.
pub(super) const FINAL_DRAIN: Duration = Duration::from_secs(1);

/// What is left of an answer body when its response event has been handed on.
pub(super) enum Tail {
    Chunked(ChunkedDecoder),
    /// Bytes left of a `content-length` body.
    Length(usize),
}

/// Where a drained connection goes back to: the address, TLS name and per-address bound of
/// the worker's pool.
pub(super) struct PoolSlot {
    pub addr: SocketAddr,
    pub tls: Option<OwnedTls>,
    pub max: usize,
}

/// Reads what is left of an answer (discarding it) for at most [`FINAL_DRAIN`], then returns
/// the connection to the worker's pool, unless the server did not end the body in time: then
/// the connection is closed.
pub(super) async fn drain_tail(mut conn: Conn, mut buf: Vec<u8>, mut tail: Tail, slot: PoolSlot) {
    let deadline = monoio::time::Instant::now() + FINAL_DRAIN;
    loop {
        let (consumed, done) = match &mut tail {
            Tail::Chunked(dec) => match client::dechunk(dec, &buf, |_| {}) {
                Ok(r) => r,
                Err(_) => return,
            },
            Tail::Length(left) => {
                let n = (*left).min(buf.len());
                *left -= n;
                (n, *left == 0)
            }
        };
        buf.drain(..consumed);
        if done {
            if buf.is_empty() {
                let tls = slot.tls.as_ref().map(OwnedTls::tls);
                client::release(slot.addr, tls, conn, buf, slot.max);
            }
            return;
        }
        match monoio::time::timeout_at(deadline, conn.read_more(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}
