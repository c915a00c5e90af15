//! Request-path normalisation on arbitrary bytes; see `portcullis::fuzzing::path_normalize`.
//! Checks: agreement with a literal RFC 3986 §5.2.4 transcription, output starts with `/`, no
//! `.`/`..` segment left, only uppercase escapes of reserved or non-ASCII bytes, idempotent,
//! no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzzing::path_normalize(data));
