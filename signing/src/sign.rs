//! `sign`: add this keyholder's signature to an envelope, keeping everyone else's.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use archy_registry::Role;
use chrono::Utc;
use clap::Args;

use crate::document::{Document, envelope_or_bare_document, read_file, write_file_atomically};
use crate::secrets::{KeyInput, RoleArg};

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Envelope to sign (root, catalog or manifest), or a bare root/catalog document to wrap.
    file: PathBuf,
    #[command(flatten)]
    key: KeyInput,
    /// Write the signed envelope here instead of back to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: &SignArgs) -> Result<()> {
    let file = args.file.display();
    let bytes = read_file(&args.file)?;
    let (mut envelope, wrapped) =
        envelope_or_bare_document(&bytes).with_context(|| format!("{file}"))?;
    // Check the document before asking for the mnemonic: a keyholder should not type
    // their words only to learn the file was wrong, and nobody should sign garbage.
    let document = Document::from_envelope(&envelope).with_context(|| format!("{file}"))?;
    check_role(&document, args.key.role).with_context(|| format!("{file}"))?;
    describe(&args.file, &document, &envelope, wrapped);

    let derived = args.key.derive()?;
    let did = derived.key.public().did_key();
    let replaced = envelope.signatures.iter().any(|s| s.keyid == did);
    envelope
        .sign(&derived.key)
        .with_context(|| format!("{file}: signing"))?;

    let out = args.out.as_ref().unwrap_or(&args.file);
    write_file_atomically(out, &envelope.to_bytes())?;
    eprintln!(
        "signed by {did} ({} key at {}){}",
        args.key.role.name(),
        derived.path,
        if replaced {
            ", replacing its earlier signature"
        } else {
            ""
        }
    );
    eprintln!(
        "{} now carries {} signature(s)",
        out.display(),
        envelope.signatures.len()
    );
    note_root_membership(&document, &did);
    Ok(())
}

/// Each payload type is signed by one role's keys; a key from another branch would
/// add a signature that never counts, which is almost certainly a mistake.
fn check_role(document: &Document, role: RoleArg) -> Result<()> {
    let (kind, expected) = match document {
        Document::Root(_) => ("root", RoleArg::Root),
        Document::Catalog(_) => ("catalog", RoleArg::Catalog),
        Document::Manifest(_) => ("manifest", RoleArg::Developer),
    };
    if role != expected {
        bail!(
            "this is a {kind} envelope: sign it with --role {} (a {} key's signature would not count)",
            expected.name(),
            role.name()
        );
    }
    Ok(())
}

/// Shows what is about to be signed, so the keyholder can compare it with what was reviewed
/// (the payload hash does not change as signatures are added).
fn describe(
    path: &std::path::Path,
    document: &Document,
    envelope: &archy_registry::Envelope,
    wrapped: bool,
) {
    let now = Utc::now();
    eprintln!("{}: {}", path.display(), document.summary(now));
    if let Ok(payload) = envelope.payload_bytes() {
        eprintln!("  payload blake3 {}", archy_registry::blake3_hex(&payload));
    }
    if wrapped {
        eprintln!("  (a bare document: it is wrapped in an envelope before signing)");
    }
    eprintln!(
        "  {} signature(s) already present",
        envelope.signatures.len()
    );
    if let Some(expires) = document.expires()
        && expires <= now
    {
        eprintln!(
            "  warning: already expired by this machine's clock ({}); nodes will refuse it",
            crate::document::timestamp(now)
        );
    }
}

/// A root is signed by its own root keys and, in a rotation, by the previous root's.
/// We only know the former here, so this is a note, not an error.
fn note_root_membership(document: &Document, did: &str) {
    if let Document::Root(root) = document
        && !root.role(Role::Root).keyids.iter().any(|id| id == did)
    {
        eprintln!(
            "note: this key is not in this root's root role; it counts only as a previous \
             root's key in a rotation"
        );
    }
}
