//! Crash safety under load: the real server is killed with SIGKILL at random moments while
//! 64 clients submit, and restarted each time; nothing acknowledged may be lost and every
//! checkpoint ever handed out must be consistent with the final tree.
//!
//! The run in `cargo test` kills the server 5 times. The long run is the same code with
//! more kills, opted into by environment:
//!
//! ```text
//! PEDIGREE_CRASH_KILLS=20 cargo test --release -p pedigree-tests crash -- --nocapture
//! ```
//!
//! `PEDIGREE_CRASH_SEED` picks another seed for the kill times and the client keys.
//! Both runs print what was acknowledged and what was lost (always 0, or the test fails).

use base64::Engine as _;
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::dsse::Envelope;
use pedigree_core::entry::{self, LeafRecord, Limits};
use pedigree_core::keys::{PrivateKey, PublicKey};
use pedigree_core::merkle;
use pedigree_tests::{
    agent, binary, get_json_with, post_with, seeded_ed25519_key, sha256_hex, step_statement,
    submission, Server,
};
use rand::{rngs::StdRng, Rng as _, SeedableRng as _};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const KEYS: u64 = 4;
const DEFAULT_KILLS: usize = 5;
const DEFAULT_SEED: u64 = 20_251_123;
/// Short batches, so that most kills land while a batch is open or being committed.
const FLAGS: &[&str] = &["--batch-wait-ms", "2"];
/// Threads that re-read the log at the end.
const CHECKERS: usize = 8;

/// One acknowledged submission, as its client saw it.
struct Ack {
    log_index: u64,
    leaf_hash: [u8; 32],
    leaf: Vec<u8>,
    envelope_sha256: [u8; 32],
    checkpoint: SignedCheckpoint,
    /// Acknowledged after a retry: the server died with this submission in flight.
    after_retry: bool,
    /// Answered 200: the envelope was already logged. After a retry this means the
    /// server stored it and died before answering.
    duplicate: bool,
}

struct Shared {
    /// The current server's base URL; each restart listens on a new port.
    url: RwLock<String>,
    verifier: LogVerifier,
    stop: AtomicBool,
    /// Submissions sent and not yet answered.
    in_flight: AtomicUsize,
    transport_failures: AtomicU64,
    acks: Mutex<Vec<Ack>>,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn url(&self) -> String {
        self.url.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn error(&self, msg: String) {
        self.errors.lock().unwrap().push(msg);
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn hash32(v: &Value) -> Result<[u8; 32], String> {
    let bytes =
        hex::decode(v.as_str().ok_or("hash is not a string")?).map_err(|e| e.to_string())?;
    bytes.try_into().map_err(|_| "hash is not 32 bytes".into())
}

fn hashes(v: &Value) -> Result<Vec<Vec<u8>>, String> {
    v.as_array()
        .ok_or("proof hashes are not an array")?
        .iter()
        .map(|h| hash32(h).map(|h| h.to_vec()))
        .collect()
}

fn b64(v: &Value) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().ok_or("not a string")?)
        .map_err(|e| e.to_string())
}

/// The digest the log identifies a request's envelope by.
fn envelope_sha256_of(request: &[u8]) -> [u8; 32] {
    let v: Value = serde_json::from_slice(request).expect("request JSON");
    let env = Envelope::from_json(v["envelope"].to_string().as_bytes()).expect("envelope");
    entry::envelope_digest(&env.to_json())
}

/// Checks an acknowledgement the way a client would: the checkpoint is signed by the log,
/// the leaf is the one for this envelope, and the inclusion proof leads to the root.
fn check_ack(
    verifier: &LogVerifier,
    answer: &Value,
    envelope_sha256: [u8; 32],
    after_retry: bool,
    duplicate: bool,
) -> Result<Ack, String> {
    let checkpoint = verifier
        .verify(answer["checkpoint"].as_str().unwrap_or("").as_bytes())
        .map_err(|e| format!("checkpoint: {e}"))?;
    let log_index = answer["log_index"].as_u64().ok_or("no log_index")?;
    let leaf_hash = hash32(&answer["leaf_hash"])?;
    let leaf = b64(&answer["leaf"])?;
    if merkle::leaf_hash(&leaf).0 != leaf_hash {
        return Err(format!(
            "entry {log_index}: leaf does not hash to leaf_hash"
        ));
    }
    let record = LeafRecord::decode(&leaf).map_err(|e| e.to_string())?;
    if record.envelope_sha256 != envelope_sha256 {
        return Err(format!("entry {log_index}: leaf is for another envelope"));
    }
    let proof = &answer["inclusion_proof"];
    merkle::verify_inclusion(
        log_index,
        checkpoint.tree_size,
        &leaf_hash,
        &hashes(&proof["hashes"])?,
        &checkpoint.root_hash.0,
    )
    .map_err(|e| format!("entry {log_index}: inclusion proof: {e}"))?;
    Ok(Ack {
        log_index,
        leaf_hash,
        leaf,
        envelope_sha256,
        checkpoint,
        after_retry,
        duplicate,
    })
}

/// Submits fresh statements until told to stop. A submission that gets no answer (the
/// server died) is retried, same envelope, until the restarted server answers.
fn client(id: usize, key: &PrivateKey, shared: &Shared) {
    let http = agent();
    let material = sha256_hex(format!("crash client {id} input").as_bytes());
    let mut seq = 0u64;
    'submissions: while !shared.stop.load(Ordering::SeqCst) {
        let subject = sha256_hex(format!("crash client {id} submission {seq}").as_bytes());
        let statement = step_statement("https://pedigree.dev/ml/train/v1", &subject, &[&material]);
        let body = submission(&statement, key);
        let envelope_sha256 = envelope_sha256_of(&body);
        let mut after_retry = false;
        loop {
            let url = format!("{}/api/v1/entries", shared.url());
            shared.in_flight.fetch_add(1, Ordering::SeqCst);
            let (status, answer) = post_with(&http, &url, "application/json", &body);
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            match status {
                200 | 201 => {
                    if status == 200 && !after_retry {
                        shared.error(format!("client {id}: a fresh envelope was answered 200"));
                    }
                    match check_ack(
                        &shared.verifier,
                        &answer,
                        envelope_sha256,
                        after_retry,
                        status == 200,
                    ) {
                        Ok(ack) => shared.acks.lock().unwrap().push(ack),
                        Err(e) => shared.error(format!("client {id}: bad acknowledgement: {e}")),
                    }
                    break;
                }
                // The server is down or restarting (0), or asked for a retry (503).
                0 | 503 => {
                    if status == 0 {
                        shared.transport_failures.fetch_add(1, Ordering::Relaxed);
                    }
                    after_retry = true;
                    if shared.stop.load(Ordering::SeqCst) {
                        break 'submissions;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    shared.error(format!("client {id}: status {status}: {answer}"));
                    break 'submissions;
                }
            }
        }
        seq += 1;
    }
}

/// Re-reads one acknowledged entry from the final server and checks it is the same leaf
/// at the same index, rebuilt from its stored envelope and keys.
fn check_entry(http: &ureq::Agent, url: &str, ack: &Ack) -> Result<(), String> {
    let i = ack.log_index;
    let (status, e) = get_json_with(http, &format!("{url}/api/v1/entries/{i}"));
    if status != 200 {
        return Err(format!("entry {i}: status {status}: {e}"));
    }
    if e["log_index"].as_u64() != Some(i) {
        return Err(format!("entry {i}: answered as {}", e["log_index"]));
    }
    let leaf = b64(&e["leaf"])?;
    if leaf != ack.leaf || merkle::leaf_hash(&leaf).0 != ack.leaf_hash {
        return Err(format!("entry {i}: leaf differs from the acknowledged one"));
    }
    if hash32(&e["leaf_hash"])? != ack.leaf_hash {
        return Err(format!(
            "entry {i}: leaf_hash differs from the acknowledged one"
        ));
    }
    let envelope = Envelope::from_json(e["envelope"].to_string().as_bytes())
        .map_err(|err| format!("entry {i}: envelope: {err}"))?;
    if entry::envelope_digest(&envelope.to_json()) != ack.envelope_sha256 {
        return Err(format!("entry {i}: stored envelope differs"));
    }
    let keys = e["verifiers"]
        .as_array()
        .ok_or("no verifiers")?
        .iter()
        .map(|k| PublicKey::from_pem(k.as_str().unwrap_or("")).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let time = e["record"]["integrated_time_ms"]
        .as_u64()
        .ok_or("no integrated_time_ms")?;
    let rebuilt = entry::admit(&envelope, &keys, &Limits::default(), time)
        .map_err(|err| format!("entry {i}: does not rebuild: {err}"))?;
    if rebuilt.record.encode() != leaf {
        return Err(format!("entry {i}: rebuilt record differs from the leaf"));
    }
    Ok(())
}

/// Checks that the checkpoint of `size` and `root` is consistent with the final one.
fn check_checkpoint(
    http: &ureq::Agent,
    url: &str,
    size: u64,
    root: &[u8; 32],
    last: &SignedCheckpoint,
) -> Result<(), String> {
    if size == last.tree_size {
        return (root == &last.root_hash.0)
            .then_some(())
            .ok_or_else(|| format!("checkpoint {size}: a second root for the final size"));
    }
    let (status, c) = get_json_with(
        http,
        &format!(
            "{url}/api/v1/proof/consistency?from={size}&to={}",
            last.tree_size
        ),
    );
    if status != 200 {
        return Err(format!("consistency {size}: status {status}: {c}"));
    }
    merkle::verify_consistency(
        size,
        last.tree_size,
        &hashes(&c["hashes"])?,
        root,
        &last.root_hash.0,
    )
    .map_err(|e| format!("checkpoint {size} is not consistent with the final tree: {e}"))
}

/// Runs `check` over `items` on [`CHECKERS`] threads, each with its own HTTP client;
/// returns every failure.
fn check_all<T: Sync>(
    items: &[T],
    check: impl Fn(&ureq::Agent, &T) -> Result<(), String> + Sync,
) -> Vec<String> {
    let chunk = items.len().div_ceil(CHECKERS).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let check = &check;
                s.spawn(move || {
                    let http = agent();
                    part.iter()
                        .filter_map(|item| check(&http, item).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("checker thread"))
            .collect()
    })
}

#[test]
fn acknowledged_entries_survive_sigkill_under_load() {
    let kills: usize = env_or("PEDIGREE_CRASH_KILLS", DEFAULT_KILLS);
    let seed: u64 = env_or("PEDIGREE_CRASH_SEED", DEFAULT_SEED);
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), FLAGS);
    let vkey = server.vkey.clone();
    let shared = Arc::new(Shared {
        url: RwLock::new(server.url.clone()),
        verifier: LogVerifier::from_vkey(&vkey).unwrap(),
        stop: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        transport_failures: AtomicU64::new(0),
        acks: Mutex::new(Vec::new()),
        errors: Mutex::new(Vec::new()),
    });
    let keys: Vec<Arc<PrivateKey>> = (0..KEYS)
        .map(|k| Arc::new(seeded_ed25519_key(seed.wrapping_add(k))))
        .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (shared, key) = (Arc::clone(&shared), Arc::clone(&keys[id % keys.len()]));
            std::thread::spawn(move || client(id, &key, &shared))
        })
        .collect();

    let mut kills_in_flight = 0;
    let mut restart_ms = Vec::new();
    for k in 0..kills {
        // A quarter of the kills come right after start-up, the rest under steady load.
        let wait_ms = if rng.gen_bool(0.25) {
            rng.gen_range(0..30)
        } else {
            rng.gen_range(30..1_000)
        };
        std::thread::sleep(Duration::from_millis(wait_ms));
        let in_flight = shared.in_flight.load(Ordering::SeqCst);
        kills_in_flight += usize::from(in_flight > 0);
        server.kill();
        let restarting = Instant::now();
        server = Server::try_start(dir.path(), FLAGS)
            .unwrap_or_else(|e| panic!("restart after kill {k} failed: {e}"));
        restart_ms.push(restarting.elapsed().as_millis());
        assert_eq!(server.vkey, vkey, "kill {k}: the log key changed");
        *shared.url.write().unwrap() = server.url.clone();
        println!(
            "kill {k}: after {wait_ms} ms with {in_flight} submissions in flight, \
             {} acknowledged so far, restarted in {} ms",
            shared.acks.lock().unwrap().len(),
            restart_ms[k]
        );
    }
    // Let the clients reach the last server before stopping them.
    std::thread::sleep(Duration::from_millis(300));
    shared.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client thread");
    }
    let errors = shared.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "clients saw errors: {errors:#?}");
    let acks = std::mem::take(&mut *shared.acks.lock().unwrap());
    let load_done = started.elapsed();

    // The final tree, as the server signs it.
    let url = server.url.clone();
    let (_, log) = get_json_with(&agent(), &format!("{url}/api/v1/log"));
    let last = shared
        .verifier
        .verify(log["checkpoint"].as_str().unwrap().as_bytes())
        .expect("final checkpoint verifies");

    // One index, one envelope: two acknowledgements may share an index only when they
    // are for the same envelope (a retry answered as a duplicate).
    let mut by_index: BTreeMap<u64, &Ack> = BTreeMap::new();
    let mut lost = Vec::new();
    for ack in &acks {
        if let Some(prev) = by_index.insert(ack.log_index, ack) {
            if prev.envelope_sha256 != ack.envelope_sha256 {
                lost.push(format!(
                    "index {} acknowledged for two envelopes",
                    ack.log_index
                ));
            }
        }
    }
    let distinct: Vec<&Ack> = by_index.values().copied().collect();
    lost.extend(check_all(&distinct, |http, ack| {
        check_entry(http, &url, ack)
    }));

    // Every checkpoint handed out: one root per size, consistent with the final tree.
    let mut roots: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let mut split_views = Vec::new();
    for ack in &acks {
        let cp = &ack.checkpoint;
        if let Some(prev) = roots.insert(cp.tree_size, cp.root_hash.0) {
            if prev != cp.root_hash.0 {
                split_views.push(format!("two roots signed for tree size {}", cp.tree_size));
            }
        }
    }
    let sizes: Vec<(u64, [u8; 32])> = roots.into_iter().collect();
    let inconsistent = check_all(&sizes, |http, (size, root)| {
        check_checkpoint(http, &url, *size, root, &last)
    });

    let retried: Vec<&Ack> = acks.iter().filter(|a| a.after_retry).collect();
    let stored_unanswered = retried.iter().filter(|a| a.duplicate).count();
    println!(
        "crash test (seed {seed}): {kills} SIGKILLs ({kills_in_flight} with submissions in flight), \
         {} clients, {} acknowledged, {} lost; {} acknowledged on a retry after a kill, \
         {stored_unanswered} of them stored before the kill but unanswered; \
         {} checkpoints checked for consistency, {} inconsistent; final tree size {}; \
         {} transport failures; restarts took {:?} ms; load {:.1} s, total {:.1} s",
        CLIENTS,
        acks.len(),
        lost.len(),
        retried.len(),
        sizes.len(),
        inconsistent.len() + split_views.len(),
        last.tree_size,
        shared.transport_failures.load(Ordering::Relaxed),
        restart_ms,
        load_done.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert!(lost.is_empty(), "acknowledged entries lost: {lost:#?}");
    assert!(split_views.is_empty(), "{split_views:#?}");
    assert!(inconsistent.is_empty(), "{inconsistent:#?}");
    assert!(!acks.is_empty(), "nothing was acknowledged");
    assert!(
        kills == 0 || kills_in_flight > 0,
        "no kill landed while submissions were in flight"
    );

    // A last kill, then the offline check of every stored byte.
    server.kill();
    let fsck = std::process::Command::new(binary("pedigree-server"))
        .arg("fsck")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&fsck.stdout);
    println!("{report}");
    assert!(
        fsck.status.success(),
        "fsck after the last kill: {}{report}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}
