//! Compact JWS parsing, base64url and the in-place JSON scanner (checked against serde_json);
//! see `portcullis::policy::mcp_auth::fuzz_jwt`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::policy::mcp_auth::fuzz_jwt(data));
