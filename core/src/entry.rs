//! Log entries: the admission rules for a submitted attestation and the leaf record
//! that the Merkle tree commits to (byte layout in `spec/entry.md`).
//!
//! A leaf record is a small summary of one DSSE envelope: the envelope's SHA-256, what
//! it is about (subjects), what it was built from (materials), who signed it (key
//! fingerprints) and when the log integrated it. The envelope and the verifier keys are
//! stored beside the leaf, so anyone holding them can rebuild the record with
//! [`admit`] and check its hash; the tiles carry only records, which stay far below the
//! 64 KiB entry-bundle limit.

use crate::dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::keys::{Fingerprint, PublicKey};
use crate::merkle::{leaf_hash, Hash};
use crate::slsa::{statement_materials, ProvenanceError};
use crate::statement::{Digest, Statement, StatementError};
use crate::tiles::MAX_ENTRY_BYTES;
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// Leaf record format version written by this code (`spec/entry.md` section 3).
pub const LEAF_VERSION: u8 = 1;

/// Caps on what one submission may carry. They bound the work and storage one request
/// can cost; the server makes them configurable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most signatures in one envelope.
    pub max_signatures: usize,
    /// Most verifier keys in one request.
    pub max_verifiers: usize,
    /// Most subjects in one statement.
    pub max_subjects: usize,
    /// Most materials (SLSA resolved dependencies) in one statement.
    pub max_materials: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_signatures: 16,
            max_verifiers: 16,
            max_subjects: 256,
            max_materials: 256,
        }
    }
}

/// Why a submission was refused. Every variant is the submitter's fault (a 4xx).
#[derive(Debug, Error)]
pub enum EntryError {
    /// The envelope's payload type is not in-toto's.
    #[error("payload type {got:?} is not {IN_TOTO_PAYLOAD_TYPE:?}")]
    PayloadType {
        /// The payload type given.
        got: String,
    },
    /// A count is over its limit.
    #[error("too many {what}: {count}, limit {limit}")]
    TooMany {
        /// `signatures`, `verifiers`, `subjects` or `materials`.
        what: &'static str,
        /// The count given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The signatures do not check out against the verifier keys.
    #[error("signature check failed: {0}")]
    Signature(#[source] DsseError),
    /// The payload is not a valid in-toto Statement v1.
    #[error("payload is not a valid in-toto statement: {0}")]
    Statement(#[source] StatementError),
    /// The predicate claims SLSA Provenance v1 but is not valid.
    #[error("invalid SLSA provenance predicate: {0}")]
    Provenance(#[source] ProvenanceError),
    /// The leaf record would not fit in an entry bundle.
    #[error("leaf record of {len} bytes exceeds {MAX_ENTRY_BYTES} bytes")]
    RecordTooLarge {
        /// Encoded size.
        len: usize,
    },
}

/// Why stored leaf record bytes did not decode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    /// The version byte is not one this code reads.
    #[error("unknown leaf record version {0}")]
    Version(u8),
    /// The bytes end before the record does.
    #[error("leaf record truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes follow the record.
    #[error("{count} trailing bytes after leaf record")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A text field is not valid for its kind.
    #[error("invalid {field} in leaf record")]
    InvalidField {
        /// The field.
        field: &'static str,
    },
}

/// The leaf record committed to by the log (`spec/entry.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRecord {
    /// SHA-256 of the envelope's canonical JSON ([`Envelope::to_json`]).
    pub envelope_sha256: [u8; 32],
    /// When the log integrated the entry, milliseconds since the Unix epoch.
    pub integrated_time_ms: u64,
    /// The envelope's payload type.
    pub payload_type: String,
    /// The statement's predicate type.
    pub predicate_type: String,
    /// Fingerprints of the keys that signed, ascending, no duplicates.
    pub signers: Vec<Fingerprint>,
    /// Every subject digest, in statement order, without duplicates.
    pub subjects: Vec<Digest>,
    /// Every material digest, in predicate order, without duplicates.
    pub materials: Vec<Digest>,
}

/// An accepted submission: the record to append and what it was built from.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The leaf record.
    pub record: LeafRecord,
    /// The envelope in canonical JSON, as stored.
    pub envelope_json: Vec<u8>,
    /// The keys that verified at least one signature, ascending by fingerprint.
    pub signer_keys: Vec<PublicKey>,
    /// The parsed statement.
    pub statement: Statement,
}

/// SHA-256 of an envelope's canonical JSON: its identity in the log (dedup key and the
/// name it is stored under).
pub fn envelope_digest(envelope_json: &[u8]) -> [u8; 32] {
    Sha256::digest(envelope_json).into()
}

fn dedup_keep_order(items: impl IntoIterator<Item = Digest>) -> Vec<Digest> {
    let mut seen = std::collections::BTreeSet::new();
    items
        .into_iter()
        .filter(|d| seen.insert(d.clone()))
        .collect()
}

fn cap(what: &'static str, count: usize, limit: usize) -> Result<(), EntryError> {
    if count > limit {
        Err(EntryError::TooMany { what, count, limit })
    } else {
        Ok(())
    }
}

/// Checks a submission against the admission rules (`spec/entry.md` section 5) and builds its leaf
/// record. Counts are checked before any signature is verified, so an oversized request
/// costs no cryptography.
///
/// # Errors
///
/// An [`EntryError`] naming the first rule broken.
pub fn admit(
    envelope: &Envelope,
    verifiers: &[PublicKey],
    limits: &Limits,
    integrated_time_ms: u64,
) -> Result<Admitted, EntryError> {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(EntryError::PayloadType {
            got: envelope.payload_type.chars().take(200).collect(),
        });
    }
    cap(
        "signatures",
        envelope.signatures.len(),
        limits.max_signatures,
    )?;
    cap("verifiers", verifiers.len(), limits.max_verifiers)?;
    let statement = Statement::from_json(&envelope.payload).map_err(EntryError::Statement)?;
    cap("subjects", statement.subject.len(), limits.max_subjects)?;
    let materials = statement_materials(&statement).map_err(EntryError::Provenance)?;
    cap("materials", materials.len(), limits.max_materials)?;
    let verified = envelope.verify(verifiers).map_err(EntryError::Signature)?;

    let envelope_json = envelope.to_json();
    let mut signer_keys: Vec<PublicKey> = verifiers
        .iter()
        .filter(|k| verified.signers.contains(&k.fingerprint()))
        .cloned()
        .collect();
    signer_keys.sort_by_key(PublicKey::fingerprint);
    signer_keys.dedup_by_key(|k| k.fingerprint());
    let record = LeafRecord {
        envelope_sha256: envelope_digest(&envelope_json),
        integrated_time_ms,
        payload_type: envelope.payload_type.clone(),
        predicate_type: statement.predicate_type.clone(),
        signers: signer_keys.iter().map(PublicKey::fingerprint).collect(),
        subjects: dedup_keep_order(statement.subject.iter().flat_map(|s| s.digests())),
        materials: dedup_keep_order(materials),
    };
    let len = record.encode().len();
    if len > MAX_ENTRY_BYTES {
        return Err(EntryError::RecordTooLarge { len });
    }
    Ok(Admitted {
        record,
        envelope_json,
        signer_keys,
        statement,
    })
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Invariant: callers cap these strings far below 64 KiB (the whole record is capped).
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn put_digests(out: &mut Vec<u8>, digests: &[Digest]) {
    let count = u16::try_from(digests.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for d in digests.iter().take(usize::from(count)) {
        let text = d.to_string();
        let len = u8::try_from(text.len()).unwrap_or(u8::MAX);
        out.push(len);
        out.extend_from_slice(&text.as_bytes()[..usize::from(len)]);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated { field });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, RecordError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, RecordError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn str(&mut self, len: usize, field: &'static str) -> Result<String, RecordError> {
        let b = self.take(len, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| RecordError::InvalidField { field })
    }

    fn digests(&mut self, field: &'static str) -> Result<Vec<Digest>, RecordError> {
        let count = self.u16(field)?;
        let mut out = Vec::with_capacity(usize::from(count).min(1024));
        for _ in 0..count {
            let len = usize::from(self.u8(field)?);
            let text = self.str(len, field)?;
            let d: Digest = text
                .parse()
                .map_err(|_| RecordError::InvalidField { field })?;
            // Canonical form only: the text must be exactly what the digest prints as.
            if d.to_string() != text {
                return Err(RecordError::InvalidField { field });
            }
            out.push(d);
        }
        Ok(out)
    }
}

impl LeafRecord {
    /// Encodes the record (`spec/entry.md` section 3). Deterministic: the same record
    /// always gives the same bytes, and so the same leaf hash.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(LEAF_VERSION);
        out.extend_from_slice(&self.envelope_sha256);
        out.extend_from_slice(&self.integrated_time_ms.to_be_bytes());
        put_str16(&mut out, &self.payload_type);
        put_str16(&mut out, &self.predicate_type);
        let signers = u8::try_from(self.signers.len()).unwrap_or(u8::MAX);
        out.push(signers);
        for fp in self.signers.iter().take(usize::from(signers)) {
            out.extend_from_slice(&fp.0);
        }
        put_digests(&mut out, &self.subjects);
        put_digests(&mut out, &self.materials);
        out
    }

    /// Decodes a record, accepting only the canonical encoding.
    ///
    /// # Errors
    ///
    /// A [`RecordError`] naming the field that failed.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader(bytes);
        let version = r.u8("version")?;
        if version != LEAF_VERSION {
            return Err(RecordError::Version(version));
        }
        let envelope_sha256: [u8; 32] =
            r.take(32, "envelope_sha256")?
                .try_into()
                .map_err(|_| RecordError::Truncated {
                    field: "envelope_sha256",
                })?;
        let t = r.take(8, "integrated_time_ms")?;
        let integrated_time_ms = u64::from_be_bytes(t.try_into().unwrap_or([0; 8]));
        let len = usize::from(r.u16("payload_type")?);
        let payload_type = r.str(len, "payload_type")?;
        let len = usize::from(r.u16("predicate_type")?);
        let predicate_type = r.str(len, "predicate_type")?;
        let count = r.u8("signers")?;
        let mut signers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let fp: [u8; 32] = r
                .take(32, "signers")?
                .try_into()
                .map_err(|_| RecordError::Truncated { field: "signers" })?;
            signers.push(Fingerprint(fp));
        }
        if signers.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RecordError::InvalidField { field: "signers" });
        }
        let subjects = r.digests("subjects")?;
        let materials = r.digests("materials")?;
        if !r.0.is_empty() {
            return Err(RecordError::TrailingBytes { count: r.0.len() });
        }
        Ok(Self {
            envelope_sha256,
            integrated_time_ms,
            payload_type,
            predicate_type,
            signers,
            subjects,
            materials,
        })
    }

    /// The RFC 6962 leaf hash of the encoded record.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, PrivateKey};

    fn statement(subjects: &[&str], materials: &[&str]) -> Vec<u8> {
        let subj: Vec<_> = subjects
            .iter()
            .map(|h| serde_json::json!({"name": "model", "digest": {"sha256": h}}))
            .collect();
        let mats: Vec<_> = materials
            .iter()
            .map(|h| serde_json::json!({"uri": "dataset", "digest": {"sha256": h}}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": subj,
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://pedigree.dev/ml/train/v1",
                    "externalParameters": {"epochs": 3},
                    "resolvedDependencies": mats,
                },
                "runDetails": {"builder": {"id": "https://ci.example/builder"}}
            }
        }))
        .unwrap()
    }

    fn hex64(b: u8) -> String {
        hex::encode([b; 32])
    }

    #[test]
    fn admitted_record_round_trips_and_names_links() {
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let payload = statement(&[&hex64(1), &hex64(1), &hex64(2)], &[&hex64(3)]);
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key]);
        let a = admit(
            &env,
            &[key.public_key()],
            &Limits::default(),
            1_700_000_000_000,
        )
        .unwrap();
        assert_eq!(
            a.record.subjects.len(),
            2,
            "duplicate subject digest kept once"
        );
        assert_eq!(
            a.record.materials[0].to_string(),
            format!("sha256:{}", hex64(3))
        );
        assert_eq!(a.record.signers, vec![key.public_key().fingerprint()]);
        let bytes = a.record.encode();
        assert_eq!(LeafRecord::decode(&bytes).unwrap(), a.record);
        assert_eq!(a.record.envelope_sha256, envelope_digest(&env.to_json()));
    }

    #[test]
    fn record_decode_rejects_damage() {
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement(&[&hex64(1)], &[]), &[&key]);
        let bytes = admit(&env, &[key.public_key()], &Limits::default(), 5)
            .unwrap()
            .record
            .encode();
        assert_eq!(LeafRecord::decode(&[2]), Err(RecordError::Version(2)));
        for cut in 1..bytes.len() {
            assert!(LeafRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            LeafRecord::decode(&long),
            Err(RecordError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn limits_are_checked_before_signatures() {
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let subjects: Vec<String> = (0..3u8).map(hex64).collect();
        let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement(&refs, &[]), &[&key]);
        let limits = Limits {
            max_subjects: 2,
            ..Limits::default()
        };
        let err = admit(&env, &[], &limits, 0).unwrap_err();
        assert!(matches!(
            err,
            EntryError::TooMany {
                what: "subjects",
                count: 3,
                limit: 2
            }
        ));
    }

    #[test]
    fn wrong_payload_type_and_wrong_key_are_refused() {
        let key = PrivateKey::generate(Algorithm::EcdsaP256Sha256);
        let other = PrivateKey::generate(Algorithm::Ed25519);
        let payload = statement(&[&hex64(1)], &[]);
        let env = Envelope::sign("text/plain", payload.clone(), &[&key]);
        assert!(matches!(
            admit(&env, &[key.public_key()], &Limits::default(), 0),
            Err(EntryError::PayloadType { .. })
        ));
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key]);
        assert!(matches!(
            admit(&env, &[other.public_key()], &Limits::default(), 0),
            Err(EntryError::Signature(_))
        ));
    }
}

#[cfg(test)]
mod golden {
    use super::*;

    /// The worked example of `spec/entry.md` section 2, byte for byte.
    #[test]
    fn spec_worked_example_encodes_as_documented() {
        let record = LeafRecord {
            envelope_sha256: [0x3c; 32],
            integrated_time_ms: 1_763_899_200_000,
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_string(),
            predicate_type: "https://slsa.dev/provenance/v1".to_string(),
            signers: vec![Fingerprint([0x9f; 32])],
            subjects: vec![format!("sha256:{}", "6a".repeat(32)).parse().unwrap()],
            materials: vec![format!("sha256:{}", "bb".repeat(32)).parse().unwrap()],
        };
        let hex = hex::encode(record.encode());
        let want = concat!(
            "01",
            "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c",
            "0000019ab095d200",
            "001c",
            "6170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e",
            "001e",
            "68747470733a2f2f736c73612e6465762f70726f76656e616e63652f7631",
            "01",
            "9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f",
            "0001",
            "47",
            "7368613235363a36613661366136613661366136613661366136613661366136613661366136613661366136613661366136613661366136613661366136613661366136613661",
            "0001",
            "47",
            "7368613235363a62626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
        );
        assert_eq!(hex, want);
        assert_eq!(
            hex::encode(record.leaf_hash().0),
            "ce708afa5aa5f4a7b8b1f299ece21bd0f220901a674688ab75b93d7ca0e7122a"
        );
    }
}
