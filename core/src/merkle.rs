//! RFC 6962 / RFC 9162 Merkle tree hashing and proof verification.
//!
//! The proof math is Cloudflare azul's `tlog_tiles` (a port of Go's `sumdb/tlog`, the
//! code behind the Go checksum database). This module adds what a log needs on top:
//! typed errors, the length checks a verifier must make on wire bytes, and the edge
//! cases RFC 9162 section 2.1.4 leaves to the verifier (equal sizes, the empty tree).
//!
//! Verifiers take proof elements and roots as byte slices because that is what arrives
//! from the wire: a hash of the wrong length is a rejected proof, not a parse error
//! somewhere else.

use thiserror::Error;
pub use tlog_tiles::{Error as HashReaderError, Hash, HashReader, HASH_SIZE};

/// The hash of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1).
pub const EMPTY_TREE_HASH: Hash = tlog_tiles::EMPTY_HASH;

/// Why a Merkle proof was rejected or could not be produced.
#[derive(Debug, Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {leaf_index} is not smaller than tree size {tree_size}")]
    IndexOutOfRange {
        /// The index asked about.
        leaf_index: u64,
        /// The size of the tree.
        tree_size: u64,
    },
    /// A consistency proof was asked for sizes that do not grow.
    #[error("tree size {new_size} is smaller than previous {old_size}")]
    SizeShrinks {
        /// The earlier tree size.
        old_size: u64,
        /// The later tree size.
        new_size: u64,
    },
    /// Consistency with the empty tree proves nothing, so it is refused rather than
    /// answered trivially (RFC 9162 section 2.1.4 requires 0 < first).
    #[error("consistency from the empty tree is not defined")]
    EmptyOldTree,
    /// A hash on the wire was not 32 bytes long.
    #[error("{what} is {len} bytes long, want 32")]
    WrongHashLength {
        /// Which value was malformed (`root`, `leaf hash`, `proof element 3`, ...).
        what: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The proof has hashes beyond what the tree shape allows; refused before any work.
    #[error("proof has {len} hashes, more than the {max} a tree of this size can need")]
    ProofTooLong {
        /// Number of hashes supplied.
        len: usize,
        /// The most a proof for this tree can hold.
        max: usize,
    },
    /// The proof does not lead to the expected root (or roots).
    #[error("proof does not verify against the root hash")]
    RootMismatch,
    /// Two trees of the same size with different roots: a split view if both are signed.
    #[error("trees of equal size {tree_size} have different roots")]
    DifferentRootsForSize {
        /// The common size.
        tree_size: u64,
    },
    /// The storage under a [`HashReader`] failed or returned a malformed hash.
    #[error("couldn't read stored hashes: {0}")]
    Storage(#[source] tlog_tiles::Error),
}

/// Something holding hash bytes: a [`Hash`] from storage or bytes from the wire.
pub trait HashBytes {
    /// The bytes, whatever their length (verifiers check it).
    fn hash_bytes(&self) -> &[u8];
}

impl HashBytes for Hash {
    fn hash_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl HashBytes for Vec<u8> {
    fn hash_bytes(&self) -> &[u8] {
        self
    }
}

impl HashBytes for [u8; HASH_SIZE] {
    fn hash_bytes(&self) -> &[u8] {
        self
    }
}

impl HashBytes for &[u8] {
    fn hash_bytes(&self) -> &[u8] {
        self
    }
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    tlog_tiles::record_hash(data)
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: Hash, right: Hash) -> Hash {
    tlog_tiles::node_hash(left, right)
}

/// Parses 32 wire bytes into a [`Hash`], naming `what` in the error.
///
/// # Errors
///
/// [`ProofError::WrongHashLength`] when `bytes` is not 32 bytes long.
pub fn hash_from_slice(what: &str, bytes: &[u8]) -> Result<Hash, ProofError> {
    let arr: [u8; HASH_SIZE] = bytes.try_into().map_err(|_| ProofError::WrongHashLength {
        what: what.to_string(),
        len: bytes.len(),
    })?;
    Ok(Hash(arr))
}

/// The most hashes an inclusion or consistency proof in a tree of `tree_size` can hold:
/// one per level, plus one for a consistency proof's starting node.
fn max_proof_len(tree_size: u64) -> usize {
    (64 - tree_size.leading_zeros()) as usize + 1
}

fn parse_proof(proof: &[impl HashBytes], tree_size: u64) -> Result<Vec<Hash>, ProofError> {
    let max = max_proof_len(tree_size);
    if proof.len() > max {
        return Err(ProofError::ProofTooLong {
            len: proof.len(),
            max,
        });
    }
    proof
        .iter()
        .enumerate()
        .map(|(i, h)| hash_from_slice(&format!("proof element {i}"), h.hash_bytes()))
        .collect()
}

/// Verifies that `leaf_hash` is the leaf at `leaf_index` in the tree of `tree_size`
/// whose root is `root` (RFC 9162 section 2.1.3.2).
///
/// # Errors
///
/// [`ProofError::IndexOutOfRange`] when `leaf_index >= tree_size`,
/// [`ProofError::WrongHashLength`] for a malformed hash and
/// [`ProofError::RootMismatch`] when the proof does not lead to `root`.
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &[u8],
    proof: &[impl HashBytes],
    root: &[u8],
) -> Result<(), ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    let leaf = hash_from_slice("leaf hash", leaf_hash)?;
    let root = hash_from_slice("root", root)?;
    let proof = parse_proof(proof, tree_size)?;
    tlog_tiles::check_record(&proof, tree_size, root, leaf_index, leaf)
        .map_err(|_| ProofError::RootMismatch)
}

/// Verifies that the tree of `old_size` with root `old_root` is a prefix of the tree of
/// `new_size` with root `new_root` (RFC 9162 section 2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots; this is the check that exposes a
/// split view, so it compares the bytes given, whatever their length.
///
/// # Errors
///
/// [`ProofError::SizeShrinks`], [`ProofError::EmptyOldTree`],
/// [`ProofError::DifferentRootsForSize`], [`ProofError::WrongHashLength`] and
/// [`ProofError::RootMismatch`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[impl HashBytes],
    old_root: &[u8],
    new_root: &[u8],
) -> Result<(), ProofError> {
    if new_size < old_size {
        return Err(ProofError::SizeShrinks { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::ProofTooLong {
                len: proof.len(),
                max: 0,
            });
        }
        if old_root != new_root {
            return Err(ProofError::DifferentRootsForSize {
                tree_size: new_size,
            });
        }
        return Ok(());
    }
    let old = hash_from_slice("old root", old_root)?;
    let new = hash_from_slice("new root", new_root)?;
    let proof = parse_proof(proof, new_size)?;
    tlog_tiles::check_tree(&proof, new_size, new, old_size, old)
        .map_err(|_| ProofError::RootMismatch)
}

/// Root hash of the tree of `tree_size` from the stored hashes behind `reader`.
///
/// # Errors
///
/// [`ProofError::Storage`] when the reader fails.
pub fn tree_hash(tree_size: u64, reader: &impl HashReader) -> Result<Hash, ProofError> {
    tlog_tiles::tree_hash(tree_size, reader).map_err(ProofError::Storage)
}

/// Inclusion proof for `leaf_index` in the tree of `tree_size`.
///
/// # Errors
///
/// [`ProofError::IndexOutOfRange`], or [`ProofError::Storage`] when the reader fails.
pub fn prove_inclusion(
    leaf_index: u64,
    tree_size: u64,
    reader: &impl HashReader,
) -> Result<Vec<Hash>, ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    tlog_tiles::prove_record(tree_size, leaf_index, reader).map_err(ProofError::Storage)
}

/// Consistency proof from the tree of `old_size` to the tree of `new_size`.
///
/// # Errors
///
/// [`ProofError::SizeShrinks`], [`ProofError::EmptyOldTree`], or
/// [`ProofError::Storage`] when the reader fails.
pub fn prove_consistency(
    old_size: u64,
    new_size: u64,
    reader: &impl HashReader,
) -> Result<Vec<Hash>, ProofError> {
    if new_size < old_size {
        return Err(ProofError::SizeShrinks { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    tlog_tiles::prove_tree(new_size, old_size, reader).map_err(ProofError::Storage)
}

/// The stored hashes that appending the leaf with `leaf_hash` at `leaf_index` adds,
/// to be written starting at [`stored_hash_index`]`(0, leaf_index)`.
///
/// # Errors
///
/// [`ProofError::Storage`] when the reader fails to give earlier hashes.
pub fn stored_hashes_for_leaf(
    leaf_index: u64,
    leaf_hash: Hash,
    reader: &impl HashReader,
) -> Result<Vec<Hash>, ProofError> {
    tlog_tiles::stored_hashes_for_record_hash(leaf_index, leaf_hash, reader)
        .map_err(ProofError::Storage)
}

/// Index of the stored hash for node `n` at `level` (Go `tlog` numbering: the hashes
/// are stored in the order they become final, so a log only ever appends them).
pub fn stored_hash_index(level: u8, n: u64) -> u64 {
    tlog_tiles::stored_hash_index(level, n)
}

/// Inverse of [`stored_hash_index`].
pub fn split_stored_hash_index(index: u64) -> (u8, u64) {
    tlog_tiles::split_stored_hash_index(index)
}

/// Number of stored hashes for a tree of `tree_size` leaves.
pub fn stored_hash_count(tree_size: u64) -> u64 {
    tlog_tiles::stored_hash_count(tree_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::prelude::*;
    use serde::Deserialize;
    use std::path::{Path, PathBuf};

    fn vectors_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/rfc6962")
    }

    fn b64(s: &str) -> Vec<u8> {
        BASE64_STANDARD.decode(s).expect("vector base64")
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InclusionCase {
        leaf_idx: u64,
        tree_size: u64,
        root: String,
        leaf_hash: String,
        proof: Option<Vec<String>>,
        want_err: bool,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ConsistencyCase {
        size1: u64,
        size2: u64,
        root1: String,
        root2: String,
        proof: Option<Vec<String>>,
        want_err: bool,
    }

    fn json_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("vector dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                out.extend(json_files(&path));
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
        out.sort();
        out
    }

    fn check(path: &Path, got: Result<(), ProofError>, want_err: bool, failures: &mut Vec<String>) {
        if got.is_err() != want_err {
            failures.push(format!(
                "{}: want_err={want_err}, got {got:?}",
                path.display()
            ));
        }
    }

    fn proof_of(p: &Option<Vec<String>>) -> Vec<Vec<u8>> {
        p.iter().flatten().map(|h| b64(h)).collect()
    }

    #[test]
    fn rfc6962_inclusion_vectors() {
        let files = json_files(&vectors_dir().join("inclusion"));
        assert_eq!(files.len(), 98, "inclusion vector count");
        let mut failures = Vec::new();
        for path in &files {
            let c: InclusionCase = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let got = verify_inclusion(
                c.leaf_idx,
                c.tree_size,
                &b64(&c.leaf_hash),
                &proof_of(&c.proof),
                &b64(&c.root),
            );
            check(path, got, c.want_err, &mut failures);
        }
        assert!(
            failures.is_empty(),
            "failing vectors:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn rfc6962_consistency_vectors() {
        let files = json_files(&vectors_dir().join("consistency"));
        assert_eq!(files.len(), 98, "consistency vector count");
        let mut failures = Vec::new();
        for path in &files {
            let c: ConsistencyCase = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let got = verify_consistency(
                c.size1,
                c.size2,
                &proof_of(&c.proof),
                &b64(&c.root1),
                &b64(&c.root2),
            );
            check(path, got, c.want_err, &mut failures);
        }
        assert!(
            failures.is_empty(),
            "failing vectors:\n{}",
            failures.join("\n")
        );
    }

    /// In-memory stored hashes, built with the same functions the log engine uses.
    struct MemTree(Vec<Hash>);

    impl HashReader for MemTree {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            indexes
                .iter()
                .map(|&i| {
                    self.0
                        .get(i as usize)
                        .copied()
                        .ok_or(tlog_tiles::Error::IndexesNotInTree)
                })
                .collect()
        }
    }

    impl MemTree {
        fn with_leaves(leaves: &[&[u8]]) -> Self {
            let mut t = MemTree(Vec::new());
            for (i, data) in leaves.iter().enumerate() {
                let new = stored_hashes_for_leaf(i as u64, leaf_hash(data), &t).unwrap();
                t.0.extend(new);
            }
            t
        }
    }

    fn reference_leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
    }

    #[test]
    fn prover_reproduces_reference_roots_and_happy_path_proofs() {
        let leaves = reference_leaves();
        let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
        let tree = MemTree::with_leaves(&refs);
        let root8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";
        assert_eq!(hex::encode(tree_hash(8, &tree).unwrap().0), root8);
        // Every happy-path inclusion vector over the 8-leaf tree must be produced byte for byte.
        for path in json_files(&vectors_dir().join("inclusion")) {
            if !path.ends_with("happy-path.json") {
                continue;
            }
            let c: InclusionCase = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let got = prove_inclusion(c.leaf_idx, c.tree_size, &tree).unwrap();
            let got: Vec<Vec<u8>> = got.iter().map(|h| h.0.to_vec()).collect();
            assert_eq!(got, proof_of(&c.proof), "{}", path.display());
        }
        for path in json_files(&vectors_dir().join("consistency")) {
            if !path.ends_with("happy-path.json") {
                continue;
            }
            let c: ConsistencyCase =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let got = prove_consistency(c.size1, c.size2, &tree).unwrap();
            let got: Vec<Vec<u8>> = got.iter().map(|h| h.0.to_vec()).collect();
            assert_eq!(got, proof_of(&c.proof), "{}", path.display());
        }
    }

    #[test]
    fn consistency_proof_rejects_wrong_old_root() {
        let leaves = reference_leaves();
        let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
        let tree = MemTree::with_leaves(&refs);
        let old = tree_hash(3, &tree).unwrap();
        let new = tree_hash(8, &tree).unwrap();
        let proof = prove_consistency(3, 8, &tree).unwrap();
        assert!(verify_consistency(3, 8, &proof, &old.0, &new.0).is_ok());
        let mut bad = old.0;
        bad[0] ^= 1;
        assert!(matches!(
            verify_consistency(3, 8, &proof, &bad, &new.0),
            Err(ProofError::RootMismatch)
        ));
    }

    #[test]
    fn oversized_proof_is_refused_before_hashing() {
        let proof = vec![[0u8; 32]; 200];
        assert!(matches!(
            verify_inclusion(0, 8, &[0; 32], &proof, &[0; 32]),
            Err(ProofError::ProofTooLong { len: 200, .. })
        ));
        assert!(matches!(
            verify_consistency(u64::MAX - 1, u64::MAX, &proof, &[0; 32], &[0; 32]),
            Err(ProofError::ProofTooLong { .. })
        ));
    }

    #[test]
    fn equal_sizes_with_different_roots_is_a_split_view() {
        let err = verify_consistency(5, 5, &Vec::<Vec<u8>>::new(), &[1; 32], &[2; 32]);
        assert!(matches!(
            err,
            Err(ProofError::DifferentRootsForSize { tree_size: 5 })
        ));
    }
}
