//! `pedigree proof`: write an entry's C2SP `tlog-proof@v1` file (its leaf record, its
//! inclusion proof and the log's published checkpoint with witness cosignatures), and
//! verify such a file offline.

use crate::cmd::key::{read_log_key, read_public_key};
use crate::cmd::witness::witness_policy;
use crate::output::Output;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use pedigree_core::bundle::Bundle;
use pedigree_core::entry::{envelope_digest, LeafRecord};
use pedigree_core::tlogproof::TlogProof;
use std::path::{Path, PathBuf};

/// Arguments of `pedigree proof`.
#[derive(Args, Debug)]
pub struct ProofArgs {
    /// Index of the entry to prove
    #[arg(required_unless_present = "verify", conflicts_with = "verify")]
    pub index: Option<u64>,
    /// Pedigree log URL to fetch the proof from
    #[arg(long, required_unless_present = "verify", conflicts_with = "verify")]
    pub log: Option<String>,
    /// File to write [default: <index>.tlog-proof]
    #[arg(long, conflicts_with = "verify")]
    pub out: Option<PathBuf>,
    /// Verify this proof file offline instead of fetching one
    #[arg(long, value_name = "FILE")]
    pub verify: Option<PathBuf>,
    /// The log's verifier key, or a file holding it: required with --verify; when
    /// fetching, the proof is checked with it before it is written
    #[arg(long, value_name = "VKEY")]
    pub log_key: Option<String>,
    /// A trusted witness's verifier key, or a file holding it (repeatable)
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// Cosignatures the checkpoint needs [default: every --witness key]
    #[arg(long, value_name = "K")]
    pub min_witnesses: Option<usize>,
    /// With --verify: the signed bundle the entry must be about
    #[arg(long, requires = "verify")]
    pub bundle: Option<PathBuf>,
    /// With --verify and --bundle: the signer's public key the entry must list
    #[arg(long, requires = "bundle")]
    pub key: Option<PathBuf>,
}

/// Runs `pedigree proof`.
///
/// # Errors
///
/// When the log fails to answer, the checkpoint does not cover the entry yet, or (with
/// `--verify`) any check fails.
pub fn run(args: ProofArgs, out: &Output) -> Result<()> {
    match &args.verify {
        Some(path) => verify(&args, path, out),
        None => fetch(&args, out),
    }
}

fn fetch(args: &ProofArgs, out: &Output) -> Result<()> {
    let (Some(index), Some(log)) = (args.index, args.log.as_deref()) else {
        bail!("give INDEX and --log URL, or --verify FILE");
    };
    let note = crate::client::published_checkpoint(log)?
        .ok_or_else(|| anyhow!("log {log} has no cosigned checkpoint yet; try again later"))?;
    let tree_size = crate::client::note_tree_size(&note)
        .ok_or_else(|| anyhow!("log {log} published a malformed checkpoint"))?;
    if index >= tree_size {
        bail!("entry {index} is not covered by the published checkpoint of tree size {tree_size} yet; try again later");
    }
    let proof = TlogProof {
        extra: Some(crate::client::leaf(log, index)?),
        index,
        hashes: crate::client::inclusion_proof(log, index, tree_size)?,
        checkpoint: note,
    };
    if let Some(key) = &args.log_key {
        let policy = witness_policy(&args.witnesses, args.min_witnesses, None)?;
        proof
            .verify(None, &read_log_key(key)?, &policy)
            .context("the log's proof does not verify")?;
    }
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{index}.tlog-proof")));
    std::fs::write(&path, proof.encode())
        .with_context(|| format!("couldn't write {}", path.display()))?;
    out.print(
        &serde_json::json!({"proof": path, "log_index": index, "tree_size": tree_size}),
        || {
            format!(
                "wrote {} (log index {index}, tree size {tree_size})",
                path.display()
            )
        },
    );
    Ok(())
}

fn verify(args: &ProofArgs, path: &Path, out: &Output) -> Result<()> {
    let log = read_log_key(
        args.log_key
            .as_deref()
            .ok_or_else(|| anyhow!("--verify needs --log-key"))?,
    )?;
    let policy = witness_policy(&args.witnesses, args.min_witnesses, None)?;
    let text = std::fs::read(path).with_context(|| format!("couldn't read {}", path.display()))?;
    let proof = TlogProof::parse(&text)
        .with_context(|| format!("couldn't parse proof {}", path.display()))?;
    let verified = proof
        .verify(None, &log, &policy)
        .with_context(|| format!("proof {} does not verify", path.display()))?;
    // The leaf record is authenticated now; with a bundle, check it is about it.
    let record = LeafRecord::decode(proof.extra.as_deref().unwrap_or_default())
        .context("the proven entry is not a pedigree leaf record")?;
    if let Some(bundle_path) = &args.bundle {
        let bytes = std::fs::read(bundle_path)
            .with_context(|| format!("couldn't read {}", bundle_path.display()))?;
        let bundle = Bundle::from_json(&bytes)
            .with_context(|| format!("couldn't parse bundle {}", bundle_path.display()))?;
        let digest = envelope_digest(&bundle.envelope.to_json());
        if record.envelope_sha256 != digest {
            bail!(
                "proof is for envelope {}, not {} of {}",
                hex::encode(record.envelope_sha256),
                hex::encode(digest),
                bundle_path.display()
            );
        }
        if let Some(key) = &args.key {
            let key = read_public_key(key)?;
            bundle
                .verify_with_key(&key)
                .context("bundle signature does not verify")?;
            if !record.signers.contains(&key.fingerprint()) {
                bail!("proven entry does not list signer {}", key.fingerprint());
            }
        }
    }
    let witnesses: Vec<String> = verified
        .cosignatures
        .iter()
        .map(|c| c.witness.clone())
        .collect();
    out.print(
        &serde_json::json!({
            "verified": true,
            "log_index": proof.index,
            "origin": verified.checkpoint.origin,
            "tree_size": verified.checkpoint.tree_size,
            "envelope_sha256": hex::encode(record.envelope_sha256),
            "witnesses": witnesses,
        }),
        || {
            format!(
                "verified: entry {} is in {} at tree size {}, cosigned by {} witness(es){}",
                proof.index,
                verified.checkpoint.origin,
                verified.checkpoint.tree_size,
                witnesses.len(),
                if witnesses.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", witnesses.join(", "))
                }
            )
        },
    );
    Ok(())
}
