//! One worker's share of the process (a shard): its id, the current snapshot, the cached `Date`
//! header, its metrics, the drain switch with the idle connections waiting on it, and its budget
//! of buffered request bodies. Every subsystem on the worker (server, relay) reads it through
//! an `Rc`; each keeps its own state beside it (`server::ctx`, `relay::Relay`, `auth`).
//!
//! Not here: anything shared between workers. Nothing in this file is `Send`; the only
//! cross-thread traffic is the channels wired by `runtime::worker`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use monoio::io::{CancelHandle, Canceller};

use crate::http::h1::H1Error;
use crate::http::response::LocalError;
use crate::metrics::{Refused, WorkerMetrics};
use crate::snapshot::Snapshot;

// The extra `Rc` layer is deliberate: requests clone the `Rc` (a plain increment on this core)
// instead of the `Arc`, whose count lives on a cache line shared by every worker.
#[allow(clippy::redundant_allocation)]
pub(crate) struct Shard {
    pub id: usize,
    /// How many workers share the load (rate limits are split between them).
    workers: usize,
    snapshot: RefCell<Rc<Arc<Snapshot>>>,
    date: RefCell<DateCache>,
    pub metrics: RefCell<WorkerMetrics>,
    draining: Cell<bool>,
    drain: RefCell<Canceller>,
    /// Idle connections waiting for their deadline or the drain ([`Shard::idle_until`]).
    idle_waiters: RefCell<IdleWaiters>,
    rng: Cell<u64>,
    /// Bytes of request bodies this worker buffers right now ([`BodyBytes`]).
    pub buffered: Cell<u64>,
    /// Authorization verdicts by token, rule set and item (`policy::authz`).
    pub decisions: RefCell<crate::policy::authz::Decisions>,
}

impl Shard {
    pub(crate) fn new(id: usize, workers: usize, snapshot: Arc<Snapshot>) -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ ((id as u64 + 1) << 32);
        Self {
            id,
            workers: workers.max(1),
            snapshot: RefCell::new(Rc::new(snapshot)),
            date: RefCell::new(DateCache::new()),
            metrics: RefCell::new(WorkerMetrics::default()),
            draining: Cell::new(false),
            drain: RefCell::new(Canceller::new()),
            idle_waiters: RefCell::new(IdleWaiters::default()),
            buffered: Cell::new(0),
            decisions: RefCell::new(crate::policy::authz::Decisions::default()),
            rng: Cell::new(seed | 1),
        }
    }

    /// How many workers share the load (rate limits are split between them).
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Counts a request refused by a protection limit (`portcullis_refused_total`).
    pub(crate) fn count_refusal(&self, e: &LocalError) {
        let why = match e {
            LocalError::Body(H1Error::BodyTooSlow) => Refused::BodyTooSlow,
            LocalError::BodiesBuffered => Refused::BufferedBodies,
            _ => return,
        };
        self.metrics.borrow_mut().refuse(why);
    }

    /// The snapshot for one request. Cloning an `Rc` is a plain increment: no shared cache line.
    #[allow(clippy::redundant_allocation)]
    pub(crate) fn snapshot(&self) -> Rc<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }

    pub(crate) fn set_snapshot(&self, snap: Arc<Snapshot>) {
        *self.snapshot.borrow_mut() = Rc::new(snap);
        // Verdicts are keyed by rule-set ids, which a new snapshot does not reuse: the old
        // ones could never hit again.
        self.decisions.borrow_mut().clear();
    }

    pub(crate) fn date(&self) -> [u8; 29] {
        *self.date.borrow().get_array()
    }

    /// Unix seconds, as of the last tick (at most 250 ms old): token times need no finer clock.
    pub(crate) fn unix_secs(&self) -> i64 {
        self.date.borrow().secs as i64
    }

    pub(crate) fn tick_date(&self) {
        self.date.borrow_mut().refresh();
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.get()
    }

    /// A handle that is cancelled when the worker starts draining; idle keep-alive reads use it
    /// so that they end at once instead of waiting for their timeout.
    pub(crate) fn drain_handle(&self) -> CancelHandle {
        self.drain.borrow().handle()
    }

    /// Completes at `deadline` (to within the worker's 250 ms tick) or when the worker starts
    /// draining, whichever is first. For idle keep-alive connections: unlike a timer, it holds a
    /// 24-byte slot, not a timer-wheel entry of several hundred bytes per connection.
    pub(crate) fn idle_until(&self, deadline: Instant) -> IdleWait<'_> {
        IdleWait {
            ctx: self,
            deadline,
            slot: None,
        }
    }

    /// Wakes the [`IdleWait`]s whose deadline has passed (called from the worker's tick).
    pub(crate) fn wake_idle_expired(&self, now: Instant) {
        let mut w = self.idle_waiters.borrow_mut();
        for s in w.slots.iter_mut() {
            if s.as_ref().is_some_and(|(deadline, _)| *deadline <= now) {
                if let Some((_, waker)) = s.take() {
                    waker.wake();
                }
            }
        }
    }

    pub(crate) fn start_drain(&self) {
        self.draining.set(true);
        let old = std::mem::take(&mut *self.drain.borrow_mut());
        let _ = old.cancel();
        let waiting = std::mem::take(&mut *self.idle_waiters.borrow_mut()).slots;
        for (_, waker) in waiting.into_iter().flatten() {
            waker.wake();
        }
    }

    /// xorshift64*: cheap per-worker randomness for weighted backend choice (not for secrets).
    pub(crate) fn next_random(&self) -> u64 {
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

    fn get_array(&self) -> &[u8; 29] {
        &self.value
    }
}

/// A share of the worker's budget of buffered request-body bytes
/// (`config.mcp.maxBufferedBytes`), given back on drop.
pub(crate) struct BodyBytes<'c> {
    ctx: &'c Shard,
    held: u64,
}

impl<'c> BodyBytes<'c> {
    pub(crate) fn new(ctx: &'c Shard) -> Self {
        BodyBytes { ctx, held: 0 }
    }

    /// Makes the share at least `total` bytes; false when the worker's budget cannot cover it.
    pub(crate) fn grow_to(&mut self, total: u64, budget: u64) -> bool {
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
pub(crate) enum IdleEnd {
    Deadline,
    Drain,
}

/// See [`Shard::idle_until`].
pub(crate) struct IdleWait<'c> {
    ctx: &'c Shard,
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
