//! `root init`: write a new, unsigned root envelope for the keyholders to sign.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use archy_registry::{Envelope, PayloadType, PublicKey, Root};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use clap::Args;

use crate::document::{expiry, timestamp, write_file_atomically};

#[derive(Args, Debug)]
pub struct RootInitArgs {
    /// A root role key (did:key from `archy-sign pubkey --role root`). Repeat for each key.
    #[arg(long = "root-key", value_name = "DID", required = true)]
    root_keys: Vec<PublicKey>,
    /// How many distinct root keys must sign a root.
    #[arg(long, value_name = "K")]
    root_threshold: u32,
    /// A catalog role key (did:key from `archy-sign pubkey --role catalog`). Repeat for each key.
    #[arg(long = "catalog-key", value_name = "DID", required = true)]
    catalog_keys: Vec<PublicKey>,
    /// How many distinct catalog keys must sign a catalog.
    #[arg(long, value_name = "K")]
    catalog_threshold: u32,
    /// Expiry, counted from this machine's clock (check it: offline machines drift).
    #[arg(
        long,
        value_name = "N",
        required_unless_present = "expires",
        conflicts_with = "expires"
    )]
    expires_in_days: Option<u32>,
    /// Expiry as an RFC 3339 time (e.g. 2027-01-01T00:00:00Z), independent of this machine's clock.
    #[arg(long, value_name = "TIME")]
    expires: Option<DateTime<Utc>>,
    /// Root version: 1 for a new trust anchor, previous + 1 for a rotation.
    #[arg(long, default_value_t = 1)]
    version: u64,
    /// Where to write the unsigned root envelope.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Overwrite --out if it exists (it may already carry signatures).
    #[arg(long)]
    force: bool,
}

pub fn run(args: &RootInitArgs) -> Result<()> {
    let now = Utc::now();
    let expires = expires_at(args, now)?;
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists (it may hold signatures); pass --force to replace it",
            args.out.display()
        );
    }
    let root = Root::new(
        args.version,
        expires,
        &args.root_keys,
        args.root_threshold,
        &args.catalog_keys,
        args.catalog_threshold,
    )
    .context("building the root document")?;
    let envelope = Envelope::unsigned(PayloadType::Root, &root.to_json());
    write_file_atomically(&args.out, &envelope.to_bytes())?;
    report(args, &root, now);
    Ok(())
}

fn expires_at(args: &RootInitArgs, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let expires = match (args.expires, args.expires_in_days) {
        (Some(at), _) => at,
        (None, Some(days)) => now.trunc_subsecs(0) + Duration::days(i64::from(days)),
        (None, None) => bail!("give --expires-in-days or --expires"),
    };
    if expires <= now {
        bail!(
            "expiry {} is not in the future (this machine's clock says {})",
            timestamp(expires),
            timestamp(now)
        );
    }
    Ok(expires)
}

/// Tells the operator what was written and what comes next (stderr: stdout stays empty).
fn report(args: &RootInitArgs, root: &Root, now: DateTime<Utc>) {
    eprintln!(
        "wrote unsigned root version {} to {}",
        root.version,
        args.out.display()
    );
    eprintln!(
        "  {} (this machine's clock: {now})",
        expiry(root.expires, now)
    );
    for (name, role) in [("root", &root.roles.root), ("catalog", &root.roles.catalog)] {
        eprintln!(
            "  {name} role, {} of {}:",
            role.threshold,
            role.keyids.len()
        );
        for id in &role.keyids {
            eprintln!("    {id}");
        }
    }
    let shared: Vec<_> = root
        .roles
        .root
        .keyids
        .iter()
        .filter(|id| root.roles.catalog.keyids.contains(id))
        .collect();
    for id in shared {
        eprintln!(
            "  warning: {id} is in both roles; role keys normally come from separate paths \
             (`pubkey --role root` and `pubkey --role catalog`)"
        );
    }
    eprintln!(
        "next: each root keyholder runs `archy-sign sign {} --role root`",
        args.out.display()
    );
}
