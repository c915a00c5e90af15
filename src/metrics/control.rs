//! Figures of the control plane (the key manager's fetches), written off the workers and read at
//! scrape. A mutex is fine here: neither side is on the request path.

// Its lock is the control plane's: taken by the key manager and the admin thread, never a worker.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// One key source (a JWKS URL, file or inline set, or an authorization server's metadata).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SourceStats {
    /// Fetches (or file reads) attempted.
    pub fetches: u64,
    /// Of those, the ones that failed (unreachable, bad status, unusable document).
    pub failures: u64,
    /// When a fetch last succeeded (Unix seconds).
    pub last_success: Option<f64>,
    /// Keys in the published set (0 for a metadata document).
    pub keys: u64,
    /// `jwks` or `metadata`.
    pub kind: &'static str,
}

#[derive(Debug, Default)]
pub(crate) struct ControlStats {
    sources: Mutex<BTreeMap<String, SourceStats>>,
}

impl ControlStats {
    /// The key manager's current sources (others are forgotten).
    pub(crate) fn retain(&self, ids: &[&str]) {
        if let Ok(mut s) = self.sources.lock() {
            s.retain(|k, _| ids.contains(&k.as_str()));
        }
    }

    /// A fetch of `source` ended: `Ok(keys)` with the key count of what it holds now.
    pub(crate) fn fetched(&self, source: &str, kind: &'static str, outcome: Result<u64, ()>) {
        let Ok(mut s) = self.sources.lock() else {
            return;
        };
        let st = s.entry(source.to_owned()).or_default();
        st.kind = kind;
        st.fetches += 1;
        match outcome {
            Ok(keys) => {
                st.keys = keys;
                st.last_success = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs_f64());
            }
            Err(()) => st.failures += 1,
        }
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, SourceStats> {
        self.sources.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
