//! Log receipts: the proof, carried next to a signed envelope, that a Pedigree log
//! included it. A receipt verifies offline with only the log's verifier key.
//!
//! In a Sigstore bundle v0.3 a receipt is one `verificationMaterial.tlogEntries` item,
//! in the shape Rekor v2 uses: `inclusionProof` with hashes, root and size, and the
//! signed checkpoint note in `inclusionProof.checkpoint.envelope`. Pedigree sets
//! `kindVersion.kind` to `pedigree` and puts the leaf record in `canonicalizedBody`.

use crate::checkpoint::{CheckpointError, LogVerifier, SignedCheckpoint};
use crate::dsse::Envelope;
use crate::entry::{envelope_digest, LeafRecord, RecordError};
use crate::keys::Fingerprint;
use crate::merkle::{self, ProofError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

/// `kindVersion.kind` of Pedigree receipts in Sigstore bundles.
pub const RECEIPT_KIND: &str = "pedigree";

/// Why a receipt does not prove inclusion.
#[derive(Debug, Error)]
pub enum ReceiptError {
    /// The receipt JSON is missing a field or has a malformed one.
    #[error("malformed log receipt: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint is not signed by the trusted log key.
    #[error("receipt checkpoint is not trusted")]
    Checkpoint(#[source] CheckpointError),
    /// The leaf record does not decode.
    #[error("receipt leaf record is invalid")]
    Record(#[source] RecordError),
    /// The leaf record is about a different envelope.
    #[error("receipt is for envelope {in_receipt}, not {envelope}")]
    WrongEnvelope {
        /// Digest named by the receipt.
        in_receipt: String,
        /// Digest of the envelope at hand.
        envelope: String,
    },
    /// The proof's tree does not match the checkpoint.
    #[error("receipt proof is for tree size {proof} but its checkpoint has size {checkpoint}")]
    SizeMismatch {
        /// Size in the proof.
        proof: u64,
        /// Size in the checkpoint.
        checkpoint: u64,
    },
    /// The inclusion proof does not verify.
    #[error("receipt inclusion proof does not verify")]
    Proof(#[source] ProofError),
}

/// A log receipt: where the entry is, the leaf record, and the proof against a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogReceipt {
    /// Index of the entry.
    pub log_index: u64,
    /// The encoded leaf record (`spec/entry.md`).
    pub leaf: Vec<u8>,
    /// Tree size the proof is for.
    pub tree_size: u64,
    /// Audit path, leaf to root.
    pub hashes: Vec<[u8; 32]>,
    /// The signed checkpoint note the proof is against.
    pub checkpoint: String,
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value, ReceiptError> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).ok_or_else(|| ReceiptError::Malformed {
            reason: format!("missing {}", path.join(".")),
        })?;
    }
    Ok(cur)
}

/// Sigstore bundles write int64 as JSON strings; accept numbers too.
fn int(v: &Value, path: &[&str]) -> Result<u64, ReceiptError> {
    let f = field(v, path)?;
    f.as_u64()
        .or_else(|| f.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| ReceiptError::Malformed {
            reason: format!("{} is not an unsigned integer", path.join(".")),
        })
}

fn b64(v: &Value, path: &[&str]) -> Result<Vec<u8>, ReceiptError> {
    field(v, path)?
        .as_str()
        .and_then(|s| STANDARD.decode(s).ok())
        .ok_or_else(|| ReceiptError::Malformed {
            reason: format!("{} is not base64", path.join(".")),
        })
}

/// The key id of the checkpoint's signature by its origin (its first line), unverified.
fn log_key_id(note: &str) -> Option<u32> {
    let origin = note.lines().next()?;
    let (_, signatures) = note.split_once("\n\n")?;
    signatures
        .lines()
        .filter_map(|line| signed_note::Signature::from_bytes(line.as_bytes()).ok())
        .find(|sig| sig.name() == origin)
        .map(|sig| sig.id())
}

impl LogReceipt {
    /// Verifies that this receipt proves `envelope` is in the log of `log`: the
    /// checkpoint is signed by the log key, the leaf record names this envelope (and,
    /// if given, this signer), and the inclusion proof leads to the checkpoint's root.
    ///
    /// # Errors
    ///
    /// A [`ReceiptError`] naming the first check that failed.
    pub fn verify(
        &self,
        envelope: &Envelope,
        log: &LogVerifier,
        signer: Option<&Fingerprint>,
    ) -> Result<(SignedCheckpoint, LeafRecord), ReceiptError> {
        let cp = log
            .verify(self.checkpoint.as_bytes())
            .map_err(ReceiptError::Checkpoint)?;
        let record = LeafRecord::decode(&self.leaf).map_err(ReceiptError::Record)?;
        let digest = envelope_digest(&envelope.to_json());
        if record.envelope_sha256 != digest {
            return Err(ReceiptError::WrongEnvelope {
                in_receipt: hex::encode(record.envelope_sha256),
                envelope: hex::encode(digest),
            });
        }
        if let Some(fp) = signer {
            if !record.signers.contains(fp) {
                return Err(ReceiptError::Malformed {
                    reason: format!("leaf record does not list signer {fp}"),
                });
            }
        }
        if self.tree_size != cp.tree_size {
            return Err(ReceiptError::SizeMismatch {
                proof: self.tree_size,
                checkpoint: cp.tree_size,
            });
        }
        merkle::verify_inclusion(
            self.log_index,
            self.tree_size,
            &merkle::leaf_hash(&self.leaf).0,
            &self.hashes,
            &cp.root_hash.0,
        )
        .map_err(ReceiptError::Proof)?;
        Ok((cp, record))
    }

    /// The receipt as a Sigstore bundle v0.3 `tlogEntries` item. `logId.keyId` is the
    /// note key id of the log's signature on the checkpoint (omitted if there is none).
    pub fn to_tlog_entry(&self) -> Value {
        let root = crate::checkpoint::root_from_note(&self.checkpoint).unwrap_or_default();
        let integrated = LeafRecord::decode(&self.leaf)
            .map(|r| r.integrated_time_ms / 1000)
            .unwrap_or(0);
        let mut entry = json!({
            "logIndex": self.log_index.to_string(),
            "kindVersion": {"kind": RECEIPT_KIND, "version": "1"},
            "integratedTime": integrated.to_string(),
            "inclusionProof": {
                "logIndex": self.log_index.to_string(),
                "rootHash": STANDARD.encode(root),
                "treeSize": self.tree_size.to_string(),
                "hashes": self.hashes.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": self.checkpoint},
            },
            "canonicalizedBody": STANDARD.encode(&self.leaf),
        });
        if let Some(id) = log_key_id(&self.checkpoint) {
            entry["logId"] = json!({"keyId": STANDARD.encode(id.to_be_bytes())});
        }
        entry
    }

    /// Reads a receipt from a Sigstore bundle `tlogEntries` item; `None` when the item is
    /// not a Pedigree receipt (e.g. a Rekor entry).
    ///
    /// # Errors
    ///
    /// [`ReceiptError::Malformed`] for a Pedigree item with missing or bad fields.
    pub fn from_tlog_entry(v: &Value) -> Result<Option<Self>, ReceiptError> {
        if v.pointer("/kindVersion/kind").and_then(Value::as_str) != Some(RECEIPT_KIND) {
            return Ok(None);
        }
        let hashes = field(v, &["inclusionProof", "hashes"])?
            .as_array()
            .ok_or_else(|| ReceiptError::Malformed {
                reason: "inclusionProof.hashes is not a list".into(),
            })?
            .iter()
            .map(|h| {
                h.as_str()
                    .and_then(|s| STANDARD.decode(s).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| ReceiptError::Malformed {
                        reason: "inclusionProof.hashes has a bad hash".into(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Self {
            log_index: int(v, &["inclusionProof", "logIndex"])?,
            leaf: b64(v, &["canonicalizedBody"])?,
            tree_size: int(v, &["inclusionProof", "treeSize"])?,
            hashes,
            checkpoint: field(v, &["inclusionProof", "checkpoint", "envelope"])?
                .as_str()
                .ok_or_else(|| ReceiptError::Malformed {
                    reason: "inclusionProof.checkpoint.envelope is not text".into(),
                })?
                .to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::LogSigner;
    use crate::dsse::IN_TOTO_PAYLOAD_TYPE;
    use crate::entry::{admit, Limits};
    use crate::keys::{Algorithm, PrivateKey};

    fn envelope(key: &PrivateKey, subject: u8) -> Envelope {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": hex::encode([subject; 32])}}],
            "predicateType": "https://example.com/p/v1",
            "predicate": {}
        });
        Envelope::sign(
            IN_TOTO_PAYLOAD_TYPE,
            serde_json::to_vec(&statement).unwrap(),
            &[key],
        )
    }

    /// A two-leaf log holding `a` and `b`, and the receipt for `b`.
    fn receipt_for(log: &LogSigner, key: &PrivateKey, a: &Envelope, b: &Envelope) -> LogReceipt {
        let leaf = |e: &Envelope| {
            admit(e, &[key.public_key()], &Limits::default(), 7)
                .unwrap()
                .record
                .encode()
        };
        let (la, lb) = (leaf(a), leaf(b));
        let root = merkle::node_hash(merkle::leaf_hash(&la), merkle::leaf_hash(&lb));
        LogReceipt {
            log_index: 1,
            leaf: lb,
            tree_size: 2,
            hashes: vec![merkle::leaf_hash(&la).0],
            checkpoint: log.sign(2, root).note_text().to_string(),
        }
    }

    #[test]
    fn receipt_verifies_offline_and_round_trips_through_a_tlog_entry() {
        let log = LogSigner::new(
            "log.example",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let (a, b) = (envelope(&key, 1), envelope(&key, 2));
        let r = receipt_for(&log, &key, &a, &b);
        let fp = key.public_key().fingerprint();
        r.verify(&b, &log.verifier(), Some(&fp)).unwrap();
        let entry = r.to_tlog_entry();
        assert_eq!(
            entry["logId"]["keyId"],
            STANDARD.encode(log.verifier().key_id().to_be_bytes())
        );
        let back = LogReceipt::from_tlog_entry(&entry).unwrap().unwrap();
        assert_eq!(back, r);
        assert!(
            LogReceipt::from_tlog_entry(&serde_json::json!({"kindVersion": {"kind": "dsse"}}))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn receipt_fails_closed() {
        let log = LogSigner::new(
            "log.example",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let other = LogSigner::new(
            "log.example",
            ed25519_dalek::SigningKey::from_bytes(&[2; 32]),
        )
        .unwrap();
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let (a, b) = (envelope(&key, 1), envelope(&key, 2));
        let r = receipt_for(&log, &key, &a, &b);
        assert!(matches!(
            r.verify(&a, &log.verifier(), None),
            Err(ReceiptError::WrongEnvelope { .. })
        ));
        assert!(matches!(
            r.verify(&b, &other.verifier(), None),
            Err(ReceiptError::Checkpoint(_))
        ));
        let stranger = PrivateKey::generate(Algorithm::Ed25519)
            .public_key()
            .fingerprint();
        assert!(r.verify(&b, &log.verifier(), Some(&stranger)).is_err());
        let mut bad = r.clone();
        bad.hashes[0][0] ^= 1;
        assert!(matches!(
            bad.verify(&b, &log.verifier(), None),
            Err(ReceiptError::Proof(_))
        ));
        let mut bad = r.clone();
        bad.log_index = 0;
        assert!(matches!(
            bad.verify(&b, &log.verifier(), None),
            Err(ReceiptError::Proof(_))
        ));
        let mut bad = r;
        bad.hashes.clear();
        assert!(bad.verify(&b, &log.verifier(), None).is_err());
    }
}
