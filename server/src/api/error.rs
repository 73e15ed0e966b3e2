//! The one place that maps errors to HTTP statuses (`spec/api.md` section 5).
//!
//! Three kinds are kept apart: client errors (4xx, the request was wrong and nothing
//! was stored), transient errors (503 with `Retry-After`, try again), and fatal engine
//! states (503 too, but the sequencer has stopped rather than risk a split view).

use crate::engine::EngineError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use pedigree_core::dsse::DsseError;
use pedigree_core::entry::EntryError;
use serde::Serialize;
use std::fmt;

/// An API error: a status, a stable machine-readable code and a human message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, listed in `spec/api.md`.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422 with `code`.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 `overloaded`: the sequencer queue is full.
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the sequencer queue is full; retry after the time in Retry-After",
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.insert_header((header::RETRY_AFTER, "1"));
        }
        // The rest of an oversized or stalled body is not worth reading: close instead.
        if self.status == StatusCode::PAYLOAD_TOO_LARGE
            || self.status == StatusCode::REQUEST_TIMEOUT
        {
            resp.force_close();
        }
        resp.json(Body {
            error: self.code,
            message: &self.message,
        })
    }
}

/// The full message of an error and its sources, `outer: inner: innermost`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

impl From<EntryError> for ApiError {
    fn from(e: EntryError) -> Self {
        let code = match &e {
            EntryError::PayloadType { .. } => {
                return ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_payload_type",
                    chain(&e),
                )
            }
            EntryError::TooMany { what, .. } => match *what {
                "signatures" => "too_many_signatures",
                "verifiers" => "too_many_verifiers",
                "subjects" => "too_many_subjects",
                _ => "too_many_materials",
            },
            EntryError::Signature(d) => match d {
                DsseError::NoSignatures => "no_signatures",
                DsseError::NoKeys => "no_verifiers",
                DsseError::UnusedKey { .. } => "unused_verifier",
                _ => "signature_invalid",
            },
            EntryError::Statement(_) => "invalid_statement",
            EntryError::Provenance(_) => "invalid_provenance",
            EntryError::RecordTooLarge { .. } => "entry_too_large",
        };
        ApiError::unprocessable(code, chain(&e))
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::from(&e)
    }
}

impl From<&EngineError> for ApiError {
    fn from(e: &EngineError) -> Self {
        match e {
            EngineError::NotFound(_) => ApiError::not_found(e.to_string()),
            EngineError::Proof(_) => ApiError::bad_request("invalid_proof_request", chain(e)),
            EngineError::Store(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                chain(e),
            ),
            EngineError::Poisoned(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "sequencer_stopped",
                chain(e),
            ),
            EngineError::Corrupt(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "log_corrupt", chain(e))
            }
        }
    }
}
