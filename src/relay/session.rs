//! The per-worker session table: minting ids that name their owner, creating a session's
//! targets (child processes, HTTP clients), the server-to-client event stream with its replay
//! buffer, idle expiry and teardown.
//!
//! Not here: what a message does once it reaches a session (`relay::call`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use ring::rand::SecureRandom;

use crate::cluster::{Owner, Peering};
use crate::mcp::sse;
use crate::relay::target::Target;
use crate::relay::{ReplyPart, Subject};
use crate::snapshot::{McpRoute, McpTargetKind};

/// Events kept for `Last-Event-ID` resumption of the server-to-client stream.
const BACKLOG: usize = 256;

/// Process-wide counts of what sessions hold: taken when a session starts and given back when
/// it is dropped, never touched per call (so the lock is off the request path).
#[allow(clippy::disallowed_types)] // once per session start and end, never per call
static SUBJECTS: std::sync::OnceLock<std::sync::Mutex<HashMap<(String, String), usize>>> =
    std::sync::OnceLock::new();
static STDIO_PROCESSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// stdio server processes that sessions hold now (for the stats endpoint).
pub(crate) fn stdio_processes() -> usize {
    STDIO_PROCESSES.load(std::sync::atomic::Ordering::Relaxed)
}

/// What a session counts against the caps ([`McpLimits`](crate::snapshot::McpLimits)); given
/// back on drop.
#[derive(Default)]
pub(crate) struct Slots {
    subject: Option<(String, String)>,
    stdio: usize,
}

/// Why a session could not start within the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverCap {
    /// The subject holds `n` sessions already.
    Subject(usize),
    /// `n` stdio server processes run already.
    Processes(usize),
}

impl Slots {
    /// Counts a new session of `subject` on `route` against the caps.
    pub(crate) fn take(
        subject: &Subject,
        route: &McpRoute,
        limits: &crate::snapshot::McpLimits,
    ) -> Result<Slots, OverCap> {
        use std::sync::atomic::Ordering;
        let mut slots = Slots::default();
        if let Some(who) = subject {
            let mut map = SUBJECTS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let n = map.entry(who.clone()).or_insert(0);
            if *n >= limits.sessions_per_subject {
                return Err(OverCap::Subject(*n));
            }
            *n += 1;
            slots.subject = Some(who.clone());
        }
        let stdio = route
            .targets
            .iter()
            .filter(|t| matches!(t.kind, McpTargetKind::Stdio { .. }))
            .count();
        if stdio > 0 {
            let before = STDIO_PROCESSES.fetch_add(stdio, Ordering::Relaxed);
            slots.stdio = stdio;
            if before + stdio > limits.stdio_processes {
                return Err(OverCap::Processes(before)); // `slots` gives both back
            }
        }
        Ok(slots)
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if self.stdio > 0 {
            STDIO_PROCESSES.fetch_sub(self.stdio, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(who) = self.subject.take() {
            let mut map = SUBJECTS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&who) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&who);
                }
            }
        }
    }
}

pub(crate) struct Session {
    pub id: String,
    pub route: Arc<McpRoute>,
    pub subject: Subject,
    pub version: Cell<&'static str>,
    pub targets: Vec<Target>,
    last_used: Cell<Instant>,
    get_stream: RefCell<Option<UnboundedSender<ReplyPart>>>,
    /// `subscriptions/listen` streams of a compatibility session: each gets every message a
    /// server sends outside any request.
    listeners: RefCell<Vec<UnboundedSender<Vec<u8>>>>,
    backlog: RefCell<VecDeque<(u64, Vec<u8>)>>,
    next_event: Cell<u64>,
    /// The last JSON-RPC id given to a request sent upstream.
    upstream_ids: Cell<u64>,
    /// Calls waiting for an answer: (client's id, target index, id sent upstream), to translate
    /// a client's `notifications/cancelled`.
    in_flight: RefCell<Vec<(String, usize, String)>>,
    closed: Cell<bool>,
    /// Held by Portcullis for 2026-07-28 clients (`relay::compat`): never named to a client,
    /// and a server's requests to its client are refused (no client can answer them).
    pub compat: Cell<bool>,
    _slots: Slots,
}

impl Session {
    /// Starts the targets of `route`. The session is not registered anywhere yet.
    pub(crate) fn open(
        id: String,
        route: &Arc<McpRoute>,
        subject: Subject,
        authorization: Option<String>,
        slots: Slots,
    ) -> Result<Rc<Session>, String> {
        let (tx, rx) = unbounded::<Vec<u8>>();
        let mut targets = Vec::with_capacity(route.targets.len());
        for t in &route.targets {
            let target = Target::open(t, authorization.as_deref(), &tx, route.upstream)?;
            targets.push(target);
        }
        let s = Rc::new(Session {
            id,
            route: route.clone(),
            subject,
            version: Cell::new("2025-06-18"),
            targets,
            last_used: Cell::new(Instant::now()),
            get_stream: RefCell::new(None),
            listeners: RefCell::new(Vec::new()),
            backlog: RefCell::new(VecDeque::new()),
            next_event: Cell::new(1),
            upstream_ids: Cell::new(0),
            in_flight: RefCell::new(Vec::new()),
            closed: Cell::new(false),
            compat: Cell::new(false),
            _slots: slots,
        });
        monoio::spawn(unsolicited_loop(Rc::downgrade(&s), rx));
        Ok(s)
    }

    pub(crate) fn touch(&self) {
        self.last_used.set(Instant::now());
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get() || self.targets.iter().any(|t| !t.alive())
    }

    /// The next event id on this session's streams.
    /// A fresh id for a request sent upstream. Clients' ids are never sent as they are: they may
    /// repeat, collide across a client's calls, or belong to a call that was abandoned, and the
    /// answer must still reach the right request.
    pub(crate) fn upstream_id(&self) -> String {
        let n = self.upstream_ids.get() + 1;
        self.upstream_ids.set(n);
        n.to_string()
    }

    pub(crate) fn track_call(&self, client: &str, target: usize, upstream: &str) {
        self.in_flight
            .borrow_mut()
            .push((client.to_owned(), target, upstream.to_owned()));
    }

    pub(crate) fn untrack_call(&self, upstream: &str) {
        self.in_flight
            .borrow_mut()
            .retain(|(_, _, u)| u != upstream);
    }

    /// The calls in flight whose client id is `client` (as a JSON value): (target index, id
    /// sent upstream).
    pub(crate) fn calls_of_value(&self, client: &serde_json::Value) -> Vec<(usize, String)> {
        self.in_flight
            .borrow()
            .iter()
            .filter(|(c, _, _)| {
                serde_json::from_str::<serde_json::Value>(c).ok().as_ref() == Some(client)
            })
            .map(|(_, t, u)| (*t, u.clone()))
            .collect()
    }

    pub(crate) fn next_event_id(&self) -> u64 {
        let n = self.next_event.get();
        self.next_event.set(n + 1);
        n
    }

    /// Attaches the server-to-client stream, replaying kept events after `last_event_id`.
    pub(crate) fn attach_stream(
        &self,
        reply: UnboundedSender<ReplyPart>,
        last_event_id: Option<u64>,
    ) {
        let _ = reply.unbounded_send(ReplyPart::SseStart { session: None });
        if let Some(after) = last_event_id {
            for (id, ev) in self.backlog.borrow().iter() {
                if *id > after {
                    let _ = reply.unbounded_send(ReplyPart::Event(ev.clone()));
                }
            }
        }
        // Only one stream carries a message (T9): a new GET replaces the old one.
        if let Some(old) = self.get_stream.borrow_mut().replace(reply) {
            let _ = old.unbounded_send(ReplyPart::End);
        }
    }

    /// Sends a server-initiated message on the server-to-client stream (kept for replay).
    pub(crate) fn forward_unsolicited(&self, msg: &[u8]) {
        self.push_unsolicited(msg)
    }

    /// Every message a server sends outside any request from now on, until the session ends.
    pub(crate) fn listen(&self) -> UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = unbounded();
        let mut listeners = self.listeners.borrow_mut();
        listeners.retain(|l| !l.is_closed());
        listeners.push(tx);
        rx
    }

    /// Whether a listen stream is open on this session.
    pub(crate) fn has_listeners(&self) -> bool {
        let mut listeners = self.listeners.borrow_mut();
        listeners.retain(|l| !l.is_closed());
        !listeners.is_empty()
    }

    /// Hands a server's message to this session's listen streams (only).
    pub(crate) fn notify_listeners(&self, msg: &[u8]) {
        self.listeners
            .borrow_mut()
            .retain(|l| l.unbounded_send(msg.to_vec()).is_ok());
    }

    fn push_unsolicited(&self, msg: &[u8]) {
        self.notify_listeners(msg);
        let id = self.next_event_id();
        let mut ev = Vec::with_capacity(msg.len() + 32);
        sse::write_event(&mut ev, Some(&id.to_string()), Some("message"), msg);
        let mut backlog = self.backlog.borrow_mut();
        backlog.push_back((id, ev.clone()));
        if backlog.len() > BACKLOG {
            backlog.pop_front();
        }
        let mut stream = self.get_stream.borrow_mut();
        if let Some(s) = stream.as_ref() {
            if s.unbounded_send(ReplyPart::Event(ev)).is_err() {
                *stream = None;
            }
        }
    }

    pub(crate) async fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        if let Some(s) = self.get_stream.borrow_mut().take() {
            let _ = s.unbounded_send(ReplyPart::End);
        }
        self.listeners.borrow_mut().clear();
        for t in &self.targets {
            t.terminate().await;
        }
    }
}

async fn unsolicited_loop(s: Weak<Session>, mut rx: UnboundedReceiver<Vec<u8>>) {
    while let Some(msg) = rx.next().await {
        match s.upgrade() {
            Some(s) => s.push_unsolicited(&msg),
            None => return,
        }
    }
}

/// Sessions owned by one worker.
#[derive(Default)]
pub(crate) struct Sessions {
    map: RefCell<HashMap<String, Rc<Session>, foldhash::fast::RandomState>>,
}

/// A new session id owned by `worker`: 128 random bits from the OS, and the owner. Alone,
/// `<worker as 2 hex digits><32 hex digits>`; among peer replicas, sealed with their key so that
/// any replica can find the owner (`cluster`).
pub(crate) fn mint_id(worker: usize, peering: Option<&Peering>) -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS random source works");
    if let Some(p) = peering {
        return p.seal(worker, &bytes);
    }
    let mut s = format!("{:02x}", worker % 256);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The worker of this process that owns session `id`, if the id is well formed and names one
/// (a sealed id of another replica is forwarded before it gets here: `server::dispatch`).
pub(crate) fn owner_of(id: &str, peering: Option<&Peering>) -> Option<usize> {
    if id.len() == 34 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return usize::from_str_radix(&id[..2], 16).ok();
    }
    match peering?.open(id)? {
        Owner::Local(worker) => Some(worker),
        Owner::Peer(_) => None,
    }
}

impl Sessions {
    pub(crate) fn insert(&self, s: Rc<Session>) {
        self.map.borrow_mut().insert(s.id.clone(), s);
    }

    /// A live session, touched.
    pub(crate) fn get(&self, id: &str) -> Option<Rc<Session>> {
        let s = self.map.borrow().get(id).cloned()?;
        s.touch();
        Some(s)
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Rc<Session>> {
        self.map.borrow_mut().remove(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends sessions idle for longer than their route's TTL, and those whose targets died.
    /// Each ends in a task of its own: a
    /// server that ignores SIGTERM takes its grace period there, never in the caller (the
    /// worker's tick, which also keeps the clock that token expiry is checked against).
    /// `ttl` is the current config's `config.mcp.sessionTtl`: a reload that lowers it applies
    /// to the sessions already open too.
    pub(crate) fn expire(&self, ttl: Duration) {
        let now = Instant::now();
        let gone: Vec<Rc<Session>> = {
            let mut map = self.map.borrow_mut();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, s)| {
                    s.is_closed()
                        || now.duration_since(s.last_used.get()) > s.route.session_ttl.min(ttl)
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for s in gone {
            tracing::info!(mcp.session = %s.id, route = %s.route.name, "mcp session expired");
            monoio::spawn(async move { s.close().await });
        }
    }

    /// Ends every session (shutdown), all at once: their grace periods overlap.
    pub(crate) async fn close_all(&self) {
        let all: Vec<Rc<Session>> = self.map.borrow_mut().drain().map(|(_, s)| s).collect();
        futures_util::future::join_all(all.iter().map(|s| s.close())).await;
    }
}
