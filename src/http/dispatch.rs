//! What to do with one parsed request: pick the listener and route, apply the route's policies in
//! order, and either render a local response or prepare the upstream request head.
//!
//! Owns: policy order (CORS preflight → authentication → redirect → direct response → backend)
//! and the upstream head rewrite (hop-by-hop removal, header modifiers, URL rewrite,
//! `X-Forwarded-*`). Pure: no I/O, so it is unit-tested and benchmarked without sockets.
//! Not here: reading bodies or talking to upstreams (`http::conn`, `http::proxy`).

use std::net::SocketAddr;

use httparse::Header;

use crate::http::h1::{self, BodyKind, RequestHead};
use crate::http::response::{LocalError, Prebuilt};
use crate::policy::cors::Cors;
use crate::routing::{self, RequestView};
use crate::snapshot::{AuthorityRewrite, Backend, Bind, HostTarget, Redirect, Route, Snapshot};

/// Facts about the downstream connection that requests on it share.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub port: u16,
    pub https: bool,
}

/// The outcome of [`decide`].
pub enum Decision<'s> {
    /// A response was written to `out`; the status is returned for metrics and the access log.
    Local {
        status: u16,
        route: Option<&'s Route>,
        close: bool,
    },
    /// Forward to an upstream.
    Proxy(ProxyPlan<'s>),
}

/// Everything the proxy needs once the request head is no longer borrowed.
pub struct ProxyPlan<'s> {
    pub route: &'s Route,
    pub target: &'s HostTarget,
    /// The complete upstream request head, blank line included.
    pub head: Vec<u8>,
    /// Header lines (CRLF-terminated) to add to the downstream response: CORS.
    pub response_extra: Vec<u8>,
    pub head_request: bool,
    pub expect_continue: bool,
    pub client_http10: bool,
}

pub fn find_bind(snap: &Snapshot, port: u16) -> Option<&Bind> {
    snap.binds.iter().find(|b| b.port == port)
}

/// Decides the fate of one request. Local responses are appended to `out`.
#[allow(clippy::too_many_arguments)]
pub fn decide<'s>(
    snap: &'s Snapshot,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    date: &[u8],
    close_after: bool,
    pick: u64,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let head_only = head.method == "HEAD";
    let host_raw = head.authority.unwrap_or(b"");
    let host = std::str::from_utf8(routing::strip_port(host_raw)).unwrap_or("");
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
            let mut extra = Vec::with_capacity(256);
            cors.write_preflight(headers, &mut extra);
            PREFLIGHT_OK.write(out, date, &extra, close_after, false);
            return Decision::Local {
                status: 200,
                route: Some(route),
                close: close_after,
            };
        }
    }
    let mut extra = Vec::new();
    if let Some(cors) = &p.cors {
        cors.write_actual(origin, &mut extra);
    }
    if p.unenforced_auth.is_some() {
        return local_error(
            LocalError::AuthNotEnforced,
            Some(route),
            Some(&extra),
            date,
            close_after,
            head_only,
            out,
        );
    }
    if let Some(r) = &p.redirect {
        let status = r.status;
        let location = redirect_location(r, conn.https, host_raw, head, matched);
        let mut hdrs = extra;
        h1::write_header(&mut hdrs, "location", location.as_bytes());
        if let Some(m) = &p.response_headers {
            m.write_extra(&mut hdrs);
        }
        Prebuilt::new(status, None, &[], Vec::new()).write(
            out,
            date,
            &hdrs,
            close_after,
            head_only,
        );
        return Decision::Local {
            status,
            route: Some(route),
            close: close_after,
        };
    }
    if let Some(direct) = &p.direct {
        if let Some(m) = &p.response_headers {
            m.write_extra(&mut extra);
        }
        direct.write(out, date, &extra, close_after, head_only);
        return Decision::Local {
            status: direct.status,
            route: Some(route),
            close: close_after,
        };
    }
    let targets = match &route.backend {
        Backend::Hosts(t) if !t.is_empty() => t,
        Backend::Mcp { .. } => {
            return local_error(
                LocalError::BackendNotImplemented,
                Some(route),
                Some(&extra),
                date,
                close_after,
                head_only,
                out,
            )
        }
        _ => {
            return local_error(
                LocalError::NoBackend,
                Some(route),
                Some(&extra),
                date,
                close_after,
                head_only,
                out,
            )
        }
    };
    let target = pick_weighted(targets, pick);
    let up_head = upstream_head(route, target, conn, head, headers, matched);
    Decision::Proxy(ProxyPlan {
        route,
        target,
        head: up_head,
        response_extra: extra,
        head_request: head_only,
        expect_continue: head.expect_continue,
        client_http10: head.version_minor == 0,
    })
}

static PREFLIGHT_OK: std::sync::LazyLock<Prebuilt> =
    std::sync::LazyLock::new(|| Prebuilt::new(200, None, &[], Vec::new()));

/// Writes the answer for `err` (with the route's CORS lines, if any) and returns the decision.
pub fn local_error<'s>(
    err: LocalError,
    route: Option<&'s Route>,
    extra: Option<&[u8]>,
    date: &[u8],
    close_after: bool,
    head_only: bool,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let close = close_after || err.must_close();
    let pre = err.prebuilt();
    pre.write(out, date, extra.unwrap_or(b""), close, head_only);
    Decision::Local {
        status: pre.status,
        route,
        close,
    }
}

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

/// Headers the proxy sets itself on the upstream request; the client's copies are dropped.
fn proxy_owned(name: &str) -> bool {
    const OWNED: [&str; 6] = [
        "host",
        "content-length",
        "expect",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-for",
    ];
    OWNED.iter().any(|o| o.eq_ignore_ascii_case(name))
}

/// Whether `name` is listed as a connection option (those headers are hop-by-hop too).
pub(crate) fn listed_in_connection(headers: &[Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|b| *b == b','))
        .any(|tok| tok.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
}

fn upstream_head(
    route: &Route,
    target: &HostTarget,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    matched: &routing::RouteMatch,
) -> Vec<u8> {
    let p = &route.policies;
    let mut out = Vec::with_capacity(
        256 + headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum::<usize>(),
    );
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    match p.rewrite.as_ref().and_then(|r| r.path.as_ref()) {
        Some(rw) => {
            let mut path = String::with_capacity(head.path.len() + 16);
            rw.apply(&matched.path, head.path, &mut path);
            out.extend_from_slice(path.as_bytes());
        }
        None => out.extend_from_slice(head.path.as_bytes()),
    }
    if !head.query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(head.query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let client_host = head.authority.unwrap_or(b"");
    let host: Vec<u8> = match p.rewrite.as_ref().and_then(|r| r.authority.as_ref()) {
        Some(a) => rewrite_authority(a, client_host).into_bytes(),
        None if client_host.is_empty() => target.authority.as_bytes().to_vec(),
        None => client_host.to_vec(),
    };
    h1::write_header(&mut out, "host", &host);
    let mut prior_xff: Option<&[u8]> = None;
    for h in headers {
        if h1::is_hop_by_hop(h.name) || proxy_owned(h.name) || listed_in_connection(headers, h.name)
        {
            if h.name.eq_ignore_ascii_case("x-forwarded-for") {
                prior_xff = Some(h.value);
            }
            continue;
        }
        if let Some(m) = &p.request_headers {
            if m.drops(h.name) {
                continue;
            }
        }
        h1::write_header(&mut out, h.name, h.value);
    }
    if let Some(m) = &p.request_headers {
        m.write_extra(&mut out);
    }
    let ip = conn.peer.ip().to_canonical().to_string();
    match prior_xff {
        Some(prev) if !prev.is_empty() => {
            let mut v = prev.to_vec();
            v.extend_from_slice(b", ");
            v.extend_from_slice(ip.as_bytes());
            h1::write_header(&mut out, "x-forwarded-for", &v);
        }
        _ => h1::write_header(&mut out, "x-forwarded-for", ip.as_bytes()),
    }
    h1::write_header(
        &mut out,
        "x-forwarded-proto",
        if conn.https { b"https" } else { b"http" },
    );
    if !client_host.is_empty() {
        h1::write_header(&mut out, "x-forwarded-host", client_host);
    }
    match head.body {
        BodyKind::Length(n) => {
            let n = crate::http::response::itoa_buf(n);
            h1::write_header(&mut out, "content-length", n.as_bytes());
        }
        BodyKind::Chunked => h1::write_header(&mut out, "transfer-encoding", b"chunked"),
        BodyKind::None => {}
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn rewrite_authority(a: &AuthorityRewrite, client_host: &[u8]) -> String {
    let client = String::from_utf8_lossy(client_host);
    let (h, port) = split_host_port(&client);
    match a {
        AuthorityRewrite::Full(f) => f.clone(),
        AuthorityRewrite::Host(new) => match port {
            Some(p) => format!("{new}:{p}"),
            None => new.clone(),
        },
        AuthorityRewrite::Port(p) => format!("{h}:{p}"),
    }
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    let host = std::str::from_utf8(routing::strip_port(authority.as_bytes())).unwrap_or(authority);
    let rest = &authority[host.len()..];
    (host, rest.strip_prefix(':'))
}

fn redirect_location(
    r: &Redirect,
    https: bool,
    client_host: &[u8],
    head: &RequestHead<'_>,
    matched: &routing::RouteMatch,
) -> String {
    let scheme = r
        .scheme
        .as_deref()
        .unwrap_or(if https { "https" } else { "http" });
    let authority = match &r.authority {
        Some(a) => rewrite_authority(a, client_host),
        None => String::from_utf8_lossy(client_host).into_owned(),
    };
    let mut path = String::new();
    match &r.path {
        Some(rw) => rw.apply(&matched.path, head.path, &mut path),
        None => path.push_str(head.path),
    }
    let mut loc = format!("{scheme}://{authority}{path}");
    if !head.query.is_empty() {
        loc.push('?');
        loc.push_str(head.query);
    }
    loc
}
