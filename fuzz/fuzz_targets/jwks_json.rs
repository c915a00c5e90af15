//! JWKS parsing: never panics, every accepted key is usable by ring; see
//! `portcullis::fuzzing::jwks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::jwks(data));
