//! The config loader: YAML → wire model → validation → lowering must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis::fuzzing::config(data);
});
