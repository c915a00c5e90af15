//! The baseline for `benches/direct_vs_minimal.sh`: the least an HTTP/1.1 keep-alive responder
//! on monoio can do (find the end of each head, answer a fixed 200). No parsing beyond that, no
//! routing, no limits: it is the ceiling Portcullis's `directResponse` path is measured against.
//!
//! Usage: minimal_responder PORT [CPU]
#![forbid(unsafe_code)]

use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

const RESP: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: Mon, 30 Nov 2026 00:00:00 GMT\r\n\r\nhello";

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: minimal_responder PORT [CPU]");
    if let Some(cpu) = args.next().and_then(|c| c.parse::<usize>().ok()) {
        let _ = monoio::utils::bind_to_cpu_set([cpu]);
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            monoio::spawn(serve(stream));
        }
    });
}

async fn serve(mut s: TcpStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = s.read(SliceMut::new(buf, len, cap)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut start = 0;
        while let Some(end) = memchr::memmem::find(&buf[start..], b"\r\n\r\n") {
            out.extend_from_slice(RESP);
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
