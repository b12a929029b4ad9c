//! `verify`: report who signed what, whether each threshold is met, and the verdict of
//! the registry's own verification (the same code a node runs).
//!
//! The report (stdout) is for people; the verdict comes only from `archy-registry`, so
//! archy-sign can never call valid what a node would refuse.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use archy_registry::{
    Catalog, Envelope, PayloadType, PublicKey, Role, Root, VerifiedCatalog, VerifiedRoot,
};
use chrono::{DateTime, Utc};
use clap::Args;

use crate::document::{Document, payload_type, read_file};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The root or catalog envelope to check.
    file: PathBuf,
    /// A root envelope. For a catalog: the root holding its catalog keys (required).
    /// For a root: the previous root, to check a rotation (omit to check a trust anchor).
    #[arg(long, value_name = "ROOT_ENVELOPE_FILE")]
    root: Option<PathBuf>,
}

/// One role whose threshold applies to the envelope.
struct RoleCheck {
    label: String,
    keys: Vec<PublicKey>,
    threshold: u32,
}

impl RoleCheck {
    fn new(label: String, root: &Root, role: Role) -> Self {
        Self {
            label,
            keys: root.role_keys(role),
            threshold: root.role(role).threshold,
        }
    }
}

pub fn run(args: &VerifyArgs) -> Result<()> {
    let now = Utc::now();
    let file = args.file.display().to_string();
    let bytes = read_file(&args.file)?;
    let envelope = Envelope::from_bytes(&bytes).with_context(|| file.clone())?;
    match payload_type(&envelope).with_context(|| file.clone())? {
        PayloadType::Root => verify_root(args, &bytes, &envelope, now),
        PayloadType::Catalog => verify_catalog(args, &bytes, &envelope, now),
        PayloadType::Manifest => bail!(
            "{file}: a manifest envelope; archy-sign verifies roots and catalogs \
             (nodes check manifests against their publisher's DID)"
        ),
    }
}

/// A root used as a reference must itself meet its own root threshold.
fn load_root(path: &Path) -> Result<VerifiedRoot> {
    let bytes = read_file(path)?;
    VerifiedRoot::trust_anchor(&bytes)
        .with_context(|| format!("--root {}: not a validly signed root", path.display()))
}

fn verify_root(
    args: &VerifyArgs,
    bytes: &[u8],
    envelope: &Envelope,
    now: DateTime<Utc>,
) -> Result<()> {
    let file = args.file.display().to_string();
    // The same file passed as its own --root is simply an anchor check.
    let previous = args
        .root
        .as_deref()
        .map(load_root)
        .transpose()?
        .filter(|p| p.envelope_bytes() != bytes);
    let root = Root::from_json(&envelope.payload_bytes()?).with_context(|| file.clone())?;

    println!("{file}: {}", Document::Root(root.clone()).summary(now));
    print_hashes(bytes, envelope)?;
    let mut checks = vec![RoleCheck::new(
        format!("root role of root v{}", root.version),
        &root,
        Role::Root,
    )];
    if let Some(prev) = &previous {
        println!(
            "previous root: {}",
            Document::Root(prev.root().clone()).summary(now)
        );
        checks.push(RoleCheck::new(
            format!("root role of previous root v{}", prev.version()),
            prev.root(),
            Role::Root,
        ));
    }
    print_signatures(envelope, &checks)?;
    print_thresholds(envelope, &checks)?;

    let verdict = match &previous {
        None => VerifiedRoot::trust_anchor(bytes).and_then(|r| {
            r.check_unexpired(now)?;
            Ok(format!("root version {} as a trust anchor", r.version()))
        }),
        Some(prev) => prev.rotate(bytes).and_then(|r| {
            r.check_unexpired(now)?;
            Ok(format!(
                "rotation from root version {} to {}",
                prev.version(),
                r.version()
            ))
        }),
    };
    conclude(&file, verdict)
}

fn verify_catalog(
    args: &VerifyArgs,
    bytes: &[u8],
    envelope: &Envelope,
    now: DateTime<Utc>,
) -> Result<()> {
    let file = args.file.display().to_string();
    let root_path = args.root.as_deref().ok_or_else(|| {
        anyhow!("{file} is a catalog: give --root ROOT_ENVELOPE_FILE, the root that holds the catalog keys")
    })?;
    let root = load_root(root_path)?;
    let catalog = Catalog::from_json(&envelope.payload_bytes()?).with_context(|| file.clone())?;

    print_catalog(&file, &catalog, now);
    print_hashes(bytes, envelope)?;
    println!(
        "checked against {}: {}",
        root_path.display(),
        Document::Root(root.root().clone()).summary(now)
    );
    let checks = [RoleCheck::new(
        format!("catalog role of root v{}", root.version()),
        root.root(),
        Role::Catalog,
    )];
    print_signatures(envelope, &checks)?;
    print_thresholds(envelope, &checks)?;

    // The same order as a node: signatures and threshold, then expiry of both documents.
    let verdict = VerifiedCatalog::verify(&root, bytes).and_then(|c| {
        c.check_unexpired(now)?;
        root.check_unexpired(now)?;
        Ok(format!(
            "catalog version {} under root version {}",
            c.version(),
            root.version()
        ))
    });
    conclude(&file, verdict)
}

fn print_catalog(file: &str, catalog: &Catalog, now: DateTime<Utc>) {
    println!(
        "{file}: {}",
        Document::Catalog(Box::new(catalog.clone())).summary(now)
    );
    println!(
        "  previous {}",
        catalog
            .previous
            .as_deref()
            .unwrap_or("none (first catalog)")
    );
    println!(
        "  origin {} (iroh {})",
        catalog.origin.http, catalog.origin.iroh
    );
    for app in &catalog.apps {
        println!(
            "  app {} {} ({} artifact(s))",
            app.id,
            app.version,
            app.artifacts.len()
        );
    }
}

/// The payload hash is what keyholders compare (signatures do not change it) and what the
/// next catalog names as `previous`; the envelope hash identifies this exact file.
fn print_hashes(bytes: &[u8], envelope: &Envelope) -> Result<()> {
    println!(
        "  payload blake3  {}",
        archy_registry::blake3_hex(&envelope.payload_bytes()?)
    );
    println!("  envelope blake3 {}", archy_registry::blake3_hex(bytes));
    Ok(())
}

fn print_signatures(envelope: &Envelope, checks: &[RoleCheck]) -> Result<()> {
    println!("signatures:");
    if envelope.signatures.is_empty() {
        println!("  (none)");
    }
    let mut seen = HashSet::new();
    for signature in &envelope.signatures {
        let Ok(key) = PublicKey::from_did_key(&signature.keyid) else {
            println!(
                "  {}  not an ed25519 did:key, does not count",
                signature.keyid
            );
            continue;
        };
        // Check this one entry on its own, so a good and a bad entry for the same key
        // are told apart.
        let single = Envelope {
            signatures: vec![signature.clone()],
            ..envelope.clone()
        };
        let valid = !single.valid_signers([&key])?.is_empty();
        let roles: Vec<&str> = checks
            .iter()
            .filter(|c| c.keys.contains(&key))
            .map(|c| c.label.as_str())
            .collect();
        let mut status = String::from(if valid { "valid" } else { "BAD SIGNATURE" });
        if roles.is_empty() {
            status.push_str(", NOT IN ROLE: does not count");
        } else {
            status.push_str(&format!(", in {}", roles.join(" and ")));
        }
        if !seen.insert(signature.keyid.as_str()) {
            status.push_str(", repeated: counted once");
        }
        println!("  {}  {status}", signature.keyid);
    }
    Ok(())
}

fn print_thresholds(envelope: &Envelope, checks: &[RoleCheck]) -> Result<()> {
    println!("thresholds:");
    for check in checks {
        let valid = envelope.valid_signers(&check.keys)?.len();
        let met = if valid as u64 >= u64::from(check.threshold) {
            "met"
        } else {
            "NOT MET"
        };
        println!(
            "  {}: {valid} of {} key(s) signed, {} needed: {met}",
            check.label,
            check.keys.len(),
            check.threshold
        );
    }
    Ok(())
}

/// The registry's verdict decides the exit status; its error message is passed on as is.
fn conclude(file: &str, verdict: std::result::Result<String, archy_registry::Error>) -> Result<()> {
    match verdict {
        Ok(what) => {
            println!("result: VALID: {what}");
            Ok(())
        }
        Err(e) => {
            println!("result: NOT VALID");
            Err(anyhow!("{file}: not valid: {e}"))
        }
    }
}
