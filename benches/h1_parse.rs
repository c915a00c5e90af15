//! h1 codec benchmarks, each against its baseline:
//! - `parse_request` on a realistic ~1.1 KB MCP POST head vs raw `httparse::Request::parse`
//!   (same 101 header slots), so the cost of the extra checks is visible;
//! - `ChunkedDecoder` over a 16 KiB body in 1 KiB chunks vs a minimal loop over
//!   `httparse::parse_chunk_size` (which skips the CRLF, trailer and limit checks);
//! - `normalize_path` on a typical path (the borrowed fast path), on one with a `.well-known`
//!   segment (dots that are not dot-segments), and on dot-segment / escaped paths (one pass,
//!   one allocation).
//!
//! Quick run: `cargo bench --bench h1_parse -- --warm-up-time 1 --measurement-time 2`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portcullis::fuzzing::h1::{self as h1, ChunkedDecoder, MAX_HEADERS};

fn mcp_post_head() -> Vec<u8> {
    // An RS256-sized JWT: header.payload.signature, 800 bytes of base64url.
    let mut token = b"eyJhbGciOiJSUzI1NiIsImtpZCI6ImtleS0xIiwidHlwIjoiSldUIn0.".to_vec();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0usize;
    while token.len() < 800 {
        token.push(if token.len() == 460 {
            b'.'
        } else {
            alphabet[(i * 7 + 3) % 64]
        });
        i += 1;
    }
    let mut head = Vec::new();
    head.extend_from_slice(b"POST /mcp HTTP/1.1\r\n");
    head.extend_from_slice(b"Host: mcp.example.com\r\n");
    head.extend_from_slice(b"User-Agent: claude-code/1.0.83 (external, cli)\r\n");
    head.extend_from_slice(b"Accept: application/json, text/event-stream\r\n");
    head.extend_from_slice(b"Content-Type: application/json\r\n");
    head.extend_from_slice(b"Content-Length: 187\r\n");
    head.extend_from_slice(b"Authorization: Bearer ");
    head.extend_from_slice(&token);
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(b"Mcp-Session-Id: 8f14e45f-ceea-467f-a0b6-0c3d8e2f1a9b\r\n");
    head.extend_from_slice(b"MCP-Protocol-Version: 2025-06-18\r\n");
    head.extend_from_slice(b"Accept-Encoding: gzip, deflate, br\r\n");
    head.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
    head
}

fn bench_request(c: &mut Criterion) {
    let head = mcp_post_head();
    let mut g = c.benchmark_group("h1_request_head");
    g.throughput(Throughput::Bytes(head.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("httparse_baseline", head.len()),
        &head,
        |b, head| {
            b.iter(|| {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
                let mut req = httparse::Request::new(&mut slots);
                black_box(req.parse(black_box(head)).unwrap());
                black_box(req.headers.len());
            })
        },
    );
    g.bench_with_input(
        BenchmarkId::new("parse_request", head.len()),
        &head,
        |b, head| {
            b.iter(|| {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
                let (h, hs) = h1::parse_request(black_box(head), &mut slots)
                    .unwrap()
                    .unwrap();
                black_box((h.head_len, h.body, hs.len()));
            })
        },
    );
    g.finish();
}

fn chunked_body() -> Vec<u8> {
    let data: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    for piece in data.chunks(1024) {
        h1::write_chunk(&mut out, piece);
    }
    h1::write_last_chunk(&mut out);
    out
}

fn bench_chunked(c: &mut Criterion) {
    let body = chunked_body();
    let mut g = c.benchmark_group("h1_chunked_16k");
    g.throughput(Throughput::Bytes(16 * 1024));
    g.bench_function("httparse_chunk_size_baseline", |b| {
        b.iter(|| {
            let buf = black_box(&body[..]);
            let (mut pos, mut total) = (0usize, 0usize);
            loop {
                let Ok(httparse::Status::Complete((idx, size))) =
                    httparse::parse_chunk_size(&buf[pos..])
                else {
                    unreachable!()
                };
                pos += idx;
                if size == 0 {
                    break;
                }
                total += black_box(&buf[pos..pos + size as usize]).len();
                pos += size as usize + 2;
            }
            black_box(total)
        })
    });
    g.bench_function("chunked_decoder", |b| {
        b.iter(|| {
            let mut dec = ChunkedDecoder::new(1 << 20);
            let (mut input, mut total) = (black_box(&body[..]), 0usize);
            loop {
                let c = dec.decode(input).unwrap();
                total += black_box(c.data).len();
                input = &input[c.consumed..];
                if c.done {
                    break;
                }
            }
            black_box(total)
        })
    });
    g.finish();
}

fn bench_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("h1_path_normalize");
    for (name, path) in [
        ("typical", "/api/v1/mcp/tools/call"),
        ("well_known", "/.well-known/oauth-protected-resource/mcp"),
        ("dot_segments", "/echo/../api/./v1/mcp/tools/call"),
        ("encoded_dots", "/echo/%2e%2E/api/v1/%7Euser/tools%3acall"),
    ] {
        g.bench_with_input(BenchmarkId::new(name, path.len()), path, |b, path| {
            b.iter(|| black_box(h1::normalize_path(black_box(path)).unwrap().len()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_request, bench_chunked, bench_path);
criterion_main!(benches);
