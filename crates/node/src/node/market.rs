//! Third-party apps: discovery on the relays, publisher scores from the operator's web of
//! trust, the operator's trusted keys, and the gate a listing passes to become an app:
//! re-verified (DID signature, Nostr binding, sandbox policy, namespaced id) every time it is
//! used, and installed only when its publisher clears `market_min_score` or is approved.

use std::time::Duration;

use std::collections::HashSet;

use archy_marketplace::{NostrEvent, NostrKey};
use archy_registry::{VerifiedApp, VerifiedPublication};
use tracing::{info, warn};

use super::error::internal;
use super::{ErrorKind, Node, NodeError};
use crate::db::{self, Db};

impl Node {
    /// Discovers third-party publications on the configured relays, stores the newest
    /// verified one per (publisher, app) and the history and withdrawals seen, then scores
    /// every listed publisher from the operator's web of trust. A relay that is down, slow or
    /// lying costs only its share; listings are forgotten only after a complete pass that no
    /// longer finds them, and a withdrawal, once seen, holds whatever a lagging relay serves.
    pub async fn discover_market(&self) -> Result<archy_marketplace::Discovery, NodeError> {
        let relays = self.relay_set();
        if relays.is_empty() {
            return Ok(Default::default());
        }
        let eligible = self.outbox_publishers().await?;
        let limits = self.outbox_limits();
        let resolver = archy_marketplace::Resolver::system();
        let outbox = archy_marketplace::Outbox {
            publishers: &eligible,
            limits: &limits,
            resolver: &resolver,
        };
        // Marked before and after the writes, so that no view keeps rows read meanwhile.
        self.listings_changed();
        let found = discover_outbox_into(&self.db, &relays, Some(outbox), DISCOVERY_TIMEOUT).await;
        self.listings_changed();
        let found = found?;
        let status = market_status(&self.db, &found).await?;
        if let Ok(mut last) = self.market_status.lock() {
            *last = Some(status);
        }
        if let Err(e) = self.score_publishers().await {
            warn!(error = %e, "scoring publishers failed; previous scores are kept");
        }
        self.warm_store_view().await;
        Ok(found)
    }

    /// The publishers whose own relays (NIP-65) a pass may use: those the operator key
    /// follows, then those whose stored score reaches the gate, best first. Nobody else's
    /// relay list can make the node connect anywhere.
    pub(super) async fn outbox_publishers(&self) -> Result<Vec<NostrKey>, NodeError> {
        if self.config.outbox_relays_per_publisher == 0 || self.config.outbox_relays_total == 0 {
            return Ok(Vec::new());
        }
        let mut out: Vec<NostrKey> = Vec::new();
        for hex in self.operator().await?.follows {
            if let Ok(key) = archy_marketplace::parse_nostr_key(&hex)
                && !out.contains(&key)
            {
                out.push(key);
            }
        }
        let gate = self.market_min_score();
        let mut scored = db::scores(&self.db).await?;
        scored.retain(|s| s.score >= gate);
        scored.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.author.cmp(&b.author)));
        for s in scored {
            if let Ok(key) = archy_marketplace::parse_nostr_key(&s.author)
                && !out.contains(&key)
            {
                out.push(key);
            }
        }
        Ok(out)
    }

    fn outbox_limits(&self) -> archy_marketplace::OutboxLimits {
        archy_marketplace::OutboxLimits {
            per_publisher: self.config.outbox_relays_per_publisher,
            total: self.config.outbox_relays_total,
            allow_private: self.config.outbox_allow_private,
            ..archy_marketplace::OutboxLimits::default()
        }
    }

    /// The last discovery pass, for `archy market status`.
    pub(super) fn last_discovery(&self) -> Option<archy_api::MarketStatus> {
        self.market_status.lock().ok().and_then(|s| s.clone())
    }

    /// The operator's keys: this node's own operator key, the config's `trusted_keys` and
    /// those added with `archy market trust add`.
    async fn operator_keys(&self) -> Result<Vec<NostrKey>, NodeError> {
        let mut keys: Vec<NostrKey> = self
            .operator_key()?
            .map(|k| k.public_key())
            .into_iter()
            .collect();
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
    /// The operator key's own events count at once, before any relay echoes them.
    pub(super) async fn score_publishers(&self) -> Result<(), NodeError> {
        let operator = self.operator_keys().await?;
        let own = self.operator_events().await?;
        score_into(
            &self.db,
            &self.relay_set(),
            &operator,
            &own,
            DISCOVERY_TIMEOUT,
        )
        .await
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
        if self
            .operator_key()?
            .is_some_and(|own| own.public_key().to_hex() == hex)
        {
            return Err(NodeError::new(
                ErrorKind::Refused,
                format!(
                    "{key} is this node's own operator key: it is trusted while the node holds it"
                ),
            ));
        }
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
    pub async fn trusted_keys(&self) -> Result<Vec<archy_api::TrustedKey>, NodeError> {
        use archy_api::KeySource;
        let mut out: Vec<(String, KeySource)> = Vec::new();
        if let Some(own) = self.operator_key()? {
            out.push((own.public_key().to_hex(), KeySource::Operator));
        }
        for k in &self.config.trusted_keys {
            if let Ok(key) = archy_marketplace::parse_nostr_key(k)
                && !out.iter().any(|(h, _)| *h == key.to_hex())
            {
                out.push((key.to_hex(), KeySource::Config));
            }
        }
        for k in db::trusted_keys(&self.db).await? {
            if !out.iter().any(|(h, _)| *h == k) {
                out.push((k, KeySource::Cli));
            }
        }
        Ok(out
            .into_iter()
            .map(|(key, source)| archy_api::TrustedKey { key, source })
            .collect())
    }

    /// `author`'s stored listing of `app_id`, re-verified into an installable app (sandbox
    /// policy, namespace), once the publisher clears the trust threshold or `approve`.
    pub(super) async fn listed_app(
        &self,
        author: &str,
        app_id: &str,
        approve: bool,
    ) -> Result<(Vec<u8>, VerifiedPublication, VerifiedApp), NodeError> {
        let listing = db::listings_of(&self.db, app_id)
            .await?
            .into_iter()
            .find(|l| l.author == author);
        if let Some((deletion, at)) = listing.and_then(|l| l.withdrawn) {
            return Err(withdrawn_error(author, app_id, &deletion, at));
        }
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
        let (withdrawn, mut found): (Vec<db::MarketRow>, Vec<db::MarketRow>) =
            db::listings_of(&self.db, app_id)
                .await?
                .into_iter()
                .filter(|l| publisher.is_none_or(|p| l.author.starts_with(&p.to_ascii_lowercase())))
                .partition(|l| l.withdrawn.is_some());
        match found.len() {
            1 => Ok(found.remove(0)),
            0 if withdrawn.len() == 1 => {
                let l = &withdrawn[0];
                let (deletion, at) = l.withdrawn.clone().unwrap_or_default();
                Err(withdrawn_error(&l.author, app_id, &deletion, at))
            }
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

    /// A third-party app's publisher and what it lists now: whether it withdrew the
    /// publication this app runs (every event of that version deleted, or, for an app
    /// installed before the node kept history, the app's coordinate deleted after it was
    /// published), and a newer version it lists. `None` for a first-party app.
    pub(super) async fn app_market(
        &self,
        row: &db::AppRow,
    ) -> Result<Option<archy_api::AppMarket>, NodeError> {
        let (Some(author), Some(envelope)) = (&row.publisher, &row.publication) else {
            return Ok(None);
        };
        let Ok(verified) = VerifiedPublication::verify(envelope) else {
            return Ok(None);
        };
        let p = verified.publication();
        let app_id = p.manifest.id.clone();
        let installed = &p.manifest.version;
        let mut deletions = archy_marketplace::Deletions::new();
        for event in remembered_deletions(&self.db).await? {
            if event.pubkey.to_hex() == *author {
                deletions.add(&event);
            }
        }
        let events: Vec<db::HistoryRow> = db::history_of(&self.db, author)
            .await?
            .into_iter()
            .filter(|h| h.app_id == app_id && h.version == installed.to_string())
            .collect();
        let withdrawal = if events.is_empty() {
            let published = u64::try_from(p.published_at.timestamp()).unwrap_or(0);
            deletions
                .app_withdrawal(author, &app_id)
                .filter(|w| w.at >= published)
                .cloned()
        } else {
            let covering: Option<Vec<&archy_marketplace::Withdrawal>> = events
                .iter()
                .map(|h| {
                    let at = u64::try_from(h.created_at).unwrap_or(0);
                    deletions.covering(author, &app_id, &h.event_id, at)
                })
                .collect();
            covering.and_then(|all| all.into_iter().max_by_key(|w| w.at).cloned())
        };
        let listing = db::listings_of(&self.db, &app_id)
            .await?
            .into_iter()
            .find(|l| l.author == *author && l.withdrawn.is_none());
        let newer_version = listing
            .filter(|l| semver::Version::parse(&l.version).is_ok_and(|v| v > *installed))
            .map(|l| l.version);
        Ok(Some(archy_api::AppMarket {
            publisher: author.clone(),
            did: p.publisher.did.clone(),
            app_id,
            withdrawn: withdrawal.map(|w| archy_api::Withdrawal {
                deletion: w.deletion,
                at: i64::try_from(w.at).unwrap_or(i64::MAX),
            }),
            newer_version,
        }))
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

/// How long each relay request of a discovery or trust fetch may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The deletion requests the node kept. One that no longer reads is skipped (and said);
/// discovery and scoring check each signature again.
async fn remembered_deletions(db: &Db) -> Result<Vec<NostrEvent>, NodeError> {
    let mut out = Vec::new();
    for json in db::market_deletions(db).await? {
        match archy_marketplace::deletion_from_json(&json) {
            Ok(event) => out.push(event),
            Err(e) => warn!(error = %e, "skipping a kept deletion request"),
        }
    }
    Ok(out)
}

/// One discovery pass on `relays` into the node's database: publishers already listed are
/// asked for by name (a flood cannot push them out) and the deletions kept are applied.
#[cfg(test)]
pub(super) async fn discover_into(
    db: &Db,
    relays: &(impl archy_marketplace::RelayList + ?Sized),
    timeout: Duration,
) -> Result<archy_marketplace::Discovery, NodeError> {
    discover_outbox_into(db, relays, None, timeout).await
}

/// [`discover_into`], with the publishers' own relays (NIP-65) of `outbox`.
pub(super) async fn discover_outbox_into(
    db: &Db,
    relays: &(impl archy_marketplace::RelayList + ?Sized),
    outbox: Option<archy_marketplace::Outbox<'_>>,
    timeout: Duration,
) -> Result<archy_marketplace::Discovery, NodeError> {
    let mut known: Vec<NostrKey> = Vec::new();
    for l in db::market_listings(db).await? {
        if let Ok(key) = archy_marketplace::parse_nostr_key(&l.author)
            && !known.contains(&key)
        {
            known.push(key);
        }
    }
    let remembered = remembered_deletions(db).await?;
    let found = archy_marketplace::discover_outbox(
        relays,
        &known,
        &remembered,
        &archy_marketplace::DiscoveryLimits::default(),
        outbox,
        timeout,
    )
    .await
    .map_err(|e| NodeError::new(ErrorKind::Unavailable, e.to_string()))?;
    absorb(db, &found, unix_now()).await?;
    Ok(found)
}

/// Stores what a pass found at `now`: every publication seen (history), the deletion
/// requests that concern publications, the listings, and which stored listings their
/// publisher withdrew. After a complete pass, listings it no longer found are dropped
/// (withdrawn ones stay, marked).
pub(super) async fn absorb(
    db: &Db,
    found: &archy_marketplace::Discovery,
    now: i64,
) -> Result<(), NodeError> {
    let seen: Vec<db::HistoryRow> = found
        .seen
        .iter()
        .map(|s| db::HistoryRow {
            event_id: s.event_id.clone(),
            author: s.author.clone(),
            app_id: s.app_id.clone(),
            version: s.version.clone(),
            created_at: i64::try_from(s.created_at).unwrap_or(i64::MAX),
        })
        .collect();
    db::record_seen(db, &seen, now).await?;
    let listed = db::market_listings(db).await?;
    for event in &found.deletions {
        let author = event.pubkey.to_hex();
        let targets = archy_marketplace::deletion_targets(event);
        // Only what concerns publications is kept: an app of its author, or a publication
        // of its author the node has seen (not the author's other deletions).
        let relevant = !targets.apps.is_empty() || {
            let known: HashSet<String> = db::history_of(db, &author)
                .await?
                .into_iter()
                .map(|h| h.event_id)
                .chain(
                    listed
                        .iter()
                        .filter(|l| l.author == author)
                        .map(|l| l.event_id.clone()),
                )
                .collect();
            targets.event_ids.iter().any(|id| known.contains(id))
        };
        if relevant {
            db::remember_deletion(
                db,
                &event.id.to_hex(),
                &author,
                i64::try_from(event.created_at.as_secs()).unwrap_or(i64::MAX),
                &archy_marketplace::event_json(event),
            )
            .await?;
        }
    }
    let mut keep = Vec::new();
    for l in &found.listings {
        let p = l.publication.publication();
        let row = db::MarketRow {
            author: l.author.clone(),
            app_id: l.app_id.clone(),
            event_id: l.event_id.clone(),
            created_at: i64::try_from(l.created_at).unwrap_or(i64::MAX),
            version: p.manifest.version.to_string(),
            name: p.manifest.name.clone(),
            did: p.publisher.did.clone(),
            withdrawn: None,
        };
        db::upsert_listing(db, &row, l.envelope.as_bytes()).await?;
        keep.push((l.author.clone(), l.app_id.clone()));
    }
    // Every stored listing against every deletion kept: a listing this pass did not see
    // (its relay down, or deleted there) is withdrawn all the same.
    let mut deletions = archy_marketplace::Deletions::new();
    for event in remembered_deletions(db).await? {
        deletions.add(&event);
    }
    for row in db::market_listings(db).await? {
        let created_at = u64::try_from(row.created_at).unwrap_or(0);
        let Some(w) = deletions.covering(&row.author, &row.app_id, &row.event_id, created_at)
        else {
            continue;
        };
        if row.withdrawn.as_ref().map(|(by, _)| by) != Some(&w.deletion) {
            info!(
                publisher = %row.author,
                app = %row.app_id,
                version = %row.version,
                deletion = %w.deletion,
                "listing withdrawn by its publisher (NIP-09)"
            );
            let at = i64::try_from(w.at).unwrap_or(i64::MAX);
            db::mark_withdrawn(db, &row.author, &row.app_id, &w.deletion, at).await?;
        }
    }
    if found.truncated || !found.relay_errors.is_empty() {
        warn!(
            truncated = found.truncated,
            relay_errors = ?found.relay_errors,
            "incomplete discovery pass: listings it did not see are kept"
        );
    } else {
        db::retain_listings(db, &keep).await?;
    }
    if found.rejected_total > 0 {
        warn!(
            total = found.rejected_total,
            by_reason = ?found.rejected_by_reason,
            "relay publications rejected"
        );
    }
    for (relay, report) in &found.relays {
        if report.forged > 0 {
            warn!(%relay, forged = report.forged, "relay sent events with a bad id or signature");
        }
    }
    Ok(())
}

/// The pass as `archy market status` shows it.
async fn market_status(
    db: &Db,
    found: &archy_marketplace::Discovery,
) -> Result<archy_api::MarketStatus, NodeError> {
    let rows = db::market_listings(db).await?;
    let withdrawn = rows.iter().filter(|r| r.withdrawn.is_some()).count();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(archy_api::MarketStatus {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        listed: count(rows.len() - withdrawn),
        withdrawn: count(withdrawn),
        incomplete: found.truncated || !found.relay_errors.is_empty(),
        relays: found
            .relays
            .iter()
            .map(|(relay, r)| super::wire::relay_report(relay.clone(), r.clone()))
            .collect(),
        outbox: super::wire::outbox_relays(found),
        outbox_refused: super::wire::outbox_refused(found),
    })
}

/// Scores every listed publisher from `operator`'s web of trust on `relays`, with the
/// history the node recorded (every version seen, when it first saw the publisher, the
/// deletions kept), and stores the scores.
pub(super) async fn score_into(
    db: &Db,
    relays: &(impl archy_marketplace::RelayList + ?Sized),
    operator: &[NostrKey],
    own_events: &[NostrEvent],
    timeout: Duration,
) -> Result<(), NodeError> {
    let mut publishers: Vec<NostrKey> = Vec::new();
    for l in db::market_listings(db).await? {
        if let Ok(key) = archy_marketplace::parse_nostr_key(&l.author)
            && !publishers.contains(&key)
        {
            publishers.push(key);
        }
    }
    if operator.is_empty() {
        let explanation = serde_json::json!([{
            "points": 0,
            "reason": "this node trusts no key yet: `archy market follow NPUB` follows a publisher with this node's own operator key (made on first use)"
        }]);
        for p in &publishers {
            db::store_score(db, &p.to_hex(), 0, &explanation).await?;
        }
        return Ok(());
    }
    let mut own = archy_marketplace::TrustInputs::new();
    own.add_events(own_events);
    let fetched = archy_marketplace::fetch_trust_events_onto(
        own,
        relays,
        operator,
        &publishers,
        &archy_marketplace::TrustFetchLimits::default(),
        timeout,
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
    // A compliant relay holds only each app's newest event: the history is the node's.
    for p in &publishers {
        let hex = p.to_hex();
        for h in db::history_of(db, &hex).await? {
            let created_at = u64::try_from(h.created_at).unwrap_or(0);
            inputs.add_publication_seen(p, &h.event_id, &h.app_id, &h.version, created_at);
        }
        if let Some(first) = db::first_seen(db, &hex).await? {
            inputs.add_first_seen(p, u64::try_from(first).unwrap_or(0));
        }
    }
    inputs.add_events(&remembered_deletions(db).await?);
    let scores = inputs.scores(operator, &archy_marketplace::ScoreConfig::default());
    for p in &publishers {
        let score = scores.score(p);
        if incomplete
            && let Some(old) = db::score(db, &p.to_hex()).await?
            && old.score < score.score
        {
            continue;
        }
        let explanation = serde_json::to_value(&score.explanation).map_err(internal)?;
        db::store_score(db, &p.to_hex(), score.score, &explanation).await?;
    }
    Ok(())
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

/// Installing or updating from a listing its publisher withdrew.
fn withdrawn_error(author: &str, app_id: &str, deletion: &str, at: i64) -> NodeError {
    let when =
        chrono::DateTime::from_timestamp(at, 0).map_or_else(|| at.to_string(), |t| t.to_rfc3339());
    NodeError::new(
        ErrorKind::Refused,
        format!(
            "publisher {author} withdrew {app_id} at {when} (NIP-09 deletion {deletion}): \
             nothing is installed from a withdrawn publication"
        ),
    )
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

    /// Two compliant relays (NIP-33: one event per publisher and app) and the node's sqlite.
    /// The score's history grows pass after pass although the relay only ever shows the
    /// newest version; a withdrawal sent to relay A holds against relay B, which still has
    /// the first version, after A is gone; a publication after the withdrawal lists again.
    #[tokio::test]
    async fn history_grows_and_withdrawals_hold_across_passes_on_real_relays() {
        use archy_marketplace::DeveloperIdentity;
        use archy_marketplace::test_support::relay;
        use nostr_relay_builder::prelude::*;

        const DAY: u64 = 86_400;
        const DEV: &str =
            "leader monkey parrot ring guide accident before fence cannon height naive bean";
        let t = std::time::Duration::from_secs(3);
        let (relay_a, a) = relay().await;
        let (_relay_b, b) = relay().await;
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("archy.db")).await.unwrap();
        let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
        let author = dev.nostr_public_hex();
        let publication = |version: &str, at: u64| {
            let manifest = archy_marketplace::test_support::manifest("notes", version);
            let envelope = archy_marketplace::test_support::signed_publication(&dev, manifest);
            archy_marketplace::test_support::envelope_event_at(
                &envelope,
                dev.nostr_keys(),
                "notes",
                at,
            )
        };
        let send = |event: Event, to: Vec<String>| async move {
            archy_marketplace::publish(&event, &to).await.unwrap();
        };
        let operator = Keys::generate();
        send(
            EventBuilder::contact_list([Contact::new(dev.nostr_keys().public_key())])
                .sign_with_keys(&operator)
                .unwrap(),
            vec![a.clone()],
        )
        .await;
        let op = [operator.public_key()];
        let now = Timestamp::now().as_secs();
        let score = |relays: Vec<String>| {
            let db = db.clone();
            let author = author.clone();
            async move {
                score_into(&db, &relays, &op, &[], t).await.unwrap();
                db::score(&db, &author).await.unwrap().unwrap()
            }
        };

        // Relay A keeps only the newest version; relay B got the first one and no more.
        let v1 = publication("1.0.0", now - 100 * DAY);
        send(v1.clone(), vec![a.clone(), b.clone()]).await;
        let mut scores = Vec::new();
        for (version, days_ago) in [("2.0.0", 50), ("3.0.0", 10)] {
            discover_into(&db, std::slice::from_ref(&a), t)
                .await
                .unwrap();
            scores.push(score(vec![a.clone()]).await.score);
            send(publication(version, now - days_ago * DAY), vec![a.clone()]).await;
        }
        let found = discover_into(&db, std::slice::from_ref(&a), t)
            .await
            .unwrap();
        assert_eq!(found.seen.len(), 1, "the relay shows one version");
        let last = score(vec![a.clone()]).await;
        scores.push(last.score);
        // 50 (followed) + 1 per 30 days since the first version + 1 per version after it.
        assert_eq!(scores, [53, 54, 55], "{:?}", last.explanation);
        assert!(
            last.explanation
                .to_string()
                .contains("3 versions of 1 apps"),
            "{}",
            last.explanation
        );
        assert_eq!(db::history_of(&db, &author).await.unwrap().len(), 3);

        // The developer withdraws notes on relay A only (as `archy app unpublish` does, with
        // B out of reach): 3.0.0 named by id, 1.0.0 on B covered by the coordinate alone.
        let (held, _) = archy_marketplace::own_publications(
            std::slice::from_ref(&a),
            &dev.nostr_keys().public_key(),
            "notes",
            t,
        )
        .await
        .unwrap();
        let ids: Vec<EventId> = held.iter().map(|e| e.id).collect();
        let withdrawal =
            archy_marketplace::withdrawal_event(dev.nostr_keys(), "notes", &ids).unwrap();
        send(withdrawal.clone(), vec![a.clone()]).await;
        let found = discover_into(&db, &[a.clone(), b.clone()], t)
            .await
            .unwrap();
        assert!(found.listings.is_empty(), "{:?}", found.listings);
        let withdrawn = |db: Db| async move {
            let rows = db::market_listings(&db).await.unwrap();
            assert_eq!(rows.len(), 1);
            (rows[0].version.clone(), rows[0].withdrawn.clone())
        };
        let expected = Some((
            withdrawal.id.to_hex(),
            withdrawal.created_at.as_secs() as i64,
        ));
        assert_eq!(
            withdrawn(db.clone()).await,
            ("3.0.0".to_owned(), expected.clone())
        );
        let s = score(vec![a.clone(), b.clone()]).await;
        assert!(
            s.explanation.to_string().contains("deleted 3 publications"),
            "{}",
            s.explanation
        );

        // Relay A is gone: B still serves 1.0.0, and the kept withdrawal covers it.
        relay_a.shutdown();
        let found = discover_into(&db, std::slice::from_ref(&b), t)
            .await
            .unwrap();
        assert!(found.listings.is_empty(), "{:?}", found.listings);
        assert_eq!(found.withdrawn.len(), 1);
        assert_eq!(withdrawn(db.clone()).await, ("3.0.0".to_owned(), expected));
        // A node that never saw the withdrawal lists the lagging relay's version.
        let fresh_dir = tempfile::tempdir().unwrap();
        let fresh = db::open(&fresh_dir.path().join("archy.db")).await.unwrap();
        let found = discover_into(&fresh, std::slice::from_ref(&b), t)
            .await
            .unwrap();
        assert_eq!(found.listings.len(), 1);
        assert_eq!(found.listings[0].event_id, v1.id.to_hex());
        // A deletion by someone else, however it got kept, withdraws nothing.
        let stranger = Keys::generate();
        let foreign = EventBuilder::delete(EventDeletionRequest::new().id(v1.id))
            .sign_with_keys(&stranger)
            .unwrap();
        db::remember_deletion(
            &fresh,
            &foreign.id.to_hex(),
            &author,
            foreign.created_at.as_secs() as i64,
            &archy_marketplace::event_json(&foreign),
        )
        .await
        .unwrap();
        let found = discover_into(&fresh, std::slice::from_ref(&b), t)
            .await
            .unwrap();
        assert_eq!(found.listings.len(), 1);
        assert!(
            db::market_listings(&fresh).await.unwrap()[0]
                .withdrawn
                .is_none()
        );

        // The developer publishes again after the withdrawal: listed again.
        send(publication("4.0.0", now + 5), vec![b.clone()]).await;
        let found = discover_into(&db, std::slice::from_ref(&b), t)
            .await
            .unwrap();
        assert_eq!(found.listings.len(), 1);
        assert_eq!(withdrawn(db.clone()).await, ("4.0.0".to_owned(), None));
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
