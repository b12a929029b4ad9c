//! Third-party apps: discovery on the relays, publisher scores from the operator's web of
//! trust, the operator's trusted keys, and the gate a listing passes to become an app:
//! re-verified (DID signature, Nostr binding, sandbox policy, namespaced id) every time it is
//! used, and installed only when its publisher clears `market_min_score` or is approved.

use std::time::Duration;

use archy_marketplace::NostrKey;
use archy_registry::{VerifiedApp, VerifiedPublication};
use tracing::{info, warn};

use super::error::internal;
use super::{ErrorKind, Node, NodeError};
use crate::db;

impl Node {
    /// Discovers third-party publications on the configured relays, stores the newest
    /// verified one per (publisher, app), then scores every listed publisher from the
    /// operator's web of trust. A relay that is down, slow or lying costs only its share;
    /// listings are forgotten only after a complete pass that no longer finds them.
    pub async fn discover_market(&self) -> Result<archy_marketplace::Discovery, NodeError> {
        let relays = self.relays();
        if relays.is_empty() {
            return Ok(Default::default());
        }
        let timeout = Duration::from_secs(10);
        // Publishers already listed are asked for by name: a flood cannot push them out.
        let known: Vec<NostrKey> = db::market_listings(&self.db)
            .await?
            .iter()
            .filter_map(|l| archy_marketplace::parse_nostr_key(&l.author).ok())
            .collect();
        let found = archy_marketplace::discover_with(
            &relays,
            &known,
            &archy_marketplace::DiscoveryLimits::default(),
            timeout,
        )
        .await
        .map_err(|e| NodeError::new(ErrorKind::Unavailable, e.to_string()))?;
        let mut keep = Vec::new();
        for l in &found.listings {
            let p = l.publication.publication();
            let row = db::MarketRow {
                author: l.author.clone(),
                app_id: l.app_id.clone(),
                event_id: l.event_id.clone(),
                created_at: l.created_at as i64,
                version: p.manifest.version.to_string(),
                name: p.manifest.name.clone(),
                did: p.publisher.did.clone(),
            };
            // Marked before the write, so that no view can keep rows read before it.
            self.listings_changed();
            db::upsert_listing(&self.db, &row, l.envelope.as_bytes()).await?;
            keep.push((l.author.clone(), l.app_id.clone()));
        }
        if found.truncated || !found.relay_errors.is_empty() {
            warn!(
                truncated = found.truncated,
                relay_errors = ?found.relay_errors,
                "incomplete discovery pass: listings it did not see are kept"
            );
        } else {
            self.listings_changed();
            db::retain_listings(&self.db, &keep).await?;
            self.listings_changed();
        }
        if found.rejected_total > 0 {
            warn!(
                total = found.rejected_total,
                by_reason = ?found.rejected_by_reason,
                "relay publications rejected"
            );
        }
        if let Err(e) = self.score_publishers(&found).await {
            warn!(error = %e, "scoring publishers failed; previous scores are kept");
        }
        self.warm_store_view().await;
        Ok(found)
    }

    /// The operator's keys: the config's `trusted_keys` and those added with
    /// `archy market trust add`.
    async fn operator_keys(&self) -> Result<Vec<NostrKey>, NodeError> {
        let mut keys = Vec::new();
        for text in self
            .config
            .trusted_keys
            .iter()
            .cloned()
            .chain(db::trusted_keys(&self.db).await?)
        {
            let key = archy_marketplace::parse_nostr_key(&text)
                .map_err(|e| NodeError::new(ErrorKind::Refused, format!("trusted key: {e}")))?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Scores every listed publisher (0..100, each point explained) and stores the result.
    async fn score_publishers(
        &self,
        found: &archy_marketplace::Discovery,
    ) -> Result<(), NodeError> {
        let operator = self.operator_keys().await?;
        let mut publishers: Vec<NostrKey> = Vec::new();
        for l in db::market_listings(&self.db).await? {
            if let Ok(key) = archy_marketplace::parse_nostr_key(&l.author)
                && !publishers.contains(&key)
            {
                publishers.push(key);
            }
        }
        if operator.is_empty() {
            let explanation = serde_json::json!([{
                "points": 0,
                "reason": "this node trusts no key yet (trusted_keys in the config, or `archy market trust add`): nobody vouches for any publisher"
            }]);
            for p in &publishers {
                db::store_score(&self.db, &p.to_hex(), 0, &explanation).await?;
            }
            return Ok(());
        }
        let fetched = archy_marketplace::fetch_trust_events(
            &self.relays(),
            &operator,
            &publishers,
            &archy_marketplace::TrustFetchLimits::default(),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| NodeError::new(ErrorKind::Unavailable, e.to_string()))?;
        // With part of the graph missing (a relay down, a bound hit), a report that was not
        // seen must not raise anyone: a score may then only go down.
        let incomplete = fetched.truncated || !fetched.relay_errors.is_empty();
        if incomplete {
            warn!(truncated = fetched.truncated, relay_errors = ?fetched.relay_errors, "trust graph incomplete; scores may only fall this pass");
        }
        let mut inputs = fetched.inputs;
        for l in &found.listings {
            inputs.add_listing(l);
        }
        let scores = inputs.scores(&operator, &archy_marketplace::ScoreConfig::default());
        for p in &publishers {
            let score = scores.score(p);
            if incomplete
                && let Some(old) = db::score(&self.db, &p.to_hex()).await?
                && old.score < score.score
            {
                continue;
            }
            let explanation = serde_json::to_value(&score.explanation).map_err(internal)?;
            db::store_score(&self.db, &p.to_hex(), score.score, &explanation).await?;
        }
        Ok(())
    }

    /// Adds a key (npub or hex) to the operator's trusted keys; returns it as hex.
    pub async fn trust_key(&self, key: &str) -> Result<String, NodeError> {
        let key = archy_marketplace::parse_nostr_key(key)
            .map_err(|e| NodeError::new(ErrorKind::Refused, e.to_string()))?
            .to_hex();
        db::add_trusted_key(&self.db, &key).await?;
        db::clear_scores(&self.db).await?;
        Ok(key)
    }

    pub async fn untrust_key(&self, key: &str) -> Result<String, NodeError> {
        let hex = archy_marketplace::parse_nostr_key(key)
            .map_err(|e| NodeError::new(ErrorKind::Refused, e.to_string()))?
            .to_hex();
        let removed = db::remove_trusted_key(&self.db, &hex).await?;
        if removed {
            // Trust that flowed from this key must not outlive it.
            db::clear_scores(&self.db).await?;
        }
        if !removed {
            let in_config =
                self.config.trusted_keys.iter().any(|k| {
                    archy_marketplace::parse_nostr_key(k).is_ok_and(|k| k.to_hex() == hex)
                });
            return Err(NodeError::new(
                ErrorKind::NotFound,
                if in_config {
                    format!("{key} is trusted by the node's config (trusted_keys); remove it there")
                } else {
                    format!("{key} is not a trusted key")
                },
            ));
        }
        Ok(hex)
    }

    /// The operator's trusted keys, hex, with where each comes from.
    pub async fn trusted_keys(&self) -> Result<Vec<(String, &'static str)>, NodeError> {
        let mut out: Vec<(String, &'static str)> = Vec::new();
        for k in &self.config.trusted_keys {
            if let Ok(key) = archy_marketplace::parse_nostr_key(k) {
                out.push((key.to_hex(), "config"));
            }
        }
        for k in db::trusted_keys(&self.db).await? {
            if !out.iter().any(|(h, _)| *h == k) {
                out.push((k, "cli"));
            }
        }
        Ok(out)
    }

    /// `author`'s stored listing of `app_id`, re-verified into an installable app (sandbox
    /// policy, namespace), once the publisher clears the trust threshold or `approve`.
    pub(super) async fn listed_app(
        &self,
        author: &str,
        app_id: &str,
        approve: bool,
    ) -> Result<(Vec<u8>, VerifiedPublication, VerifiedApp), NodeError> {
        let envelope = db::listing_envelope(&self.db, author, app_id)
            .await?
            .ok_or_else(|| {
                NodeError::new(
                    ErrorKind::NotFound,
                    format!("publisher {author} no longer lists {app_id}"),
                )
            })?;
        let (verified, app) = third_party_app(&envelope, author)?;
        self.check_publisher_trust(author, approve).await?;
        Ok((envelope, verified, app))
    }

    /// The one listing `app_id` (optionally narrowed to `publisher`) names.
    pub(super) async fn resolve_listing(
        &self,
        app_id: &str,
        publisher: Option<&str>,
    ) -> Result<db::MarketRow, NodeError> {
        let mut found: Vec<db::MarketRow> = db::listings_of(&self.db, app_id)
            .await?
            .into_iter()
            .filter(|l| publisher.is_none_or(|p| l.author.starts_with(&p.to_ascii_lowercase())))
            .collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(NodeError::new(
                ErrorKind::NotFound,
                match publisher {
                    Some(p) => format!(
                        "no marketplace listing of {app_id:?} by publisher {p}; `archy market list` shows what was discovered"
                    ),
                    None => format!(
                        "no marketplace listing of {app_id:?}; `archy market discover` asks the relays again"
                    ),
                },
            )),
            _ => Err(NodeError::new(
                ErrorKind::Conflict,
                format!(
                    "{} publishers list {app_id:?} ({}); name one with --publisher",
                    found.len(),
                    found
                        .iter()
                        .map(|l| l.author.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Below the node's threshold, a publisher's app needs the operator's explicit approval.
    async fn check_publisher_trust(&self, author: &str, approve: bool) -> Result<(), NodeError> {
        let threshold = self.market_min_score();
        let (score, why) = match db::score(&self.db, author).await? {
            Some(row) => (row.score, explain(&row.explanation)),
            None => (
                0,
                "not scored yet (`archy market discover` scores publishers)".to_owned(),
            ),
        };
        if score >= threshold {
            return Ok(());
        }
        if approve {
            info!(
                publisher = author,
                score, threshold, "install approved by the operator below the trust threshold"
            );
            return Ok(());
        }
        Err(NodeError::new(
            ErrorKind::Refused,
            format!(
                "publisher {author} scores {score}/100, below this node's threshold of {threshold} \
                 (market_min_score): {why}. Review it with `archy market show`, then install with \
                 --approve to accept it"
            ),
        ))
    }
}

/// A third-party publication, re-verified (DID signature, binding to `author`'s Nostr key)
/// and turned into an installable app: sandbox policy passed, id in the publisher's namespace.
pub(super) fn third_party_app(
    envelope: &[u8],
    author: &str,
) -> Result<(VerifiedPublication, VerifiedApp), NodeError> {
    let verified = VerifiedPublication::verify(envelope).map_err(|e| {
        NodeError::new(
            ErrorKind::Refused,
            format!("publication does not verify: {e}"),
        )
    })?;
    if verified.publication().publisher.nostr != author {
        return Err(NodeError::new(
            ErrorKind::Refused,
            format!(
                "publication binds Nostr key {}, not the publisher {author}",
                verified.publication().publisher.nostr
            ),
        ));
    }
    let app = verified.sandboxed_app().map_err(|e| {
        NodeError::new(
            ErrorKind::Refused,
            format!(
                "{} by {author} fails the third-party sandbox policy: {e}",
                verified.publication().manifest.id
            ),
        )
    })?;
    Ok((verified, app))
}

/// The first reasons of a score explanation, for an error message.
fn explain(explanation: &serde_json::Value) -> String {
    let reasons: Vec<String> = explanation
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let reason = t.get("reason")?.as_str()?;
            Some(match t.get("points").and_then(serde_json::Value::as_f64) {
                Some(p) => format!("{p:+} {reason}"),
                None => reason.to_owned(),
            })
        })
        .take(4)
        .collect();
    if reasons.is_empty() {
        "no path from your trusted keys".to_owned()
    } else {
        reasons.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_names_the_first_reasons_with_their_points() {
        let explanation = serde_json::json!([
            { "points": 10, "reason": "followed by you" },
            { "points": -5.5, "reason": "reported by a key you trust" },
            { "reason": "no points given" },
            { "points": 1 },
            { "points": 0, "reason": "third" },
            { "points": 2, "reason": "fourth" },
            { "points": 3, "reason": "fifth, left out" },
        ]);
        assert_eq!(
            explain(&explanation),
            "+10 followed by you; -5.5 reported by a key you trust; no points given; +0 third"
        );
    }

    #[test]
    fn explain_without_reasons_says_nobody_vouches() {
        for empty in [
            serde_json::json!([]),
            serde_json::json!(null),
            serde_json::json!({ "reason": "not a list" }),
        ] {
            assert_eq!(explain(&empty), "no path from your trusted keys");
        }
    }
}
