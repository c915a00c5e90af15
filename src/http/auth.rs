//! The per-request authentication decision and the worker-local state behind it: the key sets
//! and documents published by the key manager, one verified-token cache per provider, the
//! base64 scratch buffers, and the requests waiting for a refetch after an unknown `kid`.
//!
//! Order for a protected route: no bearer token → the prebuilt 401 (strict) or pass
//! (optional/permissive); no key set yet → 503 with `Retry-After`; cache hit → pass; otherwise
//! parse, select key, verify, validate (`policy::mcp_auth::check_token`). An unknown `kid`
//! triggers one refetch request and the request waits (up to 2 s) for it.
//! Not here: fetching (`runtime::keys`) or writing responses (`dispatch`).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use crate::http::response::Prebuilt;
use crate::policy::mcp_auth::{
    bearer, check_token, AuthReject, Bearer, KeySet, Principal, Scratch, TokenCache,
};
use crate::runtime::keys::KeysMsg;
use crate::snapshot::{AuthMode, AuthPolicy};

/// Entries per provider cache, per worker.
const CACHE_CAPACITY: usize = 10_000;
/// A worker asks the key manager for an unknown-kid refetch at most this often per source (the
/// manager itself allows one per 10 s).
const ASK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a request waits for a refetch after an unknown `kid`.
pub const KID_WAIT: Duration = Duration::from_secs(2);

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

pub struct AuthState {
    failures: FailureBudget,
    keys: HashMap<Arc<str>, Arc<KeySet>, Fold>,
    docs: HashMap<Arc<str>, Arc<Prebuilt>, Fold>,
    caches: HashMap<u64, TokenCache, Fold>,
    scratch: Scratch,
    waiters: Vec<(Arc<str>, oneshot::Sender<()>)>,
    asked: HashMap<Arc<str>, Instant>,
    /// Sources asked to refetch whose answer (`wake`) has not come yet.
    outstanding: std::collections::HashSet<Arc<str>, Fold>,
    to_keys: Option<mpsc::Sender<KeysMsg>>,
}

impl AuthState {
    pub fn new(to_keys: Option<mpsc::Sender<KeysMsg>>) -> Self {
        Self {
            failures: FailureBudget::from_env(),
            keys: HashMap::default(),
            docs: HashMap::default(),
            caches: HashMap::default(),
            scratch: Scratch::new(),
            waiters: Vec::new(),
            asked: HashMap::new(),
            outstanding: Default::default(),
            to_keys,
        }
    }

    /// A new key set for `source`: verified tokens are re-checked against it from now on.
    pub fn set_keys(&mut self, source: Arc<str>, keys: Arc<KeySet>) {
        self.keys.insert(source.clone(), keys);
        self.caches.clear();
        self.wake(&source);
    }

    /// The key manager finished a fetch of `source` (changed or not).
    pub fn wake(&mut self, source: &Arc<str>) {
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

    pub fn set_document(&mut self, source: Arc<str>, doc: Arc<Prebuilt>) {
        self.docs.insert(source, doc);
    }

    pub fn document(&self, source: &str) -> Option<&Prebuilt> {
        self.docs.get(source).map(|d| &**d)
    }

    /// Registers a request waiting for `source` to be refetched.
    pub fn wait_for(&mut self, source: Arc<str>) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push((source, tx));
        rx
    }

    /// Drops the cache of providers that are gone after a reload.
    pub fn retain_providers(&mut self, ids: &[u64]) {
        self.caches.retain(|id, _| ids.contains(id));
    }

    /// Whether a request whose token names an unknown `kid` of `source` should wait for a
    /// refetch: only a JWKS URL (ids `jwks:<url>`, see `config::lower_auth`; a file or an inline
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
pub enum AuthDecision<'p> {
    /// Go on; the principal is set when a token was verified.
    Pass(Option<Rc<Principal>>),
    /// Answer with this prebuilt response (401 missing/invalid, or 503 keys not loaded).
    Reject(&'p Prebuilt, RejectKind),
    /// An unknown `kid`: wait for the refetch of this key source, then decide again.
    WaitForKeys(Arc<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    Missing,
    Invalid(AuthReject),
    Unavailable,
}

/// Decides one request. `may_wait` is false on the second attempt after a refetch.
pub fn authenticate<'p>(
    policy: &'p AuthPolicy,
    authorization: Option<&[u8]>,
    client: std::net::IpAddr,
    st: &mut AuthState,
    now: i64,
    may_wait: bool,
) -> AuthDecision<'p> {
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
        let fresh = cache.fresh_refusals;
        let checked = check_token(token, keys, &p.validation, &mut st.scratch, cache, now);
        if cache.fresh_refusals != fresh {
            st.failures.charge(client, instant);
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
