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
    let full_path = format!("tile/{}", path.as_str());
    let coord = TileCoord::from_path(&full_path)
        .map_err(|e| ApiError::bad_request("invalid_tile_path", e.to_string()))?;
    let data = state.engine.tile(&coord)?;
    let cache = if coord.is_full() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::CACHE_CONTROL, cache))
        .body(data))
}
