//! `archy-sign`: the offline signing ceremony for Archipelago's root and catalog.
//!
//! Everything here runs on a machine that never touches a network: keyholders derive
//! their role keys from BIP39 mnemonics, sign envelopes one at a time (signatures from
//! separate sessions combine in the file), and check the result with the same
//! verification code a node runs (`archy-registry`).
//!
//! Secrets (mnemonic, passphrase) are read from a file, a pipe or a no-echo prompt,
//! never from argv, and are never printed. See docs/keys.md.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod document;
mod keys;
mod mnemonic;
mod review;
mod root_init;
mod root_rotate;
mod secrets;
mod sign;
mod verify;

#[derive(Parser)]
#[command(
    name = "archy-sign",
    version,
    about = "Offline signing ceremony for Archipelago's root and catalog",
    long_about = "Offline signing ceremony for Archipelago's root and catalog.\n\n\
        Mnemonics are read from --mnemonic-file, else from stdin when it is not a terminal, \
        else from a no-echo prompt. They are never accepted on the command line."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new BIP39 mnemonic, or check one.
    #[command(subcommand)]
    Mnemonic(MnemonicCommand),
    /// Print the did:key of one of your role keys (derived from your mnemonic).
    Pubkey(keys::PubkeyArgs),
    /// Derive a public key from a raw seed and path, to check against SLIP-0010's test vectors.
    Derive(keys::DeriveArgs),
    /// Create root documents: the first one, or the next one.
    #[command(subcommand)]
    Root(RootCommand),
    /// Show what a catalog changes, permissions first, before you sign it.
    Review(review::ReviewArgs),
    /// Add your signature to an envelope (other keyholders' signatures are kept).
    Sign(sign::SignArgs),
    /// Check a root or catalog envelope's signatures, thresholds and expiry.
    Verify(verify::VerifyArgs),
}

#[derive(Subcommand)]
enum MnemonicCommand {
    /// Generate a mnemonic from OS randomness (optionally mixed with dice rolls): print it,
    /// or write it to a new owner-only (0600) file with --out.
    New(mnemonic::NewArgs),
    /// Check that a mnemonic is valid (BIP39 English word list and checksum).
    Check(mnemonic::CheckArgs),
}

#[derive(Subcommand)]
enum RootCommand {
    /// Write a new, unsigned root envelope.
    Init(root_init::RootInitArgs),
    /// Write the unsigned next root (version + 1), carrying over what is not given.
    Rotate(root_rotate::RootRotateArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Mnemonic(MnemonicCommand::New(args)) => mnemonic::new(&args),
        Command::Mnemonic(MnemonicCommand::Check(args)) => mnemonic::check(&args),
        Command::Pubkey(args) => keys::pubkey(&args),
        Command::Derive(args) => keys::derive(&args),
        Command::Root(RootCommand::Init(args)) => root_init::run(&args),
        Command::Root(RootCommand::Rotate(args)) => root_rotate::run(&args),
        Command::Review(args) => review::run(&args),
        Command::Sign(args) => sign::run(&args),
        Command::Verify(args) => verify::run(&args),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line: "what: why: cause".
            eprintln!("archy-sign: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
