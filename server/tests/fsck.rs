//! `fsck` on real RocksDB stores: a clean log passes with every row counted; damage in
//! each column family is named by column and key; the server refuses to start on damage
//! its open-time check covers, and `pedigree-server fsck` finds the damage it does not.

use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey as _};
use pedigree_core::checkpoint::LogSigner;
use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::entry::{admit, Admitted, Limits};
use pedigree_core::keys::PrivateKey;
use pedigree_core::merkle;
use pedigree_server::engine::LogEngine;
use pedigree_server::fsck::{self, Damage, FsckError};
use pedigree_server::layout::{self, META_CHECKPOINT};
use pedigree_server::storage::{Column, RocksStore, Store, WriteBatch};
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const ORIGIN: &str = "fsck.pedigree.dev/log";
/// Entries in the test log: more than one full tile, so hashes of several levels exist.
const SIZE: u64 = 300;

fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

fn signer() -> LogSigner {
    LogSigner::new(ORIGIN, signing_key()).unwrap()
}

fn seeded_key(seed: u8) -> PrivateKey {
    let pem = ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    PrivateKey::from_pem(&pem).unwrap()
}

/// Entry `n`: a model built from entry `n - 1`'s model, signed by one key, every tenth
/// by two.
fn entry(n: u64, keys: &[PrivateKey; 2]) -> Admitted {
    let signers: Vec<&PrivateKey> = if n.is_multiple_of(10) {
        keys.iter().collect()
    } else {
        vec![&keys[0]]
    };
    let env = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        support::train_statement(n, n.checked_sub(1)),
        &signers,
    );
    let verifiers: Vec<_> = signers.iter().map(|k| k.public_key()).collect();
    admit(&env, &verifiers, &Limits::default(), 1_000 + n).unwrap()
}

fn entries() -> &'static [Admitted] {
    static ENTRIES: OnceLock<Vec<Admitted>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let keys = [seeded_key(1), seeded_key(2)];
        (0..SIZE).map(|n| entry(n, &keys)).collect()
    })
}

/// A data directory as the server lays it out: `db/` and a 0600 `log-signing.key`.
fn build_log(dir: &Path) {
    let engine = LogEngine::open(RocksStore::open(&dir.join("db")).unwrap(), signer()).unwrap();
    for chunk in entries().chunks(70) {
        engine.append_batch(chunk).unwrap();
    }
    drop(engine);
    let pem = signing_key().to_pkcs8_pem(LineEnding::LF).unwrap();
    let path = dir.join("log-signing.key");
    std::fs::write(&path, pem.as_bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A fresh copy of one log built once per test binary.
fn fresh_log() -> tempfile::TempDir {
    static TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        build_log(dir.path());
        dir
    });
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template.path(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("db")
}

fn run_fsck(dir: &Path) -> Result<fsck::Summary, FsckError> {
    let store = RocksStore::open_read_only(&db(dir)).unwrap();
    fsck::check(&store, &signer().verifier())
}

fn damage_of(dir: &Path) -> Damage {
    match run_fsck(dir) {
        Err(FsckError::Damaged(d)) => *d,
        other => panic!("fsck must find damage, got {other:?}"),
    }
}

fn put(dir: &Path, col: Column, key: &[u8], value: Vec<u8>) {
    let store = RocksStore::open(&db(dir)).unwrap();
    let mut batch = WriteBatch::default();
    batch.put(col, key.to_vec(), value);
    store.write(batch).unwrap();
}

/// Flips one bit in the middle of a stored value, as `server/tests/engine.rs` does.
fn flip_value(dir: &Path, col: Column, key: &[u8]) {
    let store = RocksStore::open(&db(dir)).unwrap();
    let mut value = store.get(col, key).unwrap().expect("value to flip");
    let last = value.len() - 1;
    value[last / 2] ^= 0x01;
    drop(store);
    put(dir, col, key, value);
}

/// Deletes a row; the `Store` trait has no delete (a log never deletes), so this goes
/// to RocksDB directly.
fn delete(dir: &Path, col: Column, key: &[u8]) {
    let names: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), db(dir), names).unwrap();
    db.delete_cf(db.cf_handle(col.name()).unwrap(), key)
        .unwrap();
}

fn leaf7() -> &'static Admitted {
    &entries()[7]
}

/// The first index row of `col` that leaf 7 has.
fn row_of_leaf7(col: Column) -> Vec<u8> {
    layout::index_rows(&leaf7().record, 7)
        .into_iter()
        .find(|(c, _)| *c == col)
        .map(|(_, k)| k)
        .unwrap()
}

#[test]
fn fsck_passes_a_clean_log_and_counts_every_row() {
    let dir = fresh_log();
    let summary = run_fsck(dir.path()).unwrap();
    let cp = summary.checkpoint.as_ref().unwrap();
    assert_eq!(cp.tree_size, SIZE);
    assert_eq!(summary.leaves, SIZE);
    assert_eq!(summary.stored_hashes, merkle::stored_hash_count(SIZE));
    assert_eq!(summary.envelopes, SIZE);
    assert_eq!(summary.dedup_rows, SIZE);
    assert_eq!(summary.keys, 2);
    let rows = |name: &str| summary.index_rows[name];
    assert_eq!(rows("idx_subject"), SIZE);
    assert_eq!(rows("idx_material"), SIZE - 1);
    assert_eq!(rows("idx_predicate"), SIZE);
    assert_eq!(rows("idx_signer"), SIZE + SIZE.div_ceil(10));
}

#[test]
fn fsck_of_a_store_that_never_started_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    drop(RocksStore::open(&db(dir.path())).unwrap());
    let summary = run_fsck(dir.path()).unwrap();
    assert!(summary.checkpoint.is_none());
}

/// One kind of damage and where fsck must say it is.
struct Case {
    name: &'static str,
    damage: Box<dyn Fn(&Path)>,
    column: Column,
    key: Vec<u8>,
    /// Text the report must contain.
    mentions: &'static str,
}

#[test]
fn fsck_names_damage_in_every_column_family() {
    let digest7 = leaf7().record.envelope_sha256.to_vec();
    let signer_fp = leaf7().record.signers[0].0.to_vec();
    let size_key = layout::u64_key(SIZE);
    let mut cases = vec![
        Case {
            name: "flipped checkpoint",
            damage: Box::new(|d| flip_value(d, Column::Meta, META_CHECKPOINT)),
            column: Column::Meta,
            key: META_CHECKPOINT.to_vec(),
            mentions: "fails verification",
        },
        Case {
            name: "unknown meta key",
            damage: Box::new(|d| put(d, Column::Meta, b"stray", vec![1])),
            column: Column::Meta,
            key: b"stray".to_vec(),
            mentions: "unknown key",
        },
        Case {
            name: "flipped leaf in the middle",
            damage: Box::new(|d| flip_value(d, Column::Leaves, &layout::u64_key(7))),
            column: Column::Leaves,
            key: layout::u64_key(7),
            mentions: "proven by the signed checkpoint",
        },
        Case {
            name: "flipped last leaf",
            damage: Box::new(|d| flip_value(d, Column::Leaves, &layout::u64_key(SIZE - 1))),
            column: Column::Leaves,
            key: layout::u64_key(SIZE - 1),
            mentions: "leaf 299",
        },
        Case {
            name: "leaf beyond the tree",
            damage: Box::new({
                let k = size_key.clone();
                move |d| put(d, Column::Leaves, &k, vec![1])
            }),
            column: Column::Leaves,
            key: size_key.clone(),
            mentions: "beyond the tree size 300",
        },
        Case {
            name: "flipped leaf hash",
            damage: Box::new(|d| {
                let k = layout::u64_key(merkle::stored_hash_index(0, 7));
                flip_value(d, Column::Hashes, &k)
            }),
            column: Column::Hashes,
            key: layout::u64_key(merkle::stored_hash_index(0, 7)),
            mentions: "leaf hash of leaf 7",
        },
        Case {
            name: "flipped deep interior hash",
            damage: Box::new(|d| {
                let k = layout::u64_key(merkle::stored_hash_index(2, 1));
                flip_value(d, Column::Hashes, &k)
            }),
            column: Column::Hashes,
            key: layout::u64_key(merkle::stored_hash_index(2, 1)),
            mentions: "level 2, node 1",
        },
        Case {
            name: "stored hash beyond the tree",
            damage: Box::new(|d| {
                let k = layout::u64_key(merkle::stored_hash_count(SIZE));
                put(d, Column::Hashes, &k, vec![0; 32])
            }),
            column: Column::Hashes,
            key: layout::u64_key(merkle::stored_hash_count(SIZE)),
            mentions: "no stored hash beyond",
        },
        Case {
            name: "flipped envelope",
            damage: Box::new({
                let k = digest7.clone();
                move |d| flip_value(d, Column::Envelopes, &k)
            }),
            column: Column::Envelopes,
            key: digest7.clone(),
            mentions: "content with SHA-256",
        },
        Case {
            name: "envelope no leaf references",
            damage: Box::new(|d| put(d, Column::Envelopes, &[0xee; 32], b"{}".to_vec())),
            column: Column::Envelopes,
            key: vec![0xee; 32],
            mentions: "no leaf references",
        },
        Case {
            name: "flipped signer key",
            damage: Box::new({
                let k = signer_fp.clone();
                move |d| flip_value(d, Column::Keys, &k)
            }),
            column: Column::Keys,
            key: signer_fp.clone(),
            mentions: "DER with SHA-256",
        },
        Case {
            name: "missing signer key",
            damage: Box::new({
                let k = signer_fp.clone();
                move |d| delete(d, Column::Keys, &k)
            }),
            column: Column::Keys,
            key: signer_fp.clone(),
            mentions: "found nothing",
        },
        Case {
            name: "flipped dedup row",
            damage: Box::new({
                let k = digest7.clone();
                move |d| flip_value(d, Column::Dedup, &k)
            }),
            column: Column::Dedup,
            key: digest7.clone(),
            mentions: "expected leaf index 7",
        },
        Case {
            name: "missing dedup row",
            damage: Box::new({
                let k = digest7.clone();
                move |d| delete(d, Column::Dedup, &k)
            }),
            column: Column::Dedup,
            key: digest7.clone(),
            mentions: "found nothing",
        },
    ];
    for col in [
        Column::IdxSubject,
        Column::IdxSigner,
        Column::IdxMaterial,
        Column::IdxPredicate,
    ] {
        let row = row_of_leaf7(col);
        let mut flipped = row.clone();
        flipped[5] ^= 0x01;
        let mut other_leaf = row.clone();
        other_leaf[39] = 8;
        cases.push(Case {
            name: "index row with a value",
            damage: Box::new({
                let k = row.clone();
                move |d| put(d, col, &k, vec![0xab])
            }),
            column: col,
            key: row.clone(),
            mentions: "found value ab",
        });
        cases.push(Case {
            name: "missing index row",
            damage: Box::new({
                let k = row.clone();
                move |d| delete(d, col, &k)
            }),
            column: col,
            key: row.clone(),
            mentions: "found nothing",
        });
        cases.push(Case {
            name: "index row with a flipped term",
            damage: Box::new({
                let k = flipped.clone();
                move |d| put(d, col, &k, Vec::new())
            }),
            column: col,
            key: flipped,
            mentions: "a term leaf 7 does not have",
        });
        if col != Column::IdxPredicate && col != Column::IdxSigner {
            cases.push(Case {
                name: "index row naming the wrong leaf",
                damage: Box::new({
                    let k = other_leaf.clone();
                    move |d| put(d, col, &k, Vec::new())
                }),
                column: col,
                key: other_leaf,
                mentions: "a term leaf 8 does not have",
            });
        }
    }
    let mut columns_seen = std::collections::BTreeSet::new();
    for case in &cases {
        let dir = fresh_log();
        (case.damage)(dir.path());
        let d = damage_of(dir.path());
        println!("{}: {d}", case.name);
        assert_eq!(
            (d.column, hex::encode(&d.key)),
            (case.column, hex::encode(&case.key)),
            "{}: {d}",
            case.name
        );
        assert!(
            d.to_string().contains(case.mentions),
            "{}: {d} should mention {:?}",
            case.name,
            case.mentions
        );
        columns_seen.insert(case.column.name());
    }
    assert_eq!(columns_seen.len(), Column::ALL.len(), "{columns_seen:?}");
}

fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_pedigree-server")
}

/// Runs `pedigree-server fsck` on `dir`: exit code, stdout, stderr.
fn fsck_binary(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(server_bin())
        .arg("fsck")
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts the server binary on `dir`: `Ok` (and stops it) when it came up and printed its
/// address, `Err(stderr)` when it refused to start.
fn try_serve(dir: &Path) -> Result<(), String> {
    use std::io::BufRead as _;
    let mut child = Command::new(server_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--origin", ORIGIN])
        .env("PEDIGREE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next();
    match first {
        Some(Ok(line)) if line.starts_with("pedigree-server listening on") => {
            child.kill().unwrap();
            child.wait().unwrap();
            Ok(())
        }
        _ => {
            let out = child.wait_with_output().unwrap();
            assert!(!out.status.success());
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

#[test]
fn the_binary_refuses_to_serve_damaged_merkle_state_and_fsck_finds_deep_damage() {
    // Clean: serves, and fsck passes with the key from the data directory or a vkey.
    let dir = fresh_log();
    try_serve(dir.path()).expect("a clean log starts");
    let (code, out, err) = fsck_binary(dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("consistent") && out.contains("tree size 300"),
        "{out}"
    );
    let vkey = signer().verifier_key();
    let (code, out, _) = fsck_binary(dir.path(), &["--log-key", &vkey]);
    assert_eq!(code, 0);
    assert!(out.contains("leaves         300"), "{out}");

    // A hash on the path to the root: open-time check refuses to serve, fsck names it.
    let dir = fresh_log();
    let root_path = layout::u64_key(merkle::stored_hash_index(8, 0));
    flip_value(dir.path(), Column::Hashes, &root_path);
    let err = try_serve(dir.path()).expect_err("must refuse to serve");
    assert!(err.contains("stored Merkle hashes give root"), "{err}");
    let (code, _, err) = fsck_binary(dir.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "column family hashes, key {}",
            hex::encode(&root_path)
        )),
        "{err}"
    );

    // A deep hash off that path: start-up reads O(log n) hashes and cannot see it;
    // fsck does.
    let dir = fresh_log();
    let deep = layout::u64_key(merkle::stored_hash_index(1, 3));
    flip_value(dir.path(), Column::Hashes, &deep);
    try_serve(dir.path()).expect("open-time check does not read this hash");
    let (code, _, err) = fsck_binary(dir.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("column family hashes, key {}", hex::encode(&deep)))
            && err.contains("level 1, node 3"),
        "{err}"
    );

    // A checkpoint from another key: exit 1 naming meta; no store at all: exit 2.
    let other = LogSigner::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[7; 32])).unwrap();
    let (code, _, err) = fsck_binary(fresh_log().path(), &["--log-key", &other.verifier_key()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("column family meta"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = fsck_binary(empty.path(), &[]);
    assert_eq!(code, 2, "{err}");
}
