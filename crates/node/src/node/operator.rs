//! The operator's own Nostr key on the node, and what it signs: follows (the kind-3 contact
//! list, kept whole), endorsements (NIP-32) and reports (NIP-56), sent to the node's relays
//! with each relay's answer (the events themselves are built in
//! `archy_marketplace::vouch`).
//!
//! The key is NIP-06 (account 0) from a BIP39 mnemonic kept in `<data_dir>/operator.mnemonic`
//! (0600, never logged): generated at the first follow, endorse or report, or imported
//! (`archy market key import`, words on stdin). While it exists it is a trusted key, so a
//! follow by it is a path for every score. Each event a relay accepted is kept in sqlite
//! (`operator_events`), and scores count those at once, before the relays echo them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use archy_api::{
    EndorseRequest, OperatorKeyView, OperatorView, RelayResult, ReportRequest, VouchAction,
    VouchResponse,
};
use archy_marketplace::{
    Event, EventId, FollowChange, JsonUtil, NostrKey, OperatorKey, RelayOutcome, Subject,
    VouchError, npub,
};
use sqlx::Row;
use tracing::{info, warn};

use super::error::internal;
use super::{ErrorKind, Node, NodeError};
use crate::db;

/// File name of the operator key's mnemonic inside the data dir.
pub const OPERATOR_KEY_FILE: &str = "operator.mnemonic";
/// How long each relay gets to answer a request or take an event.
const RELAY_WITHIN: Duration = Duration::from_secs(10);
/// How long the rescoring after a vouch may take before the answer goes without it.
const RESCORE_WITHIN: Duration = Duration::from_secs(60);
/// Bytes of a vouch's target (a key, a DID, an app or event id).
const MAX_TARGET_BYTES: usize = 200;

/// The operator key, once read, and the lock that keeps one vouch at a time: two follows
/// at once would each build on the same contact list, and the second would drop the
/// first's follow.
#[derive(Default)]
pub(super) struct OperatorSlot {
    key: std::sync::Mutex<Option<Arc<OperatorKey>>>,
    vouching: tokio::sync::Mutex<()>,
}

fn vouch_error(e: VouchError) -> NodeError {
    let kind = match &e {
        VouchError::Invalid(_) => ErrorKind::Invalid,
        VouchError::NoRelays => ErrorKind::Refused,
        VouchError::NoAnswer(_) | VouchError::NoneAccepted(_) | VouchError::Relay(_) => {
            ErrorKind::Unavailable
        }
        VouchError::Key(_) => ErrorKind::Internal,
    };
    NodeError::new(kind, e.to_string())
}

fn results(outcomes: &[RelayOutcome]) -> Vec<RelayResult> {
    outcomes
        .iter()
        .map(|o| RelayResult {
            relay: o.relay.clone(),
            ok: o.ok,
            message: o.message.clone(),
        })
        .collect()
}

fn invalid(message: impl Into<String>) -> NodeError {
    NodeError::new(ErrorKind::Invalid, message)
}

impl Node {
    fn operator_key_path(&self) -> PathBuf {
        self.config.data_dir.join(OPERATOR_KEY_FILE)
    }

    /// The operator key if the node holds one (read once, then cached).
    pub(super) fn operator_key(&self) -> Result<Option<Arc<OperatorKey>>, NodeError> {
        let mut slot = self
            .operator
            .key
            .lock()
            .map_err(|_| internal("operator key lock poisoned"))?;
        if let Some(key) = slot.as_ref() {
            return Ok(Some(key.clone()));
        }
        let path = self.operator_key_path();
        if !path.exists() {
            return Ok(None);
        }
        let words = crate::publish::read_mnemonic_file(&path)
            .map_err(|e| internal(format!("the operator key {}: {e:#}", path.display())))?;
        let key = OperatorKey::from_mnemonic(&words).map_err(|e| {
            internal(format!(
                "the operator key {}: {e} (restore the file, or import the key again)",
                path.display()
            ))
        })?;
        let key = Arc::new(key);
        *slot = Some(key.clone());
        Ok(Some(key))
    }

    /// The operator key, made on first use: a new 24-word mnemonic written 0600.
    fn operator_key_or_create(&self) -> Result<Arc<OperatorKey>, NodeError> {
        if let Some(key) = self.operator_key()? {
            return Ok(key);
        }
        let words = OperatorKey::new_mnemonic();
        let key = OperatorKey::from_mnemonic(&words).map_err(|e| internal(e.to_string()))?;
        let path = self.operator_key_path();
        crate::publish::write_mnemonic_file(&path, &words)
            .map_err(|e| internal(format!("writing the operator key: {e:#}")))?;
        info!(npub = %key.npub(), file = %path.display(), "operator key created");
        let key = Arc::new(key);
        if let Ok(mut slot) = self.operator.key.lock() {
            *slot = Some(key.clone());
        }
        Ok(key)
    }

    /// `GET /v1/operator`: the key (if any) and the keys its last contact list follows.
    pub async fn operator(&self) -> Result<OperatorView, NodeError> {
        let Some(key) = self.operator_key()? else {
            return Ok(OperatorView {
                key: None,
                follows: Vec::new(),
            });
        };
        let follows = match self.own_contact_list(&key).await? {
            Some(list) => archy_marketplace::newest_contact_list(&key.public_key(), [&list])
                .map(|l| {
                    l.tags
                        .public_keys()
                        .map(|pk| pk.to_hex())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(OperatorView {
            key: Some(OperatorKeyView {
                npub: key.npub(),
                hex: key.public_key().to_hex(),
                file: self.operator_key_path().display().to_string(),
            }),
            follows,
        })
    }

    /// `POST /v1/operator/key`: takes the operator's own mnemonic as the node's key. A key
    /// already held is replaced only with `replace`; then what the old key signed no longer
    /// counts here, and scores are recomputed.
    pub async fn import_operator_key(
        &self,
        mnemonic: &str,
        replace: bool,
    ) -> Result<OperatorView, NodeError> {
        let _one = self.operator.vouching.lock().await;
        let key = OperatorKey::from_mnemonic(mnemonic).map_err(|e| invalid(e.to_string()))?;
        let path = self.operator_key_path();
        let held = self.operator_key()?;
        match &held {
            Some(old) if old.public_key() == key.public_key() => return self.operator().await,
            Some(old) if !replace => {
                return Err(NodeError::new(
                    ErrorKind::Conflict,
                    format!(
                        "this node already holds operator key {}; pass --replace to replace it \
                         (its follows, endorsements and reports stay on the relays under that key)",
                        old.npub()
                    ),
                ));
            }
            _ => {}
        }
        let words =
            zeroize::Zeroizing::new(mnemonic.split_whitespace().collect::<Vec<_>>().join(" "));
        if held.is_some() {
            // Written beside it, then renamed over it: the file is never half-written.
            let fresh = path.with_extension("mnemonic.new");
            let _ = std::fs::remove_file(&fresh);
            crate::publish::write_mnemonic_file(&fresh, &words)
                .map_err(|e| internal(format!("writing the operator key: {e:#}")))?;
            std::fs::rename(&fresh, &path)
                .map_err(|e| internal(format!("replacing {}: {e}", path.display())))?;
            sqlx::query("DELETE FROM operator_events")
                .execute(&self.db)
                .await?;
            db::clear_scores(&self.db).await?;
        } else {
            crate::publish::write_mnemonic_file(&path, &words)
                .map_err(|e| internal(format!("writing the operator key: {e:#}")))?;
        }
        info!(npub = %key.npub(), replaced = held.is_some(), "operator key imported");
        if let Ok(mut slot) = self.operator.key.lock() {
            *slot = Some(Arc::new(key));
        }
        self.operator().await
    }

    /// `POST /v1/operator/follow` (`follow`) and `/unfollow`: the operator key's contact
    /// list with the publisher added or removed, built on the newest copy the relays hold
    /// (or, with `force` when none answers, on this node's own last copy).
    pub async fn vouch_follow(
        &self,
        target: &str,
        follow: bool,
        force: bool,
    ) -> Result<VouchResponse, NodeError> {
        let subject = self.resolve_publisher(target).await?;
        let (key, relays) = self.vouch_setup()?;
        let one = self.operator.vouching.lock().await;
        let local = self.own_contact_list(&key).await?;
        let (add, remove) = if follow {
            (vec![subject], Vec::new())
        } else {
            (Vec::new(), vec![subject])
        };
        let change = FollowChange {
            follow: &add,
            unfollow: &remove,
            local: local.as_ref(),
            force,
        };
        let outcome = archy_marketplace::update_follows(&key, &relays, change, RELAY_WITHIN)
            .await
            .map_err(vouch_error)?;
        if let Some(event) = &outcome.event {
            self.store_operator_event(event).await?;
        }
        drop(one);
        let action = if follow {
            VouchAction::Follow
        } else {
            VouchAction::Unfollow
        };
        let npub = npub(&subject);
        let note = match (&outcome.event, follow) {
            (None, true) => format!("already following {npub}: nothing published"),
            (None, false) => format!("not following {npub}: nothing published"),
            (Some(_), true) => format!("now following {npub}"),
            (Some(_), false) => format!("no longer following {npub}"),
        };
        info!(%action, publisher = %subject.to_hex(), follows = outcome.change.follows, "{note}");
        let mut response = VouchResponse {
            action,
            operator: key.npub(),
            subject: subject.to_hex(),
            app: None,
            event_id: outcome.event.as_ref().map(|e| e.id.to_hex()),
            kind: 3,
            fetched: results(&outcome.fetched),
            published: results(&outcome.published),
            follows: Some(outcome.change.follows as u64),
            note,
            score: None,
        };
        if outcome.event.is_some() {
            self.rescore_for(&mut response).await?;
        } else {
            response.score = self.score_view(&response.subject).await?;
        }
        Ok(response)
    }

    /// `POST /v1/operator/endorse`: a NIP-32 label of a publisher or one of its apps.
    pub async fn vouch_endorse(&self, req: &EndorseRequest) -> Result<VouchResponse, NodeError> {
        let subject = self
            .resolve_subject(&req.target, req.publisher.as_deref(), false)
            .await?;
        let (key, relays) = self.vouch_setup()?;
        let _one = self.operator.vouching.lock().await;
        let event = archy_marketplace::endorsement_event(&key, &subject, &req.labels, &req.comment)
            .map_err(vouch_error)?;
        self.send_claim(key, relays, subject, event, VouchAction::Endorse)
            .await
    }

    /// `POST /v1/operator/report`: a NIP-56 report of a publisher, an app or a listing.
    pub async fn vouch_report(&self, req: &ReportRequest) -> Result<VouchResponse, NodeError> {
        let report = archy_marketplace::parse_report(&req.reason).map_err(vouch_error)?;
        let subject = self
            .resolve_subject(&req.target, req.publisher.as_deref(), true)
            .await?;
        let (key, relays) = self.vouch_setup()?;
        let _one = self.operator.vouching.lock().await;
        let event = archy_marketplace::report_event(&key, &subject, report, &req.comment)
            .map_err(vouch_error)?;
        self.send_claim(key, relays, subject, event, VouchAction::Report)
            .await
    }

    /// The key (made on first use) and the relays, which must not be empty.
    fn vouch_setup(&self) -> Result<(Arc<OperatorKey>, archy_marketplace::RelaySet), NodeError> {
        let relays = self.relay_set();
        if relays.is_empty() {
            return Err(vouch_error(VouchError::NoRelays));
        }
        Ok((self.operator_key_or_create()?, relays))
    }

    async fn send_claim(
        &self,
        key: Arc<OperatorKey>,
        relays: archy_marketplace::RelaySet,
        subject: Subject,
        event: Event,
        action: VouchAction,
    ) -> Result<VouchResponse, NodeError> {
        let published = archy_marketplace::publish_claim(&event, &relays, RELAY_WITHIN)
            .await
            .map_err(vouch_error)?;
        self.store_operator_event(&event).await?;
        let publisher = subject.publisher();
        let app = match &subject {
            Subject::App { app_id, .. } => Some(app_id.clone()),
            _ => None,
        };
        let what = match &subject {
            Subject::Publisher(pk) => npub(pk),
            Subject::App { app_id, .. } => format!("{app_id} by {}", npub(&publisher)),
            Subject::Event { id, .. } => format!("event {id} by {}", npub(&publisher)),
        };
        let note = match action {
            VouchAction::Endorse => format!("endorsed {what}"),
            _ => format!("reported {what}"),
        };
        info!(%action, publisher = %publisher.to_hex(), event = %event.id, "{note}");
        let mut response = VouchResponse {
            action,
            operator: key.npub(),
            subject: publisher.to_hex(),
            app,
            event_id: Some(event.id.to_hex()),
            kind: event.kind.as_u16(),
            fetched: Vec::new(),
            published: results(&published),
            follows: None,
            note,
            score: None,
        };
        self.rescore_for(&mut response).await?;
        Ok(response)
    }

    /// Rescores every listed publisher now (bounded), and puts the subject's new score in
    /// the answer; a rescoring that fails or takes too long is left to the next discovery.
    async fn rescore_for(&self, response: &mut VouchResponse) -> Result<(), NodeError> {
        let rescored = tokio::time::timeout(RESCORE_WITHIN, self.score_publishers()).await;
        match rescored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "rescoring after a vouch failed");
                response.note.push_str(&format!(
                    "; scores were not recomputed ({e}): the next discovery does"
                ));
            }
            Err(_) => {
                warn!("rescoring after a vouch took too long");
                response
                    .note
                    .push_str("; scores were not recomputed in time: the next discovery does");
            }
        }
        response.score = self.score_view(&response.subject).await?;
        Ok(())
    }

    async fn score_view(&self, author: &str) -> Result<Option<archy_api::ScoreRow>, NodeError> {
        Ok(db::score(&self.db, author)
            .await?
            .map(|row| archy_api::ScoreRow {
                author: row.author,
                score: row.score,
                explanation: serde_json::from_value(row.explanation).unwrap_or_default(),
                computed_at: row.computed_at,
            }))
    }

    /// A publisher named by its Nostr key (`npub1…`, hex) or by a did:key a listing binds.
    async fn resolve_publisher(&self, target: &str) -> Result<NostrKey, NodeError> {
        let target = target.trim();
        if target.len() > MAX_TARGET_BYTES {
            return Err(invalid("the target is too long for a key, DID or id"));
        }
        if target.starts_with("did:") {
            let mut authors: Vec<String> = db::market_listings(&self.db)
                .await?
                .into_iter()
                .filter(|l| l.did == target)
                .map(|l| l.author)
                .collect();
            authors.sort();
            authors.dedup();
            return match authors.as_slice() {
                [one] => {
                    archy_marketplace::parse_nostr_key(one).map_err(|e| internal(e.to_string()))
                }
                [] => Err(NodeError::new(
                    ErrorKind::NotFound,
                    format!(
                        "no listing here is signed by {target}, so its Nostr key is unknown: \
                         name the publisher's npub, or `archy market discover` first"
                    ),
                )),
                many => Err(NodeError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{target} is bound to {} Nostr keys ({}): name one",
                        many.len(),
                        many.join(", ")
                    ),
                )),
            };
        }
        archy_marketplace::parse_nostr_key(target).map_err(|_| {
            invalid(format!(
                "{target:?} is not a Nostr public key (npub1… or 64 hex digits) nor a did:key"
            ))
        })
    }

    /// What an endorsement (`event_ok` false) or a report names: a publisher (key, DID), a
    /// listing's event (reports only: hex id of a listing, `note1…`), or an app a listing
    /// names (`notes`, or the local `notes.<16 hex>`).
    async fn resolve_subject(
        &self,
        target: &str,
        publisher: Option<&str>,
        event_ok: bool,
    ) -> Result<Subject, NodeError> {
        let target = target.trim();
        if target.len() > MAX_TARGET_BYTES {
            return Err(invalid("the target is too long for a key, DID or id"));
        }
        if event_ok {
            let listings = db::market_listings(&self.db).await?;
            let by_id = EventId::parse(target).ok().and_then(|id| {
                listings
                    .iter()
                    .find(|l| l.event_id == id.to_hex())
                    .map(|l| (id, l.author.clone()))
            });
            if let Some((id, author)) = by_id {
                let author = archy_marketplace::parse_nostr_key(&author)
                    .map_err(|e| internal(e.to_string()))?;
                return Ok(Subject::Event { id, author });
            }
            if target.starts_with("note1") || target.starts_with("nevent1") {
                return Err(NodeError::new(
                    ErrorKind::NotFound,
                    format!(
                        "{target} is not a listing this node knows: report its publisher instead"
                    ),
                ));
            }
        }
        if target.starts_with("did:") || archy_marketplace::parse_nostr_key(target).is_ok() {
            return self.resolve_publisher(target).await.map(Subject::Publisher);
        }
        // `notes.0123456789abcdef` is how this node names that publisher's app.
        let (app_id, prefix) = match target.split_once('.') {
            Some((app, prefix)) => (app, Some(prefix)),
            None => (target, None),
        };
        archy_registry::grammar::check_name("", app_id).map_err(|e| {
            invalid(format!(
                "{target:?} is not a Nostr key (npub1…, hex), a did:key nor an app id: {}",
                e.rule
            ))
        })?;
        let listing = self.resolve_listing(app_id, publisher.or(prefix)).await?;
        let publisher = archy_marketplace::parse_nostr_key(&listing.author)
            .map_err(|e| internal(e.to_string()))?;
        Ok(Subject::App {
            publisher,
            app_id: listing.app_id,
        })
    }

    /// Keeps an event the relays accepted; a contact list replaces the older ones.
    async fn store_operator_event(&self, event: &Event) -> Result<(), NodeError> {
        let mut tx = self.db.begin().await?;
        if event.kind.as_u16() == 3 {
            sqlx::query("DELETE FROM operator_events WHERE author = ? AND kind = 3")
                .bind(event.pubkey.to_hex())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT OR IGNORE INTO operator_events (id, author, kind, created_at, event, published_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(event.id.to_hex())
        .bind(event.pubkey.to_hex())
        .bind(i64::from(event.kind.as_u16()))
        .bind(event.created_at.as_secs() as i64)
        .bind(event.as_json())
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The events the operator key signed that a relay accepted, for scoring; none while
    /// the node holds no key.
    pub(super) async fn operator_events(&self) -> Result<Vec<Event>, NodeError> {
        let Some(key) = self.operator_key()? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query("SELECT event FROM operator_events WHERE author = ?")
            .bind(key.public_key().to_hex())
            .fetch_all(&self.db)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Event::from_json(r.get::<&str, _>("event")).ok())
            .collect())
    }

    /// This node's last published contact list of `key`.
    async fn own_contact_list(&self, key: &OperatorKey) -> Result<Option<Event>, NodeError> {
        let row = sqlx::query(
            "SELECT event FROM operator_events WHERE author = ? AND kind = 3 \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(key.public_key().to_hex())
        .fetch_optional(&self.db)
        .await?;
        Ok(row.and_then(|r| Event::from_json(r.get::<&str, _>("event")).ok()))
    }
}

#[cfg(test)]
mod tests;
