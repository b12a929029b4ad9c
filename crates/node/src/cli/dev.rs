//! `archy dev`: the third-party developer identity (one mnemonic: a did:key and a Nostr key).

use std::io::Read;

use anyhow::Context;
use archy_marketplace::DeveloperIdentity;

use super::DevCommand;

pub fn run(command: DevCommand) -> anyhow::Result<()> {
    let (mnemonic, index) = match command {
        DevCommand::Init { out } => {
            let mnemonic = DeveloperIdentity::new_mnemonic();
            archy_node::publish::write_mnemonic_file(&out, &mnemonic)?;
            eprintln!(
                "wrote a new mnemonic to {} (0600): back it up offline; it is your identity",
                out.display()
            );
            (mnemonic, 0)
        }
        DevCommand::Show {
            mnemonic_file,
            index,
        } => {
            let mut text = zeroize::Zeroizing::new(String::new());
            match &mnemonic_file {
                Some(path) => text = archy_node::publish::read_mnemonic_file(path)?,
                None => {
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("reading the mnemonic from stdin")?;
                }
            }
            (text, index)
        }
    };
    let id = DeveloperIdentity::from_mnemonic(&mnemonic, "", index)?;
    outln!("did:   {}", id.did());
    outln!("nostr: {} ({})", id.npub(), id.nostr_public_hex());
    Ok(())
}
