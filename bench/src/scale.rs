//! `pedigree-bench scale`: a log of millions of entries built through the engine, and
//! what its size costs: proof latency, start-up, bytes on disk and append rate, each
//! beside the same figure for a log of about ten thousand entries.
//!
//! The entries are synthetic ([`synth::Synthetic`]): real-shaped envelopes whose
//! signatures are random bytes and are never checked, with the leaf record
//! `entry::admit` would build. This measures storage, not verification.

use crate::procs::{self, Bins, ServerProc};
use crate::report::{self, dur, rate, ratio, thousands, Table};
use crate::synth::{self, Synthetic};
use anyhow::Result;
use pedigree_core::entry::Admitted;
use pedigree_server::engine::LogEngine;
use pedigree_server::storage::RocksStore;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Options of the scale scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Sizes to measure at, growing one log through each (e.g. 1000000,2000000)
    #[arg(long, value_delimiter = ',', default_values_t = [10_000_000])]
    pub entries: Vec<u64>,
    /// Size of the small log every figure is compared with
    #[arg(long, default_value_t = 10_240)]
    pub small: u64,
    /// Entries per engine batch while building (one fsync and checkpoint each)
    #[arg(long, default_value_t = 16_384)]
    pub build_batch: usize,
    /// Proofs of each kind timed per size
    #[arg(long, default_value_t = 2_000)]
    pub proofs: usize,
    /// Build the large log in this directory and keep it (reused if it holds a log)
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Batches of 1024 appended to measure the append rate.
const APPEND_BATCHES: u64 = 10;
const BATCH: u64 = 1024;

/// What was measured on one log.
struct Measured {
    size: u64,
    open: Duration,
    server_start: Duration,
    /// Proofs with every hash read from RocksDB (hash cache off): p50, p99.
    inclusion: (Duration, Duration),
    consistency: (Duration, Duration),
    /// Inclusion proofs over HTTP from the real server, its hash cache loaded: p50, p99.
    http_inclusion: (Duration, Duration),
    /// Proofs with the engine's hash cache loaded: p50, p99.
    inclusion_cached: (Duration, Duration),
    consistency_cached: (Duration, Duration),
    /// Time to load the hash cache after opening, and the bytes it holds.
    cache_load: Duration,
    cache_bytes: u64,
    bytes_per_entry: f64,
    append_rate: f64,
}

/// Runs the scenario and prints its table.
///
/// # Errors
///
/// When a store, the server or a build fails.
pub fn run(bins: &Bins, args: &ScaleArgs) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("pedigree-bench-scale")
        .tempdir()?;
    let gen = Synthetic::new(&synth::seeded_key(21));
    let envelope_bytes = (0..1000)
        .map(|n| gen.entry(5, n).envelope_json.len())
        .sum::<usize>() as f64
        / 1000.0;

    report::progress(&format!("scale: small log of {} entries", args.small));
    let small_dir = scratch.path().join("small");
    let small = {
        let engine = synth::open_data_dir(&small_dir)?;
        // The empty log's append rate: its first batches of 1024, timed.
        let entries: Vec<Admitted> = (0..args.small).map(|n| gen.entry(6, n)).collect();
        let t = Instant::now();
        for b in entries.chunks(BATCH as usize) {
            engine.append_batch(b)?;
        }
        args.small as f64 / t.elapsed().as_secs_f64()
    };
    let small = measure(bins, &small_dir, args, None, small)?;

    let big_dir = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().join("big"));
    let mut sizes = args.entries.clone();
    sizes.sort_unstable();
    let mut results = Vec::new();
    for &target in &sizes {
        let built = {
            let engine = synth::open_data_dir(&big_dir)?;
            build(&engine, &gen, target, args.build_batch)?
        };
        let m = measure(bins, &big_dir, args, Some(&gen), 0.0)?;
        results.push((m, built));
    }

    let mut headers = vec![
        "figure".to_string(),
        format!("at {}", thousands(small.size)),
    ];
    for (m, _) in &results {
        headers.push(format!("at {}", thousands(m.size)));
        headers.push("ratio".into());
    }
    headers.push("target".into());
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new("scale: a large log beside a small one, same run", &headers);
    let row = |label: &str, f: &dyn Fn(&Measured) -> (String, f64), target: &str| {
        let (s, v) = f(&small);
        let mut cells = vec![label.to_string(), s];
        for (m, _) in &results {
            let (s2, v2) = f(m);
            cells.push(s2);
            cells.push(ratio(v2, v));
        }
        cells.push(target.to_string());
        cells
    };
    let secs = |d: Duration| (dur(d), d.as_secs_f64());
    t.row(row(
        "inclusion proof p50 (engine, random leaf, hash cache loaded)",
        &|m| secs(m.inclusion_cached.0),
        "ratio <= 1.5x",
    ));
    t.row(row(
        "inclusion proof p99 (hash cache loaded)",
        &|m| secs(m.inclusion_cached.1),
        "",
    ));
    t.row(row(
        "consistency proof p50 (random old size, hash cache loaded)",
        &|m| secs(m.consistency_cached.0),
        "ratio <= 1.5x",
    ));
    t.row(row(
        "consistency proof p99 (hash cache loaded)",
        &|m| secs(m.consistency_cached.1),
        "",
    ));
    t.row(row(
        "inclusion proof over HTTP p50 (GET /api/v1/proof/inclusion, new connection each)",
        &|m| secs(m.http_inclusion.0),
        "ratio <= 1.5x",
    ));
    t.row(row(
        "inclusion proof over HTTP p99",
        &|m| secs(m.http_inclusion.1),
        "",
    ));
    t.row(row(
        "inclusion proof p50, hash cache off (every hash from RocksDB)",
        &|m| secs(m.inclusion.0),
        "",
    ));
    t.row(row(
        "inclusion proof p99, hash cache off",
        &|m| secs(m.inclusion.1),
        "",
    ));
    t.row(row(
        "consistency proof p50, hash cache off",
        &|m| secs(m.consistency.0),
        "",
    ));
    t.row(row(
        "consistency proof p99, hash cache off",
        &|m| secs(m.consistency.1),
        "",
    ));
    t.row(row(
        "hash cache: time to load after open (background in the server)",
        &|m| secs(m.cache_load),
        "",
    ));
    t.row(row(
        "hash cache: memory held",
        &|m| {
            let mib = m.cache_bytes as f64 / f64::from(1 << 20);
            (format!("{mib:.1} MiB"), mib)
        },
        "",
    ));
    t.row(row(
        "LogEngine::open (RocksDB open + O(log n) check)",
        &|m| secs(m.open),
        "",
    ));
    t.row(row(
        "server start: spawn to first healthy /healthz",
        &|m| secs(m.server_start),
        "< 1 s",
    ));
    t.row(row(
        "bytes on disk per entry",
        &|m| (format!("{:.0} B", m.bytes_per_entry), m.bytes_per_entry),
        &format!(
            "<= {:.0} B (1.3 x {envelope_bytes:.0} B envelope + 200)",
            1.3 * envelope_bytes + 200.0
        ),
    ));
    t.row(row(
        "append rate, batches of 1024, fsync on (small: empty log)",
        &|m| (rate(m.append_rate), m.append_rate),
        "",
    ));
    for (m, built) in &results {
        if built.0 > 0 {
            t.note(format!(
                "Grew the log to {} (+{} entries) in {}: {} through append_batch in batches of {}, each fsynced with a signed checkpoint.",
                thousands(m.size),
                thousands(built.0),
                dur(built.1),
                rate(built.0 as f64 / built.1.as_secs_f64()),
                args.build_batch
            ));
        }
    }
    t.note(format!(
        "Entries are synthetic: envelopes of the same shape and size as the appends scenario's ({envelope_bytes:.0} B of canonical JSON), signatures random and never checked. Proofs are timed in process on a freshly opened store, {} of each kind, first with the hash cache off (every stored hash read from RocksDB, its block cache cold), then again after loading the hash cache; start-up is the median of 3 spawns of the real binary. Load average after: {}.",
        args.proofs,
        report::load_average()
    ));
    t.print();
    Ok(())
}

/// Grows the log to `target` entries; returns (entries added, time).
fn build(
    engine: &LogEngine<RocksStore>,
    gen: &Synthetic,
    target: u64,
    batch: usize,
) -> Result<(u64, Duration)> {
    let start = engine.checkpoint().tree_size;
    if start >= target {
        return Ok((0, Duration::ZERO));
    }
    report::progress(&format!("scale: building from {start} to {target} entries"));
    let t = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Vec<Admitted>>(2);
    std::thread::scope(|s| -> Result<()> {
        s.spawn(move || {
            let mut n = start;
            while n < target {
                let end = (n + batch as u64).min(target);
                if tx
                    .send((n..end).map(|i| gen.entry(5, i)).collect())
                    .is_err()
                {
                    return;
                }
                n = end;
            }
        });
        let mut last = Instant::now();
        for entries in rx {
            engine.append_batch(&entries)?;
            if last.elapsed() > Duration::from_secs(30) {
                let size = engine.checkpoint().tree_size;
                report::progress(&format!(
                    "scale: {size} entries, {} overall",
                    rate((size - start) as f64 / t.elapsed().as_secs_f64())
                ));
                last = Instant::now();
            }
        }
        Ok(())
    })?;
    Ok((target - start, t.elapsed()))
}

fn open_engine(dir: &Path) -> Result<(LogEngine<RocksStore>, Duration)> {
    let t = Instant::now();
    let engine = synth::open_data_dir(dir)?;
    Ok((engine, t.elapsed()))
}

/// p50 and p99 of `count` inclusion proofs of random leaves and `count` consistency
/// proofs from random old sizes, against the engine's current size.
#[allow(clippy::type_complexity)]
fn time_proofs(
    engine: &LogEngine<RocksStore>,
    count: usize,
) -> Result<((Duration, Duration), (Duration, Duration))> {
    let size = engine.checkpoint().tree_size;
    let mut x = size ^ 0x5eed;
    let mut next = move |below: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % below
    };
    let mut inc = Vec::with_capacity(count);
    let mut con = Vec::with_capacity(count);
    for _ in 0..count {
        let i = next(size);
        let t = Instant::now();
        std::hint::black_box(engine.inclusion_proof(i, size)?);
        inc.push(t.elapsed());
        let old = 1 + next(size - 1);
        let t = Instant::now();
        std::hint::black_box(engine.consistency_proof(old, size)?);
        con.push(t.elapsed());
    }
    inc.sort();
    con.sort();
    let q = |v: &[Duration]| (report::quantile(v, 0.5), report::quantile(v, 0.99));
    Ok((q(&inc), q(&con)))
}

/// p50 and p99 of `count` inclusion proofs of random leaves asked of a real server one
/// at a time, once its hash cache holds every stored hash (`/metrics`).
fn http_proofs(server: &ServerProc, size: u64, count: usize) -> Result<(Duration, Duration)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let want = pedigree_core::merkle::stored_hash_count(size);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let metrics = agent
            .get(&format!("{}/metrics", server.url))
            .call()?
            .into_string()?;
        let held = metrics
            .lines()
            .find_map(|l| l.strip_prefix("pedigree_hash_cache_hashes "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("/metrics has no pedigree_hash_cache_hashes"))?;
        if held >= want {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "hash cache not loaded after 600 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut x = size ^ 0xbeef;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let url = format!(
            "{}/api/v1/proof/inclusion?index={}&tree_size={size}",
            server.url,
            x % size
        );
        let t = Instant::now();
        let body = agent.get(&url).call()?.into_string()?;
        times.push(t.elapsed());
        std::hint::black_box(body);
    }
    times.sort();
    Ok((
        report::quantile(&times, 0.5),
        report::quantile(&times, 0.99),
    ))
}

/// Measures a log; then appends 10 batches of 1024 to time appends (unless
/// `append_rate` is already known, for the small log).
fn measure(
    bins: &Bins,
    dir: &Path,
    args: &ScaleArgs,
    gen: Option<&Synthetic>,
    append_rate: f64,
) -> Result<Measured> {
    // A first open replays and flushes any write-ahead log, so the timed opens and the
    // size on disk see a settled store.
    drop(open_engine(dir)?);
    let mut opens = Vec::new();
    for _ in 0..3 {
        opens.push(open_engine(dir)?.1);
    }
    let (engine, _) = open_engine(dir)?;
    let engine = engine.with_hash_cache_bytes(0);
    let size = engine.checkpoint().tree_size;
    let bytes_per_entry = procs::dir_bytes(&dir.join("db")) as f64 / size as f64;
    report::progress(&format!("scale: proofs at {size}, hash cache off"));
    let (inclusion, consistency) = time_proofs(&engine, args.proofs)?;
    drop(engine);

    report::progress(&format!("scale: loading the hash cache at {size}"));
    let (engine, _) = open_engine(dir)?;
    let t = Instant::now();
    while !engine.load_hash_cache()? {}
    let cache_load = t.elapsed();
    let cache_bytes = engine.hash_cache_len() * 32;
    report::progress(&format!("scale: proofs at {size}, hash cache loaded"));
    let (inclusion_cached, consistency_cached) = time_proofs(&engine, args.proofs)?;
    drop(engine);

    let mut starts = Vec::new();
    for _ in 0..3 {
        let server = ServerProc::start(bins, dir, &[])?;
        starts.push(server.startup);
        server.stop();
    }
    report::progress(&format!("scale: proofs over HTTP at {size}"));
    let server = ServerProc::start(bins, dir, &[])?;
    let http_inclusion = http_proofs(&server, size, args.proofs);
    server.stop();
    let http_inclusion = http_inclusion?;

    let append_rate = match gen {
        None => append_rate,
        Some(gen) => {
            let (engine, _) = open_engine(dir)?;
            let from = engine.checkpoint().tree_size;
            let entries: Vec<Admitted> = (from..from + APPEND_BATCHES * BATCH)
                .map(|n| gen.entry(5, n))
                .collect();
            let t = Instant::now();
            for b in entries.chunks(BATCH as usize) {
                engine.append_batch(b)?;
            }
            entries.len() as f64 / t.elapsed().as_secs_f64()
        }
    };
    Ok(Measured {
        size,
        open: report::median(&mut opens),
        server_start: report::median(&mut starts),
        inclusion,
        consistency,
        http_inclusion,
        inclusion_cached,
        consistency_cached,
        cache_load,
        cache_bytes,
        bytes_per_entry,
        append_rate,
    })
}
