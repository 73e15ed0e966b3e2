//! Settings of `pedigree monitor`: flags, `PEDIGREE_MONITOR_*` environment variables and
//! the config file (spec/config.md section 4). The one file holds both the settings (top
//! level keys named like the flags) and the rules (`[[watch_key]]`, `[[watch_subject]]`,
//! `search_sample`; spec/monitor.md), so a rules-only file stays valid.

use crate::settings::{self, LogFormat};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `pedigree monitor`. Every setting but the mode may come from the file.
#[derive(Args, Debug, Default)]
pub struct MonitorArgs {
    /// Pedigree log URL
    #[arg(long, env = "PEDIGREE_MONITOR_LOG")]
    pub log: Option<String>,
    /// The log's verifier key (C2SP note form, or a file holding it), pinned out of band
    #[arg(
        long = "log-key",
        value_name = "VKEY",
        env = "PEDIGREE_MONITOR_LOG_KEY"
    )]
    pub log_key: Option<String>,
    /// Config file (TOML): these settings and the rules (spec/monitor.md)
    #[arg(long, env = "PEDIGREE_MONITOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// State file: the last verified checkpoint and the next entry to read (created if absent)
    #[arg(long, env = "PEDIGREE_MONITOR_STATE")]
    pub state: Option<PathBuf>,
    /// Run one pass; exit 0 without alerts, 1 with warnings, 2 with a critical alert, 3 if it failed
    #[arg(long, conflicts_with = "interval")]
    pub once: bool,
    /// Run a pass every SECS seconds, until a critical alert (exit 2)
    #[arg(long, value_name = "SECS", env = "PEDIGREE_MONITOR_INTERVAL",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: Option<u64>,
    /// Another view of the log's checkpoint (a witness or monitor) to compare with;
    /// repeatable (comma-separated in the environment)
    #[arg(
        long = "peer",
        value_name = "URL",
        env = "PEDIGREE_MONITOR_PEER",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,
    /// POST each alert, as JSON, to this URL
    #[arg(long, value_name = "URL", env = "PEDIGREE_MONITOR_WEBHOOK")]
    pub webhook: Option<String>,
    /// Format of the pass reports on stderr: human, or json (as with --json)
    /// [default: human]
    #[arg(long, env = "PEDIGREE_MONITOR_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Print the effective configuration as TOML and exit
    #[arg(long)]
    pub print_config: bool,
}

/// The settings keys of a monitor config file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    log: Option<String>,
    log_key: Option<String>,
    state: Option<PathBuf>,
    interval: Option<u64>,
    peer: Option<Vec<String>>,
    webhook: Option<String>,
    log_format: Option<LogFormat>,
}

/// Keys of the file that are settings; every other key is a rule.
const SETTINGS_KEYS: [&str; 7] = [
    "log",
    "log_key",
    "state",
    "interval",
    "peer",
    "webhook",
    "log_format",
];

/// The effective monitor configuration.
#[derive(Serialize, Debug)]
pub struct Settings {
    /// Log URL.
    pub log: String,
    /// Pinned verifier key or a file holding it.
    pub log_key: String,
    /// State file.
    pub state: PathBuf,
    /// Seconds between passes; `None` for one pass (`--once`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// Peers to compare checkpoints with.
    pub peer: Vec<String>,
    /// Alert webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Report format.
    pub log_format: LogFormat,
    /// The rules, as TOML (the file's keys that are not settings).
    #[serde(skip)]
    pub rules: String,
}

impl Settings {
    /// Merges flags and environment over the file.
    ///
    /// # Errors
    ///
    /// A message naming the file or the setting that is wrong or missing.
    pub fn resolve(args: &MonitorArgs) -> Result<Self> {
        let (file, rules) = match &args.config {
            Some(path) => {
                let mut rules = settings::read_table(path)?;
                let mut own = toml::Table::new();
                for key in SETTINGS_KEYS {
                    if let Some(v) = rules.remove(key) {
                        own.insert(key.to_string(), v);
                    }
                }
                let file: FileSettings = settings::from_table(own, path)?;
                let rules = toml::to_string(&rules)?;
                // Checked first, so that a misspelt setting is named as an unknown key
                // rather than reported as a missing one.
                pedigree_core::monitor::config::Config::from_toml(&rules)
                    .with_context(|| format!("invalid config file {}", path.display()))?;
                (file, rules)
            }
            None => (FileSettings::default(), String::new()),
        };
        let missing = |what: &str, env: &str| {
            anyhow::anyhow!(
                "no {what}: give --{}, {env} or {} in the config file",
                what.replace('_', "-"),
                what
            )
        };
        let interval = if args.once {
            None
        } else {
            match args.interval.or(file.interval) {
                Some(0) => bail!("interval must be at least 1 second"),
                Some(s) => Some(s),
                None => bail!(
                    "give --once for one pass, or --interval SECS (interval in the config file)"
                ),
            }
        };
        Ok(Settings {
            log: args
                .log
                .clone()
                .or(file.log)
                .ok_or_else(|| missing("log", "PEDIGREE_MONITOR_LOG"))?,
            log_key: args
                .log_key
                .clone()
                .or(file.log_key)
                .ok_or_else(|| missing("log_key", "PEDIGREE_MONITOR_LOG_KEY"))?,
            state: args
                .state
                .clone()
                .or(file.state)
                .ok_or_else(|| missing("state", "PEDIGREE_MONITOR_STATE"))?,
            interval,
            peer: if args.peers.is_empty() {
                file.peer.unwrap_or_default()
            } else {
                args.peers.clone()
            },
            webhook: args.webhook.clone().or(file.webhook),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_holds_settings_and_rules_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("monitor.toml");
        std::fs::write(
            &path,
            format!(
                "log = \"http://127.0.0.1:8080\"\nlog_key = \"k\"\nstate = \"s.json\"\ninterval = 5\n\
             search_sample = 3\n[[watch_key]]\nfingerprint = \"{}\"\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        let args = MonitorArgs {
            config: Some(path.clone()),
            log: Some("http://127.0.0.1:9".into()),
            ..MonitorArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.log, "http://127.0.0.1:9");
        assert_eq!(s.interval, Some(5));
        assert!(s.rules.contains("watch_key") && s.rules.contains("search_sample"));
        assert!(!s.rules.contains("log_key"));
        let once = MonitorArgs { once: true, ..args };
        assert_eq!(Settings::resolve(&once).unwrap().interval, None);

        let err = Settings::resolve(&MonitorArgs {
            once: true,
            ..MonitorArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("PEDIGREE_MONITOR_LOG"), "{err}");
    }
}
