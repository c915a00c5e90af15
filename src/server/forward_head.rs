//! The upstream request head and redirect targets: what a `host` backend receives once the
//! route's rewrites and header policies are applied.
//!
//! Owns: hop-by-hop removal (including headers named in `Connection`), the proxy's own headers
//! (`Host`, `X-Forwarded-*`, framing), request header modifiers, URL and authority rewrites, and
//! stripping the client's `Authorization` on authenticated routes (never passed upstream unless
//! `backendAuth: passthrough`). Pure: no I/O.

use httparse::Header;

use crate::http::h1::{self, BodyKind, RequestHead};
use crate::net::addr::HostTarget;
use crate::net::io::ConnInfo;
use crate::routing;
use crate::snapshot::{AuthorityRewrite, Redirect, Route};

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

pub(crate) fn upstream_head(
    route: &Route,
    target: &HostTarget,
    conn: ConnInfo,
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    matched: &routing::RouteMatch,
    traceparent: Option<&[u8]>,
) -> Vec<u8> {
    let p = &route.policies;
    // The client's token is for this proxy only (MCP: no token passthrough).
    let strip_authorization = p.auth.as_ref().is_some_and(|a| !a.passthrough);
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
        if h1::is_hop_by_hop(h.name)
            || proxy_owned(h.name)
            || h1::is_connection_listed(headers, h.name)
        {
            if h.name.eq_ignore_ascii_case("x-forwarded-for") {
                prior_xff = Some(h.value);
            }
            continue;
        }
        if strip_authorization && h.name.eq_ignore_ascii_case("authorization") {
            continue;
        }
        // Traced here: the upstream's parent is this proxy's span, not the client's.
        if traceparent.is_some() && h.name.eq_ignore_ascii_case("traceparent") {
            continue;
        }
        if let Some(m) = &p.request_headers {
            if m.drops(h.name) {
                continue;
            }
        }
        h1::write_header(&mut out, h.name, h.value);
    }
    if let Some(t) = traceparent {
        h1::write_header(&mut out, "traceparent", t);
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
    end_head(&mut out, head.body);
    out
}

/// The request target as a replica forwards it (and its owner checks the signature of): the
/// normalised path, then `?` and the query if any.
pub(crate) fn request_target(head: &RequestHead<'_>) -> Vec<u8> {
    let mut t = Vec::with_capacity(head.path.len() + head.query.len() + 1);
    t.extend_from_slice(head.path.as_bytes());
    if !head.query.is_empty() {
        t.push(b'?');
        t.extend_from_slice(head.query.as_bytes());
    }
    t
}

/// The head of a request forwarded to the replica that owns its MCP session: the client's
/// request as it came (its `Authorization` included: the owner authenticates it again, and the
/// route's own rules apply there), minus hop-by-hop fields and the proxy's own, plus the signed
/// `portcullis-peer` header naming the edge connection. No `X-Forwarded-*`: the header carries
/// the client.
pub(crate) fn peer_head(
    head: &RequestHead<'_>,
    headers: &[Header<'_>],
    signed: &[u8],
    target: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        128 + target.len()
            + signed.len()
            + headers
                .iter()
                .map(|h| h.name.len() + h.value.len() + 4)
                .sum::<usize>(),
    );
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = head.authority {
        h1::write_header(&mut out, "host", host);
    }
    for h in headers {
        if h1::is_hop_by_hop(h.name)
            || proxy_owned(h.name)
            || h1::is_connection_listed(headers, h.name)
            || h.name.eq_ignore_ascii_case(crate::cluster::PEER_HEADER)
        {
            continue;
        }
        h1::write_header(&mut out, h.name, h.value);
    }
    h1::write_header(&mut out, crate::cluster::PEER_HEADER, signed);
    end_head(&mut out, head.body);
    out
}

/// The framing header of a forwarded request's body, and the head's blank line.
fn end_head(out: &mut Vec<u8>, body: BodyKind) {
    match body {
        BodyKind::Length(n) => {
            let n = crate::http::response::itoa_buf(n);
            h1::write_header(out, "content-length", n.as_bytes());
        }
        BodyKind::Chunked => h1::write_header(out, "transfer-encoding", b"chunked"),
        BodyKind::None => {}
    }
    out.extend_from_slice(b"\r\n");
}

fn rewrite_authority(a: &AuthorityRewrite, client_host: &[u8]) -> String {
    let client = String::from_utf8_lossy(client_host);
    let (h, port) = crate::http::authority::split_host_port(&client);
    match a {
        AuthorityRewrite::Full(f) => f.clone(),
        AuthorityRewrite::Host(new) => match port {
            Some(p) => format!("{new}:{p}"),
            None => new.clone(),
        },
        AuthorityRewrite::Port(p) => format!("{h}:{p}"),
    }
}

pub(crate) fn redirect_location(
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
