//! `pedigree`: sign, attest, submit and verify the lineage of ML models and datasets.

use clap::{Parser, Subcommand};

/// Provenance for ML models and datasets, checked against a transparency log.
#[derive(Parser, Debug)]
#[command(name = "pedigree", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the fingerprint (SHA-256 of the DER SubjectPublicKeyInfo) of a public key
    Fingerprint {
        /// SPKI PEM public key file
        file: std::path::PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("pedigree: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    use anyhow::Context as _;
    match cli.command {
        Command::Fingerprint { file } => {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("couldn't read {}", file.display()))?;
            let key = pedigree_core::keys::PublicKey::from_pem(&pem)
                .with_context(|| format!("couldn't parse {}", file.display()))?;
            println!("{}", key.fingerprint());
        }
    }
    Ok(())
}
