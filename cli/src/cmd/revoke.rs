//! `pedigree revoke`: sign a revocation of an artifact (`spec/predicates.md` section
//! 6.1) and append it to a log. Whether it counts is decided by each verifier's policy
//! (`spec/policy.md` section 6); the log records it whoever signed it.

use crate::cmd::attest::{resolve_artifact, with_cosigned_checkpoint};
use crate::cmd::key::read_private_key;
use crate::output::Output;
use anyhow::{Context as _, Result};
use clap::Args;
use pedigree_core::bundle::Bundle;
use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::revocation::Revocation;
use pedigree_core::statement::{Digest, ResourceDescriptor};
use std::path::PathBuf;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Arguments of `pedigree revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The artifact to revoke: a digest (sha256:<hex>), a file or a model directory
    pub artifact: String,
    /// Why it must no longer be trusted (one line)
    #[arg(long)]
    pub reason: String,
    /// Private key that signs the revocation
    #[arg(long)]
    pub key: PathBuf,
    /// Pedigree log URL to append the revocation to
    #[arg(long)]
    pub log: String,
    /// The artifact that replaces the revoked one
    #[arg(long, value_name = "DIGEST")]
    pub superseded_by: Option<String>,
    /// Bundle file to write, for offline verification [default: revocation.bundle.json]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How long to wait for a witness-cosigned checkpoint to cover the entry
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub witness_wait: u64,
}

/// Runs `pedigree revoke`. Everything is checked before anything is sent: a bad digest,
/// reason or key appends nothing.
///
/// # Errors
///
/// On a bad argument, an unreadable key, or a refused submission.
pub fn run(args: RevokeArgs, out: &Output) -> Result<()> {
    let (name, digest) = resolve_artifact(&args.artifact)?;
    if let Some(s) = &args.superseded_by {
        s.parse::<Digest>()
            .map_err(|e| anyhow::anyhow!("--superseded-by {s:?} is not a digest: {e}"))?;
    }
    let key = read_private_key(&args.key)?;
    let public = key.public_key();
    let revoked_at = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .context("couldn't format the current time")?;
    let subject = ResourceDescriptor {
        name: Some(name),
        digest: [(digest.algorithm.clone(), digest.value.clone())]
            .into_iter()
            .collect(),
        ..ResourceDescriptor::default()
    };
    let statement = Revocation {
        reason: args.reason.clone(),
        revoked_at: revoked_at.clone(),
        superseded_by: args.superseded_by.clone(),
    }
    .into_statement(vec![subject])
    .context("invalid revocation")?;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement.to_json(), &[&key]);
    let mut bundle = Bundle::new(envelope, &public);
    let receipt = crate::client::submit(&args.log, &bundle.envelope, std::slice::from_ref(&public))
        .with_context(|| format!("couldn't submit to {}", args.log))?;
    let receipt = with_cosigned_checkpoint(&args.log, receipt, args.witness_wait);
    let index = receipt.log_index;
    bundle.receipts.push(receipt);
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("revocation.bundle.json"));
    std::fs::write(&path, bundle.to_json()).with_context(|| {
        format!(
            "logged at index {index}, but couldn't write {}",
            path.display()
        )
    })?;
    out.print(
        &serde_json::json!({
            "revoked": digest.to_string(), "log_index": index, "bundle": path,
            "reason": args.reason, "revoked_at": revoked_at,
            "signer": public.fingerprint().to_string(),
        }),
        || {
            format!(
                "revoked {digest} (log index {index}); wrote {}",
                path.display()
            )
        },
    );
    Ok(())
}
