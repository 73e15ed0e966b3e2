//! `pedigree-server fsck`: checks a whole log store offline and names the first
//! inconsistency (`spec/storage.md` section 5).
//!
//! [`LogEngine::open`](crate::engine::LogEngine::open) reads O(log n) hashes so that
//! start-up stays fast; it cannot see a damaged hash off the path to the root, a damaged
//! envelope or a missing index row. This check reads everything once, in this order:
//!
//! 1. `meta/checkpoint` is signed by the log key under the origin that key names;
//! 2. per leaf, in log order: the stored Merkle hashes the leaf completes equal those
//!    recomputed from the leaf records; the record decodes; its envelope is stored and
//!    hashes to `envelope_sha256`; each signer key is stored under its fingerprint;
//!    `entry::admit` rebuilds the identical record from the envelope, the keys and the
//!    integrated time; its dedup row and index rows are present;
//! 3. the recomputed root is the signed root, and nothing is stored beyond the tree;
//! 4. every dedup, envelope, key and index row is derived from some leaf.
//!
//! Damage is located, not only detected. A leaf record and its stored leaf hash that
//! disagree are told apart with the stored tree: if the stored leaf hash is proven by the
//! signed root, the record is what changed. A higher stored hash that disagrees with the
//! one recomputed from its (matching) children is itself the damage.
//!
//! Out of scope: repair. fsck only reads (the store is opened read-only).

use crate::engine::Hashes;
use crate::layout::{self, META_CHECKPOINT, META_HEALTH_PROBE};
use crate::storage::{Column, Row, Store, StoreError};
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::dsse::Envelope;
use pedigree_core::entry::{self, LeafRecord, Limits};
use pedigree_core::keys::{Fingerprint, PublicKey};
use pedigree_core::merkle::{self, Hash, HashReader, HashReaderError};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use thiserror::Error;

/// Rows read per scan.
const CHUNK: usize = 4096;

/// Caps high enough never to refuse a stored entry: the log admitted it under the caps
/// configured at the time, which fsck does not know.
const GENEROUS: Limits = Limits {
    max_signatures: usize::MAX,
    max_verifiers: usize::MAX,
    max_subjects: usize::MAX,
    max_materials: usize::MAX,
};

/// One inconsistency: where it is and what disagrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The column family holding the damaged value (or missing the expected one).
    pub column: Column,
    /// The key of the damaged, missing or unexpected row.
    pub key: Vec<u8>,
    /// What the key names, e.g. `leaf 3` or `stored hash 6 (level 1, node 1)`.
    pub what: String,
    /// What the rest of the store says should be there.
    pub expected: String,
    /// What is there.
    pub found: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "column family {}, key {} ({}): expected {}, found {}",
            self.column.name(),
            hex::encode(&self.key),
            self.what,
            self.expected,
            self.found
        )
    }
}

/// Why fsck did not pass.
#[derive(Debug, Error)]
pub enum FsckError {
    /// The store is inconsistent; this is the first inconsistency found.
    #[error("damage found: {0}")]
    Damaged(Box<Damage>),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a clean check covered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// The signed checkpoint (`None` for a store where no log was ever started).
    pub checkpoint: Option<SignedCheckpoint>,
    /// Leaf records checked (equal to the tree size).
    pub leaves: u64,
    /// Stored Merkle hashes recomputed.
    pub stored_hashes: u64,
    /// Envelopes checked.
    pub envelopes: u64,
    /// Signer keys checked.
    pub keys: u64,
    /// Dedup rows checked.
    pub dedup_rows: u64,
    /// Index rows checked, per index column.
    pub index_rows: BTreeMap<&'static str, u64>,
}

fn damage(
    column: Column,
    key: impl Into<Vec<u8>>,
    what: impl Into<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> FsckError {
    FsckError::Damaged(Box::new(Damage {
        column,
        key: key.into(),
        what: what.into(),
        expected: expected.into(),
        found: found.into(),
    }))
}

const INDEX_COLUMNS: [Column; 4] = [
    Column::IdxSubject,
    Column::IdxSigner,
    Column::IdxMaterial,
    Column::IdxPredicate,
];

/// Checks the whole store against `verifier`, the log's checkpoint key.
///
/// # Errors
///
/// [`FsckError::Damaged`] with the first inconsistency; [`FsckError::Store`] when a
/// read fails.
pub fn check<S: Store>(store: &S, verifier: &LogVerifier) -> Result<Summary, FsckError> {
    let Some(note) = store.get(Column::Meta, META_CHECKPOINT)? else {
        return check_never_started(store);
    };
    let cp = verifier.verify(&note).map_err(|e| {
        damage(
            Column::Meta,
            META_CHECKPOINT,
            "checkpoint",
            format!("a checkpoint signed by {}", verifier.to_vkey()),
            format!("one that fails verification: {e}"),
        )
    })?;
    let mut summary = Summary::default();
    check_leaves(store, &cp, &mut summary)?;
    check_reverse(store, &cp, &mut summary)?;
    summary.checkpoint = Some(cp);
    Ok(summary)
}

/// The origin line of the stored checkpoint, unverified (to derive the verifier key
/// from a signing key, which carries no origin).
///
/// # Errors
///
/// [`FsckError::Store`] when the read fails.
pub fn stored_origin<S: Store>(store: &S) -> Result<Option<String>, FsckError> {
    Ok(store.get(Column::Meta, META_CHECKPOINT)?.map(|note| {
        let line = note.split(|&b| b == b'\n').next().unwrap_or_default();
        String::from_utf8_lossy(line).into_owned()
    }))
}

/// A store without a checkpoint must be empty: the first write of a log is its
/// checkpoint for the empty tree.
fn check_never_started<S: Store>(store: &S) -> Result<Summary, FsckError> {
    for col in Column::ALL {
        for (key, _) in store.scan(col, &[], &[], 2)? {
            if col == Column::Meta && key == META_HEALTH_PROBE {
                continue;
            }
            return Err(damage(
                col,
                key,
                "a row in a store without a checkpoint",
                "a signed checkpoint in meta",
                "no checkpoint",
            ));
        }
    }
    Ok(Summary::default())
}

/// Reads one column in key order, a chunk at a time.
struct Rows<'a, S: Store> {
    store: &'a S,
    col: Column,
    buf: VecDeque<Row>,
    /// Where the next scan starts; `None` once the column is exhausted.
    next: Option<Vec<u8>>,
    count: u64,
}

impl<'a, S: Store> Rows<'a, S> {
    fn new(store: &'a S, col: Column) -> Self {
        Self {
            store,
            col,
            buf: VecDeque::new(),
            next: Some(Vec::new()),
            count: 0,
        }
    }

    fn next_row(&mut self) -> Result<Option<Row>, StoreError> {
        if self.buf.is_empty() {
            if let Some(start) = self.next.take() {
                let rows = self.store.scan(self.col, &[], &start, CHUNK)?;
                if rows.len() == CHUNK {
                    // The smallest key after the last one read.
                    let mut after = rows[CHUNK - 1].0.clone();
                    after.push(0);
                    self.next = Some(after);
                }
                self.buf.extend(rows);
            }
        }
        let row = self.buf.pop_front();
        self.count += u64::from(row.is_some());
        Ok(row)
    }
}

/// The recomputed tree's frontier: the hashes of the complete subtrees of the tree read
/// so far, by stored-hash index. They are all that adding the next leaf, or computing
/// the root, reads.
#[derive(Default)]
struct Frontier(BTreeMap<u64, Hash>);

impl Frontier {
    /// Keeps only the subtrees of a tree of `tree_size` leaves.
    fn keep_for(&mut self, tree_size: u64) {
        let mut keep = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if tree_size & (1 << level) != 0 {
                keep.push(merkle::stored_hash_index(level, start >> level));
                start += 1 << level;
            }
        }
        self.0.retain(|k, _| keep.contains(k));
    }
}

impl HashReader for Frontier {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, HashReaderError> {
        indexes
            .iter()
            .map(|i| {
                self.0.get(i).copied().ok_or_else(|| {
                    HashReaderError::InvalidInput(format!("hash {i} is not in the frontier"))
                })
            })
            .collect()
    }
}

fn hash_what(index: u64) -> String {
    let (level, n) = merkle::split_stored_hash_index(index);
    if level == 0 {
        format!("stored hash {index}: leaf hash of leaf {n}")
    } else {
        format!("stored hash {index}: level {level}, node {n}")
    }
}

fn describe_hash(value: &[u8]) -> String {
    match value.len() {
        32 => hex::encode(value),
        n => format!("{n} bytes {}", hex::encode(&value[..n.min(40)])),
    }
}

/// The next row of `rows` must have exactly `key`.
fn expect_key<S: Store>(
    rows: &mut Rows<'_, S>,
    key: &[u8],
    what: &str,
    expected: &str,
) -> Result<Vec<u8>, FsckError> {
    match rows.next_row()? {
        Some((k, v)) if k == key => Ok(v),
        Some((k, _)) if k.len() == key.len() && k.as_slice() > key => {
            Err(damage(rows.col, key, what, expected, "nothing"))
        }
        Some((k, _)) => Err(damage(
            rows.col,
            k.clone(),
            format!("unexpected key {}", hex::encode(&k)),
            format!("the next key to be {}", hex::encode(key)),
            "a key that belongs to no row of this column",
        )),
        None => Err(damage(rows.col, key, what, expected, "nothing")),
    }
}

/// Step 2 and 3: every leaf, the stored hashes it completes, its envelope, keys and rows.
fn check_leaves<S: Store>(
    store: &S,
    cp: &SignedCheckpoint,
    summary: &mut Summary,
) -> Result<(), FsckError> {
    let n = cp.tree_size;
    let mut leaves = Rows::new(store, Column::Leaves);
    let mut hashes = Rows::new(store, Column::Hashes);
    let mut frontier = Frontier::default();
    for i in 0..n {
        let leaf = expect_key(
            &mut leaves,
            &layout::u64_key(i),
            &format!("leaf {i}"),
            &format!("a leaf record (the tree size is {n})"),
        )?;
        let computed = merkle::stored_hashes_for_leaf(i, merkle::leaf_hash(&leaf), &frontier)
            .map_err(|e| StoreError::Io(format!("couldn't recompute stored hashes: {e}")))?;
        let base = merkle::stored_hash_index(0, i);
        for (index, want) in (base..).zip(computed) {
            let key = layout::u64_key(index);
            let found = expect_key(&mut hashes, &key, &hash_what(index), &hex::encode(want.0))?;
            if found[..] != want.0[..] {
                return Err(locate_hash_mismatch(store, cp, index, want, &found, &leaf));
            }
            frontier.0.insert(index, want);
        }
        frontier.keep_for(i + 1);
        check_entry(store, i, &leaf)?;
    }
    if let Some((k, _)) = leaves.next_row()? {
        return Err(damage(
            Column::Leaves,
            k.clone(),
            beyond_what("leaf", &k),
            format!("no leaf at or beyond the tree size {n}"),
            "a leaf record",
        ));
    }
    if let Some((k, _)) = hashes.next_row()? {
        return Err(damage(
            Column::Hashes,
            k.clone(),
            beyond_what("stored hash", &k),
            format!(
                "no stored hash beyond the {} of tree size {n}",
                merkle::stored_hash_count(n)
            ),
            "a stored hash",
        ));
    }
    let root = merkle::tree_hash(n, &frontier)
        .map_err(|e| StoreError::Io(format!("couldn't recompute the root: {e}")))?;
    if root != cp.root_hash {
        return Err(damage(
            Column::Meta,
            META_CHECKPOINT,
            format!("checkpoint for tree size {n}"),
            format!(
                "root {}, recomputed from the {n} leaf records",
                hex::encode(root.0)
            ),
            format!("root {}", hex::encode(cp.root_hash.0)),
        ));
    }
    summary.leaves = n;
    summary.stored_hashes = hashes.count;
    Ok(())
}

fn beyond_what(kind: &str, key: &[u8]) -> String {
    match layout::decode_u64(key) {
        Some(i) => format!("{kind} {i}"),
        None => format!("{kind} key of {} bytes", key.len()),
    }
}

/// A stored hash differs from the one recomputed from the leaves. Above level 0 the
/// children matched, so the stored hash is the damage. At level 0 either the leaf record
/// or its stored hash changed: the stored hash is right if the stored tree proves it
/// under the signed root.
fn locate_hash_mismatch<S: Store>(
    store: &S,
    cp: &SignedCheckpoint,
    index: u64,
    computed: Hash,
    found: &[u8],
    leaf: &[u8],
) -> FsckError {
    let (level, leaf_index) = merkle::split_stored_hash_index(index);
    if level == 0 {
        let proven = merkle::prove_inclusion(leaf_index, cp.tree_size, &Hashes::stored(store))
            .is_ok_and(|proof| {
                merkle::verify_inclusion(leaf_index, cp.tree_size, found, &proof, &cp.root_hash.0)
                    .is_ok()
            });
        if proven {
            return damage(
                Column::Leaves,
                layout::u64_key(leaf_index),
                format!("leaf {leaf_index}"),
                format!(
                    "a record with leaf hash {} (stored, and proven by the signed checkpoint)",
                    hex::encode(found)
                ),
                format!(
                    "a record with leaf hash {} (first bytes {})",
                    hex::encode(computed.0),
                    hex::encode(&leaf[..leaf.len().min(48)])
                ),
            );
        }
    }
    damage(
        Column::Hashes,
        layout::u64_key(index),
        hash_what(index),
        format!(
            "{}, recomputed from the leaf records",
            hex::encode(computed.0)
        ),
        describe_hash(found),
    )
}

/// Everything stored for leaf `i` besides its Merkle hashes.
fn check_entry<S: Store>(store: &S, i: u64, leaf: &[u8]) -> Result<(), FsckError> {
    let leaf_key = layout::u64_key(i);
    let what = format!("leaf {i}");
    let record = LeafRecord::decode(leaf).map_err(|e| {
        damage(
            Column::Leaves,
            leaf_key.clone(),
            what.clone(),
            "a leaf record that decodes (spec/entry.md)",
            e.to_string(),
        )
    })?;
    let digest = record.envelope_sha256;
    let env_what = format!("envelope of leaf {i}");
    let envelope_json = store.get(Column::Envelopes, &digest)?.ok_or_else(|| {
        damage(
            Column::Envelopes,
            digest,
            env_what.clone(),
            "the canonical envelope JSON",
            "nothing",
        )
    })?;
    let actual: [u8; 32] = Sha256::digest(&envelope_json).into();
    if actual != digest {
        return Err(damage(
            Column::Envelopes,
            digest,
            env_what,
            format!("content with SHA-256 {}", hex::encode(digest)),
            format!("content with SHA-256 {}", hex::encode(actual)),
        ));
    }
    let mut keys = Vec::with_capacity(record.signers.len());
    for fp in &record.signers {
        keys.push(stored_key(store, fp, &format!("signer {fp} of leaf {i}"))?);
    }
    let envelope = Envelope::from_json(&envelope_json).map_err(|e| {
        damage(
            Column::Envelopes,
            digest,
            format!("envelope of leaf {i}"),
            "an envelope that parses",
            e.to_string(),
        )
    })?;
    let rebuilt =
        entry::admit(&envelope, &keys, &GENEROUS, record.integrated_time_ms).map_err(|e| {
            damage(
                Column::Leaves,
                leaf_key.clone(),
                what.clone(),
                "a record that its envelope and signer keys admit",
                format!("admission fails: {e}"),
            )
        })?;
    let rebuilt_bytes = rebuilt.record.encode();
    if rebuilt_bytes != leaf {
        return Err(damage(
            Column::Leaves,
            leaf_key,
            what,
            format!(
                "the record rebuilt from its envelope and keys, {}",
                hex::encode(&rebuilt_bytes)
            ),
            hex::encode(leaf),
        ));
    }
    if rebuilt.envelope_json != envelope_json {
        return Err(damage(
            Column::Envelopes,
            digest,
            format!("envelope of leaf {i}"),
            "canonical envelope JSON (spec/entry.md section 4)",
            "a non-canonical encoding",
        ));
    }
    match store.get(Column::Dedup, &digest)? {
        Some(v) if v == leaf_key => {}
        other => {
            return Err(damage(
                Column::Dedup,
                digest,
                format!("dedup row of leaf {i}"),
                format!("leaf index {i}"),
                describe_index(other.as_deref()),
            ))
        }
    }
    for (col, key) in layout::index_rows(&record, i) {
        match store.get(col, &key)? {
            Some(v) if v.is_empty() => {}
            other => {
                return Err(damage(
                    col,
                    key,
                    format!("{} row of leaf {i}", col.name()),
                    "the row, with an empty value",
                    match other {
                        None => "nothing".to_string(),
                        Some(v) => format!("value {}", hex::encode(v)),
                    },
                ))
            }
        }
    }
    Ok(())
}

fn describe_index(value: Option<&[u8]>) -> String {
    match value {
        None => "nothing".into(),
        Some(v) => match layout::decode_u64(v) {
            Some(i) => format!("leaf index {i}"),
            None => format!("{} bytes {}", v.len(), hex::encode(v)),
        },
    }
}

/// The key stored under `fp`, which must hash to it.
fn stored_key<S: Store>(store: &S, fp: &Fingerprint, what: &str) -> Result<PublicKey, FsckError> {
    let der = store
        .get(Column::Keys, &fp.0)?
        .ok_or_else(|| damage(Column::Keys, fp.0, what, "the key's DER", "nothing"))?;
    let actual: [u8; 32] = Sha256::digest(&der).into();
    if actual != fp.0 {
        return Err(damage(
            Column::Keys,
            fp.0,
            what,
            format!("DER SubjectPublicKeyInfo with SHA-256 {fp}"),
            format!("DER with SHA-256 {}", hex::encode(actual)),
        ));
    }
    PublicKey::from_spki_der(&der).map_err(|e| {
        damage(
            Column::Keys,
            fp.0,
            what,
            "a valid Ed25519 or P-256 key",
            e.to_string(),
        )
    })
}

/// The decoded leaf record at `i`, which step 2 has already checked.
fn record_at<S: Store>(store: &S, i: u64) -> Result<LeafRecord, FsckError> {
    let bytes = store
        .get(Column::Leaves, &layout::u64_key(i))?
        .ok_or_else(|| StoreError::Io(format!("leaf {i} vanished during fsck")))?;
    LeafRecord::decode(&bytes)
        .map_err(|e| FsckError::Store(StoreError::Io(format!("leaf {i} changed during fsck: {e}"))))
}

/// Step 4: every row of the derived columns comes from some leaf.
fn check_reverse<S: Store>(
    store: &S,
    cp: &SignedCheckpoint,
    summary: &mut Summary,
) -> Result<(), FsckError> {
    let n = cp.tree_size;
    let mut rows = Rows::new(store, Column::Dedup);
    while let Some((key, value)) = rows.next_row()? {
        let target = layout::decode_u64(&value).filter(|&i| i < n);
        let points_back = match target {
            Some(i) => record_at(store, i)?.envelope_sha256[..] == key[..],
            None => false,
        };
        if !points_back {
            return Err(damage(
                Column::Dedup,
                key,
                "dedup row",
                "the index of a leaf whose envelope has this digest",
                describe_index(Some(&value)),
            ));
        }
    }
    summary.dedup_rows = rows.count;

    let mut rows = Rows::new(store, Column::Envelopes);
    while let Some((key, _)) = rows.next_row()? {
        if store.get(Column::Dedup, &key)?.is_none() {
            return Err(damage(
                Column::Envelopes,
                key,
                "envelope",
                "an envelope referenced by a leaf",
                "an envelope no leaf references",
            ));
        }
    }
    summary.envelopes = rows.count;

    let mut rows = Rows::new(store, Column::Keys);
    while let Some((key, _)) = rows.next_row()? {
        let fp = Fingerprint(key.as_slice().try_into().unwrap_or([0; 32]));
        if key.len() != 32 || store.scan(Column::IdxSigner, &key, &key, 1)?.is_empty() {
            return Err(damage(
                Column::Keys,
                key,
                "signer key",
                "a key that signed some leaf",
                "a key no leaf names",
            ));
        }
        stored_key(store, &fp, "signer key")?;
    }
    summary.keys = rows.count;

    for col in INDEX_COLUMNS {
        let mut rows = Rows::new(store, col);
        while let Some((key, value)) = rows.next_row()? {
            let leaf = if key.len() == 40 {
                layout::decode_u64(&key[32..]).filter(|&i| i < n)
            } else {
                None
            };
            let derived = match leaf {
                Some(i) => layout::index_rows(&record_at(store, i)?, i)
                    .into_iter()
                    .any(|(c, k)| c == col && k == key),
                None => false,
            };
            if !derived {
                return Err(damage(
                    col,
                    key.clone(),
                    format!("{} row", col.name()),
                    "a row derived from the leaf record its last 8 bytes name",
                    match leaf {
                        Some(i) => format!("a term leaf {i} does not have"),
                        None => "a key that names no leaf in the tree".to_string(),
                    },
                ));
            }
            if !value.is_empty() {
                return Err(damage(
                    col,
                    key,
                    format!("{} row", col.name()),
                    "a row with an empty value",
                    format!("value {}", hex::encode(value)),
                ));
            }
        }
        summary.index_rows.insert(col.name(), rows.count);
    }

    let mut rows = Rows::new(store, Column::Meta);
    while let Some((key, _)) = rows.next_row()? {
        if key != META_CHECKPOINT && key != META_HEALTH_PROBE {
            return Err(damage(
                Column::Meta,
                key.clone(),
                format!("meta key {:?}", String::from_utf8_lossy(&key)),
                "only checkpoint and health_probe",
                "an unknown key",
            ));
        }
    }
    Ok(())
}
