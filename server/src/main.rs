//! `pedigree-server`: serves a Pedigree log over HTTP (`serve`, the default), checks a
//! stored log offline (`fsck`), backs it up and restores it (`backup`, `restore`) and
//! exports it as static tiles (`export-tiles`) or follows another log as a verifying
//! read-only mirror (`mirror`).

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use pedigree_core::checkpoint::{LogSigner, LogVerifier};
use pedigree_server::config::{Config, ServeArgs};
use pedigree_server::fsck::{self, FsckError};
use pedigree_server::service;
use pedigree_server::storage::RocksStore;
use std::path::PathBuf;
use std::process::ExitCode;

/// Pedigree transparency log server for ML supply-chain attestations.
///
/// Without a command, serves the log: `pedigree-server --data-dir DIR` is
/// `pedigree-server serve --data-dir DIR`.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeCmd,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the log over HTTP (the default)
    Serve(Box<ServeCmd>),
    /// Check a stopped log's store offline: every leaf, hash, envelope, key and index row
    ///
    /// Every stored leaf, Merkle hash, envelope, signer key, dedup and index row is
    /// checked against the others and against the signed checkpoint (spec/storage.md
    /// section 5). Exits 0 when the store is consistent, 1 naming the first
    /// inconsistency (column family, key, expected and found), 2 when the check could
    /// not run.
    Fsck(FsckArgs),
    /// Copy a log consistently while its server keeps appending (spec/storage.md section 6)
    ///
    /// The running server writes a RocksDB checkpoint through its admin socket
    /// (<data-dir>/admin.sock); with no server running, this command opens the store
    /// itself. The copy and the signing key (mode 0600, unless --without-key) go to a new
    /// or empty directory, and the copy is checked like `fsck` before this exits 0.
    Backup(pedigree_server::backup::BackupArgs),
    /// Restore a backup into a new or empty data directory, and check it like `fsck`
    Restore(pedigree_server::backup::RestoreArgs),
    /// Write the log as static C2SP tiles, entry bundles, entries and checkpoint
    /// (spec/api.md section 7); run again to add what is new
    ExportTiles(pedigree_server::export::ExportArgs),
    /// Run a read-only replica that follows a primary and verifies everything it copies
    /// (spec/api.md section 7)
    Mirror(pedigree_server::mirror::MirrorArgs),
}

#[derive(Args, Debug)]
struct ServeCmd {
    #[command(flatten)]
    serve: ServeArgs,
    /// Print the effective configuration as TOML and exit
    #[arg(long)]
    print_config: bool,
}

#[derive(Args, Debug)]
struct FsckArgs {
    /// Data directory of the log to check (stop its server first, or check a copy)
    #[arg(long, env = "PEDIGREE_DATA_DIR")]
    data_dir: PathBuf,
    /// The log's verifier key in C2SP note form, as the server prints it at start; with
    /// it, fsck needs no private key [default: derived from --signing-key]
    #[arg(long)]
    log_key: Option<String>,
    /// Checkpoint signing key to derive the verifier key from
    /// [default: <data-dir>/log-signing.key]
    #[arg(long, conflicts_with = "log_key")]
    signing_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Fsck(args)) => return fsck_main(&args),
        Some(Command::Backup(args)) => pedigree_server::backup::run_backup(&args)
            .map(|report| print!("{report}"))
            .context("backup failed"),
        Some(Command::Restore(args)) => pedigree_server::backup::run_restore(&args)
            .map(|report| print!("{report}"))
            .context("restore failed"),
        Some(Command::Mirror(args)) => {
            init_tracing();
            pedigree_server::mirror::run(&args).context("mirror failed")
        }
        Some(Command::ExportTiles(args)) => pedigree_server::export::run(&args)
            .map(|report| print!("{report}"))
            .context("export failed"),
        Some(Command::Serve(cmd)) => serve(*cmd),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pedigree-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cmd: ServeCmd) -> Result<()> {
    let config = match Config::resolve(&cmd.serve) {
        Ok(c) => c,
        Err(e) => bail!("invalid configuration: {e}"),
    };
    if cmd.print_config {
        print!(
            "{}",
            toml::to_string(&config).context("couldn't print configuration")?
        );
        return Ok(());
    }
    pedigree_server::telemetry::init(config.log_format);
    let log = service::open_log(&config)?;
    service::serve(config, log)
}

fn fsck_main(args: &FsckArgs) -> ExitCode {
    let dir = args.data_dir.display();
    match run_fsck(args) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => match e.downcast_ref::<FsckError>() {
            Some(FsckError::Damaged(d)) => {
                eprintln!("pedigree-server fsck: {dir}: damage found: {d}");
                ExitCode::from(1)
            }
            _ => {
                eprintln!("pedigree-server fsck: {dir}: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run_fsck(args: &FsckArgs) -> Result<String> {
    let db = args.data_dir.join("db");
    if !db.is_dir() {
        bail!("no log store: {} is not a directory", db.display());
    }
    let store = RocksStore::open_read_only(&db)
        .with_context(|| format!("couldn't open log store {}", db.display()))?;
    let verifier = match &args.log_key {
        Some(vkey) => LogVerifier::from_vkey(vkey).context("invalid --log-key")?,
        None => {
            let path = args
                .signing_key
                .clone()
                .unwrap_or_else(|| args.data_dir.join("log-signing.key"));
            let key = service::read_signing_key(&path)
                .context("pass the log's verifier key with --log-key instead")?;
            // A signing key names no log: take the name from the stored checkpoint,
            // whose signature then proves it.
            let origin =
                fsck::stored_origin(&store)?.unwrap_or_else(|| "pedigree.local/empty".to_string());
            match LogSigner::new(&origin, key) {
                Ok(signer) => signer.verifier(),
                Err(e) => {
                    return Err(FsckError::Damaged(Box::new(fsck::Damage {
                        column: pedigree_server::storage::Column::Meta,
                        key: pedigree_server::layout::META_CHECKPOINT.to_vec(),
                        what: "checkpoint".into(),
                        expected: "a checkpoint whose first line is a valid origin".into(),
                        found: e.to_string(),
                    }))
                    .into())
                }
            }
        }
    };
    let summary = fsck::check(&store, &verifier)?;
    let dir = args.data_dir.display();
    let Some(cp) = &summary.checkpoint else {
        return Ok(format!(
            "pedigree-server fsck: {dir}: consistent (empty: no log was started here)\n"
        ));
    };
    let index_rows: Vec<String> = summary
        .index_rows
        .iter()
        .map(|(col, n)| format!("{col} {n}"))
        .collect();
    Ok(format!(
        "pedigree-server fsck: {dir}: consistent\n\
         \x20 origin         {}\n\
         \x20 checkpoint     tree size {}, root {}, signature by {} verified\n\
         \x20 leaves         {}, each rebuilt from its envelope and signer keys\n\
         \x20 stored hashes  {}, each recomputed from the leaf records\n\
         \x20 envelopes      {}\n\
         \x20 signer keys    {}\n\
         \x20 dedup rows     {}\n\
         \x20 index rows     {}\n",
        cp.origin,
        cp.tree_size,
        hex::encode(cp.root_hash.0),
        verifier.to_vkey(),
        summary.leaves,
        summary.stored_hashes,
        summary.envelopes,
        summary.keys,
        summary.dedup_rows,
        index_rows.join(", "),
    ))
}

/// Logs to stderr, filtered by `PEDIGREE_LOG` (default `info`).
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEDIGREE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
