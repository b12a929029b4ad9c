//! Where a verified app comes from: the unexpired first-party catalog, or a third-party
//! publication ([`Source`]), and, for an installed app, its manifest re-verified from the
//! stored signed bytes. Nothing acts on an app that has not just been verified this way.

use archy_registry::{TrustState, VerifiedApp, VerifiedCatalog, VerifiedPublication};
use chrono::{DateTime, Utc};

use super::error::internal;
use super::market::third_party_app;
use super::{ErrorKind, Node, NodeError};
use crate::db;

/// Where an install or update takes its app from: the first-party catalog, or a
/// third-party publication discovered on the relays.
pub(super) enum Source<'a> {
    Catalog(&'a VerifiedCatalog),
    Publication {
        /// The publisher's Nostr key (hex).
        author: &'a str,
        /// The DID-signed envelope, stored with the app so it can be re-verified.
        envelope: &'a [u8],
        verified: &'a VerifiedPublication,
    },
}

impl Source<'_> {
    pub(super) fn origin(&self) -> &archy_registry::Origin {
        match self {
            Source::Catalog(c) => &c.catalog().origin,
            Source::Publication { verified, .. } => &verified.publication().origin,
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Source::Catalog(c) => format!("catalog version {}", c.version()),
            Source::Publication { author, .. } => format!("publisher {author}'s newest listing"),
        }
    }
}

impl Node {
    /// The current catalog, refused for new installs once expired.
    pub(super) async fn installable_catalog(&self) -> Result<VerifiedCatalog, NodeError> {
        installable(&*self.trust.read().await, Utc::now())
    }

    /// The manifest an installed app was installed from, re-verified from stored bytes.
    pub(super) async fn installed_app(
        &self,
        id: &str,
    ) -> Result<(db::AppRow, VerifiedApp), NodeError> {
        let row = db::app(&self.db, id).await?.ok_or_else(|| {
            NodeError::new(ErrorKind::NotFound, format!("app {id:?} is not installed"))
        })?;
        if let (Some(author), Some(envelope)) = (&row.publisher, &row.publication) {
            let (_, app) = third_party_app(envelope, author)?;
            if app.manifest().id != row.id {
                return Err(internal(format!(
                    "app {id}: its stored publication is for {}",
                    app.manifest().id
                )));
            }
            return Ok((row, app));
        }
        let trust = self.trust.read().await;
        // Installed from the current catalog (the common case): it is verified already, so
        // the stored copy need not be parsed and verified again (a whole catalog per
        // installed app). The same version is not enough: after a trust reset a new chain
        // may reuse the number, so the payload hashes must match too.
        let stored_hash = db::catalog_hash(&self.db, row.catalog_version).await?;
        let current = trust.catalog().filter(|c| {
            c.version() == row.catalog_version as u64
                && stored_hash.as_deref() == Some(c.payload_hash())
        });
        let from_install = match current {
            Some(catalog) => catalog.app(id),
            None => db::catalog(&self.db, row.catalog_version)
                .await?
                .and_then(|bytes| VerifiedCatalog::verify(trust.root(), &bytes).ok())
                .and_then(|catalog| catalog.app(id)),
        };
        // After a trust reset the install-time catalog is gone; the current one serves
        // when it lists the very same app version.
        let app = from_install
            .or_else(|| {
                trust
                    .catalog()
                    .and_then(|c| c.app(id))
                    .filter(|a| a.manifest().version.to_string() == row.version)
            })
            .ok_or_else(|| {
                NodeError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "app {id} {} was installed from catalog version {}, which no longer verifies, \
                         and the current catalog does not list that version",
                        row.version, row.catalog_version
                    ),
                )
            })?;
        Ok((row, app))
    }
}

/// The trust state's catalog if it may be installed from at `now` (DESIGN trust rule 6: an
/// expired one keeps running apps running, nothing more).
pub(super) fn installable(
    trust: &TrustState,
    now: DateTime<Utc>,
) -> Result<VerifiedCatalog, NodeError> {
    let catalog = trust.catalog().cloned().ok_or_else(|| {
        NodeError::new(
            ErrorKind::Unavailable,
            "no verified catalog yet: the node has not pulled one from its origin",
        )
    })?;
    catalog.check_unexpired(now).map_err(|e| {
        NodeError::new(
            ErrorKind::Refused,
            format!("{e}; no installs from it until the origin publishes a fresh one"),
        )
    })?;
    Ok(catalog)
}

/// The catalog's app `id`, or an error that says where to look instead.
pub(super) fn app_in(catalog: &VerifiedCatalog, id: &str) -> Result<VerifiedApp, NodeError> {
    catalog.app(id).ok_or_else(|| {
        let third_party = if id.contains('.') {
            "; third-party apps are installed with `archy market install`"
        } else {
            ""
        };
        NodeError::new(
            ErrorKind::NotFound,
            format!(
                "no app {id:?} in catalog version {}{third_party}",
                catalog.version()
            ),
        )
    })
}
