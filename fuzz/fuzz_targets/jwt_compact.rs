//! Compact JWS parsing, base64url and the in-place JSON scanner (checked against serde_json);
//! see `portcullis::fuzzing::jwt`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::jwt(data));
