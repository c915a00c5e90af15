//! Server-side TLS for downstream connections: rustls over a monoio `TcpStream`, with the
//! ciphertext buffers owned here rather than inside a wrapper crate.
//!
//! Owning them buys two things a keep-alive edge needs. A read can be cancelled safely (the
//! bytes a cancelled socket read got are kept here and handed to rustls), so a TLS connection
//! is watched and drained like a plain one. And an idle connection gives its buffers back
//! ([`TlsConn::release_buffers`]) and waits for socket readability with none: what stays is
//! rustls's session state and its small record buffer.

use std::io::{self, Write as _};
use std::sync::Arc;

use monoio::io::CancelableAsyncReadRent;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{ServerConfig, ServerConnection};

/// Ciphertext read from the socket at once: one full TLS record with its header and overhead.
const READ_CHUNK: usize = 16 * 1024 + 512;

pub(crate) struct TlsConn {
    io: TcpStream,
    tls: ServerConnection,
    /// Ciphertext read from the socket that rustls has not taken yet: `rbuf[rpos..]`.
    rbuf: Vec<u8>,
    rpos: usize,
    /// The socket reached its end.
    eof: bool,
    /// Ciphertext on its way out (empty between writes).
    wbuf: Vec<u8>,
}

impl TlsConn {
    /// Runs the server handshake on `io` (the caller bounds it in time).
    pub(crate) async fn accept(io: TcpStream, cfg: Arc<ServerConfig>) -> io::Result<TlsConn> {
        let tls = ServerConnection::new(cfg).map_err(io::Error::other)?;
        let mut c = TlsConn {
            io,
            tls,
            rbuf: Vec::new(),
            rpos: 0,
            eof: false,
            wbuf: Vec::new(),
        };
        while c.tls.is_handshaking() {
            c.write_pending().await?;
            if !c.tls.is_handshaking() {
                break;
            }
            if c.eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed during the TLS handshake",
                ));
            }
            c.receive(None).await?;
            c.process().await?;
        }
        // Session tickets and the like.
        c.write_pending().await?;
        Ok(c)
    }

    /// Gives back the ciphertext buffers when they hold nothing (an idle connection).
    pub(crate) fn release_buffers(&mut self) {
        if self.rpos >= self.rbuf.len() {
            self.rbuf = Vec::new();
            self.rpos = 0;
        }
        self.wbuf = Vec::new();
    }

    /// Whether a read would return without waiting for the socket.
    fn has_buffered(&mut self) -> bool {
        self.eof
            || self.rpos < self.rbuf.len()
            || self.tls.process_new_packets().map_or(true, |s| {
                s.plaintext_bytes_to_read() > 0 || s.peer_has_closed()
            })
    }

    /// Hands buffered ciphertext to rustls, reading from the socket first when none is
    /// buffered (with `cancel`, a read that ends early with an error when cancelled).
    async fn receive(&mut self, cancel: Option<CancelHandle>) -> io::Result<()> {
        if self.rpos >= self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
            if self.rbuf.capacity() == 0 {
                self.rbuf.reserve(READ_CHUNK);
            }
            let buf = std::mem::take(&mut self.rbuf);
            let (res, buf) = match cancel {
                Some(c) => self.io.cancelable_read(buf, c).await,
                None => self.io.read(buf).await,
            };
            self.rbuf = buf;
            if res? == 0 {
                self.eof = true;
                // rustls learns of the end (it then tells a clean close from a truncation).
                let _ = self.tls.read_tls(&mut &[][..]);
                return Ok(());
            }
        }
        let n = self.tls.read_tls(&mut &self.rbuf[self.rpos..])?;
        self.rpos += n;
        Ok(())
    }

    /// Lets rustls process what it received; a protocol error sends its alert and fails.
    async fn process(&mut self) -> io::Result<rustls::IoState> {
        match self.tls.process_new_packets() {
            Ok(state) => Ok(state),
            Err(e) => {
                let _ = self.write_pending().await;
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }

    /// Writes every TLS byte rustls has queued.
    async fn write_pending(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.wbuf.clear();
            self.tls.write_tls(&mut self.wbuf)?;
            let buf = std::mem::take(&mut self.wbuf);
            let (res, buf) = self.io.write_all(buf).await;
            self.wbuf = buf;
            res?;
        }
        Ok(())
    }

    /// Appends plaintext to `buf`, within its spare capacity; `Ok(0)` is the end of the
    /// stream (or no room).
    async fn read_plain(
        &mut self,
        buf: &mut Vec<u8>,
        cancel: Option<CancelHandle>,
    ) -> io::Result<usize> {
        let room = buf.capacity() - buf.len();
        if room == 0 {
            return Ok(0);
        }
        loop {
            let state = self.process().await?;
            let ready = state.plaintext_bytes_to_read().min(room);
            if ready > 0 {
                let at = buf.len();
                buf.resize(at + ready, 0);
                let n = io::Read::read(&mut self.tls.reader(), &mut buf[at..]);
                buf.truncate(at + *n.as_ref().unwrap_or(&0));
                return n;
            }
            if state.peer_has_closed() || self.eof {
                return Ok(0);
            }
            if state.tls_bytes_to_write() > 0 {
                self.write_pending().await?;
            }
            self.receive(cancel.clone()).await?;
        }
    }

    /// Appends decrypted bytes to `buf` (within its capacity); with `cancel`, ends early with an
    /// error when cancelled, keeping what was received for the next read.
    pub(crate) async fn read_append(
        &mut self,
        mut buf: Vec<u8>,
        cancel: Option<CancelHandle>,
    ) -> BufResult<usize, Vec<u8>> {
        let res = self.read_plain(&mut buf, cancel).await;
        (res, buf)
    }

    /// Encrypts all of `buf` and writes it out.
    pub(crate) async fn send_all(&mut self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        let mut off = 0;
        while off < buf.len() {
            let n = match self.tls.writer().write(&buf[off..]) {
                Ok(n) => n,
                Err(e) => return (Err(e), buf),
            };
            if n == 0 && !self.tls.wants_write() {
                return (Err(io::ErrorKind::WriteZero.into()), buf);
            }
            off += n;
            if let Err(e) = self.write_pending().await {
                return (Err(e), buf);
            }
        }
        (Ok(buf.len()), buf)
    }

    /// Sends `close_notify` and shuts the socket's write side.
    pub(crate) async fn close(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        let _ = self.write_pending().await;
        self.io.shutdown().await
    }

    /// Waits until a read would make progress: at once when plaintext, ciphertext or the end
    /// is already buffered, else when the socket is readable.
    pub(crate) async fn wait_readable(&mut self) -> io::Result<()> {
        if self.has_buffered() {
            return Ok(());
        }
        self.io.readable(false).await
    }
}
