//! `pedigree-server`: serves a Pedigree log over HTTP.

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use pedigree_server::config::{Config, ServeArgs};
use pedigree_server::service;

/// Pedigree transparency log server for ML supply-chain attestations.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    /// Print the effective configuration as TOML and exit
    #[arg(long)]
    print_config: bool,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("pedigree-server: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let config = match Config::resolve(&cli.serve) {
        Ok(c) => c,
        Err(e) => bail!("invalid configuration: {e}"),
    };
    if cli.print_config {
        print!(
            "{}",
            toml::to_string(&config).context("couldn't print configuration")?
        );
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEDIGREE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let log = service::open_log(&config)?;
    service::serve(config, log)
}
