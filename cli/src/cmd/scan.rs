//! `pedigree scan`: refuse model files that would run code when loaded
//! (`spec/scan.md`). Also the scan behind `pedigree verify --scan` and a policy's
//! `require_scan`.
//!
//! The checks are core's ([`pedigree_core::scan`]); this module walks the model, reads
//! each file (only the header of a `.safetensors` file) and prints the findings.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use pedigree_core::scan::{self, Finding, Limits, Report, Status};
use serde::Serialize;
use serde_json::json;

use crate::model::{self, ModelFiles};
use crate::output::Output;

/// Arguments of `pedigree scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// A model file or directory
    pub path: PathBuf,
    /// Let files of unknown binary formats pass (they are still listed)
    #[arg(long)]
    pub allow_unknown: bool,
    /// Follow symbolic links (refused by default)
    #[arg(long)]
    pub allow_symlinks: bool,
}

/// One file's result.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// Path relative to the model root (the file name for a single file).
    pub path: String,
    /// What core found.
    #[serde(flatten)]
    pub report: Report,
}

/// The result of scanning a model.
#[derive(Debug, Serialize)]
pub struct ModelScan {
    /// Whether every file passes.
    pub passed: bool,
    /// Files by status.
    pub counts: serde_json::Value,
    /// Every file, in model order.
    pub files: Vec<FileReport>,
}

impl ModelScan {
    /// The files that do not pass.
    pub fn failures(&self, allow_unknown: bool) -> impl Iterator<Item = &FileReport> {
        self.files
            .iter()
            .filter(move |f| !f.report.status.passes(allow_unknown))
    }

    /// An error naming the first failing file and its worst finding, if any fails.
    ///
    /// # Errors
    ///
    /// When a file is unsafe, unscannable, or unknown without `allow_unknown`.
    pub fn require_pass(&self, allow_unknown: bool) -> Result<()> {
        let failed: Vec<&FileReport> = self.failures(allow_unknown).collect();
        // Name the worst file: unsafe before unscannable before unknown.
        let rank = |s: Status| match s {
            Status::Unsafe => 3,
            Status::Unscannable => 2,
            Status::Unknown => 1,
            Status::Safe => 0,
        };
        let Some(first) = failed.iter().rev().max_by_key(|f| rank(f.report.status)) else {
            return Ok(());
        };
        let status = serde_json::to_value(first.report.status).unwrap_or_default();
        let why = first
            .report
            .findings
            .first()
            .map_or(String::new(), |f| format!(": {}{}", f.message, place(f)));
        let more = match failed.len() {
            1 => String::new(),
            n => format!(
                " (and {} more file{})",
                n - 1,
                if n == 2 { "" } else { "s" }
            ),
        };
        bail!(
            "{} is {}{why}{more}",
            first.path,
            status.as_str().unwrap_or("refused")
        )
    }
}

/// Scans one file from disk.
fn scan_file(path: &Path, name: &str, limits: &Limits) -> Result<Report> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("couldn't read {}", path.display()))?
        .len();
    if name.ends_with(".safetensors") && len >= 8 {
        // Only the header: safetensors data is never interpreted.
        let mut file = std::fs::File::open(path)
            .with_context(|| format!("couldn't read {}", path.display()))?;
        let mut head = vec![0u8; 8];
        file.read_exact(&mut head)
            .with_context(|| format!("couldn't read {}", path.display()))?;
        let declared = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let want = declared
            .min(limits.max_safetensors_header_bytes)
            .min(len - 8);
        file.take(want)
            .read_to_end(&mut head)
            .with_context(|| format!("couldn't read {}", path.display()))?;
        return Ok(scan::scan_safetensors_header(&head, len, limits));
    }
    if len >= model::MAP_MIN_BYTES {
        // Mapped, not read: a large checkpoint is scanned without its size in memory.
        let file = std::fs::File::open(path)
            .with_context(|| format!("couldn't read {}", path.display()))?;
        let map = model::map_file(&file, 0, len)
            .with_context(|| format!("couldn't map {}", path.display()))?;
        return Ok(scan::scan(name, &map, limits));
    }
    let bytes = std::fs::read(path).with_context(|| format!("couldn't read {}", path.display()))?;
    Ok(scan::scan(name, &bytes, limits))
}

/// Scans every file of a walked model, one file at a time (large ones mapped).
///
/// # Errors
///
/// When a file cannot be read.
pub fn scan_model_files(files: &ModelFiles) -> Result<ModelScan> {
    let limits = Limits::default();
    let mut out = Vec::with_capacity(files.files.len());
    for (file, fs_path) in files.files.iter().zip(&files.fs_paths) {
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        let report = scan_file(fs_path, name, &limits)?;
        out.push(FileReport {
            path: file.path.clone(),
            report,
        });
    }
    let count = |s: Status| out.iter().filter(|f| f.report.status == s).count();
    let counts = json!({
        "safe": count(Status::Safe),
        "unsafe": count(Status::Unsafe),
        "unscannable": count(Status::Unscannable),
        "unknown": count(Status::Unknown),
    });
    Ok(ModelScan {
        passed: false,
        counts,
        files: out,
    })
}

/// Walks and scans a model file or directory; `passed` is judged with
/// `allow_unknown`.
///
/// # Errors
///
/// When the model cannot be walked or a file cannot be read.
pub fn scan_model(path: &Path, allow_unknown: bool, allow_symlinks: bool) -> Result<ModelScan> {
    let files = model::walk(path, &[], allow_symlinks)?;
    if files.files.is_empty() {
        bail!("{} holds no files to scan", path.display());
    }
    let mut scan = scan_model_files(&files)?;
    let passed = scan.failures(allow_unknown).next().is_none();
    scan.passed = passed;
    Ok(scan)
}

/// Where a finding is: ` in <member> at offset <n>`, each part when known.
fn place(f: &Finding) -> String {
    let mut at = String::new();
    if !f.member.is_empty() {
        at.push_str(&format!(" in {}", f.member));
    }
    if let Some(offset) = f.offset {
        at.push_str(&format!(" at offset {offset}"));
    }
    at
}

fn human(scan: &ModelScan) -> String {
    let mut text = format!("{:<12} {:<12} FILE\n", "STATUS", "FORMAT");
    for f in &scan.files {
        let status = serde_json::to_value(f.report.status).unwrap_or_default();
        text.push_str(&format!(
            "{:<12} {:<12} {}\n",
            status.as_str().unwrap_or_default(),
            f.report.format,
            f.path
        ));
        for finding in &f.report.findings {
            let severity = serde_json::to_value(finding.severity).unwrap_or_default();
            text.push_str(&format!(
                "  {:<10} {}{}\n",
                severity.as_str().unwrap_or_default(),
                finding.message,
                place(finding)
            ));
        }
        if f.report.findings_dropped > 0 {
            text.push_str(&format!(
                "  ... and {} more findings\n",
                f.report.findings_dropped
            ));
        }
    }
    text.push_str(&format!(
        "{} files: {} safe, {} unsafe, {} unscannable, {} unknown",
        scan.files.len(),
        scan.counts["safe"],
        scan.counts["unsafe"],
        scan.counts["unscannable"],
        scan.counts["unknown"]
    ));
    text
}

/// Runs `pedigree scan`: prints every file's findings, then fails when any file is
/// unsafe or unscannable (or unknown, without `--allow-unknown`).
///
/// # Errors
///
/// When the model cannot be read, or a file does not pass.
pub fn run(args: ScanArgs, out: &Output) -> Result<()> {
    let scan = scan_model(&args.path, args.allow_unknown, args.allow_symlinks)?;
    out.print(&scan, || human(&scan));
    scan.require_pass(args.allow_unknown).context("scan failed")
}
