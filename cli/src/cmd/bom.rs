//! `pedigree bom`: the AI-BOM of a model, a CycloneDX 1.6 ML-BOM built only from
//! attestations verified the way `pedigree lineage verify` verifies them
//! (`spec/bom.md`).
//!
//! With `--policy`, the chain is the one the policy accepts ([`verify_chain`]), and an
//! evaluation counts when a key of the policy's evaluate step signed it. Without, every
//! attestation the log's walk from the model reaches must verify (signatures by the
//! keys the log recorded and listed in the leaf record, inclusion under a checkpoint
//! signed by `--log-key`), or the command fails: nothing unverifiable is written.

use crate::cmd::attest::resolve_artifact;
use crate::cmd::key::read_log_key;
use crate::cmd::lineage::{check_consistency, fetch_attestations, lineage_entries, load_policy};
use crate::cmd::witness::witness_policy;
use crate::output::Output;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, ValueEnum};
use pedigree_core::bom::{self, BomInput, VerifiedAttestation};
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::keys::PublicKey;
use pedigree_core::lineage::{verify_attestation, verify_chain, Attestation, LineageError};
use pedigree_core::policy::Policy;
use pedigree_core::slsa::Step;
use pedigree_core::statement::Digest;
use pedigree_core::witness::WitnessPolicy;
use serde_json::Value;
use std::path::PathBuf;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Output formats of `pedigree bom`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// CycloneDX 1.6 JSON (ML-BOM)
    Cyclonedx,
}

/// Arguments of `pedigree bom`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("trust").required(true).args(["policy", "log_key"]))]
pub struct BomArgs {
    /// The model: a digest (sha256:<hex>) or a model directory or file
    pub artifact: String,
    /// Fetch attestations and proofs from this log
    #[arg(long)]
    pub log: String,
    /// Output format
    #[arg(long, value_enum, default_value = "cyclonedx")]
    pub format: Format,
    /// Policy file (TOML, spec/policy.md): only the chain it accepts goes in the BOM
    #[arg(long, conflicts_with = "log_key")]
    pub policy: Option<PathBuf>,
    /// The log's verifier key, or a file holding it: without a policy, every
    /// attestation must be signed by the keys the log recorded and included in this log
    #[arg(long, value_name = "VKEY")]
    pub log_key: Option<String>,
    /// A trusted witness's verifier key, or a file holding it (repeatable)
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// Cosignatures every receipt's checkpoint needs [default: every --witness key]
    #[arg(long, value_name = "K")]
    pub min_witnesses: Option<usize>,
    /// Write the BOM here instead of standard output
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// How deep the log's upstream walk goes (its maximum).
const DEPTH: u64 = 64;

/// Runs `pedigree bom`.
///
/// # Errors
///
/// When an attestation the BOM would use does not verify, the log knows nothing that
/// made the model, or the output cannot be written.
pub fn run(args: BomArgs, out: &Output) -> Result<()> {
    let (_, model) = resolve_artifact(&args.artifact)?;
    let digest = model.to_string();
    let (log_key, witnesses, policy) = match (&args.policy, &args.log_key) {
        (Some(path), _) => {
            let mut policy = load_policy(path)?;
            if !args.witnesses.is_empty() || args.min_witnesses.is_some() {
                policy.witnesses =
                    witness_policy(&args.witnesses, args.min_witnesses, Some(&policy.witnesses))?;
            }
            (policy.log.clone(), policy.witnesses.clone(), Some(policy))
        }
        (None, Some(key)) => (
            read_log_key(key)?,
            witness_policy(&args.witnesses, args.min_witnesses, None)?,
            None,
        ),
        (None, None) => bail!("give --policy FILE or --log-key VKEY"),
    };
    let cosigned = witnesses.min() > 0;
    let (upstream, cut) = lineage_entries(&args.log, &digest, "upstream", DEPTH, |_| true)?;
    if upstream.is_empty() {
        bail!("the log has no attestation about {digest}");
    }
    // Evaluations name the model as a material: they are one step downstream. The
    // graph's `step` only chooses what to fetch; the verified statement decides.
    let (evaluations, cut_downstream) =
        lineage_entries(&args.log, &digest, "downstream", 1, |e| {
            e["step"].as_str() == Some(Step::Evaluate.name())
        })?;
    // Without a policy the BOM lists everything the log holds about the model's
    // history; a walk the log cut short would silently leave some of it out.
    if policy.is_none() && (cut || cut_downstream) {
        bail!("the log's lineage of {digest} is too large to list whole (truncated); give --policy to build the BOM from the chain it accepts");
    }
    let fetched = fetch_attestations(&args.log, &upstream, cosigned)?;
    let evaluations = fetch_attestations(&args.log, &evaluations, cosigned)?;
    let (verified, verification) = match &policy {
        Some(policy) => (by_policy(&model, fetched, evaluations, policy)?, "policy"),
        None => (
            by_log_key(fetched, evaluations, &log_key, &witnesses)?,
            "log-key",
        ),
    };
    let checkpoints: Vec<SignedCheckpoint> = verified
        .iter()
        .filter_map(|(a, _)| a.receipt.as_ref())
        .filter_map(|r| log_key.verify(r.checkpoint.as_bytes()).ok())
        .collect();
    check_consistency(&args.log, &log_key, &checkpoints).context("lineage verification failed")?;
    let attestations: Vec<VerifiedAttestation> = verified.into_iter().map(|(_, v)| v).collect();
    let timestamp = timestamp()?;
    let document = match args.format {
        Format::Cyclonedx => bom::build(BomInput {
            model: &model,
            attestations: &attestations,
            log_url: &args.log,
            log_origin: log_key.origin(),
            verification,
            timestamp: &timestamp,
            tool_version: env!("CARGO_PKG_VERSION"),
        })
        .context("couldn't build the BOM")?,
    };
    let json = serde_json::to_string_pretty(&document)? + "\n";
    write_or_print(&args, &json, &document, out)
}

/// The policy's chain to `model`, and the evaluations one of the policy's evaluate
/// step signers signed.
fn by_policy(
    model: &Digest,
    upstream: Vec<(Attestation, Vec<PublicKey>)>,
    evaluations: Vec<(Attestation, Vec<PublicKey>)>,
    policy: &Policy,
) -> Result<Vec<(Attestation, VerifiedAttestation)>> {
    let attestations: Vec<Attestation> = upstream.into_iter().map(|(a, _)| a).collect();
    let links = verify_chain(std::slice::from_ref(model), &attestations, policy)
        .map_err(|e| anyhow!("lineage verification failed: {e}"))?;
    let mut verified = Vec::new();
    for link in links {
        let a = attestations
            .iter()
            .find(|a| a.source == link.source)
            .ok_or_else(|| anyhow!("verified link {} has no attestation", link.source))?;
        verified.push((a.clone(), VerifiedAttestation::new(link, a)?));
    }
    let evaluators: Vec<PublicKey> = policy
        .steps
        .iter()
        .filter(|s| s.build_type == Step::Evaluate.build_type())
        .flat_map(|s| s.signers.iter().cloned())
        .collect();
    if evaluators.is_empty() {
        return Ok(verified);
    }
    for (a, _) in evaluations {
        match verify_attestation(&a, &evaluators, &policy.log, &policy.witnesses) {
            Ok(link) => {
                let v = VerifiedAttestation::new(link, &a)?;
                verified.push((a, v));
            }
            // Anyone may log an evaluation naming the model; one the policy's
            // evaluators did not sign is not theirs, so it is left out.
            Err(LineageError::UnknownSigner { .. }) => {}
            Err(e) => bail!("evaluation verification failed: {e}"),
        }
    }
    Ok(verified)
}

/// Every attestation, each signed by the keys the log recorded for it and included in
/// the log of `log_key`; the first that fails fails all.
fn by_log_key(
    upstream: Vec<(Attestation, Vec<PublicKey>)>,
    evaluations: Vec<(Attestation, Vec<PublicKey>)>,
    log_key: &LogVerifier,
    witnesses: &WitnessPolicy,
) -> Result<Vec<(Attestation, VerifiedAttestation)>> {
    upstream
        .into_iter()
        .chain(evaluations)
        .map(|(a, keys)| {
            let link = verify_attestation(&a, &keys, log_key, witnesses)
                .map_err(|e| anyhow!("attestation verification failed: {e}"))?;
            let v = VerifiedAttestation::new(link, &a)?;
            Ok((a, v))
        })
        .collect()
}

/// Prints the BOM, or writes it to `--out` and says so.
fn write_or_print(
    args: &BomArgs,
    json: &str,
    document: &bom::cyclonedx::Bom,
    out: &Output,
) -> Result<()> {
    let Some(path) = &args.out else {
        print!("{json}");
        return Ok(());
    };
    std::fs::write(path, json).with_context(|| format!("couldn't write {}", path.display()))?;
    let references = count_references(&serde_json::to_value(document)?);
    out.print(
        &serde_json::json!({
            "bom": path,
            "serial_number": document.serial_number,
            "components": document.components.len(),
            "attestation_references": references,
        }),
        || {
            format!(
                "wrote {} ({} components, {references} attestation references)",
                path.display(),
                document.components.len()
            )
        },
    );
    Ok(())
}

/// Attestation references anywhere in the document.
fn count_references(v: &Value) -> usize {
    match v {
        Value::Object(m) => {
            let here = usize::from(m.get("type").and_then(Value::as_str) == Some("attestation"));
            here + m.values().map(count_references).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(count_references).sum(),
        _ => 0,
    }
}

/// `metadata.timestamp`: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
fn timestamp() -> Result<String> {
    let t = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: i64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH {s:?} is not a number of seconds"))?;
            OffsetDateTime::from_unix_timestamp(secs)
                .with_context(|| format!("SOURCE_DATE_EPOCH {s:?} is out of range"))?
        }
        Err(_) => OffsetDateTime::now_utc().replace_nanosecond(0)?,
    };
    t.format(&Rfc3339).context("couldn't format the timestamp")
}
