//! Server configuration: command-line flags, matching `PEDIGREE_*` environment
//! variables, and an optional TOML file with the same keys. Flags and environment win
//! over the file; the file wins over defaults.

use crate::witness::WitnessTarget;
use clap::{Args, ValueEnum};
use pedigree_core::entry::Limits;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Flags of `pedigree-server` (serve mode). Every flag is optional so that the config
/// file can supply it.
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (same names, with underscores)
    #[arg(long, env = "PEDIGREE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the RocksDB log (created if absent) [default: ./pedigree-data]
    #[arg(long, env = "PEDIGREE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "PEDIGREE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Checkpoint origin line [default: the stored log's, or pedigree.local/<listen address>]
    #[arg(long, env = "PEDIGREE_ORIGIN")]
    pub origin: Option<String>,
    /// Ed25519 PKCS#8 PEM key that signs checkpoints [default: <data-dir>/log-signing.key, generated if absent]
    #[arg(long, env = "PEDIGREE_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Largest request body accepted [default: 4194304]
    #[arg(long, env = "PEDIGREE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most entries committed in one batch [default: 1024]
    #[arg(long, env = "PEDIGREE_BATCH_SIZE")]
    pub batch_size: Option<usize>,
    /// Longest a batch waits for more entries, in milliseconds [default: 5]
    #[arg(long, env = "PEDIGREE_BATCH_WAIT_MS")]
    pub batch_wait_ms: Option<u64>,
    /// Most submissions waiting for a batch before new ones get 503 [default: 16384]
    #[arg(long, env = "PEDIGREE_QUEUE_SIZE")]
    pub queue_size: Option<usize>,
    /// Most signatures per envelope [default: 16]
    #[arg(long, env = "PEDIGREE_MAX_SIGNATURES")]
    pub max_signatures: Option<usize>,
    /// Most verifier keys per submission [default: 16]
    #[arg(long, env = "PEDIGREE_MAX_VERIFIERS")]
    pub max_verifiers: Option<usize>,
    /// Most subjects per statement [default: 256]
    #[arg(long, env = "PEDIGREE_MAX_SUBJECTS")]
    pub max_subjects: Option<usize>,
    /// Most materials per statement [default: 256]
    #[arg(long, env = "PEDIGREE_MAX_MATERIALS")]
    pub max_materials: Option<usize>,
    /// Longest a client may take to send a request's headers, and then its body, in
    /// milliseconds; slower requests get 408 and their connection is closed [default: 10000]
    #[arg(long, env = "PEDIGREE_CLIENT_TIMEOUT_MS")]
    pub client_timeout_ms: Option<u64>,
    /// How long an idle connection is kept open for another request, in milliseconds;
    /// 0 closes every connection after one response [default: 0]
    #[arg(long, env = "PEDIGREE_KEEP_ALIVE_MS")]
    pub keep_alive_ms: Option<u64>,
    /// A witness to ask for cosignatures, NAME=URL=VKEY: a label, the witness's
    /// submission URL (http://) and its cosignature verifier key, or a file holding it
    /// (repeatable; comma-separated in the environment)
    #[arg(
        long = "witness",
        value_name = "NAME=URL=VKEY",
        env = "PEDIGREE_WITNESS",
        value_delimiter = ','
    )]
    pub witness: Vec<String>,
    /// Cosignatures a checkpoint needs before `GET /checkpoint` serves it
    /// [default: the number of witnesses]
    #[arg(long, env = "PEDIGREE_MIN_WITNESS_COSIGNATURES")]
    pub min_witness_cosignatures: Option<usize>,
    /// Memory for the tree's stored hashes, in MiB (about 64 bytes per entry), so proofs
    /// cost the same at any log size that fits; 0 reads every hash from RocksDB
    /// [default: 1024]
    #[arg(long, env = "PEDIGREE_HASH_CACHE_MB")]
    pub hash_cache_mb: Option<u64>,
    /// Log line format on stderr: `human` or `json` (one object per line) [default: human]
    #[arg(long, env = "PEDIGREE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// On SIGTERM, how long requests already accepted may take to be committed and
    /// answered before the server exits anyway, in milliseconds [default: 30000]
    #[arg(long, env = "PEDIGREE_SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
}

/// How log lines are written.
#[derive(ValueEnum, Deserialize, Serialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per event, with the request span's fields.
    Json,
}

/// The settings a config file may hold.
#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    origin: Option<String>,
    signing_key: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    batch_size: Option<usize>,
    batch_wait_ms: Option<u64>,
    queue_size: Option<usize>,
    max_signatures: Option<usize>,
    max_verifiers: Option<usize>,
    max_subjects: Option<usize>,
    max_materials: Option<usize>,
    client_timeout_ms: Option<u64>,
    keep_alive_ms: Option<u64>,
    witness: Option<Vec<String>>,
    min_witness_cosignatures: Option<usize>,
    hash_cache_mb: Option<u64>,
    log_format: Option<LogFormat>,
    shutdown_timeout_ms: Option<u64>,
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Explicit origin, if any (otherwise the stored or derived one).
    pub origin: Option<String>,
    /// Signing key file.
    pub signing_key: PathBuf,
    /// Request body cap.
    pub max_body_bytes: usize,
    /// Batch size cap.
    pub batch_size: usize,
    /// Batch wait.
    pub batch_wait_ms: u64,
    /// Queue bound.
    pub queue_size: usize,
    /// Time allowed for a request's headers, and then for its body.
    pub client_timeout_ms: u64,
    /// Idle time a connection is kept for another request; 0 disables keep-alive.
    pub keep_alive_ms: u64,
    /// Witnesses, `NAME=URL=VKEY` each.
    pub witness: Vec<String>,
    /// Cosignatures a checkpoint needs to be published at `/checkpoint`.
    pub min_witness_cosignatures: usize,
    /// Memory for stored hashes, in MiB.
    pub hash_cache_mb: u64,
    /// Log line format.
    pub log_format: LogFormat,
    /// Bound on the drain after SIGTERM.
    pub shutdown_timeout_ms: u64,
    /// Per-submission caps.
    #[serde(skip)]
    pub limits: Limits,
}

impl Config {
    /// Merges flags/environment over the config file over defaults.
    ///
    /// # Errors
    ///
    /// A message naming the file or the setting that is wrong.
    pub fn resolve(args: &ServeArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("pedigree-data"));
        let signing_key = args
            .signing_key
            .clone()
            .or(file.signing_key)
            .unwrap_or_else(|| data_dir.join("log-signing.key"));
        let defaults = Limits::default();
        let witness = if args.witness.is_empty() {
            file.witness.unwrap_or_default()
        } else {
            args.witness.clone()
        };
        let config = Config {
            min_witness_cosignatures: args
                .min_witness_cosignatures
                .or(file.min_witness_cosignatures)
                .unwrap_or(witness.len()),
            witness,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            origin: args.origin.clone().or(file.origin),
            signing_key,
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(4 << 20),
            batch_size: args.batch_size.or(file.batch_size).unwrap_or(1024),
            batch_wait_ms: args.batch_wait_ms.or(file.batch_wait_ms).unwrap_or(5),
            queue_size: args.queue_size.or(file.queue_size).unwrap_or(16_384),
            client_timeout_ms: args
                .client_timeout_ms
                .or(file.client_timeout_ms)
                .unwrap_or(10_000),
            keep_alive_ms: args.keep_alive_ms.or(file.keep_alive_ms).unwrap_or(0),
            hash_cache_mb: args
                .hash_cache_mb
                .or(file.hash_cache_mb)
                .unwrap_or(crate::engine::DEFAULT_HASH_CACHE_BYTES >> 20),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            shutdown_timeout_ms: args
                .shutdown_timeout_ms
                .or(file.shutdown_timeout_ms)
                .unwrap_or(30_000),
            limits: Limits {
                max_signatures: args
                    .max_signatures
                    .or(file.max_signatures)
                    .unwrap_or(defaults.max_signatures),
                max_verifiers: args
                    .max_verifiers
                    .or(file.max_verifiers)
                    .unwrap_or(defaults.max_verifiers),
                max_subjects: args
                    .max_subjects
                    .or(file.max_subjects)
                    .unwrap_or(defaults.max_subjects),
                max_materials: args
                    .max_materials
                    .or(file.max_materials)
                    .unwrap_or(defaults.max_materials),
            },
            data_dir,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 || self.batch_size > 65_536 {
            return Err(format!("batch_size {} must be 1..=65536", self.batch_size));
        }
        if self.queue_size == 0 {
            return Err("queue_size must be at least 1".into());
        }
        if self.batch_wait_ms > 10_000 {
            return Err(format!(
                "batch_wait_ms {} exceeds 10000",
                self.batch_wait_ms
            ));
        }
        if !(100..=600_000).contains(&self.client_timeout_ms) {
            return Err(format!(
                "client_timeout_ms {} must be 100..=600000",
                self.client_timeout_ms
            ));
        }
        if self.keep_alive_ms > 600_000 {
            return Err(format!(
                "keep_alive_ms {} exceeds 600000",
                self.keep_alive_ms
            ));
        }
        if !(100..=600_000).contains(&self.shutdown_timeout_ms) {
            return Err(format!(
                "shutdown_timeout_ms {} must be 100..=600000",
                self.shutdown_timeout_ms
            ));
        }
        let witnesses = self.witnesses()?;
        if witnesses.is_empty() && self.min_witness_cosignatures > 0 {
            return Err("min_witness_cosignatures needs at least one witness".into());
        }
        if !witnesses.is_empty() && !(1..=witnesses.len()).contains(&self.min_witness_cosignatures)
        {
            return Err(format!(
                "min_witness_cosignatures {} must be 1..={} (the witnesses configured)",
                self.min_witness_cosignatures,
                witnesses.len()
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(format!(
                "max_body_bytes {} is below 1024",
                self.max_body_bytes
            ));
        }
        Ok(())
    }

    /// The configured witnesses, parsed.
    ///
    /// # Errors
    ///
    /// A message naming the witness that does not parse, or a repeated name.
    pub fn witnesses(&self) -> Result<Vec<WitnessTarget>, String> {
        let parsed = self
            .witness
            .iter()
            .map(|w| WitnessTarget::parse(w))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, w) in parsed.iter().enumerate() {
            if parsed[..i].iter().any(|o| o.name == w.name) {
                return Err(format!("witness name {} is given twice", w.name));
            }
        }
        Ok(parsed)
    }

    /// The origin used when neither the flags nor the store name one.
    pub fn derived_origin(&self) -> String {
        format!("pedigree.local/{}", self.listen)
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("couldn't read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "batch_size = 64\nlisten = \"127.0.0.1:9000\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.batch_size, 64);
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(
            c.signing_key,
            PathBuf::from("pedigree-data/log-signing.key")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "batch_sise = 64\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(Config::resolve(&args).unwrap_err().contains("batch_sise"));
        let args = ServeArgs {
            batch_size: Some(0),
            ..ServeArgs::default()
        };
        assert!(Config::resolve(&args).unwrap_err().contains("batch_size"));
        let args = ServeArgs {
            min_witness_cosignatures: Some(1),
            ..ServeArgs::default()
        };
        assert!(Config::resolve(&args)
            .unwrap_err()
            .contains("min_witness_cosignatures"));
    }

    #[test]
    fn witnesses_come_from_flags_or_file_and_default_to_all_required() {
        let vkey = pedigree_core::witness::WitnessSigner::new(
            "w.example/a",
            ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        )
        .unwrap()
        .verifier()
        .to_vkey();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            format!(
                "witness = [\"a=http://127.0.0.1:1={vkey}\", \"b=http://127.0.0.1:2={vkey}\"]\n"
            ),
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.witnesses().unwrap().len(), 2);
        assert_eq!(c.min_witness_cosignatures, 2);
        let args = ServeArgs {
            min_witness_cosignatures: Some(3),
            ..args
        };
        assert!(Config::resolve(&args).is_err());
        let args = ServeArgs {
            witness: vec![format!("a=http://x={vkey}"), format!("a=http://y={vkey}")],
            ..ServeArgs::default()
        };
        assert!(Config::resolve(&args).unwrap_err().contains("twice"));
    }
}
