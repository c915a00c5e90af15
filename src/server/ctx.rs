//! What a connection on one worker uses: the worker's [`Shard`] (snapshot, clock, metrics,
//! drain), its authentication state, its MCP relay and its `localRateLimit` buckets
//! (the pool of idle upstream connections is the worker's too: `net::pool`). One [`WorkerCtx`] per worker thread, built by
//! `runtime::worker` and shared by the worker's connection tasks through `Rc`.
//!
//! Not here: anything shared between workers, or the state itself (each part is owned by its
//! subsystem).

use std::cell::RefCell;
use std::rc::Rc;

use crate::auth::request::AuthState;
use crate::policy::rate_limit::Buckets;
use crate::relay::Relay;
use crate::shard::Shard;

pub(crate) struct WorkerCtx {
    pub shard: Rc<Shard>,
    /// Key sets, documents, verified-token caches and waiters for authentication.
    pub auth: RefCell<AuthState>,
    /// MCP sessions this worker owns, and the inbox for calls to them.
    pub relay: Rc<Relay>,
    /// This worker's `localRateLimit` buckets.
    pub rate_limits: RefCell<Buckets>,
}

impl WorkerCtx {
    pub(crate) fn new(shard: Rc<Shard>, auth: AuthState, relay: Rc<Relay>) -> Self {
        WorkerCtx {
            shard,
            auth: RefCell::new(auth),
            relay,
            rate_limits: RefCell::new(Buckets::default()),
        }
    }
}
