//! The catalog files and the catalog's own fields: version, expiry, hash chain, origin.

use archy_registry::{Catalog, blake3_hex, catalog_link};
use chrono::{DateTime, Utc};

use super::{CatalogFile, Report};
use crate::document::{Document, expiry, timestamp};

pub(super) fn files(
    r: &mut Report,
    new: &CatalogFile,
    old: Option<&CatalogFile>,
    now: DateTime<Utc>,
) {
    let summary = |f: &CatalogFile| Document::Catalog(Box::new(f.catalog.clone())).summary(now);
    r.say(0, format!("{}: {}", new.name, summary(new)));
    let payload = new.envelope.payload_bytes().unwrap_or_default();
    r.say(
        1,
        format!(
            "payload blake3 {} (signatures do not change it)",
            blake3_hex(&payload)
        ),
    );
    if new.bare {
        r.say(1, "a bare document: `sign` wraps it in an envelope");
    } else {
        r.say(
            1,
            format!(
                "{} signature(s) already present (not checked here: `verify` does that)",
                new.envelope.signatures.len()
            ),
        );
    }
    match old {
        Some(old) => {
            r.say(0, format!("replaces {}: {}", old.name, summary(old)));
            r.say(
                1,
                format!(
                    "payload blake3 {}, {} signature(s)",
                    catalog_link(&old.envelope).unwrap_or_default(),
                    old.envelope.signatures.len()
                ),
            );
        }
        None => r.say(
            0,
            "no --previous catalog: every app is listed as new, with all of its permissions",
        ),
    }
}

pub(super) fn catalog_fields(
    r: &mut Report,
    new: &CatalogFile,
    old: Option<&CatalogFile>,
    now: DateTime<Utc>,
) {
    let Catalog {
        doc_type: _,
        spec_version: _,
        version,
        expires,
        previous,
        origin,
        apps: _,
    } = &new.catalog;
    r.say(0, "catalog");

    match old {
        None => r.say(1, format!("version {version}")),
        Some(o) => {
            let was = o.catalog.version;
            if *version == was + 1 {
                r.say(1, format!("version {was} -> {version}"));
            } else if *version > was {
                r.say(
                    1,
                    format!(
                        "version {was} -> {version} (skips {}: a node holding {was} cannot check \
                         the `previous` link)",
                        *version - was - 1
                    ),
                );
            } else if *version == was && new.bytes == o.bytes {
                r.flag(
                    1,
                    format!(
                        "version {version}: the very same envelope as {} (nodes see no update)",
                        o.name
                    ),
                );
            } else if *version == was && new.envelope.payload == o.envelope.payload {
                r.flag(
                    1,
                    format!(
                        "version {version}: the same payload as {}, other signatures; once \
                         nodes hold one envelope of a version, any other is equivocation",
                        o.name
                    ),
                );
            } else if *version == was {
                r.flag(
                    1,
                    format!(
                        "version {was} -> {version}: same version, different contents; nodes \
                         holding the old one call this equivocation and refuse both"
                    ),
                );
            } else {
                r.flag(
                    1,
                    format!("version {was} -> {version}: goes DOWN; nodes refuse a rollback"),
                );
            }
        }
    }

    let was = match old {
        Some(o) if o.catalog.expires == *expires => " (unchanged)".to_owned(),
        Some(o) => format!(" (was {})", timestamp(o.catalog.expires)),
        None => String::new(),
    };
    if *expires <= now {
        r.flag(
            1,
            format!("{}{was}: nodes will refuse it", expiry(*expires, now)),
        );
    } else {
        r.say(1, format!("{}{was}", expiry(*expires, now)));
    }

    match (old, previous) {
        (None, None) => r.say(1, "previous: none (the first catalog of a chain)"),
        (None, Some(p)) => r.say(
            1,
            format!("previous {p} (not checked: give --previous OLD_CATALOG)"),
        ),
        (Some(o), p) => {
            let expected = catalog_link(&o.envelope).unwrap_or_default();
            match p {
                Some(p) if *p == expected => r.say(
                    1,
                    format!(
                        "previous {p} = payload blake3 of {}: the hash chain holds",
                        o.name
                    ),
                ),
                Some(p) => r.flag(
                    1,
                    format!(
                        "previous {p} does NOT name {} (its payload blake3 is {expected})",
                        o.name
                    ),
                ),
                None => r.flag(
                    1,
                    format!(
                        "previous: none, but {} came before: the hash chain is broken",
                        o.name
                    ),
                ),
            }
            if o.bare {
                r.flag(
                    1,
                    format!(
                        "{} is a bare document, not the signed envelope nodes hold",
                        o.name
                    ),
                );
            } else if o.envelope.signatures.is_empty() {
                r.flag(
                    1,
                    format!(
                        "{} carries no signatures, so nodes never accepted it: `previous` \
                         must name the signed envelope they hold",
                        o.name
                    ),
                );
            }
        }
    }

    let iroh_was = old.map(|o| &o.catalog.origin.iroh);
    let http_was = old.map(|o| &o.catalog.origin.http);
    match http_was {
        Some(was) if *was != origin.http => r.flag(
            1,
            format!(
                "origin http: {was} -> {} (nodes will fetch from there)",
                origin.http
            ),
        ),
        Some(_) => r.say(1, format!("origin http: {} (unchanged)", origin.http)),
        None => r.say(1, format!("origin http: {}", origin.http)),
    }
    match iroh_was {
        Some(was) if *was != origin.iroh => {
            r.flag(1, format!("origin iroh: {was} -> {}", origin.iroh))
        }
        Some(_) => r.say(1, format!("origin iroh: {} (unchanged)", origin.iroh)),
        None => r.say(1, format!("origin iroh: {}", origin.iroh)),
    }
}
