//! What the long-running commands (`pedigree witness serve`, `pedigree monitor`) share
//! with `pedigree-server` in how they are configured (spec/config.md): a TOML file of
//! settings named like the long flags (with underscores), an environment variable per
//! setting, flags over environment over file over defaults, `--print-config`, and the
//! log line format.

use anyhow::{bail, Context as _, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How log lines on stderr are written.
#[derive(ValueEnum, Deserialize, Serialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per event.
    Json,
}

/// Installs the global `tracing` subscriber writing to stderr, filtered by
/// `PEDIGREE_LOG` (default `info`), as the server does.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEDIGREE_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: escape codes would litter files and collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

/// Reads a settings file as a TOML table.
///
/// # Errors
///
/// When the file cannot be read or is not TOML.
pub fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("couldn't read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Deserializes settings from a table, naming the file on an unknown key or bad value.
///
/// # Errors
///
/// When a key is unknown or a value has the wrong type.
pub fn from_table<T: serde::de::DeserializeOwned>(table: toml::Table, path: &Path) -> Result<T> {
    T::deserialize(toml::Value::Table(table))
        .with_context(|| format!("invalid config file {}", path.display()))
}

/// Refuses a private key that other users can read: a key in a shared or
/// world-readable file is not secret any more.
///
/// # Errors
///
/// When the file cannot be inspected or its mode lets group or others read it.
#[cfg(unix)]
pub fn check_private_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("couldn't stat key {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "key {} is readable by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Prints settings as TOML on stdout (`--print-config`).
///
/// # Errors
///
/// When the settings cannot be written as TOML.
pub fn print<T: Serialize>(settings: &T) -> Result<()> {
    print!(
        "{}",
        toml::to_string(settings).context("couldn't print configuration")?
    );
    Ok(())
}
