//! JSON-RPC envelopes: peek, batch split, id rewrite and merge never panic and agree with each
//! other; see `portcullis::mcp::fuzz_jsonrpc`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::mcp::fuzz_jsonrpc(data));
