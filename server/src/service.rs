//! Starting the service: the signing key, the origin, opening the log and running the
//! HTTP server with its sequencer and, when witnesses are configured, the cosigning task.

use crate::api::{self, ApiError, AppState};
use crate::config::Config;
use crate::engine::LogEngine;
use crate::layout::META_CHECKPOINT;
use crate::metrics::Metrics;
use crate::sequencer::Sequencer;
use crate::storage::{Column, RocksStore, Store};
use crate::telemetry;
use crate::witness::{self, Cosigned};
use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context as _, Result};
use pedigree_core::checkpoint::LogSigner;
use pedigree_core::keys::{Algorithm, PrivateKey};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Loads the checkpoint signing key, generating it (mode 0600) if it is the default key
/// of a new data directory.
///
/// # Errors
///
/// When the key is unreadable, readable by others, not Ed25519, or an explicit path
/// that does not exist.
pub fn load_signing_key(config: &Config) -> Result<ed25519_dalek::SigningKey> {
    let path = &config.signing_key;
    let is_default = *path == config.data_dir.join("log-signing.key");
    if !path.exists() {
        if !is_default {
            bail!("signing key {} does not exist", path.display());
        }
        let key = PrivateKey::generate(Algorithm::Ed25519);
        write_private(path, key.to_pkcs8_pem().as_bytes())
            .with_context(|| format!("couldn't write new signing key {}", path.display()))?;
        tracing::info!(path = %path.display(), "generated a new log signing key");
    }
    read_signing_key(path)
}

/// Reads an existing checkpoint signing key.
///
/// # Errors
///
/// When the key is missing, unreadable, readable by other users, or not Ed25519.
pub fn read_signing_key(path: &Path) -> Result<ed25519_dalek::SigningKey> {
    check_private_mode(path)?;
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("couldn't read signing key {}", path.display()))?;
    let key = PrivateKey::from_pem(&pem)
        .with_context(|| format!("couldn't parse signing key {}", path.display()))?;
    match key.as_ed25519() {
        Some(k) => Ok(k.clone()),
        None => bail!(
            "signing key {} is {}, checkpoints need ed25519",
            path.display(),
            key.algorithm()
        ),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(unix)]
fn check_private_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("couldn't stat signing key {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "signing key {} is readable by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Opens the log named by `config`: creates the data directory, loads the key, settles
/// the origin (the stored log's, which an explicit `--origin` must match) and checks the
/// store.
///
/// # Errors
///
/// When any of those steps fails; the message names the file or setting.
pub fn open_log(config: &Config) -> Result<LogEngine<RocksStore>> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "couldn't create data directory {}",
            config.data_dir.display()
        )
    })?;
    let key = load_signing_key(config)?;
    let store = RocksStore::open(&config.data_dir.join("db"))
        .with_context(|| format!("couldn't open log store in {}", config.data_dir.display()))?;
    let stored_origin = store.get(Column::Meta, META_CHECKPOINT)?.and_then(|note| {
        note.split(|&b| b == b'\n')
            .next()
            .map(|l| String::from_utf8_lossy(l).into_owned())
    });
    let origin = match (&config.origin, stored_origin) {
        (Some(want), Some(have)) if *want != have => {
            bail!("--origin {want:?} does not match the stored log's origin {have:?}")
        }
        (_, Some(have)) => have,
        (Some(want), None) => want.clone(),
        (None, None) => config.derived_origin(),
    };
    let signer = LogSigner::new(&origin, key).context("invalid origin")?;
    Ok(LogEngine::open(store, signer)
        .context("couldn't open the log")?
        .with_hash_cache_bytes(config.hash_cache_mb << 20))
}

/// Fills the engine's hash cache from storage on a background thread, a step at a
/// time, until it holds all it can; it stops early when the server is gone. Proofs are
/// correct meanwhile (what the cache lacks is read from storage), only slower.
fn load_hash_cache(engine: &Arc<LogEngine<RocksStore>>) {
    let engine = Arc::downgrade(engine);
    let spawned = std::thread::Builder::new()
        .name("hash-cache-loader".into())
        .spawn(move || loop {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            match engine.load_hash_cache() {
                Ok(true) => {
                    tracing::info!(hashes = engine.hash_cache_len(), "hash cache loaded");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "hash cache not loaded; proofs read storage");
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "couldn't start the hash cache loader");
    }
}

/// Runs the HTTP server and the sequencer until the process is stopped. On SIGTERM or
/// SIGINT it stops accepting connections, answers every request already accepted
/// (committing their batches) within `shutdown_timeout_ms`, and returns `Ok`.
///
/// # Errors
///
/// When the listen address cannot be bound.
pub fn serve(config: Config, engine: LogEngine<RocksStore>) -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    actix_web::rt::System::new().block_on(async move {
        // Settings first: nothing is started for a configuration that is refused.
        let witnesses = config.witnesses().map_err(anyhow::Error::msg)?;
        let engine = Arc::new(engine);
        load_hash_cache(&engine);
        // `pedigree-server backup` reaches the running server here (admin.rs says why).
        match crate::admin::start(&config.data_dir, Arc::clone(&engine)) {
            Ok(path) => tracing::debug!(path = %path.display(), "admin socket listening"),
            Err(e) => tracing::warn!(error = %e, "no admin socket: online backups unavailable"),
        }
        let metrics = Arc::new(Metrics::default());
        metrics.tree_size.store(
            engine.checkpoint().tree_size,
            std::sync::atomic::Ordering::Relaxed,
        );
        let sequencer = Sequencer::start(
            Arc::clone(&engine),
            config.batch_size,
            Duration::from_millis(config.batch_wait_ms),
            config.queue_size,
            Arc::clone(&metrics),
        );
        let cosigned = (!witnesses.is_empty()).then(|| Arc::new(Cosigned::default()));
        if let Some(cosigned) = &cosigned {
            metrics.enable_witnesses(witnesses.iter().map(|w| w.name.as_str()));
            actix_web::rt::spawn(witness::run(
                Arc::clone(&engine),
                witnesses,
                config.min_witness_cosignatures,
                Arc::clone(cosigned),
                Arc::clone(&metrics),
            ));
        }
        let state = web::Data::new(AppState {
            cosigned,
            engine,
            sequencer,
            metrics: Arc::clone(&metrics),
            limits: config.limits,
            max_body_bytes: config.max_body_bytes,
            client_timeout: Duration::from_millis(config.client_timeout_ms),
        });
        let drain = state.sequencer.clone();
        let origin = state.engine.signer().origin().to_string();
        let vkey = state.engine.signer().verifier_key();
        let server = HttpServer::new(move || {
            let metrics = Arc::clone(&metrics);
            App::new()
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::bad_request("invalid_query", e.to_string()).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::bad_request("invalid_path", e.to_string()).into()
                }))
                .wrap_fn(move |req, srv| telemetry::middleware(req, srv, Arc::clone(&metrics)))
                .configure(api::configure)
        })
        .workers(workers)
        // Slow clients: the headers of a connection's first request must arrive within
        // this time (408 otherwise); `api::write` gives a body the same time again.
        .client_request_timeout(Duration::from_millis(config.client_timeout_ms))
        .client_disconnect_timeout(Duration::from_secs(2))
        // actix-web times out only the first request's headers on a connection: on a
        // kept-alive connection, a client trickling the next request's headers holds it
        // open indefinitely. Keep-alive is therefore off unless configured.
        .keep_alive(match config.keep_alive_ms {
            0 => KeepAlive::Disabled,
            ms => KeepAlive::Timeout(Duration::from_millis(ms)),
        })
        // SIGTERM (actix-server's signal handling): stop accepting, let every request
        // already accepted finish (its batch committed and answered), then return.
        .shutdown_timeout(config.shutdown_timeout_ms.div_ceil(1000))
        .max_connections(10_000)
        .backlog(4096)
        .bind(config.listen)
        .with_context(|| format!("couldn't listen on {}", config.listen))?;
        for addr in server.addrs() {
            println!("pedigree-server listening on http://{addr}");
        }
        println!("origin: {origin}");
        println!("verifier key: {vkey}");
        tracing::info!(%origin, listen = %config.listen, "serving");
        server.run().await.context("HTTP server failed")?;
        // Every handler has returned, so the queue is empty unless the shutdown timeout
        // cut some off; their entries are committed before the process exits, as after
        // a crash they would be kept unacknowledged.
        let shutdown_timeout = Duration::from_millis(config.shutdown_timeout_ms);
        if drain.drain(shutdown_timeout).await {
            tracing::info!("stopped: every accepted submission is committed");
        } else {
            tracing::warn!(
                queued = drain.queue_depth(),
                "stopped with submissions still queued after the shutdown timeout"
            );
        }
        Ok(())
    })
}
