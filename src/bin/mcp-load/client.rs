//! The HTTP/1.1 client connection: writes one request, reads its response head with httparse
//! and its body (Content-Length, chunked or until close). For `text/event-stream` answers the
//! response time is taken when the event carrying the expected JSON-RPC id arrives; the rest
//! of the stream is still read so the connection can be reused.
//! Does not: validate MCP semantics (see `scenario`), retry, or pipeline.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::wire::{Dechunker, SseParser};

/// Why an exchange failed before a complete response was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFail {
    Connect,
    /// Reset, EOF before a complete response, or a write error.
    Io,
    /// The response was not valid HTTP/1.1 framing.
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Sse,
    Other,
}

/// One response, reused between requests to keep the hot path allocation-free.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub kind: BodyKind,
    /// `Mcp-Session-Id`, when present.
    pub session: Option<String>,
    /// `WWW-Authenticate` (see [`Reply::www_auth`]); the buffer is reused between responses.
    www_auth: String,
    has_www_auth: bool,
    /// The JSON body, or the data of the SSE event that carried the expected id.
    pub body: Vec<u8>,
    /// For SSE: whether an event with the expected id was seen.
    pub matched: bool,
    /// When the answer was complete (the matching event for SSE).
    pub answered: Instant,
    raw: Vec<u8>,
    sse: SseParser,
}

impl Default for Reply {
    fn default() -> Self {
        Reply {
            status: 0,
            kind: BodyKind::Other,
            session: None,
            www_auth: String::with_capacity(256),
            has_www_auth: false,
            body: Vec::with_capacity(1024),
            matched: false,
            answered: Instant::now(),
            raw: Vec::with_capacity(1024),
            sse: SseParser::default(),
        }
    }
}

impl Reply {
    /// The `WWW-Authenticate` header of the last response, if it had one.
    pub fn www_auth(&self) -> Option<&str> {
        self.has_www_auth.then_some(self.www_auth.as_str())
    }

    pub fn set_www_auth(&mut self, v: &[u8]) {
        self.www_auth.clear();
        match std::str::from_utf8(v) {
            Ok(s) => self.www_auth.push_str(s),
            Err(_) => self.www_auth.push_str(&String::from_utf8_lossy(v)),
        }
        self.has_www_auth = true;
    }
}

/// A keep-alive connection to the target.
pub struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    /// The request to send; callers fill it, [`Conn::exchange`] sends it.
    pub wbuf: Vec<u8>,
    /// False once the server asked to close or the body was close-delimited.
    pub reusable: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn, IoFail> {
        let s = TcpStream::connect_addr(addr)
            .await
            .map_err(|_| IoFail::Connect)?;
        s.set_nodelay(true).map_err(|_| IoFail::Connect)?;
        Ok(Conn {
            s,
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
            wbuf: Vec::with_capacity(4 * 1024),
            reusable: true,
        })
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.buf.len() == self.buf.capacity() {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            } else {
                self.buf.reserve(self.buf.capacity());
            }
        }
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.s.read(SliceMut::new(buf, len, cap)).await;
        self.buf = slice.into_inner();
        res
    }

    /// Sends `wbuf` and reads one response into `r`. `expect_id` selects the SSE event that
    /// completes the answer; `head` is true for HEAD requests (no body).
    pub async fn exchange(
        &mut self,
        r: &mut Reply,
        expect_id: Option<u64>,
        head: bool,
    ) -> Result<(), IoFail> {
        let w = std::mem::take(&mut self.wbuf);
        let (res, mut w) = self.s.write_all(w).await;
        w.clear();
        self.wbuf = w;
        res.map_err(|_| IoFail::Io)?;
        let framing = loop {
            let Some(framing) = self.read_head(r)? else {
                if self.read_more().await.map_err(|_| IoFail::Io)? == 0 {
                    return Err(IoFail::Io);
                }
                continue;
            };
            if (100..200).contains(&r.status) {
                continue; // 100 Continue and friends: the real answer follows
            }
            break framing;
        };
        self.read_body(r, framing, expect_id, head).await
    }

    /// Parses a head from the buffer; `None` when more bytes are needed.
    fn read_head(&mut self, r: &mut Reply) -> Result<Option<Framing>, IoFail> {
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(&self.buf[self.pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(IoFail::Http),
        };
        r.status = resp.code.unwrap_or(0);
        r.kind = BodyKind::Other;
        r.session = None;
        r.has_www_auth = false;
        r.body.clear();
        r.raw.clear();
        r.sse.reset();
        r.matched = false;
        let mut framing = Framing::Close;
        let mut close = resp.version == Some(0);
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            let v = h.value;
            if name.eq_ignore_ascii_case(b"content-length") {
                let len = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or(IoFail::Http)?;
                framing = Framing::Length(len);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                if ends_with_ci(v, b"chunked") {
                    framing = Framing::Chunked;
                }
            } else if name.eq_ignore_ascii_case(b"content-type") {
                r.kind = if starts_with_ci(v, b"application/json") {
                    BodyKind::Json
                } else if starts_with_ci(v, b"text/event-stream") {
                    BodyKind::Sse
                } else {
                    BodyKind::Other
                };
            } else if name.eq_ignore_ascii_case(b"mcp-session-id") {
                r.session = Some(String::from_utf8_lossy(v).into_owned());
            } else if name.eq_ignore_ascii_case(b"www-authenticate") {
                r.set_www_auth(v);
            } else if name.eq_ignore_ascii_case(b"connection") {
                if starts_with_ci(v, b"close") {
                    close = true;
                } else if starts_with_ci(v, b"keep-alive") {
                    close = false;
                }
            }
        }
        self.pos += n;
        self.reusable = !close;
        Ok(Some(framing))
    }

    async fn read_body(
        &mut self,
        r: &mut Reply,
        framing: Framing,
        expect_id: Option<u64>,
        head: bool,
    ) -> Result<(), IoFail> {
        if head || r.status == 204 || r.status == 304 {
            r.answered = Instant::now();
            return Ok(());
        }
        let sse = r.kind == BodyKind::Sse && expect_id.is_some();
        let mut dechunk = Dechunker::default();
        let mut remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        if framing == Framing::Close {
            self.reusable = false;
        }
        loop {
            let avail = &self.buf[self.pos..];
            let done = match framing {
                Framing::Length(_) => {
                    let take = remaining.min(avail.len());
                    r.raw.extend_from_slice(&avail[..take]);
                    self.pos += take;
                    remaining -= take;
                    remaining == 0
                }
                Framing::Chunked => {
                    let n = dechunk.feed(avail, &mut r.raw).map_err(|_| IoFail::Http)?;
                    self.pos += n;
                    dechunk.done()
                }
                Framing::Close => {
                    r.raw.extend_from_slice(avail);
                    self.pos = self.buf.len();
                    false
                }
            };
            if sse && !r.matched {
                while let Some(data) = r.sse.next_event(&r.raw) {
                    if event_id(data) == expect_id {
                        r.body.extend_from_slice(data);
                        r.matched = true;
                        r.answered = Instant::now();
                        break;
                    }
                }
            }
            if done {
                break;
            }
            match self.read_more().await {
                Ok(0) if framing == Framing::Close => break,
                Ok(0) | Err(_) => return Err(IoFail::Io),
                Ok(_) => {}
            }
        }
        if !sse {
            std::mem::swap(&mut r.body, &mut r.raw);
            r.answered = Instant::now();
        } else if !r.matched {
            r.answered = Instant::now();
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// The numeric JSON-RPC `id` of a message, if it has one.
pub fn event_id(data: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    serde_json::from_slice::<IdOnly>(data)
        .ok()
        .and_then(|m| m.id)
        .and_then(|v| v.as_u64())
}

fn starts_with_ci(v: &[u8], p: &[u8]) -> bool {
    v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p)
}

fn ends_with_ci(v: &[u8], p: &[u8]) -> bool {
    let v = v.trim_ascii_end();
    v.len() >= p.len() && v[v.len() - p.len()..].eq_ignore_ascii_case(p)
}
