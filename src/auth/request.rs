//! The per-request authentication decision and the worker-local state behind it: the key sets
//! and documents published by the key manager, one verified-token cache per provider, the
//! base64 scratch buffers, and the requests waiting for a refetch after an unknown `kid`.
//!
//! Order for a protected route: no bearer token → the prebuilt 401 (strict) or pass
//! (optional/permissive); no key set yet → 503 with `Retry-After`; cache hit → pass; otherwise
//! parse, select key, verify, validate (`policy::mcp_auth::check_token`). An unknown `kid`
//! triggers one refetch request and the request waits (up to 2 s) for it.
//! Not here: fetching (`auth::keys`) or writing responses (`server::dispatch`).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use crate::auth::keys::{KeyUpdate, KeysMsg};
use crate::auth::policy::{AuthMode, AuthPolicy};
use crate::http::response::Prebuilt;
use crate::metrics::CacheStats;
use crate::policy::mcp_auth::{
    bearer, bearer_candidate, check_token, AuthReject, Bearer, KeySet, Principal, Scratch,
    TokenCache,
};

/// Entries per provider cache, per worker.
const CACHE_CAPACITY: usize = 10_000;
/// A worker asks the key manager for an unknown-kid refetch at most this often per source (the
/// manager itself allows one per 10 s).
const ASK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a request waits for a refetch after an unknown `kid`.
pub(crate) const KID_WAIT: Duration = Duration::from_secs(2);

/// Maps read on every protected request: foldhash (keys are config names and ids, not chosen
/// by clients).
type Fold = foldhash::fast::RandomState;

/// Failed verifications allowed per client address (IPv4, or IPv6 /64) and second, sustained
/// (`PORTCULLIS_AUTH_FAILURES_PER_SEC`, default 20; 0 turns the budget off), with a burst of
/// [`FAILURE_BURST`]. Past it, tokens that are not already verified and cached are refused
/// without a signature check: a flood of bad tokens from one address costs a lookup each, and
/// valid cached tokens (any address) never pay for it.
const DEFAULT_FAILURES_PER_SEC: f64 = 20.0;
const FAILURE_BURST: f64 = 50.0;
/// Addresses tracked per worker; when full, those with a full budget are forgotten first.
const FAILURE_ADDRS: usize = 16_384;

/// A token bucket of failed verifications per client address.
struct FailureBudget {
    per_sec: f64,
    buckets: HashMap<std::net::IpAddr, (f64, Instant), Fold>,
}

impl FailureBudget {
    fn from_env() -> Self {
        let per_sec = std::env::var("PORTCULLIS_AUTH_FAILURES_PER_SEC")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(DEFAULT_FAILURES_PER_SEC);
        FailureBudget {
            per_sec,
            buckets: HashMap::default(),
        }
    }

    /// The key for `ip`: an IPv6 client is one /64 (one host's usual allocation).
    fn key(ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip.to_canonical() {
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        }
    }

    fn tokens(&mut self, ip: std::net::IpAddr, now: Instant) -> Option<&mut f64> {
        let (t, at) = self.buckets.get_mut(&Self::key(ip))?;
        *t = (*t + now.duration_since(*at).as_secs_f64() * self.per_sec).min(FAILURE_BURST);
        *at = now;
        Some(t)
    }

    /// Whether `ip` has no failed verification left to spend.
    fn exhausted(&mut self, ip: std::net::IpAddr, now: Instant) -> bool {
        self.per_sec > 0.0 && self.tokens(ip, now).is_some_and(|t| *t < 1.0)
    }

    /// One failed verification by `ip`.
    fn charge(&mut self, ip: std::net::IpAddr, now: Instant) {
        if self.per_sec <= 0.0 {
            return;
        }
        if let Some(t) = self.tokens(ip, now) {
            *t -= 1.0;
            return;
        }
        if self.buckets.len() >= FAILURE_ADDRS {
            let per_sec = self.per_sec;
            self.buckets.retain(|_, (t, at)| {
                *t + now.duration_since(*at).as_secs_f64() * per_sec < FAILURE_BURST
            });
            if self.buckets.len() >= FAILURE_ADDRS {
                self.buckets.clear();
            }
        }
        self.buckets
            .insert(Self::key(ip), (FAILURE_BURST - 1.0, now));
    }
}

/// How much of a worker's time signature checks of tokens it has not seen may take while other
/// requests are being served: within every [`VERIFY_WINDOW`], at most this share. A request that
/// needs a check beyond it waits for the next window (at most [`VERIFY_QUEUE`] wait at once;
/// beyond, 503 with `Retry-After`), so clients whose tokens are cached keep at least the rest
/// of the worker under a flood of fresh tokens from any number of addresses. When nothing else
/// is served (a benchmark of fresh tokens, a cold start) checks are not held back.
/// `PORTCULLIS_VERIFY_SHARE` (0 < share ≤ 1; 1 = no bound).
const DEFAULT_VERIFY_SHARE: f64 = 0.5;
pub(crate) const VERIFY_WINDOW: Duration = Duration::from_millis(10);
const VERIFY_QUEUE: usize = 512;

/// The per-worker bound on signature-check time; see `DEFAULT_VERIFY_SHARE`.
#[derive(Debug)]
pub(crate) struct VerifyBudget {
    allowed: Duration,
    window: Instant,
    spent: Duration,
    /// Requests answered without a signature check in this window and the last: the clients
    /// the bound protects. With none, checks are not held back.
    cheap: u32,
    cheap_before: u32,
    /// Requests waiting for a later window.
    queued: usize,
}

/// What [`VerifyBudget::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Now,
    /// Wait until then, then decide again.
    Later(Instant),
    /// Too many wait already.
    Shed,
}

impl VerifyBudget {
    pub(crate) fn new(share: f64) -> VerifyBudget {
        let share = if share.is_finite() && share > 0.0 {
            share.min(1.0)
        } else {
            1.0
        };
        VerifyBudget {
            allowed: VERIFY_WINDOW.mul_f64(share),
            window: Instant::now(),
            spent: Duration::ZERO,
            cheap: 0,
            cheap_before: 0,
            queued: 0,
        }
    }

    fn from_env() -> VerifyBudget {
        let share = std::env::var("PORTCULLIS_VERIFY_SHARE")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(DEFAULT_VERIFY_SHARE);
        VerifyBudget::new(share)
    }

    fn roll(&mut self, now: Instant) {
        if now.saturating_duration_since(self.window) >= VERIFY_WINDOW {
            self.window = now;
            self.spent = Duration::ZERO;
            self.cheap_before = self.cheap;
            self.cheap = 0;
        }
    }

    /// Whether a signature check may run at `now`.
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        self.roll(now);
        if self.spent < self.allowed || self.allowed >= VERIFY_WINDOW {
            return Admit::Now;
        }
        if self.cheap == 0 && self.cheap_before == 0 {
            return Admit::Now;
        }
        if self.queued >= VERIFY_QUEUE {
            return Admit::Shed;
        }
        self.queued += 1;
        Admit::Later(self.window + VERIFY_WINDOW)
    }

    /// A request deferred by [`VerifyBudget::admit`] is deciding again.
    pub(crate) fn resumed(&mut self) {
        self.queued = self.queued.saturating_sub(1);
    }

    fn spend(&mut self, took: Duration) {
        self.spent += took;
    }

    fn cheap_request(&mut self) {
        self.cheap = self.cheap.saturating_add(1);
    }
}

pub(crate) struct AuthState {
    failures: FailureBudget,
    pub verify: VerifyBudget,
    keys: HashMap<Arc<str>, Arc<KeySet>, Fold>,
    docs: HashMap<Arc<str>, Arc<Prebuilt>, Fold>,
    caches: HashMap<u64, TokenCache, Fold>,
    scratch: Scratch,
    waiters: Vec<(Arc<str>, oneshot::Sender<()>)>,
    asked: HashMap<Arc<str>, Instant>,
    /// Sources asked to refetch whose answer (`wake`) has not come yet.
    outstanding: std::collections::HashSet<Arc<str>, Fold>,
    to_keys: Option<mpsc::Sender<KeysMsg>>,
    /// Counts of caches dropped (a key rotation, a provider removed), kept for the metrics.
    retired: CacheStats,
}

impl AuthState {
    pub(crate) fn new(to_keys: Option<mpsc::Sender<KeysMsg>>) -> Self {
        Self {
            failures: FailureBudget::from_env(),
            verify: VerifyBudget::from_env(),
            keys: HashMap::default(),
            docs: HashMap::default(),
            caches: HashMap::default(),
            scratch: Scratch::new(),
            waiters: Vec::new(),
            asked: HashMap::new(),
            outstanding: Default::default(),
            to_keys,
            retired: CacheStats::default(),
        }
    }

    /// The token caches' counts (for the stats endpoint).
    pub(crate) fn cache_stats(&self) -> CacheStats {
        let mut s = self.retired;
        for c in self.caches.values() {
            s.add(c.stats());
        }
        s
    }

    fn retire(&mut self, c: &TokenCache) {
        let mut st = c.stats();
        st.entries = 0;
        self.retired.add(st);
    }

    /// A new key set for `source`: verified tokens are re-checked against it from now on.
    pub(crate) fn set_keys(&mut self, source: Arc<str>, keys: Arc<KeySet>) {
        self.keys.insert(source.clone(), keys);
        for c in std::mem::take(&mut self.caches).into_values() {
            self.retire(&c);
        }
        self.wake(&source);
    }

    /// The key manager finished a fetch of `source` (changed or not).
    pub(crate) fn wake(&mut self, source: &Arc<str>) {
        self.outstanding.remove(source);
        let mut i = 0;
        while i < self.waiters.len() {
            if &self.waiters[i].0 == source {
                let (_, tx) = self.waiters.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
    }

    pub(crate) fn set_document(&mut self, source: Arc<str>, doc: Arc<Prebuilt>) {
        self.docs.insert(source, doc);
    }

    /// Applies what the key manager published.
    pub(crate) fn apply(&mut self, update: KeyUpdate) {
        match update {
            KeyUpdate::Keys { source, keys } => self.set_keys(source, keys),
            KeyUpdate::Checked { source } => self.wake(&source),
            KeyUpdate::Document { source, doc } => self.set_document(source, doc),
        }
    }

    pub(crate) fn document(&self, source: &str) -> Option<&Prebuilt> {
        self.docs.get(source).map(|d| &**d)
    }

    /// Registers a request waiting for `source` to be refetched.
    pub(crate) fn wait_for(&mut self, source: Arc<str>) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push((source, tx));
        rx
    }

    /// Drops the cache of providers that are gone after a reload.
    pub(crate) fn retain_providers(&mut self, ids: &[u64]) {
        let gone: Vec<u64> = self
            .caches
            .keys()
            .filter(|id| !ids.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(c) = self.caches.remove(&id) {
                self.retire(&c);
            }
        }
    }

    /// Whether a request whose token names an unknown `kid` of `source` should wait for a
    /// refetch: only a JWKS URL (ids `jwks:<url>`, see `auth::lower`; a file or an inline
    /// set has nothing to fetch), and only while a refetch this worker asked for is under way,
    /// or when it asks for one now (at most once per `ASK_INTERVAL`). Right after a refetch came
    /// back without the key, the token is refused at once instead of waiting for nothing.
    fn should_wait(&mut self, source: &Arc<str>) -> bool {
        if !source.starts_with("jwks:") {
            return false;
        }
        if self.outstanding.contains(source) {
            return true;
        }
        let now = Instant::now();
        if self
            .asked
            .get(source)
            .is_some_and(|t| now.duration_since(*t) < ASK_INTERVAL)
        {
            return false;
        }
        self.asked.insert(source.clone(), now);
        let asked = self
            .to_keys
            .as_ref()
            .is_some_and(|tx| tx.send(KeysMsg::UnknownKid(source.clone())).is_ok());
        if asked {
            self.outstanding.insert(source.clone());
        }
        asked
    }
}

/// The outcome of [`authenticate`].
pub(crate) enum AuthDecision<'p> {
    /// Go on; the principal is set when a token was verified.
    Pass(Option<Rc<Principal>>),
    /// Answer with this prebuilt response (401 missing/invalid, or 503 keys not loaded).
    Reject(&'p Prebuilt, RejectKind),
    /// An unknown `kid`: wait for the refetch of this key source, then decide again.
    WaitForKeys(Arc<str>),
    /// A signature check is due but the worker's share for it is spent: decide again then.
    WaitToVerify(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectKind {
    Missing,
    Invalid(AuthReject),
    Unavailable,
    /// The worker's queue of requests waiting for signature-check time is full.
    Busy,
}

/// Decides one request. `may_wait` is false on the second attempt after a refetch.
pub(crate) fn authenticate<'p>(
    policy: &'p AuthPolicy,
    authorization: Option<&[u8]>,
    client: std::net::IpAddr,
    st: &mut AuthState,
    now: i64,
    may_wait: bool,
) -> AuthDecision<'p> {
    if let Some(principal) = cached(policy, authorization, st, now) {
        st.verify.cheap_request();
        return AuthDecision::Pass(Some(principal));
    }
    let token = match bearer(authorization) {
        Bearer::Token(t) => t,
        Bearer::Absent => {
            return match policy.mode {
                AuthMode::Strict => AuthDecision::Reject(&policy.missing, RejectKind::Missing),
                AuthMode::Optional | AuthMode::Permissive => AuthDecision::Pass(None),
            };
        }
        // A bearer credential that is not a token: invalid, as a token that fails to verify.
        Bearer::Malformed => {
            return match policy.mode {
                AuthMode::Permissive => AuthDecision::Pass(None),
                AuthMode::Strict | AuthMode::Optional => AuthDecision::Reject(
                    &policy.invalid,
                    RejectKind::Invalid(AuthReject::Malformed),
                ),
            };
        }
    };
    let mut last = AuthReject::Malformed;
    let mut unknown_kid: Option<&Arc<str>> = None;
    let mut any_keys = false;
    let instant = Instant::now();
    let exhausted = st.failures.exhausted(client, instant);
    for p in &policy.providers {
        let Some(keys) = st.keys.get(&p.keys) else {
            continue;
        };
        any_keys = true;
        let cache = st
            .caches
            .entry(p.id)
            .or_insert_with(|| TokenCache::new(CACHE_CAPACITY));
        if exhausted && !cache.holds(token, now) {
            last = AuthReject::Throttled;
            continue;
        }
        // Over the worker's share of signature-check time, a token that needs one waits.
        if st.verify.spent >= st.verify.allowed && !cache.holds(token, now) {
            let digest = cache.digest(token);
            if cache.refused(digest, now).is_none() {
                match st.verify.admit(instant) {
                    Admit::Now => {}
                    Admit::Later(at) => return AuthDecision::WaitToVerify(at),
                    Admit::Shed => {
                        return AuthDecision::Reject(&policy.unavailable, RejectKind::Busy)
                    }
                }
            }
        }
        let (fresh, accepted) = (cache.fresh_refusals, cache.fresh_accepts);
        let checked = check_token(token, keys, &p.validation, &mut st.scratch, cache, now);
        if cache.fresh_refusals != fresh {
            st.failures.charge(client, instant);
        }
        if cache.fresh_refusals != fresh || cache.fresh_accepts != accepted {
            // A signature was checked (cache hits change neither count).
            st.verify.spend(instant.elapsed());
        } else {
            st.verify.cheap_request();
        }
        match checked {
            Ok(principal) => return AuthDecision::Pass(Some(principal)),
            Err(AuthReject::UnknownKid) => {
                unknown_kid.get_or_insert(&p.keys);
                last = AuthReject::UnknownKid;
            }
            Err(e) => last = e,
        }
    }
    if policy.mode == AuthMode::Permissive {
        return AuthDecision::Pass(None);
    }
    if !any_keys {
        return AuthDecision::Reject(&policy.unavailable, RejectKind::Unavailable);
    }
    if let Some(src) = unknown_kid {
        let src = src.clone();
        if may_wait && st.should_wait(&src) {
            return AuthDecision::WaitForKeys(src);
        }
    }
    tracing::debug!(reason = last.as_str(), "token rejected");
    AuthDecision::Reject(&policy.invalid, RejectKind::Invalid(last))
}

/// The common request: a token the worker verified before, answered by the first provider
/// with keys, as the loop in [`authenticate`] would answer it, for one lookup (no clock read,
/// no failure budget, no character check: a cached token passed all of them).
fn cached(
    policy: &AuthPolicy,
    authorization: Option<&[u8]>,
    st: &mut AuthState,
    now: i64,
) -> Option<Rc<Principal>> {
    let token = bearer_candidate(authorization?)?;
    let (p, keys) = policy
        .providers
        .iter()
        .find_map(|p| Some((p, st.keys.get(&p.keys)?)))?;
    let cache = st.caches.get_mut(&p.id)?;
    if cache.keyset_id != keys.id() {
        return None;
    }
    cache.get(token, now)
}

#[cfg(test)]
mod verify_budget_tests {
    use super::*;

    #[test]
    fn checks_wait_only_while_other_requests_are_served() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut b = VerifyBudget::new(0.5);
        b.window = t0;
        // Nothing else served: a spent share holds nothing back.
        b.spend(Duration::from_millis(6));
        assert_eq!(b.admit(ms(1)), Admit::Now);
        // Cached-token requests are being served: beyond 5 ms of checks in the window, wait
        // for the next window.
        b.cheap_request();
        assert_eq!(b.admit(ms(2)), Admit::Later(ms(10)));
        assert_eq!(b.queued, 1);
        b.resumed();
        // A new window: checks run again (the last window's cheap requests still count).
        assert_eq!(b.admit(ms(10)), Admit::Now);
        b.spend(Duration::from_millis(5));
        assert_eq!(b.admit(ms(11)), Admit::Later(ms(20)));
        // The queue is bounded.
        for _ in 1..VERIFY_QUEUE {
            assert!(matches!(b.admit(ms(12)), Admit::Later(_)));
        }
        assert_eq!(b.admit(ms(12)), Admit::Shed);
        // Two quiet windows later, nothing is held back.
        b.queued = 0;
        b.spend(Duration::from_millis(9));
        assert_eq!(b.admit(ms(20)), Admit::Now);
        b.spend(Duration::from_millis(9));
        assert_eq!(b.admit(ms(30)), Admit::Now);
        b.spend(Duration::from_millis(9));
        assert_eq!(b.admit(ms(31)), Admit::Now);
    }

    #[test]
    fn a_share_of_one_or_nonsense_is_no_bound() {
        for share in [1.0, 2.0, 0.0, -1.0, f64::NAN] {
            let mut b = VerifyBudget::new(share);
            b.cheap_request();
            b.spend(Duration::from_secs(1));
            assert_eq!(b.admit(Instant::now()), Admit::Now, "{share}");
        }
    }
}

#[cfg(test)]
mod cached_tests {
    use super::*;
    use crate::auth::policy::AuthProvider;
    use crate::policy::mcp_auth::tests::{corpus_validation, load_corpus, load_keys, NOW};

    fn policy(mode: AuthMode) -> AuthPolicy {
        let pre = |s| Prebuilt::new(s, None, &[], Vec::new());
        AuthPolicy {
            mode,
            providers: vec![AuthProvider {
                id: 7,
                keys: "k".into(),
                validation: corpus_validation(),
            }],
            mcp: None,
            passthrough: false,
            missing: pre(401),
            invalid: pre(401),
            unavailable: pre(503),
        }
    }

    fn token(name: &str) -> String {
        let corpus = load_corpus();
        corpus.into_iter().find(|(n, _, _)| n == name).unwrap().2
    }

    fn decide(p: &AuthPolicy, st: &mut AuthState, value: &[u8]) -> Result<u64, String> {
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        match authenticate(p, Some(value), ip, st, NOW, false) {
            AuthDecision::Pass(Some(pr)) => Ok(pr.id),
            AuthDecision::Pass(None) => Err("pass without principal".into()),
            AuthDecision::Reject(_, k) => Err(format!("{k:?}")),
            _ => Err("wait".into()),
        }
    }

    /// A token verified once is answered from the cache, as the full path answers it; what
    /// the cache never held (a malformed credential, another token) takes the full path; a new
    /// key set is never answered from entries verified under the old one.
    #[test]
    fn cached_tokens_answer_as_the_full_path_does() {
        let keys = Arc::new(load_keys());
        let mut st = AuthState::new(None);
        let strict = policy(AuthMode::Strict);
        // No keys yet: nothing is cached, nothing passes.
        let ok = token("rs256_ok");
        let bearer = format!("Bearer {ok}");
        assert_eq!(
            decide(&strict, &mut st, bearer.as_bytes()),
            Err("Unavailable".into())
        );
        st.set_keys("k".into(), keys);
        let first = decide(&strict, &mut st, bearer.as_bytes()).unwrap();
        let cache = st.caches.get(&7).unwrap();
        assert_eq!((cache.fresh_accepts, cache.hits), (1, 0));
        // Again, with other spacing and scheme case: the cached principal.
        for v in [bearer.clone(), format!("bearer   {ok} \t")] {
            assert_eq!(decide(&strict, &mut st, v.as_bytes()), Ok(first), "{v}");
        }
        let cache = st.caches.get(&7).unwrap();
        assert_eq!((cache.fresh_accepts, cache.hits), (1, 2));
        // The cached token with a character no b64token has: refused, never matched.
        for bad in [
            format!("Bearer {ok}%"),
            format!("Bearer %{ok}"),
            "Bearer ====".into(),
        ] {
            assert_eq!(
                decide(&strict, &mut st, bad.as_bytes()),
                Err("Invalid(Malformed)".into()),
                "{bad}"
            );
        }
        // Another scheme is no credential at all.
        assert_eq!(
            decide(&strict, &mut st, format!("Basic {ok}").as_bytes()),
            Err("Missing".into())
        );
        // A key set published again (a refetch): verified afresh, a new principal.
        st.set_keys("k".into(), Arc::new(load_keys()));
        let again = decide(&strict, &mut st, bearer.as_bytes()).unwrap();
        assert_ne!(again, first);
        assert_eq!(st.caches.get(&7).unwrap().fresh_accepts, 1);
        // An expired token is refused: the path above never caches it.
        let expired = token("expired");
        assert!(decide(&strict, &mut st, format!("Bearer {expired}").as_bytes()).is_err());
    }
}
