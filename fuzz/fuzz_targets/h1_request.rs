//! Request (and response) head parsing on arbitrary bytes; see `portcullis::http::h1::fuzz_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::http::h1::fuzz_request(data));
