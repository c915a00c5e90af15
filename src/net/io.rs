//! A downstream connection as the server and the relay see it: the byte stream ([`ConnIo`], plain
//! TCP or [`TlsConn`]), its reusable buffers ([`Bufs`]), the facts requests on it share
//! ([`ConnInfo`]) and the pace a request body must keep ([`BodyPace`]).
//!
//! Not here: what the bytes mean (`http::h1`, `server::conn`).

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::buf::SliceMut;
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::http::h1::H1Error;
use crate::net::tls_conn::TlsConn;

const READ_CHUNK: usize = 16 * 1024;
/// A connection's first read buffer: a typical request head fits.
const FIRST_READ: usize = 2048;

/// Facts about the downstream connection that requests on it share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub port: u16,
    pub https: bool,
    /// The connection arrived on a loopback address (DNS-rebinding protection applies).
    pub local_loopback: bool,
    /// It arrived on the peer listener: each request must carry a valid `portcullis-peer`
    /// header (`cluster`), which gives the port, scheme and client of the edge connection.
    pub from_peer: bool,
}

/// A downstream byte stream: plain TCP, or TLS on top of it ([`TlsConn`]).
pub(crate) trait ConnIo {
    /// Appends received bytes to `buf`, within its spare capacity; `Ok(0)` is the end of the
    /// stream. With `cancel`, the read ends early (with an error) when it fires, losing
    /// nothing: what it received is in `buf`, or stays buffered for the next read. Cancelled
    /// reads let a keep-alive connection's wait end at a drain or after a second of idleness,
    /// and watch a client while its answer is prepared.
    fn read_append(
        &mut self,
        buf: Vec<u8>,
        cancel: Option<CancelHandle>,
    ) -> impl Future<Output = BufResult<usize, Vec<u8>>>;

    /// Writes all of `buf`.
    fn send_all(&mut self, buf: Vec<u8>) -> impl Future<Output = BufResult<usize, Vec<u8>>>;

    /// Ends the write side (TLS: after `close_notify`).
    fn close(&mut self) -> impl Future<Output = std::io::Result<()>>;

    /// Waits until a read would make progress, without a buffer: an idle keep-alive
    /// connection holds no memory for its next request until it arrives.
    fn wait_readable(&mut self) -> impl Future<Output = std::io::Result<()>>;

    /// Gives back what the stream buffers internally, if it holds nothing (an idle connection).
    fn release_buffers(&mut self) {}
}

impl ConnIo for TcpStream {
    async fn read_append(
        &mut self,
        buf: Vec<u8>,
        cancel: Option<CancelHandle>,
    ) -> BufResult<usize, Vec<u8>> {
        let len = buf.len();
        let cap = buf.capacity();
        let slice = SliceMut::new(buf, len, cap);
        let (res, slice) = match cancel {
            Some(c) => self.cancelable_read(slice, c).await,
            None => AsyncReadRent::read(self, slice).await,
        };
        (res, slice.into_inner())
    }

    fn send_all(&mut self, buf: Vec<u8>) -> impl Future<Output = BufResult<usize, Vec<u8>>> {
        AsyncWriteRentExt::write_all(self, buf)
    }

    fn close(&mut self) -> impl Future<Output = std::io::Result<()>> {
        AsyncWriteRent::shutdown(self)
    }

    fn wait_readable(&mut self) -> impl Future<Output = std::io::Result<()>> {
        self.readable(false)
    }
}

impl ConnIo for TlsConn {
    fn read_append(
        &mut self,
        buf: Vec<u8>,
        cancel: Option<CancelHandle>,
    ) -> impl Future<Output = BufResult<usize, Vec<u8>>> {
        TlsConn::read_append(self, buf, cancel)
    }

    fn send_all(&mut self, buf: Vec<u8>) -> impl Future<Output = BufResult<usize, Vec<u8>>> {
        TlsConn::send_all(self, buf)
    }

    fn close(&mut self) -> impl Future<Output = std::io::Result<()>> {
        TlsConn::close(self)
    }

    fn wait_readable(&mut self) -> impl Future<Output = std::io::Result<()>> {
        TlsConn::wait_readable(self)
    }

    fn release_buffers(&mut self) {
        TlsConn::release_buffers(self)
    }
}

/// Buffers of one connection, reused across its requests.
pub(crate) struct Bufs {
    /// Bytes read from the client; `buf[start..]` is not consumed yet.
    pub buf: Vec<u8>,
    pub start: usize,
    /// Bytes waiting to be written to the client.
    pub out: Vec<u8>,
    /// Scratch for upstream responses.
    pub up: Vec<u8>,
    /// A write to the client that makes no progress for this long ends the connection (a
    /// client that stops reading, e.g. while pipelining, cannot hold its answers in memory).
    pub write_timeout: Duration,
    /// Cancels the read that watches an idle keep-alive connection; kept across requests (a
    /// canceller is spent only when it fires, after a second of idleness).
    pub(crate) watch: Option<monoio::io::Canceller>,
}

impl Bufs {
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Reads more client bytes after the pending ones. `Ok(0)` is end of stream.
    pub(crate) async fn read_more<S: ConnIo>(
        &mut self,
        io: &mut S,
        cancel: Option<CancelHandle>,
    ) -> std::io::Result<usize> {
        // A connection starts with a small buffer (most heads fit) and grows it to a full
        // chunk only for larger heads and bodies; an idle one shrinks back (`wait_while_idle`).
        let low = (READ_CHUNK / 2).min(self.buf.capacity() / 2).max(1);
        if self.start > 0 && self.buf.capacity() - self.buf.len() < low {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(FIRST_READ);
        } else if self.buf.capacity() - self.buf.len() < low {
            self.buf.reserve(READ_CHUNK);
        }
        let buf = std::mem::take(&mut self.buf);
        let (res, buf) = io.read_append(buf, cancel).await;
        self.buf = buf;
        res
    }

    pub(crate) async fn flush<S: ConnIo>(&mut self, io: &mut S) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        match monoio::time::timeout(self.write_timeout, io.send_all(out)).await {
            Ok((res, mut out)) => {
                out.clear();
                self.out = out;
                res.map(|_| ())
            }
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client does not read its answers",
            )),
        }
    }
}

pub(crate) async fn read_or_fail<S: ConnIo>(
    io: &mut S,
    bufs: &mut Bufs,
    pace: &mut BodyPace,
) -> Result<(), Option<H1Error>> {
    let Some(wait) = pace.next_wait(Instant::now()) else {
        return Err(Some(H1Error::BodyTooSlow));
    };
    match monoio::time::timeout(wait, bufs.read_more(io, None)).await {
        Ok(Ok(n)) if n > 0 => {
            pace.got += n as u64;
            Ok(())
        }
        Ok(_) => Err(None),
        // The rate rule, not the idle timeout, ran out: the client is told.
        Err(_) if pace.next_wait(Instant::now()).is_none() => Err(Some(H1Error::BodyTooSlow)),
        Err(_) => Err(None),
    }
}

/// How a request body must keep arriving: each read within the idle timeout, and — once the
/// head timeout has passed since the body began — at an average of at least `min_rate` bytes/s
/// (a client trickling a byte every few seconds is answered 408 instead of holding a
/// connection, a buffer and maybe an upstream connection for as long as it likes).
pub struct BodyPace {
    pub(crate) start: Instant,
    pub(crate) got: u64,
    pub(crate) grace: Duration,
    pub(crate) min_rate: u64,
    pub(crate) per_read: Duration,
}

impl BodyPace {
    /// `grace`: how long the body may take before the rate rule applies; `min_rate`: bytes/s
    /// on average after that (0: no minimum); `per_read`: the bound on each read.
    pub fn new(grace: Duration, min_rate: u64, per_read: Duration) -> BodyPace {
        BodyPace {
            start: Instant::now(),
            got: 0,
            grace,
            min_rate,
            per_read,
        }
    }

    /// How long the next read may take at `now`; `None` when the body is already too slow.
    pub(crate) fn next_wait(&self, now: Instant) -> Option<Duration> {
        if self.min_rate == 0 {
            return Some(self.per_read);
        }
        // `got` bytes buy `got / min_rate` seconds beyond the grace period.
        let allowed = self.grace + Duration::from_secs_f64(self.got as f64 / self.min_rate as f64);
        let left = allowed.checked_sub(now.saturating_duration_since(self.start))?;
        if left.is_zero() {
            return None;
        }
        Some(left.min(self.per_read))
    }
}

#[cfg(test)]
mod tests {
    use super::BodyPace;
    use std::time::{Duration, Instant};

    #[test]
    fn body_pace_allows_the_grace_then_the_minimum_rate() {
        let t0 = Instant::now();
        let s = |n: u64| Duration::from_secs(n);
        let mut p = BodyPace {
            start: t0,
            got: 0,
            grace: s(10),
            min_rate: 1024,
            per_read: s(600),
        };
        // Nothing yet: the whole grace period.
        assert_eq!(p.next_wait(t0), Some(s(10)));
        assert_eq!(p.next_wait(t0 + s(10)), None);
        // 10 KiB bought 10 s more.
        p.got = 10 * 1024;
        assert_eq!(p.next_wait(t0 + s(15)), Some(s(5)));
        assert_eq!(p.next_wait(t0 + s(20)), None);
        // A fast body is bounded only by the per-read (idle) timeout.
        p.got = 16 << 20;
        assert_eq!(p.next_wait(t0 + s(1)), Some(s(600)));
        // No minimum: the per-read timeout only.
        p.min_rate = 0;
        p.got = 0;
        assert_eq!(p.next_wait(t0 + s(3600)), Some(s(600)));
    }
}
