//! A small thread-per-core HTTP/1.1 keep-alive server (monoio, SO_REUSEPORT, TCP_NODELAY)
//! shared by the built-in MCP backend and the JWKS server: it frames requests
//! (Content-Length or chunked bodies, pipelining) and hands each to a [`Handler`] that appends
//! a complete response to the output buffer.
//! Does not: route, time out idle connections, or limit anything — it is a test peer.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

use crate::wire::Dechunker;

/// One framed request.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    pub body: &'a [u8],
}

impl Req<'_> {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

pub trait Handler: Send + Sync + 'static {
    /// Appends one complete response (head and body) to `out`.
    fn handle(&self, req: &Req<'_>, out: &mut Vec<u8>);
}

/// Serves `h` on `addr` with `threads` runtimes (pinned round-robin to `cpus`); blocks forever.
/// `on_bound` runs once every listener is bound.
pub fn serve<H: Handler>(
    addr: SocketAddr,
    threads: usize,
    cpus: Option<Vec<usize>>,
    h: Arc<H>,
    on_bound: impl FnOnce(),
) -> Result<()> {
    let opts = ListenerOpts::default().reuse_port(true).reuse_addr(true);
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut joins = Vec::new();
    for t in 0..threads.max(1) {
        let (h, tx, cpus, opts) = (h.clone(), tx.clone(), cpus.clone(), opts);
        joins.push(std::thread::spawn(move || {
            if let Some(c) = &cpus {
                let _ = monoio::utils::bind_to_cpu_set([c[t % c.len()]]);
            }
            let rt = portcullis::build_runtime(monoio::utils::detect_uring(), 1024);
            let mut rt = match rt {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let l = match TcpListener::bind_with_config(addr, &opts) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot listen on {addr}: {e}")));
                        return;
                    }
                };
                let _ = tx.send(Ok(()));
                loop {
                    let Ok((s, _)) = l.accept().await else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    monoio::spawn(conn(s, h.clone()));
                }
            });
        }));
    }
    drop(tx);
    for _ in 0..threads.max(1) {
        rx.recv()
            .context("a server thread died")?
            .map_err(|e| anyhow!(e))?;
    }
    on_bound();
    for j in joins {
        let _ = j.join();
    }
    Err(anyhow!("the server stopped"))
}

async fn conn<H: Handler>(mut s: TcpStream, h: Arc<H>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunked_body = Vec::new();
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = s.read(SliceMut::new(buf, len, cap)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut start = 0;
        let mut close = false;
        while start < buf.len() {
            let mut headers = [httparse::EMPTY_HEADER; 48];
            let mut req = httparse::Request::new(&mut headers);
            let n = match req.parse(&buf[start..]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    out.extend_from_slice(
                        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    close = true;
                    break;
                }
            };
            let mut cl = 0usize;
            let mut chunked = false;
            for hd in req.headers.iter() {
                if hd.name.eq_ignore_ascii_case("content-length") {
                    cl = std::str::from_utf8(hd.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                } else if hd.name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = hd.value.eq_ignore_ascii_case(b"chunked");
                } else if hd.name.eq_ignore_ascii_case("connection") {
                    close |= hd.value.eq_ignore_ascii_case(b"close");
                }
            }
            let body_at = start + n;
            let (body, end): (&[u8], usize) = if chunked {
                let mut d = Dechunker::default();
                chunked_body.clear();
                match d.feed(&buf[body_at..], &mut chunked_body) {
                    Ok(used) if d.done() => (&chunked_body, body_at + used),
                    Ok(_) => break,
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            } else {
                if buf.len() - body_at < cl {
                    break;
                }
                (&buf[body_at..body_at + cl], body_at + cl)
            };
            let r = Req {
                method: req.method.unwrap_or(""),
                path: req.path.unwrap_or("/"),
                headers: req.headers,
                body,
            };
            h.handle(&r, &mut out);
            start = end;
            if close {
                break;
            }
        }
        buf.drain(..start);
        if !out.is_empty() {
            let (res, o) = s.write_all(out).await;
            out = o;
            out.clear();
            if res.is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

/// Appends a response with a Content-Length body.
pub fn respond(out: &mut Vec<u8>, status: &str, headers: &str, body: &[u8]) {
    use std::io::Write;
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}
