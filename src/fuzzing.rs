//! Entry points for the cargo-fuzz targets in `fuzz/`: each must return normally for any input.
//! Not part of the public API.

/// The request-head parser (`fuzz/fuzz_targets/h1_request.rs`).
pub fn h1_request(data: &[u8]) {
    crate::http::h1::fuzz_request(data);
}

/// The chunked decoder, including split-invariance (`fuzz/fuzz_targets/chunked.rs`).
pub fn chunked(data: &[u8]) {
    crate::http::h1::fuzz_chunked(data);
}

/// Request-path normalisation against the RFC 3986 §5.2.4 oracle, plus its invariants
/// (`fuzz/fuzz_targets/path_normalize.rs`).
pub fn path_normalize(data: &[u8]) {
    crate::http::h1::fuzz_path(data);
}

/// YAML → wire model → validation (`fuzz/fuzz_targets/config_yaml.rs`). Lowering is left out:
/// it resolves host names, and a fuzzer must not send DNS queries.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::load_str_with_env(text, &|_| None);
    }
}
