//! `pedigree attest` (record one step of an artifact's life as signed SLSA provenance)
//! and `pedigree submit` (log an existing bundle, or refresh its receipt: submitting
//! again is idempotent and fetches a receipt against the newest cosigned checkpoint).

use crate::client::Cosigned;
use crate::cmd::key::{read_private_key, read_public_key};
use crate::output::Output;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use pedigree_core::bundle::Bundle;
use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::receipt::LogReceipt;
use pedigree_core::slsa::Step;
use pedigree_core::statement::{Digest, ResourceDescriptor, Statement, STATEMENT_TYPE_V1};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `pedigree attest`.
#[derive(Args, Debug)]
pub struct AttestArgs {
    /// dataset, train, finetune, quantize, evaluate, deploy, or custom (with --build-type)
    pub step: String,
    /// What the step produced: a file, a model directory, or a digest like sha256:<hex>
    #[arg(long = "subject", required = true)]
    pub subjects: Vec<String>,
    /// What the step consumed (the previous steps' subjects)
    #[arg(long = "material")]
    pub materials: Vec<String>,
    /// Private key that signs the attestation
    #[arg(long)]
    pub key: PathBuf,
    /// Step parameter KEY=VALUE (VALUE parsed as JSON when it is JSON, else text)
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, serde_json::Value)>,
    /// Builder id URI [default: derived from the signing key]
    #[arg(long)]
    pub builder: Option<String>,
    /// Build type URI for a custom step
    #[arg(long)]
    pub build_type: Option<String>,
    /// Submit to this Pedigree log and record its receipt in the bundle
    #[arg(long)]
    pub log: Option<String>,
    /// Bundle file to write [default: <step>.bundle.json]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --log: how long to wait for a witness-cosigned checkpoint to cover the
    /// entry when the log publishes cosigned checkpoints
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub witness_wait: u64,
}

/// Replaces a receipt against the log's own checkpoint with one against the checkpoint
/// the log publishes with witness cosignatures, when it publishes such checkpoints
/// (`spec/policy.md` section 5). Waits up to `wait_secs` for one to cover the entry;
/// if none does, keeps the receipt and says how to refresh it. A log that does not
/// answer `/checkpoint` keeps the receipt as it is: it is valid, only not witnessed.
pub fn with_cosigned_checkpoint(log: &str, receipt: LogReceipt, wait_secs: u64) -> LogReceipt {
    match crate::client::cosigned_receipt(log, &receipt, Duration::from_secs(wait_secs)) {
        Ok(Cosigned::Receipt(r)) => r,
        Ok(Cosigned::NoWitnesses) | Err(_) => receipt,
        Ok(Cosigned::NotYet) => {
            eprintln!(
                "pedigree: warning: no witness-cosigned checkpoint covers log index {} yet; the receipt is against the log's own checkpoint (run `pedigree submit` on the bundle later to refresh it)",
                receipt.log_index
            );
            receipt
        }
    }
}

fn parse_param(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s:?} has an empty key"));
    }
    let value =
        serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// Names an artifact given on the command line: a digest as is, a path by its digest
/// (a directory by its OMS root digest, a file by SHA-256).
///
/// # Errors
///
/// When the argument is neither a valid digest nor a readable path.
pub fn resolve_artifact(arg: &str) -> Result<(String, Digest)> {
    if let Ok(d) = arg.parse::<Digest>() {
        return Ok((arg.to_string(), d));
    }
    let path = Path::new(arg);
    if !path.exists() {
        bail!("{arg:?} is neither a digest (sha256:<hex>) nor an existing path");
    }
    let name = path
        .file_name()
        .map_or_else(|| arg.to_string(), |n| n.to_string_lossy().into_owned());
    Ok((name, crate::model::artifact_digest(path)?))
}

fn descriptor(name: String, d: &Digest) -> ResourceDescriptor {
    ResourceDescriptor {
        name: Some(name),
        digest: [(d.algorithm.clone(), d.value.clone())]
            .into_iter()
            .collect(),
        ..ResourceDescriptor::default()
    }
}

/// Runs `pedigree attest`.
///
/// # Errors
///
/// On a bad argument, an unreadable key or artifact, or a refused submission.
pub fn run(args: AttestArgs, out: &Output) -> Result<()> {
    let build_type = match (args.step.parse::<Step>(), &args.build_type) {
        (_, Some(bt)) => bt.clone(),
        (Ok(step), None) => step.build_type().to_string(),
        (Err(_), None) => bail!("unknown step {:?}: use one of dataset, train, finetune, quantize, evaluate, deploy, or give --build-type", args.step),
    };
    let key = read_private_key(&args.key)?;
    let public = key.public_key();
    let builder = args
        .builder
        .clone()
        .unwrap_or_else(|| format!("https://pedigree.dev/builder/key/{}", public.fingerprint()));
    let subjects = args
        .subjects
        .iter()
        .map(|s| resolve_artifact(s).map(|(n, d)| descriptor(n, &d)))
        .collect::<Result<Vec<_>>>()?;
    let materials = args
        .materials
        .iter()
        .map(|s| resolve_artifact(s).map(|(n, d)| descriptor(n, &d)))
        .collect::<Result<Vec<_>>>()?;
    let params: serde_json::Map<String, serde_json::Value> = args.params.iter().cloned().collect();
    let statement = serde_json::json!({
        "_type": STATEMENT_TYPE_V1,
        "subject": subjects,
        "predicateType": pedigree_core::slsa::PREDICATE_TYPE_SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": params,
                "resolvedDependencies": materials,
            },
            "runDetails": {"builder": {"id": builder}},
        }
    });
    let payload = serde_json::to_vec(&statement)?;
    // Check what we wrote with the same rules the log applies.
    Statement::from_json(&payload).context("the attestation would be invalid")?;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &[&key]);
    let mut bundle = Bundle::new(envelope, &public);
    if let Some(log) = &args.log {
        let receipt = crate::client::submit(log, &bundle.envelope, std::slice::from_ref(&public))
            .with_context(|| format!("couldn't submit to {log}"))?;
        bundle
            .receipts
            .push(with_cosigned_checkpoint(log, receipt, args.witness_wait));
    }
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.bundle.json", args.step)));
    std::fs::write(&path, bundle.to_json())
        .with_context(|| format!("couldn't write {}", path.display()))?;
    let index = bundle.receipts.first().map(|r| r.log_index);
    out.print(
        &serde_json::json!({"bundle": path, "build_type": build_type, "log_index": index, "subjects": args.subjects}),
        || match index {
            Some(i) => format!("wrote {} (log index {i})", path.display()),
            None => format!("wrote {} (not submitted to a log)", path.display()),
        },
    );
    Ok(())
}

/// Arguments of `pedigree submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Bundle file; its receipt is added in place
    pub bundle: PathBuf,
    /// Pedigree log URL
    #[arg(long)]
    pub log: String,
    /// Public (or private) key of the signer, sent to the log as verifier
    #[arg(long)]
    pub key: PathBuf,
    /// How long to wait for a witness-cosigned checkpoint to cover the entry when the
    /// log publishes cosigned checkpoints
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub witness_wait: u64,
}

/// Runs `pedigree submit`.
///
/// # Errors
///
/// When the bundle or key cannot be read or the log refuses the entry.
pub fn submit(args: SubmitArgs, out: &Output) -> Result<()> {
    let text = std::fs::read(&args.bundle)
        .with_context(|| format!("couldn't read {}", args.bundle.display()))?;
    let mut bundle = Bundle::from_json(&text)
        .with_context(|| format!("couldn't parse bundle {}", args.bundle.display()))?;
    let key = read_public_key(&args.key)?;
    let receipt = crate::client::submit(&args.log, &bundle.envelope, &[key])
        .with_context(|| format!("couldn't submit to {}", args.log))?;
    let receipt = with_cosigned_checkpoint(&args.log, receipt, args.witness_wait);
    let index = receipt.log_index;
    bundle.receipts.retain(|r| r.log_index != index);
    bundle.receipts.push(receipt);
    std::fs::write(&args.bundle, bundle.to_json())
        .with_context(|| format!("couldn't write {}", args.bundle.display()))?;
    out.print(
        &serde_json::json!({"bundle": args.bundle, "log_index": index}),
        || {
            format!(
                "logged at index {index}; receipt added to {}",
                args.bundle.display()
            )
        },
    );
    Ok(())
}
