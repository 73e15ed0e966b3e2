//! `pedigree monitor` against a real server: watch rules, resuming from the state file,
//! a log whose history was replaced under the same key, and a split view seen by a peer.

use pedigree_core::checkpoint::LogSigner;
use pedigree_core::keys::PrivateKey;
use pedigree_core::merkle::Hash;
use pedigree_tests::{binary, post_with, seeded_ed25519_key, step_statement, submission, Server};
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const TRAIN: &str = "https://pedigree.dev/ml/train/v1";
const QUANTIZE: &str = "https://pedigree.dev/ml/quantize/v1";

/// One `pedigree monitor --once --json` run.
struct Run {
    code: i32,
    alerts: Vec<Value>,
    summary: Value,
    stderr: String,
}

impl Run {
    fn rules(&self) -> Vec<&str> {
        self.alerts
            .iter()
            .map(|a| a["rule"].as_str().unwrap_or_default())
            .collect()
    }

    fn indexes(&self) -> Vec<u64> {
        self.alerts
            .iter()
            .filter_map(|a| a["log_index"].as_u64())
            .collect()
    }
}

/// A monitor's files: its rule file and state file in a temporary directory.
struct Monitor {
    dir: tempfile::TempDir,
}

impl Monitor {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("monitor.toml"), config).unwrap();
        Self { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    fn run(&self, server: &Server, extra: &[&str]) -> Run {
        self.run_at(&server.url, &server.vkey, extra)
    }

    fn run_at(&self, url: &str, vkey: &str, extra: &[&str]) -> Run {
        let out = Command::new(binary("pedigree"))
            .current_dir(self.dir.path())
            .args([
                "--json",
                "monitor",
                "--once",
                "--log",
                url,
                "--log-key",
                vkey,
            ])
            .args(["--config", "monitor.toml", "--state", "state.json"])
            .args(extra)
            .output()
            .expect("run pedigree monitor");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let alerts = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        let summary = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v.get("processed").is_some())
            .unwrap_or(Value::Null);
        Run {
            code: out.status.code().unwrap_or(-1),
            alerts,
            summary,
            stderr,
        }
    }
}

/// Submits a step statement about `subject` signed by `key`; returns the answer.
fn submit(
    agent: &ureq::Agent,
    server: &Server,
    step: &str,
    subject: u64,
    key: &PrivateKey,
) -> Value {
    let subject = format!("{subject:064x}");
    let body = submission(&step_statement(step, &subject, &[]), key);
    let (status, answer) = post_with(
        agent,
        &format!("{}/api/v1/entries", server.url),
        "application/json",
        &body,
    );
    assert_eq!(status, 201, "{answer}");
    answer
}

fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint().to_string()
}

#[test]
fn watched_key_signing_an_unexpected_build_type_raises_exactly_one_alert() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (a, b) = (seeded_ed25519_key(1), seeded_ed25519_key(2));
    let agent = pedigree_tests::agent();
    submit(&agent, &server, TRAIN, 1, &a);
    submit(&agent, &server, QUANTIZE, 2, &a); // the one a's rule does not allow
    submit(&agent, &server, QUANTIZE, 3, &b); // another key: not watched
    submit(&agent, &server, TRAIN, 4, &a);
    let monitor = Monitor::new(&format!(
        "[[watch_key]]\nfingerprint = \"{}\"\nallowed_build_types = [\"{TRAIN}\"]\nallowed_builder_ids = [\"https://ci.example/builder\"]\n",
        fingerprint(&a)
    ));

    let run = monitor.run(&server, &[]);
    assert_eq!(run.code, 1, "warnings only: {}", run.stderr);
    assert_eq!(run.rules(), ["watch_key"], "{:?}", run.alerts);
    let alert = &run.alerts[0];
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["log_index"], 1);
    assert_eq!(alert["build_type"], QUANTIZE);
    assert_eq!(alert["fingerprint"], fingerprint(&a));
    assert_eq!(run.summary["processed"], 4);
    // Only a's three entries needed their envelopes; b's was decided from the leaf.
    assert_eq!(run.summary["envelopes_fetched"], 3);
    assert_eq!(run.summary["search_checked"], 4);

    let again = monitor.run(&server, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.alerts.is_empty());
    assert_eq!(again.summary["processed"], 0);
}

#[test]
fn restarted_monitor_neither_misses_nor_repeats_an_entry() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let key = seeded_ed25519_key(3);
    let agent = pedigree_tests::agent();
    // Every entry by this key breaks its rule, so alerts count the entries read.
    let monitor = Monitor::new(&format!(
        "[[watch_key]]\nfingerprint = \"{}\"\nallowed_predicate_types = []\n",
        fingerprint(&key)
    ));
    let mut expected = Vec::new();
    // 200 + 150 + 0 entries: the second pass starts inside a bundle and crosses into
    // the next one; the third has nothing new.
    for (pass, count) in [(0u64, 200u64), (1, 150), (2, 0)] {
        let first = expected.len() as u64;
        for i in first..first + count {
            submit(&agent, &server, TRAIN, 1000 + i, &key);
        }
        expected = (0..first + count).collect();
        let run = monitor.run(&server, &[]);
        let want_code = if count == 0 { 0 } else { 1 };
        assert_eq!(run.code, want_code, "pass {pass}: {}", run.stderr);
        assert_eq!(
            run.indexes(),
            (first..first + count).collect::<Vec<_>>(),
            "pass {pass} alerts"
        );
        assert_eq!(run.summary["processed"], count, "pass {pass}");
        assert_eq!(run.summary["first_index"], first);
        assert_eq!(run.summary["next_index"], first + count);
        assert_eq!(
            run.summary["envelopes_fetched"], 0,
            "rule needs no envelope"
        );
    }
    let state: Value = serde_json::from_slice(&std::fs::read(monitor.state()).unwrap()).unwrap();
    assert_eq!(state["next_index"], 350);
    assert_eq!(state["tree_size"], 350);
    assert_eq!(state["entries_processed"], 350);
    assert_eq!(expected.len(), 350);
}

fn copy_key(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn log_with_a_replaced_history_under_the_same_key_is_caught() {
    let keys = tempfile::tempdir().unwrap();
    let signing_key = keys.path().join("log.key");
    let key = seeded_ed25519_key(4);
    let agent = pedigree_tests::agent();
    let monitor = Monitor::new("");

    let data1 = tempfile::tempdir().unwrap();
    let first = Server::start(data1.path(), &[]);
    for i in 0..5 {
        submit(&agent, &first, TRAIN, 100 + i, &key);
    }
    let run = monitor.run(&first, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary["processed"], 5);
    copy_key(&data1.path().join("log-signing.key"), &signing_key);
    let vkey = first.vkey.clone();
    first.kill();

    // The same key and origin over a fresh data directory: another history.
    let data2 = tempfile::tempdir().unwrap();
    let second = Server::start(
        data2.path(),
        &["--signing-key", signing_key.to_str().unwrap()],
    );
    assert_eq!(second.vkey, vkey, "same log key");
    let state_before = std::fs::read(monitor.state()).unwrap();
    // Smaller, then the same size, then larger than what the monitor verified; the state
    // never advances past the good checkpoint, so each run compares against size 5.
    let mut subject = 200;
    for (count, rule) in [
        (3, "tree_shrank"),
        (2, "split_view"),
        (4, "inconsistent_history"),
    ] {
        for _ in 0..count {
            subject += 1;
            submit(&agent, &second, QUANTIZE, subject, &key);
        }
        let run = monitor.run_at(&second.url, &vkey, &[]);
        assert_eq!(run.code, 2, "{rule}: {}", run.stderr);
        assert_eq!(run.rules(), [rule], "{:?}", run.alerts);
        let alert = &run.alerts[0];
        assert_eq!(alert["severity"], "critical");
        assert!(alert["checkpoint"]
            .as_str()
            .unwrap()
            .starts_with(&second.origin));
        let previous = alert["previous_checkpoint"].as_str().unwrap();
        assert!(
            previous.contains("\n5\n"),
            "previous checkpoint is size 5: {previous}"
        );
        assert_eq!(
            std::fs::read(monitor.state()).unwrap(),
            state_before,
            "{rule}: state kept"
        );
    }
}

/// Serves `note` as `/checkpoint` (and anything else) from a thread, like a witness.
fn fake_peer(note: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                note.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&note);
        }
    });
    url
}

#[test]
fn peer_with_another_root_for_the_same_size_is_a_split_view() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let key = seeded_ed25519_key(5);
    let agent = pedigree_tests::agent();
    submit(&agent, &server, TRAIN, 1, &key);
    let early = submit(&agent, &server, TRAIN, 2, &key)["checkpoint"]
        .as_str()
        .unwrap()
        .to_string();
    submit(&agent, &server, TRAIN, 3, &key);

    // The log's own key signs a second root for tree size 3.
    let pem = std::fs::read_to_string(data.path().join("log-signing.key")).unwrap();
    let log_key = PrivateKey::from_pem(&pem).unwrap();
    let signer = LogSigner::new(&server.origin, log_key.as_ed25519().unwrap().clone()).unwrap();
    let forged = signer.sign(3, Hash([0x42; 32]));
    let honest_peer = fake_peer(early.clone().into_bytes());
    let lying_peer = fake_peer(forged.note.clone());

    let monitor = Monitor::new("");
    let run = monitor.run(&server, &["--peer", &honest_peer, "--peer", &lying_peer]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.rules(), ["split_view"], "{:?}", run.alerts);
    let alert = &run.alerts[0];
    assert_eq!(alert["peer"], lying_peer.as_str());
    assert_eq!(alert["peer_checkpoint"], forged.note_text());
    assert!(alert["checkpoint"].as_str().unwrap().contains("\n3\n"));
    assert_ne!(alert["checkpoint"], alert["peer_checkpoint"]);
    assert_eq!(run.summary["peers_checked"], 2);

    // The honest peer alone (an older, consistent checkpoint) raises nothing.
    let run = monitor.run(&server, &["--peer", &honest_peer]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.alerts.is_empty(), "{:?}", run.alerts);
}

/// What a proxy does to one answer of the real log: `(path, status, body)` in, the
/// status and body to send out.
type Rewrite = Box<dyn Fn(&str, u16, Vec<u8>) -> (u16, Vec<u8>) + Send>;

/// GET through `agent`, returning status and body.
fn forward(agent: &ureq::Agent, url: &str) -> (u16, Vec<u8>) {
    let resp = match agent.get(url).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return (502, e.to_string().into_bytes()),
    };
    let status = resp.status();
    let mut body = Vec::new();
    let _ = std::io::Read::read_to_end(&mut resp.into_reader(), &mut body);
    (status, body)
}

/// Serves the log at `upstream` through `rewrite`, like a log that lies in one way.
fn tampering_proxy(upstream: &str, rewrite: Rewrite) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        let agent = pedigree_tests::agent();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let path = request.split(' ').nth(1).unwrap_or("/").to_string();
            let (status, body) = forward(&agent, &format!("{upstream}{path}"));
            let (status, body) = rewrite(&path, status, body);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    url
}

#[test]
fn a_log_serving_tampered_data_is_caught_and_old_partial_tiles_are_read_from_full_ones() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let key = seeded_ed25519_key(6);
    let agent = pedigree_tests::agent();
    let mut at_200 = String::new();
    for i in 0..300 {
        let answer = submit(&agent, &server, TRAIN, 5000 + i, &key);
        if i == 199 {
            at_200 = answer["checkpoint"].as_str().unwrap().to_string();
        }
    }
    // A rule that fetches every envelope, so rebuilt records are checked too.
    let config = format!(
        "[[watch_key]]\nfingerprint = \"{}\"\nallowed_build_types = [\"{TRAIN}\"]\n",
        fingerprint(&key)
    );
    let flip_last_byte: Rewrite = Box::new(|path, status, mut body| {
        if path.starts_with("/tile/entries/") && !body.is_empty() {
            *body.last_mut().unwrap() ^= 1;
        }
        (status, body)
    });
    let hide_from_search: Rewrite = Box::new(|path, status, body| {
        if path.starts_with("/api/v1/entries?") {
            return (200, br#"{"entries":[],"next_cursor":null}"#.to_vec());
        }
        (status, body)
    });
    let drop_verifiers: Rewrite = Box::new(|path, status, body| {
        if path == "/api/v1/entries/7" {
            let mut entry: Value = serde_json::from_slice(&body).unwrap();
            entry["verifiers"] = Value::Array(vec![]);
            return (status, serde_json::to_vec(&entry).unwrap());
        }
        (status, body)
    });
    // (what the log does, the alert, how many: the pass stops at a bad bundle, and
    // checks 16 sampled entries against the search index).
    for (rewrite, rule, count) in [
        (flip_last_byte, "entry_bundle", 1),
        (hide_from_search, "search_index", 16),
        (drop_verifiers, "record_mismatch", 1),
    ] {
        let proxy = tampering_proxy(&server.url, rewrite);
        let run = Monitor::new(&config).run_at(&proxy, &server.vkey, &[]);
        assert_eq!(run.code, 2, "{rule}: {}", run.stderr);
        let critical: Vec<&Value> = run
            .alerts
            .iter()
            .filter(|a| a["severity"] == "critical")
            .collect();
        assert_eq!(critical.len(), count, "{rule}: {critical:?}");
        assert!(critical.iter().all(|a| a["rule"] == rule), "{critical:?}");
        if rule == "record_mismatch" {
            assert_eq!(critical[0]["log_index"], 7);
        }
    }

    // A log whose checkpoint is older than its tiles and whose partial tiles are gone:
    // they are read as prefixes of the full tiles they grew into (tile/0/000 for
    // tile/0/000.p/200, and the same for the entry bundle).
    let stale: Rewrite = Box::new(move |path, status, body| {
        if path == "/checkpoint" {
            (200, at_200.clone().into_bytes())
        } else if path.contains(".p/") {
            (404, b"gone".to_vec())
        } else {
            (status, body)
        }
    });
    let proxy = tampering_proxy(&server.url, stale);
    let run = Monitor::new("").run_at(&proxy, &server.vkey, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary["tree_size"], 200);
    assert_eq!(run.summary["processed"], 200);
}
