//! A directory of static log files (`spec/api.md` section 7): C2SP tiles, entry bundles,
//! entry JSON and the checkpoint, laid out so that a static file server answers the log's
//! read URLs. `export-tiles` writes one from a store, `mirror` from a verified upstream.
//!
//! The writing rules that make it safe to serve while it grows: every file is written
//! under a temporary name, synced and renamed, so a file that exists is whole (and an
//! immutable one is never written again); the checkpoint is renamed into place only after
//! every file it covers is durable, so a reader never sees a checkpoint ahead of its
//! tiles; partial tiles neither the new checkpoint nor the one before it need are removed
//! only after the new checkpoint is published.

use crate::api::{hex_hash, InclusionProof, RecordJson};
use anyhow::{Context as _, Result};
use base64::Engine as _;
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::entry::LeafRecord;
use pedigree_core::merkle::Hash;
use pedigree_core::tiles::{TileCoord, TILE_HEIGHT, TILE_WIDTH};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Name of the checkpoint file.
pub const CHECKPOINT: &str = "checkpoint";

/// Directory of the entry files (`<ENTRIES_DIR>/<leaf_index>`).
pub const ENTRIES_DIR: &str = "api/v1/entries";

/// Counts of what a run did to the directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Files written.
    pub written: u64,
    /// Files that existed and were kept.
    pub kept: u64,
    /// Stale partial tiles removed.
    pub removed: u64,
}

/// A static directory being extended by one run.
pub struct StaticDir {
    root: PathBuf,
    /// Directories written into since the last publish; synced before the checkpoint.
    dirs: BTreeSet<PathBuf>,
    /// What this run did.
    pub counts: Counts,
}

impl StaticDir {
    /// The directory at `root` (created on first write).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            dirs: BTreeSet::new(),
            counts: Counts::default(),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The published checkpoint, verified with `verifier`; `None` when there is none.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or does not verify.
    pub fn checkpoint(&self, verifier: &LogVerifier) -> Result<Option<SignedCheckpoint>> {
        let path = self.root.join(CHECKPOINT);
        let note = match std::fs::read(&path) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("couldn't read {}", path.display())),
        };
        verifier
            .verify(&note)
            .map(Some)
            .with_context(|| format!("{} is not a checkpoint of this log", path.display()))
    }

    /// Whether the file `rel` exists (counted as kept when it does).
    pub fn has(&mut self, rel: &str) -> bool {
        let there = self.root.join(rel).is_file();
        if there {
            self.counts.kept += 1;
        }
        there
    }

    /// Reads the file `rel`, if it exists.
    ///
    /// # Errors
    ///
    /// When it exists but cannot be read.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.root.join(rel)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("couldn't read {rel}")),
        }
    }

    /// Writes `rel` whole or not at all: a temporary file, synced, renamed into place.
    ///
    /// # Errors
    ///
    /// When a directory or the file cannot be written.
    pub fn write(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        use std::io::Write as _;
        let path = self.root.join(rel);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("couldn't create {}", dir.display()))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let temp = dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&temp)
            .with_context(|| format!("couldn't create {}", temp.display()))?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("couldn't write {}", temp.display()))?;
        std::fs::rename(&temp, &path)
            .with_context(|| format!("couldn't rename {} into place", temp.display()))?;
        // The directories `create_dir_all` made must be durable too, or a synced
        // checkpoint could outlive the directory holding its tiles after a crash.
        let mut d = dir.as_path();
        while d.starts_with(&self.root) {
            self.dirs.insert(d.to_path_buf());
            match d.parent() {
                Some(parent) if d != self.root => d = parent,
                _ => break,
            }
        }
        self.counts.written += 1;
        Ok(())
    }

    /// Publishes `cp` after syncing every directory written so far, then removes the
    /// partial tiles that neither `cp` nor the checkpoint of `previous_size` needs.
    ///
    /// # Errors
    ///
    /// When a sync, the write or a removal fails.
    pub fn publish(&mut self, cp: &SignedCheckpoint, previous_size: u64) -> Result<()> {
        for dir in std::mem::take(&mut self.dirs) {
            sync_dir(&dir)?;
        }
        self.write(CHECKPOINT, &cp.note)?;
        for dir in std::mem::take(&mut self.dirs) {
            sync_dir(&dir)?;
        }
        self.remove_stale_partials(previous_size, cp.tree_size)
    }

    fn remove_stale_partials(&mut self, previous_size: u64, tree_size: u64) -> Result<()> {
        // `tiles_from(n, n)` is exactly the partial tiles of a tree of `n`.
        let keep: BTreeSet<String> = tiles_from(previous_size, previous_size)
            .chain(tiles_from(previous_size, tree_size))
            .filter(|c| !c.is_full())
            .map(|c| c.path())
            .collect();
        let touched: BTreeSet<String> = tiles_from(previous_size, tree_size)
            .map(|c| full(c).path())
            .collect();
        for full in touched {
            let Ok(entries) = std::fs::read_dir(self.root.join(format!("{full}.p"))) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || keep.contains(&format!("{full}.p/{name}")) {
                    continue;
                }
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("couldn't remove {}", entry.path().display()))?;
                self.counts.removed += 1;
            }
        }
        Ok(())
    }
}

/// The full tile `coord` grows into.
pub fn full(coord: TileCoord) -> TileCoord {
    TileCoord {
        width: TILE_WIDTH as u16,
        ..coord
    }
}

/// The tiles and entry bundles of a tree of `tree_size`, at the widths it gives them,
/// that a tree of `previous_size` did not hold full.
pub fn tiles_from(previous_size: u64, tree_size: u64) -> impl Iterator<Item = TileCoord> {
    let mut out = Vec::new();
    let mut level = 0u8;
    loop {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        let nodes = tree_size.checked_shr(shift).unwrap_or(0);
        if nodes == 0 {
            break;
        }
        let first = previous_size.checked_shr(shift).unwrap_or(0) / TILE_WIDTH;
        for index in first..nodes.div_ceil(TILE_WIDTH) {
            let width = (nodes - index * TILE_WIDTH).min(TILE_WIDTH) as u16;
            let coord = TileCoord {
                level,
                index,
                width,
                entries: false,
            };
            out.push(coord);
            if level == 0 {
                out.push(TileCoord {
                    entries: true,
                    ..coord
                });
            }
        }
        level += 1;
    }
    out.into_iter()
}

/// The JSON of `GET /api/v1/entries/<index>` (`spec/api.md` section 3.3), with an
/// inclusion proof (`proof`) against `cp`.
///
/// # Errors
///
/// When the envelope is not JSON.
pub fn entry_json(
    index: u64,
    leaf: &[u8],
    record: &LeafRecord,
    envelope_json: &[u8],
    verifiers_pem: &[String],
    proof: &[Hash],
    cp: &SignedCheckpoint,
) -> Result<Vec<u8>> {
    let envelope: Box<serde_json::value::RawValue> = serde_json::from_slice(envelope_json)
        .with_context(|| format!("envelope of leaf {index} is not JSON"))?;
    let json = serde_json::json!({
        "log_index": index,
        "leaf_hash": hex_hash(&record.leaf_hash()),
        "leaf": base64::engine::general_purpose::STANDARD.encode(leaf),
        "record": RecordJson::from(record),
        "envelope": envelope,
        "verifiers": verifiers_pem,
        "inclusion_proof": InclusionProof {
            log_index: index,
            tree_size: cp.tree_size,
            root_hash: hex_hash(&cp.root_hash),
            hashes: proof.iter().map(hex_hash).collect(),
        },
        "checkpoint": cp.note_text(),
    });
    Ok(serde_json::to_vec(&json)?)
}

/// Fsyncs a directory, so that renames into it are durable.
///
/// # Errors
///
/// When it cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("couldn't sync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pedigree_core::checkpoint::LogSigner;

    fn paths(previous_size: u64, tree_size: u64) -> Vec<String> {
        tiles_from(previous_size, tree_size)
            .map(|c| c.path())
            .collect()
    }

    #[test]
    fn tiles_from_lists_what_the_older_tree_did_not_hold_full() {
        assert!(paths(0, 0).is_empty());
        assert_eq!(
            paths(0, 300),
            [
                "tile/0/000",
                "tile/entries/000",
                "tile/0/001.p/44",
                "tile/entries/001.p/44",
                "tile/1/000.p/1"
            ]
        );
        assert_eq!(
            paths(300, 320),
            ["tile/0/001.p/64", "tile/entries/001.p/64", "tile/1/000.p/1"]
        );
        assert_eq!(
            paths(300, 512),
            ["tile/0/001", "tile/entries/001", "tile/1/000.p/2"]
        );
    }

    #[test]
    fn publish_writes_the_checkpoint_last_and_keeps_the_partials_readers_need() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = StaticDir::new(tmp.path());
        for width in [10, 44, 64] {
            dir.write(&format!("tile/0/001.p/{width}"), b"x").unwrap();
        }
        let signer = LogSigner::new(
            "test.example/log",
            ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        )
        .unwrap();
        // The file rules depend on the tree size only; any root will do.
        let cp = signer.sign(320, Hash([1; 32]));
        dir.publish(&cp, 300).unwrap();
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("tile/0/001.p"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            left,
            ["44", "64"],
            "width 10 is needed by neither checkpoint"
        );
        assert_eq!(dir.counts.removed, 1);
        assert_eq!(std::fs::read(tmp.path().join(CHECKPOINT)).unwrap(), cp.note);
        assert!(dir.has("tile/0/001.p/64"));
        assert!(!tmp.path().join("tile/0/001.p/.64.tmp").exists());
    }
}
