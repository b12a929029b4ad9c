//! `root init`: write a new, unsigned root envelope for the keyholders to sign.
//! Also the parts `root rotate` shares with it: expiry options and the written-root report.

use std::path::{Path, PathBuf};

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
    #[command(flatten)]
    expiry: ExpiryArgs,
    /// Root version: 1 for a new trust anchor (for the next version, use `root rotate`).
    #[arg(long, default_value_t = 1)]
    version: u64,
    #[command(flatten)]
    out: OutArgs,
}

/// When the new root expires.
#[derive(Args, Debug)]
pub struct ExpiryArgs {
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
}

impl ExpiryArgs {
    /// The expiry time; refuses one that is not in the future by `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let expires = match (self.expires, self.expires_in_days) {
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
}

/// Where the unsigned root goes.
#[derive(Args, Debug)]
pub struct OutArgs {
    /// Where to write the unsigned root envelope.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Overwrite --out if it exists (it may already carry signatures).
    #[arg(long)]
    force: bool,
}

impl OutArgs {
    /// Refuses to replace a file that may hold signatures, unless forced.
    pub fn check_writable(&self) -> Result<()> {
        if self.out.exists() && !self.force {
            bail!(
                "{} already exists (it may hold signatures); pass --force to replace it",
                self.out.display()
            );
        }
        Ok(())
    }

    pub fn write(&self, root: &Root) -> Result<()> {
        let envelope = Envelope::unsigned(PayloadType::Root, &root.to_json());
        write_file_atomically(&self.out, &envelope.to_bytes())
    }
}

pub fn run(args: &RootInitArgs) -> Result<()> {
    let now = Utc::now();
    let expires = args.expiry.resolve(now)?;
    args.out.check_writable()?;
    let root = Root::new(
        args.version,
        expires,
        &args.root_keys,
        args.root_threshold,
        &args.catalog_keys,
        args.catalog_threshold,
    )
    .context("building the root document")?;
    args.out.write(&root)?;
    eprintln!(
        "wrote unsigned root version {} to {}",
        root.version,
        args.out.out.display()
    );
    describe_roles(&root, None, now);
    eprintln!(
        "next: each root keyholder runs `archy-sign sign {} --role root`",
        args.out.out.display()
    );
    Ok(())
}

/// Tells the operator what the new root says (stderr: stdout stays empty). With a
/// previous root, marks the keys that came in and lists those rotated out.
pub fn describe_roles(root: &Root, previous: Option<&Root>, now: DateTime<Utc>) {
    eprintln!(
        "  {} (this machine's clock: {})",
        expiry(root.expires, now),
        timestamp(now)
    );
    for role in [archy_registry::Role::Root, archy_registry::Role::Catalog] {
        let keys = root.role(role);
        let before = previous.map(|p| p.role(role));
        let threshold_note = match before {
            Some(b) if b.threshold != keys.threshold => {
                format!(" (threshold was {})", b.threshold)
            }
            _ => String::new(),
        };
        eprintln!(
            "  {} role, {} of {}{threshold_note}:",
            role.name(),
            keys.threshold,
            keys.keyids.len()
        );
        for id in &keys.keyids {
            let new = before.is_some_and(|b| !b.keyids.contains(id));
            eprintln!("    {id}{}", if new { "  (new)" } else { "" });
        }
        if let Some(b) = before {
            for id in b.keyids.iter().filter(|id| !keys.keyids.contains(id)) {
                eprintln!("    {id}  (ROTATED OUT of the {} role)", role.name());
            }
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
}

/// The same file, even through another name (so `--out` never replaces `--previous`).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
