//! Reading what a client sends: waiting on an idle keep-alive connection (giving its buffers
//! back after a second), reading a request head within the header timeout, and reading or
//! discarding a request body at the pace it must keep.
//!
//! Not here: what the request means (`server::dispatch`), answering it (`server::conn`).

use std::time::{Duration, Instant};

use crate::http::h1::{self, BodyKind, ChunkedDecoder, H1Error};
use crate::http::response::LocalError;
use crate::net::io::{read_or_fail, Bufs, ConnIo};
use crate::server::ctx::WorkerCtx;
use crate::server::decision::{self};
use crate::shard::BodyBytes;

/// A keep-alive connection that stays idle this long gives its buffers back.
pub(super) const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// What an idle keep-alive connection's wait inside `conn::run` ended with.
pub(super) enum Idle {
    Read(std::io::Result<usize>),
    /// The idle timeout passed, or a drain began.
    Over,
    /// Still idle after [`SHRINK_AFTER`]: `conn::serve` waits on, with the buffers given back.
    Longer,
}

/// Waits for the next request's first bytes on an idle keep-alive connection (nothing pending).
///
/// Most clients send their next request at once, into the buffers they already have. One that
/// stays idle past [`SHRINK_AFTER`] ends the busy phase ([`Idle::Longer`]): the read is
/// cancelled (keeping whatever it got), and `conn::serve` waits on for readability in a small
/// state with no buffer (a TLS connection gives back its ciphertext buffers too).
pub(super) async fn wait_while_idle<S: ConnIo>(
    io: &mut S,
    ctx: &WorkerCtx,
    bufs: &mut Bufs,
    idle: Duration,
) -> Idle {
    use futures_util::future::{select, Either};
    if idle > SHRINK_AFTER {
        let canceller = bufs.watch.take().unwrap_or_default();
        let handle = canceller.handle();
        let got = {
            let read = std::pin::pin!(bufs.read_more(io, Some(handle)));
            let timer = std::pin::pin!(monoio::time::sleep(SHRINK_AFTER));
            match select(read, timer).await {
                Either::Left((r, _)) => r,
                Either::Right(((), read)) => {
                    let _ = canceller.cancel();
                    match read.await {
                        Ok(n) if n > 0 => return Idle::Read(Ok(n)),
                        // Cancelled (or failed: the next read reports it again).
                        _ if ctx.shard.draining() => return Idle::Over,
                        _ => return Idle::Longer,
                    }
                }
            }
        };
        bufs.watch = Some(canceller);
        return Idle::Read(got);
    }
    let handle = ctx.shard.drain_handle();
    match monoio::time::timeout(idle, bufs.read_more(io, Some(handle))).await {
        Ok(r) => Idle::Read(r),
        Err(_) => Idle::Over,
    }
}

/// Where a request head stands after reading.
pub(super) enum HeadState {
    Ready,
    Closed,
    /// Idle past [`SHRINK_AFTER`]: `conn::serve` waits on.
    Idle,
}

/// Reads until the pending bytes hold a complete head (or something the parser will reject).
/// `since`: when the head's time started (the connection's start, for its first request);
/// otherwise it starts with the head's first byte, and until then the idle timeout applies.
pub(super) async fn wait_for_head<S: ConnIo>(
    io: &mut S,
    ctx: &WorkerCtx,
    bufs: &mut Bufs,
    since: Option<Instant>,
) -> HeadState {
    let mut head_started: Option<Instant> = since;
    loop {
        let pending = bufs.pending();
        if pending.is_empty() && ctx.shard.draining() {
            return HeadState::Closed;
        }
        if !pending.is_empty() {
            if head_complete(pending)
                || pending.len() > h1::MAX_HEAD_BYTES
                || pending.starts_with(b"PRI * HTTP/2")
                || not_http1(pending)
            {
                return HeadState::Ready;
            }
            head_started.get_or_insert_with(Instant::now);
        }
        if bufs.flush(io).await.is_err() {
            return HeadState::Closed;
        }
        let snap = ctx.shard.snapshot();
        let limits = &snap.settings.limits;
        let res = match head_started {
            None => {
                if ctx.shard.draining() {
                    return HeadState::Closed;
                }
                match wait_while_idle(io, ctx, bufs, limits.idle_timeout).await {
                    Idle::Read(r) => r,
                    Idle::Over => return HeadState::Closed,
                    Idle::Longer => return HeadState::Idle,
                }
            }
            Some(t0) => {
                let left = limits.header_timeout.saturating_sub(t0.elapsed());
                // Nothing read yet: a drain may end the wait.
                let handle = bufs.pending().is_empty().then(|| ctx.shard.drain_handle());
                match monoio::time::timeout(
                    left.max(Duration::from_millis(1)),
                    bufs.read_more(io, handle),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => {
                        let date = ctx.shard.date();
                        let _ = decision::local_error(
                            LocalError::HeaderTimeout,
                            None,
                            None,
                            &date,
                            true,
                            false,
                            &mut bufs.out,
                        );
                        let reason = crate::metrics::Reason::Timeout;
                        let (unmatched, other) = (&*crate::metrics::UNMATCHED, 9);
                        let m = &mut ctx.shard.metrics.borrow_mut();
                        m.record(unmatched, other, 408, reason, t0.elapsed());
                        return HeadState::Closed;
                    }
                }
            }
        };
        match res {
            Ok(0) | Err(_) => return HeadState::Closed,
            Ok(_) => {}
        }
    }
}

/// Bytes that no HTTP/1.x head can continue (a TLS handshake on a plain port, an HTTP/0.9
/// request line): handed to the parser at once for its 400, not left to the header timeout.
/// Empty lines before the request line are ignored, as RFC 9112 §2.2 asks (some clients send a
/// CRLF after a body).
pub(super) fn not_http1(buf: &[u8]) -> bool {
    if buf.starts_with(&[0x16, 0x03]) {
        return true;
    }
    let Some(start) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return false;
    };
    let line = &buf[start..];
    match memchr::memchr(b'\n', line) {
        Some(end) => memchr::memmem::find(&line[..end], b" HTTP/").is_none(),
        None => false,
    }
}

/// A blank line ends the head; a bare-LF blank line is also accepted here so that the parser can
/// reject it with a clear 400 instead of the client waiting for the header timeout.
pub(super) fn head_complete(buf: &[u8]) -> bool {
    // One pass over the line ends (a dozen in a typical head): `\r\n\r\n` or `\n\n`.
    memchr::memchr_iter(b'\n', buf).any(|i| match buf.get(i + 1) {
        Some(b'\n') => true,
        Some(b'\r') => i > 0 && buf[i - 1] == b'\r' && buf.get(i + 2) == Some(&b'\n'),
        _ => false,
    })
}

/// Reads and drops a request body. `Err(Some(e))`: the body is malformed or too large (answer
/// and close); `Err(None)`: the connection failed.
pub(super) async fn discard_body<S: ConnIo>(
    io: &mut S,
    ctx: &WorkerCtx,
    bufs: &mut Bufs,
    body: BodyKind,
    max_body: u64,
) -> Result<(), Option<H1Error>> {
    let mut pace = ctx.shard.snapshot().settings.limits.body_pace();
    match body {
        BodyKind::None => Ok(()),
        BodyKind::Length(mut left) => loop {
            let take = (bufs.pending().len() as u64).min(left) as usize;
            bufs.consume(take);
            left -= take as u64;
            if left == 0 {
                return Ok(());
            }
            read_or_fail(io, bufs, &mut pace).await?;
        },
        BodyKind::Chunked => {
            let mut dec = ChunkedDecoder::new(max_body);
            loop {
                let chunk = dec.decode(bufs.pending()).map_err(Some)?;
                let (consumed, done) = (chunk.consumed, chunk.done);
                bufs.consume(consumed);
                if done {
                    return Ok(());
                }
                if consumed == 0 || bufs.pending().is_empty() {
                    read_or_fail(io, bufs, &mut pace).await?;
                }
            }
        }
    }
}

/// Reads a whole request body (MCP messages are relayed as units), counted against the
/// worker's budget of buffered body bytes through `held`. `Err(Some(e))`: malformed, over
/// `limit` or over the budget (answer and close); `Err(None)`: the connection failed.
pub(super) async fn read_body<S: ConnIo>(
    io: &mut S,
    ctx: &WorkerCtx,
    bufs: &mut Bufs,
    body: BodyKind,
    limit: u64,
    held: &mut BodyBytes<'_>,
) -> Result<Vec<u8>, Option<LocalError>> {
    let budget = ctx.shard.snapshot().settings.mcp_limits.buffered_bytes;
    let mut pace = ctx.shard.snapshot().settings.limits.body_pace();
    let bad = |e: Option<H1Error>| e.map(LocalError::Body);
    let mut out = Vec::new();
    match body {
        BodyKind::None => Ok(out),
        BodyKind::Length(n) if n > limit => Err(Some(LocalError::Body(H1Error::BodyTooLarge))),
        BodyKind::Length(mut left) => {
            if !held.grow_to(left, budget) {
                return Err(Some(LocalError::BodiesBuffered));
            }
            out.reserve(left as usize);
            loop {
                let take = (bufs.pending().len() as u64).min(left) as usize;
                out.extend_from_slice(&bufs.pending()[..take]);
                bufs.consume(take);
                left -= take as u64;
                if left == 0 {
                    return Ok(out);
                }
                read_or_fail(io, bufs, &mut pace).await.map_err(bad)?;
            }
        }
        BodyKind::Chunked => {
            let mut dec = ChunkedDecoder::new(limit);
            loop {
                let chunk = dec.decode(bufs.pending()).map_err(|e| bad(Some(e)))?;
                out.extend_from_slice(chunk.data);
                if !held.grow_to(out.len() as u64, budget) {
                    return Err(Some(LocalError::BodiesBuffered));
                }
                let (consumed, done) = (chunk.consumed, chunk.done);
                bufs.consume(consumed);
                if done {
                    return Ok(out);
                }
                if consumed == 0 || bufs.pending().is_empty() {
                    read_or_fail(io, bufs, &mut pace).await.map_err(bad)?;
                }
            }
        }
    }
}
