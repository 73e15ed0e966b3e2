//! Fuzzes the model scanner, `scan::scan` (pickle, zip, npy, safetensors); the check is shared with `core/tests/mutation.rs`.

#![no_main]

#[allow(dead_code)]
#[path = "../../core/tests/support/parsers.rs"]
mod parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = parsers::scan(data);
});
