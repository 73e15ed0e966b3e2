//! `pedigree-bench lineage`: `pedigree lineage verify` of a six-step chain offline from
//! bundles, end to end as a process, beside the cost of starting the process at all.
//! Subjects and materials are given as digests, so no file is hashed.

use crate::procs::{self, Bins, ServerProc};
use crate::report::{self, dur, ratio, Table};
use anyhow::Result;
use std::process::Command;
use std::time::Duration;

/// Options of the lineage scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct LineageArgs {
    /// Runs of each command
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
}

/// The chain: step, signing key, subjects, materials (artifact names).
const CHAIN: [(&str, &str, &[&str], &[&str]); 6] = [
    ("dataset", "curator", &["data"], &[]),
    ("train", "trainer", &["model-v1"], &["data"]),
    ("finetune", "trainer", &["model-v2"], &["model-v1"]),
    ("quantize", "release", &["model-q4"], &["model-v2"]),
    ("evaluate", "release", &["model-q4", "eval"], &["model-q4"]),
    ("deploy", "release", &["deploy"], &["model-q4"]),
];

/// The digest standing for an artifact: SHA-256 of its name.
fn digest(name: &str) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(name.as_bytes()))
    )
}

/// Runs the scenario and prints its table.
///
/// # Errors
///
/// When the server or a CLI command fails.
pub fn run(bins: &Bins, args: &LineageArgs) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("pedigree-bench-lineage")
        .tempdir()?;
    let d = dir.path();
    report::progress("lineage: attesting a six-step chain");
    let cli = |args: &[&str]| {
        let mut c = Command::new(&bins.cli);
        c.current_dir(d).args(args);
        c
    };
    for (name, alg) in [
        ("curator", "ed25519"),
        ("trainer", "ed25519"),
        ("release", "p256"),
    ] {
        procs::output(&mut cli(&[
            "key",
            "generate",
            "--algorithm",
            alg,
            "--out",
            name,
        ]))?;
    }
    let server = ServerProc::start(bins, &d.join("log"), &[])?;
    std::fs::create_dir(d.join("bundles"))?;
    let mut policy = format!("log_key = \"{}\"\n", server.vkey);
    for (step, key, subjects, materials) in CHAIN {
        let out = format!("bundles/{step}.json");
        let keyfile = format!("{key}.key");
        let mut a: Vec<String> = [
            "attest",
            step,
            "--key",
            &keyfile,
            "--log",
            &server.url,
            "--out",
            &out,
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        for s in subjects {
            a.extend(["--subject".into(), digest(s)]);
        }
        for m in materials {
            a.extend(["--material".into(), digest(m)]);
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        procs::output(&mut cli(&a))?;
        policy.push_str(&format!(
            "[[step]]\nname = \"{step}\"\nsigners = [\"{key}.pub\"]\n"
        ));
    }
    server.stop();
    std::fs::write(d.join("policy.toml"), policy)?;

    let target = digest("deploy");
    let verify_args = [
        "lineage",
        "verify",
        &target,
        "--policy",
        "policy.toml",
        "--bundles",
        "bundles",
    ];
    // The chain must verify before it is timed.
    let shown = procs::output(&mut cli(&verify_args))?;
    anyhow::ensure!(
        shown.contains("verified lineage"),
        "chain did not verify: {shown}"
    );

    let runs = args.runs;
    let timed_runs = |a: &[&str]| -> Result<Vec<Duration>> {
        procs::timed(&mut cli(a))?;
        let mut v = (0..runs)
            .map(|_| procs::timed(&mut cli(a)))
            .collect::<Result<Vec<_>>>()?;
        v.sort();
        Ok(v)
    };
    report::progress("lineage: timing");
    let version = timed_runs(&["--version"])?;
    let fingerprint = timed_runs(&["key", "fingerprint", "release.pub"])?;
    let verify = timed_runs(&verify_args)?;
    let base = report::quantile(&version, 0.5);
    let mut t = Table::new(
        &format!("lineage verify of a six-step chain from bundles, {runs} runs each"),
        &["command", "median", "p90", "min", "vs pedigree --version"],
    );
    for (label, v) in [
        ("pedigree --version (process start)", &version),
        (
            "pedigree key fingerprint (start + read one key)",
            &fingerprint,
        ),
        ("pedigree lineage verify --bundles (6 steps)", &verify),
    ] {
        let med = report::quantile(v, 0.5);
        t.row(vec![
            label.into(),
            dur(med),
            dur(report::quantile(v, 0.9)),
            dur(v[0]),
            ratio(med.as_secs_f64(), base.as_secs_f64()),
        ]);
    }
    let med = report::quantile(&verify, 0.5);
    t.note(format!(
        "Target: under 50 ms end to end: median {}: {}. Verification work beyond process start: {}. Subjects and materials are digests, so nothing is hashed; the six bundles carry log receipts checked against the policy's log key.",
        dur(med),
        report::verdict(med < Duration::from_millis(50)),
        dur(med.saturating_sub(base)),
    ));
    t.print();
    Ok(())
}
