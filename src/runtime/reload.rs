//! Config reloads while serving: a changed file (or SIGHUP, or a renewed certificate) is loaded
//! and lowered here, off the workers; a valid result is sent to every worker as one
//! `Arc<Snapshot>` and becomes the current config once every worker has applied it (a worker that
//! cannot open a new listener keeps the old config, and the others are sent it back).
//!
//! Not here: starting and stopping (`runtime::control`), the file and certificate watches
//! themselves (`runtime::watch`).

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures_channel::mpsc::UnboundedSender;

use crate::auth::keys::KeysMsg;
use crate::config::{ConfigError, ConfigErrors};
use crate::runtime::worker::WorkerMsg;
use crate::snapshot::Snapshot;

/// Where the configuration comes from; only files are watched for changes.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// The file and the bytes the running snapshot was loaded from: a change written between
    /// that read and the watcher's start is still seen as a change.
    File(PathBuf, Vec<u8>),
    Inline(String),
}

/// Reloading once serving: the config being served, what watches for changes, and how a new
/// generation reaches the workers and the key manager.
pub(super) struct Reloader {
    pub(super) reloads: Reloads,
    pub(super) senders: Arc<Vec<UnboundedSender<WorkerMsg>>>,
    pub(super) keys_tx: mpsc::Sender<KeysMsg>,
    pub(super) ready: Arc<crate::readiness::Readiness>,
    pub(super) workers: usize,
    pub(super) reuse_port: bool,
}

impl Reloader {
    /// The config being served.
    pub(super) fn current(&self) -> &Arc<Snapshot> {
        &self.reloads.current
    }

    /// Worker `id` reported on `generation`.
    pub(super) fn applied(&mut self, id: usize, generation: u64, errors: Vec<String>) {
        for e in &errors {
            tracing::error!(worker = id, generation, "{e}");
        }
        let r = &mut self.reloads;
        let Some(a) = r.applying.as_mut().filter(|a| a.generation == generation) else {
            return;
        };
        a.remaining -= 1;
        a.errors.extend(errors);
        if a.remaining == 0 {
            let a = r.applying.take().expect("checked above");
            r.current = finish_reload(a, &self.senders, &self.keys_tx, &self.ready);
            if r.current.generation != generation {
                // Rolled back: the previous generation is being applied again.
                r.applying = Some(Applying::new(&r.current, None, self.workers));
            }
        }
    }

    /// Between events: gives up on a generation the workers never confirmed, else loads a
    /// changed config file (or one a signal or a certificate renewal asked for) and publishes it.
    pub(super) fn poll(&mut self) {
        let r = &mut self.reloads;
        if let Some(a) = &r.applying {
            if a.started.elapsed() > Duration::from_secs(30) {
                tracing::error!(
                    generation = a.generation,
                    "workers did not report applying the config within 30s"
                );
                r.applying = None;
            }
            return;
        }
        let Some(text) = r.changed_text() else {
            return;
        };
        let Some(path) = r.path.clone() else {
            return;
        };
        let current = r.current.clone();
        let reuse_port = self.reuse_port;
        let loaded = crate::config::load_bytes(&text, path.parent()).and_then(|snap| {
            // A port added by the reload must be free, as at start.
            let taken = if reuse_port {
                Vec::new()
            } else {
                let serving: Vec<u16> = current
                    .binds
                    .iter()
                    .map(|b| b.port)
                    .chain(current.settings.peer_port())
                    .collect();
                ports_in_use(&snap, &serving)
            };
            if taken.is_empty() {
                Ok(snap)
            } else {
                Err(ConfigErrors(taken))
            }
        });
        match loaded {
            Ok(mut snap) => {
                snap.generation = current.generation + 1;
                r.certs.retarget(&snap.cert_files);
                let snap = Arc::new(snap);
                for s in self.senders.iter() {
                    let _ = s.unbounded_send(WorkerMsg::Snapshot(snap.clone()));
                }
                // Until every worker has it, the new config is not the current one.
                r.applying = Some(Applying::new(&snap, Some(current), self.workers));
            }
            Err(errors) => {
                tracing::error!(path = %path.display(), errors = %errors, "config reload rejected; still serving the previous config");
            }
        }
    }
}

/// What reloading needs to remember: the config being served, the file and certificate
/// watches, and the generation being applied.
pub(super) struct Reloads {
    current: Arc<Snapshot>,
    /// The config file (`None` for an inline config: nothing to watch).
    path: Option<PathBuf>,
    watcher: Option<crate::runtime::watch::Watcher>,
    certs: crate::runtime::watch::CertWatch,
    /// SIGHUP or a renewed certificate: load the file now, even if its text did not change.
    reload_now: bool,
    /// A published generation whose workers have not all reported yet.
    applying: Option<Applying>,
}

impl Reloads {
    pub(super) fn new(current: Arc<Snapshot>, source: &ConfigSource) -> Reloads {
        let (path, watcher) = match source {
            ConfigSource::File(p, loaded) => (
                Some(p.clone()),
                Some(crate::runtime::watch::Watcher::new(p, loaded.clone())),
            ),
            ConfigSource::Inline(_) => (None, None),
        };
        Reloads {
            certs: crate::runtime::watch::CertWatch::new(&current.cert_files),
            current,
            path,
            watcher,
            reload_now: false,
            applying: None,
        }
    }

    pub(super) fn sighup(&mut self) {
        match &self.path {
            Some(path) => {
                tracing::info!(path = %path.display(), "SIGHUP: reloading the config");
                self.reload_now = true;
            }
            None => tracing::info!("SIGHUP: the config was given inline; nothing to reload"),
        }
    }

    /// The config file's bytes if they should be loaded now: changed and settled, or asked for.
    fn changed_text(&mut self) -> Option<Vec<u8>> {
        let (Some(w), Some(path)) = (self.watcher.as_mut(), &self.path) else {
            return None;
        };
        if self.certs.settled_change(Instant::now()) {
            tracing::info!("a certificate or key file changed: reloading the config");
            self.reload_now = true;
        }
        if !std::mem::take(&mut self.reload_now) {
            return w.poll();
        }
        match std::fs::read(path) {
            Ok(t) => {
                w.loaded(&t);
                Some(t)
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the config file; still serving the previous config");
                None
            }
        }
    }
}

/// A generation sent to the workers, waiting for every worker's report.
struct Applying {
    generation: u64,
    remaining: usize,
    errors: Vec<String>,
    started: Instant,
    /// The config to return to if a worker cannot apply it (`None` for a rollback itself).
    previous: Option<Arc<Snapshot>>,
    next: Arc<Snapshot>,
}

impl Applying {
    fn new(snap: &Arc<Snapshot>, previous: Option<Arc<Snapshot>>, workers: usize) -> Applying {
        Applying {
            generation: snap.generation,
            remaining: workers,
            errors: Vec::new(),
            started: Instant::now(),
            previous,
            next: snap.clone(),
        }
    }
}

/// Every worker reported on `a`: returns the config now being served. A worker that could not
/// open a listener kept its old config and listeners; the others are sent the previous config
/// again (as a new generation) so that every worker serves the same one.
fn finish_reload(
    a: Applying,
    senders: &[UnboundedSender<WorkerMsg>],
    keys_tx: &mpsc::Sender<KeysMsg>,
    ready: &crate::readiness::Readiness,
) -> Arc<Snapshot> {
    let next = a.next;
    match (a.errors.is_empty(), a.previous) {
        (true, previous) => {
            ready.set_binds_down(Vec::new());
            if previous.is_some() {
                let _ = keys_tx.send(KeysMsg::Sources(next.sources.clone()));
                for w in &next.warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!(generation = next.generation, "config reloaded");
            }
            next
        }
        (false, Some(previous)) => {
            tracing::error!(
                generation = next.generation,
                errors = %a.errors.join("; "),
                "config reload rejected: a listener could not be opened; still serving the previous config"
            );
            for s in senders {
                let _ = s.unbounded_send(WorkerMsg::Snapshot(previous.clone()));
            }
            previous
        }
        (false, None) => {
            // Even the previous config could not be restored everywhere.
            ready.set_binds_down(a.errors);
            next
        }
    }
}

/// The errors for the ports of `snap` that something else listens on, skipping those that
/// `serving` already holds.
pub(super) fn ports_in_use(snap: &Snapshot, serving: &[u16]) -> Vec<ConfigError> {
    let mut errors: Vec<ConfigError> = snap
        .binds
        .iter()
        .enumerate()
        .filter(|(_, b)| !serving.contains(&b.port))
        .filter_map(|(i, b)| {
            crate::runtime::worker::check_port_free(b.port)
                .err()
                .map(|e| ConfigError::new(format!("binds[{i}].port"), e))
        })
        .collect();
    // The peer listener's port, likewise.
    if let Some(port) = snap.settings.peer_port().filter(|p| !serving.contains(p)) {
        if let Err(e) = crate::runtime::worker::check_port_free(port) {
            errors.push(ConfigError::new("env PORTCULLIS_PEER_ADDR", e));
        }
    }
    errors
}
