//! SSE parser: never panics, split-invariant, parses back what the writer writes; see
//! `portcullis::mcp::fuzz_sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::mcp::fuzz_sse(data));
