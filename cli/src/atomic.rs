//! Durable whole-file replacement for the state files the monitor and the witness keep:
//! write a temporary file beside the target, fsync it, rename it over the target, fsync
//! the directory. A crash leaves the old file or the new one, never a torn file.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably, through `<name>.tmp` beside it.
///
/// # Errors
///
/// When the temporary file cannot be written or synced, or the rename fails.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
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
}
