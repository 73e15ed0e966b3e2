//! Logs and request ids: the `tracing` subscriber in human or JSON form, and the
//! middleware that gives every HTTP request an id, echoes it in `X-Request-Id` and
//! opens a span carrying it, so that every log line written while serving the request
//! names it.

use crate::config::LogFormat;
use crate::metrics::Metrics;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::header::{HeaderName, HeaderValue};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

/// The request and response header carrying the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client; longer or odd ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Installs the global subscriber writing to stderr, filtered by `PEDIGREE_LOG`
/// (default `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEDIGREE_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: escape codes would litter files and collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        // Span fields (the request id) go in each line's `spans`, so a collector can
        // join every line of a request.
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

/// The id a request is known by: the client's `X-Request-Id` when it is 1 to 64
/// characters of `[A-Za-z0-9._:-]` (so it cannot forge log lines or headers), otherwise
/// 16 fresh random bytes in hex.
pub fn request_id(incoming: Option<&HeaderValue>) -> String {
    if let Some(id) = incoming.and_then(|v| v.to_str().ok()) {
        if (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return id.to_string();
        }
    }
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}

/// The outermost middleware (use with `App::wrap_fn`): assigns the request id, runs the
/// request inside a `request` span, counts the response status, logs one line when the
/// response is ready (warn for 5xx other than 503, debug otherwise), and adds the id to
/// the header and to JSON error bodies.
pub fn middleware<S, B>(
    req: ServiceRequest,
    srv: &S,
    metrics: Arc<Metrics>,
) -> impl Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let id = request_id(req.headers().get(&REQUEST_ID));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path()
    );
    let started = Instant::now();
    let fut = span.in_scope(|| srv.call(req));
    async move {
        let res = fut.await?;
        let status = res.status().as_u16();
        metrics.observe_status(status);
        let took_ms = started.elapsed().as_secs_f64() * 1000.0;
        // 503 is load shedding (overloaded, storage full): counted in the metrics, and
        // not logged per request, so that overload does not also flood the logs.
        if status >= 500 && status != 503 {
            tracing::warn!(status, took_ms, "request failed");
        } else {
            tracing::debug!(status, took_ms, "request answered");
        }
        let mut res = if status >= 400 && is_json(&res) {
            with_request_id(res, &id).await
        } else {
            res.map_into_boxed_body()
        };
        if let Ok(value) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(res)
    }
    .instrument(span)
}

fn is_json<B>(res: &ServiceResponse<B>) -> bool {
    res.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Adds `"request_id"` to a JSON error body (spec/api.md section 5.1). Error bodies are
/// small and built by the server, so reading one whole costs little; a body that is not
/// a JSON object is passed on unchanged.
async fn with_request_id<B: MessageBody>(
    res: ServiceResponse<B>,
    id: &str,
) -> ServiceResponse<BoxBody> {
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            tracing::warn!("couldn't read an error body to add the request id");
            return ServiceResponse::new(req, head.set_body(BoxBody::new(())));
        }
    };
    let body = match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
        Ok(mut object) => {
            object.insert("request_id".into(), id.into());
            serde_json::to_vec(&object).map_or(bytes, Into::into)
        }
        Err(_) => bytes,
    };
    ServiceResponse::new(req, head.set_body(BoxBody::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_incoming_ids_are_kept_and_others_replaced() {
        let keep = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(request_id(Some(&keep)), "abc-123_x.y:z");
        for bad in ["", "has space", "quote\"", &"a".repeat(65)] {
            let v = HeaderValue::from_str(bad).unwrap();
            let id = request_id(Some(&v));
            assert_eq!(id.len(), 32, "{bad:?} -> {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(request_id(None), request_id(None));
    }
}
