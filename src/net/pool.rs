//! The worker's keep-alive pool of idle upstream HTTP/1.1 connections, keyed by socket address
//! and TLS server name and configuration, shared by `host` backends and MCP targets on that worker.
//!
//! Each worker is one thread and has its own pool (a thread-local), so there is nothing to lock.
//! Owns: idle connections, their read buffers and their expiry. Not here: connecting or the
//! resend rule (`net::client`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::net::client::conn::Conn;

struct Idle {
    conn: Conn,
    buf: Vec<u8>,
    /// The name the server's certificate was checked against and the TLS configuration's id;
    /// `None` for plain TCP.
    tls: Option<(Rc<str>, u64)>,
    since: Instant,
}

/// Oldest first: connections are pushed as they become idle.
type Lists = HashMap<SocketAddr, Vec<Idle>, foldhash::fast::RandomState>;

thread_local! {
    static IDLE: RefCell<Lists> = RefCell::new(HashMap::default());
}

/// The most recently used idle connection to `addr` (with TLS to a name under a configuration,
/// or plain) that is younger than `max_idle`, with its read buffer and how long it has been
/// idle.
pub(crate) fn take(
    addr: SocketAddr,
    tls: Option<(&str, u64)>,
    max_idle: Duration,
) -> Option<(Conn, Vec<u8>, Duration)> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        let now = Instant::now();
        // The newest match; usually the last entry (one kind of connection per address).
        let at = list
            .iter()
            .rposition(|i| i.tls.as_ref().map(|(n, id)| (&**n, *id)) == tls)?;
        let idle_for = now.duration_since(list[at].since);
        if idle_for >= max_idle {
            // It and everything older has expired.
            list.drain(..=at);
            return None;
        }
        let i = list.remove(at);
        Some((i.conn, i.buf, idle_for))
    })
}

/// Keeps `conn` for reuse unless `max` idle connections to `addr` are already kept.
pub(crate) fn put(
    addr: SocketAddr,
    tls: Option<(Rc<str>, u64)>,
    conn: Conn,
    buf: Vec<u8>,
    max: usize,
) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if list.len() < max {
            list.push(Idle {
                conn,
                buf,
                tls,
                since: Instant::now(),
            });
        }
    })
}

/// Drops connections idle for longer than `max_idle` (called from the worker's tick).
pub(crate) fn expire(max_idle: Duration) {
    let now = Instant::now();
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        for list in idle.values_mut() {
            list.retain(|i| now.duration_since(i.since) < max_idle);
        }
        idle.retain(|_, l| !l.is_empty());
    })
}
