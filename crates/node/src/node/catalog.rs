//! The first-party catalog: pull it from the origin (root rotations first, bounded fetches),
//! fetch the skipped versions to check the hash chain through a gap, or take it relayed by a
//! peer while the origin is down. Every catalog, whatever its way here, goes through the
//! same `TrustState` checks; only an accepted one is stored and relayed on.
//!
//! The pull is [`CatalogSync`]: the trust state, the database and the limits, driven
//! through [`CatalogSource`]s (the origin over HTTP, peers' relays over iroh, memory in the
//! tests below). It needs no Podman and no swarm, so the trust walk is tested on its own.

use std::time::Duration;

use archy_registry::{CatalogUpdate, TrustState};
use chrono::{DateTime, Utc};
use tokio::sync::RwLock;
use tracing::{error, info, warn};

use super::error::internal;
use super::http::OriginHttp;
use super::transport::{CatalogSource, Document, PeerRelay, SourceError};
use super::{CATALOG_DOCUMENT, ErrorKind, Node, NodeError, PullStatus};
use crate::db::{self, Db};

/// At most this many peers are asked for a relayed catalog in one pull.
const MAX_RELAY_PEERS: usize = 8;

/// At most this many skipped catalog versions are fetched in one pull to check the chain.
const MAX_CHAIN_FETCH: u64 = 128;

/// The outer bound on one fetch from any source: the sources' own deadlines (60 s for the
/// origin's HTTP, 30 s per relay request) fire first, with better words.
const FETCH_WITHIN: Duration = Duration::from_secs(90);

/// A pull's result: the update, and notes for the operator (how the catalog came when it
/// did not come from the origin, how the history up to it was checked).
pub(super) type Pulled = Result<(CatalogUpdate, Vec<String>), NodeError>;

impl Node {
    /// Fetches the origin's catalog (bounded), verifies it and stores it when it is newer.
    pub async fn pull_catalog(&self) -> Result<CatalogUpdate, NodeError> {
        let pulled = self.pull_catalog_inner().await;
        // A pull parses a whole catalog (megabytes at 10,000 apps) into short-lived buffers.
        return_freed_memory();
        let status = PullStatus {
            at: Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            ok: pulled.is_ok(),
            message: pull_message(&pulled),
        };
        if let Ok(mut last) = self.last_pull.lock() {
            *last = status;
        }
        pulled.map(|(update, _)| update)
    }

    async fn pull_catalog_inner(&self) -> Pulled {
        self.refuse_publish_only("pull a catalog")?;
        let origin = self.config.origin.as_deref().ok_or_else(|| {
            NodeError::new(
                ErrorKind::Refused,
                "no origin configured: set origin in the node config",
            )
        })?;
        let origin = OriginHttp::new(self.http.clone(), origin);
        let peers: Vec<PeerRelay> = self
            .known_peers()
            .into_iter()
            .map(|peer| PeerRelay::new(self.swarm.clone(), peer))
            .collect();
        let peers: Vec<&dyn CatalogSource> = peers.iter().map(|p| p as _).collect();
        let relay_on = |envelope: bytes::Bytes| {
            if let Err(e) = self.swarm.set_relayed_document(CATALOG_DOCUMENT, envelope) {
                warn!(error = %e, "cannot relay the catalog to peers");
            }
        };
        CatalogSync {
            trust: &self.trust,
            db: &self.db,
            relay_on: &relay_on,
            clock: &Utc::now,
            limits: SyncLimits {
                max_document_bytes: archy_registry::MAX_DOCUMENT_BYTES,
                fetch_within: FETCH_WITHIN,
                max_root_rotations: self.config.max_root_rotations,
                max_chain_fetch: MAX_CHAIN_FETCH,
                max_relay_peers: MAX_RELAY_PEERS,
                expiry_warning_days: self.config.expiry_warning_days,
            },
        }
        .pull(&origin, &peers)
        .await
    }
}

/// What the operator reads as the last pull's result (`archy status`).
pub(super) fn pull_message(pulled: &Pulled) -> String {
    let (result, notes) = match pulled {
        Ok((update, notes)) => (Ok(update), notes.as_slice()),
        Err(e) => (Err(e), &[][..]),
    };
    let mut message = match result {
        Ok(CatalogUpdate::Unchanged { version }) => {
            format!("catalog version {version} is current")
        }
        Ok(CatalogUpdate::Updated { from, to, missed }) => format!(
            "catalog updated from {} to version {to}{}",
            from.map_or("nothing".into(), |f| format!("version {f}")),
            if *missed > 0 && notes.is_empty() {
                format!(" ({missed} version(s) skipped)")
            } else {
                String::new()
            }
        ),
        Err(e) => e.message.clone(),
    };
    for note in notes {
        message = format!("{message}, {note}");
    }
    message
}

/// The bounds of one pull.
#[derive(Debug, Clone)]
pub(super) struct SyncLimits {
    /// No document is read past this (DESIGN trust rule 7).
    pub max_document_bytes: usize,
    /// Every fetch from a source ends within this, whatever the source.
    pub fetch_within: Duration,
    /// Root versions walked in one pull at most (trust rule 3).
    pub max_root_rotations: u64,
    /// Skipped catalog versions fetched in one pull at most (trust rule 5).
    pub max_chain_fetch: u64,
    /// Peers asked for a relayed catalog in one pull at most.
    pub max_relay_peers: usize,
    /// A catalog closer than this to its expiry is logged.
    pub expiry_warning_days: i64,
}

/// One catalog pull: the trust state it moves, the database it records in (catalogs, root
/// rotations, alarms), where an accepted catalog is relayed on, and the clock. Sources are
/// passed per pull: the origin first; the peers only while the origin is unreachable.
pub(super) struct CatalogSync<'a> {
    pub trust: &'a RwLock<TrustState>,
    pub db: &'a Db,
    /// Hands an accepted catalog's envelope on to peers (the swarm's relay).
    pub relay_on: &'a (dyn Fn(bytes::Bytes) + Send + Sync),
    /// "Now", asked once per step (DESIGN trust rule 2).
    pub clock: &'a (dyn Fn() -> DateTime<Utc> + Send + Sync),
    pub limits: SyncLimits,
}

impl CatalogSync<'_> {
    /// Walks the origin's root rotations, then offers its catalog to the trust state; while
    /// the origin is unavailable, offers what peers relay instead (DESIGN swarm rule 4).
    pub(super) async fn pull(
        &self,
        origin: &dyn CatalogSource,
        peers: &[&dyn CatalogSource],
    ) -> Pulled {
        let from_origin = async {
            self.walk_root_rotations(origin).await?;
            match self.fetch(origin, Document::Catalog).await {
                Ok(bytes) => Ok(bytes),
                // No catalog at the origin is the origin failing, not an answer.
                Err(SourceError::NotFound(m)) => Err(SourceError::Unavailable(m).into()),
                Err(e) => Err(NodeError::from(e)),
            }
        }
        .await;
        match from_origin {
            Ok(bytes) => {
                let url = origin.locate(Document::Catalog);
                let (update, note) = self.accept_catalog(bytes, &url, Some(origin)).await?;
                Ok((update, note.into_iter().collect()))
            }
            // DESIGN swarm rule 4: while the origin is unreachable, peers may pass on the
            // signed catalog; it goes through exactly the same checks.
            Err(e) if e.kind == ErrorKind::Unavailable => {
                match self.catalog_from_peers(peers, &e.message).await {
                    Some((update, peer, note)) => {
                        let mut notes = vec![format!(
                            "relayed by {peer}: the origin is unreachable ({})",
                            e.message
                        )];
                        notes.extend(note);
                        Ok((update, notes))
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// One fetch, held to [`SyncLimits::fetch_within`] and [`SyncLimits::max_document_bytes`]
    /// whatever the source promises (DESIGN trust rule 7).
    async fn fetch(
        &self,
        source: &dyn CatalogSource,
        doc: Document,
    ) -> Result<Vec<u8>, SourceError> {
        let limit = self.limits.max_document_bytes;
        let within = self.limits.fetch_within;
        let bytes = tokio::time::timeout(within, source.fetch(doc, limit))
            .await
            .map_err(|_| {
                SourceError::Unavailable(format!(
                    "{} did not answer within {} s",
                    source.locate(doc),
                    within.as_secs_f64()
                ))
            })??;
        if bytes.len() > limit {
            return Err(SourceError::Refused(format!(
                "{} sent more than the {limit}-byte limit",
                source.locate(doc)
            )));
        }
        Ok(bytes)
    }

    /// Asks peers for the catalog they relay and offers each to the trust state until one
    /// is accepted (or is the one we have). Returns the update, the peer and its note.
    async fn catalog_from_peers(
        &self,
        peers: &[&dyn CatalogSource],
        origin_error: &str,
    ) -> Option<(CatalogUpdate, String, Option<String>)> {
        for peer in peers.iter().take(self.limits.max_relay_peers) {
            let name = peer.locate(Document::Catalog);
            let bytes = match self.fetch(*peer, Document::Catalog).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    info!(peer = %name, error = %e, "peer relays no catalog");
                    continue;
                }
            };
            let from = format!("{name} (relayed while the origin is unreachable: {origin_error})");
            // No intermediate versions to check a gap with: the origin is the one that is down.
            match self.accept_catalog(bytes, &from, None).await {
                Ok((update, note)) => return Some((update, name, note)),
                Err(e) => warn!(peer = %name, error = %e, "relayed catalog refused"),
            }
        }
        None
    }

    /// Offers catalog bytes (from `url`, the origin's or a relay's) to the trust state.
    /// When it skips versions and `history` is given (the origin), the versions in between
    /// are fetched from there and the hash chain is checked through them: one that is there
    /// but does not chain is refused with the chain-broken alarm. Only versions that cannot
    /// be had (not found, origin unavailable) are accepted across, as an unverified gap,
    /// with an alarm. An accepted catalog is stored and relayed on to peers.
    /// Returns the update and, when the history was checked or could not be, a note saying so.
    async fn accept_catalog(
        &self,
        bytes: Vec<u8>,
        url: &str,
        history: Option<&dyn CatalogSource>,
    ) -> Result<(CatalogUpdate, Option<String>), NodeError> {
        let begun = self
            .trust
            .read()
            .await
            .begin_catalog_chain(&bytes, (self.clock)());
        // The verified catalog keeps its own copy: the received one goes before the
        // versions in between are fetched and the catalog is stored (benches/catalog_scale.rs).
        drop(bytes);
        let mut chain = match begun {
            Ok(chain) => chain,
            Err(e) => return Err(self.catalog_refused(url, e).await),
        };
        let offered = chain.offered().version();
        let missing = chain.missing();
        // Why versions could not be checked, for the operator.
        let mut unavailable: Vec<String> = Vec::new();
        if !missing.is_empty() {
            match history {
                None => unavailable.push(
                    "it was relayed by a peer while the origin is unreachable, so the versions in between could not be fetched".to_owned(),
                ),
                Some(origin) => {
                    // (version, how the origin said it has none)
                    let mut not_found: Vec<(u64, String)> = Vec::new();
                    for version in missing.clone() {
                        let max = self.limits.max_chain_fetch;
                        if version - missing.start >= max {
                            unavailable.push(format!(
                                "the node is more than {max} versions behind and fetched only the first {max}"
                            ));
                            break;
                        }
                        let doc = Document::CatalogVersion(version);
                        let fetched = match self.fetch(origin, doc).await {
                            Ok(fetched) => fetched,
                            Err(SourceError::NotFound(why)) => {
                                not_found.push((version, why));
                                continue;
                            }
                            // Unreachable or failing: the rest would fail the same way.
                            Err(SourceError::Unavailable(why)) => {
                                unavailable.push(format!("the origin did not serve them ({why})"));
                                break;
                            }
                            Err(e) => return Err(e.into()),
                        };
                        let problem = match chain.add(&fetched) {
                            Ok(v) if v == version => continue,
                            Ok(v) => format!("it holds version {v}"),
                            Err(e) => e.to_string(),
                        };
                        let message = format!(
                            "catalog version {offered} from {url} refused: the chain from the current catalog breaks at version {version} ({}): {problem}",
                            origin.locate(doc)
                        );
                        return Err(self.chain_refused(message).await);
                    }
                    if let (Some((first, why)), Some((last, _))) = (not_found.first(), not_found.last()) {
                        unavailable.insert(
                            0,
                            format!(
                                "the origin no longer has {} ({why}{})",
                                if not_found.len() == 1 { "it" } else { "them" },
                                if first == last {
                                    String::new()
                                } else {
                                    format!(", and so on up to version {last}")
                                }
                            ),
                        );
                    }
                }
            }
        }
        let now = (self.clock)();
        let mut trust = self.trust.write().await;
        let done = match trust.finish_catalog_chain(chain, now) {
            Ok(done) => done,
            Err(e) => {
                drop(trust);
                return Err(self.catalog_refused(url, e).await);
            }
        };
        let mut note = None;
        match &done.update {
            CatalogUpdate::Updated { to, missed, .. } => {
                let catalog = trust
                    .catalog()
                    .ok_or_else(|| internal("accepted catalog missing"))?;
                db::store_catalog(
                    self.db,
                    *to,
                    catalog.envelope_bytes(),
                    catalog.payload_hash(),
                    catalog.expires(),
                    now,
                    *missed,
                )
                .await?;
                (self.relay_on)(catalog.envelope());
                if *missed > 0 {
                    let gap = format!(
                        "accepted across an unverified gap of {missed} version(s) ({}): {}",
                        describe_gaps(&done.gaps),
                        if unavailable.is_empty() {
                            "they were not available".to_owned()
                        } else {
                            unavailable.join("; ")
                        }
                    );
                    warn!(version = to, missed, "catalog {gap}");
                    db::raise_alarm(
                        self.db,
                        "unverified-gap",
                        &format!("catalog version {to} from {url} {gap}; the hash chain was not checked across those versions"),
                    )
                    .await?;
                    note = Some(gap);
                } else if !done.verified.is_empty() {
                    let chained = format!(
                        "chain verified through {} skipped version(s) fetched from the origin",
                        done.verified.len()
                    );
                    info!(version = to, "catalog accepted, {chained}");
                    note = Some(chained);
                } else {
                    info!(version = to, "catalog accepted");
                }
                let days_left = (catalog.expires() - now).num_days();
                if days_left < self.limits.expiry_warning_days {
                    warn!(version = to, days_left, "catalog expires soon");
                }
            }
            CatalogUpdate::Unchanged { .. } => {
                db::set_meta(self.db, "last_seen", &now.to_rfc3339()).await?
            }
        }
        Ok((done.update, note))
    }

    /// A refused catalog: refusals that mean someone is lying (or our clock is) raise an
    /// alarm the operator sees. Returns the error for the caller.
    async fn catalog_refused(&self, url: &str, e: archy_registry::Error) -> NodeError {
        let message = format!("catalog from {url} refused: {e}");
        let alarm = match e {
            archy_registry::Error::Equivocation { .. } => Some("equivocation"),
            archy_registry::Error::ChainBroken { .. } => Some("chain-broken"),
            archy_registry::Error::ClockBackward { .. } => Some("clock-backward"),
            _ => None,
        };
        match alarm {
            Some(kind) => {
                error!(alarm = kind, error = %e, "catalog refused");
                if let Err(e) = db::raise_alarm(self.db, kind, &message).await {
                    return e.into();
                }
            }
            None => warn!(error = %e, "catalog refused"),
        }
        NodeError::new(ErrorKind::Refused, message)
    }

    /// A skipped version that is there but does not chain (a fork, a bad signature, the
    /// wrong version): never a gap, always refused with the chain-broken alarm.
    async fn chain_refused(&self, message: String) -> NodeError {
        error!(alarm = "chain-broken", "{message}");
        if let Err(e) = db::raise_alarm(self.db, "chain-broken", &message).await {
            return e.into();
        }
        NodeError::new(ErrorKind::Refused, message)
    }

    /// DESIGN trust rule 3: fetch root N+1, N+2, … from the origin, each accepted only when
    /// signed by a threshold of the previous root keys and of its own; stop at the first
    /// version the origin does not have, or at the configured cap.
    async fn walk_root_rotations(&self, origin: &dyn CatalogSource) -> Result<(), NodeError> {
        for _ in 0..self.limits.max_root_rotations {
            let next = self.trust.read().await.root().version() + 1;
            let doc = Document::Root(next);
            let bytes = match self.fetch(origin, doc).await {
                Ok(bytes) => bytes,
                Err(SourceError::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let mut trust = self.trust.write().await;
            if let Err(e) = trust.rotate_root(&bytes) {
                let message = format!(
                    "root version {next} from {} refused: {e}",
                    origin.locate(doc)
                );
                db::raise_alarm(self.db, "root-rotation", &message).await?;
                return Err(NodeError::new(ErrorKind::Refused, message));
            }
            db::store_root_rotation(self.db, next, &bytes).await?;
            info!(version = next, "root rotated");
        }
        Ok(())
    }
}

/// "version 2", "versions 2–4, 7".
fn describe_gaps(gaps: &[std::ops::RangeInclusive<u64>]) -> String {
    let runs: Vec<String> = gaps
        .iter()
        .map(|g| {
            if g.start() == g.end() {
                g.start().to_string()
            } else {
                format!("{}–{}", g.start(), g.end())
            }
        })
        .collect();
    let single = gaps.len() == 1 && gaps[0].start() == gaps[0].end();
    format!(
        "{} {}",
        if single { "version" } else { "versions" },
        runs.join(", ")
    )
}

#[cfg(test)]
mod tests;

/// Hands memory freed by the allocator back to the system. glibc keeps freed heap memory
/// for reuse; after a catalog of 10,000 apps was parsed that was ~40 MB of a ~110 MB node
/// (measured: `tests/benches/catalog_scale.rs`), held until exit.
pub(super) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's own heaps; it reads no
    // pointer of ours and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
