//! `pedigree sign`, `pedigree verify` and `pedigree hash`: OpenSSF model signing (OMS
//! v1.0) signatures of model directories and files, compatible with the reference
//! tool (`model_signing` 1.1.1, key method).
//!
//! The formats and checks are core's ([`pedigree_core::oms`],
//! [`pedigree_core::bundle`]); this module reads keys and files, hashes the model
//! ([`crate::model`]), talks to the log and prints.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use pedigree_core::bundle::Bundle;
use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::oms::{HashAlgorithm, Method, Mismatch, OmsStatement, DEFAULT_SHARD_SIZE_BYTES};
use serde_json::{json, Value};

use crate::cmd::key::{read_log_key, read_private_key, read_public_key};
use crate::cmd::witness::witness_policy;
use crate::model::{self, HashOptions};
use crate::output::Output;

/// Options shared by `sign` and `hash`: how the model is serialized.
#[derive(Args, Debug)]
pub struct SerializeArgs {
    /// Hash of every file or shard: sha256, blake2b or blake3
    #[arg(long, default_value = "sha256")]
    pub hash: HashAlgorithm,
    /// Hash files in shards of this many bytes (the OMS shards method) instead of whole
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_size: Option<u64>,
    /// Shard the files with the spec's default shard size (10^9 bytes)
    #[arg(long, conflicts_with = "shard_size")]
    pub shards: bool,
    /// Paths to leave out, relative to the model root (.git, .gitattributes, .github
    /// and .gitignore always are)
    #[arg(long = "ignore-paths", value_name = "PATH", num_args = 1..)]
    pub ignore_paths: Vec<String>,
    /// Follow symbolic links (refused by default)
    #[arg(long)]
    pub allow_symlinks: bool,
}

/// Arguments of `pedigree sign`.
#[derive(Args, Debug)]
pub struct SignArgs {
    /// The model: a directory or a single file
    pub model_path: PathBuf,
    /// Private key (PEM): ECDSA P-256 for the reference tool to verify, or Ed25519
    #[arg(long)]
    pub key: PathBuf,
    /// Where to write the signature bundle (left out of the model if inside it)
    #[arg(long, default_value = "model.sig")]
    pub signature: PathBuf,
    #[command(flatten)]
    pub serialize: SerializeArgs,
    /// Also submit the signature to this Pedigree log and keep its receipt in the bundle
    #[arg(long, value_name = "URL")]
    pub log: Option<String>,
    /// With --log: the log's verifier key (or a file holding it); the receipt must verify
    #[arg(long, value_name = "VKEY", requires = "log")]
    pub log_key: Option<String>,
}

/// Arguments of `pedigree verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The model: a directory or a single file
    pub model_path: PathBuf,
    /// The signature bundle
    #[arg(long)]
    pub signature: PathBuf,
    /// Public key (PEM) the signature must verify with
    #[arg(long)]
    pub key: PathBuf,
    /// Accept files the signature does not list (every listed file is still checked)
    #[arg(long)]
    pub ignore_unsigned_files: bool,
    /// More paths to leave out, relative to the model root
    #[arg(long = "ignore-paths", value_name = "PATH", num_args = 1..)]
    pub ignore_paths: Vec<String>,
    /// Also require a Pedigree log receipt that verifies with this log verifier key
    /// (`<origin>+<id>+<key>`, or a file holding it)
    #[arg(long, value_name = "VKEY")]
    pub log_key: Option<String>,
    /// With --log-key: a trusted witness's verifier key, or a file holding it
    /// (repeatable); the receipt's checkpoint must carry its cosignature
    #[arg(long = "witness", value_name = "VKEY", requires = "log_key")]
    pub witnesses: Vec<String>,
    /// Cosignatures from --witness keys each receipt's checkpoint needs
    /// [default: every --witness key]
    #[arg(long, value_name = "K", requires = "log_key")]
    pub min_witnesses: Option<usize>,
    /// Also scan the model's files once the signature verifies, and fail when one is
    /// unsafe, unscannable or of an unknown format (spec/scan.md)
    #[arg(long)]
    pub scan: bool,
}

/// Arguments of `pedigree hash`.
#[derive(Args, Debug)]
pub struct HashArgs {
    /// The model: a directory or a single file
    pub model_path: PathBuf,
    #[command(flatten)]
    pub serialize: SerializeArgs,
}

fn show_progress(out: &Output) -> bool {
    !out.json && std::io::stderr().is_terminal()
}

fn hash_options(model: &Path, args: &SerializeArgs, out: &Output) -> Result<HashOptions> {
    let method = match (args.shard_size, args.shards) {
        (Some(shard_size_bytes), _) => Method::Shards { shard_size_bytes },
        (None, true) => Method::Shards {
            shard_size_bytes: DEFAULT_SHARD_SIZE_BYTES,
        },
        (None, false) => Method::Files,
    };
    let ignore_paths = args
        .ignore_paths
        .iter()
        .map(|p| model::ignore_path_arg(model, p))
        .collect::<Result<_>>()?;
    Ok(HashOptions {
        method,
        hash: args.hash,
        ignore_paths,
        allow_symlinks: args.allow_symlinks,
        progress: show_progress(out),
    })
}

fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("pedigree: warning: {warning}");
    }
}

fn method_json(method: Method) -> Value {
    match method {
        Method::Files => json!({"method": "files"}),
        Method::Shards { shard_size_bytes } => {
            json!({"method": "shards", "shard_size": shard_size_bytes})
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a
/// crash never leaves half a signature.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("couldn't write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("couldn't write {}", path.display())
    })
}

/// Runs `pedigree sign`.
///
/// # Errors
///
/// When the key or model cannot be read, the model is empty, or the log refuses the
/// signature or answers with a receipt that does not verify.
pub fn sign(args: SignArgs, out: &Output) -> Result<()> {
    let key = read_private_key(&args.key)?;
    let public = key.public_key();
    let mut options = hash_options(&args.model_path, &args.serialize, out)?;
    if let Some(inside) = model::path_inside_model(&args.model_path, &args.signature) {
        options.ignore_paths.push(inside);
    }
    let log_verifier = args.log_key.as_deref().map(read_log_key).transpose()?;

    let (manifest, files) = model::build_manifest(&args.model_path, &options)?;
    print_warnings(&files.warnings);
    let statement = OmsStatement {
        model_name: model::model_name(&args.model_path),
        manifest,
    };
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_payload(), &[&key]);
    let mut bundle = Bundle::new(envelope, &public);

    if let Some(url) = &args.log {
        let receipt = crate::client::submit(url, &bundle.envelope, std::slice::from_ref(&public))
            .context("couldn't log the signature")?;
        let receipt = crate::cmd::attest::with_cosigned_checkpoint(url, receipt, 10);
        if let Some(log) = &log_verifier {
            receipt
                .verify(&bundle.envelope, log, Some(&public.fingerprint()))
                .context("the log's receipt does not verify")?;
        }
        bundle.receipts.push(receipt);
    }
    write_atomically(&args.signature, &bundle.to_json())?;

    let subject = statement.subject_digest().to_string();
    let serialization = statement.manifest.serialization();
    let resources = statement.manifest.resources().len();
    let log_index = bundle.receipts.first().map(|r| r.log_index);
    let mut result = json!({
        "signature": args.signature,
        "subject": {"name": statement.model_name, "digest": subject},
        "hash_type": serialization.hash_type.name(),
        "files": files.files.len(),
        "resources": resources,
        "signer": public.fingerprint().to_string(),
        "log_index": log_index,
    });
    merge(&mut result, method_json(serialization.method));
    out.print(&result, || {
        let mut text = format!(
            "signed {} ({} files, {} resources, {}/{}) into {}\nsubject {subject}",
            args.model_path.display(),
            files.files.len(),
            resources,
            serialization.method.name(),
            serialization.hash_type,
            args.signature.display()
        );
        if let Some(index) = log_index {
            text.push_str(&format!("\nlogged at index {index}"));
        }
        text
    });
    Ok(())
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// Runs `pedigree verify`. With `--json`, a failure also prints
/// `{"verified": false, "error": ...}`.
///
/// # Errors
///
/// On the first failed check, with a one-line reason.
pub fn verify(args: VerifyArgs, out: &Output) -> Result<()> {
    match verify_model(&args, out) {
        Ok(result) => {
            out.print(&result, || {
                format!(
                    "verified {} against {}\nsubject {}",
                    args.model_path.display(),
                    args.signature.display(),
                    result["subject"]["digest"].as_str().unwrap_or_default()
                )
            });
            Ok(())
        }
        Err(err) => {
            if out.json {
                println!(
                    "{}",
                    json!({"verified": false, "error": format!("{err:#}")})
                );
            }
            Err(err)
        }
    }
}

fn verify_model(args: &VerifyArgs, out: &Output) -> Result<Value> {
    let bytes = std::fs::read(&args.signature)
        .with_context(|| format!("couldn't read signature {}", args.signature.display()))?;
    let bundle = Bundle::from_json(&bytes)
        .with_context(|| format!("couldn't parse signature {}", args.signature.display()))?;
    let key = read_public_key(&args.key)?;
    bundle
        .verify_with_key(&key)
        .with_context(|| format!("signature does not verify with key {}", args.key.display()))?;
    let statement = OmsStatement::from_envelope(&bundle.envelope)
        .context("signature is not a valid OMS signature")?;

    let mut receipts = Vec::new();
    if let Some(log_key) = &args.log_key {
        let log = read_log_key(log_key)?;
        let witnesses = witness_policy(&args.witnesses, args.min_witnesses, None)?;
        if bundle.receipts.is_empty() {
            bail!("signature has no pedigree log receipt");
        }
        let mut first_error = None;
        for receipt in &bundle.receipts {
            let checked = receipt
                .verify(&bundle.envelope, &log, Some(&key.fingerprint()))
                .map_err(|e| {
                    anyhow::Error::new(e).context("no log receipt verifies with the log key")
                })
                .and_then(|(checkpoint, _)| {
                    let cosigned = witnesses
                        .check(receipt.checkpoint.as_bytes())
                        .map_err(|e| {
                            anyhow::Error::new(e)
                                .context("the log receipt's checkpoint is not witnessed")
                        })?;
                    Ok((checkpoint, cosigned))
                });
            match checked {
                Ok((checkpoint, cosigned)) => receipts.push(json!({
                    "origin": checkpoint.origin,
                    "log_index": receipt.log_index,
                    "tree_size": checkpoint.tree_size,
                    "witnesses": cosigned.iter().map(|c| c.witness.clone()).collect::<Vec<_>>(),
                })),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if receipts.is_empty() {
            return Err(first_error.expect("a receipt was tried"));
        }
    }

    let manifest = &statement.manifest;
    let serialization = manifest.serialization();
    let mut ignore_paths = serialization.ignore_paths.clone();
    for path in &args.ignore_paths {
        ignore_paths.push(model::ignore_path_arg(&args.model_path, path)?);
    }
    if let Some(inside) = model::path_inside_model(&args.model_path, &args.signature) {
        ignore_paths.push(inside);
    }
    let files = model::walk(
        &args.model_path,
        &ignore_paths,
        serialization.allow_symlinks,
    )?;
    print_warnings(&files.warnings);
    let units = manifest
        .plan(&files.files, args.ignore_unsigned_files)
        .map_err(|problems| mismatch_error(&problems))?;
    let computed = model::hash_units(&files, &units, serialization.hash_type, show_progress(out))?;
    let problems = manifest.compare(&computed);
    if !problems.is_empty() {
        return Err(mismatch_error(&problems));
    }

    let scan = if args.scan {
        let scan = crate::cmd::scan::scan_model_files(&files)?;
        scan.require_pass(false).context("model scan failed")?;
        Some(scan.counts)
    } else {
        None
    };

    let mut result = json!({
        "verified": true,
        "model": args.model_path,
        "signature": args.signature,
        "subject": {"name": statement.model_name, "digest": statement.subject_digest().to_string()},
        "hash_type": serialization.hash_type.name(),
        "resources": manifest.resources().len(),
        "signer": key.fingerprint().to_string(),
        "log_receipts": receipts,
    });
    if let Some(counts) = scan {
        merge(&mut result, json!({"scan": counts}));
    }
    merge(&mut result, method_json(serialization.method));
    Ok(result)
}

/// One line naming the first problem and how many more there are.
fn mismatch_error(problems: &[Mismatch]) -> anyhow::Error {
    let first = &problems[0];
    match problems.len() {
        1 => anyhow!("model does not match its signature: {first}"),
        n => anyhow!(
            "model does not match its signature: {first} (and {} more problem{})",
            n - 1,
            if n == 2 { "" } else { "s" }
        ),
    }
}

/// Runs `pedigree hash`: prints the model's OMS root digest.
///
/// # Errors
///
/// When the model cannot be read or is empty.
pub fn hash(args: HashArgs, out: &Output) -> Result<()> {
    let options = hash_options(&args.model_path, &args.serialize, out)?;
    let digest = model::model_digest(&args.model_path, &options)?.to_string();
    let mut result = json!({"digest": digest, "hash_type": options.hash.name()});
    merge(&mut result, method_json(options.method));
    out.print(&result, || digest.clone());
    Ok(())
}
