//! `pedigree monitor`: follow a log as an auditor (`spec/monitor.md`).
//!
//! Each pass verifies the log's checkpoint with the pinned key and proves it consistent
//! with the last one verified, from the log's tiles; reads every new entry through the
//! entry bundles; applies the rule file; and prints one JSON line per alert on stdout.
//! Exit status of `--once`: 0 no alert, 1 warnings only, 2 a critical alert, 3 the pass
//! could not complete (and raised no critical alert).

mod fetch;
mod pass;
mod settings;
mod statefile;

pub use settings::MonitorArgs;
use settings::Settings;

use crate::cmd::key::read_log_key;
use crate::output::Output;
use anyhow::{Context as _, Result};
use fetch::Remote;
use pass::{Monitor, Summary};
use pedigree_core::monitor::config::Config;
use pedigree_core::monitor::{Alert, Severity};
use std::io::Write as _;
use std::time::Duration;

/// Exit status when a pass raised a critical alert.
const EXIT_CRITICAL: i32 = 2;
/// Exit status when a pass raised warnings only.
const EXIT_WARNING: i32 = 1;
/// Exit status when a pass could not complete.
const EXIT_FAILED: i32 = 3;

/// Where alerts go: one JSON line each on stdout, the webhook if any, and a count.
pub struct AlertSink {
    webhook: Option<Remote>,
    human: bool,
    /// Critical alerts emitted so far.
    pub critical: u64,
    /// Warning alerts emitted so far.
    pub warning: u64,
}

impl AlertSink {
    /// Emits one alert. A webhook failure is reported on stderr and is not fatal.
    pub fn emit(&mut self, alert: Alert) {
        let line = alert.to_json_line();
        let mut stdout = std::io::stdout().lock();
        // A closed stdout must not stop the monitor; the webhook and counts still work.
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        drop(stdout);
        if self.human {
            eprintln!(
                "pedigree: monitor: {} {}: {}",
                alert.severity.name().to_uppercase(),
                alert.rule,
                alert.message
            );
        }
        if let Some(hook) = &self.webhook {
            if let Err(e) = hook.post_json(&line) {
                eprintln!("pedigree: monitor: webhook failed: {e:#}");
            }
        }
        match alert.severity {
            Severity::Critical => self.critical += 1,
            Severity::Warning => self.warning += 1,
        }
    }
}

fn setup(args: &Settings, out: &Output) -> Result<Monitor> {
    let verifier = read_log_key(&args.log_key)?;
    let config = Config::from_toml(&args.rules).context("couldn't load the monitor rules")?;
    Ok(Monitor {
        log: Remote::new(&args.log),
        verifier,
        config,
        state_path: args.state.clone(),
        peers: args
            .peer
            .iter()
            .map(|p| Remote::new(p.strip_suffix("/checkpoint").unwrap_or(p)))
            .collect(),
        sink: AlertSink {
            webhook: args.webhook.as_deref().map(Remote::new),
            human: !out.json,
            critical: 0,
            warning: 0,
        },
    })
}

fn report(summary: &Summary, out: &Output) {
    if out.json {
        eprintln!("{}", serde_json::to_string(summary).unwrap_or_default());
        return;
    }
    let size = summary
        .tree_size
        .map_or_else(|| "unverified".to_string(), |s| s.to_string());
    eprintln!(
        "pedigree: monitor: {} tree size {size}, read entries {}..{} ({}), {} envelopes, {} search checks, {} peers, {} critical, {} warning",
        summary.origin,
        summary.first_index,
        summary.next_index,
        summary.processed,
        summary.envelopes_fetched,
        summary.search_checked,
        summary.peers_checked,
        summary.critical,
        summary.warning
    );
}

/// Runs `pedigree monitor`, exiting with the status of `--once` (see the module docs),
/// or looping with `--interval` until a critical alert.
///
/// # Errors
///
/// Never: every failure becomes an exit status, so that 1 keeps meaning "warnings".
pub fn run(args: MonitorArgs, out: &Output) -> Result<()> {
    let settings = match Settings::resolve(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pedigree: invalid configuration: {e:#}");
            std::process::exit(EXIT_FAILED);
        }
    };
    if args.print_config {
        return crate::settings::print(&settings);
    }
    let out = &Output {
        json: out.json || settings.log_format == crate::settings::LogFormat::Json,
    };
    let mut monitor = match setup(&settings, out) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pedigree: {e:#}");
            std::process::exit(EXIT_FAILED);
        }
    };
    loop {
        let (summary, result) = monitor.pass();
        report(&summary, out);
        if let Err(e) = &result {
            eprintln!("pedigree: monitor pass failed: {e:#}");
        }
        if summary.critical > 0 {
            std::process::exit(EXIT_CRITICAL);
        }
        let Some(secs) = settings.interval else {
            let code = match (&result, summary.warning) {
                (Err(_), _) => EXIT_FAILED,
                (Ok(()), 0) => return Ok(()),
                (Ok(()), _) => EXIT_WARNING,
            };
            std::process::exit(code);
        };
        std::thread::sleep(Duration::from_secs(secs));
    }
}
