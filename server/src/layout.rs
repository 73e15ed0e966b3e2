//! Key layouts of the column families (`spec/storage.md` section 3).
//!
//! Secondary index keys are `term_key(term) || leaf index (u64 BE)` with an empty value:
//! a prefix scan over `term_key(term)` lists the entries for a term in log order, and
//! the fixed 32-byte prefix keeps any term, however long, from shaping the key space.

use crate::storage::Column;
use pedigree_core::entry::LeafRecord;
use sha2::{Digest as _, Sha256};

/// Meta key of the latest signed checkpoint note.
pub const META_CHECKPOINT: &[u8] = b"checkpoint";

/// Meta key written by health checks to prove storage accepts durable writes.
pub const META_HEALTH_PROBE: &[u8] = b"health_probe";

/// Big-endian u64 key, so that key order is numeric order.
pub fn u64_key(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

/// Decodes an 8-byte big-endian value.
pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// The 32-byte prefix of a term's index rows.
pub fn term_key(term: &str) -> [u8; 32] {
    Sha256::digest(term.as_bytes()).into()
}

/// An index row key: the term prefix followed by the leaf index.
pub fn index_key(prefix: &[u8; 32], leaf_index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&leaf_index.to_be_bytes());
    k
}

/// The searchable attributes of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    /// A subject digest (`sha256:<hex>`).
    Subject,
    /// A signer key fingerprint (64 hex).
    Signer,
    /// A material digest (`sha256:<hex>`).
    Material,
    /// A predicate type URI.
    PredicateType,
}

impl IndexKind {
    /// The column holding this index.
    pub fn column(self) -> Column {
        match self {
            IndexKind::Subject => Column::IdxSubject,
            IndexKind::Signer => Column::IdxSigner,
            IndexKind::Material => Column::IdxMaterial,
            IndexKind::PredicateType => Column::IdxPredicate,
        }
    }

    /// The row prefix for a term of this kind. Signer terms are the fingerprint bytes
    /// themselves; other terms are hashed.
    pub fn prefix(self, term: &str) -> Option<[u8; 32]> {
        match self {
            IndexKind::Signer => {
                let fp: pedigree_core::keys::Fingerprint = term.parse().ok()?;
                Some(fp.0)
            }
            _ => Some(term_key(term)),
        }
    }
}

/// Every index row an entry has: derived from the leaf record alone, so the indexes can
/// be rebuilt (and checked) from the leaves.
pub fn index_rows(record: &LeafRecord, leaf_index: u64) -> Vec<(Column, Vec<u8>)> {
    let mut rows = Vec::new();
    for d in &record.subjects {
        rows.push((
            Column::IdxSubject,
            index_key(&term_key(&d.to_string()), leaf_index),
        ));
    }
    for fp in &record.signers {
        rows.push((Column::IdxSigner, index_key(&fp.0, leaf_index)));
    }
    for d in &record.materials {
        rows.push((
            Column::IdxMaterial,
            index_key(&term_key(&d.to_string()), leaf_index),
        ));
    }
    rows.push((
        Column::IdxPredicate,
        index_key(&term_key(&record.predicate_type), leaf_index),
    ));
    rows
}
