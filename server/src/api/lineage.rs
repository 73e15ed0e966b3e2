//! `GET /api/v1/lineage/<digest>`: the graph of attestations linking materials to
//! subjects (`spec/api.md` section 3.6, `spec/predicates.md`).
//!
//! An attestation whose statement has subject S and materials M1..Mn justifies the edges
//! Mi -> S. Upstream of X are the entries with X as a subject, then their materials'
//! upstream, and so on; downstream are the entries with X as a material. The walk is
//! breadth-first, bounded by depth and by node count, over the secondary indexes only.

use super::{ApiError, AppState};
use crate::layout::IndexKind;
use actix_web::{web, HttpResponse};
use pedigree_core::dsse::Envelope;
use pedigree_core::slsa::Provenance;
use pedigree_core::statement::{Digest, Statement};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

const DEFAULT_DEPTH: u64 = 16;
const MAX_DEPTH: u64 = 64;
/// Most nodes in one answer; a larger graph is cut and marked `truncated`.
const MAX_NODES: usize = 1_000;
/// Most entries followed per node and direction.
const MAX_ENTRIES_PER_NODE: usize = 64;
/// Most entries read in one answer: bounds the work of one unauthenticated request.
const MAX_ENTRIES: usize = 1_000;

#[derive(Serialize)]
struct Edge {
    from: String,
    to: String,
    entries: Vec<u64>,
}

#[derive(Serialize)]
struct EntryInfo {
    log_index: u64,
    predicate_type: String,
    build_type: Option<String>,
    step: Option<&'static str>,
    signers: Vec<String>,
    subjects: Vec<String>,
    materials: Vec<String>,
    integrated_time_ms: u64,
}

#[derive(Serialize)]
struct Graph {
    root: String,
    direction: &'static str,
    depth: u64,
    nodes: Vec<String>,
    edges: Vec<Edge>,
    entries: Vec<EntryInfo>,
    truncated: bool,
}

/// The build type of a logged entry, read from its envelope (SLSA provenance only).
fn build_type(state: &AppState, index: u64) -> Option<String> {
    let stored = state.engine.entry(index).ok()?;
    let env = Envelope::from_json(&stored.envelope_json).ok()?;
    let statement = Statement::from_json(&env.payload).ok()?;
    Provenance::from_statement(&statement)
        .ok()
        .flatten()
        .map(|p| p.build_definition.build_type)
}

/// `GET /api/v1/lineage/{digest}?direction=upstream|downstream&depth=`.
pub async fn lineage(
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let root: Digest = path.parse().map_err(|e| {
        ApiError::bad_request(
            "invalid_digest",
            format!("{:?}: {e}", super::truncate(&path)),
        )
    })?;
    let upstream = match query.get("direction").map(String::as_str) {
        None | Some("upstream") => true,
        Some("downstream") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "direction {:?} must be upstream or downstream",
                    super::truncate(other)
                ),
            ))
        }
    };
    let depth = super::query_u64(&query, "depth")?.unwrap_or(DEFAULT_DEPTH);
    if depth == 0 || depth > MAX_DEPTH {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("depth must be 1..={MAX_DEPTH}"),
        ));
    }
    let engine = &state.engine;
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut edges: BTreeMap<(String, String), BTreeSet<u64>> = BTreeMap::new();
    let mut entries: BTreeMap<u64, EntryInfo> = BTreeMap::new();
    let mut queue = VecDeque::from([(root.to_string(), 0u64)]);
    nodes.insert(root.to_string());
    let mut truncated = false;
    while let Some((node, level)) = queue.pop_front() {
        if level >= depth {
            continue;
        }
        let kind = if upstream {
            IndexKind::Subject
        } else {
            IndexKind::Material
        };
        let hits = engine.search(kind, &node, None, MAX_ENTRIES_PER_NODE + 1)?;
        if hits.len() > MAX_ENTRIES_PER_NODE {
            truncated = true;
        }
        for index in hits.into_iter().take(MAX_ENTRIES_PER_NODE) {
            if !entries.contains_key(&index) && entries.len() >= MAX_ENTRIES {
                truncated = true;
                break;
            }
            let record = engine.record(index)?;
            let next: Vec<String> = if upstream {
                record.materials.iter().map(ToString::to_string).collect()
            } else {
                record.subjects.iter().map(ToString::to_string).collect()
            };
            for other in next {
                if !nodes.contains(&other) {
                    if nodes.len() >= MAX_NODES {
                        // Every edge names two listed nodes: drop the edge with the node.
                        truncated = true;
                        continue;
                    }
                    nodes.insert(other.clone());
                    queue.push_back((other.clone(), level + 1));
                }
                let key = if upstream {
                    (other, node.clone())
                } else {
                    (node.clone(), other)
                };
                edges.entry(key).or_default().insert(index);
            }
            if let std::collections::btree_map::Entry::Vacant(slot) = entries.entry(index) {
                let bt = build_type(&state, index);
                slot.insert(EntryInfo {
                    log_index: index,
                    predicate_type: record.predicate_type.clone(),
                    step: bt
                        .as_deref()
                        .and_then(pedigree_core::slsa::Step::from_build_type)
                        .map(|s| s.name()),
                    build_type: bt,
                    signers: record.signers.iter().map(ToString::to_string).collect(),
                    subjects: record.subjects.iter().map(ToString::to_string).collect(),
                    materials: record.materials.iter().map(ToString::to_string).collect(),
                    integrated_time_ms: record.integrated_time_ms,
                });
            }
        }
    }
    Ok(HttpResponse::Ok().json(Graph {
        root: root.to_string(),
        direction: if upstream { "upstream" } else { "downstream" },
        depth,
        nodes: nodes.into_iter().collect(),
        edges: edges
            .into_iter()
            .map(|((from, to), e)| Edge {
                from,
                to,
                entries: e.into_iter().collect(),
            })
            .collect(),
        entries: entries.into_values().collect(),
        truncated,
    }))
}
