//! `root rotate`: write the unsigned root N+1 from root N. Whatever is not given is
//! carried over (keys, thresholds); revoking a key means giving the key list without it.
//!
//! Root N+1 counts only when a threshold of root N's root keys AND a threshold of its own
//! root keys sign it (`archy-sign sign --role root` by each), which `verify --root` checks.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use archy_registry::{PublicKey, Role, Root, VerifiedRoot};
use chrono::Utc;
use clap::Args;

use crate::document::{Document, read_file};
use crate::root_init::{ExpiryArgs, OutArgs, describe_roles, same_file};

#[derive(Args, Debug)]
pub struct RootRotateArgs {
    /// The current root envelope (signed): the new root gets its version + 1.
    #[arg(long, value_name = "ROOT_ENVELOPE")]
    previous: PathBuf,
    /// The new root role keys, all of them (repeat). Omit to keep the previous root's.
    #[arg(long = "root-key", value_name = "DID")]
    root_keys: Vec<PublicKey>,
    /// New root threshold. Omit to keep the previous root's.
    #[arg(long, value_name = "K")]
    root_threshold: Option<u32>,
    /// The new catalog role keys, all of them (repeat). Omit to keep the previous root's.
    #[arg(long = "catalog-key", value_name = "DID")]
    catalog_keys: Vec<PublicKey>,
    /// New catalog threshold. Omit to keep the previous root's.
    #[arg(long, value_name = "K")]
    catalog_threshold: Option<u32>,
    #[command(flatten)]
    expiry: ExpiryArgs,
    #[command(flatten)]
    out: OutArgs,
}

pub fn run(args: &RootRotateArgs) -> Result<()> {
    let now = Utc::now();
    let expires = args.expiry.resolve(now)?;
    let previous_name = args.previous.display().to_string();
    // Only a root that meets its own threshold can hand its trust on. An expired one
    // can: rotating away from it is how a node recovers.
    let previous = VerifiedRoot::trust_anchor(&read_file(&args.previous)?)
        .with_context(|| format!("--previous {previous_name}: not a validly signed root"))?;
    let previous = previous.root();
    if same_file(&args.previous, &args.out.out) {
        bail!(
            "--out {}: that is the previous root",
            args.out.out.display()
        );
    }
    args.out.check_writable()?;

    let version = previous
        .version
        .checked_add(1)
        .context("the previous root's version cannot be incremented")?;
    let (root_keys, root_threshold) = carry(
        previous,
        Role::Root,
        &args.root_keys,
        args.root_threshold,
        "--root-threshold",
    )?;
    let (catalog_keys, catalog_threshold) = carry(
        previous,
        Role::Catalog,
        &args.catalog_keys,
        args.catalog_threshold,
        "--catalog-threshold",
    )?;
    let root = Root::new(
        version,
        expires,
        &root_keys,
        root_threshold,
        &catalog_keys,
        catalog_threshold,
    )
    .with_context(|| format!("building root version {version}"))?;
    args.out.write(&root)?;

    let out = args.out.out.display();
    eprintln!(
        "wrote unsigned root version {version} to {out}, rotating from root version {} ({previous_name})",
        previous.version
    );
    if previous.expires <= now {
        eprintln!("  note: the previous root has expired; nodes can still rotate away from it");
    }
    describe_roles(&root, Some(previous), now);
    let (old_role, new_role) = (previous.role(Role::Root), root.role(Role::Root));
    eprintln!(
        "next: root v{version} counts only when signed by {} of root v{}'s {} root key(s) AND {} of \
         its own {} (a key in both counts for both).",
        old_role.threshold,
        previous.version,
        old_role.keyids.len(),
        new_role.threshold,
        new_role.keyids.len()
    );
    eprintln!("  each of those keyholders runs `archy-sign sign {out} --role root`;");
    eprintln!("  then check: `archy-sign verify {out} --root {previous_name}`");
    // The summary a keyholder will see when signing, so it can be compared now.
    eprintln!("  {out}: {}", Document::Root(root.clone()).summary(now));
    Ok(())
}

/// The keys and threshold of one role in the new root: the given ones, else the previous
/// root's. A carried-over threshold that no longer fits the given keys is an error that
/// says so, rather than a silent change of threshold.
fn carry(
    previous: &Root,
    role: Role,
    keys: &[PublicKey],
    threshold: Option<u32>,
    flag: &str,
) -> Result<(Vec<PublicKey>, u32)> {
    let keys = if keys.is_empty() {
        previous.role_keys(role)
    } else {
        keys.to_vec()
    };
    let threshold = match threshold {
        Some(k) => k,
        None => {
            let k = previous.role(role).threshold;
            if k as usize > keys.len() {
                bail!(
                    "{} role: the threshold {k} carried over from root v{} is more than the {} \
                     key(s) given; give {flag}",
                    role.name(),
                    previous.version,
                    keys.len()
                );
            }
            k
        }
    };
    Ok((keys, threshold))
}
