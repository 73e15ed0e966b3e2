//! Settings of `pedigree witness serve`: flags, `PEDIGREE_WITNESS_*` environment
//! variables and a TOML file with the same names (spec/config.md section 3).

use crate::settings::{self, LogFormat};
use anyhow::{bail, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Arguments of `pedigree witness serve`. Every setting is optional here so that the
/// config file can supply it.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (same names, with underscores)
    #[arg(long, env = "PEDIGREE_WITNESS_CONFIG")]
    pub config: Option<PathBuf>,
    /// The witness's Ed25519 private key (PKCS#8 PEM, mode 0600)
    /// [default: <state>/witness.key, generated if absent]
    #[arg(long, env = "PEDIGREE_WITNESS_KEY")]
    pub key: Option<PathBuf>,
    /// The witness's name in its verifier key and cosignature lines
    /// [default: pedigree-witness/<first 16 hex digits of the key fingerprint>]
    #[arg(long, env = "PEDIGREE_WITNESS_NAME")]
    pub name: Option<String>,
    /// Address to listen on [default: 127.0.0.1:7380]
    #[arg(long, env = "PEDIGREE_WITNESS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the witness's state: the last checkpoint cosigned for each log
    #[arg(long, env = "PEDIGREE_WITNESS_STATE")]
    pub state: Option<PathBuf>,
    /// A log to witness, `ORIGIN=VKEY`, its `VKEY`, or a file holding the VKEY
    /// (repeatable; comma-separated in the environment)
    #[arg(
        long = "log",
        value_name = "ORIGIN=VKEY",
        env = "PEDIGREE_WITNESS_LOG",
        value_delimiter = ','
    )]
    pub logs: Vec<String>,
    /// Log line format on stderr: human or json [default: human]
    #[arg(long, env = "PEDIGREE_WITNESS_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// On SIGTERM, how long requests already accepted may take before the witness
    /// exits anyway, in milliseconds [default: 10000]
    #[arg(long, env = "PEDIGREE_WITNESS_SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
    /// Print the effective configuration as TOML and exit
    #[arg(long)]
    pub print_config: bool,
}

/// The settings a witness config file may hold, and the effective configuration.
#[derive(Deserialize, Serialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    key: Option<PathBuf>,
    name: Option<String>,
    listen: Option<SocketAddr>,
    state: Option<PathBuf>,
    log: Option<Vec<String>>,
    log_format: Option<LogFormat>,
    shutdown_timeout_ms: Option<u64>,
}

/// The effective witness configuration.
#[derive(Serialize, Debug, Clone)]
pub struct Config {
    /// Private key file.
    pub key: PathBuf,
    /// Whether `key` is the default one, generated when absent.
    #[serde(skip)]
    pub key_is_default: bool,
    /// Name in cosignatures; derived from the key when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Listen address.
    pub listen: SocketAddr,
    /// State directory.
    pub state: PathBuf,
    /// Logs witnessed (`ORIGIN=VKEY`, `VKEY` or a key file).
    pub log: Vec<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Bound on the drain after SIGTERM.
    pub shutdown_timeout_ms: u64,
}

impl Config {
    /// Merges flags and environment over the file over defaults.
    ///
    /// # Errors
    ///
    /// A message naming the file or the setting that is wrong or missing.
    pub fn resolve(args: &ServeArgs) -> Result<Self> {
        let file: FileConfig = match &args.config {
            Some(path) => settings::from_table(settings::read_table(path)?, path)?,
            None => FileConfig::default(),
        };
        let Some(state) = args.state.clone().or(file.state) else {
            bail!("no state directory: give --state, PEDIGREE_WITNESS_STATE or state in the config file");
        };
        let default_key = state.join("witness.key");
        let key = args.key.clone().or(file.key).unwrap_or(default_key.clone());
        let log = if args.logs.is_empty() {
            file.log.unwrap_or_default()
        } else {
            args.logs.clone()
        };
        if log.is_empty() {
            bail!("no log to witness: give --log, PEDIGREE_WITNESS_LOG or log in the config file");
        }
        let shutdown_timeout_ms = args
            .shutdown_timeout_ms
            .or(file.shutdown_timeout_ms)
            .unwrap_or(10_000);
        if !(100..=600_000).contains(&shutdown_timeout_ms) {
            bail!("shutdown_timeout_ms {shutdown_timeout_ms} must be 100..=600000");
        }
        Ok(Config {
            key_is_default: key == default_key,
            key,
            name: args.name.clone().or(file.name),
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7380))),
            state,
            log,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            shutdown_timeout_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.toml");
        std::fs::write(
            &path,
            "state = \"w\"\nlog = [\"a\"]\nlisten = \"127.0.0.1:9000\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..ServeArgs::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.key, PathBuf::from("w/witness.key"));
        assert!(c.key_is_default);

        std::fs::write(&path, "state = \"w\"\nlog = [\"a\"]\nlisten_on = 1\n").unwrap();
        let err = Config::resolve(&ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("listen_on"), "{err:#}");
        let err = Config::resolve(&ServeArgs::default()).unwrap_err();
        assert!(err.to_string().contains("state"), "{err}");
    }
}
