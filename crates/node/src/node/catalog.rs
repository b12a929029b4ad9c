//! The first-party catalog: pull it from the origin (root rotations first, bounded GETs),
//! fetch the skipped versions to check the hash chain through a gap, or take it relayed by a
//! peer while the origin is down. Every catalog, whatever its way here, goes through the
//! same `TrustState` checks; only an accepted one is stored and relayed on.

use archy_registry::CatalogUpdate;
use chrono::Utc;
use tracing::{error, info, warn};

use super::error::internal;
use super::{CATALOG_DOCUMENT, ErrorKind, Node, NodeError, PullStatus};
use crate::db;

/// The catalog download cap: a hostile origin cannot make us buffer more.
const MAX_CATALOG_BYTES: usize = archy_registry::MAX_DOCUMENT_BYTES;

/// At most this many peers are asked for a relayed catalog in one pull.
const MAX_RELAY_PEERS: usize = 8;

/// At most this many skipped catalog versions are fetched in one pull to check the chain.
const MAX_CHAIN_FETCH: u64 = 128;

impl Node {
    /// Fetches the origin's catalog (bounded), verifies it and stores it when it is newer.
    pub async fn pull_catalog(&self) -> Result<CatalogUpdate, NodeError> {
        let pulled = self.pull_catalog_inner().await;
        let notes = pulled
            .as_ref()
            .map(|(_, notes)| notes.clone())
            .unwrap_or_default();
        let result = pulled.map(|(update, _)| update);
        let mut message = match &result {
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
        let status = PullStatus {
            at: Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            ok: result.is_ok(),
            message,
        };
        if let Ok(mut last) = self.last_pull.lock() {
            *last = status;
        }
        result
    }

    /// The update, and notes for the operator: how the catalog came when it did not come
    /// from the origin, and how the history up to it was checked when it skipped versions.
    async fn pull_catalog_inner(&self) -> Result<(CatalogUpdate, Vec<String>), NodeError> {
        let origin = self.config.origin.as_deref().ok_or_else(|| {
            NodeError::new(
                ErrorKind::Refused,
                "no origin configured: set origin in the node config",
            )
        })?;
        let origin = origin.trim_end_matches('/');
        let url = format!("{origin}/v1/catalog");
        let from_origin = async {
            self.walk_root_rotations(origin).await?;
            self.get_bounded(&url, MAX_CATALOG_BYTES).await
        }
        .await;
        match from_origin {
            Ok(bytes) => {
                let (update, note) = self.accept_catalog(&bytes, &url, Some(origin)).await?;
                Ok((update, note.into_iter().collect()))
            }
            // DESIGN swarm rule 4: while the origin is unreachable, peers may pass on the
            // signed catalog; it goes through exactly the same checks.
            Err(e) if e.kind == ErrorKind::Unavailable => {
                match self.catalog_from_peers(&e.message).await {
                    Some((update, peer, note)) => {
                        let mut notes = vec![format!(
                            "relayed by peer {peer}: the origin is unreachable ({})",
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

    /// Asks this node's peers (static and local) for the catalog they relay and offers each
    /// to the trust state until one is accepted (or is the one we have).
    async fn catalog_from_peers(
        &self,
        origin_error: &str,
    ) -> Option<(CatalogUpdate, String, Option<String>)> {
        for peer in self.known_peers().into_iter().take(MAX_RELAY_PEERS) {
            let bytes = match self
                .swarm
                .fetch_document(&peer, CATALOG_DOCUMENT, MAX_CATALOG_BYTES as u64)
                .await
            {
                Ok(bytes) => bytes,
                Err(e) => {
                    info!(peer = %peer.id, error = %e, "peer relays no catalog");
                    continue;
                }
            };
            let from = format!(
                "peer {} (relayed while the origin is unreachable: {origin_error})",
                peer.id
            );
            // No intermediate versions to check a gap with: the origin is the one that is down.
            match self.accept_catalog(&bytes, &from, None).await {
                Ok((update, note)) => return Some((update, peer.id, note)),
                Err(e) => warn!(peer = %peer.id, error = %e, "relayed catalog refused"),
            }
        }
        None
    }

    /// Offers catalog bytes (from the origin at `from`, or relayed) to the trust state.
    /// When it skips versions and `history` names its origin, the versions in between are
    /// fetched from there (`/v1/catalog/{version}`) and the hash chain is checked through
    /// them: one that is there but does not chain is refused with the chain-broken alarm.
    /// Only versions that cannot be had (404, origin unreachable) are accepted across, as an
    /// unverified gap, with an alarm. An accepted catalog is stored and relayed on to peers.
    /// Returns the update and, when the history was checked or could not be, a note saying so.
    async fn accept_catalog(
        &self,
        bytes: &[u8],
        from: &str,
        history: Option<&str>,
    ) -> Result<(CatalogUpdate, Option<String>), NodeError> {
        let url = from;
        let begun = self
            .trust
            .read()
            .await
            .begin_catalog_chain(bytes, Utc::now());
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
                    let mut not_found = Vec::new();
                    for version in missing.clone() {
                        if version - missing.start >= MAX_CHAIN_FETCH {
                            unavailable.push(format!(
                                "the node is more than {MAX_CHAIN_FETCH} versions behind and fetched only the first {MAX_CHAIN_FETCH}"
                            ));
                            break;
                        }
                        let link_url = format!("{origin}/v1/catalog/{version}");
                        let fetched = match self.get_optional(&link_url, MAX_CATALOG_BYTES).await {
                            Ok(Some(fetched)) => fetched,
                            Ok(None) => {
                                not_found.push(version);
                                continue;
                            }
                            // Unreachable or failing: the rest would fail the same way.
                            Err(e) if e.kind == ErrorKind::Unavailable => {
                                unavailable.push(format!(
                                    "the origin did not serve them ({})",
                                    e.message
                                ));
                                break;
                            }
                            Err(e) => return Err(e),
                        };
                        let problem = match chain.add(&fetched) {
                            Ok(v) if v == version => continue,
                            Ok(v) => format!("it holds version {v}"),
                            Err(e) => e.to_string(),
                        };
                        let message = format!(
                            "catalog version {offered} from {url} refused: the chain from the current catalog breaks at version {version} ({link_url}): {problem}"
                        );
                        return Err(self.chain_refused(message).await);
                    }
                    if let (Some(first), Some(last)) = (not_found.first(), not_found.last()) {
                        unavailable.insert(
                            0,
                            format!(
                                "the origin no longer has {} ({origin}/v1/catalog/{first}{} answered 404 Not Found)",
                                if not_found.len() == 1 { "it" } else { "them" },
                                if first == last {
                                    String::new()
                                } else {
                                    format!(" … {last}")
                                }
                            ),
                        );
                    }
                }
            }
        }
        let now = Utc::now();
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
                    &self.db,
                    *to,
                    catalog.envelope_bytes(),
                    catalog.payload_hash(),
                    catalog.expires(),
                    now,
                    *missed,
                )
                .await?;
                if let Err(e) = self
                    .swarm
                    .set_relayed_document(CATALOG_DOCUMENT, catalog.envelope_bytes().to_vec())
                {
                    warn!(error = %e, "cannot relay the catalog to peers");
                }
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
                        &self.db,
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
                if days_left < self.config.expiry_warning_days {
                    warn!(version = to, days_left, "catalog expires soon");
                }
            }
            CatalogUpdate::Unchanged { .. } => {
                db::set_meta(&self.db, "last_seen", &now.to_rfc3339()).await?
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
                if let Err(e) = db::raise_alarm(&self.db, kind, &message).await {
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
        if let Err(e) = db::raise_alarm(&self.db, "chain-broken", &message).await {
            return e.into();
        }
        NodeError::new(ErrorKind::Refused, message)
    }

    /// DESIGN trust rule 3: fetch root N+1, N+2, … from the origin, each accepted only when
    /// signed by a threshold of the previous root keys and of its own; stop at the first
    /// version the origin does not have, or at the configured cap.
    async fn walk_root_rotations(&self, origin: &str) -> Result<(), NodeError> {
        for _ in 0..self.config.max_root_rotations {
            let next = self.trust.read().await.root().version() + 1;
            let url = format!("{origin}/v1/root/{next}");
            let Some(bytes) = self.get_optional(&url, MAX_CATALOG_BYTES).await? else {
                return Ok(());
            };
            let mut trust = self.trust.write().await;
            if let Err(e) = trust.rotate_root(&bytes) {
                let message = format!("root version {next} from {url} refused: {e}");
                db::raise_alarm(&self.db, "root-rotation", &message).await?;
                return Err(NodeError::new(ErrorKind::Refused, message));
            }
            db::store_root_rotation(&self.db, next, &bytes).await?;
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
mod tests {
    use super::*;

    #[test]
    fn gaps_are_described_as_runs() {
        assert_eq!(describe_gaps(&[2..=2]), "version 2");
        assert_eq!(describe_gaps(&[2..=4, 7..=7]), "versions 2–4, 7");
        assert_eq!(describe_gaps(&[3..=5]), "versions 3–5");
    }
}
