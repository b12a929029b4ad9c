//! `review`: what a catalog changes, for the keyholder to read before signing it.
//!
//! Every line that changes what an app may do on a node (image source, user, privileged,
//! host network or PID namespace, ports, volumes, capabilities, secrets and the env that
//! uses them, dependencies on other apps) starts with `!!`, and so does anything wrong
//! with the catalog itself (broken hash chain, version not increasing, origin moved,
//! already expired). Other changes are shown without the mark.
//!
//! The manifest types are destructured field by field below, so a field added to the
//! schema does not compile here until the review says something about it.
//!
//! Nothing here checks signatures (`verify` does). The output depends only on the two
//! files and the clock (for "in N days"): apps, containers and entries are in key order.

mod catalog;
mod manifest;
mod text;

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use archy_registry::{Catalog, Envelope, PayloadType, blake3_hex};
use chrono::{DateTime, Utc};
use clap::Args;

use crate::document::{envelope_or_bare_document, payload_type, read_file};

#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// The catalog to review: an envelope (signed or not) or a bare catalog document.
    catalog: PathBuf,
    /// The catalog it replaces: the signed envelope nodes hold now. Without it, every app
    /// is shown as new, with all of its permissions.
    #[arg(long, value_name = "OLD_CATALOG")]
    previous: Option<PathBuf>,
}

pub fn run(args: &ReviewArgs) -> Result<()> {
    let load = |path: &PathBuf| -> Result<CatalogFile> {
        CatalogFile::parse(path.display().to_string(), read_file(path)?)
    };
    let new = load(&args.catalog)?;
    let old = args.previous.as_ref().map(load).transpose()?;
    print!("{}", review(&new, old.as_ref(), Utc::now()));
    Ok(())
}

/// One catalog file, read and parsed (its signatures are counted, not checked).
pub struct CatalogFile {
    name: String,
    bytes: Vec<u8>,
    envelope: Envelope,
    /// A bare catalog document rather than an envelope.
    bare: bool,
    catalog: Catalog,
}

impl CatalogFile {
    pub fn parse(name: String, bytes: Vec<u8>) -> Result<Self> {
        let (envelope, bare) = envelope_or_bare_document(&bytes).with_context(|| name.clone())?;
        let kind = payload_type(&envelope).with_context(|| name.clone())?;
        if kind != PayloadType::Catalog {
            bail!(
                "{name}: a {} envelope, not a catalog",
                envelope.payload_type
            );
        }
        let catalog =
            Catalog::from_json(&envelope.payload_bytes()?).with_context(|| name.clone())?;
        Ok(Self {
            name,
            bytes,
            envelope,
            bare,
            catalog,
        })
    }
}

/// The review: lines, each either plain or marked `!!` (needs the signer's attention).
#[derive(Default)]
pub struct Report {
    lines: Vec<Line>,
}

struct Line {
    attention: bool,
    depth: usize,
    text: String,
}

impl Report {
    fn say(&mut self, depth: usize, text: impl Into<String>) {
        self.push(false, depth, text.into());
    }

    fn flag(&mut self, depth: usize, text: impl Into<String>) {
        self.push(true, depth, text.into());
    }

    fn blank(&mut self) {
        self.push(false, 0, String::new());
    }

    fn push(&mut self, attention: bool, depth: usize, text: String) {
        self.lines.push(Line {
            attention,
            depth,
            text,
        });
    }

    /// How many lines are marked `!!`.
    pub fn flagged(&self) -> usize {
        self.lines.iter().filter(|l| l.attention).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            if line.text.is_empty() {
                writeln!(f)?;
                continue;
            }
            let mark = if line.attention { "!!" } else { "  " };
            writeln!(f, "{mark} {}{}", "  ".repeat(line.depth), line.text)?;
        }
        Ok(())
    }
}

/// Reviews `new` against `old` (the catalog nodes hold now), or on its own.
pub fn review(new: &CatalogFile, old: Option<&CatalogFile>, now: DateTime<Utc>) -> Report {
    let mut r = Report::default();
    catalog::files(&mut r, new, old, now);
    r.blank();
    catalog::catalog_fields(&mut r, new, old, now);
    r.blank();
    manifest::apps(&mut r, &new.catalog, old.map(|o| &o.catalog));
    r.blank();
    let flagged = r.flagged();
    if flagged == 0 {
        r.say(
            0,
            "no line marked !!: no permission changes and nothing wrong with the catalog itself",
        );
    } else {
        r.say(
            0,
            format!("{flagged} line(s) marked !!: read each one before you sign"),
        );
    }
    let payload = new.envelope.payload_bytes().unwrap_or_default();
    r.say(
        0,
        format!(
            "to sign: `archy-sign sign {} --role catalog`; it must show payload blake3 {}",
            new.name,
            blake3_hex(&payload)
        ),
    );
    r
}

#[cfg(test)]
mod tests;
