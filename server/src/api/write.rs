//! `POST /api/v1/entries`: admission and submission (`spec/api.md` section 3.1).

use super::{inclusion_against, ApiError, AppState, InclusionProof};
use crate::sequencer::SubmitError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures_util::StreamExt as _;
use pedigree_core::dsse::Envelope;
use pedigree_core::entry;
use pedigree_core::keys::{KeyError, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest request body whose single signature is checked on the async worker itself.
const INLINE_ADMIT_MAX_BODY_BYTES: usize = 64 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest<'a> {
    #[serde(borrow)]
    envelope: &'a RawValue,
    verifiers: Vec<String>,
}

#[derive(Serialize)]
struct SubmitResponse {
    log_index: u64,
    leaf_hash: String,
    /// The encoded leaf record, base64: what the leaf hash is the hash of.
    leaf: String,
    inclusion_proof: InclusionProof,
    checkpoint: String,
}

/// Reads the body, refusing it as soon as it passes the cap so an oversized upload
/// costs no more than the cap in memory, and refusing it when it does not arrive within
/// `timeout`: actix-web times out slow headers but not a body that stalls, and a
/// stalled body would hold its connection and this handler open forever.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    cap: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds {cap} bytes"),
        )
    };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len: usize = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::bad_request("invalid_request", "bad Content-Length"))?;
        if len > cap {
            return Err(too_large());
        }
    }
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request("invalid_request", format!("couldn't read body: {e}"))
            })?;
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    actix_web::rt::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            ))
        })
}

fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json, got {:?}",
                super::truncate(ct)
            ),
        ))
    }
}

fn parse_verifier(i: usize, pem: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_pem(pem).map_err(|e| {
        let msg = format!("verifier {i}: {}", super::error::chain(&e));
        match e {
            KeyError::UnsupportedAlgorithm { .. } => {
                ApiError::unprocessable("unsupported_key_type", msg)
            }
            KeyError::WeakKey => ApiError::unprocessable("weak_key", msg),
            _ => ApiError::bad_request("invalid_verifier", msg),
        }
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Handles a submission: parse, admit, queue, wait for the batch, answer with a proof.
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_content_type(&req)?;
    let body = read_body(&req, payload, state.max_body_bytes, state.client_timeout).await?;
    // serde reads a struct from a JSON array too; the API takes objects only.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::bad_request(
            "invalid_request",
            "request body must be a JSON object",
        ));
    }
    let request: SubmitRequest = serde_json::from_slice(&body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_request"
        } else {
            "invalid_json"
        };
        ApiError::bad_request(code, format!("request body: {e}"))
    })?;
    if request.verifiers.len() > state.limits.max_verifiers {
        return Err(ApiError::unprocessable(
            "too_many_verifiers",
            format!(
                "too many verifiers: {}, limit {}",
                request.verifiers.len(),
                state.limits.max_verifiers
            ),
        ));
    }
    let envelope = Envelope::from_json(request.envelope.get().as_bytes())
        .map_err(|e| ApiError::bad_request("invalid_envelope", super::error::chain(&e)))?;
    let verifiers = request
        .verifiers
        .iter()
        .enumerate()
        .map(|(i, pem)| parse_verifier(i, pem))
        .collect::<Result<Vec<_>, _>>()?;

    let engine = &state.engine;
    let limits = state.limits;
    // A resubmission is checked like a first submission, so bad input is refused
    // whatever is logged. Signature checks are CPU work: a small submission with one
    // signature and one key (about 70 µs) is checked here, because under load handing
    // it to the blocking pool and back cost about 40 µs more CPU per submission
    // (BENCHMARKS.md); anything larger goes to the blocking pool, so an async worker
    // is never held for long.
    let small = envelope.signatures.len() == 1
        && verifiers.len() == 1
        && body.len() <= INLINE_ADMIT_MAX_BODY_BYTES;
    let admitted = if small {
        entry::admit(&envelope, &verifiers, &limits, now_ms())?
    } else {
        web::block(move || entry::admit(&envelope, &verifiers, &limits, now_ms()))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })??
    };
    // Idempotency: a logged envelope gets its existing index without joining a batch.
    if let Some(index) = engine.find_envelope(&admitted.record.envelope_sha256)? {
        return answer(&state, index, StatusCode::OK);
    }
    let leaf = admitted.record.encode();
    let rx = state.sequencer.submit(admitted).map_err(|e| match e {
        SubmitError::Overloaded => ApiError::overloaded(),
        SubmitError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sequencer_stopped",
            "the sequencer has stopped",
        ),
    })?;
    let committed = rx.await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sequencer_stopped",
            "the sequencer dropped the submission",
        )
    })?;
    let sequenced = committed.map_err(|e| ApiError::from(&*e))?;
    let (outcome, cp) = (sequenced.outcome, sequenced.checkpoint);
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    // The batch's own hashes hold the whole proof: no storage read per answer.
    let hashes =
        engine.inclusion_proof_after(&sequenced.hashes, outcome.leaf_index, cp.tree_size)?;
    let proof = InclusionProof {
        log_index: outcome.leaf_index,
        tree_size: cp.tree_size,
        root_hash: super::hex_hash(&cp.root_hash),
        hashes: hashes.iter().map(super::hex_hash).collect(),
    };
    // A duplicate within the batch was admitted at another time: report the stored leaf.
    let leaf = if outcome.duplicate {
        engine.record(outcome.leaf_index)?.encode()
    } else {
        leaf
    };
    Ok(HttpResponse::build(status).json(SubmitResponse {
        log_index: outcome.leaf_index,
        leaf_hash: super::hex_hash(&outcome.leaf_hash),
        leaf: B64.encode(leaf),
        inclusion_proof: proof,
        checkpoint: cp.note_text().to_string(),
    }))
}

/// Answers for an entry already in the log, with a proof to the latest checkpoint.
fn answer(state: &AppState, index: u64, status: StatusCode) -> Result<HttpResponse, ApiError> {
    let cp = state.engine.checkpoint();
    let proof = inclusion_against(&state.engine, index, cp.tree_size, &cp.root_hash)?;
    Ok(HttpResponse::build(status).json(SubmitResponse {
        log_index: index,
        leaf_hash: super::hex_hash(&state.engine.leaf_hash(index)?),
        leaf: B64.encode(state.engine.record(index)?.encode()),
        inclusion_proof: proof,
        checkpoint: cp.note_text().to_string(),
    }))
}
