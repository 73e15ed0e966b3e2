//! Read endpoints: log info, entries, search, proofs, health and metrics
//! (`spec/api.md` section 3.2 onwards).

use super::{hex_hash, inclusion_against, query_u64, ApiError, AppState, InclusionProof};
use crate::engine::StoredEntry;
use crate::layout::IndexKind;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use pedigree_core::entry::LeafRecord;
use pedigree_core::keys::PublicKey;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::time::Duration;

/// Default and largest page of search results.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Serialize)]
struct LogInfo<'a> {
    origin: &'a str,
    verifier_key: String,
    tree_size: u64,
    root_hash: String,
    checkpoint: &'a str,
}

/// `GET /api/v1/log`.
pub async fn log_info(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let cp = state.engine.checkpoint();
    Ok(HttpResponse::Ok().json(LogInfo {
        origin: &cp.origin,
        verifier_key: state.engine.signer().verifier_key(),
        tree_size: cp.tree_size,
        root_hash: hex_hash(&cp.root_hash),
        checkpoint: cp.note_text(),
    }))
}

/// The leaf record in JSON.
#[derive(Serialize)]
pub struct RecordJson {
    envelope_sha256: String,
    integrated_time_ms: u64,
    payload_type: String,
    predicate_type: String,
    signers: Vec<String>,
    subjects: Vec<String>,
    materials: Vec<String>,
}

impl From<&LeafRecord> for RecordJson {
    fn from(r: &LeafRecord) -> Self {
        Self {
            envelope_sha256: hex::encode(r.envelope_sha256),
            integrated_time_ms: r.integrated_time_ms,
            payload_type: r.payload_type.clone(),
            predicate_type: r.predicate_type.clone(),
            signers: r.signers.iter().map(ToString::to_string).collect(),
            subjects: r.subjects.iter().map(ToString::to_string).collect(),
            materials: r.materials.iter().map(ToString::to_string).collect(),
        }
    }
}

#[derive(Serialize)]
struct EntryJson {
    log_index: u64,
    leaf_hash: String,
    /// The encoded leaf record, base64: the exact bytes hashed into the tree.
    leaf: String,
    record: RecordJson,
    envelope: Box<RawValue>,
    verifiers: Vec<String>,
    inclusion_proof: InclusionProof,
    checkpoint: String,
}

fn entry_json(state: &AppState, e: StoredEntry) -> Result<EntryJson, ApiError> {
    let cp = state.engine.checkpoint();
    let envelope = String::from_utf8(e.envelope_json)
        .ok()
        .and_then(|s| RawValue::from_string(s).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "log_corrupt",
                "stored envelope is not JSON",
            )
        })?;
    let verifiers = e
        .signer_keys_der
        .iter()
        .map(|der| PublicKey::from_spki_der(der).map(|k| k.to_pem()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "log_corrupt",
                format!("stored key: {err}"),
            )
        })?;
    Ok(EntryJson {
        log_index: e.leaf_index,
        leaf_hash: hex_hash(&e.record.leaf_hash()),
        leaf: base64::engine::general_purpose::STANDARD.encode(&e.record_bytes),
        record: RecordJson::from(&e.record),
        envelope,
        verifiers,
        inclusion_proof: inclusion_against(
            &state.engine,
            e.leaf_index,
            cp.tree_size,
            &cp.root_hash,
        )?,
        checkpoint: cp.note_text().to_string(),
    })
}

/// `GET /api/v1/entries/{index}`.
pub async fn entry(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let digits = !path.is_empty() && path.bytes().all(|b| b.is_ascii_digit());
    let index: u64 = path.parse().ok().filter(|_| digits).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_index",
            format!(
                "entry index {:?} is not an unsigned integer",
                super::truncate(&path)
            ),
        )
    })?;
    let stored = state.engine.entry(index)?;
    Ok(HttpResponse::Ok().json(entry_json(&state, stored)?))
}

#[derive(Serialize)]
struct SearchHit {
    log_index: u64,
    record: RecordJson,
}

#[derive(Serialize)]
struct SearchPage {
    entries: Vec<SearchHit>,
    next_cursor: Option<String>,
}

/// `GET /api/v1/entries?subject=|key=|material=|predicate_type=` with `cursor` and `limit`.
pub async fn search(
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filters: Vec<(IndexKind, &String)> = [
        ("subject", IndexKind::Subject),
        ("key", IndexKind::Signer),
        ("material", IndexKind::Material),
        ("predicate_type", IndexKind::PredicateType),
    ]
    .iter()
    .filter_map(|(name, kind)| q.get(*name).map(|v| (*kind, v)))
    .collect();
    let [(kind, term)] = filters.as_slice() else {
        return Err(ApiError::bad_request(
            "invalid_query",
            "give exactly one of subject, key, material or predicate_type",
        ));
    };
    match kind {
        IndexKind::Subject | IndexKind::Material => {
            term.parse::<pedigree_core::statement::Digest>()
                .map_err(|e| {
                    ApiError::bad_request(
                        "invalid_digest",
                        format!("{:?}: {e}", super::truncate(term)),
                    )
                })?;
        }
        IndexKind::Signer => {
            if kind.prefix(term).is_none() {
                return Err(ApiError::bad_request(
                    "invalid_key",
                    "key must be a 64-hex-digit key fingerprint",
                ));
            }
        }
        IndexKind::PredicateType => {}
    }
    let limit = match query_u64(&q, "limit")? {
        None => DEFAULT_PAGE,
        Some(0) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit must be at least 1",
            ))
        }
        Some(n) => (n as usize).min(MAX_PAGE),
    };
    let after = query_u64(&q, "cursor")?;
    let indices = state.engine.search(*kind, term, after, limit)?;
    let mut entries = Vec::with_capacity(indices.len());
    for i in &indices {
        entries.push(SearchHit {
            log_index: *i,
            record: RecordJson::from(&state.engine.record(*i)?),
        });
    }
    let next_cursor = (indices.len() == limit).then(|| indices[limit - 1].to_string());
    Ok(HttpResponse::Ok().json(SearchPage {
        entries,
        next_cursor,
    }))
}

/// `GET /api/v1/proof/inclusion?index=&tree_size=`.
pub async fn inclusion(
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let index = query_u64(&query, "index")?
        .ok_or_else(|| ApiError::bad_request("invalid_query", "index is required"))?;
    let cp = state.engine.checkpoint();
    let tree_size = query_u64(&query, "tree_size")?.unwrap_or(cp.tree_size);
    if tree_size > cp.tree_size {
        return Err(ApiError::bad_request(
            "invalid_proof_request",
            format!(
                "tree_size {tree_size} is beyond the current tree size {}",
                cp.tree_size
            ),
        ));
    }
    let root = state.engine.root_at(tree_size)?;
    Ok(HttpResponse::Ok().json(inclusion_against(&state.engine, index, tree_size, &root)?))
}

#[derive(Serialize)]
struct ConsistencyJson {
    from: u64,
    to: u64,
    old_root_hash: String,
    root_hash: String,
    hashes: Vec<String>,
}

/// `GET /api/v1/proof/consistency?from=&to=`.
pub async fn consistency(
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let from = query_u64(&query, "from")?
        .ok_or_else(|| ApiError::bad_request("invalid_query", "from is required"))?;
    let cp = state.engine.checkpoint();
    let to = query_u64(&query, "to")?.unwrap_or(cp.tree_size);
    if to > cp.tree_size {
        return Err(ApiError::bad_request(
            "invalid_proof_request",
            format!("to {to} is beyond the current tree size {}", cp.tree_size),
        ));
    }
    let hashes = state.engine.consistency_proof(from, to)?;
    Ok(HttpResponse::Ok().json(ConsistencyJson {
        from,
        to,
        old_root_hash: hex_hash(&state.engine.root_at(from)?),
        root_hash: hex_hash(&state.engine.root_at(to)?),
        hashes: hashes.iter().map(hex_hash).collect(),
    }))
}

/// `GET /healthz`: 200 when the sequencer makes progress and storage accepts writes.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if let Some(reason) = state.engine.poisoned() {
        return unhealthy(&reason);
    }
    if state.sequencer.stalled(Duration::from_secs(10)) {
        return unhealthy("the sequencer has not committed for 10 s with work queued");
    }
    if let Err(e) = state.engine.probe_storage() {
        return unhealthy(&format!("storage is not writable: {e}"));
    }
    HttpResponse::Ok()
        .json(serde_json::json!({"status": "ok", "tree_size": state.engine.checkpoint().tree_size}))
}

fn unhealthy(reason: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .json(serde_json::json!({"error": "unhealthy", "message": reason}))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(
            state
                .metrics
                .render(state.sequencer.queue_depth(), state.engine.hash_cache_len()),
        )
}
