//! `pedigree`: sign, attest, submit and verify the lineage of ML models and datasets.
//!
//! A thin layer over `pedigree-core`: this crate reads files, hashes models, talks to
//! logs over HTTP and prints; every format and every check lives in core.

mod client;
mod cmd;
mod output;

use clap::{Parser, Subcommand};

/// Provenance for ML models and datasets, checked against a transparency log.
#[derive(Parser, Debug)]
#[command(name = "pedigree", version, about)]
struct Cli {
    /// Print results as JSON
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate keys and print fingerprints
    #[command(subcommand)]
    Key(cmd::key::KeyCommand),
}

fn main() {
    let cli = Cli::parse();
    let out = output::Output { json: cli.json };
    let result = match cli.command {
        Command::Key(c) => cmd::key::run(c, &out),
    };
    if let Err(e) = result {
        // One line: the whole context chain.
        eprintln!("pedigree: {e:#}");
        std::process::exit(1);
    }
}
