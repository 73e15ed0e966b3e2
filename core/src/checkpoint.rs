//! C2SP `tlog-checkpoint` checkpoints signed as C2SP `signed-note` with Ed25519.
//!
//! A checkpoint commits the log to one root hash per tree size. Its body is
//!
//! ```text
//! <origin>\n<tree size, decimal>\n<root hash, base64>\n[extension lines]
//! ```
//!
//! followed by a blank line and one signature line per signer (`— <name> <base64(key id || sig)>`).
//! The log's key name is its origin, so a verifier key names the log it belongs to.
//!
//! Parsing and signature lines come from Cloudflare azul's `signed_note` and
//! `tlog_tiles`; this module adds strict Ed25519 verification (`verify_strict`, which
//! rejects small-order keys and non-canonical signatures) and the origin check.

use crate::merkle::Hash;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, NoteError, VerifierList};
use thiserror::Error;

/// Signature type byte for Ed25519 in C2SP signed-note verifier keys.
const ALG_ED25519: u8 = 0x01;

/// Why a checkpoint or verifier key was rejected.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The verifier key text is not `<name>+<hex key id>+<base64 key>` for Ed25519.
    #[error("malformed verifier key: {reason}")]
    MalformedVerifierKey {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The origin is not a valid note key name (empty, spaces or `+`).
    #[error("invalid origin {origin:?}: must be non-empty without spaces or '+'")]
    InvalidOrigin {
        /// The rejected origin.
        origin: String,
    },
    /// The signed note is malformed, or its signature by the log's key is missing or bad.
    #[error("checkpoint signature check failed: {0}")]
    Note(#[source] NoteError),
    /// The note text is not a C2SP checkpoint body.
    #[error("malformed checkpoint body")]
    MalformedBody,
    /// The checkpoint names a different log than the verifier key.
    #[error("checkpoint origin {got:?} does not match the log's origin {want:?}")]
    WrongOrigin {
        /// Origin expected from the verifier key.
        want: String,
        /// Origin in the checkpoint.
        got: String,
    },
}

impl CheckpointError {
    /// Whether the note itself is malformed (as opposed to well-formed but lacking a
    /// valid signature by the log's key, or naming another log).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            CheckpointError::MalformedBody | CheckpointError::Note(NoteError::MalformedNote)
        )
    }
}

/// A parsed checkpoint whose log signature has been verified (or that we just signed).
#[derive(Clone, Debug, PartialEq)]
pub struct SignedCheckpoint {
    /// The log's origin line.
    pub origin: String,
    /// Number of leaves the checkpoint commits to.
    pub tree_size: u64,
    /// RFC 6962 root hash of those leaves.
    pub root_hash: Hash,
    /// The full signed note text, as served at `/checkpoint`.
    pub note: Vec<u8>,
}

impl SignedCheckpoint {
    /// The note as UTF-8 text (signed notes are always UTF-8).
    pub fn note_text(&self) -> &str {
        // Invariant: notes are built from, or parsed as, valid UTF-8.
        std::str::from_utf8(&self.note).unwrap_or_default()
    }
}

/// Encodes a checkpoint body (the signed text).
fn body(origin: &str, tree_size: u64, root_hash: &Hash) -> String {
    format!("{origin}\n{tree_size}\n{root_hash}\n")
}

/// The root hash line of a checkpoint note, decoded, without checking any signature:
/// for display and for copying into formats that repeat it. Never trust it unverified.
pub fn root_from_note(note: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let line = note.lines().nth(2)?;
    base64::engine::general_purpose::STANDARD.decode(line).ok()
}

/// Checks that `origin` can be a note key name.
///
/// # Errors
///
/// [`CheckpointError::InvalidOrigin`] when it cannot.
pub fn validate_origin(origin: &str) -> Result<(), CheckpointError> {
    if signed_note::is_key_name_valid(origin) && origin.chars().all(|c| !c.is_control()) {
        Ok(())
    } else {
        Err(CheckpointError::InvalidOrigin {
            origin: origin.to_string(),
        })
    }
}

/// Signs checkpoints for one log.
#[derive(Clone)]
pub struct LogSigner {
    origin: String,
    key: SigningKey,
    key_id: u32,
}

impl LogSigner {
    /// A signer for the log named `origin` with its Ed25519 key.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::InvalidOrigin`] when `origin` is not a valid key name.
    pub fn new(origin: &str, key: SigningKey) -> Result<Self, CheckpointError> {
        validate_origin(origin)?;
        let key_id = signed_note::key_id(origin, &encoded_public_key(&key.verifying_key()));
        Ok(Self {
            origin: origin.to_string(),
            key,
            key_id,
        })
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key in C2SP note form: `<origin>+<key id hex>+<base64(0x01 || key)>`.
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.origin, &self.key.verifying_key())
    }

    /// A verifier for checkpoints from this signer.
    pub fn verifier(&self) -> LogVerifier {
        LogVerifier {
            origin: self.origin.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    /// Signs the checkpoint for `tree_size` with `root_hash`.
    ///
    /// Ed25519 signing is deterministic: signing the same size and root twice gives the
    /// same note, so a retried commit can never produce two notes for one tree head.
    pub fn sign(&self, tree_size: u64, root_hash: Hash) -> SignedCheckpoint {
        let text = body(&self.origin, tree_size, &root_hash);
        let sig = self.key.sign(text.as_bytes());
        let mut line = Vec::with_capacity(4 + 64);
        line.extend_from_slice(&self.key_id.to_be_bytes());
        line.extend_from_slice(&sig.to_bytes());
        let note = format!(
            "{text}\n— {} {}\n",
            self.origin,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, line)
        );
        SignedCheckpoint {
            origin: self.origin.clone(),
            tree_size,
            root_hash,
            note: note.into_bytes(),
        }
    }
}

fn encoded_public_key(key: &VerifyingKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(33);
    out.push(ALG_ED25519);
    out.extend_from_slice(key.as_bytes());
    out
}

/// Parses a C2SP note verifier key `<name>+<key id hex>+base64(alg || Ed25519 key)`
/// whose algorithm byte must be `alg` (`what` names it in errors): the name, the key id
/// (checked against name and key) and the key, which must not be weak. Shared by log
/// keys and witness cosignature keys, which differ only in the algorithm byte.
pub(crate) fn parse_ed25519_vkey(
    vkey: &str,
    alg: u8,
    what: &'static str,
) -> Result<(String, u32, VerifyingKey), &'static str> {
    use base64::Engine as _;
    let vkey = vkey.trim();
    let (name, rest) = vkey.split_once('+').ok_or("missing '+'")?;
    let (id_hex, key_b64) = rest.split_once('+').ok_or("missing key id")?;
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("key id is not 8 hex digits");
    }
    validate_origin(name).map_err(|_| "invalid key name")?;
    let key_id = u32::from_str_radix(id_hex, 16).map_err(|_| "bad key id")?;
    let material = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .map_err(|_| "key is not base64")?;
    if material.first() != Some(&alg) {
        return Err(what);
    }
    let bytes: [u8; 32] = material[1..].try_into().map_err(|_| "bad key length")?;
    if signed_note::key_id(name, &material) != key_id {
        return Err("key id does not match name and key");
    }
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "invalid Ed25519 key")?;
    if key.is_weak() {
        return Err("weak Ed25519 key");
    }
    Ok((name.to_string(), key_id, key))
}

/// Verifies checkpoints of one log, given its verifier key.
#[derive(Clone, Debug)]
pub struct LogVerifier {
    origin: String,
    key: VerifyingKey,
    key_id: u32,
}

impl signed_note::Verifier for LogVerifier {
    fn name(&self) -> &str {
        &self.origin
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify_strict(msg, &sig).is_ok()
    }
}

impl LogVerifier {
    /// Parses a verifier key in C2SP note form.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::MalformedVerifierKey`] for anything but a well-formed Ed25519
    /// verifier key whose key id matches its name and key.
    pub fn from_vkey(vkey: &str) -> Result<Self, CheckpointError> {
        let (origin, key_id, key) = parse_ed25519_vkey(vkey, ALG_ED25519, "not an Ed25519 key")
            .map_err(|reason| CheckpointError::MalformedVerifierKey { reason })?;
        Ok(Self {
            origin,
            key,
            key_id,
        })
    }

    /// The log origin this key belongs to.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key in C2SP note form.
    pub fn to_vkey(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.origin, &self.key)
    }

    /// Verifies a signed checkpoint note from this log and parses it.
    ///
    /// Signatures by other keys (witness cosignatures) are allowed and ignored here.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Note`] when the note is malformed or lacks a valid signature by
    /// this key, [`CheckpointError::MalformedBody`] for a bad body and
    /// [`CheckpointError::WrongOrigin`] when it is another log's checkpoint.
    pub fn verify(&self, note: &[u8]) -> Result<SignedCheckpoint, CheckpointError> {
        let parsed = Note::from_bytes(note).map_err(CheckpointError::Note)?;
        let known = VerifierList::new(vec![Box::new(self.clone())]);
        parsed.verify(&known).map_err(CheckpointError::Note)?;
        let cp = tlog_tiles::Checkpoint::from_bytes(parsed.text())
            .map_err(|_| CheckpointError::MalformedBody)?;
        if cp.origin() != self.origin {
            return Err(CheckpointError::WrongOrigin {
                want: self.origin.clone(),
                got: cp.origin().to_string(),
            });
        }
        Ok(SignedCheckpoint {
            origin: cp.origin().to_string(),
            tree_size: cp.size(),
            root_hash: *cp.hash(),
            note: note.to_vec(),
        })
    }

    /// The verifier's key id, as in signature lines.
    pub fn key_id(&self) -> u32 {
        signed_note::Verifier::key_id(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(origin: &str, seed: u8) -> LogSigner {
        LogSigner::new(origin, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn signed_checkpoint_verifies_and_round_trips() {
        let s = signer("example.com/log", 7);
        let cp = s.sign(17, Hash([3; 32]));
        let v = LogVerifier::from_vkey(&s.verifier_key()).unwrap();
        let got = v.verify(&cp.note).unwrap();
        assert_eq!(got, cp);
        assert!(cp
            .note_text()
            .starts_with("example.com/log\n17\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n\n— example.com/log "));
    }

    #[test]
    fn signing_is_deterministic() {
        let s = signer("example.com/log", 7);
        assert_eq!(s.sign(3, Hash([1; 32])), s.sign(3, Hash([1; 32])));
    }

    #[test]
    fn checkpoint_from_other_key_is_rejected() {
        let cp = signer("example.com/log", 7).sign(1, Hash([0; 32]));
        let other = LogVerifier::from_vkey(&signer("example.com/log", 8).verifier_key()).unwrap();
        assert!(matches!(
            other.verify(&cp.note),
            Err(CheckpointError::Note(_))
        ));
    }

    #[test]
    fn tampered_checkpoint_is_rejected() {
        let s = signer("example.com/log", 7);
        let mut note = s.sign(10, Hash([5; 32])).note;
        let pos = note.iter().position(|&b| b == b'1').unwrap();
        note[pos] = b'2';
        assert!(matches!(
            s.verifier().verify(&note),
            Err(CheckpointError::Note(_))
        ));
    }

    #[test]
    fn malformed_vkeys_are_rejected() {
        let good = signer("example.com/log", 7).verifier_key();
        let cases = [
            "",
            "nokey",
            "name+1234+AAAA",
            &good.replace("example.com/log", "other.example/log"),
            &format!("{good}AA"),
        ];
        for c in cases {
            assert!(LogVerifier::from_vkey(c).is_err(), "{c:?} accepted");
        }
        assert_eq!(LogVerifier::from_vkey(&good).unwrap().to_vkey(), good);
    }

    #[test]
    fn origin_with_space_is_rejected() {
        assert!(LogSigner::new("bad origin", SigningKey::from_bytes(&[1; 32])).is_err());
    }

    #[test]
    fn cosigned_note_still_verifies_for_the_log() {
        let log = signer("example.com/log", 7);
        let witness = signer("witness.example", 9);
        let cp = log.sign(4, Hash([9; 32]));
        let mut parsed = Note::from_bytes(&cp.note).unwrap();
        let ws = signed_note::StandardSigner::new(&format!(
            "PRIVATE+KEY+witness.example+{:08x}+{}",
            witness.key_id,
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                [&[ALG_ED25519][..], &witness.key.to_bytes()].concat()
            )
        ))
        .unwrap();
        parsed.add_sigs(&[&ws]).unwrap();
        let got = log.verifier().verify(&parsed.to_bytes()).unwrap();
        assert_eq!(got.tree_size, 4);
    }
}
