//! `pedigree-bench appends`: durable appends through the real server at 1-256 clients,
//! beside the disk's fsync rate, the engine alone, and the same clients on `/healthz`;
//! and where an entry's time goes.

use crate::load::{self, LoadResult, Work};
use crate::procs::{self, Bins, ServerProc};
use crate::report::{self, dur, rate, ratio, Table};
use crate::synth;
use anyhow::{anyhow, Context as _, Result};
use pedigree_core::checkpoint::{LogSigner, LogVerifier};
use pedigree_core::dsse::Envelope;
use pedigree_core::entry::{self, Admitted, Limits};
use pedigree_core::keys::PublicKey;
use pedigree_core::merkle;
use pedigree_server::engine::LogEngine;
use pedigree_server::storage::{Column, RocksStore, Store, StoreError, WriteBatch};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the appends scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct AppendArgs {
    /// Seconds per load level
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Client counts to run
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64, 256])]
    pub clients: Vec<usize>,
    /// Keep-alive settings of the server to run, in milliseconds (0 = off, the default)
    #[arg(long, value_delimiter = ',', default_values_t = [0, 5000])]
    pub keep_alive_ms: Vec<u64>,
    /// Server batch waits to run, in milliseconds (5 is the server's default)
    #[arg(long, value_delimiter = ',', default_values_t = [5])]
    pub batch_wait_ms: Vec<u64>,
    /// Batches of 1024 entries for the engine-only ceiling
    #[arg(long, default_value_t = 40)]
    pub engine_batches: u64,
    /// Record a flat CPU profile of the server (perf, cpu-clock) during the 64-client
    /// run into this file
    #[arg(long)]
    pub perf: Option<std::path::PathBuf>,
}

/// The server's default batch size: the engine ceiling uses the same.
const BATCH: u64 = 1024;

/// Runs the scenario and prints its tables.
///
/// # Errors
///
/// When a server, store or load run fails.
pub fn run(bins: &Bins, args: &AppendArgs) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("pedigree-bench-appends")
        .tempdir()?;
    report::progress("appends: disk fsync rate");
    let fsync = fsync_rate(scratch.path(), Duration::from_secs(3))?;
    report::progress("appends: engine-only ceiling");
    let engine = engine_ceiling(&scratch.path().join("engine"), args.engine_batches)?;
    report::progress("appends: per-entry costs");
    let costs = costs(&scratch.path().join("costs"))?;

    let mut base = Table::new(
        "appends: baselines measured in this run",
        &["baseline", "result", "what it bounds"],
    );
    base.row(vec![
        "disk: 4 KiB write + fdatasync, one thread".into(),
        format!("{} ({} each)", rate(fsync.0), dur(fsync.1)),
        format!(
            "sequential durable batches; x {BATCH} entries per batch = {}",
            rate(fsync.0 * BATCH as f64)
        ),
    ]);
    base.row(vec![
        format!("engine alone: append_batch of {BATCH} on RocksStore (fsync on)"),
        format!(
            "{} ({} per batch)",
            rate(engine.rate),
            dur(engine.per_batch)
        ),
        "the log's write path without HTTP, JSON or signature checks".into(),
    ]);
    base.print();

    let mut t = Table::new(
        "appends: where an entry's time goes (one thread, in process)",
        &["stage", "cost", "per entry", "entries/s one core could do"],
    );
    for (stage, cost, per_entry) in &costs {
        t.row(vec![
            stage.clone(),
            cost.clone(),
            dur(*per_entry),
            rate(1.0 / per_entry.as_secs_f64()),
        ]);
    }
    let cpu: Duration = costs.iter().map(|c| c.2).sum();
    t.note(format!(
        "Sum per entry: {} of CPU, so {} on 2 cores before HTTP, TCP and the load generator take their share.",
        dur(cpu),
        rate(2.0 / cpu.as_secs_f64())
    ));
    t.print();

    let key = synth::seeded_key(7);
    let mut tag = 1_000;
    let modes = args
        .batch_wait_ms
        .iter()
        .flat_map(|&w| args.keep_alive_ms.iter().map(move |&ka| (w, ka)));
    for (wait, ka) in modes {
        let data = scratch.path().join(format!("http-ka{ka}-wait{wait}"));
        let (ka_flag, wait_flag) = (ka.to_string(), wait.to_string());
        let server = ServerProc::start(
            bins,
            &data,
            &["--keep-alive-ms", &ka_flag, "--batch-wait-ms", &wait_flag],
        )?;
        let verifier = LogVerifier::from_vkey(&server.vkey)?;
        let mut mode = if ka == 0 {
            "keep-alive off (default)".to_string()
        } else {
            format!("keep-alive on (--keep-alive-ms {ka})")
        };
        if wait != 5 {
            mode.push_str(&format!(", --batch-wait-ms {wait}"));
        }
        let mut t = Table::new(
            &format!(
                "appends over HTTP, {mode}: durable entries/s and latency to an answer with proof"
            ),
            &[
                "clients",
                "entries/s",
                "p50",
                "p95",
                "p99",
                "errors",
                "server CPU / entry",
                "client CPU / entry",
                "GET /healthz/s (same clients)",
                "appends / healthz",
                "appends / engine alone",
            ],
        );
        let mut verified = 0;
        for &c in &args.clients {
            let secs = Duration::from_secs(args.seconds);
            report::progress(&format!("appends: {mode}, {c} clients, /healthz"));
            let health = load::run(
                c,
                secs,
                &Work::Get {
                    urls: Arc::new(vec![format!("{}/healthz", server.url)]),
                },
                200,
            );
            // Enough distinct envelopes for the run, signed before the clock starts.
            let per_s = if c == 1 { 400 } else { 16_000 };
            let count = per_s * args.seconds;
            tag += 1;
            report::progress(&format!("appends: signing {count} envelopes"));
            let bodies = Arc::new(synth::submissions(&key, tag, count));
            report::progress(&format!("appends: {mode}, {c} clients, POST"));
            let profiler = match (&args.perf, c) {
                (Some(path), 64) => Some(Profiler::start(server.pid(), path, ka, wait)?),
                _ => None,
            };
            let (server_cpu0, client_cpu0) = (
                procs::cpu_time(server.pid()),
                procs::cpu_time(std::process::id()),
            );
            let res = load::run(
                c,
                secs,
                &Work::Post {
                    url: format!("{}/api/v1/entries", server.url),
                    bodies,
                },
                201,
            );
            // User + system CPU per entry, and the system share.
            let per_entry = |(u1, s1): (Duration, Duration), (u0, s0): (Duration, Duration)| {
                let (user, sys) = (u1.saturating_sub(u0), s1.saturating_sub(s0));
                let n = res.ok.max(1) as u32;
                format!(
                    "{} ({:.0}% sys)",
                    dur((user + sys) / n),
                    100.0 * sys.as_secs_f64() / (user + sys).as_secs_f64().max(1e-9)
                )
            };
            let server_cpu = per_entry(procs::cpu_time(server.pid()), server_cpu0);
            let client_cpu = per_entry(procs::cpu_time(std::process::id()), client_cpu0);
            if let Some(p) = profiler {
                p.finish()?;
            }
            verified += check_answers(&res, &verifier)?;
            t.row(vec![
                c.to_string(),
                rate(res.rate()),
                dur(res.latency(0.5)),
                dur(res.latency(0.95)),
                dur(res.latency(0.99)),
                res.errors(201),
                server_cpu,
                client_cpu,
                rate(health.rate()),
                ratio(res.rate(), health.rate()),
                ratio(res.rate(), engine.rate),
            ]);
        }
        t.note(format!(
            "Each client is one thread with a blocking ureq agent, sending its next pre-signed envelope as soon as the last answer (with its inclusion proof) is read; {verified} sampled answers had their inclusion proof and checkpoint signature verified after the clock stopped. Load generator and server share the same 2 vCPUs. Load average after: {}.",
            report::load_average()
        ));
        t.print();
        server.stop();
    }
    Ok(())
}

/// Verifies sampled answers: the proof leads from the leaf hash to the checkpoint's root,
/// and the checkpoint is signed by the log.
fn check_answers(res: &LoadResult, verifier: &LogVerifier) -> Result<usize> {
    for body in &res.samples {
        let v: serde_json::Value = serde_json::from_slice(body)?;
        let cp = verifier
            .verify(v["checkpoint"].as_str().unwrap_or_default().as_bytes())
            .map_err(|e| anyhow!("answer's checkpoint does not verify: {e}"))?;
        let hex32 = |x: &serde_json::Value| hex::decode(x.as_str().unwrap_or_default());
        let proof: Vec<Vec<u8>> = v["inclusion_proof"]["hashes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(hex32)
            .collect::<Result<_, _>>()?;
        merkle::verify_inclusion(
            v["log_index"].as_u64().unwrap_or(u64::MAX),
            cp.tree_size,
            &hex32(&v["leaf_hash"])?,
            &proof,
            &cp.root_hash.0,
        )
        .context("answer's inclusion proof does not verify")?;
    }
    Ok(res.samples.len())
}

/// Durable 4 KiB appends per second to a file in `dir`, and the median time of one.
fn fsync_rate(dir: &Path, duration: Duration) -> Result<(f64, Duration)> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0x5au8; 4096];
    let mut times = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < duration {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        times.push(t.elapsed());
    }
    let elapsed = t0.elapsed();
    std::fs::remove_file(&path)?;
    let n = times.len();
    Ok((n as f64 / elapsed.as_secs_f64(), report::median(&mut times)))
}

/// A [`Store`] that adds up the time spent in each call, to split an append's time.
pub struct TimedStore {
    inner: RocksStore,
    write_ns: AtomicU64,
    read_ns: AtomicU64,
}

impl TimedStore {
    /// Wraps a store.
    pub fn new(inner: RocksStore) -> Self {
        Self {
            inner,
            write_ns: AtomicU64::new(0),
            read_ns: AtomicU64::new(0),
        }
    }

    /// Time spent in [`Store::write`] so far.
    pub fn write_time(&self) -> Duration {
        Duration::from_nanos(self.write_ns.load(Ordering::Relaxed))
    }

    /// Time spent in reads so far.
    pub fn read_time(&self) -> Duration {
        Duration::from_nanos(self.read_ns.load(Ordering::Relaxed))
    }

    fn timed<T>(counter: &AtomicU64, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        counter.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl Store for TimedStore {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Self::timed(&self.read_ns, || self.inner.get(col, key))
    }
    fn multi_get(&self, col: Column, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        Self::timed(&self.read_ns, || self.inner.multi_get(col, keys))
    }
    fn scan(
        &self,
        col: Column,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        Self::timed(&self.read_ns, || self.inner.scan(col, prefix, start, limit))
    }
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        Self::timed(&self.write_ns, || self.inner.write(batch))
    }
}

/// The engine ceiling: entries per second and the median batch time.
pub struct EngineRun {
    /// Entries appended per second.
    pub rate: f64,
    /// Median time of one batch.
    pub per_batch: Duration,
    /// Of the total, time in `Store::write` (RocksDB write + fsync).
    pub write: Duration,
    /// Of the total, time in store reads (dedup lookups, right-edge hashes).
    pub read: Duration,
    /// Total time.
    pub total: Duration,
}

fn engine_log(dir: &Path) -> Result<LogEngine<TimedStore>> {
    let key = synth::seeded_key(synth::LOG_KEY_SEED);
    let signer = LogSigner::new(
        crate::procs::ORIGIN,
        key.as_ed25519()
            .ok_or_else(|| anyhow!("not ed25519"))?
            .clone(),
    )?;
    Ok(LogEngine::open(
        TimedStore::new(RocksStore::open(dir)?),
        signer,
    )?)
}

/// Appends `batches` batches of real admitted entries (admitted before the clock).
fn engine_ceiling(dir: &Path, batches: u64) -> Result<EngineRun> {
    let entries = synth::admitted(&synth::seeded_key(8), 1, 0..batches * BATCH);
    let engine = engine_log(dir)?;
    append_all(&engine, &entries)
}

/// Appends `entries` in batches of [`BATCH`], timing each.
pub fn append_all(engine: &LogEngine<TimedStore>, entries: &[Admitted]) -> Result<EngineRun> {
    let (w0, r0) = (engine.store().write_time(), engine.store().read_time());
    let mut times = Vec::new();
    let t0 = Instant::now();
    for batch in entries.chunks(BATCH as usize) {
        let t = Instant::now();
        engine.append_batch(batch)?;
        times.push(t.elapsed());
    }
    let total = t0.elapsed();
    Ok(EngineRun {
        rate: entries.len() as f64 / total.as_secs_f64(),
        per_batch: report::median(&mut times),
        write: engine.store().write_time() - w0,
        read: engine.store().read_time() - r0,
        total,
    })
}

/// The request body as the server reads it (`server/src/api/write.rs`).
#[derive(Deserialize)]
struct SubmitRequest<'a> {
    #[serde(borrow)]
    envelope: &'a RawValue,
    verifiers: Vec<String>,
}

/// Per-entry costs of each stage, single-threaded: `(stage, cost as measured, per entry)`.
fn costs(dir: &Path) -> Result<Vec<(String, String, Duration)>> {
    const N: u64 = 4096;
    let key = synth::seeded_key(9);
    let bodies = synth::submissions(&key, 2, N);
    let per = |d: Duration| d / N as u32;

    let t = Instant::now();
    let mut parsed = Vec::with_capacity(N as usize);
    for b in &bodies {
        let req: SubmitRequest = serde_json::from_slice(b)?;
        let env = Envelope::from_json(req.envelope.get().as_bytes())?;
        let keys = req
            .verifiers
            .iter()
            .map(|p| PublicKey::from_pem(p))
            .collect::<Result<Vec<_>, _>>()?;
        parsed.push((env, keys));
    }
    let parse = per(t.elapsed());

    let t = Instant::now();
    for (env, keys) in &parsed {
        env.verify(keys)?;
    }
    let verify = per(t.elapsed());

    let t = Instant::now();
    let mut admitted = Vec::with_capacity(N as usize);
    for (env, keys) in &parsed {
        admitted.push(entry::admit(env, keys, &Limits::default(), 1)?);
    }
    let admit = per(t.elapsed());

    let engine = engine_log(dir)?;
    let run = append_all(&engine, &admitted)?;
    let batches = N.div_ceil(BATCH) as u32;
    let engine_cpu = per(run.total - run.write);
    let write_per_batch = run.write / batches;

    let signer = engine.signer();
    let cp = engine.checkpoint();
    let t = Instant::now();
    for i in 0..1000 {
        std::hint::black_box(signer.sign(cp.tree_size + i, cp.root_hash));
    }
    let sign = t.elapsed() / 1000;

    let size = engine.checkpoint().tree_size;
    let t = Instant::now();
    let mut proofs = Vec::with_capacity(size as usize);
    for i in 0..size {
        proofs.push(engine.inclusion_proof(i, size)?);
    }
    let proof = t.elapsed() / size as u32;
    let t = Instant::now();
    for (i, p) in proofs.iter().enumerate() {
        let hexes: Vec<String> = p.iter().map(|h| hex::encode(h.0)).collect();
        std::hint::black_box(serde_json::to_vec(&serde_json::json!({
            "log_index": i, "leaf_hash": hexes[0], "leaf": "AQ==",
            "inclusion_proof": {"log_index": i, "tree_size": size, "root_hash": hexes[0], "hashes": hexes},
            "checkpoint": "bench.pedigree.test/log\n4096\nAAAA\n\n— bench.pedigree.test/log AAAA\n"
        }))?);
    }
    let answer = t.elapsed() / size as u32;

    Ok(vec![
        (
            "parse request JSON, envelope base64, verifier PEM".into(),
            dur(parse),
            parse,
        ),
        (
            "entry::admit (statement, SLSA, signature, canonical JSON)".into(),
            format!(
                "{} (of which Ed25519 verify_strict {})",
                dur(admit),
                dur(verify)
            ),
            admit,
        ),
        (
            format!("engine CPU in append_batch ({BATCH} per batch)"),
            format!(
                "{} per batch, store reads {}",
                dur(engine_cpu * BATCH as u32),
                dur(run.read / batches)
            ),
            engine_cpu,
        ),
        (
            "RocksDB write + fsync of one batch".into(),
            format!("{} per batch of {BATCH}", dur(write_per_batch)),
            write_per_batch / BATCH as u32,
        ),
        (
            "checkpoint signing (one per batch)".into(),
            format!("{} per batch", dur(sign)),
            sign / BATCH as u32,
        ),
        (
            format!("inclusion proof in a tree of {size} (stored hashes)"),
            dur(proof),
            proof,
        ),
        ("answer JSON".into(), dur(answer), answer),
    ])
}

/// `perf record` over the whole machine for one load run: which processes used the
/// CPU, and where the server spent its share.
struct Profiler {
    child: std::process::Child,
    data: std::path::PathBuf,
    out: std::path::PathBuf,
    server_pid: u32,
}

impl Profiler {
    fn start(server_pid: u32, out: &Path, keep_alive_ms: u64, wait_ms: u64) -> Result<Self> {
        let out = out.with_extension(format!("ka{keep_alive_ms}-wait{wait_ms}.txt"));
        let data = out.with_extension("data");
        let child = std::process::Command::new("perf")
            .args(["record", "-q", "-a", "-e", "cpu-clock", "-o"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("couldn't start perf (apt-get install linux-perf)")?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self {
            child,
            data,
            out,
            server_pid,
        })
    }

    fn finish(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status();
        self.child.wait()?;
        let report = |args: &[&str]| -> Result<String> {
            let text = crate::procs::output(
                std::process::Command::new("perf")
                    .args(["report", "--stdio", "--no-children", "-i"])
                    .arg(&self.data)
                    .args(args),
            )?;
            // Keep the table lines, without perf's padding.
            Ok(text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| {
                    let l: String = l.split_whitespace().collect::<Vec<_>>().join(" ");
                    l.chars().take(160).collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("\n"))
        };
        let by_command = report(&["--sort", "comm", "--percent-limit", "0.5"])?;
        let server_dso = report(&[
            "--pid",
            &self.server_pid.to_string(),
            "--sort",
            "dso",
            "--percent-limit",
            "0.4",
        ])?;
        let server = report(&[
            "--pid",
            &self.server_pid.to_string(),
            "--sort",
            "dso,symbol",
            "--percent-limit",
            "0.15",
        ])?;
        std::fs::write(
            &self.out,
            format!(
                "CPU by thread name (whole machine):\n{by_command}\n\nServer process by object (percent of all samples):\n{server_dso}\n\nServer process by symbol (percent of all samples):\n{server}\n"
            ),
        )?;
        let _ = std::fs::remove_file(&self.data);
        report::progress(&format!("appends: profile in {}", self.out.display()));
        Ok(())
    }
}
