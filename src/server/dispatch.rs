//! What to do with one parsed request: pick the listener and route, apply the route's policies in
//! order, and either render a local response or prepare the upstream request.
//!
//! Owns: path normalisation before anything looks at the path, policy order — discovery documents of protected routes, CORS preflight, authentication,
//! redirect, direct response, backend — and the choice of upstream. Pure apart from the
//! worker-local authentication state it is handed: no I/O, so it is tested without sockets.
//! Not here: reading bodies or talking to upstreams (`server::conn`, `server::proxy`), the upstream
//! head (`server::forward_head`), discovery documents (`server::discovery`).

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use httparse::Header;

use crate::auth::request::{self as auth, AuthDecision, AuthState};
use crate::http::h1::{self, RequestHead};
use crate::http::response::{itoa_buf, LocalError, Prebuilt, RATE_LIMITED};
use crate::metrics::AuthResult;
use crate::net::io::ConnInfo;
use crate::policy::cors::Cors;
use crate::server::authorize;
use crate::server::decision::{local_error, Decision, McpPlan, ProxyPlan};
use crate::server::discovery;
use crate::server::forward_head;
use crate::server::mcp::McpHead;

use crate::net::addr::HostTarget;
use crate::policy::mcp_auth::Principal;
use crate::routing::{self, RequestView};
use crate::snapshot::{Backend, Bind, Route, Snapshot};

/// Per-request facts `decide` needs besides the request itself.
pub(crate) struct RequestFacts<'a> {
    pub date: &'a [u8],
    /// The answer must carry `Connection: close`.
    pub close_after: bool,
    /// Randomness for weighted backends.
    pub pick: u64,
    /// Unix seconds, for token times.
    pub now: i64,
    /// False on the second attempt after an unknown-`kid` refetch.
    pub may_wait: bool,
    /// This worker's `localRateLimit` buckets, and how many workers share each limit.
    pub rate_limits: &'a std::cell::RefCell<crate::policy::rate_limit::Buckets>,
    pub workers: usize,
    /// Where refusals by a protection limit are counted.
    pub metrics: &'a std::cell::RefCell<crate::metrics::WorkerMetrics>,
    /// This worker's authorization verdicts.
    pub decisions: &'a std::cell::RefCell<crate::policy::authz::Decisions>,
    /// The request's authorization verdict, for the access log.
    pub decided: &'a std::cell::Cell<Option<&'static str>>,
    /// The request's trace, when it is traced here.
    pub trace: Option<&'a crate::otel::Trace>,
}

pub(crate) fn find_bind(snap: &Snapshot, port: u16) -> Option<&Bind> {
    snap.binds.iter().find(|b| b.port == port)
}

/// Decides the fate of one request. Local responses are appended to `out`; the verified token's
/// principal, if any, is left in `principal`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decide<'s>(
    snap: &'s Snapshot,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    env: &RequestFacts<'_>,
    auth_state: &mut AuthState,
    principal: &mut Option<Rc<Principal>>,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let (date, close_after) = (env.date, env.close_after);
    let head_only = head.method == "HEAD";
    // Route on, and forward, the normalised path (`h1::normalize_path`): dot-segments must not
    // walk out of the route that authorised the request. `OPTIONS *` has no path to normalise.
    let path = match head.path {
        "*" => Cow::Borrowed("*"),
        p => match h1::normalize_path(p) {
            Ok(p) => p,
            Err(e) => {
                return local_error(
                    LocalError::Head(e),
                    None,
                    None,
                    date,
                    close_after,
                    head_only,
                    out,
                )
            }
        },
    };
    let head = &RequestHead {
        path: &path,
        ..*head
    };
    let host_raw = head.authority.unwrap_or(b"");
    let host = std::str::from_utf8(crate::http::authority::strip_port(host_raw)).unwrap_or("");
    let Some(listener) = find_bind(snap, conn.port).and_then(|b| b.listener_for(host)) else {
        return local_error(
            LocalError::NoListener,
            None,
            None,
            date,
            close_after,
            head_only,
            out,
        );
    };
    // Discovery for protected routes is served whatever the route table says (the seed routes
    // only its MCP path, yet clients must find the metadata).
    if let Some((_, wk)) = listener.well_known.iter().find(|(p, _)| p == head.path) {
        return discovery::serve(wk, conn, head, auth_state, date, close_after, out);
    }
    let view = RequestView {
        host,
        method: head.method,
        path: head.path,
        query: head.query,
        headers,
    };
    let Some((route, matched)) = listener.routes.lookup(&view) else {
        return local_error(
            LocalError::RouteNotFound,
            None,
            None,
            date,
            close_after,
            head_only,
            out,
        );
    };
    let p = &route.policies;
    let origin = h1::find_header(headers, "origin");

    // CORS preflights are answered before anything else, authentication included.
    if let Some(cors) = &p.cors {
        if Cors::is_preflight(head.method, headers) {
            let mut added_headers = Vec::with_capacity(256);
            cors.write_preflight(headers, &mut added_headers);
            let status = PREFLIGHT_OK.write(out, date, &added_headers, close_after, false);
            return Decision::Local {
                status,
                route: Some(route),
                close: close_after,
            };
        }
    }
    let mut added_headers = Vec::new();
    if let Some(cors) = &p.cors {
        cors.write_actual(origin, &mut added_headers);
    }
    // A request a peer replica forwarded was counted against the limits where it arrived.
    if !p.rate_limits.is_empty() && !conn.from_peer {
        if let Some(limited) = rate_limit(route, env, &mut added_headers, head_only, out) {
            return limited;
        }
    }
    if let Some(a) = &p.auth {
        // Explicit agentgateway-style matches may route discovery paths here too.
        if let Some(d) = discovery::route_level(a, conn, head, auth_state, date, close_after, out) {
            return d;
        }
        let found = h1::find_header(headers, "authorization");
        let ip = conn.peer.ip();
        let traced = env
            .trace
            .map(|t| (t, std::time::SystemTime::now(), std::time::Instant::now()));
        let decided = auth::authenticate(a, found, ip, auth_state, env.now, env.may_wait);
        if let Some((t, at, t0)) = traced {
            let result = match &decided {
                AuthDecision::Pass(Some(_)) => Some("accepted"),
                AuthDecision::Pass(None) => Some("anonymous"),
                AuthDecision::Reject(_, auth::RejectKind::Missing) => Some("missing"),
                AuthDecision::Reject(_, auth::RejectKind::Invalid(r)) => Some(r.as_str()),
                AuthDecision::Reject(_, auth::RejectKind::Unavailable) => Some("unavailable"),
                AuthDecision::Reject(_, auth::RejectKind::Busy) => Some("busy"),
                AuthDecision::WaitForKeys(_) | AuthDecision::WaitToVerify(_) => None,
            };
            if let Some(result) = result {
                t.auth.set(Some((at, t0.elapsed(), result)));
            }
        }
        match decided {
            AuthDecision::Pass(pr) => {
                let result = match pr {
                    Some(_) => AuthResult::Accepted,
                    None => AuthResult::Anonymous,
                };
                env.metrics.borrow_mut().auth(result);
                *principal = pr;
            }
            AuthDecision::WaitForKeys(src) => return Decision::WaitForKeys(src),
            AuthDecision::WaitToVerify(at) => return Decision::WaitToVerify(at),
            AuthDecision::Reject(pre, kind) => {
                count_rejection(env, kind);
                if pre.status == 401 {
                    if let Some(m) = a.mcp.as_ref().filter(|m| m.resource.is_none()) {
                        // No configured resource: name the metadata URL of this request's origin.
                        discovery::dynamic_challenge(m, conn, host_raw, kind, &mut added_headers);
                    }
                }
                pre.write(out, date, &added_headers, close_after, head_only);
                return Decision::Local {
                    status: pre.status,
                    route: Some(route),
                    close: close_after,
                };
            }
        }
    }
    let challenge_url = || {
        let m = p.auth.as_ref()?.mcp.as_ref()?;
        discovery::prm_url_for(m, conn, host_raw)
    };
    if !p.authorization.is_empty() {
        let who = principal.as_deref();
        if let Some(denied) = authorize::http(
            route,
            conn,
            head,
            headers,
            who,
            challenge_url,
            &authorize::Facts {
                date: env.date,
                close_after: env.close_after,
                metrics: env.metrics,
                decisions: env.decisions,
                decided: env.decided,
            },
            &mut added_headers,
            out,
        ) {
            return denied;
        }
    }
    if let Some(answered) = answer_locally(route, conn, head, matched, env, &mut added_headers, out)
    {
        return answered;
    }
    if let Backend::Mcp(mcp) = &route.backend {
        let owner_wait = mcp.call_timeout + PEER_HEAD_MARGIN;
        if let Some(to_owner) =
            to_session_owner(snap, route, owner_wait, conn, head, headers, env, out)
        {
            return to_owner;
        }
        let authz = authorize::mcp(
            mcp,
            principal.as_deref(),
            conn,
            head,
            headers,
            challenge_url,
        );
        return plan_mcp(
            route,
            mcp,
            conn,
            head,
            headers,
            authz,
            added_headers,
            env.trace,
        );
    }
    plan_backend(route, conn, head, headers, matched, env, added_headers, out)
}

/// How much longer than the route's call timeout a replica waits for the owner's answer to
/// begin (the owner answers within its call timeout; this covers the hop).
const PEER_HEAD_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// A request for an MCP session another replica owns (its sealed id says which): forwarded
/// there, after this replica authenticated it. `None`: the session is this replica's, or the
/// id is not one of ours (the relay answers 404 without connecting anywhere). A request that a
/// peer forwarded is never forwarded again.
#[allow(clippy::too_many_arguments)]
fn to_session_owner<'s>(
    snap: &Snapshot,
    route: &'s Route,
    owner_wait: std::time::Duration,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    env: &RequestFacts<'_>,
    out: &mut Vec<u8>,
) -> Option<Decision<'s>> {
    let peering = snap.settings.peering.as_ref()?;
    let session = h1::find_header(headers, "mcp-session-id")?;
    let id = std::str::from_utf8(session).ok()?;
    let crate::cluster::Owner::Peer(owner) = peering.open(id.trim_ascii())? else {
        return None;
    };
    let head_only = head.method == "HEAD";
    if conn.from_peer {
        let err = LocalError::SessionGone;
        return Some(local_error(
            err,
            Some(route),
            None,
            env.date,
            env.close_after,
            head_only,
            out,
        ));
    }
    env.metrics.borrow_mut().peer[0] += 1;
    let target = forward_head::request_target(head);
    let signed = peering.sign(
        &crate::cluster::PeerRequest {
            port: conn.port,
            https: conn.https,
            client: conn.peer.ip().to_canonical(),
            method: head.method,
            target: &target,
            session,
        },
        u64::try_from(env.now).unwrap_or(0),
    );
    Some(Decision::Proxy(ProxyPlan {
        labels: &route.labels,
        target: Cow::Owned(HostTarget {
            authority: owner.to_string(),
            addr: crate::net::addr::HostAddr::Resolved(owner),
            weight: 1,
        }),
        tls: None,
        // The owner applies the route's call timeout; its answer (or the head of its stream)
        // is due within it. A GET stream then lives as long as the owner keeps it.
        timeouts: crate::snapshot::Timeouts {
            request: None,
            backend: Some(owner_wait),
        },
        response_headers: None,
        head: forward_head::peer_head(head, headers, &signed, &target),
        // The owner adds the route's CORS lines.
        added_headers: Vec::new(),
        head_request: head_only,
        idempotent: matches!(head.method, "GET" | "HEAD" | "DELETE"),
        expect_continue: head.expect_continue,
        client_http10: head.version_minor == 0,
        peer: true,
    }))
}

/// An MCP request: its head kept for the relay.
#[allow(clippy::too_many_arguments)]
fn plan_mcp<'s>(
    route: &'s Route,
    mcp: &'s Arc<crate::snapshot::McpRoute>,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    authz: Option<crate::relay::authorize::Asker>,
    added_headers: Vec<u8>,
    trace: Option<&crate::otel::Trace>,
) -> Decision<'s> {
    let p = &route.policies;
    let keep_auth = p.auth.as_ref().is_none_or(|a| a.passthrough) && mcp.passthrough_auth;
    let host_raw = head.authority.unwrap_or(b"");
    let mut mcp_head = McpHead::from_request(
        head.method,
        host_raw,
        headers,
        keep_auth,
        conn.local_loopback,
    );
    mcp_head.traceparent = trace.map(crate::otel::traceparent);
    Decision::Mcp(McpPlan {
        route,
        mcp,
        head: mcp_head,
        added_headers,
        authz,
    })
}

/// The route's `localRateLimit`: adds agentgateway's headers; `Some` (429, written) when over.
fn rate_limit<'s>(
    route: &'s Route,
    env: &RequestFacts<'_>,
    added_headers: &mut Vec<u8>,
    head_only: bool,
    out: &mut Vec<u8>,
) -> Option<Decision<'s>> {
    let limits = &route.policies.rate_limits;
    let checked =
        env.rate_limits
            .borrow_mut()
            .check(limits, env.workers, std::time::Instant::now());
    // agentgateway's headers, on every answer of a limited route.
    let st = match checked {
        Ok(st) | Err(st) => st,
    };
    for (name, v) in [
        ("x-ratelimit-limit", st.limit),
        ("x-ratelimit-remaining", st.remaining),
        ("x-ratelimit-reset", st.reset_secs),
    ] {
        h1::write_header(added_headers, name, itoa_buf(v).as_bytes());
    }
    checked.err()?;
    let retry = itoa_buf(st.reset_secs.max(1));
    h1::write_header(added_headers, "retry-after", retry.as_bytes());
    let status = RATE_LIMITED.write(out, env.date, added_headers, env.close_after, head_only);
    env.metrics.borrow_mut().rate_limited(&route.name);
    Some(Decision::Local {
        status,
        route: Some(route),
        close: env.close_after,
    })
}

/// Counts refusals by a protection limit of authentication (`portcullis_refused_total`).
fn count_rejection(env: &RequestFacts<'_>, kind: auth::RejectKind) {
    use crate::metrics::Refused;
    env.metrics.borrow_mut().auth(match kind {
        auth::RejectKind::Missing => AuthResult::Missing,
        auth::RejectKind::Invalid(r) => AuthResult::Invalid(r),
        auth::RejectKind::Unavailable => AuthResult::Unavailable,
        auth::RejectKind::Busy => AuthResult::Busy,
    });
    let why = match kind {
        auth::RejectKind::Invalid(crate::policy::mcp_auth::AuthReject::Throttled) => {
            Refused::FailedVerifications
        }
        auth::RejectKind::Busy => Refused::VerifyQueueFull,
        _ => return,
    };
    env.metrics.borrow_mut().refuse(why);
}

/// A route that answers by itself: a redirect or a direct response (written to `out`).
fn answer_locally<'s>(
    route: &'s Route,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    matched: &routing::RouteMatch,
    env: &RequestFacts<'_>,
    added_headers: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Option<Decision<'s>> {
    let p = &route.policies;
    let (date, close_after, head_only) = (env.date, env.close_after, head.method == "HEAD");
    // The answer is written here and now: the route's lines are appended in place.
    let status = if let Some(r) = &p.redirect {
        let host_raw = head.authority.unwrap_or(b"");
        let location = forward_head::redirect_location(r, conn.https, host_raw, head, matched);
        h1::write_header(added_headers, "location", location.as_bytes());
        if let Some(m) = &p.response_headers {
            m.write_extra(added_headers);
        }
        let pre = Prebuilt::new(r.status, None, &[], Vec::new());
        pre.write(out, date, added_headers, close_after, head_only)
    } else if let Some(direct) = &p.direct {
        if let Some(m) = &p.response_headers {
            m.write_extra(added_headers);
        }
        direct.write(out, date, added_headers, close_after, head_only)
    } else {
        return None;
    };
    Some(Decision::Local {
        status,
        route: Some(route),
        close: close_after,
    })
}

/// Where the request goes: an MCP plan for the relay, a proxy plan for a `host` backend, or a
/// 503 when the route has no backend.
#[allow(clippy::too_many_arguments)]
fn plan_backend<'s>(
    route: &'s Route,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    matched: &routing::RouteMatch,
    env: &RequestFacts<'_>,
    added_headers: Vec<u8>,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let p = &route.policies;
    let head_only = head.method == "HEAD";
    let targets = match &route.backend {
        Backend::Hosts(t) if !t.is_empty() => t,
        _ => {
            return local_error(
                LocalError::NoBackend,
                Some(route),
                Some(&added_headers),
                env.date,
                env.close_after,
                head_only,
                out,
            )
        }
    };
    let target = pick_weighted(targets, env.pick);
    let traceparent = env.trace.map(crate::otel::traceparent);
    let up_head = forward_head::upstream_head(
        route,
        target,
        conn,
        head,
        headers,
        matched,
        traceparent.as_deref(),
    );
    Decision::Proxy(ProxyPlan {
        labels: &route.labels,
        target: Cow::Borrowed(target),
        tls: crate::net::client::Tls::to(&target.authority, false, p.backend_tls.as_deref()),
        timeouts: p.timeouts,
        response_headers: p.response_headers.as_ref(),
        head: up_head,
        added_headers,
        head_request: head_only,
        idempotent: matches!(
            head.method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        expect_continue: head.expect_continue,
        client_http10: head.version_minor == 0,
        peer: false,
    })
}

static PREFLIGHT_OK: std::sync::LazyLock<Prebuilt> = std::sync::LazyLock::new(Prebuilt::empty_ok);

fn pick_weighted(targets: &[HostTarget], pick: u64) -> &HostTarget {
    if targets.len() == 1 {
        return &targets[0];
    }
    let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
    if total == 0 {
        return &targets[(pick % targets.len() as u64) as usize];
    }
    let mut r = pick % total;
    for t in targets {
        let w = u64::from(t.weight);
        if r < w {
            return t;
        }
        r -= w;
    }
    &targets[targets.len() - 1]
}
