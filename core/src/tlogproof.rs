//! C2SP `tlog-proof@v1`: a text file proving, offline, that an entry is in a log and
//! that witnesses saw the checkpoint it is proved against.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the leaf record>
//! index 12
//! <inclusion proof hash, base64>
//! ...
//!
//! <checkpoint note, with its cosignature lines>
//! ```
//!
//! Pedigree writes the entry's leaf record (`spec/entry.md`) as the `extra` data, so the
//! file is self-contained: the leaf hash is computed from it. Like the spec says, the
//! extra data is not trusted on its own; [`TlogProof::verify`] proves that this record
//! is at `index` in the log, and the caller checks that the record is about the envelope
//! it cares about (its `envelope_sha256`), as a receipt check does.

use crate::checkpoint::{CheckpointError, LogVerifier, SignedCheckpoint};
use crate::merkle::{self, ProofError, HASH_SIZE};
use crate::witness::{VerifiedCosignature, WitnessError, WitnessPolicy};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use thiserror::Error;

/// First line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Largest inclusion proof accepted (one hash per tree level).
const MAX_PROOF_HASHES: usize = 63;

/// Why a proof file does not parse or does not verify.
#[derive(Debug, Error)]
pub enum TlogProofError {
    /// The text breaks the format; the reason names the rule.
    #[error("malformed tlog-proof: {reason}")]
    Malformed {
        /// The rule that was broken.
        reason: &'static str,
    },
    /// The checkpoint is not signed by the trusted log key.
    #[error("tlog-proof checkpoint is not trusted")]
    Checkpoint(#[source] CheckpointError),
    /// The checkpoint lacks the cosignatures the witness policy requires.
    #[error("tlog-proof checkpoint is not witnessed")]
    Witness(#[source] WitnessError),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("tlog-proof inclusion proof does not verify")]
    Proof(#[source] ProofError),
    /// The proof carries no entry and none was given.
    #[error("tlog-proof has no extra data holding the entry")]
    NoEntry,
}

/// A parsed `tlog-proof@v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque extra data; Pedigree puts the leaf record here.
    pub extra: Option<Vec<u8>>,
    /// Zero-based index of the entry.
    pub index: u64,
    /// Inclusion proof, from the leaf's sibling up to the root's child.
    pub hashes: Vec<[u8; HASH_SIZE]>,
    /// The checkpoint note, verbatim (log signature and cosignatures).
    pub checkpoint: Vec<u8>,
}

/// A verified proof: the checkpoint and the witnesses that cosigned it.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    /// The checkpoint, signed by the log.
    pub checkpoint: SignedCheckpoint,
    /// The trusted witnesses whose cosignatures verified.
    pub cosignatures: Vec<VerifiedCosignature>,
}

fn canonical_decimal(s: &str) -> Option<u64> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

impl TlogProof {
    /// Encodes the proof text.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parses proof text. Nothing is verified.
    ///
    /// # Errors
    ///
    /// [`TlogProofError::Malformed`] naming the broken rule.
    pub fn parse(text: &[u8]) -> Result<Self, TlogProofError> {
        let bad = |reason| TlogProofError::Malformed { reason };
        let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or(bad("no blank line before the checkpoint"))?;
        if checkpoint.is_empty() {
            return Err(bad("no checkpoint after the blank line"));
        }
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad("first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or(bad("no index line"))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(
                STANDARD
                    .decode(b64)
                    .map_err(|_| bad("extra data is not base64"))?,
            );
            line = lines.next().ok_or(bad("no index line"))?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(canonical_decimal)
            .ok_or(bad("index line is not `index <decimal>`"))?;
        let mut hashes = Vec::new();
        for l in lines {
            if hashes.len() == MAX_PROOF_HASHES {
                return Err(bad("more than 63 inclusion proof hashes"));
            }
            let h = STANDARD
                .decode(l)
                .ok()
                .and_then(|b| <[u8; HASH_SIZE]>::try_from(b).ok())
                .ok_or(bad("proof line is not a base64 32-byte hash"))?;
            hashes.push(h);
        }
        Ok(Self {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.as_bytes().to_vec(),
        })
    }

    /// Verifies the proof for the entry `leaf` (the bytes hashed into the tree; `None`
    /// takes them from the extra data): the checkpoint is signed by `log`, carries the
    /// cosignatures `witnesses` requires, and the inclusion proof binds the leaf at
    /// `index` to its root (tlog-proof, "Verifying a tlog proof").
    ///
    /// # Errors
    ///
    /// The first failed check as a [`TlogProofError`].
    pub fn verify(
        &self,
        leaf: Option<&[u8]>,
        log: &LogVerifier,
        witnesses: &WitnessPolicy,
    ) -> Result<VerifiedProof, TlogProofError> {
        let leaf = leaf
            .or(self.extra.as_deref())
            .ok_or(TlogProofError::NoEntry)?;
        let checkpoint = log
            .verify(&self.checkpoint)
            .map_err(TlogProofError::Checkpoint)?;
        let cosignatures = witnesses
            .check(&self.checkpoint)
            .map_err(TlogProofError::Witness)?;
        merkle::verify_inclusion(
            self.index,
            checkpoint.tree_size,
            &merkle::leaf_hash(leaf).0,
            &self.hashes,
            &checkpoint.root_hash.0,
        )
        .map_err(TlogProofError::Proof)?;
        Ok(VerifiedProof {
            checkpoint,
            cosignatures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::LogSigner;
    use crate::witness::{append_cosignatures, WitnessSigner};
    use ed25519_dalek::SigningKey;

    const SPEC_EXAMPLE: &str = "c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

— example.com/fancylog hI2DJw[...]1roloI=
";

    #[test]
    fn spec_example_parses_and_round_trips() {
        let p = TlogProof::parse(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(p.index, 73_894);
        assert_eq!(p.hashes.len(), 5);
        assert!(p.extra.as_ref().unwrap().starts_with(b"age-v1.2.1-darwin"));
        assert!(p.checkpoint.starts_with(b"example.com/fancylog\n109482\n"));
        assert_eq!(p.encode(), SPEC_EXAMPLE.as_bytes());
    }

    #[test]
    fn malformed_proofs_name_the_rule() {
        let h = STANDARD.encode([1u8; 32]);
        let cases = [
            ("", "blank line"),
            ("c2sp.org/tlog-proof@v2\nindex 1\n\ncp\n", "first line"),
            ("c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n", "index line"),
            ("c2sp.org/tlog-proof@v1\nindex -1\n\ncp\n", "index line"),
            (
                "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncp\n",
                "base64",
            ),
            ("c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n", "32-byte"),
            ("c2sp.org/tlog-proof@v1\nindex 1\n\n", "no checkpoint"),
        ];
        for (text, want) in cases {
            match TlogProof::parse(text.as_bytes()) {
                Err(TlogProofError::Malformed { reason }) => {
                    assert!(reason.contains(want), "{text:?}: {reason}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let many = format!(
            "c2sp.org/tlog-proof@v1\nindex 1\n{}\ncp\n",
            format!("{h}\n").repeat(64)
        );
        assert!(TlogProof::parse(many.as_bytes()).is_err());
    }

    /// A three-leaf log, a proof for leaf 2 against its cosigned checkpoint.
    fn fixture() -> (LogSigner, WitnessSigner, TlogProof) {
        let log = LogSigner::new("log.example", SigningKey::from_bytes(&[1; 32])).unwrap();
        let w = WitnessSigner::new("w.example/a", SigningKey::from_bytes(&[2; 32])).unwrap();
        let leaves: [&[u8]; 3] = [b"zero", b"one", b"two"];
        let l: Vec<_> = leaves.iter().map(|b| merkle::leaf_hash(b)).collect();
        let root = merkle::node_hash(merkle::node_hash(l[0], l[1]), l[2]);
        let cp = log.sign(3, root);
        let body = signed_note::Note::from_bytes(&cp.note)
            .unwrap()
            .text()
            .to_vec();
        let note = append_cosignatures(&cp.note, &[w.cosign(&body, 1_700_000_000)]).unwrap();
        let proof = TlogProof {
            extra: Some(b"two".to_vec()),
            index: 2,
            hashes: vec![merkle::node_hash(l[0], l[1]).0],
            checkpoint: note,
        };
        (log, w, proof)
    }

    #[test]
    fn proof_verifies_offline_with_witnesses() {
        let (log, w, proof) = fixture();
        let policy = WitnessPolicy::new(vec![w.verifier()], 1).unwrap();
        let back = TlogProof::parse(&proof.encode()).unwrap();
        assert_eq!(back, proof);
        let v = back.verify(None, &log.verifier(), &policy).unwrap();
        assert_eq!(v.checkpoint.tree_size, 3);
        assert_eq!(v.cosignatures.len(), 1);
        back.verify(Some(b"two"), &log.verifier(), &WitnessPolicy::none())
            .unwrap();
    }

    #[test]
    fn proof_fails_closed() {
        let (log, w, proof) = fixture();
        let one = WitnessPolicy::new(vec![w.verifier()], 1).unwrap();
        assert!(matches!(
            proof.verify(Some(b"one"), &log.verifier(), &one),
            Err(TlogProofError::Proof(_))
        ));
        let other = LogSigner::new("log.example", SigningKey::from_bytes(&[3; 32])).unwrap();
        assert!(matches!(
            proof.verify(None, &other.verifier(), &one),
            Err(TlogProofError::Checkpoint(_))
        ));
        let stranger = WitnessSigner::new("w.example/b", SigningKey::from_bytes(&[4; 32])).unwrap();
        let two = WitnessPolicy::new(vec![w.verifier(), stranger.verifier()], 2).unwrap();
        assert!(matches!(
            proof.verify(None, &log.verifier(), &two),
            Err(TlogProofError::Witness(_))
        ));
        let mut wrong_index = proof.clone();
        wrong_index.index = 1;
        assert!(wrong_index.verify(None, &log.verifier(), &one).is_err());
        let mut bare = proof;
        bare.extra = None;
        assert!(matches!(
            bare.verify(None, &log.verifier(), &one),
            Err(TlogProofError::NoEntry)
        ));
    }
}
