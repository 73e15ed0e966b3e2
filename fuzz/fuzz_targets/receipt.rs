//! Fuzzes Sigstore tlog entries, `LogReceipt::from_tlog_entry` and `verify`; the check is shared with `core/tests/mutation.rs`.

#![no_main]

#[allow(dead_code)]
#[path = "../../core/tests/support/parsers.rs"]
mod parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = parsers::receipt(data);
});
