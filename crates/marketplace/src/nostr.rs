//! NIP-78 (kind 30078) events carrying DID-signed publications: building them, checking
//! them (NIP-01 id and signature, DID signature, DID ↔ Nostr key binding, manifest), and
//! discovering them through relays, newest per (author, app), NIP-09 deletions honoured.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use archy_registry::{Envelope, VerifiedPublication};
use nostr_sdk::prelude::*;
use tracing::debug;

use crate::{DeveloperIdentity, Error, MANIFEST_EVENT_KIND, manifest_d_tag};

/// The indexed `t` tag that lets relays filter Archipelago publications.
pub const APP_HASHTAG: &str = "archy-app";

/// A publication found on a relay that passed every check.
#[derive(Debug, Clone)]
pub struct Listing {
    pub event_id: String,
    /// Nostr public key (hex) of the publisher.
    pub author: String,
    pub app_id: String,
    pub created_at: u64,
    pub publication: VerifiedPublication,
    /// The DID-signed envelope as received, for storage and re-verification.
    pub envelope: String,
}

/// What a discovery pass found.
#[derive(Debug, Default)]
pub struct Discovery {
    pub listings: Vec<Listing>,
    /// Events refused, with the reason (event id, reason).
    pub rejected: Vec<(String, String)>,
}

/// The kind-30078 event for a publication envelope, signed by the developer's Nostr key.
pub fn publication_event(
    identity: &DeveloperIdentity,
    envelope: &Envelope,
    app_id: &str,
) -> Result<Event, Error> {
    let content =
        String::from_utf8(envelope.to_bytes()).map_err(|e| Error::Nostr(e.to_string()))?;
    EventBuilder::new(Kind::Custom(MANIFEST_EVENT_KIND), content)
        .tags([
            Tag::identifier(manifest_d_tag(app_id)),
            Tag::hashtag(APP_HASHTAG),
        ])
        .sign_with_keys(identity.nostr_keys())
        .map_err(|e| Error::Nostr(e.to_string()))
}

/// Every check a node applies to an event before it lists the app.
pub fn verify_event(event: &Event) -> Result<Listing, String> {
    event
        .verify()
        .map_err(|e| format!("NIP-01 id or signature invalid: {e}"))?;
    if event.kind != Kind::Custom(MANIFEST_EVENT_KIND) {
        return Err(format!(
            "kind {} is not {MANIFEST_EVENT_KIND}",
            event.kind.as_u16()
        ));
    }
    let d = event.tags.identifier().ok_or("no d tag")?;
    let app_id = d
        .strip_prefix("archy:app:")
        .ok_or_else(|| format!("d tag {d:?} is not archy:app:<id>"))?;
    let publication = VerifiedPublication::verify(event.content.as_bytes())
        .map_err(|e| format!("publication: {e}"))?;
    let p = publication.publication();
    if p.publisher.nostr != event.pubkey.to_hex() {
        return Err(format!(
            "the DID {} binds Nostr key {}, but the event is signed by {}",
            p.publisher.did,
            p.publisher.nostr,
            event.pubkey.to_hex()
        ));
    }
    if p.manifest.id != app_id {
        return Err(format!(
            "d tag names {app_id:?}, the manifest {:?}",
            p.manifest.id
        ));
    }
    Ok(Listing {
        event_id: event.id.to_hex(),
        author: event.pubkey.to_hex(),
        app_id: app_id.to_owned(),
        created_at: event.created_at.as_secs(),
        publication,
        envelope: event.content.clone(),
    })
}

async fn connected_client(relays: &[String], keys: Option<Keys>) -> Result<Client, Error> {
    let client = match keys {
        Some(keys) => Client::new(keys),
        None => Client::default(),
    };
    for relay in relays {
        client
            .add_relay(relay.as_str())
            .await
            .map_err(|e| Error::Nostr(format!("relay {relay}: {e}")))?;
    }
    client.connect().await;
    Ok(client)
}

/// Sends a publication event to every relay; returns the relays that accepted it. Fails
/// only when none did.
pub async fn publish(event: &Event, relays: &[String]) -> Result<Vec<String>, Error> {
    let client = connected_client(relays, None).await?;
    client.wait_for_connection(Duration::from_secs(5)).await;
    let output = client
        .send_event(event)
        .await
        .map_err(|e| Error::Nostr(format!("publishing: {e}")))?;
    client.disconnect().await;
    if output.success.is_empty() {
        return Err(Error::Nostr(format!(
            "no relay accepted the event: {:?}",
            output.failed
        )));
    }
    Ok(output.success.iter().map(|u| u.to_string()).collect())
}

/// Fetches publications from the relays (those that answer within `timeout`), keeps the
/// newest valid one per (author, app), and drops the ones their author deleted (NIP-09).
/// A relay that is down or sends garbage costs its share only.
pub async fn discover(relays: &[String], timeout: Duration) -> Result<Discovery, Error> {
    let client = connected_client(relays, None).await?;
    client.wait_for_connection(timeout).await;
    let filter = Filter::new()
        .kind(Kind::Custom(MANIFEST_EVENT_KIND))
        .hashtag(APP_HASHTAG);
    let events = client
        .fetch_events(filter, timeout)
        .await
        .map_err(|e| Error::Nostr(format!("fetching: {e}")))?;
    let mut discovery = Discovery::default();
    let mut newest: BTreeMap<(String, String), Listing> = BTreeMap::new();
    for event in events.iter() {
        match verify_event(event) {
            Ok(listing) => {
                let key = (listing.author.clone(), listing.app_id.clone());
                let keep = newest.get(&key).is_none_or(|old| {
                    (listing.created_at, &listing.event_id) > (old.created_at, &old.event_id)
                });
                if keep {
                    newest.insert(key, listing);
                }
            }
            Err(reason) => {
                debug!(event = %event.id, %reason, "publication rejected");
                discovery.rejected.push((event.id.to_hex(), reason));
            }
        }
    }
    let authors: Vec<PublicKey> = newest
        .values()
        .filter_map(|l| PublicKey::from_hex(&l.author).ok())
        .collect();
    if !authors.is_empty() {
        let deletions = client
            .fetch_events(
                Filter::new().kind(Kind::EventDeletion).authors(authors),
                timeout,
            )
            .await
            .map_err(|e| Error::Nostr(format!("fetching deletions: {e}")))?;
        let mut deleted_ids: HashSet<(String, String)> = HashSet::new();
        let mut deleted_coords: Vec<(String, String, u64)> = Vec::new();
        for del in deletions.iter().filter(|d| d.verify().is_ok()) {
            let author = del.pubkey.to_hex();
            for id in del.tags.event_ids() {
                deleted_ids.insert((author.clone(), id.to_hex()));
            }
            for c in del.tags.coordinates() {
                // A deletion only speaks for its own author's events.
                if c.public_key == del.pubkey {
                    deleted_coords.push((
                        author.clone(),
                        c.identifier.clone(),
                        del.created_at.as_secs(),
                    ));
                }
            }
        }
        newest.retain(|(author, app), l| {
            let by_id = deleted_ids.contains(&(author.clone(), l.event_id.clone()));
            let d = manifest_d_tag(app);
            let by_coord = deleted_coords
                .iter()
                .any(|(a, ident, at)| a == author && *ident == d && *at >= l.created_at);
            !(by_id || by_coord)
        });
    }
    client.disconnect().await;
    discovery.listings = newest.into_values().collect();
    Ok(discovery)
}
