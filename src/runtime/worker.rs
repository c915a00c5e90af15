//! A worker thread: its own monoio runtime, its own SO_REUSEPORT listener per bind, its own
//! connections, pool and metrics. It talks to the rest of the process only through its control
//! channel (new snapshots, scrapes, shutdown) and the event channel back to the control loop.
//!
//! Not here: deciding when to reload or stop (`control`), or serving requests (`server::conn`).

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_channel::oneshot;
use futures_util::StreamExt;
use monoio::io::Canceller;
use monoio::net::{ListenerOpts, TcpListener};

use crate::auth::keys::{KeyUpdate, KeysMsg};
use crate::auth::request::AuthState;
use crate::metrics::WorkerMetrics;
use crate::net::io::ConnInfo;
use crate::net::tls_conn::TlsConn;
use crate::relay::{McpCall, Relay};
use crate::server::conn;
use crate::server::ctx::WorkerCtx;
use crate::server::dispatch::find_bind;
use crate::shard::Shard;
use crate::snapshot::Snapshot;

/// Messages from the control loop and the admin thread to one worker.
pub(crate) enum WorkerMsg {
    Snapshot(Arc<Snapshot>),
    Scrape(oneshot::Sender<WorkerMetrics>),
    /// The snapshot this worker serves (the admin endpoint's `/config_dump`).
    Current(oneshot::Sender<Arc<Snapshot>>),
    /// Stop accepting, let in-flight requests finish until the deadline, then return.
    Shutdown {
        deadline: Instant,
    },
}

/// Reports from workers to the control loop.
#[derive(Debug)]
pub(crate) enum WorkerEvent {
    /// The worker bound its listeners (or failed to, with the errors).
    Started {
        id: usize,
        driver: &'static str,
        errors: Vec<String>,
    },
    Applied {
        id: usize,
        generation: u64,
        errors: Vec<String>,
    },
    Stopped {
        unfinished: u64,
    },
}

/// One worker's ends of the channels that connect it to the rest of the process.
pub(crate) struct Wiring {
    pub id: usize,
    /// Snapshots, scrapes and shutdown from the control loop and the admin thread.
    pub control: UnboundedReceiver<WorkerMsg>,
    /// Reports to the control loop.
    pub events: mpsc::Sender<WorkerEvent>,
    /// Requests to the key manager, and what it publishes to this worker.
    pub to_keys: mpsc::Sender<KeysMsg>,
    pub key_updates: UnboundedReceiver<KeyUpdate>,
    /// Calls for this worker's sessions from other workers, and every worker's call inbox.
    pub calls: UnboundedReceiver<McpCall>,
    pub call_inboxes: Arc<Vec<UnboundedSender<McpCall>>>,
}

/// Runs a worker on the current thread until it is shut down.
pub(crate) fn run_worker(snap: Arc<Snapshot>, wiring: Wiring, pin_cpu: Option<usize>) {
    let (id, events) = (wiring.id, wiring.events.clone());
    if let Some(cpu) = pin_cpu {
        if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
            tracing::warn!(worker = id, cpu, error = %e, "could not pin worker to cpu");
        }
    }
    let uring = monoio::utils::detect_uring();
    let driver = if uring { "io_uring" } else { "epoll" };
    let mut rt = match crate::runtime::build_runtime(uring, 1024) {
        Ok(rt) => rt,
        Err(e) => {
            let _ = events.send(WorkerEvent::Started {
                id,
                driver,
                errors: vec![format!(
                    "worker {id}: cannot build the {driver} runtime: {e}"
                )],
            });
            return;
        }
    };
    rt.block_on(worker_main(snap, wiring, driver));
}

struct ListenerHandle {
    canceller: Canceller,
    stopped: Rc<Cell<bool>>,
    /// The accept loop; it owns the listening socket, closed when the loop ends.
    task: monoio::task::JoinHandle<()>,
}

async fn worker_main(snap: Arc<Snapshot>, wiring: Wiring, driver: &'static str) {
    let Wiring {
        id,
        mut control,
        events,
        to_keys,
        mut key_updates,
        calls,
        call_inboxes,
    } = wiring;
    let shard = Rc::new(Shard::new(id, call_inboxes.len(), snap.clone()));
    let relay = Rc::new(Relay::new(shard.clone(), call_inboxes));
    let ctx = Rc::new(WorkerCtx::new(
        shard.clone(),
        AuthState::new(Some(to_keys)),
        relay.clone(),
    ));
    monoio::spawn(relay.clone().serve_inbox(calls));
    let keys_ctx = ctx.clone();
    monoio::spawn(async move {
        while let Some(update) = key_updates.next().await {
            keys_ctx.auth.borrow_mut().apply(update);
        }
    });
    let mut listeners: HashMap<u16, ListenerHandle> = HashMap::new();
    let errors = sync_listeners(&ctx, &snap, &mut listeners);
    let _ = events.send(WorkerEvent::Started { id, driver, errors });
    monoio::spawn(tick(ctx.clone()));
    while let Some(msg) = control.next().await {
        match msg {
            WorkerMsg::Snapshot(s) => {
                let generation = s.generation;
                // New listeners are opened first; if one cannot be, this worker keeps its
                // config and listeners (the control loop then restores the previous config
                // everywhere). Old listeners close only once their replacements are open.
                let errors = match open_new(&s, &listeners) {
                    Ok(opened) => {
                        let providers: Vec<u64> = provider_ids(&s);
                        ctx.auth.borrow_mut().retain_providers(&providers);
                        shard.set_snapshot(s.clone());
                        for (port, listener) in opened {
                            listeners.insert(port, start_accepting(&ctx, port, listener));
                        }
                        close_removed(&s, &mut listeners);
                        Vec::new()
                    }
                    Err(errors) => errors,
                };
                let _ = events.send(WorkerEvent::Applied {
                    id,
                    generation,
                    errors,
                });
            }
            WorkerMsg::Scrape(tx) => {
                let mut m = shard.metrics.borrow().clone();
                m.sessions = relay.sessions.len() as u64;
                m.cache = ctx.auth.borrow().cache_stats();
                m.upstream_connect = crate::metrics::thread_connects();
                m.export = Some(shard.snapshot().settings.metrics.clone());
                let _ = tx.send(m);
            }
            WorkerMsg::Current(tx) => {
                let _ = tx.send(Arc::clone(&shard.snapshot()));
            }
            WorkerMsg::Shutdown { deadline } => {
                let mut loops = Vec::new();
                for (_, l) in listeners.drain() {
                    l.stopped.set(true);
                    let _ = l.canceller.cancel();
                    loops.push(l.task);
                }
                // The listening sockets are closed before anything else: one left open (its
                // accept still queued in the ring) would take connections that the kernel
                // resets when the process is gone, instead of leaving them to the instance that
                // shares the port (`--reuse-port` upgrades).
                for task in loops {
                    let _ = monoio::time::timeout(Duration::from_secs(1), task).await;
                }
                shard.start_drain();
                // In-flight work: this worker's connections, and the calls for its sessions
                // that other workers' connections are waiting for.
                let busy =
                    || shard.metrics.borrow().open_connections > 0 || relay.remote_calls.get() > 0;
                while busy() && Instant::now() < deadline {
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
                // No MCP server process outlives the proxy.
                relay.sessions.close_all().await;
                let unfinished = shard.metrics.borrow().open_connections;
                let _ = events.send(WorkerEvent::Stopped { unfinished });
                return;
            }
        }
    }
}

fn provider_ids(s: &Snapshot) -> Vec<u64> {
    s.binds
        .iter()
        .flat_map(|b| b.listeners.iter())
        .flat_map(|l| l.routes.iter())
        .filter_map(|r| r.policies.auth.as_ref())
        .flat_map(|a| a.providers.iter().map(|p| p.id))
        .collect()
}

/// Refreshes the cached `Date` value and expires idle upstream connections.
async fn tick(ctx: Rc<WorkerCtx>) {
    let mut n = 0u64;
    loop {
        monoio::time::sleep(Duration::from_millis(250)).await;
        ctx.shard.tick_date();
        ctx.shard.wake_idle_expired(Instant::now());
        n += 1;
        if n % 8 == 0 {
            let idle = ctx.shard.snapshot().settings.upstream.pool_idle_timeout;
            crate::net::pool::expire(idle);
        }
        if n % 20 == 0 && !ctx.relay.sessions.is_empty() {
            let ttl = ctx.shard.snapshot().settings.mcp_session_ttl;
            ctx.relay.sessions.expire(ttl);
        }
    }
}

/// Opens the listeners of the first config (every error is reported; any is fatal at start).
fn sync_listeners(
    ctx: &Rc<WorkerCtx>,
    snap: &Snapshot,
    listeners: &mut HashMap<u16, ListenerHandle>,
) -> Vec<String> {
    match open_new(snap, listeners) {
        Ok(opened) => {
            for (port, listener) in opened {
                listeners.insert(port, start_accepting(ctx, port, listener));
            }
            Vec::new()
        }
        Err(errors) => errors,
    }
}

/// Binds every port of `snap` that `listeners` does not hold yet: all of them, or none (the
/// ones opened are closed again) with every error.
fn open_new(
    snap: &Snapshot,
    listeners: &HashMap<u16, ListenerHandle>,
) -> Result<Vec<(u16, TcpListener)>, Vec<String>> {
    let mut opened = Vec::new();
    let mut errors = Vec::new();
    for b in &snap.binds {
        if listeners.contains_key(&b.port) {
            continue;
        }
        match bind(b.port) {
            Ok(l) => opened.push((b.port, l)),
            Err(e) => errors.push(format!(
                "binds[port={port}]: cannot listen on port {port}: {e}",
                port = b.port
            )),
        }
    }
    // The peer listener: requests other replicas forward to this one's sessions.
    if let Some(port) = snap
        .settings
        .peer_port()
        .filter(|p| !listeners.contains_key(p))
    {
        match bind(port) {
            Ok(l) => opened.push((port, l)),
            Err(e) => errors.push(format!(
                "PORTCULLIS_PEER_ADDR: cannot listen on the peer port {port}: {e}"
            )),
        }
    }
    if errors.is_empty() {
        Ok(opened)
    } else {
        Err(errors)
    }
}

fn start_accepting(ctx: &Rc<WorkerCtx>, port: u16, listener: TcpListener) -> ListenerHandle {
    let canceller = Canceller::new();
    let stopped = Rc::new(Cell::new(false));
    let task = monoio::spawn(accept_loop(
        listener,
        port,
        ctx.clone(),
        canceller.handle(),
        stopped.clone(),
    ));
    ListenerHandle {
        canceller,
        stopped,
        task,
    }
}

/// Closes the listeners whose port `snap` no longer has.
fn close_removed(snap: &Snapshot, listeners: &mut HashMap<u16, ListenerHandle>) {
    listeners.retain(|port, l| {
        let keep =
            snap.binds.iter().any(|b| b.port == *port) || snap.settings.peer_port() == Some(*port);
        if !keep {
            l.stopped.set(true);
            let c = std::mem::take(&mut l.canceller);
            let _ = c.cancel();
        }
        keep
    });
}

async fn serve_tls(
    stream: monoio::net::TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
    info: ConnInfo,
    ctx: Rc<WorkerCtx>,
) {
    let peer = info.peer;
    let t0 = Instant::now();
    match monoio::time::timeout(handshake_timeout, TlsConn::accept(stream, cfg)).await {
        Ok(Ok(tls_stream)) => {
            let secs = t0.elapsed().as_secs_f64();
            let buckets = &crate::metrics::CONNECT_BUCKETS;
            ctx.shard
                .metrics
                .borrow_mut()
                .tls_handshake
                .observe(buckets, secs);
            conn::serve(tls_stream, info, ctx).await
        }
        Ok(Err(e)) => {
            tracing::debug!(client.addr = %peer, error = %e, "tls handshake failed")
        }
        Err(_) => {
            tracing::debug!(client.addr = %peer, "tls handshake timed out")
        }
    }
}

/// Binds `[::]:port` (dual stack), or `0.0.0.0:port` where IPv6 is unavailable. Every worker
/// binds its own socket; SO_REUSEPORT lets the kernel spread connections across them.
fn bind(port: u16) -> std::io::Result<TcpListener> {
    let opts = ListenerOpts::new()
        .reuse_port(true)
        .reuse_addr(true)
        .backlog(4096);
    let (first, fallback) = listen_addrs(port)?;
    TcpListener::bind_with_config(first, &opts).or_else(|e| match fallback {
        Some(v4) => TcpListener::bind_with_config(v4, &opts),
        None => Err(e),
    })
}

/// The address a bind listens on: `PORTCULLIS_BIND_ADDR`, else `[::]` with `0.0.0.0` as the
/// fallback where IPv6 is unavailable.
fn listen_addrs(port: u16) -> std::io::Result<(SocketAddr, Option<SocketAddr>)> {
    match std::env::var("PORTCULLIS_BIND_ADDR") {
        Ok(ip) => {
            let ip: std::net::IpAddr = ip.parse().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("PORTCULLIS_BIND_ADDR: {e}"),
                )
            })?;
            Ok((SocketAddr::new(ip, port), None))
        }
        Err(_) => Ok((
            SocketAddr::from(([0u16; 8], port)),
            Some(SocketAddr::from(([0, 0, 0, 0], port))),
        )),
    }
}

/// Checks that nothing listens on `port` yet: a socket without SO_REUSEPORT cannot bind a port
/// that any other socket listens on, whoever owns it (the workers' SO_REUSEPORT sockets would
/// otherwise join another process's group and silently share its traffic). The probe is closed
/// at once; the workers bind right after.
pub(crate) fn check_port_free(port: u16) -> Result<(), String> {
    let (first, fallback) = listen_addrs(port).map_err(|e| e.to_string())?;
    let probe = |addr| std::net::TcpListener::bind(addr).map(drop);
    let res = match probe(first) {
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse && fallback.is_some() => {
            probe(fallback.unwrap_or(first))
        }
        r => r,
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "port {port} is already in use (another Portcullis or another program listens on \
             it): stop that process or choose another port; to share the port with another \
             Portcullis on purpose (a zero-downtime upgrade), start this one with --reuse-port"
        )),
        Err(e) => Err(format!("cannot listen on port {port}: {e}")),
    }
}

async fn accept_loop(
    listener: TcpListener,
    port: u16,
    ctx: Rc<WorkerCtx>,
    cancel: monoio::io::CancelHandle,
    stopped: Rc<Cell<bool>>,
) {
    let mut last_warned: Option<Instant> = None;
    let mut failed = 0u64;
    loop {
        let accepted = listener.cancelable_accept(cancel.clone()).await;
        if stopped.get() {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let snap = ctx.shard.snapshot();
                let bind = find_bind(&snap, port);
                let tls = bind.and_then(|b| b.tls.clone());
                let from_peer = bind.is_none() && snap.settings.peer_port() == Some(port);
                let handshake_timeout = snap.settings.limits.tls_handshake_timeout;
                drop(snap);
                let local_loopback = stream
                    .local_addr()
                    .is_ok_and(|a| a.ip().to_canonical().is_loopback());
                let info = ConnInfo {
                    peer,
                    port,
                    https: tls.is_some(),
                    local_loopback,
                    from_peer,
                };
                let ctx = ctx.clone();
                monoio::spawn(async move {
                    match tls {
                        None => conn::serve(stream, info, ctx).await,
                        // Boxed: a TLS stream and its handshake are large, and inline they
                        // would size every plain connection's task too.
                        Some(cfg) => {
                            Box::pin(serve_tls(stream, cfg, handshake_timeout, info, ctx)).await
                        }
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: back off briefly instead of spinning,
                // and say so once a second (with how many failed), not on every attempt.
                failed += 1;
                if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(port, error = %e, failed, "accept failed");
                    last_warned = Some(Instant::now());
                    failed = 0;
                }
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
