//! The per-worker verified-token cache: the single most important optimisation (perf-notes
//! §0, §2.3) — a hit costs ≈ 0.2 µs against 21–53 µs for a verify.
//!
//! Owns: [`Principal`] (what a verified token grants) and [`TokenCache`].
//! Keyed by the *whole* token, hashed by its length and last [`HASHED_TAIL`] bytes with
//! foldhash under a random per-map seed, then compared in full on a hit — a hash collision can
//! never authenticate a different token. Those bytes are the signature's (86 or more base64url
//! characters for every supported algorithm), and only verified tokens are inserted, so
//! colliding chains cannot be built by someone without the signing key, whatever they learn
//! of the seed. Hashing the whole ~1 KB token cost ~0.7k instructions per request (SipHash
//! ~3k); the tail costs a few dozen. Entries expire at
//! `min(exp, inserted + MAX_TTL)` (no leeway on hits: stricter than a fresh check). Tokens
//! over [`MAX_CACHED_TOKEN_LEN`] are not cached, so memory is bounded by
//! `capacity × MAX_CACHED_TOKEN_LEN`.
//!
//! Refusals have a cache of their own, consulted only after a miss here (valid cached tokens
//! never pay for it): a replayed bad token costs two keyed hashes and a lookup instead of a
//! signature check (0.04–0.8 ms). Attackers choose those bytes, so it stores no bytes and
//! cannot be steered: entries are keyed by a 128-bit digest under two secret per-map seeds,
//! [`REJECT_CAPACITY`] at most (when full and nothing has expired, it starts over), for
//! [`REJECT_TTL_SECS`]. Only refusals that stay refusals are kept (not an unknown `kid`,
//! which a JWKS refetch may fix, nor a token that is not valid *yet*). A digest collision could
//! only refuse a token, never accept one.
//! Does not: share between workers (it is `!Send`: `Rc`), or notice configuration changes
//! by itself — `check_token` clears it when the [`KeySet`](super::KeySet) changes; the
//! caller must `clear()` it when the `Validation` changes.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::rc::Rc;

use super::AuthReject;

/// Longest cached entry lifetime, seconds: key removal from the JWKS and config changes
/// take effect within this even without a `clear()`.
pub(crate) const MAX_TTL_SECS: i64 = 300;

/// Tokens longer than this are verified every time rather than cached.
pub(crate) const MAX_CACHED_TOKEN_LEN: usize = 8 * 1024;

/// Refused tokens remembered per cache (one per provider and worker): 32 bytes each.
pub(super) const REJECT_CAPACITY: usize = 4096;

/// How long a refusal is remembered, seconds.
pub(super) const REJECT_TTL_SECS: i64 = 60;

/// How many bytes at the end of a token its cache hash reads.
const HASHED_TAIL: usize = 32;

/// foldhash over a token's length and its last [`HASHED_TAIL`] bytes (see the module doc).
#[derive(Default)]
struct TailState(foldhash::fast::RandomState);

impl std::hash::BuildHasher for TailState {
    type Hasher = TailHasher<'static>;
    fn build_hasher(&self) -> Self::Hasher {
        TailHasher(self.0.build_hasher())
    }
}

/// Keys are only ever `[u8]`, which hashes as its length (`write_usize`), then its bytes (one
/// `write`).
struct TailHasher<'a>(foldhash::fast::FoldHasher<'a>);

impl std::hash::Hasher for TailHasher<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }
    fn write_usize(&mut self, n: usize) {
        self.0.write_usize(n);
    }
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// The identity and grants of a verified token, shared with the request by `Rc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub iss: String,
    pub sub: Option<String>,
    /// Space-separated scopes (from `scope`, or `scp` joined); empty if none.
    pub scopes: String,
    pub client_id: Option<String>,
    pub exp: i64,
    pub kid: Option<String>,
    /// Unique per verification (a token verified again gets a new one): what authorization
    /// verdicts are cached under.
    pub id: u64,
    /// Every claim, as the token's JSON payload: what authorization rules read as `jwt`.
    pub claims: std::sync::Arc<str>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.split(' ').any(|s| !s.is_empty() && s == scope)
    }
}

struct Entry {
    principal: Rc<Principal>,
    expires: i64,
}

/// A bounded map from token bytes to [`Principal`]. One per worker thread.
pub struct TokenCache {
    map: HashMap<Box<[u8]>, Entry, TailState>,
    capacity: usize,
    rejected: Rejected,
    /// Tokens verified afresh and refused (not answered from either cache): what a
    /// per-client failure budget charges.
    pub fresh_refusals: u64,
    /// Tokens verified afresh and accepted.
    pub fresh_accepts: u64,
    /// Tokens answered from the cache.
    pub hits: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// The [`KeySet::id`](super::KeySet::id) the entries were verified under.
    pub(crate) keyset_id: u64,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            map: HashMap::with_capacity_and_hasher(capacity.min(1 << 16), Default::default()),
            capacity,
            rejected: Rejected::default(),
            fresh_refusals: 0,
            fresh_accepts: 0,
            hits: 0,
            evictions: 0,
            keyset_id: 0,
        }
    }

    /// The principal of a cached, unexpired token. An expired entry is removed.
    pub fn get(&mut self, token: &[u8], now: i64) -> Option<Rc<Principal>> {
        let e = self.map.get(token)?;
        if now < e.expires {
            self.hits += 1;
            return Some(e.principal.clone());
        }
        self.map.remove(token);
        None
    }

    /// Caches `p` for `token` until `min(p.exp, now + MAX_TTL_SECS)`. Does nothing for
    /// oversize tokens, already-expired principals, or a zero capacity.
    pub fn insert(&mut self, token: &[u8], p: Rc<Principal>, now: i64) {
        let expires = p.exp.min(now.saturating_add(MAX_TTL_SECS));
        if token.len() > MAX_CACHED_TOKEN_LEN || expires <= now || self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(token) {
            self.evict(now);
        }
        self.map.insert(
            token.into(),
            Entry {
                principal: p,
                expires,
            },
        );
    }

    /// Frees room: drops expired entries, then, if still full, the eighth of the entries
    /// that expire first. O(n) once per ~capacity/8 inserts, so amortised O(1).
    fn evict(&mut self, now: i64) {
        let before = self.map.len();
        self.map.retain(|_, e| e.expires > now);
        if self.map.len() < self.capacity {
            self.evictions += (before - self.map.len()) as u64;
            return;
        }
        let mut exp: Vec<i64> = self.map.values().map(|e| e.expires).collect();
        let k = (exp.len() / 8).max(1) - 1;
        let (_, cutoff, _) = exp.select_nth_unstable(k);
        let cutoff = *cutoff;
        self.map.retain(|_, e| e.expires > cutoff);
        self.evictions += (before - self.map.len()) as u64;
    }

    /// Its counts, for the metrics.
    pub(crate) fn stats(&self) -> crate::metrics::CacheStats {
        crate::metrics::CacheStats {
            hits: self.hits,
            verifications: self.fresh_accepts + self.fresh_refusals,
            evictions: self.evictions,
            entries: self.map.len() as u64,
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.rejected.map.clear();
    }

    /// The digest under which [`Self::refused`] and [`Self::refuse`] know `token`.
    pub fn digest(&self, token: &[u8]) -> u128 {
        use std::hash::BuildHasher;
        let (a, b) = (&self.rejected.seeds.0, &self.rejected.seeds.1);
        (u128::from(a.hash_one(token)) << 64) | u128::from(b.hash_one(token))
    }

    /// Why the token of `digest` was refused, if it was within [`REJECT_TTL_SECS`].
    pub fn refused(&mut self, digest: u128, now: i64) -> Option<AuthReject> {
        let &(why, until) = self.rejected.map.get(&digest)?;
        if now < until {
            return Some(why);
        }
        self.rejected.map.remove(&digest);
        None
    }

    /// Remembers a refusal that a later check would repeat (see the module doc).
    pub fn refuse(&mut self, digest: u128, why: AuthReject, now: i64) {
        use AuthReject::*;
        if matches!(why, UnknownKid | NotYetValid | IssuedInFuture | Missing) {
            return;
        }
        let map = &mut self.rejected.map;
        if map.len() >= REJECT_CAPACITY {
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= REJECT_CAPACITY {
                map.clear();
            }
        }
        map.insert(digest, (why, now.saturating_add(REJECT_TTL_SECS)));
    }

    /// Whether `token` is a cached, unexpired verified token (a lookup, nothing verified).
    pub fn holds(&self, token: &[u8], now: i64) -> bool {
        self.map.get(token).is_some_and(|e| now < e.expires)
    }

    /// Refusals remembered now.
    pub fn refused_len(&self) -> usize {
        self.rejected.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The refusal cache: digest → (why, until).
#[derive(Default)]
struct Rejected {
    map: HashMap<u128, (AuthReject, i64), foldhash::fast::RandomState>,
    seeds: (foldhash::fast::RandomState, foldhash::fast::RandomState),
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys: they are live bearer tokens.
        f.debug_struct("TokenCache")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}
