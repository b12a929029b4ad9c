//! `archy`: the node daemon, the origin, the catalog builder, and a CLI for the node's API.
//! The commands live in [`cli`]; this is only the entry point.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::run(cli).await
}
