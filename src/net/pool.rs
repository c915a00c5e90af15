//! Per-worker keep-alive pool of upstream HTTP/1.1 connections, keyed by socket address.
//!
//! Owns: idle connections and their expiry. Not here: connecting (see `http::proxy`) or any
//! sharing between workers; each worker has its own pool, so there is nothing to lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

/// A pooled connection idle this long that fails before answering was closed while idle (by
/// the server's keep-alive timeout, not a crash): the request may be sent again.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct Pool {
    idle: RefCell<HashMap<SocketAddr, Vec<(TcpStream, Instant)>>>,
}

impl Pool {
    /// The most recently used idle connection to `addr` that is younger than `max_idle`, with
    /// how long it has been idle.
    pub(crate) fn take(
        &self,
        addr: SocketAddr,
        max_idle: Duration,
    ) -> Option<(TcpStream, Duration)> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        let now = Instant::now();
        while let Some((stream, since)) = list.pop() {
            let idle_for = now.duration_since(since);
            if idle_for < max_idle {
                return Some((stream, idle_for));
            }
        }
        None
    }

    /// Keeps `stream` for reuse unless `max` idle connections to `addr` are already kept.
    pub(crate) fn put(&self, addr: SocketAddr, stream: TcpStream, max: usize) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if list.len() < max {
            list.push((stream, Instant::now()));
        }
    }

    /// Drops connections idle for longer than `max_idle` (called from the worker's tick).
    pub(crate) fn expire(&self, max_idle: Duration) {
        let now = Instant::now();
        let mut idle = self.idle.borrow_mut();
        for list in idle.values_mut() {
            list.retain(|(_, since)| now.duration_since(*since) < max_idle);
        }
        idle.retain(|_, l| !l.is_empty());
    }
}
