//! Readiness (`/healthz/ready`): what the control loop and the key manager report, and what
//! the admin thread answers from. Control-plane only: never touched on the request path.

// Its locks are the control plane's: never taken by a worker.
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What readiness (`/healthz/ready`) answers from: 200 only while nothing below holds. Written by
/// the control loop and the key manager, read by the admin thread; never on the request path.
#[derive(Default)]
pub(crate) struct Readiness {
    draining: AtomicBool,
    /// Binds of the published config that some worker could not open (`binds[port=…]: …`).
    binds_down: Mutex<Vec<String>>,
    /// Key sources of the published config that have never yielded a key set: every request
    /// that needs them would get 503 until they do.
    keys_missing: Mutex<Vec<String>>,
}

impl Readiness {
    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_binds_down(&self, down: Vec<String>) {
        *self.binds_down.lock().unwrap_or_else(|e| e.into_inner()) = down;
    }

    pub(crate) fn set_keys_missing(&self, missing: Vec<String>) {
        *self.keys_missing.lock().unwrap_or_else(|e| e.into_inner()) = missing;
    }

    /// `None` when ready; otherwise every reason, one per line.
    pub(crate) fn not_ready(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if self.draining.load(Ordering::Relaxed) {
            reasons.push("draining".to_owned());
        }
        for b in self
            .binds_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            reasons.push(format!("not listening: {b}"));
        }
        for k in self
            .keys_missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            reasons.push(format!("no key set loaded yet from {k}"));
        }
        (!reasons.is_empty()).then(|| reasons.join("\n"))
    }
}
