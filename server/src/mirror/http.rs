//! The mirror's read API (`spec/api.md` section 7.3): the checkpoint, tiles, entries and
//! proofs from the verified copy; writes answer 405 naming the primary.
//!
//! Proofs are built from the copy's hash tiles, authenticated again against the held
//! checkpoint on every request (`pedigree_core::tilereader`), so a copy damaged on disk
//! yields an error, never a wrong proof.

use super::{prefix_of_full, with_tiles, Mirror, ProveError};
use crate::api::{hex_hash, query_u64, tile_coord, tile_response, ApiError, InclusionProof};
use crate::staticdir::{StaticDir, ENTRIES_DIR};
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{Context as _, Result};
use pedigree_core::checkpoint::SignedCheckpoint;
use pedigree_core::tilereader::TileSet;
use pedigree_core::tiles::TileCoord;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

type State = web::Data<Arc<Mirror>>;

/// Serves the read API of `mirror` on `listen` until the process stops.
///
/// # Errors
///
/// When the address cannot be bound.
pub fn serve(mirror: Arc<Mirror>, listen: SocketAddr) -> Result<()> {
    let primary = mirror.primary.clone();
    let vkey = mirror.verifier.to_vkey();
    actix_web::rt::System::new().block_on(async move {
        let state = web::Data::new(mirror);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::bad_request("invalid_query", e.to_string()).into()
                }))
                .service(get("/checkpoint", checkpoint))
                .service(get("/tile/{path:.*}", tile))
                .service(get("/api/v1/log", log_info))
                .service(get("/api/v1/entries", search))
                .service(get("/api/v1/entries/{index}", entry))
                .service(get("/api/v1/proof/inclusion", inclusion))
                .service(get("/api/v1/proof/consistency", consistency))
                .service(get("/healthz", healthz))
                .default_service(web::to(fallback))
        })
        .workers(2)
        .bind(listen)
        .with_context(|| format!("couldn't listen on {listen}"))?;
        for addr in server.addrs() {
            println!("pedigree-server mirror listening on http://{addr}");
        }
        println!("mirror of: {primary}");
        println!("verifier key: {vkey}");
        server.run().await.context("HTTP server failed")
    })
}

/// A resource answering GET with `handler` and anything else with [`fallback`].
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler))
        .default_service(web::to(fallback))
}

fn held(state: &State) -> Result<Arc<SignedCheckpoint>, ApiError> {
    state.checkpoint().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_mirrored_yet",
            format!("no checkpoint of {} has been verified yet", state.primary),
        )
    })
}

async fn checkpoint(state: State) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(held(&state)?.note.clone()))
}

async fn tile(path: web::Path<String>, state: State) -> Result<HttpResponse, ApiError> {
    let cp = held(&state)?;
    let coord = tile_coord(path.as_str())?;
    if !coord.exists_in(cp.tree_size) {
        return Err(ApiError::not_found(format!(
            "tile {} not found",
            coord.path()
        )));
    }
    let data = read_tile(&state, coord)?;
    Ok(tile_response(&coord, data))
}

/// A tile of the copy at `coord`'s width: its own file, or the prefix of the wider
/// tile it grew into.
fn read_tile(state: &Mirror, coord: TileCoord) -> Result<Vec<u8>, ApiError> {
    let dir = StaticDir::new(&state.dir);
    if let Some(data) = dir.read(&coord.path()).map_err(internal)? {
        return Ok(data);
    }
    let full = crate::staticdir::full(coord);
    if let Some(data) = dir.read(&full.path()).map_err(internal)? {
        return Ok(prefix_of_full(coord, data));
    }
    // The copy's own partial tile at the held width, wider than the one asked for.
    let cp = state.checkpoint();
    let held = cp.and_then(|cp| {
        pedigree_core::tilereader::tile_for(coord.level, coord.index * 256, cp.tree_size)
    });
    if let Some(held) = held.filter(|h| h.width > coord.width) {
        let held = TileCoord {
            entries: coord.entries,
            ..held
        };
        if let Some(data) = dir.read(&held.path()).map_err(internal)? {
            return Ok(prefix_of_full(coord, data));
        }
    }
    Err(ApiError::not_found(format!(
        "tile {} not found",
        coord.path()
    )))
}

async fn log_info(state: State) -> Result<HttpResponse, ApiError> {
    let cp = held(&state)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "origin": cp.origin,
        "verifier_key": state.verifier.to_vkey(),
        "tree_size": cp.tree_size,
        "root_hash": hex_hash(&cp.root_hash),
        "checkpoint": cp.note_text(),
        "mirror_of": state.primary,
    })))
}

async fn entry(path: web::Path<String>, state: State) -> Result<HttpResponse, ApiError> {
    let cp = held(&state)?;
    let index: u64 = path
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_path", "index is not an unsigned integer"))?;
    if index >= cp.tree_size {
        return Err(ApiError::not_found(format!("entry {index} not found")));
    }
    let body = StaticDir::new(&state.dir)
        .read(&format!("{ENTRIES_DIR}/{index}"))
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("entry {index} not found")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

async fn search(state: State) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_served_by_mirror",
        format!(
            "search is not served by this read-only mirror; query the primary {}",
            state.primary
        ),
    ))
}

/// Runs a proof over the copy's tiles, authenticated against the held checkpoint.
fn from_tiles<T>(
    state: &Mirror,
    op: impl Fn(&TileSet) -> Result<T, pedigree_core::tilereader::TileProofError>,
) -> Result<T, ApiError> {
    let mut tiles = TileSet::new();
    with_tiles(
        &mut tiles,
        |coord| read_tile(state, coord).map_err(|e| anyhow::anyhow!(e.message)),
        op,
    )
    .map_err(|e| match e {
        ProveError::Fetch(e) => internal(e),
        ProveError::Proof(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mirror_corrupt",
            format!("the mirrored tiles do not prove it: {e}"),
        ),
    })
}

async fn inclusion(
    query: web::Query<HashMap<String, String>>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let cp = held(&state)?;
    let index = query_u64(&query, "index")?
        .ok_or_else(|| ApiError::bad_request("invalid_query", "index is required"))?;
    let tree_size = query_u64(&query, "tree_size")?.unwrap_or(cp.tree_size);
    if tree_size > cp.tree_size || index >= tree_size {
        return Err(ApiError::bad_request(
            "invalid_proof_request",
            format!(
                "index {index} is not below tree_size {tree_size}, or tree_size is beyond the mirrored tree size {}",
                cp.tree_size
            ),
        ));
    }
    let root = from_tiles(&state, |s| {
        s.tree(cp.tree_size, cp.root_hash).root_at(tree_size)
    })?;
    let hashes = from_tiles(&state, |s| s.tree(tree_size, root).inclusion_proof(index))?;
    Ok(HttpResponse::Ok().json(InclusionProof {
        log_index: index,
        tree_size,
        root_hash: hex_hash(&root),
        hashes: hashes.iter().map(hex_hash).collect(),
    }))
}

async fn consistency(
    query: web::Query<HashMap<String, String>>,
    state: State,
) -> Result<HttpResponse, ApiError> {
    let cp = held(&state)?;
    let from = query_u64(&query, "from")?
        .ok_or_else(|| ApiError::bad_request("invalid_query", "from is required"))?;
    let to = query_u64(&query, "to")?.unwrap_or(cp.tree_size);
    if from == 0 || from > to || to > cp.tree_size {
        return Err(ApiError::bad_request(
            "invalid_proof_request",
            format!(
                "from {from} and to {to} must satisfy 0 < from <= to <= the mirrored tree size {}",
                cp.tree_size
            ),
        ));
    }
    let old_root = from_tiles(&state, |s| s.tree(cp.tree_size, cp.root_hash).root_at(from))?;
    let root = from_tiles(&state, |s| s.tree(cp.tree_size, cp.root_hash).root_at(to))?;
    let hashes = if from == to {
        Vec::new()
    } else {
        from_tiles(&state, |s| s.tree(to, root).consistency_proof(from))?
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": from,
        "to": to,
        "old_root_hash": hex_hash(&old_root),
        "root_hash": hex_hash(&root),
        "hashes": hashes.iter().map(hex_hash).collect::<Vec<_>>(),
    })))
}

async fn healthz(state: State) -> HttpResponse {
    if let Some(alert) = state.alert() {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "error": "mirror_refused",
            "message": alert,
            "primary": state.primary,
        }));
    }
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "tree_size": state.checkpoint().map(|c| c.tree_size),
        "primary": state.primary,
    }))
}

/// Anything else: writes are refused naming the primary; unknown reads are 404.
async fn fallback(req: actix_web::HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    if req.method() == actix_web::http::Method::GET || req.method() == actix_web::http::Method::HEAD
    {
        return Err(ApiError::not_found("no such endpoint"));
    }
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "read_only_mirror",
        format!(
            "this server is a read-only mirror of {}; send {} {} to the primary",
            state.primary,
            req.method(),
            req.path()
        ),
    ))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "mirror_io",
        e.to_string(),
    )
}
