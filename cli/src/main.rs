//! `pedigree`: sign, attest, submit and verify the lineage of ML models and datasets.
//!
//! A thin layer over `pedigree-core`: this crate reads files, hashes models, talks to
//! logs over HTTP and prints; every format and every check lives in core.

mod atomic;
mod client;
mod cmd;
mod model;
mod output;
mod settings;

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
    /// Sign a model directory or file (OpenSSF model signing, OMS v1.0)
    Sign(cmd::oms::SignArgs),
    /// Verify a model against its OMS signature
    Verify(cmd::oms::VerifyArgs),
    /// Print a model's OMS root digest, sha256:<hex>
    Hash(cmd::oms::HashArgs),
    /// Record one step of an artifact's life (dataset, train, ...) as signed provenance
    Attest(cmd::attest::AttestArgs),
    /// Submit a signed bundle to a log and add the log's receipt to it
    Submit(cmd::attest::SubmitArgs),
    /// Show or verify an artifact's lineage from creator to deployer
    #[command(subcommand)]
    Lineage(cmd::lineage::LineageCommand),
    /// Revoke an artifact: log a signed revocation that lineage verification honours
    Revoke(cmd::revoke::RevokeArgs),
    /// List everything derived from an artifact, deployments included, and the last good version
    Impact(cmd::impact::ImpactArgs),
    /// Write a model's AI-BOM (CycloneDX 1.6 ML-BOM) from its verified lineage
    Bom(cmd::bom::BomArgs),
    /// Audit a log: verify its checkpoints and every entry, alert on watched keys and subjects
    Monitor(cmd::monitor::MonitorArgs),
    /// Inspect model files for code that loading them would run (pickle, archives, ...)
    Scan(cmd::scan::ScanArgs),
    /// Write an entry's offline proof (C2SP tlog-proof), or verify one with --verify
    Proof(cmd::proof::ProofArgs),
    /// Run a witness that cosigns logs' checkpoints (C2SP tlog-witness)
    #[command(subcommand)]
    Witness(cmd::witness::WitnessCommand),
}

fn main() {
    let cli = Cli::parse();
    let out = output::Output { json: cli.json };
    let result = match cli.command {
        Command::Key(c) => cmd::key::run(c, &out),
        Command::Sign(a) => cmd::oms::sign(a, &out),
        Command::Verify(a) => cmd::oms::verify(a, &out),
        Command::Hash(a) => cmd::oms::hash(a, &out),
        Command::Attest(a) => cmd::attest::run(a, &out),
        Command::Submit(a) => cmd::attest::submit(a, &out),
        Command::Lineage(c) => cmd::lineage::run(c, &out),
        Command::Revoke(a) => cmd::revoke::run(a, &out),
        Command::Impact(a) => cmd::impact::run(a, &out),
        Command::Bom(a) => cmd::bom::run(a, &out),
        Command::Monitor(a) => cmd::monitor::run(a, &out),
        Command::Proof(a) => cmd::proof::run(a, &out),
        Command::Scan(a) => cmd::scan::run(a, &out),
        Command::Witness(c) => cmd::witness::run(c),
    };
    if let Err(e) = result {
        // One line: the whole context chain.
        eprintln!("pedigree: {e:#}");
        std::process::exit(1);
    }
}
