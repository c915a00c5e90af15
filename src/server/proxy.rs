//! Forwarding one request to a `host` backend over HTTP/1.1 and streaming the answer back.
//!
//! Owns: upstream connect (with timeout and the per-worker keep-alive pool), request body
//! streaming (Content-Length passed through, chunked re-framed), response head rewrite
//! (hop-by-hop removal, response header modifier, CORS lines) and response body streaming: every
//! read from the upstream is written to the client at once, so `text/event-stream` events reach
//! the client as they are produced. Not here: routing or policy decisions (`dispatch`).

use std::net::SocketAddr;

use crate::http::h1::{self, BodyKind, ChunkedDecoder, RespBody};
use crate::http::response::{itoa_buf, LocalError, CLIENT_CLOSED};
use crate::net::client::{self, Conn, ConnectError, Failed, HeadError};
use crate::net::io::{Bufs, ConnIo};
use crate::server::ctx::WorkerCtx;
use crate::server::decision::ProxyPlan;
use crate::snapshot::Snapshot;

pub(crate) enum ProxyOutcome {
    /// The response was relayed; `reusable` says whether the client connection can carry more.
    Done { status: u16, reusable: bool },
    /// The request failed; a local error response may have been written.
    Failed { status: u16 },
}

const UP_CHUNK: usize = 16 * 1024;

pub(crate) async fn forward<S: ConnIo>(
    io: &mut S,
    ctx: &WorkerCtx,
    snap: &Snapshot,
    bufs: &mut Bufs,
    mut plan: ProxyPlan<'_>,
    body: BodyKind,
    client_keep_alive: bool,
) -> ProxyOutcome {
    // Owned here and handed back by each write: no copy per request, yet available for a retry.
    let mut up_head = std::mem::take(&mut plan.head);
    let fail = |bufs: &mut Bufs, err: LocalError| {
        // The replica that owned the session is gone (or never answered): so is the session.
        let err = match err {
            LocalError::UpstreamConnect
            | LocalError::UpstreamConnectTimeout
            | LocalError::UpstreamClosed
                if plan.peer =>
            {
                ctx.shard.metrics.borrow_mut().peer[2] += 1;
                LocalError::SessionGone
            }
            e => e,
        };
        ctx.shard.count_refusal(&err);
        let date = ctx.shard.date();
        crate::server::decision::local_error(
            err,
            None,
            Some(&plan.added_headers),
            &date,
            true,
            plan.head_request,
            &mut bufs.out,
        );
        ProxyOutcome::Failed {
            status: err.status(),
        }
    };
    let to = match client::resolve(&plan.target.addr, &snap.settings.upstream).await {
        Ok(a) => a,
        Err(_) => return fail(bufs, LocalError::UpstreamConnect),
    };
    // A body that is already buffered whole (the usual small POST) leaves with the head in one
    // write: one syscall and one segment instead of two, and the upstream wakes once.
    let mut body = body;
    if let BodyKind::Length(n) = body {
        if !plan.expect_continue && (bufs.pending().len() as u64) >= n {
            let n = n as usize;
            up_head.extend_from_slice(&bufs.pending()[..n]);
            bufs.consume(n);
            body = BodyKind::None;
        }
    }
    let exchanged = exchange(io, snap, bufs, &plan, &to, up_head, body).await;
    let (mut up, parsed, addr) = match exchanged {
        Ok(x) => x,
        Err(Failure::Answer(e)) => return fail(bufs, e),
        Err(Failure::ClientGone) => {
            return ProxyOutcome::Failed {
                status: CLIENT_CLOSED,
            }
        }
    };
    let (raw, close_client) = write_response_head(bufs, &parsed, &plan, client_keep_alive);
    let status = parsed.status;
    // Response body, relayed as it arrives.
    match relay_body(io, &mut up, bufs, parsed.body, parsed.head_len, raw).await {
        Ok(upstream_reusable) => {
            if upstream_reusable && parsed.upstream_keep_alive {
                let max = snap.settings.upstream.pool_max_idle;
                client::release(addr, plan.tls, up, Vec::new(), max);
            }
            ProxyOutcome::Done {
                status,
                reusable: !close_client,
            }
        }
        Err(()) => ProxyOutcome::Failed { status },
    }
}

/// Why a forward ended before a response head: answered locally with an error, or the client
/// went away (499).
enum Failure {
    Answer(LocalError),
    ClientGone,
}

/// Sends the request (head, then the body still to come) on a pooled or new connection and
/// reads the response head, skipping interim 1xx answers. A reused connection that fails is
/// replaced once by a fresh one as [`client::may_resend`] allows (the request is replayable
/// when no body is left to stream: none, or all of it in `up_head`).
#[allow(clippy::too_many_arguments)]
async fn exchange<S: ConnIo>(
    io: &mut S,
    snap: &Snapshot,
    bufs: &mut Bufs,
    plan: &ProxyPlan<'_>,
    to: &client::Candidates<'_>,
    mut up_head: Vec<u8>,
    body: BodyKind,
) -> Result<(Conn, ParsedHead, SocketAddr), Failure> {
    let limits = &snap.settings.limits;
    let up_settings = &snap.settings.upstream;
    let timeouts = plan.timeouts;
    let head_timeout = match (timeouts.request, timeouts.backend) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let replayable = matches!(body, BodyKind::None);
    let (addr, first) = match client::checkout(
        to,
        plan.tls,
        up_settings.pool_idle_timeout,
        up_settings.connect_timeout,
    )
    .await
    {
        Ok((addr, c)) => (addr, c),
        Err(e) => return Err(Failure::Answer(connect_failure(e))),
    };
    let mut attempt = Ok(first);
    loop {
        let (mut stream, reused_after) = match attempt {
            Ok(c) => (c.conn, c.reused_after),
            Err(e) => return Err(Failure::Answer(connect_failure(e))),
        };
        let may_resend =
            |failed| client::may_resend(reused_after, failed, replayable, plan.idempotent);
        let fresh = || client::fresh(addr, plan.tls, up_settings.connect_timeout);
        if plan.expect_continue && !matches!(body, BodyKind::None) {
            bufs.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if bufs.flush(io).await.is_err() {
                return Err(Failure::ClientGone);
            }
        }
        let (res, h) = stream.write_all(up_head).await;
        up_head = h;
        if res.is_err() {
            if may_resend(Failed::Write) {
                attempt = fresh().await;
                continue;
            }
            return Err(Failure::Answer(LocalError::UpstreamConnect));
        }
        let pace = limits.body_pace();
        if let Err(e) = send_body(io, &mut stream, bufs, body, limits.max_body, pace).await {
            return Err(match e {
                BodyError::Client(Some(h)) => Failure::Answer(LocalError::Body(h)),
                BodyError::Client(None) => Failure::ClientGone,
                BodyError::Upstream => Failure::Answer(LocalError::UpstreamClosed),
            });
        }
        bufs.up.clear();
        if bufs.up.capacity() < UP_CHUNK {
            bufs.up.reserve(UP_CHUNK);
        }
        let head_request = plan.head_request;
        let read_head = client::read_head(&mut stream, &mut bufs.up, head_request, |h, hdrs| {
            downstream_head(h.status, hdrs, head_request)
        });
        let head = match head_timeout {
            Some(t) => match monoio::time::timeout(t, read_head).await {
                Ok(r) => r,
                Err(_) if timeouts.request.is_some() && timeouts.request == head_timeout => {
                    return Err(Failure::Answer(LocalError::RequestTimeout))
                }
                Err(_) => return Err(Failure::Answer(LocalError::UpstreamTimeout)),
            },
            None => read_head.await,
        };
        match head {
            Ok((h, head)) => {
                let parsed = ParsedHead {
                    status: h.status,
                    head,
                    head_len: h.head_len,
                    body: h.body,
                    upstream_keep_alive: h.keep_alive,
                };
                return Ok((stream, parsed, addr));
            }
            Err(HeadError::Closed) if bufs.up.is_empty() && may_resend(Failed::BeforeAnswer) => {
                tracing::debug!(upstream = %addr, "reused upstream connection was closed; sending again");
                attempt = fresh().await;
            }
            Err(HeadError::Closed) => return Err(Failure::Answer(LocalError::UpstreamClosed)),
            Err(HeadError::Invalid) => return Err(Failure::Answer(LocalError::UpstreamProtocol)),
        }
    }
}

fn connect_failure(e: ConnectError) -> LocalError {
    match e {
        ConnectError::Timeout(_) => LocalError::UpstreamConnectTimeout,
        ConnectError::Resolve(_) | ConnectError::Refused(..) | ConnectError::Tls(_) => {
            LocalError::UpstreamConnect
        }
    }
}

/// The downstream status line and the upstream's headers minus hop-by-hop fields and its
/// framing (`content-length` stays on answers to HEAD: it describes the GET body).
fn downstream_head(status: u16, hdrs: &[httparse::Header<'_>], head_request: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    h1::write_status_line(&mut out, status);
    for hd in hdrs {
        if h1::is_hop_by_hop(hd.name)
            || hd.name.eq_ignore_ascii_case("content-length")
            || h1::is_connection_listed(hdrs, hd.name)
        {
            if head_request && hd.name.eq_ignore_ascii_case("content-length") {
                h1::write_header(&mut out, hd.name, hd.value);
            }
            continue;
        }
        h1::write_header(&mut out, hd.name, hd.value);
    }
    out
}

/// Writes the downstream response head: the upstream's (hop-by-hop fields removed), the route's
/// added lines, and the framing for the client. HTTP/1.0 clients cannot take chunked framing:
/// they get the raw body, ended by close. Returns (raw body, close the client connection).
fn write_response_head(
    bufs: &mut Bufs,
    parsed: &ParsedHead,
    plan: &ProxyPlan<'_>,
    client_keep_alive: bool,
) -> (bool, bool) {
    let chunk_to_client = matches!(parsed.body, RespBody::Chunked | RespBody::UntilClose);
    let raw = chunk_to_client && plan.client_http10;
    let close_client = !client_keep_alive || raw;
    bufs.out.extend_from_slice(&parsed.head);
    bufs.out.extend_from_slice(&plan.added_headers);
    if let Some(m) = plan.response_headers {
        m.write_extra(&mut bufs.out);
    }
    match parsed.body {
        RespBody::Length(n) => {
            h1::write_header(&mut bufs.out, "content-length", itoa_buf(n).as_bytes())
        }
        RespBody::Chunked | RespBody::UntilClose if !raw => {
            h1::write_header(&mut bufs.out, "transfer-encoding", b"chunked")
        }
        RespBody::Chunked | RespBody::UntilClose => {}
        RespBody::None => {}
    }
    if close_client {
        bufs.out.extend_from_slice(b"connection: close\r\n");
    }
    bufs.out.extend_from_slice(b"\r\n");
    (raw, close_client)
}

enum BodyError {
    /// The client's body was malformed/too large (Some), or the client went away (None).
    Client(Option<h1::H1Error>),
    Upstream,
}

async fn write_up(up: &mut Conn, data: Vec<u8>) -> Result<Vec<u8>, BodyError> {
    let (res, mut data) = up.write_all(data).await;
    data.clear();
    res.map(|_| data).map_err(|_| BodyError::Upstream)
}

async fn send_body<S: ConnIo>(
    io: &mut S,
    up: &mut Conn,
    bufs: &mut Bufs,
    body: BodyKind,
    max_body: u64,
    mut pace: crate::net::io::BodyPace,
) -> Result<(), BodyError> {
    match body {
        BodyKind::None => Ok(()),
        BodyKind::Length(mut left) => {
            let mut scratch = Vec::new();
            loop {
                let take = (bufs.pending().len() as u64).min(left) as usize;
                if take > 0 {
                    scratch.extend_from_slice(&bufs.pending()[..take]);
                    bufs.consume(take);
                    left -= take as u64;
                    scratch = write_up(up, scratch).await?;
                }
                if left == 0 {
                    return Ok(());
                }
                crate::net::io::read_or_fail(io, bufs, &mut pace)
                    .await
                    .map_err(BodyError::Client)?;
            }
        }
        BodyKind::Chunked => {
            let mut dec = ChunkedDecoder::new(max_body);
            let mut scratch = Vec::new();
            loop {
                let chunk = dec
                    .decode(bufs.pending())
                    .map_err(|e| BodyError::Client(Some(e)))?;
                let (consumed, done) = (chunk.consumed, chunk.done);
                if !chunk.data.is_empty() {
                    h1::write_chunk(&mut scratch, chunk.data);
                }
                bufs.consume(consumed);
                if done {
                    h1::write_last_chunk(&mut scratch);
                    write_up(up, scratch).await?;
                    return Ok(());
                }
                if !scratch.is_empty() {
                    scratch = write_up(up, scratch).await?;
                }
                if consumed == 0 || bufs.pending().is_empty() {
                    crate::net::io::read_or_fail(io, bufs, &mut pace)
                        .await
                        .map_err(BodyError::Client)?;
                }
            }
        }
    }
}

struct ParsedHead {
    status: u16,
    /// Downstream status line and forwarded headers, without framing headers or blank line.
    head: Vec<u8>,
    head_len: usize,
    body: RespBody,
    upstream_keep_alive: bool,
}

/// Streams the upstream body to the client. `Ok(true)` when the upstream connection ended
/// cleanly at a message boundary and may be pooled.
async fn relay_body<S: ConnIo>(
    io: &mut S,
    up: &mut Conn,
    bufs: &mut Bufs,
    body: RespBody,
    leftover_start: usize,
    raw: bool,
) -> Result<bool, ()> {
    let frame = |out: &mut Vec<u8>, data: &[u8]| {
        if raw {
            out.extend_from_slice(data)
        } else {
            h1::write_chunk(out, data)
        }
    };
    let end = |out: &mut Vec<u8>| {
        if !raw {
            h1::write_last_chunk(out)
        }
    };
    bufs.up.drain(..leftover_start);
    match body {
        RespBody::None => {
            bufs.flush(io).await.map_err(|_| ())?;
            Ok(bufs.up.is_empty())
        }
        RespBody::Length(mut left) => loop {
            let take = (bufs.up.len() as u64).min(left) as usize;
            bufs.out.extend_from_slice(&bufs.up[..take]);
            bufs.up.drain(..take);
            left -= take as u64;
            bufs.flush(io).await.map_err(|_| ())?;
            if left == 0 {
                return Ok(bufs.up.is_empty());
            }
            match up.read_more(&mut bufs.up).await {
                Ok(n) if n > 0 => {}
                _ => return Err(()),
            }
        },
        RespBody::Chunked => {
            let mut dec = ChunkedDecoder::new(u64::MAX);
            loop {
                let mut consumed_total = 0;
                let mut done = false;
                loop {
                    let chunk = dec.decode(&bufs.up[consumed_total..]).map_err(|_| ())?;
                    if !chunk.data.is_empty() {
                        frame(&mut bufs.out, chunk.data);
                    }
                    consumed_total += chunk.consumed;
                    if chunk.done {
                        done = true;
                        break;
                    }
                    if chunk.consumed == 0 || consumed_total >= bufs.up.len() {
                        break;
                    }
                }
                bufs.up.drain(..consumed_total);
                if done {
                    end(&mut bufs.out);
                    bufs.flush(io).await.map_err(|_| ())?;
                    return Ok(bufs.up.is_empty());
                }
                bufs.flush(io).await.map_err(|_| ())?;
                match up.read_more(&mut bufs.up).await {
                    Ok(n) if n > 0 => {}
                    _ => return Err(()),
                }
            }
        }
        RespBody::UntilClose => loop {
            if !bufs.up.is_empty() {
                frame(&mut bufs.out, &bufs.up);
                bufs.up.clear();
            }
            bufs.flush(io).await.map_err(|_| ())?;
            match up.read_more(&mut bufs.up).await {
                Ok(n) if n > 0 => {}
                Ok(_) => {
                    end(&mut bufs.out);
                    bufs.flush(io).await.map_err(|_| ())?;
                    return Ok(false);
                }
                Err(_) => return Err(()),
            }
        },
    }
}
