//! `pedigree witness serve`: a C2SP `tlog-witness` that cosigns the checkpoints of the
//! logs it is configured for, after checking each is consistent with the last one it
//! cosigned (`POST /add-checkpoint`), and serves its latest cosigned checkpoint of each
//! log (`GET /<hex SHA-256 of the origin>/checkpoint`).
//!
//! Every check is core's ([`pedigree_core::witness::protocol::check_add_checkpoint`],
//! [`pedigree_core::checkpoint::LogVerifier`]); this module maps the outcomes to the
//! statuses tlog-witness prescribes and keeps the state ([`state`]).

mod config;
mod state;

pub use config::ServeArgs;

use crate::cmd::key::read_private_key;
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{anyhow, Context as _, Result};
use clap::Subcommand;
use pedigree_core::checkpoint::{CheckpointError, LogVerifier};
use pedigree_core::keys::{Algorithm, PrivateKey};
use pedigree_core::witness::protocol::{
    encode_cosignatures, encode_size, AddCheckpoint, Refusal, SIZE_CONTENT_TYPE,
};
use pedigree_core::witness::{WitnessPolicy, WitnessSigner, WitnessVerifier};
use state::{AddError, LogState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest add-checkpoint body: 63 proof lines and a checkpoint with a few signatures.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Witness commands.
#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Cosign logs' checkpoints over HTTP (C2SP tlog-witness)
    Serve(ServeArgs),
}

struct Witness {
    signer: WitnessSigner,
    logs: HashMap<String, LogState>,
    by_hash: HashMap<String, String>,
}

/// Reads a witness verifier key given inline or as a file holding it.
///
/// # Errors
///
/// When the key does not parse.
pub fn read_witness_key(arg: &str) -> Result<WitnessVerifier> {
    let path = std::path::Path::new(arg);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("couldn't read {arg}"))?
    } else {
        arg.to_owned()
    };
    WitnessVerifier::from_vkey(text.trim())
        .with_context(|| format!("couldn't parse witness verifier key {arg:?}"))
}

/// The witness requirement of `--witness` keys and `--min-witnesses`, on top of a
/// policy file's: keys add to the file's, and the minimum is the larger of the file's
/// and `--min-witnesses` (which defaults to the number of `--witness` keys given).
///
/// # Errors
///
/// When a key does not parse or the minimum exceeds the keys known.
pub fn witness_policy(
    keys: &[String],
    min: Option<usize>,
    base: Option<&WitnessPolicy>,
) -> Result<WitnessPolicy> {
    let mut all: Vec<WitnessVerifier> = base.map(|b| b.witnesses().to_vec()).unwrap_or_default();
    for k in keys {
        all.push(read_witness_key(k)?);
    }
    let min = min
        .unwrap_or(keys.len())
        .max(base.map_or(0, WitnessPolicy::min));
    WitnessPolicy::new(all, min).context("invalid --min-witnesses")
}

/// Runs a witness command.
///
/// # Errors
///
/// When the key, the state or a log key cannot be read, or the address cannot be bound.
pub fn run(cmd: WitnessCommand) -> Result<()> {
    match cmd {
        WitnessCommand::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let config = config::Config::resolve(&args).context("invalid configuration")?;
    if args.print_config {
        return crate::settings::print(&config);
    }
    crate::settings::init_logging(config.log_format);
    std::fs::create_dir_all(&config.state)
        .with_context(|| format!("couldn't create state directory {}", config.state.display()))?;
    if config.key_is_default && !config.key.exists() {
        crate::cmd::key::write_private_key(&config.key, &PrivateKey::generate(Algorithm::Ed25519))?;
        tracing::info!(path = %config.key.display(), "generated a new witness key");
    }
    crate::settings::check_private_mode(&config.key)?;
    let key = read_private_key(&config.key)?;
    let ed25519 = key
        .as_ed25519()
        .ok_or_else(|| anyhow!("witness key {} is not ed25519", config.key.display()))?
        .clone();
    let name = config.name.clone().unwrap_or_else(|| {
        let fingerprint = key.public_key().fingerprint().to_string();
        let hex = fingerprint.rsplit(':').next().unwrap_or(&fingerprint);
        format!("pedigree-witness/{}", &hex[..hex.len().min(16)])
    });
    let signer = WitnessSigner::new(&name, ed25519).context("invalid --name")?;
    let mut logs = HashMap::new();
    let mut by_hash = HashMap::new();
    for arg in &config.log {
        let verifier = state::parse_log_arg(arg)?;
        let origin = verifier.origin().to_string();
        by_hash.insert(state::origin_hash(&origin), origin.clone());
        logs.insert(origin, LogState::open(&config.state, verifier)?);
    }
    let witness = web::Data::new(Witness {
        signer,
        logs,
        by_hash,
    });
    actix_web::rt::System::new().block_on(async move {
        let vkey = witness.signer.verifier().to_vkey();
        let name = witness.signer.name().to_string();
        let data = witness.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .route("/add-checkpoint", web::post().to(add_checkpoint))
                .route("/{origin_hash}/checkpoint", web::get().to(checkpoint))
                // For container health checks: the process serves HTTP.
                .route(
                    "/healthz",
                    web::get().to(|| async { text(StatusCode::OK, "ok") }),
                )
        })
        .workers(2)
        .client_request_timeout(Duration::from_secs(10))
        // SIGTERM: stop accepting, finish the requests already accepted, then return.
        .shutdown_timeout(config.shutdown_timeout_ms.div_ceil(1000))
        .bind(config.listen)
        .with_context(|| format!("couldn't listen on {}", config.listen))?;
        for addr in server.addrs() {
            println!("pedigree witness listening on http://{addr}");
        }
        println!("name: {name}");
        println!("verifier key: {vkey}");
        tracing::info!(%name, listen = %config.listen, "witness serving");
        server.run().await.context("HTTP server failed")?;
        tracing::info!("witness stopped");
        Ok(())
    })
}

/// An answer built on the blocking pool (an `HttpResponse` cannot cross threads).
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn text(status: StatusCode, message: impl Into<String>) -> Self {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }

    fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status)
            .content_type(self.content_type)
            .body(self.body)
    }
}

fn text(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    Answer::text(status, message).into_response()
}

/// `POST /add-checkpoint` (tlog-witness): 200 with our cosignature line, or 400
/// malformed, 403 bad log signature, 404 unknown log, 409 old size mismatch (body: our
/// size), 422 inconsistent.
async fn add_checkpoint(body: web::Bytes, witness: web::Data<Witness>) -> HttpResponse {
    let witness = Arc::clone(&witness.into_inner());
    // Verification and the fsync of the new state block: run them off the async workers.
    web::block(move || add_checkpoint_blocking(&body, &witness))
        .await
        .unwrap_or_else(|e| Answer::text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        .into_response()
}

fn add_checkpoint_blocking(body: &[u8], witness: &Witness) -> Answer {
    let text = |status, message: String| Answer::text(status, message);
    let request = match AddCheckpoint::parse(body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let origin = request
        .checkpoint
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    let Some(log) = witness.logs.get(&origin) else {
        return text(StatusCode::NOT_FOUND, format!("unknown log {origin:?}"));
    };
    let checkpoint = match log.verifier.verify(&request.checkpoint) {
        Ok(c) => c,
        Err(e) => return signature_refusal(&log.verifier, &e),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1));
    match log.add_checkpoint(&request, checkpoint, &witness.signer, now) {
        Ok(cosignature) => Answer {
            status: StatusCode::OK,
            content_type: "text/plain; charset=utf-8",
            body: encode_cosignatures(&[cosignature]),
        },
        Err(AddError::Refused(Refusal::Conflict { recorded, .. })) => Answer {
            status: StatusCode::CONFLICT,
            content_type: SIZE_CONTENT_TYPE,
            body: encode_size(recorded),
        },
        Err(AddError::Refused(refusal)) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            if status == StatusCode::UNPROCESSABLE_ENTITY {
                // Possible evidence of a split view: keep a trace of it.
                tracing::warn!(%origin, %refusal, "refused an inconsistent checkpoint");
            }
            text(status, refusal.to_string())
        }
        Err(AddError::Storage(e)) => {
            tracing::error!(
                error = format!("{e:#}"),
                "couldn't persist the witness state"
            );
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "couldn't persist the witness state".into(),
            )
        }
    }
}

/// 400 for a note that does not parse, 403 when the log's signature is missing or bad.
fn signature_refusal(log: &LogVerifier, e: &CheckpointError) -> Answer {
    if e.is_malformed() {
        Answer::text(
            StatusCode::BAD_REQUEST,
            format!("malformed checkpoint: {e}"),
        )
    } else {
        Answer::text(
            StatusCode::FORBIDDEN,
            format!(
                "checkpoint is not signed by the key of {}: {e}",
                log.origin()
            ),
        )
    }
}

/// `GET /<origin hash>/checkpoint`: the latest checkpoint cosigned for that log.
async fn checkpoint(path: web::Path<String>, witness: web::Data<Witness>) -> HttpResponse {
    let note = witness
        .by_hash
        .get(path.as_str())
        .and_then(|origin| witness.logs.get(origin))
        .and_then(LogState::last);
    match note {
        Some(note) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(note),
        None => text(StatusCode::NOT_FOUND, "no checkpoint cosigned for that log"),
    }
}
