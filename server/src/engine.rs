//! The log engine: appends batches of admitted entries atomically and durably, signs a
//! checkpoint per batch, and answers reads (entries, proofs, tiles, index lookups).
//!
//! Concurrency: one writer at a time (the `writer` mutex), any number of readers.
//! Readers take the current checkpoint from `head` and only read below its tree size;
//! everything below a signed size is immutable, so readers need no lock on storage.
//! `head` is replaced only after the batch that extends it is durable.

use crate::layout::{self, IndexKind, META_CHECKPOINT};
use crate::storage::{Column, Store, StoreError, WriteBatch};
use pedigree_core::checkpoint::{LogSigner, LogVerifier, SignedCheckpoint};
use pedigree_core::entry::{Admitted, LeafRecord};
use pedigree_core::merkle::{self, Hash, HashReader, ProofError, EMPTY_TREE_HASH};
use pedigree_core::tiles::{self, TileCoord};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use thiserror::Error;

mod hash_cache;
mod tile_cache;

use hash_cache::HashCache;

/// Why an engine operation failed.
#[derive(Debug, Error)]
pub enum EngineError {
    /// Storage failed; the operation may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored log is damaged or does not belong to this key: refuse to serve it.
    #[error("log store is inconsistent: {0}")]
    Corrupt(String),
    /// A write failed and the engine could not tell what was stored; it stops appending
    /// rather than risk signing a second history. Restart to recover from storage.
    #[error("sequencing stopped after an unrecoverable storage failure: {0}")]
    Poisoned(String),
    /// A proof was asked for sizes or indices the log cannot answer.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// Nothing at that index, tile or term.
    #[error("{0} not found")]
    NotFound(String),
}

/// What happened to one entry of a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AppendOutcome {
    /// Where the entry is in the log.
    pub leaf_index: u64,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// The same envelope was already in the log (or earlier in this batch).
    pub duplicate: bool,
}

/// Stored hashes by stored-hash index, as one batch wrote or read them.
pub type BatchHashes = HashMap<u64, Hash>;

/// The result of committing one batch.
#[derive(Clone, Debug)]
pub struct BatchCommit {
    /// Index of the first new leaf (the tree size before the batch).
    pub first_index: u64,
    /// The checkpoint that covers every entry of the batch.
    pub checkpoint: Arc<SignedCheckpoint>,
    /// One outcome per submitted entry, in order.
    pub outcomes: Vec<AppendOutcome>,
    /// Every stored hash the batch wrote, and the right edge of the tree before it:
    /// all that an inclusion proof of a new entry against `checkpoint` needs, so
    /// [`LogEngine::inclusion_proof_after`] answers it without reading storage. The
    /// values are exactly those stored (immutable once durable).
    pub hashes: Arc<BatchHashes>,
}

/// An entry as stored: the leaf record and what it was built from.
#[derive(Clone, Debug)]
pub struct StoredEntry {
    /// Position in the log.
    pub leaf_index: u64,
    /// The encoded leaf record (the tile entry).
    pub record_bytes: Vec<u8>,
    /// The decoded leaf record.
    pub record: LeafRecord,
    /// The canonical envelope JSON.
    pub envelope_json: Vec<u8>,
    /// DER SubjectPublicKeyInfo of each signer, in record order.
    pub signer_keys_der: Vec<Vec<u8>>,
}

/// Reads stored hashes, first from a pending overlay (hashes of the batch being built).
pub(crate) struct Hashes<'a, S: Store> {
    store: &'a S,
    pending: Option<&'a HashMap<u64, Hash>>,
    cache: Option<&'a HashCache>,
}

impl<'a, S: Store> Hashes<'a, S> {
    /// A reader of the hashes stored in `store` alone.
    pub(crate) fn stored(store: &'a S) -> Self {
        Self {
            store,
            pending: None,
            cache: None,
        }
    }
}

impl<S: Store> HashReader for Hashes<'_, S> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, merkle::HashReaderError> {
        let mut out: Vec<Option<Hash>> = match self.pending {
            Some(p) => indexes.iter().map(|idx| p.get(idx).copied()).collect(),
            None => vec![None; indexes.len()],
        };
        if let Some(cache) = self.cache {
            cache.fill(indexes, &mut out);
        }
        let mut missing_keys = Vec::new();
        let mut missing_pos = Vec::new();
        for (pos, idx) in indexes.iter().enumerate() {
            if out[pos].is_none() {
                missing_keys.push(layout::u64_key(*idx));
                missing_pos.push(pos);
            }
        }
        if !missing_keys.is_empty() {
            let got = self
                .read_stored(&missing_keys)
                .map_err(|e| merkle::HashReaderError::InvalidInput(e.to_string()))?;
            for (pos, value) in missing_pos.into_iter().zip(got) {
                let value = value.ok_or_else(|| {
                    merkle::HashReaderError::InvalidInput(format!(
                        "stored hash {} is missing",
                        indexes[pos]
                    ))
                })?;
                let h = merkle::hash_from_slice("stored hash", &value)
                    .map_err(|_| merkle::HashReaderError::MalformedHash)?;
                out[pos] = Some(h);
            }
        }
        Ok(out
            .into_iter()
            .map(|h| h.unwrap_or(EMPTY_TREE_HASH))
            .collect())
    }
}

impl<S: Store> Hashes<'_, S> {
    /// Reads stored hashes by key. Keys that are ascending and dense (a hash tile's,
    /// whose level-0 hashes interleave with the interior hashes between them) are read
    /// with one ordered scan, far cheaper than as many point reads; others with one
    /// multi-get.
    fn read_stored(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let first = keys.first().and_then(|k| layout::decode_u64(k));
        let last = keys.last().and_then(|k| layout::decode_u64(k));
        let ascending = keys.windows(2).all(|w| w[0] < w[1]);
        let (Some(first), Some(last), true) = (first, last, ascending && keys.len() >= 16) else {
            return self.store.multi_get(Column::Hashes, keys);
        };
        let span = last - first + 1;
        if span > 4 * keys.len() as u64 {
            return self.store.multi_get(Column::Hashes, keys);
        }
        let rows = self
            .store
            .scan(Column::Hashes, &[], &keys[0], span as usize)?;
        let mut rows = rows.into_iter().peekable();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            while rows.next_if(|(k, _)| k < key).is_some() {}
            out.push(rows.next_if(|(k, _)| k == key).map(|(_, v)| v));
        }
        Ok(out)
    }
}

/// Most bytes of full tiles kept in memory (see [`tile_cache`]).
const TILE_CACHE_BYTES: usize = 64 << 20;

/// Most bytes of stored hashes kept in memory unless configured otherwise (see
/// [`hash_cache`]): all of them up to about 16 million entries.
pub const DEFAULT_HASH_CACHE_BYTES: u64 = 1 << 30;

/// Stored hashes copied into the hash cache per loader step.
const HASH_LOAD_STEP: u64 = 1 << 16;

/// The leaves of the entry bundle at `coord`, in index order, read with one ordered
/// scan (their keys are consecutive). The log serves them as stored; `export` checks
/// each against its stored leaf hash first.
///
/// # Errors
///
/// [`EngineError::Corrupt`] when a leaf of the bundle is missing, [`EngineError::Store`]
/// when the scan fails.
pub fn bundle_leaves<S: Store>(store: &S, coord: &TileCoord) -> Result<Vec<Vec<u8>>, EngineError> {
    let range = coord.leaf_range();
    let rows = store.scan(
        Column::Leaves,
        &[],
        &layout::u64_key(range.start),
        usize::from(coord.width),
    )?;
    let mut rows = rows.into_iter();
    range
        .map(|i| match rows.next() {
            Some((k, v)) if layout::decode_u64(&k) == Some(i) => Ok(v),
            _ => Err(EngineError::Corrupt(format!("leaf {i} is missing"))),
        })
        .collect()
}

/// The log engine over a [`Store`].
pub struct LogEngine<S: Store> {
    store: S,
    signer: LogSigner,
    verifier: LogVerifier,
    head: RwLock<Arc<SignedCheckpoint>>,
    /// Serializes appends; holds the reason appends stopped, if they did.
    writer: Mutex<Option<String>>,
    /// When storage last accepted a health probe; probes within
    /// [`PROBE_INTERVAL`] of it reuse the answer, so health checks cost few fsyncs.
    last_probe_ok: Mutex<Option<std::time::Instant>>,
    /// Full tiles already read: immutable, so served again without storage reads.
    tiles: tile_cache::TileCache,
    /// Stored hashes from index 0 up to a budget, so proofs cost the same at any size.
    hash_cache: HashCache,
}

/// How long a successful storage probe is trusted.
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl<S: Store> LogEngine<S> {
    /// Opens the log in `store`, checking it against `signer`'s key, or starts a new log
    /// (a signed checkpoint for the empty tree) when the store is empty.
    ///
    /// The check costs O(log n) reads: the stored hashes must rebuild the root of the
    /// latest signed checkpoint, the last leaf must match its stored hash, and nothing
    /// may be stored beyond the checkpoint. The tree is never rebuilt.
    ///
    /// # Errors
    ///
    /// [`EngineError::Corrupt`] naming the problem when the store is tampered with,
    /// damaged, or belongs to another key or origin; [`EngineError::Store`] when reads fail.
    pub fn open(store: S, signer: LogSigner) -> Result<Self, EngineError> {
        let verifier = signer.verifier();
        let head = match store.get(Column::Meta, META_CHECKPOINT)? {
            None => {
                if !store.scan(Column::Leaves, &[], &[], 1)?.is_empty()
                    || !store.scan(Column::Hashes, &[], &[], 1)?.is_empty()
                {
                    return Err(EngineError::Corrupt(
                        "entries are stored but there is no signed checkpoint".into(),
                    ));
                }
                let cp = signer.sign(0, EMPTY_TREE_HASH);
                let mut batch = WriteBatch::default();
                batch.put(Column::Meta, META_CHECKPOINT, cp.note.clone());
                store.write(batch)?;
                cp
            }
            Some(note) => {
                let cp = verifier.verify(&note).map_err(|e| {
                    EngineError::Corrupt(format!(
                        "stored checkpoint is not valid for log key {}: {e}",
                        signer.verifier_key()
                    ))
                })?;
                check_head(&store, &cp)?;
                cp
            }
        };
        Ok(Self {
            store,
            signer,
            verifier,
            head: RwLock::new(Arc::new(head)),
            writer: Mutex::new(None),
            last_probe_ok: Mutex::new(None),
            tiles: tile_cache::TileCache::new(TILE_CACHE_BYTES),
            hash_cache: HashCache::new(DEFAULT_HASH_CACHE_BYTES),
        })
    }

    /// Replaces the hash cache with an empty one of `bytes` (0 disables it).
    #[must_use]
    pub fn with_hash_cache_bytes(mut self, bytes: u64) -> Self {
        self.hash_cache = HashCache::new(bytes);
        self
    }

    /// Copies the next stored hashes missing from the hash cache into it, at most
    /// [`HASH_LOAD_STEP`] per call, and says whether the cache now holds all it can
    /// (every stored hash below the signed size, or its budget). A server calls this
    /// in the background after start-up until it returns `true`; proofs are correct
    /// meanwhile, reading from storage what the cache does not hold yet.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the read fails; [`EngineError::Corrupt`] when the
    /// stored hashes are not the dense run the signed size implies.
    pub fn load_hash_cache(&self) -> Result<bool, EngineError> {
        let have = self.hash_cache.len();
        let want =
            merkle::stored_hash_count(self.checkpoint().tree_size).min(self.hash_cache.limit());
        if have >= want {
            return Ok(true);
        }
        let count = (want - have).min(HASH_LOAD_STEP);
        let rows = self
            .store
            .scan(Column::Hashes, &[], &layout::u64_key(have), count as usize)?;
        let mut hashes = Vec::with_capacity(rows.len());
        for (i, (key, value)) in (have..).zip(&rows) {
            if layout::decode_u64(key) != Some(i) {
                return Err(EngineError::Corrupt(format!("stored hash {i} is missing")));
            }
            hashes.push(
                merkle::hash_from_slice("stored hash", value)
                    .map_err(|e| EngineError::Corrupt(format!("stored hash {i}: {e}")))?,
            );
        }
        if (hashes.len() as u64) < count {
            return Err(EngineError::Corrupt(format!(
                "stored hash {} is missing",
                have + hashes.len() as u64
            )));
        }
        self.hash_cache.offer(have, &hashes);
        Ok(self.hash_cache.len() >= want)
    }

    /// How many stored hashes the hash cache holds (for metrics and benchmarks).
    pub fn hash_cache_len(&self) -> u64 {
        self.hash_cache.len()
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Arc<SignedCheckpoint> {
        Arc::clone(&self.head.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The log's signer (origin and verifier key).
    pub fn signer(&self) -> &LogSigner {
        &self.signer
    }

    /// A verifier for this log's checkpoints.
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// The store underneath (for fsck, backup and tests).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Why appends stopped, if they did.
    pub fn poisoned(&self) -> Option<String> {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn hashes(&self) -> Hashes<'_, S> {
        Hashes {
            store: &self.store,
            pending: None,
            cache: Some(&self.hash_cache),
        }
    }

    /// Appends `entries` in one atomic, synced write with a new signed checkpoint.
    ///
    /// Entries whose envelope is already logged (or repeated within the batch) are not
    /// appended again; their outcome names the existing index. Nothing is acknowledged
    /// before the write returns.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the write fails (the engine re-reads the stored
    /// checkpoint and continues from whatever was stored); [`EngineError::Poisoned`] when
    /// it cannot tell what was stored.
    pub fn append_batch(&self, entries: &[Admitted]) -> Result<BatchCommit, EngineError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = writer.as_ref() {
            return Err(EngineError::Poisoned(reason.clone()));
        }
        let head = self.checkpoint();
        let first_index = head.tree_size;
        let mut size = first_index;

        let dedup_keys: Vec<Vec<u8>> = entries
            .iter()
            .map(|a| a.record.envelope_sha256.to_vec())
            .collect();
        let existing = self.store.multi_get(Column::Dedup, &dedup_keys)?;

        // The right edge of the stored tree: the only old hashes that new leaves and
        // their proofs combine with. Read once here rather than leaf by leaf.
        let edge = right_edge(first_index);
        let edge_hashes = self
            .hashes()
            .read_hashes(&edge)
            .map_err(ProofError::Storage)?;
        let mut pending: BatchHashes = edge.into_iter().zip(edge_hashes).collect();
        let mut in_batch: HashMap<[u8; 32], AppendOutcome> = HashMap::new();
        let mut batch = WriteBatch::default();
        let mut outcomes = Vec::with_capacity(entries.len());
        for (admitted, existing) in entries.iter().zip(existing) {
            let digest = admitted.record.envelope_sha256;
            if let Some(index) = existing.as_deref().and_then(layout::decode_u64) {
                outcomes.push(AppendOutcome {
                    leaf_index: index,
                    leaf_hash: self.leaf_hash(index)?,
                    duplicate: true,
                });
                continue;
            }
            if let Some(prev) = in_batch.get(&digest) {
                outcomes.push(AppendOutcome {
                    duplicate: true,
                    ..*prev
                });
                continue;
            }
            let record = admitted.record.encode();
            let leaf_hash = merkle::leaf_hash(&record);
            let new_hashes = {
                let reader = Hashes {
                    store: &self.store,
                    pending: Some(&pending),
                    cache: None,
                };
                merkle::stored_hashes_for_leaf(size, leaf_hash, &reader)?
            };
            let base = merkle::stored_hash_index(0, size);
            for (i, h) in (base..).zip(new_hashes) {
                pending.insert(i, h);
                batch.put(Column::Hashes, layout::u64_key(i), h.0.to_vec());
            }
            batch.put(Column::Leaves, layout::u64_key(size), record);
            batch.put(
                Column::Envelopes,
                digest.to_vec(),
                admitted.envelope_json.clone(),
            );
            for key in &admitted.signer_keys {
                batch.put(
                    Column::Keys,
                    key.fingerprint().0.to_vec(),
                    key.spki_der().to_vec(),
                );
            }
            batch.put(Column::Dedup, digest.to_vec(), layout::u64_key(size));
            for (col, key) in layout::index_rows(&admitted.record, size) {
                batch.put(col, key, Vec::new());
            }
            let outcome = AppendOutcome {
                leaf_index: size,
                leaf_hash,
                duplicate: false,
            };
            in_batch.insert(digest, outcome);
            outcomes.push(outcome);
            size += 1;
        }
        if size == first_index {
            return Ok(BatchCommit {
                first_index,
                checkpoint: head,
                outcomes,
                hashes: Arc::new(pending),
            });
        }
        let root = merkle::tree_hash(
            size,
            &Hashes {
                store: &self.store,
                pending: Some(&pending),
                cache: Some(&self.hash_cache),
            },
        )?;
        let cp = self.signer.sign(size, root);
        batch.put(Column::Meta, META_CHECKPOINT, cp.note.clone());
        if let Err(e) = self.store.write(batch) {
            // Health must not vouch for storage on the strength of an older probe.
            *self.last_probe_ok.lock().unwrap_or_else(|e| e.into_inner()) = None;
            self.resync(&mut writer, &head, &cp);
            return Err(EngineError::Store(e));
        }
        let cp = Arc::new(cp);
        *self.head.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&cp);
        let (start, end) = (
            merkle::stored_hash_count(first_index),
            merkle::stored_hash_count(size),
        );
        if self.hash_cache.len() >= start {
            // Every hash the batch wrote is in `pending`; offer nothing if one is not.
            let written: Option<Vec<Hash>> =
                (start..end).map(|i| pending.get(&i).copied()).collect();
            if let Some(written) = written {
                self.hash_cache.offer(start, &written);
            }
        }
        Ok(BatchCommit {
            first_index,
            checkpoint: cp,
            outcomes,
            hashes: Arc::new(pending),
        })
    }

    /// After a failed write, learns from storage whether the batch landed, so that the
    /// next batch builds on what is stored. Signing a checkpoint for a size the store
    /// already holds a different checkpoint for would be a split view: if storage cannot
    /// say, appends stop.
    fn resync(&self, writer: &mut Option<String>, old: &SignedCheckpoint, new: &SignedCheckpoint) {
        match self.store.get(Column::Meta, META_CHECKPOINT) {
            Ok(Some(note)) if note == new.note => {
                *self.head.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new.clone());
            }
            Ok(Some(note)) if note == old.note => {}
            Ok(_) => *writer = Some("stored checkpoint changed underneath the engine".into()),
            Err(e) => {
                *writer = Some(format!(
                    "couldn't re-read checkpoint after failed write: {e}"
                ))
            }
        }
    }

    fn check_index(&self, leaf_index: u64) -> Result<u64, EngineError> {
        let size = self.checkpoint().tree_size;
        if leaf_index >= size {
            return Err(EngineError::NotFound(format!(
                "entry {leaf_index} (tree size {size})"
            )));
        }
        Ok(size)
    }

    /// The leaf hash at `leaf_index`, from the stored hashes.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] past the tree; [`EngineError::Store`] on read failure.
    pub fn leaf_hash(&self, leaf_index: u64) -> Result<Hash, EngineError> {
        let key = layout::u64_key(merkle::stored_hash_index(0, leaf_index));
        let value = self
            .store
            .get(Column::Hashes, &key)?
            .ok_or_else(|| EngineError::NotFound(format!("leaf hash {leaf_index}")))?;
        merkle::hash_from_slice("stored leaf hash", &value)
            .map_err(|e| EngineError::Corrupt(e.to_string()))
    }

    /// The entry at `leaf_index` with its envelope and signer keys.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] past the signed tree; [`EngineError::Corrupt`] when the
    /// stored entry does not decode.
    pub fn entry(&self, leaf_index: u64) -> Result<StoredEntry, EngineError> {
        self.check_index(leaf_index)?;
        let record_bytes = self
            .store
            .get(Column::Leaves, &layout::u64_key(leaf_index))?
            .ok_or_else(|| EngineError::Corrupt(format!("leaf {leaf_index} is missing")))?;
        let record = LeafRecord::decode(&record_bytes)
            .map_err(|e| EngineError::Corrupt(format!("leaf {leaf_index}: {e}")))?;
        let envelope_json = self
            .store
            .get(Column::Envelopes, &record.envelope_sha256)?
            .ok_or_else(|| {
                EngineError::Corrupt(format!("envelope of leaf {leaf_index} is missing"))
            })?;
        let keys: Vec<Vec<u8>> = record.signers.iter().map(|f| f.0.to_vec()).collect();
        let signer_keys_der = self
            .store
            .multi_get(Column::Keys, &keys)?
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                k.ok_or_else(|| {
                    EngineError::Corrupt(format!("signer key {i} of leaf {leaf_index} is missing"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(StoredEntry {
            leaf_index,
            record_bytes,
            record,
            envelope_json,
            signer_keys_der,
        })
    }

    /// The leaf record at `leaf_index`, without its envelope.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] past the signed tree; [`EngineError::Corrupt`] when the
    /// stored record does not decode.
    pub fn record(&self, leaf_index: u64) -> Result<LeafRecord, EngineError> {
        self.check_index(leaf_index)?;
        let bytes = self
            .store
            .get(Column::Leaves, &layout::u64_key(leaf_index))?
            .ok_or_else(|| EngineError::Corrupt(format!("leaf {leaf_index} is missing")))?;
        LeafRecord::decode(&bytes)
            .map_err(|e| EngineError::Corrupt(format!("leaf {leaf_index}: {e}")))
    }

    /// Checks that storage accepts a durable write (for health checks). A success is
    /// reused for a few seconds, so frequent health checks do not each cost an fsync;
    /// a failure is retried on every call.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] when the write fails.
    pub fn probe_storage(&self) -> Result<(), EngineError> {
        let mut last = self.last_probe_ok.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < PROBE_INTERVAL) {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.put(Column::Meta, layout::META_HEALTH_PROBE, Vec::new());
        self.store.write(batch)?;
        *last = Some(std::time::Instant::now());
        Ok(())
    }

    /// Inclusion proof of `leaf_index` in the tree of `tree_size` (at most the current size).
    ///
    /// # Errors
    ///
    /// [`EngineError::Proof`] for an index or size the log cannot answer.
    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, EngineError> {
        self.check_size(tree_size)?;
        Ok(merkle::prove_inclusion(
            leaf_index,
            tree_size,
            &self.hashes(),
        )?)
    }

    /// Inclusion proof of `leaf_index` in the tree of `tree_size`, taking hashes from a
    /// committed batch's [`BatchCommit::hashes`] first and from storage for the rest.
    /// For an entry of that batch against its checkpoint nothing is read from storage.
    ///
    /// # Errors
    ///
    /// [`EngineError::Proof`] for an index or size the log cannot answer.
    pub fn inclusion_proof_after(
        &self,
        batch: &BatchHashes,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, EngineError> {
        self.check_size(tree_size)?;
        let reader = Hashes {
            store: &self.store,
            pending: Some(batch),
            cache: Some(&self.hash_cache),
        };
        Ok(merkle::prove_inclusion(leaf_index, tree_size, &reader)?)
    }

    /// Consistency proof from `old_size` to `new_size` (at most the current size).
    ///
    /// # Errors
    ///
    /// [`EngineError::Proof`] for sizes the log cannot answer.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, EngineError> {
        self.check_size(new_size)?;
        Ok(merkle::prove_consistency(
            old_size,
            new_size,
            &self.hashes(),
        )?)
    }

    /// Root hash of the tree of `tree_size` (at most the current size).
    ///
    /// # Errors
    ///
    /// [`EngineError::Proof`] past the current size.
    pub fn root_at(&self, tree_size: u64) -> Result<Hash, EngineError> {
        self.check_size(tree_size)?;
        Ok(merkle::tree_hash(tree_size, &self.hashes())?)
    }

    fn check_size(&self, tree_size: u64) -> Result<(), EngineError> {
        let size = self.checkpoint().tree_size;
        if tree_size > size {
            return Err(EngineError::Proof(ProofError::SizeShrinks {
                old_size: tree_size,
                new_size: size,
            }));
        }
        Ok(())
    }

    /// The bytes of a hash tile or entry bundle, if the current tree contains it. Full
    /// tiles are cached once read: the tree below a signed size never changes.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] for a tile beyond the tree.
    pub fn tile(&self, coord: &TileCoord) -> Result<Vec<u8>, EngineError> {
        if !coord.exists_in(self.checkpoint().tree_size) {
            return Err(EngineError::NotFound(format!("tile {}", coord.path())));
        }
        if let Some(data) = self.tiles.get(coord) {
            return Ok(data.to_vec());
        }
        let data = if coord.entries {
            self.entry_bundle(coord)?
        } else {
            coord.read_hash_tile(&self.hashes())?
        };
        if coord.is_full() {
            self.tiles.insert(*coord, Arc::new(data.clone()));
        }
        Ok(data)
    }

    /// Builds an entry bundle from its stored leaves.
    fn entry_bundle(&self, coord: &TileCoord) -> Result<Vec<u8>, EngineError> {
        let mut bundle = Vec::new();
        for (i, leaf) in coord.leaf_range().zip(bundle_leaves(&self.store, coord)?) {
            tiles::push_bundle_entry(&mut bundle, &leaf)
                .map_err(|e| EngineError::Corrupt(format!("leaf {i}: {e}")))?;
        }
        Ok(bundle)
    }

    /// Leaf indices of entries matching `term`, in log order, after `after` (exclusive),
    /// at most `limit`.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] on read failure.
    pub fn search(
        &self,
        kind: IndexKind,
        term: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, EngineError> {
        let Some(prefix) = kind.prefix(term) else {
            return Ok(Vec::new());
        };
        let size = self.checkpoint().tree_size;
        let start = match after {
            Some(a) if a == u64::MAX => return Ok(Vec::new()),
            Some(a) => layout::index_key(&prefix, a + 1),
            None => prefix.to_vec(),
        };
        let rows = self.store.scan(kind.column(), &prefix, &start, limit)?;
        Ok(rows
            .iter()
            .filter_map(|(k, _)| layout::decode_u64(&k[32..]))
            .take_while(|&i| i < size)
            .collect())
    }

    /// The index of the entry with this envelope digest, if it is in the signed tree.
    ///
    /// # Errors
    ///
    /// [`EngineError::Store`] on read failure.
    pub fn find_envelope(&self, envelope_sha256: &[u8; 32]) -> Result<Option<u64>, EngineError> {
        let size = self.checkpoint().tree_size;
        Ok(self
            .store
            .get(Column::Dedup, envelope_sha256)?
            .as_deref()
            .and_then(layout::decode_u64)
            .filter(|&i| i < size))
    }
}

/// Stored-hash indexes of the right edge of a tree of `tree_size` leaves: the roots of
/// the perfect subtrees it splits into, from the left. Appending a leaf combines only
/// these old hashes; so do the root and every inclusion proof of a leaf added after
/// `tree_size` (each old sibling on its path is one of these roots).
fn right_edge(tree_size: u64) -> Vec<u64> {
    let mut edge = Vec::new();
    let mut start = 0u64;
    for level in (0..64u8).rev() {
        if tree_size >> level & 1 == 1 {
            edge.push(merkle::stored_hash_index(level, start >> level));
            start += 1 << level;
        }
    }
    edge
}

/// Checks a signed checkpoint against the stored hashes and leaves (see [`LogEngine::open`]).
fn check_head<S: Store>(store: &S, cp: &SignedCheckpoint) -> Result<(), EngineError> {
    let reader = Hashes::stored(store);
    let n = cp.tree_size;
    let root = merkle::tree_hash(n, &reader).map_err(|e| {
        EngineError::Corrupt(format!(
            "couldn't read stored hashes for tree size {n}: {e}"
        ))
    })?;
    if root != cp.root_hash {
        return Err(EngineError::Corrupt(format!(
            "stored Merkle hashes give root {root} for tree size {n}, but the signed checkpoint says {}",
            cp.root_hash
        )));
    }
    if n > 0 {
        let last = n - 1;
        let leaf = store
            .get(Column::Leaves, &layout::u64_key(last))?
            .ok_or_else(|| EngineError::Corrupt(format!("leaf {last} is missing")))?;
        let stored = store
            .get(
                Column::Hashes,
                &layout::u64_key(merkle::stored_hash_index(0, last)),
            )?
            .unwrap_or_default();
        if merkle::leaf_hash(&leaf).0[..] != stored[..] {
            return Err(EngineError::Corrupt(format!(
                "leaf {last} does not match its stored leaf hash"
            )));
        }
    }
    if store.get(Column::Leaves, &layout::u64_key(n))?.is_some()
        || store
            .get(
                Column::Hashes,
                &layout::u64_key(merkle::stored_hash_index(0, n)),
            )?
            .is_some()
    {
        return Err(EngineError::Corrupt(format!(
            "entries are stored beyond the signed tree size {n}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
