//! Authorization rules: any rule text compiles or is refused with a position (never a panic),
//! and a compiled rule evaluates against any claims and item without panicking; the list filter
//! never panics on any answer. See `portcullis::fuzzing::authz_rule`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::authz_rule(data));
