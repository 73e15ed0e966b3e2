//! `pedigree-server export-tiles`: the log as static files that any static file server,
//! object store or CDN can serve on the same read URLs as the log server
//! (`spec/api.md` section 7).
//!
//! What is written, relative to the export directory:
//! - `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`: C2SP tlog-tiles, byte for
//!   byte what `GET /tile/...` answers;
//! - `api/v1/entries/<N>`: the JSON of `GET /api/v1/entries/<N>` (envelope, signer keys,
//!   leaf, and an inclusion proof against the checkpoint of the export that wrote it);
//! - `checkpoint`: the signed checkpoint note, written last.
//!
//! Incremental: tiles wholly below an earlier export's checkpoint are not visited,
//! files that exist are kept, and the writing rules of [`crate::staticdir`] keep the
//! directory servable while it grows.
//!
//! The store is read as a RocksDB secondary instance, so the server keeps appending
//! while the export runs; the export covers the checkpoint stored when it started.
//! What is checked before writing: the stored checkpoint's signature, its root
//! recomputed from the stored hashes, an earlier export's checkpoint being a prefix of
//! the same tree, every exported leaf hashing to its stored leaf hash, and every
//! exported envelope matching the digest in its leaf. Interior hashes of hash tiles are
//! copied as stored; `fsck` checks them all against the leaves.

use crate::api::hex_hash;
use crate::backup::{self, KeySource};
use crate::engine::{self, Hashes};
use crate::layout::{self, META_CHECKPOINT};
use crate::staticdir::{entry_json, tiles_from, StaticDir, ENTRIES_DIR};
use crate::storage::{Column, RocksStore, Store};
use anyhow::{bail, Context as _, Result};
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::entry::{self, LeafRecord};
use pedigree_core::keys::PublicKey;
use pedigree_core::merkle::{self, HashReader as _};
use pedigree_core::tiles::{self, TileCoord};
use std::path::{Path, PathBuf};

/// `pedigree-server export-tiles`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Data directory of the log to export (its server may keep running)
    #[arg(long, env = "PEDIGREE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Directory to write the static files to (created; an earlier export is extended)
    #[arg(long)]
    pub to: PathBuf,
    /// The log's verifier key (C2SP note form) [default: derived from --signing-key]
    #[arg(long)]
    pub log_key: Option<String>,
    /// Checkpoint signing key to derive the verifier key from
    /// [default: <data-dir>/log-signing.key]
    #[arg(long, conflicts_with = "log_key")]
    pub signing_key: Option<PathBuf>,
    /// Write only tiles and the checkpoint, not `api/v1/entries/<N>`
    #[arg(long)]
    pub no_entries: bool,
}

/// What one export run did.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// Tree size of the exported checkpoint.
    pub tree_size: u64,
    /// Tree size of the earlier export it extended (0 for the first).
    pub previous_tree_size: u64,
    /// Files written (tiles, bundles, entries, checkpoint).
    pub written: u64,
    /// Files that existed and were kept.
    pub kept: u64,
    /// Stale partial tiles removed.
    pub removed: u64,
}

/// Runs `pedigree-server export-tiles`; returns the report to print.
///
/// # Errors
///
/// As [`export`].
pub fn run(args: &ExportArgs) -> Result<String> {
    let key = match (&args.log_key, &args.signing_key) {
        (Some(vkey), _) => KeySource::VerifierKey(vkey.clone()),
        (None, Some(path)) => KeySource::SigningKey(path.clone()),
        (None, None) => KeySource::SigningKey(args.data_dir.join(backup::KEY_FILE)),
    };
    let r = export(&args.data_dir, &args.to, &key, !args.no_entries)?;
    Ok(format!(
        "pedigree-server export-tiles: {}: tree size {} (was {}), {} files written, {} kept, {} stale partial tiles removed\n",
        args.to.display(),
        r.tree_size,
        r.previous_tree_size,
        r.written,
        r.kept,
        r.removed
    ))
}

/// Exports the log of `data_dir` into `to`, extending an earlier export of the same log.
///
/// # Errors
///
/// When the store cannot be read, its checkpoint does not verify or match its hashes,
/// an earlier export in `to` is of another log or another history, or a write fails.
pub fn export(
    data_dir: &Path,
    to: &Path,
    key: &KeySource,
    with_entries: bool,
) -> Result<ExportReport> {
    let db = data_dir.join("db");
    if !db.join("CURRENT").is_file() {
        bail!("no log store in {}", db.display());
    }
    let scratch = std::env::temp_dir().join(format!(
        "pedigree-export-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let result = (|| {
        let store = RocksStore::open_secondary(&db, &scratch)
            .with_context(|| format!("couldn't open log store {}", db.display()))?;
        let verifier = backup::verifier_for(&store, key)?;
        Exporter {
            store: &store,
            out: StaticDir::new(to),
        }
        .run(&verifier, with_entries)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

struct Exporter<'a> {
    store: &'a RocksStore,
    out: StaticDir,
}

impl Exporter<'_> {
    fn run(mut self, verifier: &LogVerifier, with_entries: bool) -> Result<ExportReport> {
        let note = self
            .store
            .get(Column::Meta, META_CHECKPOINT)?
            .context("the store holds no checkpoint: no log was started")?;
        let cp = verifier
            .verify(&note)
            .context("the stored checkpoint does not verify with the log key")?;
        let hashes = Hashes::stored(self.store);
        let root = merkle::tree_hash(cp.tree_size, &hashes)?;
        if root != cp.root_hash {
            bail!(
                "stored hashes give root {} for tree size {}, the checkpoint says {}",
                hex_hash(&root),
                cp.tree_size,
                hex_hash(&cp.root_hash)
            );
        }
        let previous = self.previous(verifier, &cp)?;
        let previous_size = previous.as_ref().map_or(0, |p| p.tree_size);

        // Tiles wholly below the earlier export's checkpoint were written before it.
        for coord in tiles_from(previous_size, cp.tree_size) {
            let rel = coord.path();
            if self.out.has(&rel) {
                continue;
            }
            let data = if coord.entries {
                self.bundle(coord)?
            } else {
                coord.read_hash_tile(&hashes)?
            };
            self.out.write(&rel, &data)?;
        }
        if with_entries {
            for index in previous_size..cp.tree_size {
                self.entry(index, &cp)?;
            }
        }
        self.out.publish(&cp, previous_size)?;
        let c = self.out.counts;
        Ok(ExportReport {
            tree_size: cp.tree_size,
            previous_tree_size: previous_size,
            written: c.written,
            kept: c.kept,
            removed: c.removed,
        })
    }

    /// The checkpoint of an earlier export, which must be of this log and a prefix of
    /// the stored tree.
    fn previous(
        &self,
        verifier: &LogVerifier,
        cp: &SignedCheckpoint,
    ) -> Result<Option<SignedCheckpoint>> {
        let Some(old) = self
            .out
            .checkpoint(verifier)
            .context("export into a new directory")?
        else {
            return Ok(None);
        };
        if old.tree_size > cp.tree_size {
            bail!(
                "the export holds tree size {}, the store only {}: was the store restored from an older backup?",
                old.tree_size,
                cp.tree_size
            );
        }
        let root = merkle::tree_hash(old.tree_size, &Hashes::stored(self.store))?;
        if root != old.root_hash {
            bail!(
                "the export's checkpoint of tree size {} has root {}, the store's tree has {} at that size: another history",
                old.tree_size,
                hex_hash(&old.root_hash),
                hex_hash(&root)
            );
        }
        Ok(Some(old))
    }

    /// An entry bundle, each leaf checked against its stored leaf hash.
    fn bundle(&self, coord: TileCoord) -> Result<Vec<u8>> {
        let range = coord.leaf_range();
        let leaves = engine::bundle_leaves(self.store, &coord)?;
        let indexes: Vec<u64> = range
            .clone()
            .map(|i| merkle::stored_hash_index(0, i))
            .collect();
        let leaf_hashes = Hashes::stored(self.store)
            .read_hashes(&indexes)
            .context("couldn't read stored leaf hashes")?;
        let mut bundle = Vec::new();
        for ((i, want), leaf) in range.zip(leaf_hashes).zip(leaves) {
            if merkle::leaf_hash(&leaf) != want {
                bail!("leaf {i} does not hash to its stored leaf hash: run fsck");
            }
            tiles::push_bundle_entry(&mut bundle, &leaf)?;
        }
        Ok(bundle)
    }

    /// Writes `api/v1/entries/<index>` as the log server answers it, with an inclusion
    /// proof against `cp`.
    fn entry(&mut self, index: u64, cp: &SignedCheckpoint) -> Result<()> {
        let rel = format!("{ENTRIES_DIR}/{index}");
        if self.out.has(&rel) {
            return Ok(());
        }
        let leaf = self
            .store
            .get(Column::Leaves, &layout::u64_key(index))?
            .with_context(|| format!("leaf {index} is missing from the store"))?;
        let record = LeafRecord::decode(&leaf).with_context(|| format!("leaf {index}"))?;
        let envelope = self
            .store
            .get(Column::Envelopes, &record.envelope_sha256)?
            .with_context(|| format!("envelope of leaf {index} is missing"))?;
        if entry::envelope_digest(&envelope) != record.envelope_sha256 {
            bail!("envelope of leaf {index} does not match its digest in the leaf: run fsck");
        }
        let keys: Vec<Vec<u8>> = record.signers.iter().map(|f| f.0.to_vec()).collect();
        let mut verifiers = Vec::new();
        for (i, der) in self
            .store
            .multi_get(Column::Keys, &keys)?
            .into_iter()
            .enumerate()
        {
            let der = der.with_context(|| format!("signer key {i} of leaf {index} is missing"))?;
            let key = PublicKey::from_spki_der(&der)
                .with_context(|| format!("signer key {i} of leaf {index}"))?;
            verifiers.push(key.to_pem());
        }
        let proof = merkle::prove_inclusion(index, cp.tree_size, &Hashes::stored(self.store))?;
        let json = entry_json(index, &leaf, &record, &envelope, &verifiers, &proof, cp)?;
        self.out.write(&rel, &json)
    }
}
