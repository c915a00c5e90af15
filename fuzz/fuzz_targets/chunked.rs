//! Chunked decoding: one piece vs split pieces must agree; see `portcullis::fuzzing::chunked`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::chunked(data));
