//! `pedigree-bench hashing`: `pedigree hash`, `sign` and `verify` on a 1 GiB model,
//! beside the in-process SHA-256 and BLAKE3 limits over the same bytes, `openssl dgst`,
//! `sha256sum`, and the reference OpenSSF `model_signing` tool, all in the same run.

use crate::procs::{self, Bins};
use crate::report::{self, dur, gbps, ratio, Table};
use anyhow::{bail, Result};
use sha2::Digest as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Options of the hashing scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct HashingArgs {
    /// Model size in MiB (four files of a quarter each; the single-file model is the same size)
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// Runs of each command; the median is reported
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Shard size for the sharded runs, bytes
    #[arg(long, default_value_t = 256 << 20)]
    pub shard_size: u64,
    /// The reference OpenSSF model_signing tool
    #[arg(long, env = "PEDIGREE_MODEL_SIGNING", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv-oms/bin/model_signing"))]
    pub model_signing: PathBuf,
    /// ECDSA P-256 key both tools sign with (its `.pub` is read as `ec-p256.pub` beside it)
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/oms/reference-1.1.1/ec-p256.key.TESTONLY"))]
    pub key: PathBuf,
}

/// Runs the scenario and prints its table.
///
/// # Errors
///
/// When the model cannot be written or a command fails.
pub fn run(bins: &Bins, args: &HashingArgs) -> Result<()> {
    let public = args.key.with_file_name("ec-p256.pub");
    if !args.key.exists() || !public.exists() {
        bail!("signing key {} or its .pub is missing", args.key.display());
    }
    let have_ms = args.model_signing.exists();
    // Under /tmp, deleted when this returns.
    let dir = tempfile::Builder::new()
        .prefix("pedigree-bench-model")
        .tempdir_in("/tmp")?;
    let total = args.size_mib << 20;
    let model = dir.path().join("model4");
    let single = dir.path().join("single.bin");
    report::progress(&format!(
        "hashing: writing {} MiB x 2 under {}",
        args.size_mib,
        dir.path().display()
    ));
    std::fs::create_dir(&model)?;
    let files: Vec<PathBuf> = (0..4)
        .map(|i| model.join(format!("weights-{i}.bin")))
        .collect();
    for (i, f) in files.iter().enumerate() {
        write_random(f, total / 4, i as u64)?;
    }
    write_random(&single, total, 9)?;
    // Warm the page cache: every run below reads from memory, not the disk.
    let buffers: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    drop(std::fs::read(&single)?);

    let runs = args.runs;
    report::progress("hashing: in-process limits");
    let sha_limit = median_of(runs, || {
        per_core(&buffers, |b| {
            std::hint::black_box(sha2::Sha256::digest(b));
        })
    });
    let sha_one = median_of(runs, || {
        for b in &buffers {
            std::hint::black_box(sha2::Sha256::digest(b));
        }
    });
    // The same, reading the files through a 1 MiB buffer as the CLI does: what the
    // copy out of the page cache adds to the limit.
    let sha_read = median_of(runs, || {
        per_core(&files, |f| {
            let mut file = std::fs::File::open(f).expect("model file");
            let mut hasher = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut file, &mut buf).expect("read model file");
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            std::hint::black_box(hasher.finalize());
        })
    });
    let blake_limit = median_of(runs, || {
        per_core(&buffers, |b| {
            std::hint::black_box(blake3::Hasher::new().update(b).finalize());
        })
    });
    drop(buffers);

    let cli = |a: &[&str]| {
        let mut c = Command::new(&bins.cli);
        c.args(a);
        c
    };
    let m = model.to_str().unwrap_or_default().to_string();
    let s = single.to_str().unwrap_or_default().to_string();
    let key = args.key.to_str().unwrap_or_default().to_string();
    let pubkey = public.to_str().unwrap_or_default().to_string();
    let psig = dir.path().join("pedigree.sig").display().to_string();
    let pssig = dir.path().join("pedigree-shards.sig").display().to_string();
    let msig = dir.path().join("model_signing.sig").display().to_string();
    let shard = args.shard_size.to_string();
    let file_args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();

    let mut rows: Vec<(String, Duration, Option<Duration>)> = vec![
        (
            "sha2 crate in process, one thread per core (the SHA-256 limit)".into(),
            sha_limit,
            None,
        ),
        ("sha2 crate in process, one thread".into(), sha_one, None),
        (
            "sha2 crate in process reading the files (1 MiB reads), one thread per core".into(),
            sha_read,
            Some(sha_limit),
        ),
    ];
    let mut measure = |label: &str,
                       cmd: &mut dyn FnMut() -> Command,
                       limit: Option<Duration>|
     -> Result<Duration> {
        report::progress(&format!("hashing: {label}"));
        procs::timed(&mut cmd())?; // warm-up run, not counted
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(procs::timed(&mut cmd())?);
        }
        let d = report::median(&mut times);
        rows.push((label.to_string(), d, limit));
        Ok(d)
    };
    measure(
        "openssl dgst -sha256 (4 files)",
        &mut || {
            let mut c = Command::new("openssl");
            c.args(["dgst", "-sha256"]).args(&file_args);
            c
        },
        Some(sha_limit),
    )?;
    measure(
        "sha256sum (4 files)",
        &mut || {
            let mut c = Command::new("sha256sum");
            c.args(&file_args);
            c
        },
        Some(sha_limit),
    )?;
    let hash = measure(
        "pedigree hash (4 files, sha256)",
        &mut || cli(&["hash", &m]),
        Some(sha_limit),
    )?;
    let hash_shards = measure(
        "pedigree hash (1 file in shards, sha256)",
        &mut || cli(&["hash", &s, "--shard-size", &shard]),
        Some(sha_limit),
    )?;
    let hash_b3 = measure(
        "pedigree hash --hash blake3 (4 files)",
        &mut || cli(&["hash", &m, "--hash", "blake3"]),
        Some(blake_limit),
    )?;
    let sign = measure(
        "pedigree sign (4 files, sha256, P-256 key)",
        &mut || cli(&["sign", &m, "--key", &key, "--signature", &psig]),
        Some(sha_limit),
    )?;
    measure(
        "pedigree sign (1 file in shards, sha256, P-256 key)",
        &mut || {
            cli(&[
                "sign",
                &s,
                "--key",
                &key,
                "--signature",
                &pssig,
                "--shard-size",
                &shard,
            ])
        },
        Some(sha_limit),
    )?;
    let verify = measure(
        "pedigree verify (4 files)",
        &mut || cli(&["verify", &m, "--signature", &psig, "--key", &pubkey]),
        Some(sha_limit),
    )?;
    let (mut ms_sign, mut ms_verify) = (None, None);
    if have_ms {
        let ms = args.model_signing.clone();
        ms_sign = Some(measure(
            "model_signing sign key (4 files, sha256)",
            &mut || {
                let mut c = Command::new(&ms);
                c.args([
                    "sign",
                    "key",
                    &m,
                    "--private_key",
                    &key,
                    "--signature",
                    &msig,
                ]);
                c
            },
            Some(sha_limit),
        )?);
        ms_verify = Some(measure(
            "model_signing verify key (4 files)",
            &mut || {
                let mut c = Command::new(&ms);
                c.args([
                    "verify",
                    "key",
                    &m,
                    "--public_key",
                    &pubkey,
                    "--signature",
                    &msig,
                ]);
                c
            },
            Some(sha_limit),
        )?);
    }

    let mut t = Table::new(
        &format!(
            "hashing a {} MiB model (warm page cache), median of {runs} runs",
            args.size_mib
        ),
        &["what", "median", "throughput", "time vs its limit"],
    );
    for (label, d, limit) in &rows {
        t.row(vec![
            label.clone(),
            dur(*d),
            gbps(total, *d),
            limit.map_or("(baseline)".into(), |l| {
                ratio(d.as_secs_f64(), l.as_secs_f64())
            }),
        ]);
    }
    t.row(vec![
        "blake3 crate in process, one thread per core (the BLAKE3 limit)".into(),
        dur(blake_limit),
        gbps(total, blake_limit),
        "(baseline for blake3)".into(),
    ]);
    let within = hash.as_secs_f64() / sha_limit.as_secs_f64();
    t.note(format!(
        "Target: pedigree hash within 1.1x of the SHA-256 limit: {:.2}x (4 files), {:.2}x (shards): {}. BLAKE3 mode: {:.2}x its limit.",
        within,
        hash_shards.as_secs_f64() / sha_limit.as_secs_f64(),
        report::verdict(within <= 1.1),
        hash_b3.as_secs_f64() / blake_limit.as_secs_f64(),
    ));
    if let (Some(mss), Some(msv)) = (ms_sign, ms_verify) {
        let speedup = mss.as_secs_f64() / sign.as_secs_f64();
        t.note(format!(
            "Target: pedigree sign at least 1.3x faster end to end than model_signing sign key: {speedup:.2}x: {}. Verify: {:.2}x faster.",
            report::verdict(speedup >= 1.3),
            msv.as_secs_f64() / verify.as_secs_f64(),
        ));
    } else {
        t.note(format!(
            "model_signing not found at {}: run scripts/setup.sh",
            args.model_signing.display()
        ));
    }
    t.note(format!(
        "Every command runs once unmeasured first. The limit hashes the four files' bytes already in memory, one thread per core. Load average after: {}.",
        report::load_average()
    ));
    t.print();
    Ok(())
}

/// Runs `f` once to warm up, then `runs` times, and returns the median.
fn median_of(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times = report::time_runs(runs, f);
    report::median(&mut times)
}

/// Runs `hash` over the items on one thread per core (items dealt round-robin), as the
/// CLI hashes one file or shard per task.
fn per_core<T: Sync>(items: &[T], hash: impl Fn(&T) + Sync) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for t in 0..threads {
            let hash = &hash;
            s.spawn(move || {
                for item in items.iter().skip(t).step_by(threads) {
                    hash(item);
                }
            });
        }
    });
}

/// Writes `len` pseudo-random bytes (xorshift, seeded) and syncs the file, so that
/// write-back does not run during the measurements.
fn write_random(path: &Path, len: u64, seed: u64) -> Result<()> {
    let mut f = std::fs::File::create(path)?;
    let mut x = 0x2545_f491_4f6c_dd1d ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    let t = Instant::now();
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    report::progress(&format!(
        "hashing: wrote {} in {}",
        path.display(),
        dur(t.elapsed())
    ));
    Ok(())
}
