//! A closed-loop HTTP load generator: `clients` threads, each with its own blocking
//! `ureq` agent, each sending its next request as soon as the previous answer has been
//! read in full. Latency is from sending a request to having read the whole answer.
//!
//! One thread per client is fine up to the 256 clients the benchmarks use; the
//! threads share the machine's cores with the server, which the reports say.

use crate::report;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What each request is.
#[derive(Clone)]
pub enum Work {
    /// POST each body once, in order, to `url` (JSON); stop when they run out.
    Post {
        /// Target URL.
        url: String,
        /// Pre-built bodies, each sent once.
        bodies: Arc<Vec<Vec<u8>>>,
    },
    /// GET these URLs round-robin until the time is up.
    Get {
        /// Target URLs.
        urls: Arc<Vec<String>>,
    },
}

/// The outcome of one load run.
pub struct LoadResult {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Answers by status; status 0 counts transport errors.
    pub statuses: BTreeMap<u16, u64>,
    /// From the start signal until the last client finished.
    pub elapsed: Duration,
    /// Latencies of the expected-status answers, sorted.
    pub latencies: Vec<Duration>,
    /// The last expected-status body each client read, for checking after the clock.
    pub samples: Vec<Vec<u8>>,
}

impl LoadResult {
    /// Expected answers per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at quantile `q`.
    pub fn latency(&self, q: f64) -> Duration {
        report::quantile(&self.latencies, q)
    }

    /// Answers other than the expected status, as `503 x12, 0 x1`.
    pub fn errors(&self, expected: u16) -> String {
        let bad: Vec<String> = self
            .statuses
            .iter()
            .filter(|(s, _)| **s != expected)
            .map(|(s, n)| format!("{s} x{n}"))
            .collect();
        if bad.is_empty() {
            "none".into()
        } else {
            bad.join(", ")
        }
    }
}

/// Runs `work` from `clients` threads for at most `duration`, expecting `expected`.
pub fn run(clients: usize, duration: Duration, work: &Work, expected: u16) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let work = work.clone();
            let next = Arc::clone(&next);
            let start = Arc::clone(&start);
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || client(&work, &next, &start, duration, expected))
                .expect("spawn client thread")
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let mut result = LoadResult {
        ok: 0,
        statuses: BTreeMap::new(),
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        samples: Vec::new(),
    };
    for h in handles {
        let c = h.join().expect("client thread");
        result.ok += c.latencies.len() as u64;
        result.latencies.extend(c.latencies);
        for (s, n) in c.statuses {
            *result.statuses.entry(s).or_default() += n;
        }
        result.samples.extend(c.sample);
    }
    result.elapsed = t0.elapsed();
    result.latencies.sort();
    result
}

struct ClientResult {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    sample: Option<Vec<u8>>,
}

fn client(
    work: &Work,
    next: &AtomicUsize,
    start: &Barrier,
    duration: Duration,
    expected: u16,
) -> ClientResult {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut out = ClientResult {
        latencies: Vec::with_capacity(4096),
        statuses: BTreeMap::new(),
        sample: None,
    };
    start.wait();
    let deadline = Instant::now() + duration;
    let mut body = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        let answer = match work {
            Work::Post { url, bodies } => {
                let Some(b) = bodies.get(i) else { break };
                agent
                    .post(url)
                    .set("Content-Type", "application/json")
                    .send_bytes(b)
            }
            Work::Get { urls } => agent.get(&urls[i % urls.len()]).call(),
        };
        let status = match answer {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                body.clear();
                match r.into_reader().read_to_end(&mut body) {
                    Ok(_) => status,
                    Err(_) => 0,
                }
            }
            Err(_) => 0,
        };
        let latency = t.elapsed();
        *out.statuses.entry(status).or_default() += 1;
        if status == expected {
            out.latencies.push(latency);
            // Keep an answer now and then (not every one: copying costs client CPU).
            if out.latencies.len() % 64 == 1 {
                out.sample = Some(body.clone());
            }
        } else if status == 0 || status == 503 {
            // Back off briefly so a refusing server is not hammered in a tight loop.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    out
}
