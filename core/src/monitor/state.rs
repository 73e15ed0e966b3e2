//! The monitor's state file (`spec/monitor.md` section 6): the last checkpoint it
//! verified and the index of the next entry to read, so a restarted monitor resumes
//! where it stopped, neither missing nor repeating an entry.

use crate::checkpoint::{CheckpointError, LogVerifier, SignedCheckpoint};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// State file format version written by this code.
pub const STATE_VERSION: u32 = 1;

/// Why a state file was rejected.
#[derive(Debug, Error)]
pub enum StateError {
    /// Not JSON of the state file's shape.
    #[error("state file is not valid JSON of its format")]
    Json(#[source] serde_json::Error),
    /// A version this code does not read.
    #[error("state file version {0} is not {STATE_VERSION}")]
    Version(u32),
    /// The stored checkpoint is not signed by the log key given, or not this log's.
    #[error("state file checkpoint does not verify with the log key")]
    Checkpoint(#[source] CheckpointError),
    /// A field disagrees with the stored checkpoint.
    #[error("state file {field} does not match its checkpoint")]
    Mismatch {
        /// The field.
        field: &'static str,
    },
    /// The next entry lies beyond the stored checkpoint.
    #[error("state file next_index {next_index} is beyond its tree size {tree_size}")]
    NextIndexBeyondTree {
        /// The stored next index.
        next_index: u64,
        /// The stored tree size.
        tree_size: u64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    version: u32,
    origin: String,
    tree_size: u64,
    root_hash: String,
    checkpoint: String,
    next_index: u64,
    entries_processed: u64,
}

/// What a monitor remembers between passes.
///
/// Invariant: `next_index <= checkpoint.tree_size`; every entry below `next_index` has
/// been read and checked, and `checkpoint` is consistent with every checkpoint the
/// monitor verified before it.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorState {
    /// The latest checkpoint verified (signature and consistency).
    pub checkpoint: SignedCheckpoint,
    /// The first entry not yet read.
    pub next_index: u64,
    /// Entries read over the monitor's life (a counter for operators).
    pub entries_processed: u64,
}

impl MonitorState {
    /// Encodes the state as pretty JSON with a trailing newline.
    pub fn encode(&self) -> Vec<u8> {
        let raw = RawState {
            version: STATE_VERSION,
            origin: self.checkpoint.origin.clone(),
            tree_size: self.checkpoint.tree_size,
            root_hash: hex::encode(self.checkpoint.root_hash.0),
            checkpoint: self.checkpoint.note_text().to_string(),
            next_index: self.next_index,
            entries_processed: self.entries_processed,
        };
        // A struct of strings and integers always serializes.
        let mut out = serde_json::to_vec_pretty(&raw).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Decodes a state file and re-verifies its checkpoint with the log key, so a state
    /// file can never make the monitor trust a tree head the log did not sign.
    ///
    /// # Errors
    ///
    /// A [`StateError`] naming what is wrong.
    pub fn decode(bytes: &[u8], log: &LogVerifier) -> Result<Self, StateError> {
        let raw: RawState = serde_json::from_slice(bytes).map_err(StateError::Json)?;
        if raw.version != STATE_VERSION {
            return Err(StateError::Version(raw.version));
        }
        let checkpoint = log
            .verify(raw.checkpoint.as_bytes())
            .map_err(StateError::Checkpoint)?;
        if raw.origin != checkpoint.origin {
            return Err(StateError::Mismatch { field: "origin" });
        }
        if raw.tree_size != checkpoint.tree_size {
            return Err(StateError::Mismatch { field: "tree_size" });
        }
        if raw.root_hash != hex::encode(checkpoint.root_hash.0) {
            return Err(StateError::Mismatch { field: "root_hash" });
        }
        if raw.next_index > checkpoint.tree_size {
            return Err(StateError::NextIndexBeyondTree {
                next_index: raw.next_index,
                tree_size: checkpoint.tree_size,
            });
        }
        Ok(Self {
            checkpoint,
            next_index: raw.next_index,
            entries_processed: raw.entries_processed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::LogSigner;
    use crate::merkle::Hash;
    use ed25519_dalek::SigningKey;

    fn signer(seed: u8) -> LogSigner {
        LogSigner::new("example.com/log", SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn state_round_trips_and_reverifies_its_checkpoint() {
        let s = signer(1);
        let state = MonitorState {
            checkpoint: s.sign(10, Hash([3; 32])),
            next_index: 7,
            entries_processed: 7,
        };
        let bytes = state.encode();
        assert_eq!(MonitorState::decode(&bytes, &s.verifier()).unwrap(), state);
        assert!(matches!(
            MonitorState::decode(&bytes, &signer(2).verifier()),
            Err(StateError::Checkpoint(_))
        ));
    }

    #[test]
    fn edited_state_files_are_rejected() {
        let s = signer(1);
        let state = MonitorState {
            checkpoint: s.sign(10, Hash([3; 32])),
            next_index: 10,
            entries_processed: 10,
        };
        let text = String::from_utf8(state.encode()).unwrap();
        for (from, to) in [
            ("\"tree_size\": 10", "\"tree_size\": 11"),
            ("\"next_index\": 10", "\"next_index\": 11"),
            ("\"version\": 1", "\"version\": 2"),
            ("\"root_hash\": \"03", "\"root_hash\": \"04"),
            (
                "\"entries_processed\"",
                "\"extra\": 1, \"entries_processed\"",
            ),
        ] {
            let edited = text.replacen(from, to, 1);
            assert_ne!(edited, text, "{from}");
            assert!(
                MonitorState::decode(edited.as_bytes(), &s.verifier()).is_err(),
                "{from} -> {to} accepted"
            );
        }
    }
}
