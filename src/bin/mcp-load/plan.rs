//! The token plan of one generator thread: which bearer token each request carries — a fixed
//! list (round-robin), one minted token (cache hits), a pool of unique minted tokens (cache
//! misses), and a chosen share of invalid or expired tokens that must be rejected.
//! Does not: sign on the hot path. Unique tokens are minted before the measurement starts,
//! because signing (RS256 especially) costs far more than verifying and would make the
//! generator the bottleneck; the report says how often the pool wrapped.

use std::sync::Arc;

use anyhow::{bail, Result};

use crate::scenario::Expect;
use crate::tokens::{corrupt, Claims, SignKey};

/// Run-wide token settings (from the command line).
pub struct TokenConfig {
    pub fixed: Vec<String>,
    pub key: Option<Arc<SignKey>>,
    pub claims: Claims,
    pub unique: bool,
    /// Unique tokens minted per run (split between threads).
    pub pool: usize,
    pub invalid_share: f64,
    pub expired_share: f64,
    /// Distinguishes this run's `jti`s from earlier runs'.
    pub nonce: u64,
}

impl TokenConfig {
    pub fn mode(&self) -> &'static str {
        match (&self.key, self.unique, self.fixed.is_empty()) {
            (Some(_), true, _) => "minted-unique",
            (Some(_), false, _) => "minted",
            (None, _, false) => "fixed",
            (None, _, true) => "none",
        }
    }
}

pub struct TokenPlan {
    valid: Vec<String>,
    invalid: Option<String>,
    expired: Option<String>,
    invalid_share: f64,
    expired_share: f64,
    idx: usize,
    rng: u64,
    pub minted: u64,
    pub wraps: u64,
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl TokenPlan {
    /// Builds thread `tid`'s plan (of `threads`), minting what it needs.
    pub fn build(c: &TokenConfig, tid: usize, threads: usize) -> Result<TokenPlan> {
        let now = now_unix();
        let mut minted = 0;
        let valid: Vec<String> = match &c.key {
            Some(key) => {
                let n = if c.unique {
                    c.pool.div_ceil(threads).max(1)
                } else {
                    1
                };
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(key.mint(&c.claims, now, &format!("{:x}-{tid}-{i}", c.nonce))?);
                }
                minted = n as u64;
                v
            }
            None => c.fixed.clone(),
        };
        let expired = match (&c.key, c.expired_share > 0.0) {
            (Some(key), true) => {
                let mut claims = c.claims.clone();
                claims.ttl = -3600;
                minted += 1;
                Some(key.mint(&claims, now, &format!("{:x}-{tid}-expired", c.nonce))?)
            }
            (None, true) => bail!("--expired-share needs --sign-key to mint expired tokens"),
            _ => None,
        };
        let invalid = valid.first().map(|t| corrupt(t));
        if c.invalid_share > 0.0 && invalid.is_none() {
            bail!("--invalid-share needs a token to corrupt (--token, --token-file or --sign-key)");
        }
        Ok(TokenPlan {
            idx: if valid.is_empty() {
                0
            } else {
                tid % valid.len()
            },
            valid,
            invalid,
            expired,
            invalid_share: c.invalid_share,
            expired_share: c.expired_share,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (tid as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
            minted,
            wraps: 0,
        })
    }

    fn rand01(&mut self) -> f64 {
        // xorshift64*: cheap and good enough to pick a share.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The token for the next request and what its answer must be.
    pub fn pick(&mut self) -> (Option<&str>, Expect) {
        if self.valid.is_empty() {
            return (None, Expect::Accept);
        }
        if self.invalid_share > 0.0 || self.expired_share > 0.0 {
            let r = self.rand01();
            if r < self.invalid_share {
                return (self.invalid.as_deref(), Expect::Reject);
            }
            if r < self.invalid_share + self.expired_share {
                return (self.expired.as_deref(), Expect::Reject);
            }
        }
        let t = &self.valid[self.idx];
        self.idx += 1;
        if self.idx == self.valid.len() {
            self.idx = 0;
            self.wraps += 1;
        }
        (Some(t), Expect::Accept)
    }

    /// A valid token (for session set-up), without advancing the mix.
    pub fn valid(&self) -> Option<&str> {
        self.valid.first().map(String::as_str)
    }
}
