//! Unit tests of the engine's in-memory shortcuts: the right edge read once per batch,
//! proofs from a batch's hashes, and the tile cache.

use super::*;
use crate::storage::RocksStore;
use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::entry::{admit, Limits};
use pedigree_core::keys::{Algorithm, PrivateKey};
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn right_edge_lists_the_perfect_subtrees_from_the_left() {
    assert!(right_edge(0).is_empty());
    assert_eq!(right_edge(1), [merkle::stored_hash_index(0, 0)]);
    assert_eq!(
        right_edge(6),
        [
            merkle::stored_hash_index(2, 0),
            merkle::stored_hash_index(1, 2)
        ]
    );
    assert_eq!(
        right_edge(7),
        [
            merkle::stored_hash_index(2, 0),
            merkle::stored_hash_index(1, 2),
            merkle::stored_hash_index(0, 6)
        ]
    );
}

/// A RocksDB store that counts reads.
struct Counting {
    inner: RocksStore,
    reads: AtomicUsize,
}

impl Store for Counting {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(col, key)
    }
    fn multi_get(&self, col: Column, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.multi_get(col, keys)
    }
    fn scan(
        &self,
        col: Column,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<crate::storage::Row>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.scan(col, prefix, start, limit)
    }
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.write(batch)
    }
}

fn entry(key: &PrivateKey, n: u64) -> Admitted {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": format!("{n:064x}")}}],
        "predicateType": "https://pedigree.dev/test/v1",
        "predicate": {"n": n}
    });
    let env = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(&statement).unwrap(),
        &[key],
    );
    admit(&env, &[key.public_key()], &Limits::default(), n).unwrap()
}

#[test]
fn proofs_of_a_new_batch_come_from_its_hashes_without_storage_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Counting {
        inner: RocksStore::open(dir.path()).unwrap(),
        reads: AtomicUsize::new(0),
    };
    let signer = LogSigner::new(
        "test.pedigree.dev/log",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    let engine = LogEngine::open(store, signer).unwrap();
    let key = PrivateKey::generate(Algorithm::Ed25519);
    let mut n = 0;
    for batch_size in [1, 2, 3, 5, 8, 13, 21, 34, 1] {
        let entries: Vec<Admitted> = (n..n + batch_size).map(|i| entry(&key, i)).collect();
        n += batch_size;
        let commit = engine.append_batch(&entries).unwrap();
        let cp = &commit.checkpoint;
        for o in &commit.outcomes {
            let before = engine.store().reads.load(Ordering::SeqCst);
            let proof = engine
                .inclusion_proof_after(&commit.hashes, o.leaf_index, cp.tree_size)
                .unwrap();
            assert_eq!(engine.store().reads.load(Ordering::SeqCst), before);
            assert_eq!(
                proof,
                engine.inclusion_proof(o.leaf_index, cp.tree_size).unwrap()
            );
            merkle::verify_inclusion(
                o.leaf_index,
                cp.tree_size,
                &o.leaf_hash.0,
                &proof,
                &cp.root_hash.0,
            )
            .unwrap();
        }
    }
    // A batch of duplicates proves its old entries from storage.
    let again = engine.append_batch(&[entry(&key, 3)]).unwrap();
    let o = again.outcomes[0];
    assert!(o.duplicate);
    let size = again.checkpoint.tree_size;
    assert_eq!(
        engine
            .inclusion_proof_after(&again.hashes, o.leaf_index, size)
            .unwrap(),
        engine.inclusion_proof(o.leaf_index, size).unwrap()
    );
}

#[test]
fn tiles_read_by_scan_and_from_the_cache_match_the_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let signer = LogSigner::new(
        "test.pedigree.dev/log",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    let engine = LogEngine::open(RocksStore::open(dir.path()).unwrap(), signer).unwrap();
    let key = PrivateKey::generate(Algorithm::Ed25519);
    let entries: Vec<Admitted> = (0..600).map(|i| entry(&key, i)).collect();
    for batch in entries.chunks(97) {
        engine.append_batch(batch).unwrap();
    }
    let records: Vec<Vec<u8>> = (0..600)
        .map(|i| engine.record(i).unwrap().encode())
        .collect();
    for (index, width) in [(0u64, 256u16), (1, 256), (2, 88), (2, 5)] {
        let range = index as usize * 256..index as usize * 256 + usize::from(width);
        let mut hashes = Vec::new();
        let mut bundle = Vec::new();
        for r in &records[range] {
            hashes.extend_from_slice(&merkle::leaf_hash(r).0);
            tiles::push_bundle_entry(&mut bundle, r).unwrap();
        }
        for entries in [false, true] {
            let coord = TileCoord {
                level: 0,
                index,
                width,
                entries,
            };
            let want = if entries { &bundle } else { &hashes };
            // The first read goes to storage, the second (full tiles) to the cache.
            assert_eq!(&engine.tile(&coord).unwrap(), want, "{}", coord.path());
            assert_eq!(&engine.tile(&coord).unwrap(), want, "{}", coord.path());
        }
    }
    let beyond = TileCoord {
        level: 0,
        index: 2,
        width: 89,
        entries: true,
    };
    assert!(matches!(
        engine.tile(&beyond),
        Err(EngineError::NotFound(_))
    ));
}

#[test]
fn proofs_from_the_hash_cache_match_proofs_from_storage() {
    let dir = tempfile::tempdir().unwrap();
    let signer = || {
        LogSigner::new(
            "test.pedigree.dev/log",
            ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        )
        .unwrap()
    };
    let open = |bytes: u64| {
        let store = Counting {
            inner: RocksStore::open(dir.path()).unwrap(),
            reads: AtomicUsize::new(0),
        };
        LogEngine::open(store, signer())
            .unwrap()
            .with_hash_cache_bytes(bytes)
    };
    let key = PrivateKey::generate(Algorithm::Ed25519);
    let entries: Vec<Admitted> = (0..700).map(|i| entry(&key, i)).collect();

    // Reference proofs, every hash read from storage.
    let engine = open(0);
    for batch in entries[..600].chunks(97) {
        engine.append_batch(batch).unwrap();
    }
    assert_eq!(engine.hash_cache_len(), 0);
    let proofs = |e: &LogEngine<Counting>, size: u64| -> Vec<Vec<Hash>> {
        (0..size)
            .map(|i| e.inclusion_proof(i, size).unwrap())
            .chain((1..size).map(|old| e.consistency_proof(old, size).unwrap()))
            .collect()
    };
    let want = proofs(&engine, 600);
    drop(engine);

    // A cache large enough for everything: loaded, proofs need no storage read.
    let engine = open(1 << 20);
    let mut steps = 0;
    while !engine.load_hash_cache().unwrap() {
        steps += 1;
    }
    assert!(steps < 3);
    assert_eq!(engine.hash_cache_len(), merkle::stored_hash_count(600));
    let reads = engine.store().reads.load(Ordering::SeqCst);
    assert_eq!(proofs(&engine, 600), want);
    assert_eq!(engine.store().reads.load(Ordering::SeqCst), reads);
    // Appends continue the prefix, and proofs at the new size match storage's.
    for batch in entries[600..].chunks(33) {
        engine.append_batch(batch).unwrap();
    }
    assert_eq!(engine.hash_cache_len(), merkle::stored_hash_count(700));
    let cached = proofs(&engine, 700);
    drop(engine);

    // A cache smaller than the tree holds a prefix; proofs read the rest.
    let engine = open(32 * 500);
    while !engine.load_hash_cache().unwrap() {}
    assert_eq!(engine.hash_cache_len(), 500);
    let reads = engine.store().reads.load(Ordering::SeqCst);
    assert_eq!(proofs(&engine, 700), cached);
    assert!(engine.store().reads.load(Ordering::SeqCst) > reads);
    drop(engine);
    assert_eq!(proofs(&open(0), 700), cached);
}
