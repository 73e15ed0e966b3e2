//! The HTTP API (`spec/api.md`): routes, shared state and the JSON shapes common to
//! several endpoints.

mod error;
mod lineage;
mod read;
mod tiles;
mod write;

pub use error::ApiError;
pub use read::RecordJson;
pub use tiles::{tile_coord, tile_response};

use crate::engine::LogEngine;
use crate::metrics::Metrics;
use crate::sequencer::Sequencer;
use crate::storage::RocksStore;
use actix_web::{web, HttpResponse};
use pedigree_core::entry::Limits;
use pedigree_core::merkle::Hash;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything a handler needs.
pub struct AppState {
    /// The log.
    pub engine: Arc<LogEngine<RocksStore>>,
    /// Where submissions go.
    pub sequencer: Sequencer,
    /// Exported metrics.
    pub metrics: Arc<Metrics>,
    /// Per-submission caps.
    pub limits: Limits,
    /// Request body cap.
    pub max_body_bytes: usize,
    /// Time a request body may take to arrive.
    pub client_timeout: std::time::Duration,
    /// The newest cosigned checkpoint, when witnesses are configured; `/checkpoint`
    /// serves it instead of the log's own.
    pub cosigned: Option<Arc<crate::witness::Cosigned>>,
}

/// Registers every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/entries")
            .route(web::post().to(write::submit))
            .route(web::get().to(read::search))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/entries/{index}")
            .route(web::get().to(read::entry))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/log")
            .route(web::get().to(read::log_info))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/proof/inclusion")
            .route(web::get().to(read::inclusion))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/proof/consistency")
            .route(web::get().to(read::consistency))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/lineage/{digest}")
            .route(web::get().to(lineage::lineage))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/checkpoint")
            .route(web::get().to(tiles::checkpoint))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/tile/{path:.*}")
            .route(web::get().to(tiles::tile))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(read::healthz))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(read::metrics))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(not_found));
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this path",
    ))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such endpoint"))
}

/// Lowercase hex of a hash: how the JSON API writes hashes.
pub fn hex_hash(h: &Hash) -> String {
    hex::encode(h.0)
}

/// An inclusion proof in JSON.
#[derive(Serialize)]
pub struct InclusionProof {
    /// Index of the leaf.
    pub log_index: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// That tree's root hash (hex).
    pub root_hash: String,
    /// The audit path (hex), leaf to root.
    pub hashes: Vec<String>,
}

/// Builds the inclusion proof of `leaf_index` against `cp`.
///
/// # Errors
///
/// An [`ApiError`] when the engine cannot prove it.
pub fn inclusion_against(
    engine: &LogEngine<RocksStore>,
    leaf_index: u64,
    tree_size: u64,
    root_hash: &Hash,
) -> Result<InclusionProof, ApiError> {
    let hashes = engine.inclusion_proof(leaf_index, tree_size)?;
    Ok(InclusionProof {
        log_index: leaf_index,
        tree_size,
        root_hash: hex_hash(root_hash),
        hashes: hashes.iter().map(hex_hash).collect(),
    })
}

/// Parses an unsigned integer query parameter, naming it on error.
///
/// # Errors
///
/// 400 `invalid_query` when present but not a `u64`.
pub fn query_u64(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|_| !v.starts_with('+'))
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "query parameter {name}={:?} is not an unsigned integer",
                        truncate(v)
                    ),
                )
            }),
    }
}

/// At most 100 characters of client text, for error messages.
pub fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}
