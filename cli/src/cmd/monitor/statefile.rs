//! Loading and saving the monitor's state file. Saving is atomic: write a temporary file
//! beside it, fsync it, rename it over the old one, fsync the directory. A crash leaves
//! either the old state or the new one, never a torn file.

use anyhow::{Context as _, Result};
use pedigree_core::checkpoint::LogVerifier;
use pedigree_core::monitor::state::MonitorState;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

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

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces the state file atomically.
pub fn save(path: &Path, state: &MonitorState) -> Result<()> {
    let tmp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&state.encode())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Makes the rename durable; directories cannot be opened for this everywhere.
        if let Ok(d) = File::open(dir) {
            d.sync_all()?;
        }
        Ok(())
    };
    write().with_context(|| format!("couldn't write state file {}", path.display()))
}
