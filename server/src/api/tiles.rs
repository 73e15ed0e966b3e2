//! C2SP tlog-tiles endpoints: `/checkpoint`, `/tile/<L>/<N>[.p/<W>]` and
//! `/tile/entries/<N>[.p/<W>]`, byte-exact so that existing tlog tooling can read the log.

use super::{ApiError, AppState};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use pedigree_core::tiles::TileCoord;

/// `GET /checkpoint`: the latest signed checkpoint note, or with witnesses configured the
/// newest one that carries enough cosignatures (503 until there is one).
pub async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let note = match &state.cosigned {
        None => state.engine.checkpoint().note.clone(),
        Some(cosigned) => cosigned.note().map(|n| n.to_vec()).ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_cosigned",
                "no checkpoint has enough witness cosignatures yet",
            )
        })?,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(note))
}

/// `GET /tile/...`: hash tiles and entry bundles. Full tiles never change, so they are
/// cacheable forever; partial tiles are replaced as the tree grows.
pub async fn tile(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let coord = tile_coord(path.as_str())?;
    let data = state.engine.tile(&coord)?;
    Ok(tile_response(&coord, data))
}

/// The tile (or entry bundle) a `/tile/{path}` route names, for the log's API and the
/// mirror's alike.
///
/// # Errors
///
/// 400 `invalid_tile_path` when `path` is not a C2SP tlog-tiles path.
pub fn tile_coord(path: &str) -> Result<TileCoord, ApiError> {
    TileCoord::from_path(&format!("tile/{path}"))
        .map_err(|e| ApiError::bad_request("invalid_tile_path", e.to_string()))
}

/// A tile's answer: full tiles never change, so caches may keep them for a year;
/// partial ones grow and must be revalidated.
pub fn tile_response(coord: &TileCoord, data: Vec<u8>) -> HttpResponse {
    let cache = if coord.is_full() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::CACHE_CONTROL, cache))
        .body(data)
}
