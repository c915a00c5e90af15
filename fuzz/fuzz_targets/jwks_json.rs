//! JWKS parsing: never panics, every accepted key is usable by ring; see
//! `portcullis::policy::mcp_auth::fuzz_jwks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::policy::mcp_auth::fuzz_jwks(data));
