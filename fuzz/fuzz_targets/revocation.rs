//! Fuzzes the revocation predicate, `Revocation::from_statement`; the check is shared with `core/tests/mutation.rs`.

#![no_main]

#[allow(dead_code)]
#[path = "../../core/tests/support/parsers.rs"]
mod parsers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = parsers::revocation(data);
});
