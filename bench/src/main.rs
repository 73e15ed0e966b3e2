//! `pedigree-bench`: Pedigree's benchmark suite. Each scenario prints markdown tables
//! in which every figure stands beside a baseline measured in the same run, because
//! the machines it runs on are shared and noisy: ratios travel, absolute numbers don't.
//!
//! In scope: durable appends through the real server (`appends`), proof and tile reads
//! beside nginx (`reads`), model hashing and signing beside the SHA-256 limit and the
//! reference tool (`hashing`), a log of millions of entries (`scale`), and offline
//! lineage verification (`lineage`). Out of scope: correctness, which the test suite
//! checks; nothing here asserts a timing. `BENCHMARKS.md` has the command, the machine
//! and the results.

mod appends;
mod hashing;
mod lineage;
mod load;
mod procs;
mod reads;
mod report;
mod scale;
mod synth;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Pedigree benchmarks: markdown tables with same-run baselines.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Directory holding `pedigree-server` and `pedigree` [default: this executable's]
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Durable appends over HTTP at 1-256 clients, beside fsync, the engine and /healthz
    Appends(appends::AppendArgs),
    /// Inclusion proofs and tiles at 64 clients, beside nginx serving the same tiles
    Reads(reads::ReadArgs),
    /// `pedigree hash/sign/verify` on a 1 GiB model beside sha2, openssl, sha256sum
    /// and model_signing
    Hashing(hashing::HashingArgs),
    /// Proofs, start-up, disk use and appends at millions of entries vs 10,000
    Scale(scale::ScaleArgs),
    /// `pedigree lineage verify` of a six-step chain from bundles, beside process start
    Lineage(lineage::LineageArgs),
    /// Every scenario with its defaults, except `scale`, which takes `--entries`
    All {
        /// Sizes for the scale scenario
        #[arg(long, value_delimiter = ',', default_values_t = [10_000_000])]
        entries: Vec<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pedigree-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let bins = procs::Bins::locate(cli.bin_dir.as_deref())?;
    println!("{}\n", report::machine_header());
    match cli.scenario {
        Scenario::Appends(a) => appends::run(&bins, &a),
        Scenario::Reads(a) => reads::run(&bins, &a),
        Scenario::Hashing(a) => hashing::run(&bins, &a),
        Scenario::Scale(a) => scale::run(&bins, &a),
        Scenario::Lineage(a) => lineage::run(&bins, &a),
        Scenario::All { entries } => {
            appends::run(&bins, &parse_defaults::<appends::AppendArgs>()?)?;
            reads::run(&bins, &parse_defaults::<reads::ReadArgs>()?)?;
            hashing::run(&bins, &parse_defaults::<hashing::HashingArgs>()?)?;
            lineage::run(&bins, &parse_defaults::<lineage::LineageArgs>()?)?;
            let mut s = parse_defaults::<scale::ScaleArgs>()?;
            s.entries = entries;
            scale::run(&bins, &s)
        }
    }
}

/// A scenario's arguments with every default.
fn parse_defaults<T: clap::Args + clap::FromArgMatches>() -> Result<T> {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true));
    let matches = cmd.try_get_matches_from(std::iter::empty::<String>())?;
    Ok(T::from_arg_matches(&matches)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_usable_defaults() {
        let a = parse_defaults::<appends::AppendArgs>().unwrap();
        assert_eq!(a.clients, [1, 16, 64, 256]);
        assert_eq!(a.keep_alive_ms, [0, 5000]);
        assert_eq!(parse_defaults::<reads::ReadArgs>().unwrap().clients, 64);
        assert_eq!(
            parse_defaults::<hashing::HashingArgs>().unwrap().size_mib,
            1024
        );
        assert_eq!(parse_defaults::<lineage::LineageArgs>().unwrap().runs, 50);
        assert_eq!(
            parse_defaults::<scale::ScaleArgs>().unwrap().entries,
            [10_000_000]
        );
    }
}
