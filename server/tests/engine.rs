//! Log engine tests on a real RocksDB directory: proofs against core's verifier,
//! reopen, tamper detection and storage fault injection.

use pedigree_core::checkpoint::{LogSigner, SignedCheckpoint};
use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::entry::{admit, Admitted, Limits};
use pedigree_core::keys::{Algorithm, PrivateKey};
use pedigree_core::merkle::{self, Hash};
use pedigree_core::tiles::{self, TileCoord};
use pedigree_server::engine::{EngineError, LogEngine};
use pedigree_server::layout::{self, IndexKind};
use pedigree_server::storage::{Column, RocksStore, Store, StoreError, WriteBatch};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

mod support;

const ORIGIN: &str = "test.pedigree.dev/log";

fn signer() -> LogSigner {
    LogSigner::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[42; 32])).unwrap()
}

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(Algorithm::Ed25519))
}

/// A signed, admitted entry about a subject derived from `n`, built from `material`.
fn entry(n: u64, material: Option<u64>) -> Admitted {
    let env = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        support::train_statement(n, material),
        &[key()],
    );
    admit(&env, &[key().public_key()], &Limits::default(), 1_000 + n).unwrap()
}

fn subject_term(n: u64) -> String {
    format!("sha256:{}", support::digest(n))
}

fn open(dir: &std::path::Path) -> Result<LogEngine<RocksStore>, EngineError> {
    LogEngine::open(RocksStore::open(dir).unwrap(), signer())
}

/// Re-verifies everything a client could check: the checkpoint signature, that the
/// stored hashes rebuild its root, and that every hash tile and entry bundle agrees
/// with the leaves.
fn check_log<S: Store>(engine: &LogEngine<S>) {
    let cp = engine.checkpoint();
    let verified = engine
        .verifier()
        .verify(&cp.note)
        .expect("checkpoint verifies");
    assert_eq!(verified.root_hash, engine.root_at(cp.tree_size).unwrap());
    let n = cp.tree_size;
    let mut leaf_hashes = Vec::new();
    for t in 0..n.div_ceil(tiles::TILE_WIDTH) {
        let width = (n - t * tiles::TILE_WIDTH).min(tiles::TILE_WIDTH) as u16;
        let bundle = engine
            .tile(&TileCoord {
                level: 0,
                index: t,
                width,
                entries: true,
            })
            .unwrap();
        let hashes = engine
            .tile(&TileCoord {
                level: 0,
                index: t,
                width,
                entries: false,
            })
            .unwrap();
        let entries = tiles::parse_bundle(&bundle).unwrap();
        assert_eq!(entries.len(), usize::from(width));
        for (i, e) in entries.iter().enumerate() {
            let h = merkle::leaf_hash(e);
            assert_eq!(&hashes[i * 32..i * 32 + 32], &h.0[..], "tile {t} entry {i}");
            leaf_hashes.push(h);
        }
    }
    assert_eq!(root_from_leaves(&leaf_hashes), cp.root_hash);
}

/// Independent RFC 6962 root computation (MTH, section 2.1.1) from leaf hashes.
fn root_from_leaves(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => merkle::EMPTY_TREE_HASH,
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            merkle::node_hash(
                root_from_leaves(&leaves[..k]),
                root_from_leaves(&leaves[k..]),
            )
        }
    }
}

#[test]
fn proofs_verify_for_random_sizes_and_fail_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let mut rng = StdRng::seed_from_u64(6962);
    let entries: Vec<Admitted> = (0..5_000).map(|n| entry(n, None)).collect();
    let mut at = 0;
    while at < entries.len() {
        let take = rng.gen_range(1..=300).min(entries.len() - at);
        engine.append_batch(&entries[at..at + take]).unwrap();
        at += take;
    }
    check_log(&engine);
    let hashes: Vec<Hash> = entries.iter().map(|a| a.record.leaf_hash()).collect();
    for _ in 0..6 {
        let size = rng.gen_range(1..=5_000u64);
        let root = engine.root_at(size).unwrap();
        assert_eq!(root, root_from_leaves(&hashes[..size as usize]));
        for i in 0..size {
            let proof = engine.inclusion_proof(i, size).unwrap();
            merkle::verify_inclusion(i, size, &hashes[i as usize].0, &proof, &root.0).unwrap();
            if i % 97 == 0 {
                let wrong_leaf = hashes[((i + 1) % size) as usize];
                if size > 1 {
                    assert!(
                        merkle::verify_inclusion(i, size, &wrong_leaf.0, &proof, &root.0).is_err()
                    );
                    // A proof for one size does not verify as one for twice that size.
                    assert!(merkle::verify_inclusion(
                        i,
                        size * 2,
                        &hashes[i as usize].0,
                        &proof,
                        &root.0
                    )
                    .is_err());
                }
                let mut bad_root = root.0;
                bad_root[31] ^= 1;
                assert!(merkle::verify_inclusion(
                    i,
                    size,
                    &hashes[i as usize].0,
                    &proof,
                    &bad_root
                )
                .is_err());
            }
        }
        for old in (1..=size).step_by(7).chain([size]) {
            let old_root = engine.root_at(old).unwrap();
            let proof = engine.consistency_proof(old, size).unwrap();
            merkle::verify_consistency(old, size, &proof, &old_root.0, &root.0).unwrap();
            if old < size {
                let mut bad = old_root.0;
                bad[0] ^= 0x80;
                assert!(merkle::verify_consistency(old, size, &proof, &bad, &root.0).is_err());
                assert!(
                    merkle::verify_consistency(old, size * 2, &proof, &old_root.0, &root.0)
                        .is_err()
                );
                assert!(merkle::verify_consistency(old, size, &proof, &old_root.0, &bad).is_err());
            }
        }
    }
}

#[test]
fn hundred_thousand_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let total = 100_000u64;
    let entries: Vec<Admitted> = (0..total).map(|n| entry(n, n.checked_sub(1))).collect();
    let before = {
        let engine = open(dir.path()).unwrap();
        for chunk in entries.chunks(1_000) {
            let commit = engine.append_batch(chunk).unwrap();
            assert!(commit.outcomes.iter().all(|o| !o.duplicate));
        }
        engine.checkpoint()
    };
    let engine = open(dir.path()).unwrap();
    assert_eq!(engine.checkpoint(), before);
    assert_eq!(before.tree_size, total);
    check_log(&engine);
    let mut rng = StdRng::seed_from_u64(100_000);
    for _ in 0..200 {
        let i = rng.gen_range(0..total);
        let proof = engine.inclusion_proof(i, total).unwrap();
        let leaf = entries[i as usize].record.leaf_hash();
        merkle::verify_inclusion(i, total, &leaf.0, &proof, &before.root_hash.0).unwrap();
        assert_eq!(
            engine
                .search(IndexKind::Subject, &subject_term(i), None, 10)
                .unwrap(),
            vec![i]
        );
        // Entry i was built from the subject of entry i - 1.
        assert_eq!(
            engine
                .search(IndexKind::Material, &subject_term(i), None, 10)
                .unwrap(),
            if i + 1 < total { vec![i + 1] } else { vec![] }
        );
        let stored = engine.entry(i).unwrap();
        assert_eq!(stored.record, entries[i as usize].record);
        assert_eq!(stored.envelope_json, entries[i as usize].envelope_json);
    }
    let fp = key().public_key().fingerprint().to_string();
    let page = engine.search(IndexKind::Signer, &fp, Some(41), 5).unwrap();
    assert_eq!(page, vec![42, 43, 44, 45, 46]);
}

#[test]
fn resubmitted_envelopes_are_not_appended_twice() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let a = entry(1, None);
    let b = entry(2, None);
    let first = engine
        .append_batch(&[a.clone(), b.clone(), a.clone()])
        .unwrap();
    assert_eq!(first.checkpoint.tree_size, 2);
    assert!(first.outcomes[2].duplicate);
    assert_eq!(first.outcomes[2].leaf_index, 0);
    let again = engine.append_batch(&[b]).unwrap();
    assert_eq!(again.checkpoint, first.checkpoint);
    assert_eq!(again.outcomes[0].leaf_index, 1);
    assert!(again.outcomes[0].duplicate);
}

fn flip_value(dir: &std::path::Path, col: Column, key: &[u8]) {
    let store = RocksStore::open(dir).unwrap();
    let mut value = store.get(col, key).unwrap().expect("value to flip");
    let last = value.len() - 1;
    value[last / 2] ^= 0x01;
    let mut batch = WriteBatch::default();
    batch.put(col, key.to_vec(), value);
    store.write(batch).unwrap();
}

fn log_of(dir: &std::path::Path, n: u64) -> Arc<SignedCheckpoint> {
    let engine = open(dir).unwrap();
    let entries: Vec<Admitted> = (0..n).map(|i| entry(i, None)).collect();
    engine.append_batch(&entries).unwrap();
    engine.checkpoint()
}

#[test]
fn open_refuses_a_flipped_stored_hash() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 300);
    // The root of the first 256 leaves is one of the hashes the root is built from.
    flip_value(
        dir.path(),
        Column::Hashes,
        &layout::u64_key(merkle::stored_hash_index(8, 0)),
    );
    let err = open(dir.path()).err().expect("open must refuse");
    assert!(
        err.to_string().contains("stored Merkle hashes give root"),
        "{err}"
    );
}

#[test]
fn open_refuses_a_flipped_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 10);
    flip_value(dir.path(), Column::Meta, layout::META_CHECKPOINT);
    let err = open(dir.path()).err().expect("open must refuse");
    assert!(
        err.to_string().contains("stored checkpoint is not valid"),
        "{err}"
    );
}

#[test]
fn open_refuses_a_flipped_last_leaf() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 10);
    flip_value(dir.path(), Column::Leaves, &layout::u64_key(9));
    let err = open(dir.path()).err().expect("open must refuse");
    assert!(err.to_string().contains("leaf 9 does not match"), "{err}");
}

#[test]
fn open_refuses_another_logs_key() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 3);
    let other = LogSigner::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[7; 32])).unwrap();
    let err = LogEngine::open(RocksStore::open(dir.path()).unwrap(), other)
        .err()
        .expect("open must refuse");
    assert!(err.to_string().contains("not valid for log key"), "{err}");
}

/// Faults injected at the storage trait, after Sunlight's tests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Fault {
    None = 0,
    /// The write fails and nothing is saved.
    FailBefore = 1,
    /// The write is saved but reports failure.
    FailAfter = 2,
    /// The write fails, then re-reading the checkpoint fails too.
    FailAndBlind = 3,
}

struct FaultyStore {
    inner: RocksStore,
    fault: Arc<AtomicU8>,
    blind: Arc<AtomicU8>,
}

impl Store for FaultyStore {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.blind.load(Ordering::SeqCst) == 1 {
            return Err(StoreError::Io("injected read failure".into()));
        }
        self.inner.get(col, key)
    }
    fn multi_get(&self, col: Column, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.multi_get(col, keys)
    }
    fn scan(
        &self,
        col: Column,
        p: &[u8],
        s: &[u8],
        l: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.inner.scan(col, p, s, l)
    }
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        match self.fault.swap(Fault::None as u8, Ordering::SeqCst) {
            1 => Err(StoreError::Io("injected failure before write".into())),
            2 => {
                self.inner.write(batch)?;
                Err(StoreError::Io("injected failure after write".into()))
            }
            3 => {
                self.blind.store(1, Ordering::SeqCst);
                Err(StoreError::Io("injected failure before write".into()))
            }
            _ => self.inner.write(batch),
        }
    }
}

fn faulty(dir: &std::path::Path) -> (LogEngine<FaultyStore>, Arc<AtomicU8>, Arc<AtomicU8>) {
    let fault = Arc::new(AtomicU8::new(0));
    let blind = Arc::new(AtomicU8::new(0));
    let store = FaultyStore {
        inner: RocksStore::open(dir).unwrap(),
        fault: Arc::clone(&fault),
        blind: Arc::clone(&blind),
    };
    (LogEngine::open(store, signer()).unwrap(), fault, blind)
}

/// Which faults still let the log make progress, and which stop it:
/// | fault        | append result | state after                  | next append |
/// | FailBefore   | error         | unchanged                    | succeeds    |
/// | FailAfter    | error         | adopts the stored checkpoint | succeeds    |
/// | FailAndBlind | error         | unchanged, appends stopped   | refused     |
#[test]
fn storage_faults_never_yield_two_checkpoints_for_one_size() {
    for fault in [Fault::FailBefore, Fault::FailAfter, Fault::FailAndBlind] {
        let dir = tempfile::tempdir().unwrap();
        let (engine, inject, blind) = faulty(dir.path());
        engine
            .append_batch(&[entry(0, None), entry(1, None)])
            .unwrap();
        let before = engine.checkpoint();
        let mut handed_out = vec![before.clone()];

        inject.store(fault as u8, Ordering::SeqCst);
        let failed = engine.append_batch(&[entry(2, None), entry(3, None)]);
        assert!(failed.is_err(), "{fault:?}: append must report the failure");
        let after = engine.checkpoint();
        match fault {
            Fault::FailBefore | Fault::FailAndBlind => assert_eq!(after, before, "{fault:?}"),
            _ => assert_eq!(after.tree_size, 4, "{fault:?}: stored batch adopted"),
        }
        // Storage must agree with the engine: no checkpoint covers unstored entries.
        let stored = engine
            .store()
            .inner
            .get(Column::Meta, layout::META_CHECKPOINT)
            .unwrap()
            .unwrap();
        assert_eq!(stored, after.note, "{fault:?}");

        let next = engine.append_batch(&[entry(2, None), entry(4, None)]);
        if fault == Fault::FailAndBlind {
            assert!(matches!(next, Err(EngineError::Poisoned(_))), "{fault:?}");
            blind.store(0, Ordering::SeqCst);
            drop(engine);
            let reopened = open(dir.path()).unwrap();
            assert_eq!(reopened.checkpoint(), before);
            check_log(&reopened);
            continue;
        }
        let next = next.unwrap();
        handed_out.push(next.checkpoint.clone());
        if fault == Fault::FailAfter {
            assert!(
                next.outcomes[0].duplicate,
                "entry 2 landed in the failed batch"
            );
        }
        drop(engine);
        let reopened = open(dir.path()).unwrap();
        check_log(&reopened);
        let final_cp = reopened.checkpoint();
        for cp in handed_out {
            let root = reopened.root_at(cp.tree_size).unwrap();
            assert_eq!(
                root, cp.root_hash,
                "{fault:?}: checkpoint {} rewritten",
                cp.tree_size
            );
            let proof = reopened
                .consistency_proof(cp.tree_size, final_cp.tree_size)
                .unwrap();
            merkle::verify_consistency(
                cp.tree_size,
                final_cp.tree_size,
                &proof,
                &cp.root_hash.0,
                &final_cp.root_hash.0,
            )
            .unwrap();
        }
    }
}

/// A health probe's success is reused for a few seconds, but not past a failed append:
/// a full disk must show in `/healthz` at once.
#[test]
fn a_failed_append_makes_the_next_health_probe_write_again() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, inject, _) = faulty(dir.path());
    engine.probe_storage().unwrap();
    inject.store(Fault::FailBefore as u8, Ordering::SeqCst);
    assert!(engine.append_batch(&[entry(0, None)]).is_err());
    inject.store(Fault::FailBefore as u8, Ordering::SeqCst);
    assert!(engine.probe_storage().is_err(), "probe answered from cache");
    engine.probe_storage().unwrap();
    engine.append_batch(&[entry(0, None)]).unwrap();
}

#[test]
fn reads_past_the_tree_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    log_of(dir.path(), 5);
    let engine = open(dir.path()).unwrap();
    assert!(matches!(engine.entry(5), Err(EngineError::NotFound(_))));
    assert!(engine.inclusion_proof(5, 5).is_err());
    assert!(engine.inclusion_proof(0, 6).is_err());
    assert!(engine.consistency_proof(0, 5).is_err());
    assert!(engine.consistency_proof(3, 6).is_err());
    let t = TileCoord::from_path("tile/entries/000.p/6").unwrap();
    assert!(matches!(engine.tile(&t), Err(EngineError::NotFound(_))));
    assert_eq!(
        engine
            .search(IndexKind::Subject, &subject_term(1), Some(u64::MAX), 10)
            .unwrap(),
        Vec::<u64>::new()
    );
}
