//! Backup and restore: `pedigree-server backup` of a real server while clients append,
//! `restore` into a new directory, `fsck` on it, and a server started on the copy.

use pedigree_core::checkpoint::LogVerifier;
use pedigree_core::merkle;
use pedigree_tests::{
    agent, binary, get_json_with, post_with, seeded_ed25519_key, step_statement, submission, Server,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: u64 = 4;

/// An acknowledged submission: where it is and the checkpoint it was answered with.
#[derive(Clone, Debug)]
struct Ack {
    log_index: u64,
    leaf_hash: String,
    tree_size: u64,
    root_hash: [u8; 32],
}

fn server_cmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("pedigree-server"))
        .args(args)
        .output()
        .expect("run pedigree-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn hex32(v: &Value) -> Vec<[u8; 32]> {
    v.as_array()
        .expect("hash array")
        .iter()
        .map(|h| {
            hex::decode(h.as_str().expect("hex"))
                .expect("hex")
                .try_into()
                .expect("32 bytes")
        })
        .collect()
}

/// Submits from `WRITERS` threads until `stop`, recording every acknowledgement.
fn start_writers(
    url: &str,
    verifier: &LogVerifier,
    acks: &Arc<Mutex<Vec<Ack>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..WRITERS)
        .map(|w| {
            let (url, verifier) = (format!("{url}/api/v1/entries"), verifier.clone());
            let (acks, stop) = (Arc::clone(acks), Arc::clone(stop));
            std::thread::spawn(move || {
                let http = agent();
                let key = seeded_ed25519_key(700 + w);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let subject = format!("{:032x}{:032x}", w, n);
                    let body = submission(
                        &step_statement("https://pedigree.dev/ml/train/v1", &subject, &[]),
                        &key,
                    );
                    let (status, answer) = post_with(&http, &url, "application/json", &body);
                    assert_eq!(status, 201, "{answer}");
                    let cp = verifier
                        .verify(answer["checkpoint"].as_str().unwrap().as_bytes())
                        .expect("acknowledged with a checkpoint signed by the log");
                    acks.lock().unwrap().push(Ack {
                        log_index: answer["log_index"].as_u64().unwrap(),
                        leaf_hash: answer["leaf_hash"].as_str().unwrap().to_string(),
                        tree_size: cp.tree_size,
                        root_hash: cp.root_hash.0,
                    });
                }
            })
        })
        .collect()
}

fn wait_for_acks(acks: &Mutex<Vec<Ack>>, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.lock().unwrap().len() < at_least {
        assert!(Instant::now() < deadline, "appends stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn online_backup_under_appends_restores_every_acknowledged_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, backup, restored) = (
        tmp.path().join("data"),
        tmp.path().join("backup"),
        tmp.path().join("restored"),
    );
    let server = Server::start(&data, &["--batch-wait-ms", "2"]);
    let verifier = LogVerifier::from_vkey(&server.vkey).unwrap();
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&server.url, &verifier, &acks, &stop);

    wait_for_acks(&acks, 60);
    // Everything acknowledged before the backup begins must be in it.
    let before: Vec<Ack> = acks.lock().unwrap().clone();
    let (ok, out, err) = server_cmd(&["backup", "--data-dir", path(&data), "--to", path(&backup)]);
    assert!(ok, "backup failed: {err}");
    assert!(out.contains("the running server (online)"), "{out}");
    let during = acks.lock().unwrap().len();
    wait_for_acks(&acks, during + 40);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    assert!(
        acks.lock().unwrap().len() > before.len() + 40,
        "appends continued through the backup"
    );

    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(backup.join("log-signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the backed-up key keeps mode 0600");

    // Restore refuses a directory that holds anything.
    let (ok, _, err) = server_cmd(&[
        "restore",
        "--from",
        path(&backup),
        "--data-dir",
        path(&data),
    ]);
    assert!(!ok);
    assert!(err.contains("is not empty"), "{err}");

    let (ok, out, err) = server_cmd(&[
        "restore",
        "--from",
        path(&backup),
        "--data-dir",
        path(&restored),
    ]);
    assert!(ok, "restore failed: {err}");
    assert!(out.contains("written and checked"), "{out}");
    let (ok, out, err) = server_cmd(&["fsck", "--data-dir", path(&restored)]);
    assert!(ok, "fsck of the restored log failed: {err}");
    assert!(out.contains("consistent"), "{out}");

    // The restored log is the same log: same key, and it extends every checkpoint handed
    // out before the backup.
    let copy = Server::start(&restored, &[]);
    assert_eq!(copy.vkey, server.vkey);
    let http = agent();
    let (status, log) = get_json_with(&http, &format!("{}/api/v1/log", copy.url));
    assert_eq!(status, 200);
    let restored_cp = verifier
        .verify(log["checkpoint"].as_str().unwrap().as_bytes())
        .unwrap();
    let last_before = before.iter().map(|a| a.log_index).max().unwrap();
    assert!(restored_cp.tree_size > last_before);
    let mut checkpoints: Vec<(u64, [u8; 32])> =
        before.iter().map(|a| (a.tree_size, a.root_hash)).collect();
    checkpoints.sort();
    checkpoints.dedup();
    for (size, root) in &checkpoints {
        if *size == restored_cp.tree_size {
            assert_eq!(*root, restored_cp.root_hash.0);
            continue;
        }
        let (status, proof) = get_json_with(
            &http,
            &format!(
                "{}/api/v1/proof/consistency?from={size}&to={}",
                copy.url, restored_cp.tree_size
            ),
        );
        assert_eq!(status, 200, "{proof}");
        merkle::verify_consistency(
            *size,
            restored_cp.tree_size,
            &hex32(&proof["hashes"]),
            root,
            &restored_cp.root_hash.0,
        )
        .unwrap_or_else(|e| {
            panic!("checkpoint {size} is not consistent with the restored log: {e}")
        });
    }
    for ack in &before {
        let (status, e) = get_json_with(
            &http,
            &format!("{}/api/v1/entries/{}", copy.url, ack.log_index),
        );
        assert_eq!(status, 200, "entry {} missing after restore", ack.log_index);
        assert_eq!(e["leaf_hash"].as_str().unwrap(), ack.leaf_hash);
    }
    // The backup carried the key: the restored log appends and signs as the same log.
    let body = submission(
        &step_statement("https://pedigree.dev/ml/train/v1", &"ab".repeat(32), &[]),
        &seeded_ed25519_key(799),
    );
    let (status, answer) = post_with(
        &http,
        &format!("{}/api/v1/entries", copy.url),
        "application/json",
        &body,
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["log_index"], restored_cp.tree_size);
    drop(copy);

    // With no server running, backup opens the store itself.
    server.kill();
    let offline = tmp.path().join("offline");
    let (ok, out, err) = server_cmd(&["backup", "--data-dir", path(&data), "--to", path(&offline)]);
    assert!(ok, "offline backup failed: {err}");
    assert!(out.contains("no server was running"), "{out}");
}
