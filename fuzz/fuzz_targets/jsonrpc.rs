//! JSON-RPC envelopes: peek, batch split, id rewrite and merge never panic and agree with each
//! other; see `portcullis::fuzzing::jsonrpc`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::jsonrpc(data));
