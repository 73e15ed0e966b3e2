//! `pedigree lineage show` and `pedigree lineage verify`.

use crate::cmd::attest::resolve_artifact;
use crate::cmd::key::read_public_key;
use crate::cmd::witness::witness_policy;
use crate::output::Output;
use anyhow::{anyhow, bail, Context as _, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::{Args, Subcommand};
use pedigree_core::bundle::Bundle;
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::dsse::Envelope;
use pedigree_core::keys::PublicKey;
use pedigree_core::lineage::{verify_chain, Attestation};
use pedigree_core::merkle;
use pedigree_core::policy::Policy;
use pedigree_core::receipt::LogReceipt;
use pedigree_core::revocation::{check_revocations, PREDICATE_TYPE_REVOCATION_V1};
use pedigree_core::statement::Digest;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lineage commands.
#[derive(Subcommand, Debug)]
pub enum LineageCommand {
    /// Print the attestations upstream of an artifact, as the log knows them
    Show {
        /// A digest (sha256:<hex>), a file or a model directory
        artifact: String,
        /// Pedigree log URL
        #[arg(long)]
        log: String,
        /// How many steps to follow
        #[arg(long, default_value_t = 16)]
        depth: u64,
    },
    /// Verify the chain from creator to deployer against a policy
    Verify(VerifyArgs),
}

/// Arguments of `pedigree lineage verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A digest (sha256:<hex>), a file or a model directory
    pub artifact: String,
    /// Policy file (TOML, spec/policy.md)
    #[arg(long)]
    pub policy: PathBuf,
    /// Fetch attestations and proofs from this log
    #[arg(long, conflicts_with = "bundles", required_unless_present = "bundles")]
    pub log: Option<String>,
    /// Verify offline from a directory of bundles
    #[arg(long)]
    pub bundles: Option<PathBuf>,
    /// A trusted witness's verifier key, or a file holding it (repeatable), added to the
    /// policy's `witnesses`
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// Cosignatures every receipt's checkpoint needs; the larger of this and the
    /// policy's `min_witnesses` applies [default: every --witness key]
    #[arg(long, value_name = "K")]
    pub min_witnesses: Option<usize>,
    /// The artifact's files (a file or model directory) to scan when the policy sets
    /// `require_scan`; their digest must be the artifact's. Not needed when ARTIFACT is
    /// itself a path
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
}

/// Runs a lineage command.
///
/// # Errors
///
/// On any failed check or unreadable input.
pub fn run(cmd: LineageCommand, out: &Output) -> Result<()> {
    match cmd {
        LineageCommand::Show {
            artifact,
            log,
            depth,
        } => show(&artifact, &log, depth, out),
        LineageCommand::Verify(args) => verify(&args, out),
    }
}

fn show(artifact: &str, log: &str, depth: u64, out: &Output) -> Result<()> {
    let (_, digest) = resolve_artifact(artifact)?;
    let graph = crate::client::get_json(
        log,
        &format!("/api/v1/lineage/{digest}?direction=upstream&depth={depth}"),
    )?;
    out.print(&graph, || {
        let mut text = format!("{digest}\n");
        let entries: BTreeMap<u64, &Value> = graph["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["log_index"].as_u64()?, e)))
            .collect();
        print_tree(
            &graph,
            &entries,
            &digest.to_string(),
            1,
            &mut text,
            &mut Vec::new(),
        );
        text.trim_end().to_string()
    });
    Ok(())
}

fn print_tree(
    graph: &Value,
    entries: &BTreeMap<u64, &Value>,
    node: &str,
    level: usize,
    text: &mut String,
    seen: &mut Vec<String>,
) {
    if seen.iter().any(|s| s == node) {
        return;
    }
    seen.push(node.to_string());
    // Attestations that created this node from nothing logged (e.g. a dataset).
    for e in entries.values() {
        let about_node = e["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s.as_str() == Some(node));
        let no_materials = e["materials"].as_array().is_none_or(|m| m.is_empty());
        if about_node && no_materials {
            let step = e["step"].as_str().unwrap_or("attestation");
            let index = e["log_index"].as_u64().unwrap_or_default();
            text.push_str(&format!("{}= {step} #{index}\n", "  ".repeat(level)));
        }
    }
    for edge in graph["edges"].as_array().into_iter().flatten() {
        if edge["to"].as_str() != Some(node) {
            continue;
        }
        let from = edge["from"].as_str().unwrap_or_default();
        let via: Vec<String> = edge["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .map(|i| {
                let step = entries
                    .get(&i)
                    .and_then(|e| e["step"].as_str())
                    .unwrap_or("attestation");
                format!("{step} #{i}")
            })
            .collect();
        text.push_str(&format!(
            "{}<- {from} ({})\n",
            "  ".repeat(level),
            via.join(", ")
        ));
        print_tree(graph, entries, from, level + 1, text, seen);
    }
    seen.pop();
}

/// Reads a policy file; signer names are key files relative to it.
///
/// # Errors
///
/// When the file cannot be read or is not a valid policy.
pub fn load_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("couldn't read policy {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    Policy::from_toml(&text, |name| {
        read_public_key(&base.join(name)).map_err(|e| format!("{e:#}"))
    })
    .with_context(|| format!("couldn't load policy {}", path.display()))
}

/// Reads every `*.json` bundle in `dir`.
fn bundles_in(dir: &Path) -> Result<Vec<Attestation>> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("couldn't read bundle directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let bytes =
            std::fs::read(&path).with_context(|| format!("couldn't read {}", path.display()))?;
        let bundle = Bundle::from_json(&bytes)
            .with_context(|| format!("couldn't parse bundle {}", path.display()))?;
        out.push(Attestation {
            source: path.display().to_string(),
            envelope: bundle.envelope,
            receipt: bundle.receipts.into_iter().next(),
        });
    }
    Ok(out)
}

fn hash32(v: &Value) -> Result<[u8; 32]> {
    let bytes = hex::decode(v.as_str().ok_or_else(|| anyhow!("hash is not text"))?)?;
    <[u8; 32]>::try_from(bytes).map_err(|_| anyhow!("hash is not 32 bytes"))
}

/// Fetches the attestations upstream of `digest` from the log, each with a receipt
/// built from the log's answer (verified later against the policy's log key). With
/// `cosigned`, receipts are proved against the log's published cosigned checkpoint
/// where it covers the entry.
fn from_log(log: &str, digest: &str, cosigned: bool) -> Result<Vec<Attestation>> {
    let (indexes, _) = lineage_entries(log, digest, "upstream", 64, |_| true)?;
    Ok(fetch_attestations(log, &indexes, cosigned)?
        .into_iter()
        .map(|(a, _)| a)
        .collect())
}

/// The log indexes of the entries the log's lineage walk from `digest` reaches in
/// `direction`, among those whose graph entry `keep` accepts, and whether the log cut
/// the walk short (`truncated`). The graph is only where to look: every entry is
/// fetched and verified before it is used.
pub(crate) fn lineage_entries(
    log: &str,
    digest: &str,
    direction: &str,
    depth: u64,
    keep: impl Fn(&Value) -> bool,
) -> Result<(Vec<u64>, bool)> {
    let graph = crate::client::get_json(
        log,
        &format!("/api/v1/lineage/{digest}?direction={direction}&depth={depth}"),
    )?;
    let indexes = graph["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| keep(e))
        .map(|e| {
            e["log_index"]
                .as_u64()
                .ok_or_else(|| anyhow!("lineage entry without index"))
        })
        .collect::<Result<_>>()?;
    Ok((indexes, graph["truncated"].as_bool().unwrap_or(false)))
}

/// Fetches the entries at `indexes`, each as an attestation with a receipt built from
/// the log's answer (not yet verified) and the public keys the log recorded for its
/// signers. With `cosigned`, receipts are proved against the log's published cosigned
/// checkpoint where it covers the entry.
pub(crate) fn fetch_attestations(
    log: &str,
    indexes: &[u64],
    cosigned: bool,
) -> Result<Vec<(Attestation, Vec<PublicKey>)>> {
    let published = if cosigned {
        crate::client::published_checkpoint(log)?
    } else {
        None
    };
    let mut out = Vec::new();
    for &index in indexes {
        out.push(fetch_entry(log, index, published.as_deref())?);
    }
    Ok(out)
}

/// Fetches log entry `index` as an attestation whose receipt is built from the log's
/// answer (verified later against the policy's log key); against `published`, the log's
/// cosigned checkpoint, when given and covering the entry.
pub fn entry_attestation(log: &str, index: u64, published: Option<&[u8]>) -> Result<Attestation> {
    Ok(fetch_entry(log, index, published)?.0)
}

/// [`entry_attestation`], with the public keys the log recorded for its signers.
fn fetch_entry(
    log: &str,
    index: u64,
    published: Option<&[u8]>,
) -> Result<(Attestation, Vec<PublicKey>)> {
    let entry = crate::client::get_json(log, &format!("/api/v1/entries/{index}"))?;
    let envelope = Envelope::from_json(entry["envelope"].to_string().as_bytes())
        .with_context(|| format!("log entry {index} has an invalid envelope"))?;
    let verifiers = entry["verifiers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            PublicKey::from_pem(k.as_str().unwrap_or_default())
                .with_context(|| format!("log entry {index} has an invalid verifier key"))
        })
        .collect::<Result<Vec<_>>>()?;
    let proof = &entry["inclusion_proof"];
    let receipt = LogReceipt {
        log_index: index,
        leaf: STANDARD
            .decode(entry["leaf"].as_str().unwrap_or_default())
            .context("entry has no leaf")?,
        tree_size: proof["tree_size"]
            .as_u64()
            .ok_or_else(|| anyhow!("entry proof has no tree_size"))?,
        hashes: proof["hashes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(hash32)
            .collect::<Result<_>>()?,
        checkpoint: entry["checkpoint"].as_str().unwrap_or_default().to_string(),
    };
    let receipt = match published {
        Some(note) if crate::client::note_tree_size(note).is_some_and(|s| s > index) => {
            let size = crate::client::note_tree_size(note).unwrap_or_default();
            LogReceipt {
                tree_size: size,
                hashes: crate::client::inclusion_proof(log, index, size)?,
                checkpoint: String::from_utf8_lossy(note).into_owned(),
                ..receipt
            }
        }
        _ => receipt,
    };
    Ok((
        Attestation {
            source: format!("log entry {index}"),
            envelope,
            receipt: Some(receipt),
        },
        verifiers,
    ))
}

/// Most search pages read for one digest; past it the revocation check fails rather
/// than decide from part of the log's answer.
const MAX_SEARCH_PAGES: usize = 100;

/// The log indexes of every revocation entry whose subject is `digest`, by paging
/// through the log's subject index to its end.
///
/// # Errors
///
/// On a failed request, or when `digest` has more than `MAX_SEARCH_PAGES` pages of
/// entries.
pub fn revocation_indexes(log: &str, digest: &str) -> Result<Vec<u64>> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_SEARCH_PAGES {
        let mut path = format!("/api/v1/entries?subject={digest}&limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = crate::client::get_json(log, &path)
            .with_context(|| format!("couldn't search the log for revocations of {digest}"))?;
        for hit in page["entries"].as_array().into_iter().flatten() {
            if hit["record"]["predicate_type"].as_str() == Some(PREDICATE_TYPE_REVOCATION_V1) {
                found.push(
                    hit["log_index"]
                        .as_u64()
                        .ok_or_else(|| anyhow!("search hit without log_index"))?,
                );
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(found),
        }
    }
    bail!("more than {MAX_SEARCH_PAGES} pages of entries name {digest}: its revocations were not all checked")
}

/// Every revocation the log holds about any of `digests`, fetched with receipts.
fn revocations_from_log(
    log: &str,
    digests: &BTreeSet<String>,
    published: Option<&[u8]>,
) -> Result<Vec<Attestation>> {
    let mut indexes = BTreeSet::new();
    for d in digests {
        indexes.extend(revocation_indexes(log, d)?);
    }
    indexes
        .into_iter()
        .map(|i| entry_attestation(log, i, published))
        .collect()
}

/// Checks that every checkpoint the receipts used is consistent with the log's latest
/// one: a log showing different histories to different readers is caught here. The
/// latest is the log's own (`/api/v1/log`), which a cosigned `/checkpoint` may lag.
pub(crate) fn check_consistency(
    log: &str,
    trusted: &LogVerifier,
    checkpoints: &[SignedCheckpoint],
) -> Result<()> {
    let info = crate::client::get_json(log, "/api/v1/log")?;
    let latest_note = info["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("log info has no checkpoint"))?;
    let latest = trusted
        .verify(latest_note.as_bytes())
        .map_err(|e| anyhow!("inconsistent checkpoint: the log's latest checkpoint is not signed by the trusted key: {e}"))?;
    for cp in checkpoints {
        if cp.tree_size > latest.tree_size {
            bail!(
                "inconsistent checkpoint: a receipt's tree size {} exceeds the latest {}",
                cp.tree_size,
                latest.tree_size
            );
        }
        if cp.tree_size == 0 {
            continue;
        }
        let proof = crate::client::get_json(
            log,
            &format!(
                "/api/v1/proof/consistency?from={}&to={}",
                cp.tree_size, latest.tree_size
            ),
        )?;
        let hashes: Vec<[u8; 32]> = proof["hashes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(hash32)
            .collect::<Result<_>>()?;
        merkle::verify_consistency(
            cp.tree_size,
            latest.tree_size,
            &hashes,
            &cp.root_hash.0,
            &latest.root_hash.0,
        )
        .map_err(|e| {
            anyhow!(
                "inconsistent checkpoint: tree size {} is not a prefix of {}: {e}",
                cp.tree_size,
                latest.tree_size
            )
        })?;
    }
    Ok(())
}

/// The files to scan when the policy sets `require_scan` (`spec/policy.md` section
/// 3): `--model`, whose digest must be the artifact's, or the artifact when it was
/// given as a path. A bare digest with nothing to scan fails closed.
fn scan_path(args: &VerifyArgs, policy: &Policy, digest: &Digest) -> Result<Option<PathBuf>> {
    if !policy.require_scan {
        return Ok(None);
    }
    if let Some(model) = &args.model {
        let local = crate::model::artifact_digest(model)?;
        if &local != digest {
            bail!(
                "--model {} has digest {local}, the artifact is {digest}",
                model.display()
            );
        }
        return Ok(Some(model.clone()));
    }
    if args.artifact.parse::<Digest>().is_err() {
        return Ok(Some(PathBuf::from(&args.artifact)));
    }
    bail!("the policy requires a model scan: give the artifact's files with --model PATH")
}

fn verify(args: &VerifyArgs, out: &Output) -> Result<()> {
    let mut policy = load_policy(&args.policy)?;
    if !args.witnesses.is_empty() || args.min_witnesses.is_some() {
        policy.witnesses =
            witness_policy(&args.witnesses, args.min_witnesses, Some(&policy.witnesses))?;
    }
    let (_, digest) = resolve_artifact(&args.artifact)?;
    let scan_path = scan_path(args, &policy, &digest)?;
    let cosigned = policy.witnesses.min() > 0;
    let attestations = match (&args.log, &args.bundles) {
        (Some(log), _) => from_log(log, &digest.to_string(), cosigned)?,
        (None, Some(dir)) => bundles_in(dir)?,
        (None, None) => bail!("give --log URL or --bundles DIR"),
    };
    let links = verify_chain(std::slice::from_ref(&digest), &attestations, &policy)
        .map_err(|e| anyhow!("lineage verification failed: {e}"))?;
    // Revocations of every artifact of the chain, its materials included: searched in
    // the log by each digest online; offline, whatever the bundle directory holds.
    let chain_digests: BTreeSet<String> = links
        .iter()
        .flat_map(|l| l.subjects.iter().chain(&l.materials).cloned())
        .collect();
    let status = match &args.log {
        Some(log) => {
            let published = if cosigned {
                crate::client::published_checkpoint(log)?
            } else {
                None
            };
            let candidates = revocations_from_log(log, &chain_digests, published.as_deref())
                .context("lineage verification failed")?;
            check_revocations(&links, &candidates, &policy)
        }
        None => check_revocations(&links, &attestations, &policy),
    };
    if let Some(first) = status.revoked.first() {
        let more = match status.revoked.len() {
            1 => String::new(),
            n => format!(" (and {} more revocations)", n - 1),
        };
        bail!("lineage verification failed: {first}{more}");
    }
    if let Some(log) = &args.log {
        let cps: Vec<SignedCheckpoint> = links
            .iter()
            .filter_map(|l| attestations.iter().find(|a| a.source == l.source))
            .filter_map(|a| a.receipt.as_ref())
            .filter_map(|r| policy.log.verify(r.checkpoint.as_bytes()).ok())
            .collect();
        check_consistency(log, &policy.log, &cps).context("lineage verification failed")?;
    }
    let scan = match &scan_path {
        Some(path) => {
            let scan = crate::cmd::scan::scan_model(path, false, false)
                .context("lineage verification failed: the policy requires a scan")?;
            scan.require_pass(false)
                .context("lineage verification failed: model scan failed")?;
            Some(scan.counts)
        }
        None => None,
    };
    let revocations_from = if args.log.is_some() { "log" } else { "bundles" };
    let mut result = serde_json::json!({
        "verified": true, "artifact": digest.to_string(), "chain": links,
        "revocations": {"checked_in": revocations_from, "ignored": status.ignored},
    });
    if let Some(counts) = &scan {
        result["scan"] = counts.clone();
    }
    out.print(&result, || {
        let mut text = format!("verified lineage of {digest}\n");
        for l in &links {
            text.push_str(&format!(
                "  {:<9} log index {:<6} {} <- [{}]\n",
                l.step,
                l.log_index,
                l.subjects.join(", "),
                l.materials.join(", ")
            ));
        }
        text.push_str(&match revocations_from {
            "log" => format!("  no revocation by an authorised key among {} artifacts (searched in the log)\n", chain_digests.len()),
            _ => "  no revocation by an authorised key in the bundles (offline: only as fresh as the bundle directory)\n".to_string(),
        });
        for i in &status.ignored {
            text.push_str(&format!("  {i}\n"));
        }
        if scan.is_some() {
            text.push_str("  model scan passed\n");
        }
        text.trim_end().to_string()
    });
    Ok(())
}
