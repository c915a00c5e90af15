//! The per-connection I/O loop: read request heads, hand them to `dispatch`, write the answers,
//! keep the connection alive, enforce timeouts and body limits.
//!
//! Owns: the read buffer and pipelining (requests are handled strictly in order and local answers
//! to pipelined requests are written in one batch), header/idle timeouts, discarding bodies of
//! locally answered requests, metrics and the access log line. Not here: routing or policy
//! decisions (`dispatch`) and upstream traffic (`proxy`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use crate::http::h1::{self, BodyKind, H1Error, MAX_HEADERS};
use crate::http::response::LocalError;
use crate::metrics::{Reason, RouteLabels, UNMATCHED};
use crate::net::io::{Bufs, ConnInfo, ConnIo};
use crate::policy::mcp_auth::Principal;
use crate::server::ctx::WorkerCtx;
use crate::server::decision::{self, Decision, McpPlan};
use crate::server::dispatch::{self, RequestFacts};
use crate::server::proxy::{self, ProxyOutcome};
use crate::shard::BodyBytes;
use crate::snapshot::Route;
use crate::snapshot::Snapshot;

mod read;

/// The method label of requests whose method is not known.
const OTHER_METHOD: u8 = 9;

use read::{discard_body, read_body, wait_for_head, HeadState, SHRINK_AFTER};

/// Serves one downstream connection until it closes.
///
/// A busy connection runs `run` in a boxed future: its state (parsing, authentication,
/// proxying, the relay) is allocated while the connection is busy. When it has been idle for
/// `SHRINK_AFTER`, that state and the buffers are given back, and the wait for the next
/// request goes on here, in a task of a few hundred bytes that waits for readability (no
/// buffer; the next request's first read allocates one).
pub(crate) async fn serve<S: ConnIo>(mut io: S, conn: ConnInfo, ctx: Rc<WorkerCtx>) {
    {
        let mut m = ctx.shard.metrics.borrow_mut();
        m.accepted(conn.port, conn.https);
    }
    let idle = ctx.shard.snapshot().settings.limits.idle_timeout;
    let mut bufs = Bufs {
        buf: Vec::new(),
        start: 0,
        out: Vec::new(),
        up: Vec::new(),
        write_timeout: idle,
        watch: None,
    };
    let mut first = true;
    loop {
        match Box::pin(run(&mut io, conn, &ctx, &mut bufs, first)).await {
            RunEnd::Closed => break,
            RunEnd::Idle => {}
        }
        first = false;
        // Nothing is pending (`run` ended idle): the wait holds no buffer at all.
        bufs.buf = Vec::new();
        bufs.start = 0;
        bufs.out = Vec::new();
        bufs.up = Vec::new();
        io.release_buffers();
        if ctx.shard.draining() {
            break;
        }
        let deadline = Instant::now() + idle.saturating_sub(SHRINK_AFTER);
        let readable = std::pin::pin!(io.wait_readable());
        let over = std::pin::pin!(ctx.shard.idle_until(deadline));
        match futures_util::future::select(readable, over).await {
            futures_util::future::Either::Left((Ok(()), _)) => {}
            _ => break,
        }
    }
    // Boxed: the write timeout's timer is large and would otherwise size every idle task.
    let _ = Box::pin(bufs.flush(&mut io)).await;
    let _ = io.close().await;
    ctx.shard.metrics.borrow_mut().open_connections -= 1;
}

/// How [`run`] ended.
enum RunEnd {
    Closed,
    /// Idle past [`SHRINK_AFTER`] with nothing pending.
    Idle,
}

/// What phase 1 learned from a request head, kept once the head is no longer borrowed.
struct Parsed<'s> {
    /// The connection the request came on; for one forwarded by a peer replica, the edge
    /// connection's port, scheme and client, as the signed header says.
    conn: ConnInfo,
    decision: Decision<'s>,
    log: Option<LogFields>,
    head_len: usize,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
    /// The request method, as a metric label index.
    method: u8,
    /// Its tracing (`config.tracing`).
    trace: crate::otel::Context,
}

/// Marks the response written at `out[mark..]` as the connection's last one.
fn force_close(out: &mut Vec<u8>, mark: usize) {
    if let Some(end) = memchr::memmem::find(&out[mark..], b"\r\n\r\n") {
        let at = mark + end + 2;
        out.splice(at..at, b"connection: close\r\n".iter().copied());
    }
}

async fn run<S: ConnIo>(
    io: &mut S,
    conn: ConnInfo,
    ctx: &Rc<WorkerCtx>,
    bufs: &mut Bufs,
    first: bool,
) -> RunEnd {
    // After an unknown-kid wait the same head is decided again, once, without waiting.
    let mut may_wait = true;
    // The first head is due within the header timeout of the connection's start: a connection
    // that never sends a byte is not held for the idle timeout.
    let mut opened = first.then(Instant::now);
    loop {
        match wait_for_head(io, ctx, bufs, opened.take()).await {
            HeadState::Ready => {}
            HeadState::Closed => return RunEnd::Closed,
            HeadState::Idle => return RunEnd::Idle,
        }
        let snap = ctx.shard.snapshot();
        let started = Instant::now();
        let mark = bufs.out.len();
        let mut principal = None;
        let Some(req) = decide_head(ctx, &snap, conn, bufs, may_wait, &mut principal, started)
        else {
            return RunEnd::Closed;
        };
        if let Decision::WaitToVerify(at) = req.decision {
            // The head stays in the buffer; the check runs in a later window.
            monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
            ctx.auth.borrow_mut().verify.resumed();
            continue;
        }
        if let Decision::WaitForKeys(source) = req.decision {
            // The head stays in the buffer; wait for the key manager, then decide again.
            let rx = ctx.auth.borrow_mut().wait_for(source);
            let _ = monoio::time::timeout(crate::auth::request::KID_WAIT, rx).await;
            may_wait = false;
            continue;
        }
        may_wait = true;
        let sub = principal.as_ref().and_then(|p| p.sub.as_deref());
        let log = req.log.map(|mut l| {
            l.sub = sub.map(str::to_owned);
            l
        });
        let req = Parsed { log, ..req };
        bufs.consume(req.head_len);
        let done = Done {
            conn: req.conn,
            started,
            log: &req.log,
            method: req.method,
            trace: req.trace.sampled(),
            upstream: std::cell::RefCell::new(None),
        };
        let (body, keep_alive) = (req.body, req.keep_alive);
        let reusable = match req.decision {
            Decision::Local {
                status,
                route,
                close,
            } => {
                // A client waiting for `100 Continue` will not send its body: close instead.
                if close || (req.expect_continue && body.has_body()) {
                    done.local(ctx, route, status);
                    if !close {
                        force_close(&mut bufs.out, mark);
                    }
                    return RunEnd::Closed;
                }
                let max_body = snap.settings.limits.max_body;
                finish_local(io, ctx, bufs, body, max_body, mark, route, status, &done).await
            }
            Decision::WaitForKeys(_) | Decision::WaitToVerify(_) => unreachable!("handled above"),
            Decision::Mcp(plan) => {
                serve_mcp(
                    io,
                    ctx,
                    bufs,
                    &snap,
                    plan,
                    body,
                    principal.as_deref(),
                    &done,
                )
                .await
            }
            Decision::Proxy(plan) => {
                if bufs.flush(io).await.is_err() {
                    return RunEnd::Closed;
                }
                let labels = plan.labels;
                let t0 = done
                    .trace
                    .map(|_| (std::time::SystemTime::now(), Instant::now()));
                let server = done.trace.map(|_| plan.target.authority.clone());
                let outcome = proxy::forward(io, ctx, &snap, bufs, plan, body, keep_alive).await;
                if let (Some((at, t0)), Some(server)) = (t0, server) {
                    *done.upstream.borrow_mut() = Some((at, t0.elapsed(), "upstream", server));
                }
                let (status, reusable, failed) = match outcome {
                    ProxyOutcome::Done { status, reusable } => (status, reusable, false),
                    ProxyOutcome::Failed { status } => (status, false, true),
                };
                done.record(ctx, labels, status, Reason::proxied(status, failed));
                reusable
            }
        };
        if !reusable || !keep_alive {
            return RunEnd::Closed;
        }
    }
}

/// Phase 1 of a request: the head is borrowed from the read buffer; decide, and render what
/// can be. `None`: the head was malformed (answered, the connection closes).
fn decide_head<'s>(
    ctx: &WorkerCtx,
    snap: &'s Snapshot,
    conn: ConnInfo,
    bufs: &mut Bufs,
    may_wait: bool,
    principal: &mut Option<Rc<Principal>>,
    started: Instant,
) -> Option<Parsed<'s>> {
    let date = ctx.shard.date();
    let draining = ctx.shard.draining();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
    let (out, pending) = (&mut bufs.out, &bufs.buf[bufs.start..]);
    match h1::parse_request(pending, &mut headers) {
        Ok(Some((head, hdrs))) => {
            let conn = if conn.from_peer {
                match peer_request(snap, ctx, &head, hdrs) {
                    Some(c) => c,
                    None => {
                        let e = LocalError::PeerRefused;
                        ctx.shard.count_refusal(&e);
                        let _ = decision::local_error(e, None, None, &date, true, false, out);
                        tracing::warn!(peer = %conn.peer, "refused a request on the peer listener: no valid portcullis-peer signature");
                        return None;
                    }
                }
            } else {
                conn
            };
            let limits = &snap.settings.limits;
            let too_large = matches!(head.body, BodyKind::Length(n) if n > limits.max_body);
            let close_after = !head.keep_alive || draining || too_large;
            let decided = Cell::new(None);
            let mut trace = match &snap.settings.tracing {
                None => crate::otel::Context::Off,
                Some(t) => {
                    let header = h1::find_header(hdrs, "traceparent");
                    crate::otel::decide(Some(t), header, || ctx.shard.next_random())
                }
            };
            if let crate::otel::Context::Sampled(t) = &mut trace {
                t.method = head.method.to_owned();
                t.path = head.path.to_owned();
            }
            let decision = if too_large {
                let err = LocalError::Body(H1Error::BodyTooLarge);
                let head_only = head.method == "HEAD";
                decision::local_error(err, None, None, &date, true, head_only, out)
            } else {
                let env = RequestFacts {
                    date: &date,
                    close_after,
                    pick: ctx.shard.next_random(),
                    now: ctx.shard.unix_secs(),
                    may_wait,
                    rate_limits: &ctx.rate_limits,
                    workers: ctx.shard.workers(),
                    metrics: &ctx.shard.metrics,
                    decisions: &ctx.shard.decisions,
                    decided: &decided,
                    trace: trace.sampled(),
                };
                let mut auth = ctx.auth.borrow_mut();
                dispatch::decide(snap, conn, &head, hdrs, &env, &mut auth, principal, out)
            };
            let log = access_log_fields(&head);
            if let Some(l) = &log {
                l.authz.set(decided.get());
            }
            Some(Parsed {
                conn,
                decision,
                log,
                head_len: head.head_len,
                body: head.body,
                keep_alive: head.keep_alive && !draining,
                expect_continue: head.expect_continue,
                method: crate::metrics::method_index(head.method),
                trace,
            })
        }
        res @ (Ok(None) | Err(_)) => {
            // wait_for_head saw a terminator (or a limit), so incomplete means malformed.
            let e = res.err().unwrap_or(H1Error::MalformedRequestLine);
            let _ = decision::local_error(LocalError::Head(e), None, None, &date, true, false, out);
            let mut m = ctx.shard.metrics.borrow_mut();
            let reason = Reason::local(e.status(), false);
            m.record(
                &UNMATCHED,
                OTHER_METHOD,
                e.status(),
                reason,
                started.elapsed(),
            );
            tracing::debug!(client = %conn.peer, status = e.status(), reason = e.reason(), "rejected request head");
            None
        }
    }
}

/// A request on the peer listener, checked: the edge connection it was forwarded from, or
/// `None` (unsigned, stale, or signed with a key this replica does not have).
fn peer_request(
    snap: &Snapshot,
    ctx: &WorkerCtx,
    head: &h1::RequestHead<'_>,
    hdrs: &[httparse::Header<'_>],
) -> Option<ConnInfo> {
    let peering = snap.settings.peering.as_ref()?;
    let value = h1::find_header(hdrs, crate::cluster::PEER_HEADER)?;
    let session = h1::find_header(hdrs, "mcp-session-id").unwrap_or_default();
    let target = crate::server::forward_head::request_target(head);
    let now = u64::try_from(ctx.shard.unix_secs()).unwrap_or(0);
    let f = peering.check(value, head.method, &target, session, now)?;
    ctx.shard.metrics.borrow_mut().peer[1] += 1;
    Some(ConnInfo {
        peer: std::net::SocketAddr::new(f.client, 0),
        port: f.port,
        https: f.https,
        local_loopback: false,
        from_peer: true,
    })
}

/// What recording a finished request needs.
struct Done<'a> {
    conn: ConnInfo,
    started: Instant,
    log: &'a Option<LogFields>,
    method: u8,
    /// Its trace, when it is traced here, and the upstream exchange's span (start, duration,
    /// name, server).
    trace: Option<&'a crate::otel::Trace>,
    upstream: std::cell::RefCell<
        Option<(
            std::time::SystemTime,
            std::time::Duration,
            &'static str,
            String,
        )>,
    >,
}

impl Done<'_> {
    fn record(&self, ctx: &WorkerCtx, labels: &RouteLabels, status: u16, reason: Reason) {
        let elapsed = self.started.elapsed();
        ctx.shard
            .metrics
            .borrow_mut()
            .record(labels, self.method, status, reason, elapsed);
        log_access(ctx, &labels.route, status, elapsed, self.log, self.conn);
        if let Some(t) = self.trace {
            let finished = crate::otel::Finished {
                route: &labels.route,
                status,
                client: self.conn.peer,
                worker: ctx.shard.id,
                upstream: self.upstream.borrow_mut().take(),
            };
            crate::otel::finish(t, finished);
        }
    }

    /// An answer written here (`route`: the route that matched, if one did).
    fn local(&self, ctx: &WorkerCtx, route: Option<&Route>, status: u16) {
        let labels = route.map_or(&*UNMATCHED, |r| &r.labels);
        self.record(ctx, labels, status, Reason::local(status, route.is_some()));
    }
}

/// A request answered here: its body is read and dropped before the answer leaves (keeping
/// the stream in sync; a bad body replaces the answer with a 4xx). Whether the connection may
/// carry another request.
#[allow(clippy::too_many_arguments)]
async fn finish_local<S: ConnIo>(
    io: &mut S,
    ctx: &WorkerCtx,
    bufs: &mut Bufs,
    body: BodyKind,
    max_body: u64,
    mark: usize,
    route: Option<&Route>,
    status: u16,
    done: &Done<'_>,
) -> bool {
    if let Err(e) = discard_body(io, ctx, bufs, body, max_body).await {
        bufs.out.truncate(mark);
        if let Some(e) = e {
            ctx.shard.count_refusal(&LocalError::Body(e));
            let date = ctx.shard.date();
            let err = LocalError::Body(e);
            let _ = decision::local_error(err, None, None, &date, true, false, &mut bufs.out);
            done.local(ctx, route, e.status());
        }
        return false;
    }
    done.local(ctx, route, status);
    true
}

/// An MCP request: its body is read (counted against the worker's budget until the call is
/// answered) and handed to the MCP transport. Whether the connection may carry another request.
#[allow(clippy::too_many_arguments)]
async fn serve_mcp<S: ConnIo>(
    io: &mut S,
    ctx: &Rc<WorkerCtx>,
    bufs: &mut Bufs,
    snap: &Snapshot,
    plan: McpPlan<'_>,
    body: BodyKind,
    principal: Option<&Principal>,
    done: &Done<'_>,
) -> bool {
    let limit = snap
        .settings
        .limits
        .max_body
        .min(crate::relay::MAX_MESSAGE as u64);
    // Held until the call is answered: the body lives on in the relay.
    let mut held = BodyBytes::new(&ctx.shard);
    let body = match read_body(io, ctx, bufs, body, limit, &mut held).await {
        Ok(b) => b,
        Err(e) => {
            if let Some(e) = e {
                ctx.shard.count_refusal(&e);
                let date = ctx.shard.date();
                let extra = Some(&plan.added_headers[..]);
                let _ = decision::local_error(e, None, extra, &date, true, false, &mut bufs.out);
                done.local(ctx, Some(plan.route), e.status());
            }
            return false;
        }
    };
    let t0 = done
        .trace
        .map(|_| (std::time::SystemTime::now(), Instant::now()));
    let (status, reusable) = crate::server::mcp::handle(
        io,
        &ctx.relay,
        bufs,
        plan.mcp,
        plan.head,
        body,
        principal,
        plan.authz,
        done.log.as_ref().map_or(&Cell::new(None), |l| &l.authz),
        &plan.added_headers,
    )
    .await;
    if let Some((at, t0)) = t0 {
        let servers: Vec<&str> = plan.mcp.targets.iter().map(|t| t.name.as_str()).collect();
        *done.upstream.borrow_mut() = Some((at, t0.elapsed(), "mcp", servers.join(",")));
    }
    done.record(ctx, &plan.route.labels, status, Reason::mcp(status));
    reusable
}

/// Method and path (never the query, which may carry credentials) for the access log, copied
/// only when the access log is enabled.
pub(crate) struct LogFields {
    method: String,
    path: String,
    /// The verified token's subject (never the token).
    sub: Option<String>,
    /// The authorization verdict (`allow`, `deny`, `insufficient_scope`), where rules decided.
    authz: Cell<Option<&'static str>>,
}

fn access_log_fields(head: &h1::RequestHead<'_>) -> Option<LogFields> {
    if tracing::enabled!(target: "access", tracing::Level::INFO) {
        Some(LogFields {
            method: head.method.to_owned(),
            path: head.path.to_owned(),
            sub: None,
            authz: Cell::new(None),
        })
    } else {
        None
    }
}

fn log_access(
    ctx: &WorkerCtx,
    route: &str,
    status: u16,
    elapsed: std::time::Duration,
    log: &Option<LogFields>,
    conn: ConnInfo,
) {
    if let Some(f) = log {
        tracing::info!(
            target: "access",
            client = %conn.peer,
            method = %f.method,
            path = %f.path,
            status,
            route,
            sub = f.sub.as_deref().unwrap_or(""),
            authz = f.authz.get().unwrap_or(""),
            duration_us = elapsed.as_micros() as u64,
            worker = ctx.shard.id,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::read::{head_complete, not_http1};

    #[test]
    fn non_http1_first_bytes_are_seen_at_once() {
        assert!(not_http1(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(not_http1(b"GET /\r\n"));
        assert!(not_http1(b"hello\n"));
        // Partial or ordinary request lines, and the empty lines RFC 9112 says to ignore.
        assert!(!not_http1(b"GET / HTTP/1.1\r\nHost"));
        assert!(!not_http1(b"GET / HT"));
        assert!(!not_http1(b"\r\n"));
        assert!(!not_http1(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!not_http1(b"\r\n\r\nGET /x HTTP/1.1\r\n"));
    }

    #[test]
    fn a_head_ends_at_a_blank_line_crlf_or_bare_lf() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.1\r\n\r\nbody"));
        assert!(head_complete(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(head_complete(b"\n\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
        assert!(!head_complete(b"GET / HTTP/1.1\nHost: a\r\n"));
        // A bare LF then CRLF is neither form: left to the header timeout or the size limit,
        // as before.
        assert!(!head_complete(b"GET / HTTP/1.1\n\r\n"));
        assert!(!head_complete(b""));
    }
}
