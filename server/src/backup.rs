//! `pedigree-server backup` and `restore`: a consistent copy of a log taken while it
//! serves, and bringing such a copy back (`spec/storage.md` section 6).
//!
//! A backup directory holds `db/`, a RocksDB checkpoint of the store, and, unless left
//! out on purpose, `log-signing.key` (mode 0600). Without the key a restored log can be
//! read and checked with its verifier key but cannot append: whoever holds a backup
//! with the key can sign checkpoints for the log, so such backups must be kept as
//! carefully as the key itself.
//!
//! Consistency: the checkpoint is taken by the process that owns the store (the running
//! server through its admin socket, [`crate::admin`], or this command when no server
//! runs), and every batch is one atomic RocksDB write holding its leaves, hashes and
//! signed checkpoint note, so the copy holds whole batches and the note covering them.
//! Both commands then prove it with the full store check of [`crate::fsck`] before
//! reporting success, so a backup that exists is a backup that verified.

use crate::admin::{self, AdminError};
use crate::fsck::{self, Summary};
use crate::service;
use crate::staticdir::sync_dir;
use crate::storage::RocksStore;
use anyhow::{bail, Context as _, Result};
use pedigree_core::checkpoint::{LogSigner, LogVerifier};
use std::path::{Path, PathBuf};

/// File name of the signing key in a data or backup directory.
pub const KEY_FILE: &str = "log-signing.key";

/// How to verify the copied store's checkpoint.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// The log's verifier key in C2SP note form.
    VerifierKey(String),
    /// The checkpoint signing key file; the origin is taken from the stored checkpoint
    /// and proven by its signature.
    SigningKey(PathBuf),
}

/// What a backup or restore produced, as checked.
#[derive(Debug)]
pub struct Report {
    /// The full store check of the copy.
    pub summary: Summary,
    /// Whether the running server took the copy (`false`: no server ran, this process
    /// opened the store itself). Always `false` for a restore.
    pub online: bool,
    /// Whether the signing key was copied.
    pub key_copied: bool,
}

/// Copies the log of `data_dir` into the new or empty directory `to` while its server,
/// if any, keeps appending; copies the signing key at `signing_key` unless it is
/// `None`; then checks the copy against `key` with [`fsck::check`].
///
/// # Errors
///
/// When `to` is not empty, no store is there, the server refuses, the key has loose
/// permissions, or the copy does not check out.
pub fn backup(
    data_dir: &Path,
    to: &Path,
    signing_key: Option<&Path>,
    key: &KeySource,
) -> Result<Report> {
    let source_db = data_dir.join("db");
    if !source_db.join("CURRENT").is_file() {
        bail!("no log store in {}", source_db.display());
    }
    let to = prepare_empty_dir(to, "backup target")?;
    let target_db = to.join("db");
    let online = match admin::request_checkpoint(data_dir, &target_db) {
        Ok(_) => true,
        Err(AdminError::NotRunning { .. }) => {
            // No server answers: take the copy ourselves. Opening for writing takes the
            // store's lock, so this fails (rather than copying a store in use) if a
            // server without an admin socket holds it.
            let store = RocksStore::open(&source_db).with_context(|| {
                format!(
                    "couldn't open log store {} (no server answers on {}; if one runs, \
                     it has no admin socket)",
                    source_db.display(),
                    admin::socket_path(data_dir).display()
                )
            })?;
            store
                .checkpoint_to(&target_db)
                .with_context(|| format!("couldn't create checkpoint {}", target_db.display()))?;
            false
        }
        Err(e) => return Err(e).context("the running server couldn't take the backup"),
    };
    let checked = (|| {
        let key_copied = match signing_key {
            Some(path) => {
                copy_private_key(path, &to.join(KEY_FILE))?;
                true
            }
            None => false,
        };
        let summary = verify_store(&target_db, key).context("the backup does not check out")?;
        sync_dir(&to)?;
        Ok(Report {
            summary,
            online,
            key_copied,
        })
    })();
    if checked.is_err() {
        // A backup that exists is one that checked out.
        let _ = std::fs::remove_dir_all(&target_db);
        let _ = std::fs::remove_file(to.join(KEY_FILE));
    }
    checked
}

/// Restores the backup in `from` into `data_dir`, which must be new or empty, copying
/// every file (a restored log shares nothing with its backup), then checks it against
/// `key`. On a failed check the restored files are removed again, so that no server
/// starts on a store that did not verify.
///
/// # Errors
///
/// When `data_dir` is not empty, `from` holds no backup, a key has loose permissions,
/// or the restored store does not check out.
pub fn restore(from: &Path, data_dir: &Path, key: &KeySource) -> Result<Report> {
    let source_db = from.join("db");
    if !source_db.join("CURRENT").is_file() {
        bail!(
            "no backup in {}: {} holds no store",
            from.display(),
            source_db.display()
        );
    }
    let data_dir = prepare_empty_dir(data_dir, "restore target")?;
    let target_db = data_dir.join("db");
    let source_key = from.join(KEY_FILE);
    let result = (|| {
        copy_dir(&source_db, &target_db)?;
        let key_copied = source_key.exists();
        if key_copied {
            copy_private_key(&source_key, &data_dir.join(KEY_FILE))?;
        }
        let key = match key {
            KeySource::SigningKey(path) if key_copied && path == &source_key => {
                KeySource::SigningKey(data_dir.join(KEY_FILE))
            }
            other => other.clone(),
        };
        let summary =
            verify_store(&target_db, &key).context("the restored store does not check out")?;
        sync_dir(&data_dir)?;
        Ok(Report {
            summary,
            online: false,
            key_copied,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&target_db);
        let _ = std::fs::remove_file(data_dir.join(KEY_FILE));
    }
    result
}

/// Runs the full store check on the store at `db`, opened read-only.
///
/// # Errors
///
/// When the store cannot be opened, the key cannot be read, or the check finds damage.
pub fn verify_store(db: &Path, key: &KeySource) -> Result<Summary> {
    let store = RocksStore::open_read_only(db)
        .with_context(|| format!("couldn't open log store {}", db.display()))?;
    let verifier = verifier_for(&store, key)?;
    Ok(fsck::check(&store, &verifier)?)
}

/// The verifier of the log in `store`, from a verifier key or a signing key.
///
/// # Errors
///
/// When the key cannot be read or parsed, or the stored origin is not a valid origin.
pub fn verifier_for(store: &RocksStore, key: &KeySource) -> Result<LogVerifier> {
    match key {
        KeySource::VerifierKey(vkey) => LogVerifier::from_vkey(vkey).context("invalid --log-key"),
        KeySource::SigningKey(path) => {
            let signing = service::read_signing_key(path)?;
            let origin =
                fsck::stored_origin(store)?.unwrap_or_else(|| "pedigree.local/empty".to_string());
            Ok(LogSigner::new(&origin, signing)
                .context("the stored checkpoint's origin is invalid")?
                .verifier())
        }
    }
}

/// Creates `dir` (mode 0700) or accepts it if it is an empty directory; returns its
/// absolute path (the server writes the checkpoint, so it needs one).
fn prepare_empty_dir(dir: &Path, what: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{what} {} is not empty", dir.display());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("couldn't create {what} {}", dir.display()))?;
        }
        Err(e) => {
            return Err(e).with_context(|| format!("{what} {} is not a directory", dir.display()))
        }
    }
    std::fs::canonicalize(dir).with_context(|| format!("couldn't resolve {}", dir.display()))
}

/// Copies a private key file, refusing one that others can read, and writes the copy
/// with mode 0600 (created, never overwritten).
fn copy_private_key(from: &Path, to: &Path) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // Reads and parses it: refuses loose permissions and a file that is not a key.
    service::read_signing_key(from)?;
    let bytes = std::fs::read(from).with_context(|| format!("couldn't read {}", from.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("couldn't create {}", to.display()))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("couldn't write {}", to.display()))
}

/// Copies the files of a RocksDB checkpoint (a flat directory), fsyncing each.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir(to).with_context(|| format!("couldn't create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("couldn't read {}", from.display()))?
    {
        let entry = entry?;
        let src = entry.path();
        if !entry.file_type()?.is_file() {
            bail!("unexpected non-file {} in the backup", src.display());
        }
        let dst = to.join(entry.file_name());
        std::fs::copy(&src, &dst)
            .with_context(|| format!("couldn't copy {} to {}", src.display(), dst.display()))?;
        std::fs::File::open(&dst)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("couldn't sync {}", dst.display()))?;
    }
    sync_dir(to)
}

/// `pedigree-server backup`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Data directory of the log to back up (its server may keep running)
    #[arg(long, env = "PEDIGREE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// New or empty directory to write the backup to
    #[arg(long)]
    pub to: PathBuf,
    /// Checkpoint signing key to copy into the backup [default: <data-dir>/log-signing.key]
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// Leave the signing key out of the backup; check it with --log-key instead
    #[arg(long, requires = "log_key")]
    pub without_key: bool,
    /// The log's verifier key (C2SP note form) to check the backup with
    /// [default: derived from the signing key]
    #[arg(long)]
    pub log_key: Option<String>,
}

/// `pedigree-server restore`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Backup directory written by `pedigree-server backup`
    #[arg(long)]
    pub from: PathBuf,
    /// New or empty data directory to restore into
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The log's verifier key (C2SP note form) to check the restored store with
    /// [default: derived from the backup's signing key]
    #[arg(long)]
    pub log_key: Option<String>,
}

/// Runs `pedigree-server backup`; returns the report to print.
///
/// # Errors
///
/// As [`backup`].
pub fn run_backup(args: &BackupArgs) -> Result<String> {
    let key_path = args
        .signing_key
        .clone()
        .unwrap_or_else(|| args.data_dir.join(KEY_FILE));
    let key = match &args.log_key {
        Some(vkey) => KeySource::VerifierKey(vkey.clone()),
        None => KeySource::SigningKey(key_path.clone()),
    };
    let copy_key = (!args.without_key).then_some(key_path.as_path());
    let report = backup(&args.data_dir, &args.to, copy_key, &key)?;
    Ok(describe("backup", &args.to, &report))
}

/// Runs `pedigree-server restore`; returns the report to print.
///
/// # Errors
///
/// As [`restore`].
pub fn run_restore(args: &RestoreArgs) -> Result<String> {
    let key = match &args.log_key {
        Some(vkey) => KeySource::VerifierKey(vkey.clone()),
        None => {
            let path = args.from.join(KEY_FILE);
            if !path.exists() {
                bail!(
                    "the backup {} holds no signing key: pass the log's verifier key with --log-key",
                    args.from.display()
                );
            }
            KeySource::SigningKey(path)
        }
    };
    let report = restore(&args.from, &args.data_dir, &key)?;
    let mut out = describe("restore", &args.data_dir, &report);
    if !report.key_copied {
        out.push_str(&format!(
            "  note           no signing key in the backup: put the log's key at {} before serving\n",
            args.data_dir.join(KEY_FILE).display()
        ));
    }
    Ok(out)
}

fn describe(what: &str, dir: &Path, report: &Report) -> String {
    let checked = match &report.summary.checkpoint {
        Some(cp) => format!(
            "tree size {}, root {}, origin {}",
            cp.tree_size,
            hex::encode(cp.root_hash.0),
            cp.origin
        ),
        None => "empty (no log was started)".to_string(),
    };
    format!(
        "pedigree-server {what}: {}: written and checked\n\
         \x20 checkpoint     {checked}\n\
         \x20 leaves         {}, each rebuilt from its envelope (fsck)\n\
         \x20 taken by       {}\n\
         \x20 signing key    {}\n",
        dir.display(),
        report.summary.leaves,
        if report.online {
            "the running server (online)"
        } else {
            "this command (no server was running)"
        },
        if report.key_copied {
            "copied (mode 0600): keep this directory as safe as the key"
        } else {
            "not copied"
        },
    )
}
