//! The C2SP `tlog-witness` wire format: the body of `POST /add-checkpoint`, its
//! success answer (cosignature lines) and its conflict answer (the witness's size).
//!
//! A request is an old size line, up to 63 consistency proof lines (base64 hashes), an
//! empty line and the checkpoint note:
//!
//! ```text
//! old 20852014
//! PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
//!
//! example.com/behind-the-sofa
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — example.com/behind-the-sofa Az3grlgt...
//! ```

use super::{Cosignature, WitnessError};
use crate::checkpoint::SignedCheckpoint;
use crate::merkle::{self, Hash, ProofError, EMPTY_TREE_HASH, HASH_SIZE};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use thiserror::Error;

/// Most consistency proof lines a request may carry (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// Content type of a 409 answer: the witness's latest size and a newline.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// Why an add-checkpoint body or answer does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The body breaks the format; the reason names the rule.
    #[error("malformed add-checkpoint {what}: {reason}")]
    Malformed {
        /// `request`, `answer` or `size`.
        what: &'static str,
        /// The rule that was broken.
        reason: &'static str,
    },
}

fn malformed(what: &'static str, reason: &'static str) -> WireError {
    WireError::Malformed { what, reason }
}

/// The body of an add-checkpoint request.
#[derive(Clone, Debug, PartialEq)]
pub struct AddCheckpoint {
    /// Size of the checkpoint the client believes the witness last cosigned (0: none).
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size (empty when
    /// `old_size` is 0 or equal to the new size).
    pub proof: Vec<Hash>,
    /// The checkpoint, a signed note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Parses a decimal with no sign and no leading zeroes (except `0` itself).
fn decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

impl AddCheckpoint {
    /// Encodes the request body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        for h in &self.proof {
            out.extend_from_slice(STANDARD.encode(h.0).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parses a request body. The checkpoint is not verified here.
    ///
    /// # Errors
    ///
    /// [`WireError::Malformed`] naming the broken rule: a bad old size line, a proof
    /// line that is not a base64 hash, more than 63 of them, or no blank line before the
    /// checkpoint.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let bad = |reason| malformed("request", reason);
        let mut rest = body;
        let next_line = |rest: &mut &[u8]| -> Result<String, WireError> {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(bad("line without a newline"))?;
            let line = std::str::from_utf8(&rest[..end]).map_err(|_| bad("line is not UTF-8"))?;
            *rest = &rest[end + 1..];
            Ok(line.to_string())
        };
        let first = next_line(&mut rest)?;
        let old_size = first
            .strip_prefix("old ")
            .and_then(decimal)
            .ok_or(bad("first line is not `old <size>`"))?;
        let mut proof = Vec::new();
        loop {
            let line = next_line(&mut rest)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let bytes = STANDARD
                .decode(&line)
                .map_err(|_| bad("proof line is not base64"))?;
            let hash: [u8; HASH_SIZE] = bytes
                .try_into()
                .map_err(|_| bad("proof line is not a 32-byte hash"))?;
            proof.push(Hash(hash));
        }
        if rest.is_empty() {
            return Err(bad("no checkpoint after the blank line"));
        }
        Ok(Self {
            old_size,
            proof,
            checkpoint: rest.to_vec(),
        })
    }
}

/// Why a witness must not cosign a checkpoint whose log signature verified, with the
/// status tlog-witness assigns to each case.
#[derive(Debug, Error)]
pub enum Refusal {
    /// The old size is larger than the checkpoint's size (400).
    #[error("old size {old_size} is larger than the checkpoint's tree size {tree_size}")]
    OldSizeTooLarge {
        /// The request's old size.
        old_size: u64,
        /// The checkpoint's size.
        tree_size: u64,
    },
    /// The old size is not the size the witness last cosigned (409, with that size).
    #[error("old size {old_size} is not the last cosigned tree size {recorded}")]
    Conflict {
        /// The request's old size.
        old_size: u64,
        /// The size the witness last cosigned (0 if none).
        recorded: u64,
    },
    /// An empty tree whose root is not the empty hash (422).
    #[error("checkpoint of size 0 does not have the empty tree's root")]
    EmptyTreeRoot,
    /// A proof was sent with old size 0 (422).
    #[error("consistency proof from size 0 must be empty, got {len} hashes")]
    ProofFromEmpty {
        /// Hashes sent.
        len: usize,
    },
    /// The checkpoint is not consistent with the one last cosigned (422): equal sizes
    /// with different roots, or a consistency proof that does not verify.
    #[error("checkpoint is not consistent with the last cosigned tree size {recorded}")]
    Inconsistent {
        /// The size the witness last cosigned.
        recorded: u64,
        /// What the proof check found.
        #[source]
        source: ProofError,
    },
}

impl Refusal {
    /// The HTTP status tlog-witness prescribes.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::OldSizeTooLarge { .. } => 400,
            Refusal::Conflict { .. } => 409,
            Refusal::EmptyTreeRoot
            | Refusal::ProofFromEmpty { .. }
            | Refusal::Inconsistent { .. } => 422,
        }
    }
}

/// Decides whether a witness may cosign `checkpoint` (whose log signature the caller
/// verified) given the request and the checkpoint it last cosigned for that log, in the
/// order of the checks of tlog-witness `add-checkpoint`.
///
/// # Errors
///
/// The [`Refusal`] that forbids cosigning; the witness then keeps its state.
pub fn check_add_checkpoint(
    request: &AddCheckpoint,
    checkpoint: &SignedCheckpoint,
    last_cosigned: Option<&SignedCheckpoint>,
) -> Result<(), Refusal> {
    let (old_size, tree_size) = (request.old_size, checkpoint.tree_size);
    if old_size > tree_size {
        return Err(Refusal::OldSizeTooLarge {
            old_size,
            tree_size,
        });
    }
    let recorded = last_cosigned.map_or(0, |c| c.tree_size);
    if old_size != recorded {
        return Err(Refusal::Conflict { old_size, recorded });
    }
    if tree_size == 0 && checkpoint.root_hash != EMPTY_TREE_HASH {
        return Err(Refusal::EmptyTreeRoot);
    }
    let Some(last) = last_cosigned.filter(|_| old_size > 0) else {
        if !request.proof.is_empty() {
            return Err(Refusal::ProofFromEmpty {
                len: request.proof.len(),
            });
        }
        return Ok(());
    };
    merkle::verify_consistency(
        old_size,
        tree_size,
        &request.proof,
        &last.root_hash.0,
        &checkpoint.root_hash.0,
    )
    .map_err(|source| Refusal::Inconsistent { recorded, source })
}

/// Encodes a success answer: the cosignature lines.
pub fn encode_cosignatures(cosignatures: &[Cosignature]) -> Vec<u8> {
    cosignatures
        .iter()
        .flat_map(|c| c.to_line().into_bytes())
        .collect()
}

/// Parses a success answer: one or more signature lines, each ending in a newline.
/// Lines that are not cosignature/v1 lines (other types, other witnesses' keys) are
/// kept out; the caller verifies the rest with the keys it trusts.
///
/// # Errors
///
/// [`WireError::Malformed`] when the answer is empty, lacks its final newline, or has
/// a line that is not a note signature line.
pub fn parse_cosignatures(answer: &[u8]) -> Result<Vec<Cosignature>, WitnessError> {
    let bad = |reason| WitnessError::MalformedCosignature { reason };
    let text = std::str::from_utf8(answer).map_err(|_| bad("answer is not UTF-8"))?;
    let body = text
        .strip_suffix('\n')
        .ok_or(bad("answer does not end in a newline"))?;
    if body.is_empty() {
        return Err(bad("answer has no signature lines"));
    }
    let mut out = Vec::new();
    for line in body.split('\n') {
        let sig = signed_note::Signature::from_bytes(line.as_bytes())
            .map_err(|_| bad("answer line is not a note signature line"))?;
        if let Ok(c) = Cosignature::from_note_signature(&sig) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Encodes a 409 answer: the witness's latest cosigned size and a newline.
pub fn encode_size(tree_size: u64) -> Vec<u8> {
    format!("{tree_size}\n").into_bytes()
}

/// Parses a 409 answer.
///
/// # Errors
///
/// [`WireError::Malformed`] unless the body is a canonical decimal and a newline.
pub fn parse_size(answer: &[u8]) -> Result<u64, WireError> {
    std::str::from_utf8(answer)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .and_then(decimal)
        .ok_or(malformed("size", "not a decimal tree size and a newline"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::LogSigner;
    use ed25519_dalek::SigningKey;

    /// Checkpoints of one log of leaves `0..n`, and of another history.
    fn checkpoint(size: u64, other_history: bool) -> SignedCheckpoint {
        let leaves: Vec<Hash> = (0..size)
            .map(|i| merkle::leaf_hash(&[i as u8, u8::from(other_history)]))
            .collect();
        LogSigner::new("log.example", SigningKey::from_bytes(&[1; 32]))
            .unwrap()
            .sign(size, root(&leaves))
    }

    fn root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_TREE_HASH,
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                merkle::node_hash(root(&leaves[..k]), root(&leaves[k..]))
            }
        }
    }

    fn request(old_size: u64, proof: Vec<Hash>) -> AddCheckpoint {
        AddCheckpoint {
            old_size,
            proof,
            checkpoint: Vec::new(),
        }
    }

    #[test]
    fn add_checkpoint_rules_in_spec_order() {
        let (c0, c2, c3) = (
            checkpoint(0, false),
            checkpoint(2, false),
            checkpoint(3, false),
        );
        // First checkpoint of a log: old 0, no proof.
        check_add_checkpoint(&request(0, vec![]), &c3, None).unwrap();
        check_add_checkpoint(&request(0, vec![]), &c0, None).unwrap();
        // Old size above the new size: 400, before anything else.
        let r = check_add_checkpoint(&request(4, vec![]), &c3, None).unwrap_err();
        assert_eq!(r.status(), 400);
        // Old size other than the recorded one: 409 with the recorded size.
        let r = check_add_checkpoint(&request(0, vec![]), &c3, Some(&c2)).unwrap_err();
        assert!(matches!(r, Refusal::Conflict { recorded: 2, .. }), "{r}");
        assert_eq!(r.status(), 409);
        let r = check_add_checkpoint(&request(1, vec![]), &c3, None).unwrap_err();
        assert!(matches!(r, Refusal::Conflict { recorded: 0, .. }));
        // A proof from the empty tree: 422.
        let r = check_add_checkpoint(&request(0, vec![Hash([0; 32])]), &c3, None).unwrap_err();
        assert_eq!(r.status(), 422);
        // Size 0 with a root other than the empty hash: 422.
        let mut bad0 = c0.clone();
        bad0.root_hash = Hash([1; 32]);
        assert_eq!(
            check_add_checkpoint(&request(0, vec![]), &bad0, None)
                .unwrap_err()
                .status(),
            422
        );
    }

    #[test]
    fn add_checkpoint_checks_consistency_with_the_last_cosigned() {
        let (c2, c3) = (checkpoint(2, false), checkpoint(3, false));
        let l: Vec<Hash> = (0..3u8).map(|i| merkle::leaf_hash(&[i, 0])).collect();
        // The consistency proof from 2 to 3 is [leaf 2]: the old tree is a whole subtree.
        let proof = vec![l[2]];
        check_add_checkpoint(&request(2, proof.clone()), &c3, Some(&c2)).unwrap();
        // Same size, same root: nothing to prove.
        check_add_checkpoint(&request(3, vec![]), &c3, Some(&c3)).unwrap();
        // Another history of the same size, or grown from another history: 422.
        let other3 = checkpoint(3, true);
        let r = check_add_checkpoint(&request(3, vec![]), &other3, Some(&c3)).unwrap_err();
        assert_eq!(r.status(), 422);
        let r = check_add_checkpoint(&request(2, proof), &other3, Some(&c2)).unwrap_err();
        assert_eq!(r.status(), 422);
        let r = check_add_checkpoint(&request(2, vec![]), &c3, Some(&c2)).unwrap_err();
        assert_eq!(r.status(), 422);
    }

    const SPEC_REQUEST: &str = "old 20852014\n\
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
\n\
example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
\n\
— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";

    #[test]
    fn spec_example_request_round_trips() {
        let req = AddCheckpoint::parse(SPEC_REQUEST.as_bytes()).unwrap();
        assert_eq!(req.old_size, 20_852_014);
        assert_eq!(req.proof.len(), 4);
        assert!(req
            .checkpoint
            .starts_with(b"example.com/behind-the-sofa\n20852163\n"));
        assert_eq!(req.encode(), SPEC_REQUEST.as_bytes());
    }

    fn check(input: &str, want: Result<(u64, usize), &str>) {
        let got = AddCheckpoint::parse(input.as_bytes());
        match (got, want) {
            (Ok(r), Ok((old, proof))) => assert_eq!((r.old_size, r.proof.len()), (old, proof)),
            (Err(WireError::Malformed { reason, .. }), Err(want)) => {
                assert!(reason.contains(want), "{input:?}: {reason}")
            }
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn malformed_requests_name_the_rule() {
        let hash = STANDARD.encode([7u8; 32]);
        let cp = "o\n1\nAAAA\n\n— o AAAA\n";
        check(&format!("old 0\n\n{cp}"), Ok((0, 0)));
        check(&format!("old 5\n{hash}\n{hash}\n\n{cp}"), Ok((5, 2)));
        check(&format!("old 05\n\n{cp}"), Err("old <size>"));
        check(&format!("old -1\n\n{cp}"), Err("old <size>"));
        check(&format!("old +1\n\n{cp}"), Err("old <size>"));
        check(&format!("old  1\n\n{cp}"), Err("old <size>"));
        check(&format!("new 1\n\n{cp}"), Err("old <size>"));
        check("old 1", Err("newline"));
        check(&format!("old 1\n{hash}\n"), Err("newline"));
        check("old 1\n\n", Err("no checkpoint"));
        check(&format!("old 1\nnot base64!\n\n{cp}"), Err("base64"));
        let short = STANDARD.encode([1u8; 31]);
        check(&format!("old 1\n{short}\n\n{cp}"), Err("32-byte"));
        let many = format!("{hash}\n").repeat(64);
        check(&format!("old 1\n{many}\n{cp}"), Err("63"));
        let max = format!("{hash}\n").repeat(63);
        check(&format!("old 1\n{max}\n{cp}"), Ok((1, 63)));
    }

    #[test]
    fn sizes_parse_canonically() {
        assert_eq!(parse_size(b"20852014\n"), Ok(20_852_014));
        assert_eq!(parse_size(&encode_size(0)), Ok(0));
        for bad in [&b"12"[..], b"012\n", b"\n", b"1 \n", b"x\n"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers_keep_only_cosignature_lines() {
        // A line of another signature type (here a plain Ed25519 note signature, 68
        // bytes) is not a cosignature/v1 line and is dropped; the caller ignores lines
        // by keys it does not trust.
        let cosig = Cosignature {
            name: "witness.example/w1".into(),
            key_id: 7,
            timestamp: 1_679_315_147,
            signature: [9; 64],
        };
        let other = "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let answer = format!("{}{other}", cosig.to_line());
        assert_eq!(parse_cosignatures(answer.as_bytes()).unwrap(), vec![cosig]);
        assert!(parse_cosignatures(b"").is_err());
        assert!(parse_cosignatures(b"\n").is_err());
        assert!(parse_cosignatures(b"- w AAAA\n").is_err());
        assert!(parse_cosignatures(other.trim_end().as_bytes()).is_err());
    }
}
