//! JSON-RPC envelope peek: what ships (`portcullis::mcp::jsonrpc::peek`, serde_json over
//! borrowed `RawValue` members) against the other parsers the stack allows, on the same four
//! messages, each reading the same members (`jsonrpc`, `id`, `method`, `params.name` /
//! `params.protocolVersion`):
//! - `serde_json_struct`: serde_json into a borrowed typed struct (perf-notes §3, ≈ 0.3 µs);
//! - `simd_json_struct`: simd-json into the same struct, including the copy it needs;
//! - `simd_json_value`: simd-json's borrowed DOM plus lookups, including the copy;
//! - `serde_json_value`: serde_json `Value` plus lookups (the naive baseline).
//!
//! `replace_id` is the multiplexing rewrite (peek + splice). `modern_check` is the 2026-07-28
//! mirrored-header check a modern request pays instead of a session lookup and an id rewrite:
//! `tools_call` with the scanner it uses, `tools_call_serde` with the serde reference.
//! Run: `cargo bench --bench jsonrpc`.

use std::borrow::Cow;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use portcullis::fuzzing::jsonrpc::{peek, replace_id};
use portcullis::fuzzing::modern::{check, reference, Mirrored};
use serde::de::IgnoredAny;
use serde::Deserialize;
use simd_json::prelude::*;

const TOOLS_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Amsterdam","units":"metric","days":3},"_meta":{"progressToken":"p-42"}}}"#;
const INITIALIZE: &[u8] = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{}},"clientInfo":{"name":"mcp-inspector","version":"0.16.2"}}}"#;
const TOOLS_RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"Amsterdam: 14 C, light rain; tomorrow 16 C, cloudy; the day after 18 C and sunny with a light breeze from the south-west."}],"structuredContent":{"city":"Amsterdam","days":[{"t":14,"sky":"rain"},{"t":16,"sky":"cloudy"},{"t":18,"sky":"sunny"}]},"isError":false}}"#;

/// A `tools/list` result of 40 tools (~9 KB), where SIMD parsers should do best.
fn tools_list_result() -> Vec<u8> {
    let tool = r#"{"name":"tool_N","title":"Tool N","description":"Does the N-th thing with the given input and returns a structured summary of what happened.","inputSchema":{"type":"object","properties":{"query":{"type":"string","description":"what to look for"},"limit":{"type":"integer","minimum":1,"maximum":100}},"required":["query"]}}"#;
    let tools: Vec<String> = (0..40).map(|i| tool.replace('N', &i.to_string())).collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":"list-1","result":{{"tools":[{}]}}}}"#,
        tools.join(",")
    )
    .into_bytes()
}

#[derive(Deserialize)]
#[allow(dead_code)] // fields are read by the deserializer only
struct Wire<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    id: Option<serde_json::Value>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
    result: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Params<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

fn bench_peek(c: &mut Criterion) {
    let list = tools_list_result();
    let inputs: [(&str, &[u8]); 4] = [
        ("tools_call_req", TOOLS_CALL),
        ("initialize_req", INITIALIZE),
        ("tools_call_result", TOOLS_RESULT),
        ("tools_list_result_9k", &list),
    ];
    for (name, msg) in inputs {
        println!("{name}: {} B", msg.len());
        let mut g = c.benchmark_group(format!("peek/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("portcullis_peek", |b| {
            b.iter(|| black_box(peek(black_box(msg)).unwrap()));
        });
        g.bench_function("serde_json_struct", |b| {
            b.iter(|| black_box(serde_json::from_slice::<Wire<'_>>(black_box(msg)).unwrap()));
        });
        let mut buf = Vec::with_capacity(msg.len());
        g.bench_function("simd_json_struct", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(black_box(msg));
                let w: Wire<'_> = simd_json::serde::from_slice(&mut buf).unwrap();
                black_box(w.method.is_some());
            });
        });
        let mut buffers = simd_json::Buffers::default();
        g.bench_function("simd_json_value", |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(black_box(msg));
                let v = simd_json::to_borrowed_value_with_buffers(&mut buf, &mut buffers).unwrap();
                let m = v.get_str("method").map(str::len);
                let n = v
                    .get("params")
                    .and_then(|p| p.get_str("name"))
                    .map(str::len);
                black_box((v.get("id").is_some(), m, n));
            });
        });
        g.bench_function("serde_json_value", |b| {
            b.iter(|| {
                let v: serde_json::Value = serde_json::from_slice(black_box(msg)).unwrap();
                let m = v.get("method").and_then(|m| m.as_str()).map(str::len);
                let n = v
                    .pointer("/params/name")
                    .and_then(|m| m.as_str())
                    .map(str::len);
                black_box((v.get("id").is_some(), m, n));
            });
        });
        g.finish();
    }
}

fn bench_replace_id(c: &mut Criterion) {
    let mut g = c.benchmark_group("replace_id");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tools_call_req", |b| {
        b.iter(|| black_box(replace_id(black_box(TOOLS_CALL), "\"w1-c7-42\"").unwrap()));
    });
    g.bench_function("tools_call_result", |b| {
        b.iter(|| black_box(replace_id(black_box(TOOLS_RESULT), "42").unwrap()));
    });
    g.finish();
}

fn bench_modern_check(c: &mut Criterion) {
    // A 2026-07-28 tools/call as the Python SDK 2.3.0 sends it.
    let body = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Amsterdam","units":"metric","days":3},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"mcp","version":"0.1.0"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let h = Mirrored {
        version: b"2026-07-28",
        method: Some(b"tools/call"),
        name: Some(b"get_weather"),
    };
    let mut g = c.benchmark_group("modern_check");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tools_call", |b| {
        b.iter(|| black_box(check(black_box(h), black_box(body)).unwrap()));
    });
    // The same check on a serde parse (what it was before the scanner).
    g.bench_function("tools_call_serde", |b| {
        b.iter(|| black_box(reference::check(black_box(h), black_box(body)).unwrap()));
    });
    g.finish();
}

criterion_group!(benches, bench_peek, bench_replace_id, bench_modern_check);
criterion_main!(benches);
