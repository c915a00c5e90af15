//! The per-worker verified-token cache: the single most important optimisation (perf-notes
//! §0, §2.3) — a hit costs ≈ 0.2 µs against 21–53 µs for a verify.
//!
//! Owns: [`Principal`] (what a verified token grants) and [`TokenCache`].
//! Keyed by the *whole* token: hashed with foldhash under a random per-map seed (SipHash cost
//! ~3k instructions per request on a 1 KB token; all the request path's maps together now cost
//! ~0.5k), then compared in full on a hit — a hash collision can never authenticate a different
//! token. Only verified tokens are inserted, so colliding chains cannot be built by someone
//! without the signing key, whatever they learn of the seed. Entries expire at
//! `min(exp, inserted + MAX_TTL)` (no leeway on hits: stricter than a fresh check). Failures
//! are never cached (attackers choose the bytes). Tokens over [`MAX_CACHED_TOKEN_LEN`] are not
//! cached, so memory is bounded by `capacity × MAX_CACHED_TOKEN_LEN`.
//! Does not: share between workers (it is `!Send`: `Rc`), or notice configuration changes
//! by itself — `check_token` clears it when the [`KeySet`](super::KeySet) changes; the
//! caller must `clear()` it when the `Validation` changes.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::rc::Rc;

/// Longest cached entry lifetime, seconds: key removal from the JWKS and config changes
/// take effect within this even without a `clear()`.
pub const MAX_TTL_SECS: i64 = 300;

/// Tokens longer than this are verified every time rather than cached.
pub const MAX_CACHED_TOKEN_LEN: usize = 8 * 1024;

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
    map: HashMap<Box<[u8]>, Entry, foldhash::fast::RandomState>,
    capacity: usize,
    /// The [`KeySet::id`](super::KeySet::id) the entries were verified under.
    pub(crate) keyset_id: u64,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            map: HashMap::with_capacity_and_hasher(capacity.min(1 << 16), Default::default()),
            capacity,
            keyset_id: 0,
        }
    }

    /// The principal of a cached, unexpired token. An expired entry is removed.
    pub fn get(&mut self, token: &[u8], now: i64) -> Option<Rc<Principal>> {
        let e = self.map.get(token)?;
        if now < e.expires {
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
        self.map.retain(|_, e| e.expires > now);
        if self.map.len() < self.capacity {
            return;
        }
        let mut exp: Vec<i64> = self.map.values().map(|e| e.expires).collect();
        let k = (exp.len() / 8).max(1) - 1;
        let (_, cutoff, _) = exp.select_nth_unstable(k);
        let cutoff = *cutoff;
        self.map.retain(|_, e| e.expires > cutoff);
    }

    pub fn clear(&mut self) {
        self.map.clear();
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

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys: they are live bearer tokens.
        f.debug_struct("TokenCache")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}
