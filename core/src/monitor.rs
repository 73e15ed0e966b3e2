//! What a Pedigree monitor decides, without the fetching (`spec/monitor.md`).
//!
//! A monitor follows one log: it verifies each new checkpoint against the last one it
//! trusted, reads every new entry from the tiles, and raises alerts. This module holds
//! the parts that are pure decisions and formats, so they are tested from data:
//!
//! - [`config`]: the monitor's TOML rules (watched keys and subjects);
//! - [`rules`]: which entries need their envelope fetched, and which alerts an entry
//!   raises;
//! - [`state`]: the state file that lets a monitor resume without re-reading the log;
//! - [`Alert`]: the one-line JSON alert format.
//!
//! Out of scope: HTTP, files, clocks. Tile authentication and consistency are in
//! [`crate::tilereader`]; the `pedigree monitor` command does the I/O.

pub mod config;
pub mod rules;
pub mod state;

use serde::Serialize;
use serde_json::{Map, Value};

/// The predicate type of revocation statements (`spec/monitor.md` section 4.3). Its
/// predicate is defined elsewhere; a monitor matches the type and the subjects only.
pub const PREDICATE_TYPE_REVOCATION_V1: &str = "https://pedigree.dev/revocation/v1";

/// How bad an alert is. Critical means the log itself misbehaved (its history, its
/// signatures or its data cannot be trusted); warning means an entry matched a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An entry matched a watch rule, or a check could not be completed.
    Warning,
    /// Evidence that the log misbehaved.
    Critical,
}

impl Severity {
    /// The lowercase name, as in alerts.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert: printed as one JSON line and posted to the webhook
/// (`spec/monitor.md` section 5).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Critical or warning.
    pub severity: Severity,
    /// The rule or check that raised it (`watch_key`, `split_view`, ...).
    pub rule: &'static str,
    /// The entry the alert is about; `null` for alerts about checkpoints.
    pub log_index: Option<u64>,
    /// What happened, in one sentence.
    pub message: String,
    /// Evidence: checkpoint notes, signers, subjects, build types, ...
    #[serde(flatten)]
    pub evidence: Map<String, Value>,
}

impl Alert {
    /// An alert without evidence yet.
    pub fn new(
        severity: Severity,
        rule: &'static str,
        log_index: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            rule,
            log_index,
            message: message.into(),
            evidence: Map::new(),
        }
    }

    /// Adds one piece of evidence. The names `severity`, `rule`, `log_index` and
    /// `message` are reserved and ignored here.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        if !matches!(name, "severity" | "rule" | "log_index" | "message") {
            self.evidence.insert(name.to_string(), value.into());
        }
        self
    }

    /// The alert as one line of compact JSON, without the newline.
    pub fn to_json_line(&self) -> String {
        // Every field is a string, a number or a JSON value: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_is_one_flat_json_line() {
        let alert = Alert::new(Severity::Critical, "split_view", None, "two roots")
            .with("tree_size", 5)
            .with("rule", "ignored");
        let line = alert.to_json_line();
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "severity": "critical", "rule": "split_view", "log_index": null,
                "message": "two roots", "tree_size": 5
            })
        );
        assert!(Severity::Critical > Severity::Warning);
    }
}
