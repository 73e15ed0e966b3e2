//! What a witness remembers: for each log, the last checkpoint it cosigned, in one file
//! per origin under the state directory (`<hex SHA-256 of the origin>.checkpoint`).
//!
//! Invariant: a witness persists before it cosigns. [`LogState::add_checkpoint`] holds
//! the log's lock from the check of the old size to the fsync of the new checkpoint, so
//! two requests can never both pass the check against the same recorded size and roll
//! the record back (the race tlog-witness describes), and the cosignature is returned
//! only after the new record is durable.

use crate::atomic;
use anyhow::{bail, Context as _, Result};
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::witness::protocol::{check_add_checkpoint, AddCheckpoint, Refusal};
use pedigree_core::witness::{append_cosignatures, note_body, Cosignature, WitnessSigner};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One log the witness follows.
pub struct LogState {
    /// Verifies the log's checkpoints.
    pub verifier: LogVerifier,
    path: PathBuf,
    /// The last checkpoint cosigned, as stored (the log's note with our cosignature).
    /// The lock also serializes check-and-persist for this log.
    last: Mutex<Option<SignedCheckpoint>>,
}

/// Why a verified checkpoint was not cosigned.
pub enum AddError {
    /// The protocol forbids cosigning it; the state is unchanged.
    Refused(Refusal),
    /// The new state could not be made durable; nothing was cosigned.
    Storage(anyhow::Error),
}

/// Hex SHA-256 of an origin: the name of its state file and of its monitoring path.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

impl LogState {
    /// Opens the state of the log of `verifier` in `dir`, checking the stored
    /// checkpoint's log signature.
    ///
    /// # Errors
    ///
    /// When the file is unreadable or not a checkpoint signed by the log.
    pub fn open(dir: &Path, verifier: LogVerifier) -> Result<Self> {
        let path = dir.join(format!("{}.checkpoint", origin_hash(verifier.origin())));
        let last = match fs::read(&path) {
            Ok(note) => Some(verifier.verify(&note).with_context(|| {
                format!(
                    "state file {} is not a checkpoint of {}",
                    path.display(),
                    verifier.origin()
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("couldn't read {}", path.display())),
        };
        Ok(Self {
            verifier,
            path,
            last: Mutex::new(last),
        })
    }

    /// The last checkpoint cosigned, with our cosignature, if any.
    pub fn last(&self) -> Option<Vec<u8>> {
        self.lock().as_ref().map(|c| c.note.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SignedCheckpoint>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks `request` (whose checkpoint `checkpoint` the caller verified with this
    /// log's key) against the last cosigned checkpoint, cosigns it at `now`, persists the
    /// cosigned note and only then returns the cosignature.
    ///
    /// # Errors
    ///
    /// [`AddError::Refused`] when the protocol forbids it, [`AddError::Storage`] when
    /// the state cannot be written; in both cases nothing is cosigned or changed.
    pub fn add_checkpoint(
        &self,
        request: &AddCheckpoint,
        checkpoint: SignedCheckpoint,
        signer: &WitnessSigner,
        now: u64,
    ) -> Result<Cosignature, AddError> {
        let mut last = self.lock();
        check_add_checkpoint(request, &checkpoint, last.as_ref()).map_err(AddError::Refused)?;
        let body =
            note_body(&checkpoint.note).map_err(|e| AddError::Storage(anyhow::Error::new(e)))?;
        let cosignature = signer.cosign(&body, now);
        let note = append_cosignatures(&checkpoint.note, std::slice::from_ref(&cosignature))
            .map_err(|e| AddError::Storage(anyhow::Error::new(e)))?;
        write_atomically(&self.path, &note).map_err(AddError::Storage)?;
        *last = Some(SignedCheckpoint { note, ..checkpoint });
        Ok(cosignature)
    }
}

/// Replaces the witness's record of a log atomically and durably.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic::replace(path, bytes)
        .with_context(|| format!("couldn't write witness state {}", path.display()))
}

/// Parses a `--log` value: `ORIGIN=VKEY`, or a bare `VKEY` whose key name is the origin.
///
/// # Errors
///
/// When the key does not parse or names another origin.
pub fn parse_log_arg(arg: &str) -> Result<LogVerifier> {
    // A deployment may hand the log's key over as a file holding it.
    let path = std::path::Path::new(arg);
    if LogVerifier::from_vkey(arg).is_err() && path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("couldn't read log key file {arg}"))?;
        return LogVerifier::from_vkey(text.trim())
            .with_context(|| format!("couldn't parse log verifier key in {arg}"));
    }
    let (origin, vkey) = match arg.split_once('=') {
        // A vkey has no '=' (33 bytes of key are 44 base64 characters without padding).
        Some((origin, vkey)) => (Some(origin), vkey),
        None => (None, arg),
    };
    let verifier = LogVerifier::from_vkey(vkey)
        .with_context(|| format!("couldn't parse log verifier key in --log {arg:?}"))?;
    if let Some(origin) = origin {
        if origin != verifier.origin() {
            bail!(
                "--log origin {origin:?} does not match its key's name {:?}",
                verifier.origin()
            );
        }
    }
    Ok(verifier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pedigree_core::checkpoint::LogSigner;
    use pedigree_core::merkle::{self, Hash};

    fn log() -> LogSigner {
        LogSigner::new(
            "log.example",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap()
    }

    fn witness() -> WitnessSigner {
        WitnessSigner::new(
            "w.example/a",
            ed25519_dalek::SigningKey::from_bytes(&[2; 32]),
        )
        .unwrap()
    }

    fn request(old_size: u64, proof: Vec<Hash>, cp: &SignedCheckpoint) -> AddCheckpoint {
        AddCheckpoint {
            old_size,
            proof,
            checkpoint: cp.note.clone(),
        }
    }

    #[test]
    fn cosigned_checkpoint_is_on_disk_and_a_refusal_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (log, w) = (log(), witness());
        let state = LogState::open(dir.path(), log.verifier()).unwrap();
        let leaves: Vec<Hash> = (0..3u8).map(|i| merkle::leaf_hash(&[i])).collect();
        let cp2 = log.sign(2, merkle::node_hash(leaves[0], leaves[1]));
        let c = state
            .add_checkpoint(&request(0, vec![], &cp2), cp2.clone(), &w, 7)
            .map_err(|_| "refused")
            .unwrap();
        let stored = std::fs::read(
            dir.path()
                .join(format!("{}.checkpoint", origin_hash("log.example"))),
        )
        .unwrap();
        assert!(String::from_utf8_lossy(&stored).ends_with(&c.to_line()));
        assert_eq!(state.last(), Some(stored.clone()));

        // Another history of size 3 grown from a different leaf 1: refused, and the
        // record (on disk and in memory) is the one it was.
        let other = merkle::node_hash(
            merkle::node_hash(leaves[0], merkle::leaf_hash(b"x")),
            leaves[2],
        );
        let cp3 = log.sign(3, other);
        let refused = state.add_checkpoint(&request(2, vec![leaves[2]], &cp3), cp3, &w, 8);
        assert!(matches!(refused, Err(AddError::Refused(_))));
        assert_eq!(state.last(), Some(stored.clone()));
        let reopened = LogState::open(dir.path(), log.verifier()).unwrap();
        assert_eq!(reopened.last(), Some(stored));
    }
}
