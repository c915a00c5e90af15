//! Chunked decoding: one piece vs split pieces must agree; see `portcullis::http::h1::fuzz_chunked`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::http::h1::fuzz_chunked(data));
