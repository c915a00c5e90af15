//! Per-worker state: the current snapshot, the cached `Date` header, metrics, the upstream pool
//! and the drain switch. One [`WorkerCtx`] per worker thread, shared by its tasks through `Rc`.
//!
//! Not here: anything shared between workers. Nothing in this file is `Send`; the only
//! cross-thread traffic is the control channel handled in `runtime::worker`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use monoio::io::{CancelHandle, Canceller};

use std::sync::mpsc;

use crate::admin::metrics::WorkerMetrics;
use crate::http::auth::AuthState;
use crate::http::pool::Pool;
use crate::relay::session::Sessions;
use crate::runtime::keys::KeysMsg;
use crate::runtime::worker::WorkerMsg;
use crate::snapshot::Snapshot;
use futures_channel::mpsc::UnboundedSender;

// The extra `Rc` layer is deliberate: requests clone the `Rc` (a plain increment on this core)
// instead of the `Arc`, whose count lives on a cache line shared by every worker.
#[allow(clippy::redundant_allocation)]
pub struct WorkerCtx {
    pub id: usize,
    snapshot: RefCell<Rc<Arc<Snapshot>>>,
    date: RefCell<DateCache>,
    pub metrics: RefCell<WorkerMetrics>,
    pub pool: Pool,
    /// Key sets, documents, verified-token caches and waiters for authentication.
    pub auth: RefCell<AuthState>,
    /// MCP sessions this worker owns.
    pub sessions: Sessions,
    /// Every worker's control channel (index = worker id), for handing MCP calls to the owner
    /// of a session.
    peers: Arc<Vec<UnboundedSender<WorkerMsg>>>,
    draining: Cell<bool>,
    drain: RefCell<Canceller>,
    /// Idle connections waiting for their deadline or the drain ([`WorkerCtx::idle_until`]).
    idle_waiters: RefCell<IdleWaiters>,
    rng: Cell<u64>,
    /// Calls for this worker's sessions that arrived through another worker's connection and
    /// are still running: a drain waits for them as for its own connections.
    pub remote_calls: Cell<usize>,
    /// Bytes of request bodies this worker buffers right now ([`BodyBytes`]).
    pub buffered: Cell<u64>,
    /// This worker's `localRateLimit` buckets.
    pub rate_limits: RefCell<crate::policy::rate_limit::Buckets>,
}

impl WorkerCtx {
    pub fn new(
        id: usize,
        snapshot: Arc<Snapshot>,
        to_keys: Option<mpsc::Sender<KeysMsg>>,
        peers: Arc<Vec<UnboundedSender<WorkerMsg>>>,
    ) -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ ((id as u64 + 1) << 32);
        Self {
            id,
            snapshot: RefCell::new(Rc::new(snapshot)),
            date: RefCell::new(DateCache::new()),
            metrics: RefCell::new(WorkerMetrics::default()),
            pool: Pool::default(),
            auth: RefCell::new(AuthState::new(to_keys)),
            sessions: Sessions::default(),
            peers,
            draining: Cell::new(false),
            drain: RefCell::new(Canceller::new()),
            idle_waiters: RefCell::new(IdleWaiters::default()),
            remote_calls: Cell::new(0),
            buffered: Cell::new(0),
            rate_limits: RefCell::new(Default::default()),
            rng: Cell::new(seed | 1),
        }
    }

    /// How many workers share the load (rate limits are split between them).
    pub fn workers(&self) -> usize {
        self.peers.len().max(1)
    }

    /// The snapshot for one request. Cloning an `Rc` is a plain increment: no shared cache line.
    #[allow(clippy::redundant_allocation)]
    pub fn snapshot(&self) -> Rc<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }

    pub fn set_snapshot(&self, snap: Arc<Snapshot>) {
        *self.snapshot.borrow_mut() = Rc::new(snap);
    }

    /// Appends the current `Date` value (IMF-fixdate), refreshed at most once per second.
    pub fn write_date(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.date.borrow().get());
    }

    pub fn date(&self) -> [u8; 29] {
        *self.date.borrow().get_array()
    }

    /// Unix seconds, as of the last tick (at most 250 ms old): token times need no finer clock.
    pub fn unix_secs(&self) -> i64 {
        self.date.borrow().secs as i64
    }

    pub fn tick_date(&self) {
        self.date.borrow_mut().refresh();
    }

    /// The control channel of worker `id`.
    pub fn peer(&self, id: usize) -> Option<&UnboundedSender<WorkerMsg>> {
        self.peers.get(id)
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// A handle that is cancelled when the worker starts draining; idle keep-alive reads use it
    /// so that they end at once instead of waiting for their timeout.
    pub fn drain_handle(&self) -> CancelHandle {
        self.drain.borrow().handle()
    }

    /// Completes at `deadline` (to within the worker's 250 ms tick) or when the worker starts
    /// draining, whichever is first. For idle keep-alive connections: unlike a timer, it holds a
    /// 24-byte slot, not a timer-wheel entry of several hundred bytes per connection.
    pub fn idle_until(&self, deadline: Instant) -> IdleWait<'_> {
        IdleWait {
            ctx: self,
            deadline,
            slot: None,
        }
    }

    /// Wakes the [`IdleWait`]s whose deadline has passed (called from the worker's tick).
    pub fn wake_idle_expired(&self, now: Instant) {
        let mut w = self.idle_waiters.borrow_mut();
        for s in w.slots.iter_mut() {
            if s.as_ref().is_some_and(|(deadline, _)| *deadline <= now) {
                if let Some((_, waker)) = s.take() {
                    waker.wake();
                }
            }
        }
    }

    pub fn start_drain(&self) {
        self.draining.set(true);
        let old = std::mem::take(&mut *self.drain.borrow_mut());
        let _ = old.cancel();
        let waiting = std::mem::take(&mut *self.idle_waiters.borrow_mut()).slots;
        for (_, waker) in waiting.into_iter().flatten() {
            waker.wake();
        }
    }

    /// xorshift64*: cheap per-worker randomness for weighted backend choice (not for secrets).
    pub fn next_random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The `Date` header value, formatted once per second per worker.
struct DateCache {
    secs: u64,
    value: [u8; 29],
}

impl DateCache {
    fn new() -> Self {
        let mut d = Self {
            secs: 0,
            value: [b' '; 29],
        };
        d.refresh();
        d
    }

    fn refresh(&mut self) {
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs {
            self.secs = secs;
            let s = httpdate::fmt_http_date(now);
            let b = s.as_bytes();
            if b.len() == 29 {
                self.value.copy_from_slice(b);
            }
        }
    }

    fn get(&self) -> &[u8] {
        &self.value
    }

    fn get_array(&self) -> &[u8; 29] {
        &self.value
    }
}

/// A share of the worker's budget of buffered request-body bytes
/// (`config.mcp.maxBufferedBytes`), given back on drop.
pub struct BodyBytes<'c> {
    ctx: &'c WorkerCtx,
    held: u64,
}

impl<'c> BodyBytes<'c> {
    pub fn new(ctx: &'c WorkerCtx) -> Self {
        BodyBytes { ctx, held: 0 }
    }

    /// Makes the share at least `total` bytes; false when the worker's budget cannot cover it.
    pub fn grow_to(&mut self, total: u64, budget: u64) -> bool {
        if total <= self.held {
            return true;
        }
        let more = total - self.held;
        let now = self.ctx.buffered.get();
        if now + more > budget {
            return false;
        }
        self.ctx.buffered.set(now + more);
        self.held = total;
        true
    }
}

impl Drop for BodyBytes<'_> {
    fn drop(&mut self) {
        self.ctx.buffered.set(self.ctx.buffered.get() - self.held);
    }
}

/// Wakers of [`IdleWait`] futures with their deadlines, in reusable slots.
#[derive(Default)]
struct IdleWaiters {
    slots: Vec<Option<(Instant, std::task::Waker)>>,
    free: Vec<usize>,
}

/// How an [`IdleWait`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum IdleEnd {
    Deadline,
    Drain,
}

/// See [`WorkerCtx::idle_until`].
pub struct IdleWait<'c> {
    ctx: &'c WorkerCtx,
    deadline: Instant,
    slot: Option<usize>,
}

impl std::future::Future for IdleWait<'_> {
    type Output = IdleEnd;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<IdleEnd> {
        if self.ctx.draining() {
            return std::task::Poll::Ready(IdleEnd::Drain);
        }
        if Instant::now() >= self.deadline {
            return std::task::Poll::Ready(IdleEnd::Deadline);
        }
        let mut w = self.ctx.idle_waiters.borrow_mut();
        let w = &mut *w;
        let slot = match self.slot {
            // The slot is still ours unless a drain took them all (handled above).
            Some(i) => i,
            None => {
                let i = w.free.pop().unwrap_or_else(|| {
                    w.slots.push(None);
                    w.slots.len() - 1
                });
                self.slot = Some(i);
                i
            }
        };
        w.slots[slot] = Some((self.deadline, cx.waker().clone()));
        std::task::Poll::Pending
    }
}

impl Drop for IdleWait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut w = self.ctx.idle_waiters.borrow_mut();
            // After a drain the slots are gone (taken and woken).
            if let Some(s) = w.slots.get_mut(i) {
                *s = None;
                w.free.push(i);
            }
        }
    }
}
