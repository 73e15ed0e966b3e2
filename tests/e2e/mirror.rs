//! `pedigree-server mirror`: a verifying read-only replica of a live server, and its
//! refusal of a tampered tile and of a primary with another history under the same key.

use crate::export::{export, submit_many, StaticServer};
use pedigree_core::checkpoint::LogVerifier;
use pedigree_core::merkle;
use pedigree_tests::{
    agent, binary, get, get_json_with, post, seeded_ed25519_key, write_log_key, Server, E2E_ORIGIN,
};
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `pedigree-server mirror`, killed when dropped.
struct MirrorProc {
    child: Child,
    url: String,
}

impl MirrorProc {
    fn start(from: &str, dir: &Path, vkey: &str) -> MirrorProc {
        let mut child = Command::new(binary("pedigree-server"))
            .args(["mirror", "--from", from, "--log-key", vkey])
            .args(["--listen", "127.0.0.1:0", "--interval-ms", "100"])
            .arg("--data-dir")
            .arg(dir)
            .env("PEDIGREE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mirror");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("pedigree-server mirror listening on ") {
                url = Some(u.to_string());
            }
            if line.starts_with("verifier key: ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        MirrorProc {
            child,
            url: url.expect("mirror listen line"),
        }
    }
}

impl Drop for MirrorProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mirror_once(from: &str, dir: &Path, vkey: &str) -> (bool, String) {
    let out = Command::new(binary("pedigree-server"))
        .args(["mirror", "--once", "--from", from, "--log-key", vkey])
        .arg("--data-dir")
        .arg(dir)
        .env("PEDIGREE_LOG", "off")
        .output()
        .expect("run mirror --once");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn hashes(v: &Value) -> Vec<[u8; 32]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

fn hash(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn mirror_of_a_live_server_serves_verifiable_reads_and_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("primary"), &["--batch-wait-ms", "1"]);
    let verifier = LogVerifier::from_vkey(&server.vkey).unwrap();
    let key = seeded_ed25519_key(51);
    submit_many(&server, &key, 0, 300);
    let mirror = MirrorProc::start(&server.url, &tmp.path().join("mirror"), &server.vkey);
    // Appends continue while the mirror follows.
    submit_many(&server, &key, 300, 30);

    let http = agent();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, log) = get_json_with(&http, &format!("{}/api/v1/log", mirror.url));
        if log["tree_size"] == 330 {
            assert_eq!(log["mirror_of"], server.url.as_str());
            break;
        }
        assert!(Instant::now() < deadline, "mirror did not catch up: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, note) = get(&format!("{}/checkpoint", mirror.url));
    assert_eq!(status, 200);
    let cp = verifier
        .verify(&note)
        .expect("the mirror serves the primary's signed checkpoint");
    assert_eq!(cp.tree_size, 330);

    for index in [0u64, 255, 256, 329] {
        let (_, primary_entry) =
            get_json_with(&http, &format!("{}/api/v1/entries/{index}", server.url));
        let leaf_hash = hash(&primary_entry["leaf_hash"]);
        let (status, proof) = get_json_with(
            &http,
            &format!("{}/api/v1/proof/inclusion?index={index}", mirror.url),
        );
        assert_eq!(status, 200, "{proof}");
        merkle::verify_inclusion(
            index,
            330,
            &leaf_hash,
            &hashes(&proof["hashes"]),
            &cp.root_hash.0,
        )
        .unwrap_or_else(|e| panic!("mirror's proof of {index} does not verify: {e}"));
        let (status, e) = get_json_with(&http, &format!("{}/api/v1/entries/{index}", mirror.url));
        assert_eq!(status, 200);
        assert_eq!(e["leaf_hash"], primary_entry["leaf_hash"]);
        assert_eq!(e["envelope"], primary_entry["envelope"]);
        let entry_cp = verifier
            .verify(e["checkpoint"].as_str().unwrap().as_bytes())
            .unwrap();
        merkle::verify_inclusion(
            index,
            entry_cp.tree_size,
            &leaf_hash,
            &hashes(&e["inclusion_proof"]["hashes"]),
            &entry_cp.root_hash.0,
        )
        .unwrap();
    }
    // Consistency from an older checkpoint of the primary's, to the mirror's.
    let (_, old) = get_json_with(
        &http,
        &format!(
            "{}/api/v1/proof/inclusion?index=0&tree_size=100",
            server.url
        ),
    );
    let (status, proof) = get_json_with(
        &http,
        &format!("{}/api/v1/proof/consistency?from=100", mirror.url),
    );
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["old_root_hash"], old["root_hash"]);
    merkle::verify_consistency(
        100,
        330,
        &hashes(&proof["hashes"]),
        &hash(&old["root_hash"]),
        &cp.root_hash.0,
    )
    .unwrap();
    for tile in [
        "tile/0/000",
        "tile/0/001.p/74",
        "tile/entries/001.p/74",
        "tile/1/000.p/1",
    ] {
        assert_eq!(
            get(&format!("{}/{tile}", mirror.url)),
            get(&format!("{}/{tile}", server.url)),
            "{tile}"
        );
    }

    let (status, body) = post(
        &format!("{}/api/v1/entries", mirror.url),
        "application/json",
        b"{}",
    );
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"], "read_only_mirror");
    assert!(
        body["message"].as_str().unwrap().contains(&server.url),
        "{body}"
    );
    let (status, body) = get_json_with(&http, &format!("{}/healthz", mirror.url));
    assert_eq!(status, 200, "{body}");

    // A monitor reads the mirror as it would read the log.
    let mon = tempfile::tempdir().unwrap();
    let (code, alerts, summary) =
        crate::export::monitor(mon.path(), &mirror.url, &server.vkey, &key);
    assert_eq!(code, 0, "alerts {alerts:?} summary {summary}");
    assert_eq!(summary["processed"], 330, "{summary}");
    assert_eq!(summary["envelopes_fetched"], 330, "{summary}");
}

#[test]
fn mirror_refuses_a_tampered_tile_and_another_history() {
    let tmp = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let vkey = write_log_key(&data_a, 77, E2E_ORIGIN);
    write_log_key(&data_b, 77, E2E_ORIGIN);
    let key = seeded_ed25519_key(52);
    let a = Server::start(&data_a, &["--batch-wait-ms", "1"]);
    submit_many(&a, &key, 0, 300);
    let static_a = tmp.path().join("static-a");
    export(&data_a, &static_a);
    let web_a = StaticServer::start(&static_a);
    let copy = tmp.path().join("mirror");
    let (ok, out) = mirror_once(&web_a.url, &copy, &vkey);
    assert!(ok, "{out}");
    assert!(out.contains("tree size 300, verified"), "{out}");
    let held = std::fs::read(copy.join("checkpoint")).unwrap();

    // The primary grows, and serves one tampered hash tile.
    submit_many(&a, &key, 300, 20);
    export(&data_a, &static_a);
    let tile = static_a.join("tile/0/001.p/64");
    let good = std::fs::read(&tile).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 1;
    std::fs::write(&tile, &bad).unwrap();
    let (ok, out) = mirror_once(&web_a.url, &copy, &vkey);
    assert!(!ok, "a tampered tile was accepted: {out}");
    assert!(out.contains("refused the primary's data"), "{out}");
    assert!(out.contains("hash tiles do not rebuild the root"), "{out}");
    assert_eq!(std::fs::read(copy.join("checkpoint")).unwrap(), held);
    assert!(
        !copy.join("tile/0/001.p/64").exists(),
        "nothing unverified is stored"
    );
    std::fs::write(&tile, &good).unwrap();

    // A tampered entry bundle, then an entry whose envelope is another entry's.
    let bundle = static_a.join("tile/entries/001.p/64");
    let good_bundle = std::fs::read(&bundle).unwrap();
    let mut bad = good_bundle.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&bundle, &bad).unwrap();
    let (ok, out) = mirror_once(&web_a.url, &copy, &vkey);
    assert!(!ok, "a tampered bundle was accepted: {out}");
    assert!(
        out.contains("entry bundle tile/entries/001.p/64 does not match the signed tree"),
        "{out}"
    );
    std::fs::write(&bundle, &good_bundle).unwrap();
    let entry = static_a.join("api/v1/entries/310");
    let good_entry = std::fs::read(&entry).unwrap();
    std::fs::copy(static_a.join("api/v1/entries/311"), &entry).unwrap();
    let (ok, out) = mirror_once(&web_a.url, &copy, &vkey);
    assert!(!ok, "a swapped envelope was accepted: {out}");
    assert!(
        out.contains("entry 310: the envelope the primary serves does not rebuild"),
        "{out}"
    );
    std::fs::write(&entry, &good_entry).unwrap();
    assert_eq!(std::fs::read(copy.join("checkpoint")).unwrap(), held);

    let (ok, out) = mirror_once(&web_a.url, &copy, &vkey);
    assert!(ok, "{out}");
    assert!(out.contains("tree size 320, verified"), "{out}");

    // Another log under the same key and origin: a larger tree of another history.
    let b = Server::start(&data_b, &["--batch-wait-ms", "1"]);
    assert_eq!(b.vkey, vkey);
    submit_many(&b, &key, 10_000, 330);
    let static_b = tmp.path().join("static-b");
    export(&data_b, &static_b);
    let web_b = StaticServer::start(&static_b);
    let held = std::fs::read(copy.join("checkpoint")).unwrap();
    let (ok, out) = mirror_once(&web_b.url, &copy, &vkey);
    assert!(!ok, "another history was accepted: {out}");
    assert!(
        out.contains("is not consistent with the mirrored checkpoint of tree size 320"),
        "{out}"
    );
    assert_eq!(std::fs::read(copy.join("checkpoint")).unwrap(), held);

    // A serving mirror raises the alert on /healthz and keeps serving what it verified.
    let serving = MirrorProc::start(&web_b.url, &copy, &vkey);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = get_json_with(&agent(), &format!("{}/healthz", serving.url));
        if status == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "no alert raised: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(body["error"], "mirror_refused");
    assert!(
        body["message"].as_str().unwrap().contains("not consistent"),
        "{body}"
    );
    assert_eq!(get(&format!("{}/checkpoint", serving.url)), (200, held));
}
