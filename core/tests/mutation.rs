//! Seeded mutation testing of every parser of untrusted bytes: thousands of mutations of
//! valid inputs per parser, each refused or accepted without a panic, and what is
//! accepted keeps its property (see `support/parsers.rs`). This is the stable-toolchain,
//! deterministic counterpart of the cargo-fuzz targets in `fuzz/`, and runs in CI.
//!
//! `PEDIGREE_MUTATIONS` sets the mutations per parser (default 3000) and
//! `PEDIGREE_MUTATION_SEED` the seed; a failure prints both and the input, in hex.
//! `PEDIGREE_FUZZ_CORPUS=fuzz/corpus cargo test -p pedigree-core --test mutation -- \
//! --ignored` writes the seed inputs as the fuzzers' starting corpus.

#[allow(dead_code)]
#[path = "support/parsers.rs"]
mod parsers;

use rand::{rngs::StdRng, Rng as _, SeedableRng as _};
use std::panic::{catch_unwind, AssertUnwindSafe};

const DEFAULT_MUTATIONS: usize = 3000;
const DEFAULT_SEED: u64 = 0x5eed_f0cc;

/// Bytes that change the meaning of JSON, TOML, PEM, base64, notes and tile paths.
const INTERESTING: &[u8] = b"\x00\x01\x7f\x80\xff\"\\{}[],:0 9-+.eE\n\t=/x_pu#'";

/// Fragments worth splicing in: edge-case numbers, escapes, structure, format markers.
const TOKENS: &[&[u8]] = &[
    b"null",
    b"true",
    b"-1",
    b"0",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e999",
    b"-0.0",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"{}",
    b"[]",
    b"\"\"",
    b"sha256:",
    b"sha512:",
    b"\xe2\x80\x94 ",
    b"\n\n",
    b"-----BEGIN PUBLIC KEY-----\n",
    b"-----END PUBLIC KEY-----\n",
    b"tile/",
    b"entries/",
    b".p/",
    b"x999/",
    b"[[step]]\n",
    b"==",
    b"\xf0\x9f\x92\xa9",
    b"\xc0\x80",
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

fn range(rng: &mut StdRng, len: usize) -> (usize, usize) {
    let start = rng.gen_range(0..=len);
    let end = rng.gen_range(start..=len.min(start + 64));
    (start, end)
}

/// One to four random edits of `input`; `donors` supply spliced-in ranges.
fn mutate(rng: &mut StdRng, input: &[u8], donors: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len();
        match rng.gen_range(0..10) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
            }
            2 => {
                let i = rng.gen_range(0..=len);
                out.insert(i, rng.gen());
            }
            3 => {
                let (a, b) = range(rng, len);
                out.drain(a..b);
            }
            4 => {
                let (a, b) = range(rng, len);
                let copy = out[a..b].to_vec();
                let at = rng.gen_range(0..=len);
                out.splice(at..at, copy);
            }
            5 => out.truncate(rng.gen_range(0..=len)),
            6 => {
                let donor = &donors[rng.gen_range(0..donors.len())];
                let (a, b) = range(rng, donor.len());
                let (c, d) = range(rng, len);
                out.splice(c..d, donor[a..b].iter().copied());
            }
            7 => {
                let token = TOKENS[rng.gen_range(0..TOKENS.len())];
                let (a, b) = range(rng, len);
                let b = if rng.gen_bool(0.5) { a } else { b };
                out.splice(a..b, token.iter().copied());
            }
            8 => {
                let byte = INTERESTING[rng.gen_range(0..INTERESTING.len())];
                let at = rng.gen_range(0..=len);
                let run = rng.gen_range(1..=2048);
                out.splice(at..at, std::iter::repeat_n(byte, run));
            }
            _ if len > 1 => {
                let (i, j) = (rng.gen_range(0..len), rng.gen_range(0..len));
                out.swap(i, j);
            }
            _ => out.push(rng.gen()),
        }
    }
    out
}

#[test]
fn mutated_inputs_never_panic_a_parser_or_break_its_property() {
    let mutations = env_or("PEDIGREE_MUTATIONS", DEFAULT_MUTATIONS as u64) as usize;
    let seed = env_or("PEDIGREE_MUTATION_SEED", DEFAULT_SEED);
    // Quiet the default hook: a caught panic is reported below with its input.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    for (name, check) in parsers::CHECKS {
        let seeds = parsers::seeds(name);
        let mut rng = StdRng::seed_from_u64(seed ^ fnv(name));
        for seed_input in &seeds {
            match run(*check, seed_input) {
                Ok(true) => {}
                Ok(false) => failures.push(format!("{name}: a seed input is refused")),
                Err(msg) => failures.push(format!("{name}: a seed input fails: {msg}")),
            }
        }
        let mut accepted = 0;
        for case in 0..mutations {
            let base = &seeds[case % seeds.len()];
            let input = mutate(&mut rng, base, &seeds);
            match run(*check, &input) {
                Ok(a) => accepted += usize::from(a),
                Err(msg) => {
                    failures.push(format!(
                        "{name}: mutation {case} (seed {seed}): {msg}\n  input: {}",
                        hex::encode(&input)
                    ));
                    break;
                }
            }
        }
        println!("{name}: {mutations} mutations, {accepted} accepted");
    }
    let _ = std::panic::take_hook();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn run(check: parsers::Check, input: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| check(input))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

/// FNV-1a, to give each parser its own deterministic stream.
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Writes each parser's seed inputs to `$PEDIGREE_FUZZ_CORPUS/<parser>/seed-<n>`; a
/// relative path is taken from the repository root.
#[test]
#[ignore = "writes files; run by hand to refresh the fuzz corpus"]
fn write_fuzz_corpus() {
    let Ok(root) = std::env::var("PEDIGREE_FUZZ_CORPUS") else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(root);
    for (name, _) in parsers::CHECKS {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in parsers::seeds(name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
