//! `pedigree impact`: everything derived from an artifact, down to its deployments, with
//! the revocation status of each, and (`--last-good`) the newest earlier version of the
//! artifact that nothing revoked: what an incident responder quarantines and what they
//! roll back to.
//!
//! Like `lineage show`, this reads the log's lineage index and search answers: it is a
//! map for triage, not a verification (`pedigree lineage verify` is). A revocation counts
//! here when its signers, as its leaf record names them, include a signer of an
//! attestation that produced the artifact, or a revoker of `--policy`'s `[revocation]`
//! table (`spec/policy.md` section 6); others are listed as not authorised. With
//! `--policy`, a revocation must also be proven in the policy's log to count.

use crate::cmd::attest::resolve_artifact;
use crate::cmd::lineage::{entry_attestation, load_policy, revocation_indexes};
use crate::output::Output;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use pedigree_core::checkpoint::LogVerifier;
use pedigree_core::dsse::Envelope;
use pedigree_core::entry::LeafRecord;
use pedigree_core::revocation::Revocation;
use pedigree_core::statement::{ResourceDescriptor, Statement};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Arguments of `pedigree impact`.
#[derive(Args, Debug)]
pub struct ImpactArgs {
    /// The artifact: a digest (sha256:<hex>), a file or a model directory
    pub artifact: String,
    /// Pedigree log URL
    #[arg(long)]
    pub log: String,
    /// Also suggest the newest unrevoked earlier version to roll back to
    #[arg(long)]
    pub last_good: bool,
    /// Policy whose `[revocation]` table says who else may revoke (spec/policy.md)
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

/// One revocation entry naming an artifact.
#[derive(Clone, Debug, Serialize)]
struct RevocationInfo {
    log_index: u64,
    signers: Vec<String>,
    reason: String,
    superseded_by: Option<String>,
    /// Whether its inclusion was proven against `--policy`'s log key.
    proven: bool,
    /// Whether it counts: signed by the artifact's own signer or a policy revoker.
    authorised: bool,
}

/// One artifact of the impact tree.
#[derive(Debug, Serialize)]
struct Node {
    digest: String,
    /// The attestation that derived it from its parent (`None` for the root).
    step: Option<String>,
    log_index: Option<u64>,
    signers: Vec<String>,
    deployment: bool,
    revoked: bool,
    revocations: Vec<RevocationInfo>,
    children: Vec<Node>,
}

/// What the log says about artifacts: lineage entries and revocations, fetched once.
struct Log<'a> {
    url: &'a str,
    /// `[revocation]` of `--policy`: extra revokers' fingerprints, and whether an
    /// artifact's own signer may revoke it.
    revokers: BTreeSet<String>,
    signer_may_revoke: bool,
    /// `--policy`'s log key: revocations are then proven in that log, or do not count.
    trusted: Option<LogVerifier>,
    revocations: BTreeMap<String, Vec<Found>>,
}

/// A revocation entry as found: log index, signers as its leaf record names them, and
/// the predicate with whether its inclusion was proven (with `--policy`), or why it does
/// not count.
type Found = (u64, Vec<String>, Result<(Revocation, bool), String>);

impl Log<'_> {
    fn lineage(&self, digest: &str, direction: &str) -> Result<Value> {
        crate::client::get_json(
            self.url,
            &format!("/api/v1/lineage/{digest}?direction={direction}&depth=64"),
        )
    }

    /// The revocation entries naming `digest`, judged against `producers`, the signers
    /// of the attestations that produced it.
    fn revocations(
        &mut self,
        digest: &str,
        producers: &BTreeSet<String>,
    ) -> Result<Vec<RevocationInfo>> {
        if !self.revocations.contains_key(digest) {
            let mut found = Vec::new();
            for index in revocation_indexes(self.url, digest)? {
                let a = entry_attestation(self.url, index, None)?;
                let receipt = a
                    .receipt
                    .as_ref()
                    .ok_or_else(|| anyhow!("log entry {index} came without a receipt"))?;
                let signers = LeafRecord::decode(&receipt.leaf)
                    .with_context(|| format!("log entry {index} has an invalid leaf record"))?
                    .signers
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let proven = match &self.trusted {
                    Some(log) => receipt
                        .verify(&a.envelope, log, None)
                        .map(|_| true)
                        .map_err(|e| format!("not provably in the trusted log: {e}")),
                    None => Ok(false),
                };
                let revocation = proven.and_then(|proven| {
                    let statement =
                        Statement::from_json(&a.envelope.payload).map_err(|e| e.to_string())?;
                    // The search index only says where to look: the statement itself
                    // must name the artifact.
                    if !statement
                        .subject
                        .iter()
                        .flat_map(ResourceDescriptor::digests)
                        .any(|d| d.to_string() == digest)
                    {
                        return Err(format!("does not name {digest}"));
                    }
                    match Revocation::from_statement(&statement) {
                        Ok(Some(r)) => Ok((r, proven)),
                        Ok(None) => Err("not a revocation".to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                });
                found.push((index, signers, revocation));
            }
            self.revocations.insert(digest.to_string(), found);
        }
        Ok(self.revocations[digest]
            .iter()
            .map(|(index, signers, r)| {
                let authorised = r.is_ok()
                    && !signers.is_empty()
                    && signers.iter().all(|s| {
                        self.revokers.contains(s)
                            || (self.signer_may_revoke && producers.contains(s))
                    });
                RevocationInfo {
                    log_index: *index,
                    signers: signers.clone(),
                    reason: match r {
                        Ok((r, _)) => r.reason.clone(),
                        Err(e) => format!("(invalid revocation: {e})"),
                    },
                    superseded_by: r.as_ref().ok().and_then(|(r, _)| r.superseded_by.clone()),
                    proven: r.as_ref().is_ok_and(|(_, p)| *p),
                    authorised,
                }
            })
            .collect())
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Entries of a lineage answer by log index.
fn entries(graph: &Value) -> BTreeMap<u64, &Value> {
    graph["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["log_index"].as_u64()?, e)))
        .collect()
}

/// Signers of the provenance entries (those with a build type) having `digest` as a
/// subject.
fn producers<'a>(entries: impl Iterator<Item = &'a &'a Value>, digest: &str) -> BTreeSet<String> {
    entries
        .filter(|e| !e["build_type"].is_null())
        .filter(|e| strings(&e["subjects"]).iter().any(|s| s == digest))
        // An entry about its own material (evaluate) did not produce it.
        .filter(|e| !strings(&e["materials"]).iter().any(|m| m == digest))
        .flat_map(|e| strings(&e["signers"]))
        .collect()
}

fn build_tree(log: &mut Log, graph: &Value, node: Node, path: &mut Vec<String>) -> Result<Node> {
    let mut node = node;
    let all = entries(graph);
    path.push(node.digest.clone());
    for edge in graph["edges"].as_array().into_iter().flatten() {
        let (Some(from), Some(to)) = (edge["from"].as_str(), edge["to"].as_str()) else {
            continue;
        };
        // An evaluation names its model as both material and subject: no new artifact.
        if from != node.digest || path.iter().any(|p| p == to) {
            continue;
        }
        for index in edge["entries"].as_array().into_iter().flatten() {
            let Some(e) = index.as_u64().and_then(|i| all.get(&i)) else {
                continue;
            };
            let step = e["step"]
                .as_str()
                .or(e["build_type"].as_str())
                .map(str::to_string);
            let producers = producers(all.values(), to);
            let revocations = log.revocations(to, &producers)?;
            let child = Node {
                digest: to.to_string(),
                deployment: step.as_deref() == Some("deploy"),
                step,
                log_index: e["log_index"].as_u64(),
                signers: strings(&e["signers"]),
                revoked: revocations.iter().any(|r| r.authorised),
                revocations,
                children: Vec::new(),
            };
            let child = build_tree(log, graph, child, path)?;
            node.children.push(child);
        }
    }
    path.pop();
    Ok(node)
}

fn key_id(fp: &str) -> &str {
    fp.get(..16).unwrap_or(fp)
}

fn print_node(node: &Node, depth: usize, text: &mut String) {
    let mut line = format!(
        "{}{}",
        "  ".repeat(depth),
        if depth == 0 { "" } else { "-> " }
    );
    line.push_str(&node.digest);
    if let (Some(step), Some(index)) = (&node.step, node.log_index) {
        let keys: Vec<&str> = node.signers.iter().map(|s| key_id(s)).collect();
        line.push_str(&format!("  {step} #{index} key {}", keys.join(",")));
    }
    if node.deployment {
        line.push_str("  DEPLOYMENT");
    }
    for r in &node.revocations {
        if r.authorised {
            line.push_str(&format!("  REVOKED #{}: {}", r.log_index, r.reason));
        } else {
            line.push_str(&format!(
                "  (revocation #{} by unauthorised key {} ignored)",
                r.log_index,
                r.signers
                    .iter()
                    .map(|s| key_id(s))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
    }
    if !node.revoked && node.revocations.iter().all(|r| !r.authorised) {
        line.push_str("  revoked: no");
    }
    text.push_str(&line);
    text.push('\n');
    for c in &node.children {
        print_node(c, depth + 1, text);
    }
}

fn deployments<'a>(node: &'a Node, out: &mut Vec<&'a Node>) {
    if node.deployment {
        out.push(node);
    }
    for c in &node.children {
        deployments(c, out);
    }
}

/// The suggestion of `--last-good`.
#[derive(Debug, Serialize)]
struct LastGood {
    /// The chosen version, `None` when every candidate is revoked or derived from a
    /// revoked artifact.
    digest: Option<String>,
    step: Option<String>,
    name: Option<String>,
    log_index: Option<u64>,
    explanation: String,
    /// Newer versions passed over, and why.
    skipped: Vec<(String, String)>,
}

/// The subject name an entry gives `digest`.
fn subject_name(log: &str, index: u64, digest: &str) -> Result<Option<String>> {
    let entry = crate::client::get_json(log, &format!("/api/v1/entries/{index}"))?;
    let env = Envelope::from_json(entry["envelope"].to_string().as_bytes())
        .with_context(|| format!("log entry {index} has an invalid envelope"))?;
    let statement = Statement::from_json(&env.payload)
        .with_context(|| format!("log entry {index} has an invalid statement"))?;
    Ok(statement
        .subject
        .iter()
        .find(|s| s.digests().any(|d| d.to_string() == digest))
        .and_then(|s| s.name.clone()))
}

/// Walks the ancestors of `root` for versions of it: artifacts produced by the same step
/// or given the same subject name. The newest (highest log index) that is neither
/// revoked nor derived from a revoked artifact is the last good one.
fn last_good(log: &mut Log, root: &str) -> Result<LastGood> {
    let up = log.lineage(root, "upstream")?;
    let all = entries(&up);
    // The newest provenance entry producing each node.
    let mut produced: BTreeMap<String, &Value> = BTreeMap::new();
    for e in all.values().filter(|e| !e["build_type"].is_null()) {
        for s in strings(&e["subjects"]) {
            // A step about its own material (evaluate) does not produce it.
            if !strings(&e["materials"]).contains(&s) {
                produced.insert(s, e);
            }
        }
    }
    let Some(own) = produced.get(root) else {
        bail!("the log has no provenance producing {root}, so it has no earlier versions");
    };
    let step = own["step"]
        .as_str()
        .or(own["build_type"].as_str())
        .map(str::to_string);
    let own_index = own["log_index"].as_u64().unwrap_or_default();
    let name = subject_name(log.url, own_index, root)?;
    let parents: BTreeMap<String, Vec<String>> =
        up["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .fold(BTreeMap::new(), |mut m, e| {
                if let (Some(f), Some(t)) = (e["from"].as_str(), e["to"].as_str()) {
                    if f != t {
                        m.entry(t.to_string()).or_default().push(f.to_string());
                    }
                }
                m
            });
    // Which nodes are revoked, each with its reason.
    let mut revoked: BTreeMap<String, String> = BTreeMap::new();
    for node in strings(&up["nodes"]) {
        let signers = producers(all.values(), &node);
        if let Some(r) = log
            .revocations(&node, &signers)?
            .into_iter()
            .find(|r| r.authorised)
        {
            revoked.insert(
                node,
                format!("revoked at log index {}: {}", r.log_index, r.reason),
            );
        }
    }
    let taint = |node: &str| -> Option<String> {
        let mut stack = vec![node.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(why) = revoked.get(&n) {
                return Some(if n == node {
                    why.clone()
                } else {
                    format!("derived from {n}, {why}")
                });
            }
            stack.extend(parents.get(&n).into_iter().flatten().cloned());
        }
        None
    };
    let mut candidates: Vec<(u64, String, Option<String>, Option<String>)> = Vec::new();
    for (node, e) in &produced {
        let index = e["log_index"].as_u64().unwrap_or_default();
        let node_step = e["step"]
            .as_str()
            .or(e["build_type"].as_str())
            .map(str::to_string);
        let node_name = subject_name(log.url, index, node)?;
        let same_step = node_step.is_some() && node_step == step;
        let same_name = node_name.is_some() && node_name == name;
        if same_step || same_name {
            candidates.push((index, node.clone(), node_step, node_name));
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut skipped = Vec::new();
    let lineage = match (&name, &step) {
        (Some(n), Some(s)) => format!("name {n:?} or step {s}"),
        (None, Some(s)) => format!("step {s}"),
        (Some(n), None) => format!("name {n:?}"),
        (None, None) => "its lineage".to_string(),
    };
    for (index, node, node_step, node_name) in candidates {
        if let Some(why) = taint(&node) {
            skipped.push((node, why));
            continue;
        }
        return Ok(LastGood {
            explanation: format!(
                "{node} is the newest version among the ancestors of {root} with the same {lineage} (log index {index}) that is not revoked and not derived from a revoked artifact"
            ),
            digest: Some(node),
            step: node_step,
            name: node_name,
            log_index: Some(index),
            skipped,
        });
    }
    Ok(LastGood {
        digest: None,
        step: None,
        name: None,
        log_index: None,
        explanation: format!(
            "every version of {root} with the same {lineage} is revoked or derived from a revoked artifact"
        ),
        skipped,
    })
}

/// Runs `pedigree impact`.
///
/// # Errors
///
/// On a bad argument or a failed request to the log.
pub fn run(args: ImpactArgs, out: &Output) -> Result<()> {
    let (_, digest) = resolve_artifact(&args.artifact)?;
    let root = digest.to_string();
    let (revokers, signer_may_revoke, trusted) = match &args.policy {
        Some(p) => {
            let policy = load_policy(p)?;
            (
                policy
                    .revocation
                    .revokers
                    .iter()
                    .map(|k| k.fingerprint().to_string())
                    .collect(),
                policy.revocation.signer_may_revoke,
                Some(policy.log),
            )
        }
        None => (BTreeSet::new(), true, None),
    };
    let mut log = Log {
        url: &args.log,
        revokers,
        signer_may_revoke,
        trusted,
        revocations: BTreeMap::new(),
    };
    let down = log.lineage(&root, "downstream")?;
    let truncated = down["truncated"].as_bool().unwrap_or(false);
    let up = log.lineage(&root, "upstream")?;
    let root_producers = producers(entries(&up).values(), &root);
    if root_producers.is_empty() && down["edges"].as_array().is_none_or(|e| e.is_empty()) {
        bail!("the log has no attestation about {root}");
    }
    let revocations = log.revocations(&root, &root_producers)?;
    let tree = Node {
        digest: root.clone(),
        step: None,
        log_index: None,
        signers: root_producers.iter().cloned().collect(),
        deployment: false,
        revoked: revocations.iter().any(|r| r.authorised),
        revocations,
        children: Vec::new(),
    };
    let tree = build_tree(&mut log, &down, tree, &mut Vec::new())
        .context("couldn't build the impact tree")?;
    let mut deployed = Vec::new();
    deployments(&tree, &mut deployed);
    let last_good = if args.last_good {
        Some(last_good(&mut log, &root).context("couldn't find the last good version")?)
    } else {
        None
    };
    let json = serde_json::json!({
        "artifact": root,
        "tree": tree,
        "deployments": deployed.iter().map(|d| serde_json::json!({
            "digest": d.digest, "log_index": d.log_index, "signers": d.signers, "revoked": d.revoked,
        })).collect::<Vec<_>>(),
        "truncated": truncated,
        "last_good": last_good,
    });
    out.print(&json, || {
        let mut text = String::new();
        print_node(&tree, 0, &mut text);
        text.push_str(&format!("{} deployment(s) affected\n", deployed.len()));
        if truncated {
            text.push_str(
                "warning: the log cut the walk short (truncated); more may be affected\n",
            );
        }
        if let Some(lg) = &last_good {
            match &lg.digest {
                Some(d) => text.push_str(&format!("last good: {d}\n  {}\n", lg.explanation)),
                None => text.push_str(&format!("last good: none\n  {}\n", lg.explanation)),
            }
            for (d, why) in &lg.skipped {
                text.push_str(&format!("  skipped {d}: {why}\n"));
            }
        }
        text.trim_end().to_string()
    });
    Ok(())
}
