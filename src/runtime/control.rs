//! The control loop on the main thread: starts the workers and the admin thread, watches the
//! config file and publishes new snapshots, and turns SIGTERM/SIGINT into a graceful drain.
//!
//! Not here: reloading (`runtime::reload`), request handling, or parsing (`config`).

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

use crate::auth::keys::{KeyUpdate, KeysMsg};
use crate::runtime::reload::{ports_in_use, ConfigSource, Reloader, Reloads};
use crate::runtime::worker::{run_worker, Wiring, WorkerEvent, WorkerMsg};
use crate::snapshot::{Snapshot, WorkerThreads};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub source: ConfigSource,
    /// `--workers`, overriding `config.workerThreads`.
    pub workers: Option<usize>,
    /// Pin worker i to CPU i (`--pin-cpus`).
    pub pin_cpus: bool,
    /// How often the config file is checked for changes.
    pub watch_interval: Duration,
    /// Share the ports with another process (`--reuse-port`, for zero-downtime upgrades);
    /// otherwise a port something else listens on is an error at start and on reload.
    pub reuse_port: bool,
}

enum Event {
    Worker(WorkerEvent),
    /// SIGTERM or SIGINT: drain and stop.
    Signal(i32),
    /// SIGHUP: reload the config file (and the files it names) now.
    Reload,
}

/// Runs the proxy until a termination signal; returns the process exit code.
pub fn run(snapshot: Snapshot, opts: RunOptions) -> i32 {
    let snapshot = Arc::new(snapshot);
    let admin = match preflight(&snapshot, opts.reuse_port) {
        Ok(admin) => admin,
        Err(failures) => {
            report(&failures);
            return 1;
        }
    };
    let (ev_tx, ev_rx) = mpsc::channel::<Event>();
    let n = worker_count(opts.workers, snapshot.settings.worker_threads);
    let Some(workers) = start_workers(&snapshot, &opts, n, &ev_tx) else {
        return 1;
    };
    let failures = wait_started(&ev_rx, n);
    if !failures.is_empty() {
        report(&failures);
        stop_workers(&workers.senders, Instant::now());
        return 1;
    }
    let ready = Arc::new(crate::readiness::Readiness::default());
    // Until the key manager has loaded them, the key sets of the config are missing.
    ready.set_keys_missing(jwks_sources(&snapshot));
    let senders = Arc::new(workers.senders);
    let stats = Arc::new(crate::metrics::ControlStats::default());
    let stop_tx = ev_tx.clone();
    let shared = crate::runtime::admin::Shared {
        workers: senders.clone(),
        ready: ready.clone(),
        control: stats.clone(),
        stop: Box::new(move || {
            let _ = stop_tx.send(Event::Signal(signal_hook::consts::SIGTERM));
        }),
    };
    if let Err(e) = crate::runtime::admin::start(admin, shared) {
        tracing::error!(error = %e, "cannot start the admin endpoints");
        eprintln!("error: {e}");
        stop_workers(&senders, Instant::now());
        return 1;
    }
    let ports: Vec<u16> = snapshot.binds.iter().map(|b| b.port).collect();
    tracing::info!(?ports, generation = snapshot.generation, "serving");
    for w in &snapshot.warnings {
        tracing::warn!("{w}");
    }
    // Key sets and discovery documents are fetched off the workers; a failure is not fatal.
    let keys = Arc::new(workers.key_senders);
    if let Err(e) = crate::auth::keys::spawn(keys, workers.keys_rx, ready.clone(), stats) {
        tracing::error!(error = %e, "cannot start the key manager");
        stop_workers(&senders, Instant::now());
        return 1;
    }
    let _ = workers
        .keys_tx
        .send(KeysMsg::Sources(snapshot.sources.clone()));
    if let Err(e) = forward_signals(ev_tx) {
        tracing::warn!(error = %e, "cannot install signal handlers");
    }
    let mut control = Reloader {
        reloads: Reloads::new(snapshot, &opts.source),
        senders,
        keys_tx: workers.keys_tx,
        ready,
        workers: n,
        reuse_port: opts.reuse_port,
    };
    loop {
        match ev_rx.recv_timeout(opts.watch_interval) {
            Ok(Event::Signal(sig)) => return drain(&control, sig, &ev_rx, workers.threads),
            Ok(Event::Worker(WorkerEvent::Applied {
                id,
                generation,
                errors,
            })) => control.applied(id, generation, errors),
            Ok(Event::Reload) => control.reloads.sighup(),
            Ok(Event::Worker(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return 1,
        }
        control.poll();
    }
}

/// Logs and prints start-up errors (sorted, each once).
fn report(failures: &[String]) {
    let mut failures = failures.to_vec();
    failures.sort();
    failures.dedup();
    for f in &failures {
        tracing::error!("{f}");
        eprintln!("error: {f}");
    }
}

/// Checks every port this instance would listen on before anything is served (all the errors
/// together), and binds the admin endpoints.
fn preflight(
    snapshot: &Snapshot,
    reuse_port: bool,
) -> Result<crate::runtime::admin::Bound, Vec<String>> {
    let mut failures: Vec<String> = if reuse_port {
        Vec::new()
    } else {
        ports_in_use(snapshot, &[])
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let settings = &snapshot.settings;
    let admin_port = settings.admin_addr.port();
    let mut admin = true;
    if let Some(i) = snapshot.binds.iter().position(|b| b.port == admin_port) {
        if settings.admin_explicit {
            failures.push(format!(
                "config.adminAddr: port {admin_port} is also binds[{i}].port: give the admin endpoint a port of its own"
            ));
        } else {
            // agentgateway's default admin port is one the config serves on: no admin endpoints.
            tracing::warn!(
                port = admin_port,
                "admin endpoints not served: their default port is binds[{i}].port; set config.adminAddr"
            );
            admin = false;
        }
    }
    for (what, addr) in [
        ("statsAddr", snapshot.settings.stats_addr),
        ("readinessAddr", snapshot.settings.readiness_addr),
    ] {
        if let Some(i) = snapshot.binds.iter().position(|b| b.port == addr.port()) {
            failures.push(format!(
                "config.{what}: port {} is also binds[{i}].port: give the admin endpoint a port of its own",
                addr.port()
            ));
        }
    }
    match crate::runtime::admin::bind(settings, admin, reuse_port) {
        Ok(bound) if failures.is_empty() => Ok(bound),
        Ok(_) => Err(failures),
        Err(errors) => {
            failures.extend(errors);
            Err(failures)
        }
    }
}

/// The worker threads and the ends of their channels the control loop keeps.
struct Workers {
    senders: Vec<UnboundedSender<WorkerMsg>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    key_senders: Vec<UnboundedSender<KeyUpdate>>,
    keys_tx: mpsc::Sender<KeysMsg>,
    keys_rx: mpsc::Receiver<KeysMsg>,
}

/// Starts `n` workers, each with three inboxes: control (snapshots, scrapes, shutdown), key
/// updates from the key manager, and MCP calls for its sessions from the other workers. Their
/// events are forwarded into `events`.
fn start_workers(
    snapshot: &Arc<Snapshot>,
    opts: &RunOptions,
    n: usize,
    events: &mpsc::Sender<Event>,
) -> Option<Workers> {
    let cpus = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let (wev_tx, wev_rx) = mpsc::channel::<WorkerEvent>();
    let (keys_tx, keys_rx) = mpsc::channel::<KeysMsg>();
    let (senders, controls) = channels::<WorkerMsg>(n);
    let (key_senders, key_updates) = channels::<KeyUpdate>(n);
    let (call_senders, calls) = channels::<crate::relay::McpCall>(n);
    let call_inboxes = Arc::new(call_senders);
    let mut threads = Vec::with_capacity(n);
    let inboxes = controls.into_iter().zip(key_updates).zip(calls);
    for (id, ((control, key_updates), calls)) in inboxes.enumerate() {
        let wiring = Wiring {
            id,
            control,
            events: wev_tx.clone(),
            to_keys: keys_tx.clone(),
            key_updates,
            calls,
            call_inboxes: call_inboxes.clone(),
        };
        let snap = snapshot.clone();
        let pin = opts.pin_cpus.then_some(id % cpus);
        let t = std::thread::Builder::new()
            .name(format!("portcullis-w{id}"))
            .spawn(move || run_worker(snap, wiring, pin));
        match t {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot start worker thread");
                return None;
            }
        }
    }
    // Forward worker events into the one control queue.
    let ev_tx = events.clone();
    std::thread::Builder::new()
        .name("portcullis-events".into())
        .spawn(move || {
            for e in wev_rx {
                if ev_tx.send(Event::Worker(e)).is_err() {
                    break;
                }
            }
        })
        .ok();
    Some(Workers {
        senders,
        threads,
        key_senders,
        keys_tx,
        keys_rx,
    })
}

/// Waits until every worker has bound its listeners: the errors (a bind failure at start is
/// fatal).
fn wait_started(events: &mpsc::Receiver<Event>, n: usize) -> Vec<String> {
    let mut failures = Vec::new();
    let mut started = 0;
    while started < n {
        match events.recv_timeout(Duration::from_secs(30)) {
            Ok(Event::Worker(WorkerEvent::Started { id, driver, errors })) => {
                started += 1;
                if id == 0 {
                    tracing::info!(workers = n, driver, "workers started");
                }
                failures.extend(errors);
            }
            Ok(_) => {}
            Err(_) => {
                failures.push("workers did not start within 30s".into());
                break;
            }
        }
    }
    failures
}

/// SIGTERM/SIGINT: stop accepting, let the workers drain until the termination deadline,
/// then return the exit code.
fn drain(
    reloader: &Reloader,
    sig: i32,
    events: &mpsc::Receiver<Event>,
    threads: Vec<std::thread::JoinHandle<()>>,
) -> i32 {
    let grace = reloader.current().settings.termination_deadline;
    let deadline = Instant::now() + grace;
    tracing::info!(
        signal = sig,
        deadline_ms = grace.as_millis() as u64,
        "draining"
    );
    reloader.ready.set_draining();
    stop_workers(&reloader.senders, deadline);
    let mut unfinished = 0;
    let mut stopped = 0;
    while stopped < threads.len() {
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(2);
        match events.recv_timeout(wait) {
            Ok(Event::Worker(WorkerEvent::Stopped { unfinished: u })) => {
                stopped += 1;
                unfinished += u;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    for t in threads {
        let _ = t.join();
    }
    tracing::info!(unfinished, "stopped");
    0
}

/// The ids of the config's key sets (every source but discovery documents).
fn jwks_sources(snap: &Snapshot) -> Vec<String> {
    let mut v: Vec<String> = snap
        .sources
        .iter()
        .filter(|s| !matches!(s.kind, crate::auth::policy::SourceKind::AsMetadata { .. }))
        .map(|s| s.id.to_string())
        .collect();
    v.sort();
    v
}

/// Asks every worker to stop accepting and drain until `deadline`.
fn stop_workers(senders: &[UnboundedSender<WorkerMsg>], deadline: Instant) {
    for s in senders {
        let _ = s.unbounded_send(WorkerMsg::Shutdown { deadline });
    }
}

fn worker_count(cli: Option<usize>, cfg: Option<WorkerThreads>) -> usize {
    let cpus = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    match (cli, cfg) {
        (Some(n), _) => n.max(1),
        (None, Some(WorkerThreads::Count(n))) => n.max(1),
        (None, Some(WorkerThreads::Percent(p))) => ((cpus * p as usize) / 100).max(1),
        (None, None) => cpus,
    }
}

fn forward_signals(tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("portcullis-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let ev = if sig == SIGHUP {
                    Event::Reload
                } else {
                    Event::Signal(sig)
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}

/// `n` unbounded channels: the senders, and the receivers in the same order.
fn channels<T>(n: usize) -> (Vec<UnboundedSender<T>>, Vec<UnboundedReceiver<T>>) {
    (0..n).map(|_| unbounded()).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_count_rules() {
        let cpus = std::thread::available_parallelism()
            .map(|c| c.get())
            .unwrap_or(1);
        assert_eq!(worker_count(Some(3), Some(WorkerThreads::Count(7))), 3);
        assert_eq!(worker_count(None, Some(WorkerThreads::Count(7))), 7);
        assert_eq!(worker_count(None, Some(WorkerThreads::Percent(100))), cpus);
        assert_eq!(worker_count(None, Some(WorkerThreads::Percent(1))), 1);
        assert_eq!(worker_count(None, None), cpus);
    }
}
