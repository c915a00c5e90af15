//! Request (and response) head parsing on arbitrary bytes; see `portcullis::fuzzing::h1_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::h1_request(data));
