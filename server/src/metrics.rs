//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`.
//!
//! Written by hand rather than with a metrics crate: the server exports a handful of
//! counters and two histograms, the text format is a few lines per metric, and lock-free
//! atomics keep the hot path (one increment per request) free of a registry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A monotonically increasing counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A cumulative histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths of the unit, to stay in integers.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        for (b, bound) in self.buckets.iter().zip(self.bounds) {
            if value <= *bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, bound) in self.buckets.iter().zip(self.bounds) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Every metric the server exports.
pub struct Metrics {
    /// Entries appended (not counting duplicates).
    pub entries_appended: Counter,
    /// Batches committed.
    pub batches: Counter,
    /// Failed batch commits.
    pub commit_failures: Counter,
    /// Tree size after the last commit.
    pub tree_size: AtomicU64,
    /// Submissions per committed batch.
    pub batch_size: Histogram,
    /// Seconds per batch commit (engine write including fsync and signing).
    pub commit_seconds: Histogram,
    /// Tree size of the newest checkpoint published with enough witness cosignatures.
    pub cosigned_tree_size: AtomicU64,
    /// Failed cosigning requests by witness; empty when no witness is configured, and
    /// then no witness metric is exported.
    witness_failures: Mutex<BTreeMap<String, u64>>,
    /// HTTP responses by status code.
    requests: Mutex<BTreeMap<u16, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            entries_appended: Counter::default(),
            batches: Counter::default(),
            commit_failures: Counter::default(),
            tree_size: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH_BOUNDS),
            commit_seconds: Histogram::new(LATENCY_BOUNDS),
            cosigned_tree_size: AtomicU64::new(0),
            witness_failures: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Metrics {
    /// Records a committed batch of `entries` submissions.
    pub fn observe_commit(&self, took: Duration, entries: u64, tree_size: u64) {
        self.batches.inc();
        self.batch_size.observe(entries as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        let before = self.tree_size.swap(tree_size, Ordering::Relaxed);
        if tree_size > before {
            self.entries_appended.add(tree_size - before);
        }
    }

    /// Turns on the witness metrics for the witnesses named.
    pub fn enable_witnesses<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut map = self
            .witness_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for name in names {
            map.entry(name.to_string()).or_default();
        }
    }

    /// Counts one failed cosigning request to `witness`.
    pub fn witness_failed(&self, witness: &str) {
        let mut map = self
            .witness_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry(witness.to_string()).or_default() += 1;
    }

    /// Counts one HTTP response.
    pub fn observe_status(&self, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(status).or_default() += 1;
    }

    /// Renders the text exposition format; `queue_depth` and `hash_cache_hashes` are
    /// sampled by the caller.
    pub fn render(&self, queue_depth: u64, hash_cache_hashes: u64) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        counter(
            "pedigree_entries_appended_total",
            "Entries appended to the log since start.",
            "counter",
            self.entries_appended.get(),
        );
        counter(
            "pedigree_batches_total",
            "Batches committed since start.",
            "counter",
            self.batches.get(),
        );
        counter(
            "pedigree_commit_failures_total",
            "Batch commits that failed.",
            "counter",
            self.commit_failures.get(),
        );
        counter(
            "pedigree_tree_size",
            "Tree size of the latest signed checkpoint.",
            "gauge",
            self.tree_size.load(Ordering::Relaxed),
        );
        counter(
            "pedigree_sequencer_queue_depth",
            "Submissions waiting for or in a batch.",
            "gauge",
            queue_depth,
        );
        counter(
            "pedigree_hash_cache_hashes",
            "Stored tree hashes held in memory for proofs (32 bytes each); it grows to the tree's count or the configured budget after start-up.",
            "gauge",
            hash_cache_hashes,
        );
        let failures = self
            .witness_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !failures.is_empty() {
            let cosigned = self.cosigned_tree_size.load(Ordering::Relaxed);
            let tree_size = self.tree_size.load(Ordering::Relaxed);
            counter(
                "pedigree_cosigned_tree_size",
                "Tree size of the checkpoint published with enough witness cosignatures.",
                "gauge",
                cosigned,
            );
            counter(
                "pedigree_witness_lag_entries",
                "Entries in the log's latest checkpoint beyond the cosigned one.",
                "gauge",
                tree_size.saturating_sub(cosigned),
            );
            let _ = writeln!(out, "# HELP pedigree_witness_failures_total Cosigning requests a witness did not answer with a valid cosignature.\n# TYPE pedigree_witness_failures_total counter");
            for (name, n) in &failures {
                let _ = writeln!(
                    out,
                    "pedigree_witness_failures_total{{witness=\"{name}\"}} {n}"
                );
            }
        }
        self.batch_size.render(
            &mut out,
            "pedigree_batch_entries",
            "Submissions per committed batch.",
        );
        self.commit_seconds.render(
            &mut out,
            "pedigree_commit_seconds",
            "Time to commit a batch (write, fsync, sign).",
        );
        let _ = writeln!(out, "# HELP pedigree_http_responses_total HTTP responses by status code.\n# TYPE pedigree_http_responses_total counter");
        for (status, n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "pedigree_http_responses_total{{status=\"{status}\"}} {n}"
            );
        }
        out
    }
}
