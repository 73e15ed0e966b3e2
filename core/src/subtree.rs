//! Subtree inclusion and subtree consistency proofs, as defined in section 4 of
//! draft-ietf-plants-merkle-tree-certs (editor's copy after -05, where empty subtrees
//! became valid), over RFC 9162 hashing with SHA-256.
//!
//! A subtree `[start, end)` is the Merkle tree `MTH(D[start:end])` built over an aligned
//! interval of a log: `start` is a multiple of `BIT_CEIL(end - start)` (section 4.1).
//! Alignment is what lets a subtree be proven consistent with every later tree of the log,
//! so a signature over one subtree hash can stand for a whole batch of entries.
//!
//! In scope: checking a subtree inclusion proof (section 4.3) and a subtree consistency
//! proof (section 4.4). Out of scope: building proofs, which needs tree storage, and
//! covering arbitrary intervals with two subtrees (section 4.5).
//!
//! The verifiers take hashes as byte slices because that is what arrives from the wire,
//! and check lengths themselves. They never panic, and their work is bounded by the tree
//! height: the expected proof length is computed from the indices alone and compared
//! before any proof hash is read, so a huge proof costs nothing.

use sha2::{Digest, Sha256};

/// Length of every hash in the tree (SHA-256).
const HASH_LEN: usize = 32;

type Hash = [u8; HASH_LEN];

/// Why a subtree proof was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SubtreeProofError {
    /// `[start, end)` is not a subtree: `start > end`, or `start` is not a multiple of
    /// `BIT_CEIL(end - start)` (draft section 4.1).
    #[error("[{start}, {end}) is not a valid subtree: start must be a multiple of BIT_CEIL(end - start)")]
    InvalidSubtree {
        /// First index of the interval.
        start: u64,
        /// One past the last index of the interval.
        end: u64,
    },
    /// The leaf index is not inside the subtree.
    #[error("leaf index {leaf_index} is outside subtree [{start}, {end})")]
    IndexOutOfRange {
        /// The index asked about.
        leaf_index: u64,
        /// First index of the subtree.
        start: u64,
        /// One past the last index of the subtree.
        end: u64,
    },
    /// The subtree reaches past the end of the tree it is claimed to be part of.
    #[error("subtree end {end} is beyond tree size {tree_size}")]
    SizeOutOfRange {
        /// One past the last index of the subtree.
        end: u64,
        /// The size of the containing tree.
        tree_size: u64,
    },
    /// A leaf hash, subtree hash or root was not 32 bytes long.
    #[error("{what} is {len} bytes long, want 32")]
    WrongHashLength {
        /// Which value was malformed: `leaf hash`, `subtree hash` or `root`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A proof element was not 32 bytes long.
    #[error("proof element {position} is {len} bytes long, want 32")]
    WrongProofElementLength {
        /// Zero-based position of the element in the proof.
        position: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// The proof does not have the number of hashes the indices call for.
    #[error("proof has {got} hashes, want {want}")]
    WrongProofLength {
        /// Number of hashes supplied.
        got: usize,
        /// Number of hashes the subtree and tree sizes require.
        want: usize,
    },
    /// The subtree hash rebuilt from the proof differs from the one given.
    #[error("computed subtree hash {} does not match given {}", hex::encode(.computed), hex::encode(.given))]
    SubtreeHashMismatch {
        /// The hash the proof leads to.
        computed: Vec<u8>,
        /// The hash the caller expected.
        given: Vec<u8>,
    },
    /// The tree root rebuilt from the proof differs from the one given.
    #[error("computed root {} does not match given {}", hex::encode(.computed), hex::encode(.given))]
    RootMismatch {
        /// The root the proof leads to.
        computed: Vec<u8>,
        /// The root the caller expected.
        given: Vec<u8>,
    },
}

/// Verifies that `leaf_hash` is at `leaf_index` in the subtree `[start, end)` whose hash
/// is `subtree_hash` (draft section 4.3.3).
///
/// A subtree inclusion proof is an RFC 9162 inclusion proof for entry
/// `leaf_index - start` in the tree `D[start:end]`; `leaf_index` is an index of the whole
/// log, not of the subtree.
///
/// # Errors
///
/// [`SubtreeProofError::InvalidSubtree`] if `[start, end)` is not a subtree,
/// [`SubtreeProofError::IndexOutOfRange`] unless `start <= leaf_index < end` (so an empty
/// subtree never verifies), [`SubtreeProofError::WrongProofLength`] if the proof has the
/// wrong number of hashes, [`SubtreeProofError::WrongHashLength`] or
/// [`SubtreeProofError::WrongProofElementLength`] for a hash that is not 32 bytes, and
/// [`SubtreeProofError::SubtreeHashMismatch`] if the proof leads elsewhere.
pub fn verify_subtree_inclusion(
    leaf_index: u64,
    start: u64,
    end: u64,
    leaf_hash: &[u8],
    proof: &[impl AsRef<[u8]>],
    subtree_hash: &[u8],
) -> Result<(), SubtreeProofError> {
    // Section 4.3.2 step 1.
    check_subtree(start, end)?;
    if leaf_index < start || leaf_index >= end {
        return Err(SubtreeProofError::IndexOutOfRange {
            leaf_index,
            start,
            end,
        });
    }
    // Step 2, in the draft's names: `fn` follows the path to the entry and `sn` the path
    // to the subtree's last entry. Neither subtraction can wrap after the checks above.
    let steps = path_steps(leaf_index - start, leaf_index - start, end - start - 1);
    check_proof_length(proof.len(), steps.len())?;
    let leaf_hash = hash_arg("leaf hash", leaf_hash)?;
    let subtree_hash = hash_arg("subtree hash", subtree_hash)?;
    let proof = proof_hashes(proof)?;

    // Steps 3 and 4.
    let mut computed = *leaf_hash;
    for (step, sibling) in steps.iter().zip(proof) {
        computed = if step.left {
            node(sibling, &computed)
        } else {
            node(&computed, sibling)
        };
    }
    if &computed != subtree_hash {
        return Err(SubtreeProofError::SubtreeHashMismatch {
            computed: computed.to_vec(),
            given: subtree_hash.to_vec(),
        });
    }
    Ok(())
}

/// Verifies that the subtree `[start, end)` with hash `subtree_hash` is consistent with
/// (contained in) the tree of `tree_size` entries with root `root` (draft section 4.4.3).
///
/// An empty subtree `[x, x)` is consistent with every tree of at least `x` entries
/// whatever its root: it holds no entries, so `root` is not read, and the check is only
/// that `subtree_hash` is the empty-tree hash and the proof is empty.
///
/// When the subtree is the whole tree (`start == 0`, `end == tree_size`) the proof is
/// empty and the check is only `subtree_hash == root`, byte for byte, so two equal
/// hashes of any length pass there. Everywhere else both must be 32 bytes.
///
/// # Errors
///
/// [`SubtreeProofError::InvalidSubtree`] if `[start, end)` is not a subtree,
/// [`SubtreeProofError::SizeOutOfRange`] if `end > tree_size`,
/// [`SubtreeProofError::WrongProofLength`] if the proof has the wrong number of hashes,
/// [`SubtreeProofError::WrongHashLength`] or
/// [`SubtreeProofError::WrongProofElementLength`] for a hash that is not 32 bytes, and
/// [`SubtreeProofError::SubtreeHashMismatch`] or [`SubtreeProofError::RootMismatch`] if
/// the proof does not rebuild both hashes.
pub fn verify_subtree_consistency(
    start: u64,
    end: u64,
    tree_size: u64,
    proof: &[impl AsRef<[u8]>],
    subtree_hash: &[u8],
    root: &[u8],
) -> Result<(), SubtreeProofError> {
    // Section 4.4.3 step 1.
    check_subtree(start, end)?;
    if end > tree_size {
        return Err(SubtreeProofError::SizeOutOfRange { end, tree_size });
    }
    // Step 2.
    if start == end {
        check_proof_length(proof.len(), 0)?;
        let empty: Hash = Sha256::digest(b"").into();
        if subtree_hash != empty {
            return Err(SubtreeProofError::SubtreeHashMismatch {
                computed: empty.to_vec(),
                given: subtree_hash.to_vec(),
            });
        }
        return Ok(());
    }

    // Step 3, in the draft's names: `fn`, `sn` and `tn` follow the paths to the subtree's
    // first entry, its last entry and the tree's last entry. No subtraction can wrap:
    // start < end <= tree_size.
    let mut first = start;
    let mut last = end - 1;
    let mut tree_last = tree_size - 1;
    // Steps 4 and 5: climb to the starting node, the highest ancestor of the subtree's
    // last entry that both trees share. Each loop ends within 64 shifts.
    if last == tree_last {
        while first != last {
            (first, last, tree_last) = (first >> 1, last >> 1, tree_last >> 1);
        }
    } else {
        while first != last && last & 1 == 1 {
            (first, last, tree_last) = (first >> 1, last >> 1, tree_last >> 1);
        }
    }
    // Step 6: when the starting node is the subtree's own root the verifier already has
    // its hash; otherwise (step 7) the proof opens with it.
    let seeded_by_proof = first != last;
    let steps = path_steps(first, last, tree_last);
    let want = steps.len() + usize::from(seeded_by_proof);
    check_proof_length(proof.len(), want)?;
    if want == 0 {
        // Only [0, tree_size) needs no hashes: the subtree is the tree itself.
        if subtree_hash != root {
            return Err(SubtreeProofError::RootMismatch {
                computed: subtree_hash.to_vec(),
                given: root.to_vec(),
            });
        }
        return Ok(());
    }
    let subtree_hash = hash_arg("subtree hash", subtree_hash)?;
    let root = hash_arg("root", root)?;
    let proof = proof_hashes(proof)?;

    // `first_root` rebuilds the subtree hash and `second_root` the tree root (the draft's
    // `fr` and `sr`); every hash that goes into the first also goes into the second.
    let (seed, rest) = match (seeded_by_proof, proof.split_first()) {
        (true, Some((seed, rest))) => (*seed, rest),
        _ => (subtree_hash, proof.as_slice()),
    };
    let mut first_root = *seed;
    let mut second_root = *seed;
    // Step 8.
    for (step, sibling) in steps.iter().zip(rest) {
        if step.left {
            if step.in_subtree {
                first_root = node(sibling, &first_root);
            }
            second_root = node(sibling, &second_root);
        } else {
            second_root = node(&second_root, sibling);
        }
    }
    // Step 9 (the draft's `tn == 0` holds by construction of `steps`).
    if &first_root != subtree_hash {
        return Err(SubtreeProofError::SubtreeHashMismatch {
            computed: first_root.to_vec(),
            given: subtree_hash.to_vec(),
        });
    }
    if &second_root != root {
        return Err(SubtreeProofError::RootMismatch {
            computed: second_root.to_vec(),
            given: root.to_vec(),
        });
    }
    Ok(())
}

/// Checks that `[start, end)` is a subtree (draft section 4.1).
fn check_subtree(start: u64, end: u64) -> Result<(), SubtreeProofError> {
    let valid = match end.checked_sub(start) {
        None => false,
        // BIT_CEIL(size) does not fit in a u64 above 2^63; only start 0 is a multiple of
        // 2^64 there.
        Some(size) => match size.checked_next_power_of_two() {
            Some(bit_ceil) => start & (bit_ceil - 1) == 0,
            None => start == 0,
        },
    };
    if valid {
        Ok(())
    } else {
        Err(SubtreeProofError::InvalidSubtree { start, end })
    }
}

/// How one proof hash is folded in on the way up from the starting node.
#[derive(Clone, Copy, Debug)]
struct Step {
    /// The proof hash is the left sibling: hash `node(proof, acc)`, else `node(acc, proof)`.
    left: bool,
    /// The proof hash is also inside the subtree being rebuilt alongside the root.
    in_subtree: bool,
}

/// Lists the proof hashes needed to climb from a node to the root, lowest level first.
///
/// `path` is the node's index on its level and `tree_last` the index of the tree's
/// last node on that level; `first` is the index of the leftmost node of the subtree
/// rebuilt alongside (pass `path` when there is none). This is the loop of draft
/// section 4.3.2 step 4 and section 4.4.3 step 8 with the hashing taken out, so the
/// exact proof length is known before any proof hash is read. At most 64 steps, since
/// `tree_last` halves on each.
fn path_steps(mut first: u64, mut path: u64, mut tree_last: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    while tree_last != 0 {
        if path & 1 == 1 || path == tree_last {
            steps.push(Step {
                left: true,
                in_subtree: first < path,
            });
            // On the right edge a level without a right sibling is skipped: that node's
            // hash is its only child's. Ends because path == tree_last != 0 has a set bit.
            while path & 1 == 0 {
                (first, path, tree_last) = (first >> 1, path >> 1, tree_last >> 1);
            }
        } else {
            steps.push(Step {
                left: false,
                in_subtree: false,
            });
        }
        (first, path, tree_last) = (first >> 1, path >> 1, tree_last >> 1);
    }
    steps
}

fn check_proof_length(got: usize, want: usize) -> Result<(), SubtreeProofError> {
    if got == want {
        Ok(())
    } else {
        Err(SubtreeProofError::WrongProofLength { got, want })
    }
}

fn hash_arg<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a Hash, SubtreeProofError> {
    bytes
        .try_into()
        .map_err(|_| SubtreeProofError::WrongHashLength {
            what,
            len: bytes.len(),
        })
}

/// Checks every proof element's length; called only after the proof length matched, so
/// this is bounded by the tree height too.
fn proof_hashes(proof: &[impl AsRef<[u8]>]) -> Result<Vec<&Hash>, SubtreeProofError> {
    proof
        .iter()
        .enumerate()
        .map(|(position, element)| {
            let bytes = element.as_ref();
            bytes
                .try_into()
                .map_err(|_| SubtreeProofError::WrongProofElementLength {
                    position,
                    len: bytes.len(),
                })
        })
        .collect()
}

/// RFC 9162 interior node hash: SHA-256(0x01 || left || right).
fn node(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};

    /// The transparency-dev/merkle vectors; see `README.md` there for where they come from.
    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/rfc6962/");

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InclusionVector {
        leaf_idx: u64,
        start: u64,
        end: u64,
        root: String,
        leaf_hash: String,
        proof: Option<Vec<String>>,
        desc: String,
        want_err: bool,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ConsistencyVector {
        start: u64,
        end: u64,
        size: u64,
        root1: String,
        root2: String,
        proof: Option<Vec<String>>,
        desc: String,
        want_err: bool,
    }

    fn b64(text: &str) -> Vec<u8> {
        BASE64.decode(text).expect("vector hash is base64")
    }

    fn b64_proof(proof: Option<&[String]>) -> Vec<Vec<u8>> {
        proof.unwrap_or_default().iter().map(|h| b64(h)).collect()
    }

    /// Compares a verifier's result with a vector's `wantErr`.
    fn expect(
        desc: &str,
        want_err: bool,
        result: Result<(), SubtreeProofError>,
    ) -> Result<(), String> {
        match (want_err, result) {
            (false, Ok(())) | (true, Err(_)) => Ok(()),
            (false, Err(err)) => Err(format!("{desc}: rejected: {err}")),
            (true, Ok(())) => Err(format!("{desc}: accepted, want rejected")),
        }
    }

    fn check_inclusion(json: &str) -> Result<(), String> {
        let v: InclusionVector = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let proof = b64_proof(v.proof.as_deref());
        let result = verify_subtree_inclusion(
            v.leaf_idx,
            v.start,
            v.end,
            &b64(&v.leaf_hash),
            &proof,
            &b64(&v.root),
        );
        expect(&v.desc, v.want_err, result)
    }

    fn check_consistency(json: &str) -> Result<(), String> {
        let v: ConsistencyVector = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let proof = b64_proof(v.proof.as_deref());
        let result = verify_subtree_consistency(
            v.start,
            v.end,
            v.size,
            &proof,
            &b64(&v.root1),
            &b64(&v.root2),
        );
        expect(&v.desc, v.want_err, result)
    }

    fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("couldn't read vector folder {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("readable folder entry").path();
            if path.is_dir() {
                json_files(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                out.push(path);
            }
        }
    }

    /// Runs `check` on every vector under `folder` and expects `want_count` of them, so
    /// that a folder that fails to load, or grows, is noticed rather than skipped.
    fn run_vectors(folder: &str, want_count: usize, check: fn(&str) -> Result<(), String>) {
        let root = Path::new(VECTORS).join(folder);
        let mut files = Vec::new();
        json_files(&root, &mut files);
        files.sort();
        let failures: Vec<String> = files
            .iter()
            .filter_map(|path| {
                let name = path.strip_prefix(&root).unwrap_or(path).display();
                let json = std::fs::read_to_string(path).map_err(|e| e.to_string());
                json.and_then(|json| check(&json))
                    .err()
                    .map(|err| format!("{name}: {err}"))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} vectors failed:\n{}",
            failures.len(),
            files.len(),
            failures.join("\n")
        );
        assert_eq!(files.len(), want_count, "vector files under {folder}");
    }

    #[test]
    fn subtree_inclusion_vectors_all_pass() {
        run_vectors("subtreeinclusion", 204, check_inclusion);
    }

    #[test]
    fn subtree_consistency_vectors_all_pass() {
        run_vectors("subtreeconsistency", 118, check_consistency);
    }

    /// A reference prover written straight from the draft's recursive definitions, slow
    /// but obviously right; the verifiers above are checked against it.
    struct Tree {
        leaves: Vec<Hash>,
        /// `MTH(D[lo:hi])` by `(lo, hi)`; proofs reuse the same aligned nodes a lot.
        memo: HashMap<(usize, usize), Hash>,
    }

    impl Tree {
        fn new(leaves: Vec<Hash>) -> Self {
            Tree {
                leaves,
                memo: HashMap::new(),
            }
        }

        /// RFC 9162 section 2.1.1 `MTH(D[lo:hi])`.
        fn hash(&mut self, lo: usize, hi: usize) -> Hash {
            if let Some(hash) = self.memo.get(&(lo, hi)) {
                return *hash;
            }
            let hash = match hi - lo {
                0 => Sha256::digest(b"").into(),
                1 => self.leaves[lo],
                size => {
                    let mid = lo + split(size);
                    node(&self.hash(lo, mid), &self.hash(mid, hi))
                }
            };
            self.memo.insert((lo, hi), hash);
            hash
        }

        /// RFC 9162 section 2.1.3.1 `PATH(index - lo, D[lo:hi])`: the subtree
        /// inclusion proof of draft section 4.3.
        fn inclusion_proof(&mut self, index: usize, lo: usize, hi: usize) -> Vec<Hash> {
            if hi - lo <= 1 {
                return Vec::new();
            }
            let mid = lo + split(hi - lo);
            let (mut proof, sibling) = if index < mid {
                (self.inclusion_proof(index, lo, mid), self.hash(mid, hi))
            } else {
                (self.inclusion_proof(index, mid, hi), self.hash(lo, mid))
            };
            proof.push(sibling);
            proof
        }

        /// Draft section 4.4.1 `SUBTREE_PROOF(start, end, D[0:size])`.
        fn consistency_proof(&mut self, start: usize, end: usize, size: usize) -> Vec<Hash> {
            if start == end {
                return Vec::new();
            }
            self.consistency_subproof(start, end, 0, size, true)
        }

        /// `SUBTREE_SUBPROOF` over `D[lo:hi]`, with `start` and `end` kept absolute.
        fn consistency_subproof(
            &mut self,
            start: usize,
            end: usize,
            lo: usize,
            hi: usize,
            known: bool,
        ) -> Vec<Hash> {
            if start == lo && end == hi {
                return if known {
                    Vec::new()
                } else {
                    vec![self.hash(lo, hi)]
                };
            }
            let mid = lo + split(hi - lo);
            let (mut proof, sibling) = if end <= mid {
                let proof = self.consistency_subproof(start, end, lo, mid, known);
                (proof, self.hash(mid, hi))
            } else if mid <= start {
                let proof = self.consistency_subproof(start, end, mid, hi, known);
                (proof, self.hash(lo, mid))
            } else {
                let proof = self.consistency_subproof(mid, end, mid, hi, false);
                (proof, self.hash(lo, mid))
            };
            proof.push(sibling);
            proof
        }
    }

    /// The largest power of two smaller than `size` (RFC 9162's `k`); `size >= 2`.
    fn split(size: usize) -> usize {
        1 << (usize::BITS - 1 - (size - 1).leading_zeros())
    }

    fn leaf(data: &[u8]) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update([0x00]);
        hasher.update(data);
        hasher.finalize().into()
    }

    fn is_subtree(start: usize, end: usize) -> bool {
        check_subtree(start as u64, end as u64).is_ok()
    }

    fn hex_line(prefix: String, proof: &[Hash]) -> String {
        let mut line = prefix;
        for hash in proof {
            write!(line, " {}", hex::encode(hash)).expect("writing to a String");
        }
        line.push('\n');
        line
    }

    fn flip_bit(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
        let mut flipped = bytes.to_vec();
        let bit = rng.gen_range(0..flipped.len() * 8);
        flipped[bit / 8] ^= 1 << (bit % 8);
        flipped
    }

    /// Draft appendix "Subtree Test Vectors": rolling SHA-256 over every subtree hash and
    /// every proof of trees up to 130 entries with `d[i] = i`. Matching them shows the
    /// reference prover follows the draft; every one of those proofs must then verify.
    #[test]
    fn reference_prover_matches_draft_vectors_and_its_proofs_verify() {
        const MAX: usize = 130;
        let mut tree = Tree::new((0..MAX).map(|i| leaf(&[i as u8])).collect());
        let (mut hashes, mut inclusion, mut consistency) =
            (Sha256::new(), Sha256::new(), Sha256::new());
        for end in 0..=MAX {
            for start in (0..=end).filter(|&start| is_subtree(start, end)) {
                let subtree_hash = tree.hash(start, end);
                hashes.update(format!("[{start}, {end}) {}\n", hex::encode(subtree_hash)));
                for index in start..end {
                    let proof = tree.inclusion_proof(index, start, end);
                    inclusion.update(hex_line(format!("{index} [{start}, {end})"), &proof));
                    let (i, s, e) = (index as u64, start as u64, end as u64);
                    verify_subtree_inclusion(i, s, e, &tree.leaves[index], &proof, &subtree_hash)
                        .unwrap_or_else(|err| panic!("{index} in [{start}, {end}): {err}"));
                }
            }
        }
        for size in 0..=MAX {
            let root = tree.hash(0, size);
            for end in 0..=size {
                for start in (0..=end).filter(|&start| is_subtree(start, end)) {
                    let proof = tree.consistency_proof(start, end, size);
                    consistency.update(hex_line(format!("[{start}, {end}) {size}"), &proof));
                    let subtree_hash = tree.hash(start, end);
                    let (s, e, n) = (start as u64, end as u64, size as u64);
                    verify_subtree_consistency(s, e, n, &proof, &subtree_hash, &root)
                        .unwrap_or_else(|err| panic!("[{start}, {end}) in {size}: {err}"));
                }
            }
        }
        let digest = |hasher: Sha256| hex::encode(hasher.finalize());
        assert_eq!(
            digest(hashes),
            "b82806ad4265bb151c1119c0f4db437bb4d1a1f887b3a7fba1cd4ebf552e3e81"
        );
        assert_eq!(
            digest(inclusion),
            "ac2a8f989e44d99e399db448050ff5f19757df53cfb716aa81015d3955d8163f"
        );
        assert_eq!(
            digest(consistency),
            "10fa99b37bf9bf9ffa26b412fbd98bd75363256d0b75d61bc4538b9c9c5a0a74"
        );
    }

    fn random_tree(rng: &mut StdRng, size: usize) -> Tree {
        Tree::new((0..size).map(|_| rng.gen()).collect())
    }

    /// A random valid subtree of a tree of `size` entries, empty only if `allow_empty`.
    fn random_subtree(rng: &mut StdRng, size: usize, allow_empty: bool) -> (usize, usize) {
        let end = rng.gen_range(usize::from(!allow_empty)..=size);
        let starts: Vec<usize> = (0..=end)
            .filter(|&start| is_subtree(start, end) && (allow_empty || start < end))
            .collect();
        (starts[rng.gen_range(0..starts.len())], end)
    }

    #[test]
    fn subtree_inclusion_accepts_random_proofs_and_rejects_any_flipped_bit() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0001);
        for _ in 0..200 {
            let size = rng.gen_range(1..=700);
            let mut tree = random_tree(&mut rng, size);
            let (start, end) = random_subtree(&mut rng, size, false);
            let index = rng.gen_range(start..end);
            let mut proof = tree.inclusion_proof(index, start, end);
            let leaf_hash = tree.leaves[index];
            let subtree_hash = tree.hash(start, end);
            let (i, s, e) = (index as u64, start as u64, end as u64);
            let verify = |leaf_hash: &[u8], proof: &[Hash], subtree_hash: &[u8]| {
                verify_subtree_inclusion(i, s, e, leaf_hash, proof, subtree_hash)
            };

            let ctx = format!("{index} in [{start}, {end})");
            verify(&leaf_hash, &proof, &subtree_hash).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let bad_leaf = flip_bit(&leaf_hash, &mut rng);
            assert!(verify(&bad_leaf, &proof, &subtree_hash).is_err(), "{ctx}");
            let bad_subtree = flip_bit(&subtree_hash, &mut rng);
            assert!(verify(&leaf_hash, &proof, &bad_subtree).is_err(), "{ctx}");
            if !proof.is_empty() {
                let at = rng.gen_range(0..proof.len());
                let mut bad_proof = proof.clone();
                bad_proof[at].copy_from_slice(&flip_bit(&proof[at], &mut rng));
                assert!(
                    verify(&leaf_hash, &bad_proof, &subtree_hash).is_err(),
                    "{ctx}"
                );
            }
            proof.push(rng.gen());
            assert!(verify(&leaf_hash, &proof, &subtree_hash).is_err(), "{ctx}");
        }
    }

    #[test]
    fn subtree_consistency_accepts_random_proofs_and_rejects_any_flipped_bit() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0002);
        for _ in 0..200 {
            let size = rng.gen_range(1..=700);
            let mut tree = random_tree(&mut rng, size);
            let (start, end) = random_subtree(&mut rng, size, true);
            let mut proof = tree.consistency_proof(start, end, size);
            let subtree_hash = tree.hash(start, end);
            let root = tree.hash(0, size);
            let (s, e, n) = (start as u64, end as u64, size as u64);
            let verify = |proof: &[Hash], subtree_hash: &[u8], root: &[u8]| {
                verify_subtree_consistency(s, e, n, proof, subtree_hash, root)
            };

            let ctx = format!("[{start}, {end}) in {size}");
            verify(&proof, &subtree_hash, &root).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let bad_subtree = flip_bit(&subtree_hash, &mut rng);
            assert!(verify(&proof, &bad_subtree, &root).is_err(), "{ctx}");
            // An empty subtree says nothing about the root, so only there a wrong root passes.
            let bad_root = flip_bit(&root, &mut rng);
            assert_eq!(
                verify(&proof, &subtree_hash, &bad_root).is_err(),
                start != end,
                "{ctx}"
            );
            if !proof.is_empty() {
                let at = rng.gen_range(0..proof.len());
                let mut bad_proof = proof.clone();
                bad_proof[at].copy_from_slice(&flip_bit(&proof[at], &mut rng));
                assert!(verify(&bad_proof, &subtree_hash, &root).is_err(), "{ctx}");
                let without_last = &proof[..proof.len() - 1];
                assert!(verify(without_last, &subtree_hash, &root).is_err(), "{ctx}");
            }
            proof.push(rng.gen());
            assert!(verify(&proof, &subtree_hash, &root).is_err(), "{ctx}");
        }
    }

    #[test]
    fn hostile_sizes_and_huge_proofs_are_rejected_without_panic() {
        // Distinct, so that even [0, tree_size) with an empty proof must be rejected.
        let (hash, root) = ([7u8; HASH_LEN], [8u8; HASH_LEN]);
        let huge = vec![hash; 1_000_000];
        // Every proof length a 64-level tree can call for, so the hashing runs at the edges.
        let proofs: Vec<&[Hash]> = (0..=66).chain([huge.len()]).map(|n| &huge[..n]).collect();
        let edges = [0, 1, 2, 1 << 63, (1 << 63) + 2, u64::MAX - 1, u64::MAX];
        for (a, b, c) in edges
            .iter()
            .flat_map(|&a| edges.iter().flat_map(move |&b| edges.map(|c| (a, b, c))))
        {
            for proof in &proofs {
                assert!(verify_subtree_inclusion(a, b, c, &hash, proof, &root).is_err());
                assert!(verify_subtree_consistency(a, b, c, proof, &hash, &root).is_err());
            }
        }
    }

    #[test]
    fn subtree_validity_follows_draft_definition() {
        for (start, end, valid) in [
            (0, 0, true),
            (5, 5, true),
            (0, u64::MAX, true),
            (4, 8, true),
            (8, 13, true),
            (4, 6, true),
            (4, 9, false),
            (1, 3, false),
            (2, 1, false),
            (1 << 63, u64::MAX, true),
            (1 << 62, (1 << 62) + (1 << 63), false),
        ] {
            assert_eq!(check_subtree(start, end).is_ok(), valid, "[{start}, {end})");
        }
    }

    #[test]
    fn error_messages_name_values() {
        let err = verify_subtree_inclusion(0, 1, 2, &[0; 32], &[[0u8; 32]], &[0; 32]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "leaf index 0 is outside subtree [1, 2)"
        );
        let err = verify_subtree_consistency(0, 3, 8, &[[0u8; 32]], &[0; 32], &[0; 32]);
        assert_eq!(err.unwrap_err().to_string(), "proof has 1 hashes, want 4");
    }
}
