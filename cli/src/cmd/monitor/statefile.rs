//! Loading and saving the monitor's state file. Saving is atomic: write a temporary file
//! beside it, fsync it, rename it over the old one, fsync the directory. A crash leaves
//! either the old state or the new one, never a torn file.

use crate::atomic;
use anyhow::{Context as _, Result};
use pedigree_core::checkpoint::LogVerifier;
use pedigree_core::monitor::state::MonitorState;
use std::fs;
use std::path::Path;

/// Reads the state, `None` when the file does not exist yet (a first run).
pub fn load(path: &Path, log: &LogVerifier) -> Result<Option<MonitorState>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("couldn't read {}", path.display())),
    };
    MonitorState::decode(&bytes, log)
        .map(Some)
        .with_context(|| format!("couldn't load state file {}", path.display()))
}

/// Replaces the state file atomically.
pub fn save(path: &Path, state: &MonitorState) -> Result<()> {
    atomic::replace(path, &state.encode())
        .with_context(|| format!("couldn't write state file {}", path.display()))
}
