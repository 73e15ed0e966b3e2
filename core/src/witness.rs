//! Witness cosignatures: C2SP `tlog-cosignature` (the Ed25519 `cosignature/v1` type),
//! witness verifier keys, and the check that a checkpoint carries enough of them.
//!
//! A witness cosigns a checkpoint after checking that it is consistent with the last one
//! it cosigned for the same log. Its signature line is an ordinary signed-note line,
//!
//! ```text
//! — <witness name> base64(key id || u64 timestamp, big-endian || Ed25519 signature)
//! ```
//!
//! where the key id is `SHA-256(name || "\n" || 0x04 || public key)[:4]` and the signed
//! message is `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint body. A
//! client that trusts a set of witnesses accepts a checkpoint only when at least K of
//! them cosigned it ([`WitnessPolicy::check`]): a log can then show a different history
//! to someone only if K witnesses collude with it.
//!
//! The `tlog-witness` wire format (add-checkpoint requests and answers) is in
//! [`protocol`]; the offline proof file that carries cosigned checkpoints is
//! [`crate::tlogproof`].
//!
//! Out of scope: ML-DSA-44 cosignatures (type 0x06) and subtree cosigning; such lines
//! are signatures by unknown keys here and are ignored like any other.

pub mod protocol;

use crate::checkpoint::{parse_ed25519_vkey, validate_origin};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::Note;
use thiserror::Error;

/// Signature type byte of timestamped Ed25519 checkpoint cosignatures (C2SP signed-note).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The header line that separates cosigned messages from every other signed message.
const COSIGNATURE_HEADER: &str = "cosignature/v1\n";

/// Largest timestamp a cosignature may carry (tlog-cosignature: at most 2^63 - 1).
const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Why a cosignature, a witness key or a witness policy check was rejected.
#[derive(Debug, Error)]
pub enum WitnessError {
    /// The verifier key text is not `<name>+<hex key id>+<base64(0x04 || key)>`.
    #[error("malformed witness verifier key: {reason}")]
    MalformedVerifierKey {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The witness name is not a valid note key name.
    #[error("invalid witness name {name:?}: must be non-empty without spaces or '+'")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A signature line is not `— <name> <base64>` with a 76-byte cosignature.
    #[error("malformed cosignature line: {reason}")]
    MalformedCosignature {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The note does not parse as a signed note.
    #[error("checkpoint is not a signed note")]
    Note(#[source] signed_note::NoteError),
    /// A line names a trusted witness (name and key id) but its signature is bad: the
    /// whole note is rejected, as signed-note says a client should.
    #[error("cosignature by witness {name} does not verify")]
    BadCosignature {
        /// The witness's name.
        name: String,
    },
    /// Fewer trusted witnesses cosigned than the policy requires.
    #[error("checkpoint has {valid} valid cosignatures from trusted witnesses, {min} required")]
    TooFewCosignatures {
        /// Distinct trusted witnesses whose cosignature verified.
        valid: usize,
        /// The policy's minimum.
        min: usize,
    },
    /// The policy asks for more cosignatures than it has witnesses.
    #[error("min_witnesses {min} exceeds the {known} witness keys given")]
    UnsatisfiablePolicy {
        /// The minimum asked for.
        min: usize,
        /// Witness keys known.
        known: usize,
    },
}

/// One cosignature line, parsed but not verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub name: String,
    /// The key id of the line (identifies the key; not authenticated).
    pub key_id: u32,
    /// POSIX seconds at which the witness cosigned.
    pub timestamp: u64,
    /// The Ed25519 signature over [`cosigned_message`].
    pub signature: [u8; 64],
}

impl Cosignature {
    /// Parses one note signature line (with or without its final newline) as a
    /// cosignature/v1 line.
    ///
    /// # Errors
    ///
    /// [`WitnessError::MalformedCosignature`] unless the line is a signature line whose
    /// payload is a key id, an 8-byte timestamp and a 64-byte signature.
    pub fn from_line(line: &str) -> Result<Self, WitnessError> {
        let malformed = |reason| WitnessError::MalformedCosignature { reason };
        let line = line.strip_suffix('\n').unwrap_or(line);
        let sig = signed_note::Signature::from_bytes(line.as_bytes())
            .map_err(|_| malformed("not a note signature line"))?;
        Self::from_note_signature(&sig)
    }

    fn from_note_signature(sig: &signed_note::Signature) -> Result<Self, WitnessError> {
        let bytes = sig.signature();
        if bytes.len() != 8 + 64 {
            return Err(WitnessError::MalformedCosignature {
                reason: "payload is not an 8-byte timestamp and a 64-byte signature",
            });
        }
        let (time, signature) = bytes.split_at(8);
        let timestamp = u64::from_be_bytes(time.try_into().unwrap_or_default());
        if timestamp > MAX_TIMESTAMP {
            return Err(WitnessError::MalformedCosignature {
                reason: "timestamp exceeds 2^63 - 1",
            });
        }
        Ok(Self {
            name: sig.name().to_string(),
            key_id: sig.id(),
            timestamp,
            signature: signature.try_into().unwrap_or([0; 64]),
        })
    }

    /// The signature line, `— <name> <base64>` and a newline.
    pub fn to_line(&self) -> String {
        let mut payload = Vec::with_capacity(4 + 8 + 64);
        payload.extend_from_slice(&self.key_id.to_be_bytes());
        payload.extend_from_slice(&self.timestamp.to_be_bytes());
        payload.extend_from_slice(&self.signature);
        format!("— {} {}\n", self.name, STANDARD.encode(payload))
    }
}

/// The message a cosignature/v1 signs: the header line, the time line and the
/// checkpoint body (the note text, with its final newline and no signature lines).
pub fn cosigned_message(body: &[u8], timestamp: u64) -> Vec<u8> {
    let mut msg = format!("{COSIGNATURE_HEADER}time {timestamp}\n").into_bytes();
    msg.extend_from_slice(body);
    msg
}

fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut material = Vec::with_capacity(33);
    material.push(ALG_COSIGNATURE_V1);
    material.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &material)
}

/// A witness's signing key and name.
#[derive(Clone)]
pub struct WitnessSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

impl WitnessSigner {
    /// A signer for the witness named `name` (a schema-less URL, by convention).
    ///
    /// # Errors
    ///
    /// [`WitnessError::InvalidName`] when `name` is not a valid note key name.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, WitnessError> {
        validate_origin(name).map_err(|_| WitnessError::InvalidName {
            name: name.to_string(),
        })?;
        let key_id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_string(),
            key,
            key_id,
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this witness's cosignatures.
    pub fn verifier(&self) -> WitnessVerifier {
        WitnessVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    /// Cosigns the checkpoint whose note text (body) is `body` at `timestamp`.
    pub fn cosign(&self, body: &[u8], timestamp: u64) -> Cosignature {
        let sig = self.key.sign(&cosigned_message(body, timestamp));
        Cosignature {
            name: self.name.clone(),
            key_id: self.key_id,
            timestamp,
            signature: sig.to_bytes(),
        }
    }
}

/// A trusted witness: its name and Ed25519 cosigning key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessVerifier {
    name: String,
    key: VerifyingKey,
    key_id: u32,
}

impl WitnessVerifier {
    /// Parses a witness verifier key, `<name>+<key id hex>+base64(0x04 || key)`.
    ///
    /// # Errors
    ///
    /// [`WitnessError::MalformedVerifierKey`] for anything but a well-formed
    /// cosignature/v1 key whose key id matches its name and key. A log's key (type
    /// 0x01) is refused, so a log key can never count as a witness.
    pub fn from_vkey(vkey: &str) -> Result<Self, WitnessError> {
        let (name, key_id, key) =
            parse_ed25519_vkey(vkey, ALG_COSIGNATURE_V1, "not a cosignature/v1 (0x04) key")
                .map_err(|reason| WitnessError::MalformedVerifierKey { reason })?;
        Ok(Self { name, key, key_id })
    }

    /// The key in note form.
    pub fn to_vkey(&self) -> String {
        let mut material = vec![ALG_COSIGNATURE_V1];
        material.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(material)
        )
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id its signature lines carry.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Whether a line names this witness (same name and key id); other lines are
    /// signatures by unknown keys and must be ignored.
    pub fn names(&self, cosignature: &Cosignature) -> bool {
        cosignature.name == self.name && cosignature.key_id == self.key_id
    }

    /// Verifies `cosignature` over the checkpoint body `body`.
    ///
    /// # Errors
    ///
    /// [`WitnessError::BadCosignature`] when the line is not this witness's or its
    /// signature does not verify (`verify_strict`).
    pub fn verify(&self, body: &[u8], cosignature: &Cosignature) -> Result<(), WitnessError> {
        let bad = || WitnessError::BadCosignature {
            name: self.name.clone(),
        };
        if !self.names(cosignature) {
            return Err(bad());
        }
        let sig = ed25519_dalek::Signature::from_bytes(&cosignature.signature);
        self.key
            .verify_strict(&cosigned_message(body, cosignature.timestamp), &sig)
            .map_err(|_| bad())
    }
}

/// A cosignature that verified, by the witness it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCosignature {
    /// The witness's name.
    pub witness: String,
    /// When it cosigned (POSIX seconds).
    pub timestamp: u64,
}

/// The cosignature lines of a note that are cosignature/v1 lines by `witness`, each
/// verified. Lines by other keys are ignored.
///
/// # Errors
///
/// [`WitnessError::Note`] for a malformed note, [`WitnessError::BadCosignature`] when a
/// line names the witness but does not verify.
pub fn cosignatures_by(
    note: &[u8],
    witness: &WitnessVerifier,
) -> Result<Vec<Cosignature>, WitnessError> {
    let (body, lines) = split_note(note)?;
    let mut out = Vec::new();
    for line in lines {
        if line.name() != witness.name || line.id() != witness.key_id {
            continue;
        }
        let cosignature =
            Cosignature::from_note_signature(&line).map_err(|_| WitnessError::BadCosignature {
                name: witness.name.clone(),
            })?;
        witness.verify(&body, &cosignature)?;
        out.push(cosignature);
    }
    Ok(out)
}

/// The text of a signed note (for a checkpoint, its body): what cosignatures sign.
///
/// # Errors
///
/// [`WitnessError::Note`] when `note` is not a signed note.
pub fn note_body(note: &[u8]) -> Result<Vec<u8>, WitnessError> {
    Ok(Note::from_bytes(note)
        .map_err(WitnessError::Note)?
        .text()
        .to_vec())
}

/// The note text (checkpoint body) and its signature lines.
fn split_note(note: &[u8]) -> Result<(Vec<u8>, Vec<signed_note::Signature>), WitnessError> {
    let parsed = Note::from_bytes(note).map_err(WitnessError::Note)?;
    let body = parsed.text().to_vec();
    // `Note` keeps its signatures private; reparse the lines it accepted.
    let text = std::str::from_utf8(note).map_err(|_| WitnessError::MalformedCosignature {
        reason: "note is not UTF-8",
    })?;
    let (_, sigs) = text
        .rsplit_once("\n\n")
        .ok_or(WitnessError::MalformedCosignature {
            reason: "note has no signature block",
        })?;
    let lines = sigs
        .lines()
        .map(|l| signed_note::Signature::from_bytes(l.as_bytes()).map_err(WitnessError::Note))
        .collect::<Result<_, _>>()?;
    Ok((body, lines))
}

/// Appends cosignature lines to a signed note, skipping lines it already holds.
///
/// # Errors
///
/// [`WitnessError::Note`] when `note` is not a signed note.
pub fn append_cosignatures(
    note: &[u8],
    cosignatures: &[Cosignature],
) -> Result<Vec<u8>, WitnessError> {
    Note::from_bytes(note).map_err(WitnessError::Note)?;
    let mut out = note.to_vec();
    let text = String::from_utf8_lossy(note).into_owned();
    for c in cosignatures {
        let line = c.to_line();
        if !text.lines().any(|l| format!("{l}\n") == line) {
            out.extend_from_slice(line.as_bytes());
        }
    }
    Ok(out)
}

/// Which witnesses a verifier trusts and how many of them must have cosigned.
#[derive(Clone, Debug, Default)]
pub struct WitnessPolicy {
    witnesses: Vec<WitnessVerifier>,
    min: usize,
}

impl WitnessPolicy {
    /// A policy requiring `min` of `witnesses` (repeated keys count once).
    ///
    /// # Errors
    ///
    /// [`WitnessError::UnsatisfiablePolicy`] when `min` exceeds the distinct keys.
    pub fn new(mut witnesses: Vec<WitnessVerifier>, min: usize) -> Result<Self, WitnessError> {
        witnesses.sort_by(|a, b| (&a.name, a.key_id).cmp(&(&b.name, b.key_id)));
        witnesses.dedup();
        if min > witnesses.len() {
            return Err(WitnessError::UnsatisfiablePolicy {
                min,
                known: witnesses.len(),
            });
        }
        Ok(Self { witnesses, min })
    }

    /// The policy that requires nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Cosignatures required.
    pub fn min(&self) -> usize {
        self.min
    }

    /// The trusted witnesses.
    pub fn witnesses(&self) -> &[WitnessVerifier] {
        &self.witnesses
    }

    /// Checks that `note` carries valid cosignatures from at least `min` distinct
    /// trusted witnesses, and returns those that verified. The log's own signature is
    /// not checked here ([`crate::checkpoint::LogVerifier::verify`] does that).
    ///
    /// # Errors
    ///
    /// [`WitnessError::TooFewCosignatures`], and the errors of [`cosignatures_by`]:
    /// a line that names a trusted witness and fails to verify rejects the note.
    pub fn check(&self, note: &[u8]) -> Result<Vec<VerifiedCosignature>, WitnessError> {
        if self.min == 0 && self.witnesses.is_empty() {
            return Ok(Vec::new());
        }
        let mut valid = Vec::new();
        for w in &self.witnesses {
            if let Some(c) = cosignatures_by(note, w)?.first() {
                valid.push(VerifiedCosignature {
                    witness: w.name.clone(),
                    timestamp: c.timestamp,
                });
            }
        }
        if valid.len() < self.min {
            return Err(WitnessError::TooFewCosignatures {
                valid: valid.len(),
                min: self.min,
            });
        }
        Ok(valid)
    }
}

#[cfg(test)]
mod tests;
