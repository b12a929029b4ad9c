//! Where catalog metadata comes from, behind one narrow trait ([`CatalogSource`]), as TUF
//! clients such as tough do with their `Transport`: the origin over HTTP
//! ([`super::http::OriginHttp`]), a peer's catalog relay over iroh ([`PeerRelay`], ALPN
//! `archy/doc/0`), or memory in the unit tests. A source only moves bytes: it hands over a
//! document or says it has none, bounded in size and time, with errors that name it. What
//! the bytes are worth is decided by [`super::catalog::CatalogSync`], the same way whatever
//! brought them (DESIGN trust rules 3 to 7, swarm rule 4).
//!
//! A new way to get the catalog (a mirror, a file on a USB stick) is one more implementation
//! of [`CatalogSource`]; nothing in the trust walk changes.

use std::sync::Arc;

use archy_swarm::{PeerAddr, Swarm};
use futures::future::BoxFuture;

use super::CATALOG_DOCUMENT;

/// A document a catalog source can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Document {
    /// Root version N, for the rotation walk (DESIGN trust rule 3).
    Root(u64),
    /// The source's current signed catalog envelope.
    Catalog,
    /// One earlier catalog version, to check the hash chain across a gap (trust rule 5).
    CatalogVersion(u64),
}

/// Why a source handed over no document. Every message names the source and what was
/// asked of it (a URL, a peer id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SourceError {
    /// The source answered that it has no such document (HTTP 404, a peer that relays
    /// none): for a root or an old catalog version this is an answer, not a failure.
    #[error("{0}")]
    NotFound(String),
    /// The source could not be reached, did not answer in time, failed or broke off; asking
    /// it for something else now would most likely fail the same way.
    #[error("{0}")]
    Unavailable(String),
    /// The source offered more than the limit (or something else refused before parsing).
    #[error("{0}")]
    Refused(String),
}

/// A way to fetch root and catalog envelopes. Implementations must bound what they read by
/// `limit` and finish within a deadline of their own; [`super::catalog::CatalogSync`] holds
/// each fetch to an outer deadline and the limit again, so a source that does not cannot
/// make the node wait or buffer more.
pub(super) trait CatalogSource: Send + Sync {
    /// Where `doc` is asked for, for messages: a URL, or "peer <id>".
    fn locate(&self, doc: Document) -> String;

    /// Fetches `doc`, at most `limit` bytes. The bytes are untrusted.
    fn fetch(&self, doc: Document, limit: usize) -> BoxFuture<'_, Result<Vec<u8>, SourceError>>;
}

/// A peer's relayed catalog over iroh (`archy/doc/0`). A relay holds only the current
/// catalog: roots and older versions are never asked of peers (the origin is the history).
pub(super) struct PeerRelay {
    swarm: Arc<Swarm>,
    peer: PeerAddr,
}

impl PeerRelay {
    pub(super) fn new(swarm: Arc<Swarm>, peer: PeerAddr) -> Self {
        Self { swarm, peer }
    }
}

impl CatalogSource for PeerRelay {
    fn locate(&self, doc: Document) -> String {
        match doc {
            Document::Catalog => format!("peer {}", self.peer.id),
            Document::Root(v) => format!("peer {} (root version {v})", self.peer.id),
            Document::CatalogVersion(v) => {
                format!("peer {} (catalog version {v})", self.peer.id)
            }
        }
    }

    fn fetch(&self, doc: Document, limit: usize) -> BoxFuture<'_, Result<Vec<u8>, SourceError>> {
        Box::pin(async move {
            if doc != Document::Catalog {
                return Err(SourceError::NotFound(format!(
                    "{} relays only the current catalog",
                    self.locate(doc)
                )));
            }
            // The swarm bounds the exchange: connect timeout, a per-request deadline, and
            // the announced length checked against `limit` before the body is read.
            self.swarm
                .fetch_document(&self.peer, CATALOG_DOCUMENT, limit as u64)
                .await
                .map_err(|e| match e {
                    archy_swarm::Error::DocumentNotFound { .. } => {
                        SourceError::NotFound(e.to_string())
                    }
                    archy_swarm::Error::DocumentTooLarge { .. } => {
                        SourceError::Refused(e.to_string())
                    }
                    e => SourceError::Unavailable(e.to_string()),
                })
        })
    }
}
