//! `localRateLimit`: agentgateway's token buckets, kept per worker (shared-nothing).
//!
//! A bucket holds at most `maxTokens`, starts full, and gains `tokensPerFill` at the end of
//! every `fillInterval` (whole intervals, as agentgateway's limiter does). Each request takes one
//! token from every bucket of its route, in order; the first empty one answers 429.
//!
//! With N workers, each worker holds a share: ⌈maxTokens / N⌉ tokens and ⌈tokensPerFill / N⌉
//! per interval. The proxy as a whole therefore admits at most N·⌈maxTokens / N⌉ (≤ maxTokens +
//! N − 1) in a burst and N·⌈tokensPerFill / N⌉ per interval, and a client whose connections all
//! land on one worker (the kernel spreads connections, not requests) gets that worker's share.
//! Nothing is shared between workers, so checking a bucket costs no atomic and no lock.
//!
//! Sans-IO: time is passed in. Not here: configuration (`config`), the response (`dispatch`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One configured limit of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub max_tokens: u64,
    pub tokens_per_fill: u64,
    pub fill_interval: Duration,
    /// Identifies the bucket across reloads: the route, the limit's index and its settings
    /// (a changed limit starts a fresh bucket; an unchanged one keeps its state).
    pub key: u64,
}

/// What a request learns from its route's buckets (of the last bucket checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    /// This worker's share of `maxTokens`.
    pub limit: u64,
    pub remaining: u64,
    /// Whole seconds until the next fill.
    pub reset_secs: u64,
}

#[derive(Debug)]
struct Bucket {
    available: u64,
    capacity: u64,
    per_fill: u64,
    interval: Duration,
    next_fill: Instant,
    /// When the bucket was last checked (unused buckets of removed routes are dropped).
    seen: Instant,
}

impl Bucket {
    fn new(l: &RateLimit, workers: u64, now: Instant) -> Bucket {
        let share = |v: u64| v.div_ceil(workers.max(1));
        let capacity = share(l.max_tokens);
        Bucket {
            available: capacity,
            capacity,
            per_fill: share(l.tokens_per_fill),
            interval: l.fill_interval,
            next_fill: now + l.fill_interval,
            seen: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now < self.next_fill || self.interval.is_zero() {
            return;
        }
        let elapsed = now.duration_since(self.next_fill).as_nanos();
        let intervals = (elapsed / self.interval.as_nanos()) as u64 + 1;
        self.available = self
            .available
            .saturating_add(intervals.saturating_mul(self.per_fill))
            .min(self.capacity);
        self.next_fill += self.interval * intervals.min(u64::from(u32::MAX)) as u32;
    }

    fn take(&mut self, now: Instant) -> Result<Status, Status> {
        self.seen = now;
        self.refill(now);
        let status = |available: u64| Status {
            limit: self.capacity,
            remaining: available,
            reset_secs: self.next_fill.saturating_duration_since(now).as_secs(),
        };
        if self.available == 0 {
            return Err(status(0));
        }
        self.available -= 1;
        Ok(status(self.available))
    }
}

/// A worker's buckets, by [`RateLimit::key`].
#[derive(Debug, Default)]
pub(crate) struct Buckets {
    map: HashMap<u64, Bucket, foldhash::fast::RandomState>,
    checks: u64,
}

/// Buckets not used for this long are forgotten (a route removed by a reload).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

impl Buckets {
    /// Takes a token from every limit of a route (in order, as agentgateway does: earlier
    /// buckets are charged even when a later one is empty). `Err` with the empty bucket's
    /// status when the request must be refused.
    pub(crate) fn check(
        &mut self,
        limits: &[RateLimit],
        workers: usize,
        now: Instant,
    ) -> Result<Status, Status> {
        self.checks += 1;
        if self.checks % 65_536 == 0 {
            self.map
                .retain(|_, b| now.saturating_duration_since(b.seen) < FORGET_AFTER);
        }
        let mut last = Status {
            limit: 0,
            remaining: 0,
            reset_secs: 0,
        };
        for l in limits {
            let b = self
                .map
                .entry(l.key)
                .or_insert_with(|| Bucket::new(l, workers as u64, now));
            last = b.take(now)?;
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: u64, fill: u64, every_ms: u64) -> RateLimit {
        RateLimit {
            max_tokens: max,
            tokens_per_fill: fill,
            fill_interval: Duration::from_millis(every_ms),
            key: max ^ (fill << 20) ^ (every_ms << 40),
        }
    }

    #[test]
    fn a_bucket_starts_full_and_fills_by_whole_intervals() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = Buckets::default();
        let l = [limit(3, 1, 1000)];
        for left in [2, 1, 0] {
            assert_eq!(b.check(&l, 1, t0).unwrap().remaining, left);
        }
        let refused = b.check(&l, 1, ms(999)).unwrap_err();
        assert_eq!(
            refused,
            Status {
                limit: 3,
                remaining: 0,
                reset_secs: 0
            }
        );
        // One interval: one token.
        assert_eq!(b.check(&l, 1, ms(1000)).unwrap().remaining, 0);
        assert!(b.check(&l, 1, ms(1500)).is_err());
        // Ten intervals later: full again, not more.
        assert_eq!(b.check(&l, 1, ms(12_000)).unwrap().remaining, 2);
    }

    #[test]
    fn each_worker_holds_a_share() {
        let t0 = Instant::now();
        let l = [limit(10, 4, 1000)];
        let mut w = Buckets::default();
        // 10 tokens over 4 workers: 3 each (at most 12 in all).
        let ok = (0..10).filter(|_| w.check(&l, 4, t0).is_ok()).count();
        assert_eq!(ok, 3);
        // 4 per fill over 4 workers: 1 each.
        assert!(w.check(&l, 4, t0 + Duration::from_millis(1000)).is_ok());
        assert!(w.check(&l, 4, t0 + Duration::from_millis(1001)).is_err());
        // A share is never 0.
        let one = [limit(1, 1, 1000)];
        assert!(Buckets::default().check(&one, 8, t0).is_ok());
    }

    #[test]
    fn every_limit_of_a_route_is_charged_in_order() {
        let t0 = Instant::now();
        let l = [limit(5, 5, 1000), limit(1, 1, 60_000)];
        let mut b = Buckets::default();
        assert!(b.check(&l, 1, t0).is_ok());
        let refused = b.check(&l, 1, t0).unwrap_err();
        assert_eq!(refused.limit, 1);
        assert_eq!(refused.reset_secs, 60);
        // The first bucket was charged both times.
        assert_eq!(b.map[&l[0].key].available, 3);
    }
}
