//! Witnesses: real `pedigree witness serve` processes cosigning a real server's
//! checkpoints, the CLI requiring their cosignatures (lineage, OMS verify, tlog-proof),
//! a witness refusing a log that rewrote its history, and appends going on while a
//! witness is down.

use pedigree_core::witness::protocol::{parse_size, AddCheckpoint};
use pedigree_core::witness::WitnessPolicy;
use pedigree_tests::{
    get, get_json, pedigree, post, seeded_ed25519_key, step_statement, submission, write_log_key,
    Server, Witness, E2E_ORIGIN,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out, err) = pedigree(dir, args);
    assert!(ok, "pedigree {args:?} failed: {err}");
    out
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let (ok, out, err) = pedigree(dir, args);
    assert!(!ok, "pedigree {args:?} should fail, printed {out}");
    err
}

/// Generates an Ed25519 key pair `<name>.key`/`<name>.pub` in `dir`.
fn key(dir: &Path, name: &str) -> PathBuf {
    ok(
        dir,
        &["key", "generate", "--algorithm", "ed25519", "--out", name],
    );
    dir.join(format!("{name}.key"))
}

/// Waits until `f` holds, up to 20 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The published `/checkpoint` (status, tree size, note).
fn published(server: &Server) -> (u16, u64, Vec<u8>) {
    let (status, body) = get(&format!("{}/checkpoint", server.url));
    let size = String::from_utf8_lossy(&body)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    (status, size, body)
}

fn log_size(server: &Server) -> u64 {
    get_json(&format!("{}/api/v1/log", server.url)).1["tree_size"]
        .as_u64()
        .unwrap()
}

fn metric(server: &Server, line_start: &str) -> u64 {
    let (_, body) = get(&format!("{}/metrics", server.url));
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_start}"))
}

fn witness_flag(name: &str, w: &Witness) -> String {
    format!("{name}={}={}", w.url, w.vkey)
}

/// A log with a known key and two witnesses that follow it.
struct Witnessed {
    dir: tempfile::TempDir,
    _data: tempfile::TempDir,
    log_vkey: String,
    w1: Witness,
    w2: Witness,
    server: Server,
}

fn witnessed() -> Witnessed {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log_vkey = write_log_key(data.path(), 41, E2E_ORIGIN);
    let d = dir.path();
    let (k1, k2) = (key(d, "w1"), key(d, "w2"));
    let w1 = Witness::start(
        &k1,
        "w.example/one",
        &d.join("w1-state"),
        &[&log_vkey],
        "127.0.0.1:0",
    );
    let log_arg = format!("{E2E_ORIGIN}={log_vkey}");
    let w2 = Witness::start(
        &k2,
        "w.example/two",
        &d.join("w2-state"),
        &[&log_arg],
        "127.0.0.1:0",
    );
    let server = Server::start(
        data.path(),
        &[
            "--witness",
            &witness_flag("one", &w1),
            "--witness",
            &witness_flag("two", &w2),
        ],
    );
    assert_eq!(server.vkey, log_vkey);
    Witnessed {
        dir,
        _data: data,
        log_vkey,
        w1,
        w2,
        server,
    }
}

#[test]
fn two_witnesses_cosign_and_the_cli_requires_their_cosignatures() {
    let t = witnessed();
    let d = t.dir.path();
    let url = t.server.url.clone();
    eventually("a cosigned checkpoint", || published(&t.server).0 == 200);
    key(d, "curator");
    let w3_vkey = pedigree_core::witness::WitnessSigner::new(
        "w.example/three",
        seeded_ed25519_key(3).as_ed25519().unwrap().clone(),
    )
    .unwrap()
    .verifier()
    .to_vkey();
    std::fs::create_dir(d.join("bundles")).unwrap();
    std::fs::write(d.join("data.csv"), b"x,y\n1,2\n").unwrap();
    std::fs::write(d.join("model.bin"), [7u8; 512]).unwrap();
    ok(
        d,
        &[
            "attest",
            "dataset",
            "--key",
            "curator.key",
            "--subject",
            "data.csv",
            "--log",
            &url,
            "--out",
            "bundles/dataset.json",
        ],
    );
    ok(
        d,
        &[
            "attest",
            "train",
            "--key",
            "curator.key",
            "--subject",
            "model.bin",
            "--material",
            "data.csv",
            "--log",
            &url,
            "--out",
            "bundles/train.json",
        ],
    );

    // The receipts in the bundles are against cosigned checkpoints.
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("bundles/train.json")).unwrap()).unwrap();
    let note = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
        ["envelope"]
        .as_str()
        .unwrap()
        .to_string();
    let two = WitnessPolicy::new(
        vec![
            pedigree_core::witness::WitnessVerifier::from_vkey(&t.w1.vkey).unwrap(),
            pedigree_core::witness::WitnessVerifier::from_vkey(&t.w2.vkey).unwrap(),
        ],
        2,
    )
    .unwrap();
    assert_eq!(two.check(note.as_bytes()).unwrap().len(), 2, "{note}");

    let policy = |extra: &str| {
        format!(
            "log_key = \"{}\"\n{extra}[[step]]\nname = \"dataset\"\nsigners = [\"curator.pub\"]\n[[step]]\nname = \"train\"\nsigners = [\"curator.pub\"]\n",
            t.log_vkey
        )
    };
    std::fs::write(d.join("plain.toml"), policy("")).unwrap();
    std::fs::write(
        d.join("witnessed.toml"),
        policy(&format!(
            "min_witnesses = 2\nwitnesses = [\"{}\", \"{}\"]\n",
            t.w1.vkey, t.w2.vkey
        )),
    )
    .unwrap();
    std::fs::write(
        d.join("three.toml"),
        policy(&format!(
            "min_witnesses = 3\nwitnesses = [\"{}\", \"{}\", \"{w3_vkey}\"]\n",
            t.w1.vkey, t.w2.vkey
        )),
    )
    .unwrap();
    let verify = |policy: &str, extra: &[&str]| {
        let mut args = vec![
            "lineage",
            "verify",
            "model.bin",
            "--policy",
            policy,
            "--bundles",
            "bundles",
        ];
        args.extend(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| pedigree(d, &args.iter().map(String::as_str).collect::<Vec<_>>());

    // Offline, from the policy file and from flags; online too.
    let (good, out, err) = run(verify("witnessed.toml", &[]));
    assert!(good && out.contains("verified lineage"), "{out}{err}");
    let (good, _, err) = run(verify(
        "plain.toml",
        &[
            "--witness",
            &t.w1.vkey,
            "--witness",
            &t.w2.vkey,
            "--min-witnesses",
            "2",
        ],
    ));
    assert!(good, "{err}");
    ok(
        d,
        &[
            "lineage",
            "verify",
            "model.bin",
            "--policy",
            "witnessed.toml",
            "--log",
            &url,
        ],
    );
    // Three required of which one never cosigned, or an unknown witness: refused.
    let (good, _, err) = run(verify("three.toml", &[]));
    assert!(!good && err.contains("not witnessed at step"), "{err}");
    let (good, _, err) = run(verify(
        "plain.toml",
        &[
            "--witness",
            &t.w1.vkey,
            "--witness",
            &t.w2.vkey,
            "--witness",
            &w3_vkey,
            "--min-witnesses",
            "3",
        ],
    ));
    assert!(
        !good && err.contains("2 valid cosignatures") && err.contains("3 required"),
        "{err}"
    );
    let (good, _, err) = run(verify("plain.toml", &["--witness", &w3_vkey]));
    assert!(!good && err.contains("not witnessed"), "{err}");
    let err = fails(
        d,
        &[
            "lineage",
            "verify",
            "model.bin",
            "--policy",
            "three.toml",
            "--log",
            &url,
        ],
    );
    assert!(err.contains("not witnessed"), "{err}");

    // OMS signatures: the receipt's checkpoint must carry the cosignatures too.
    ok(
        d,
        &[
            "sign",
            "model.bin",
            "--key",
            "curator.key",
            "--signature",
            "model.sig",
            "--log",
            &url,
        ],
    );
    let oms = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "model.bin",
            "--signature",
            "model.sig",
            "--key",
            "curator.pub",
            "--log-key",
            &t.log_vkey,
        ];
        args.extend(extra);
        pedigree(d, &args)
    };
    let (good, _, err) = oms(&["--witness", &t.w1.vkey, "--witness", &t.w2.vkey]);
    assert!(good, "{err}");
    let (good, _, err) = oms(&[
        "--witness",
        &t.w1.vkey,
        "--witness",
        &t.w2.vkey,
        "--witness",
        &w3_vkey,
    ]);
    assert!(
        !good && err.contains("not witnessed") && err.contains("3 required"),
        "{err}"
    );

    // An offline tlog-proof of entry 1, verified with the server gone.
    ok(
        d,
        &[
            "proof",
            "1",
            "--log",
            &url,
            "--out",
            "train.tlog-proof",
            "--log-key",
            &t.log_vkey,
            "--witness",
            &t.w1.vkey,
            "--witness",
            &t.w2.vkey,
        ],
    );
    let text = std::fs::read_to_string(d.join("train.tlog-proof")).unwrap();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    assert!(text.contains("\nindex 1\n"), "{text}");
    // The witness serves what it cosigned, with its own line.
    let hash = pedigree_tests::sha256_hex(E2E_ORIGIN.as_bytes());
    let (status, body) = get(&format!("{}/{hash}/checkpoint", t.w1.url));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("— w.example/one "));
    // A monitor compares the log with what the witness cosigned (tlog-witness's
    // monitoring path is a peer for `pedigree monitor`).
    std::fs::write(d.join("monitor.toml"), "").unwrap();
    let peer = format!("{}/{hash}", t.w1.url);
    let (good, _, err) = pedigree(
        d,
        &[
            "monitor",
            "--log",
            &url,
            "--log-key",
            &t.log_vkey,
            "--config",
            "monitor.toml",
            "--state",
            "monitor.json",
            "--once",
            "--peer",
            &peer,
        ],
    );
    assert!(good && err.contains("1 peers"), "{err}");
    let Witnessed { server, .. } = t;
    server.kill();
    let proof = |extra: &[&str]| {
        let mut args = vec![
            "proof",
            "--verify",
            "train.tlog-proof",
            "--log-key",
            &t.log_vkey,
        ];
        args.extend(extra);
        pedigree(d, &args)
    };
    let (good, out, err) = proof(&[
        "--witness",
        &t.w1.vkey,
        "--witness",
        &t.w2.vkey,
        "--bundle",
        "bundles/train.json",
        "--key",
        "curator.pub",
    ]);
    assert!(good && out.contains("cosigned by 2 witness"), "{out}{err}");
    let (good, _, err) = proof(&["--witness", &w3_vkey]);
    assert!(!good && err.contains("not witnessed"), "{err}");
    let (good, _, err) = proof(&["--bundle", "bundles/dataset.json"]);
    assert!(!good && err.contains("not"), "{err}");
    let tampered = text.replacen("index 1\n", "index 0\n", 1);
    std::fs::write(d.join("train.tlog-proof"), tampered).unwrap();
    let (good, _, err) = proof(&[]);
    assert!(!good && err.contains("does not verify"), "{err}");
}

/// An add-checkpoint request for the log's current checkpoint with a consistency proof
/// from `old` (fetched from the log).
fn add_checkpoint_body(server: &Server, old: u64) -> Vec<u8> {
    let info = get_json(&format!("{}/api/v1/log", server.url)).1;
    let size = info["tree_size"].as_u64().unwrap();
    let proof = if old == 0 || old == size {
        Vec::new()
    } else {
        let p = get_json(&format!(
            "{}/api/v1/proof/consistency?from={old}&to={size}",
            server.url
        ))
        .1;
        p["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                pedigree_core::merkle::hash_from_slice(
                    "h",
                    &hex::decode(h.as_str().unwrap()).unwrap(),
                )
                .unwrap()
            })
            .collect()
    };
    AddCheckpoint {
        old_size: old,
        proof,
        checkpoint: info["checkpoint"].as_str().unwrap().as_bytes().to_vec(),
    }
    .encode()
}

fn add(witness: &Witness, body: &[u8]) -> (u16, Vec<u8>) {
    let resp = ureq::post(&format!("{}/add-checkpoint", witness.url)).send_bytes(body);
    let resp = match resp {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("witness unreachable: {e}"),
    };
    let status = resp.status();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut out).unwrap();
    (status, out)
}

fn submit(server: &Server, seed: u64, n: u64) {
    let key = seeded_ed25519_key(seed);
    for i in 0..n {
        let subject = pedigree_tests::sha256_hex(format!("{seed}-{i}").as_bytes());
        let st = step_statement("https://pedigree.dev/ml/dataset/v1", &subject, &[]);
        let (status, body) = post(
            &format!("{}/api/v1/entries", server.url),
            "application/json",
            &submission(&st, &key),
        );
        assert_eq!(status, 201, "{body}");
    }
}

#[test]
fn a_witness_refuses_a_log_that_rewrote_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tempfile::tempdir().unwrap();
    let log_vkey = write_log_key(data.path(), 42, E2E_ORIGIN);
    let state = d.join("w-state");
    let w = Witness::start(
        &key(d, "w"),
        "w.example/w",
        &state,
        &[&log_vkey],
        "127.0.0.1:0",
    );
    let flag = witness_flag("w", &w);

    // History A: two entries, cosigned.
    let server = Server::start(data.path(), &["--witness", &flag]);
    submit(&server, 1, 2);
    eventually("history A cosigned", || published(&server).1 == 2);
    server.kill();
    let state_file = std::fs::read_dir(&state)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let recorded = std::fs::read(&state_file).unwrap();

    // The store is replaced, the key kept: history B under the same key and origin,
    // four other entries. The log's own attempts are refused (409, then 422), so it
    // never publishes a cosigned checkpoint.
    std::fs::remove_dir_all(data.path().join("db")).unwrap();
    let server = Server::start(data.path(), &["--witness", &flag]);
    submit(&server, 2, 4);
    eventually("refusals counted", || {
        metric(&server, "pedigree_witness_failures_total{witness=\"w\"}") >= 2
    });
    assert_eq!(published(&server).0, 503);
    assert_eq!(metric(&server, "pedigree_cosigned_tree_size"), 0);
    assert_eq!(metric(&server, "pedigree_witness_lag_entries"), 4);

    // And by hand: each refusal with the status tlog-witness gives it.
    let (status, body) = add(&w, &add_checkpoint_body(&server, 0));
    assert_eq!((status, parse_size(&body)), (409, Ok(2)));
    let (status, body) = add(&w, &add_checkpoint_body(&server, 2));
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    let (status, _) = add(&w, b"old 0\n");
    assert_eq!(status, 400);
    let other_dir = tempfile::tempdir().unwrap();
    let other = Server::start(other_dir.path(), &["--origin", "other.example/log"]);
    let (status, _) = add(&w, &add_checkpoint_body(&other, 0));
    assert_eq!(status, 404);
    let forged_dir = tempfile::tempdir().unwrap();
    write_log_key(forged_dir.path(), 43, E2E_ORIGIN);
    let forged = Server::start(forged_dir.path(), &[]);
    let (status, _) = add(&w, &add_checkpoint_body(&forged, 0));
    assert_eq!(status, 403);

    // Nothing the witness refused changed what it recorded.
    assert_eq!(std::fs::read(&state_file).unwrap(), recorded);
    assert_eq!(log_size(&server), 4);
}

#[test]
fn appends_go_on_while_a_witness_is_down_and_cosigning_catches_up() {
    let t = witnessed();
    let d = t.dir.path();
    submit(&t.server, 3, 2);
    eventually("cosigned at 2", || published(&t.server).1 == 2);

    let Witnessed { w2, server, w1, .. } = t;
    let (addr, url) = (w2.addr(), w2.url.clone());
    w2.kill();
    let started = Instant::now();
    submit(&server, 4, 5);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "appends stalled"
    );
    assert_eq!(log_size(&server), 7);
    eventually("the down witness counted", || {
        metric(&server, "pedigree_witness_failures_total{witness=\"two\"}") > 0
    });
    // Two cosignatures are required: the published checkpoint stays at 2 and lags.
    let (status, size, note) = published(&server);
    assert_eq!(
        (status, size),
        (200, 2),
        "{}",
        String::from_utf8_lossy(&note)
    );
    assert_eq!(metric(&server, "pedigree_witness_lag_entries"), 5);

    // Back on the same address with its state: it catches up with a consistency proof.
    let w2 = Witness::start(
        &d.join("w2.key"),
        "w.example/two",
        &d.join("w2-state"),
        &[&format!("{E2E_ORIGIN}={}", server.vkey)],
        &addr,
    );
    assert_eq!(w2.url, url);
    eventually("cosigned at 7", || published(&server).1 == 7);
    assert_eq!(metric(&server, "pedigree_cosigned_tree_size"), 7);
    assert_eq!(metric(&server, "pedigree_witness_lag_entries"), 0);
    let note = published(&server).2;
    let policy = WitnessPolicy::new(
        vec![
            pedigree_core::witness::WitnessVerifier::from_vkey(&w1.vkey).unwrap(),
            pedigree_core::witness::WitnessVerifier::from_vkey(&w2.vkey).unwrap(),
        ],
        2,
    )
    .unwrap();
    assert_eq!(policy.check(&note).unwrap().len(), 2);
}
