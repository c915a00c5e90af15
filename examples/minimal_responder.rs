//! The baseline for `benches/direct_vs_minimal.sh` and `benches/overhead.sh`: the least an
//! HTTP/1.1 keep-alive responder on monoio can do (find the end of each head, skip a
//! Content-Length body, answer fixed bytes). No parsing beyond that, no routing, no limits: the
//! ceiling Portcullis's local-answer paths are measured against. Its runtime is built like a
//! Portcullis worker's (`portcullis::build_runtime`), so both get the same io_uring set-up.
//!
//! Usage: minimal_responder PORT [CPU] [--challenge]
//! With `--challenge` the fixed answer is a 401 with a Bearer challenge naming resource metadata
//! (what an MCP client gets without a token), so the same load scenario runs against it.
#![forbid(unsafe_code)]

use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: Mon, 30 Nov 2026 00:00:00 GMT\r\n\r\nhello";
const CHALLENGE: &[u8] = b"HTTP/1.1 401 Unauthorized\r\ndate: Mon, 30 Nov 2026 00:00:00 GMT\r\n\
www-authenticate: Bearer resource_metadata=\"http://localhost/.well-known/oauth-protected-resource/mcp\"\r\n\
content-type: application/json\r\ncontent-length: 65\r\n\r\n\
{\"error\":\"unauthorized\",\"error_description\":\"JWT token required\"}";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let challenge = args.iter().any(|a| a == "--challenge");
    let mut pos = args.iter().filter(|a| !a.starts_with("--"));
    let port: u16 = pos
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: minimal_responder PORT [CPU] [--challenge]");
    if let Some(cpu) = pos.next().and_then(|c| c.parse::<usize>().ok()) {
        let _ = monoio::utils::bind_to_cpu_set([cpu]);
    }
    let resp: &'static [u8] = if challenge { CHALLENGE } else { OK };
    let mut rt = portcullis::build_runtime(monoio::utils::detect_uring(), 1024).expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            monoio::spawn(serve(stream, resp));
        }
    });
}

/// The Content-Length of a head (0 when absent or unreadable).
fn content_length(head: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"content-length").then(|| {
                std::str::from_utf8(&value[1..])
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

async fn serve(mut s: TcpStream, resp: &'static [u8]) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    // Body bytes of the current request still to skip.
    let mut skip = 0usize;
    loop {
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = s.read(SliceMut::new(buf, len, cap)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut start = 0;
        loop {
            let n = skip.min(buf.len() - start);
            start += n;
            skip -= n;
            if skip > 0 {
                break;
            }
            let Some(end) = memchr::memmem::find(&buf[start..], b"\r\n\r\n") else {
                break;
            };
            out.extend_from_slice(resp);
            skip = content_length(&buf[start..start + end]);
            start += end + 4;
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
    }
}
