//! `pubkey` (your role key's did:key) and `derive` (raw seed + path, for SLIP-0010 vectors).

use anyhow::{Context, Result, bail};
use archy_registry::SecretKey;
use archy_registry::keys::{format_path, parse_path};
use clap::Args;
use zeroize::Zeroizing;

use crate::secrets::KeyInput;

#[derive(Args, Debug)]
pub struct PubkeyArgs {
    #[command(flatten)]
    key: KeyInput,
}

#[derive(Args, Debug)]
pub struct DeriveArgs {
    /// The seed as hex (16 to 64 bytes). For published test vectors only: never pass a real
    /// seed on the command line.
    #[arg(long, value_name = "HEX")]
    seed_hex: String,
    /// Hardened SLIP-0010 path, e.g. "m/0'/1'/2'/2'/1000000000'".
    #[arg(long, value_name = "PATH")]
    path: String,
}

/// Prints the did:key on stdout (what goes into `root init`), the path on stderr.
pub fn pubkey(args: &PubkeyArgs) -> Result<()> {
    let derived = args.key.derive()?;
    println!("{}", derived.key.public().did_key());
    eprintln!("{} key at {}", args.key.role.name(), derived.path);
    Ok(())
}

/// Prints the public key as hex, then as did:key. SLIP-0010's tables show the same hex
/// with a leading `00` byte.
pub fn derive(args: &DeriveArgs) -> Result<()> {
    let seed =
        Zeroizing::new(hex::decode(args.seed_hex.trim()).context("--seed-hex: not a hex string")?);
    // BIP32/SLIP-0010 seeds are 128 to 512 bits.
    if !(16..=64).contains(&seed.len()) {
        bail!(
            "--seed-hex: {} bytes; a SLIP-0010 seed is 16 to 64 bytes",
            seed.len()
        );
    }
    let path = parse_path(args.path.trim()).context("--path")?;
    let public = SecretKey::derive_from_seed(&seed, &path).public();
    println!("{}", public.to_hex());
    println!("{}", public.did_key());
    eprintln!("ed25519 public key at {}", format_path(&path));
    Ok(())
}
