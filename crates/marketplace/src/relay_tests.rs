//! Publish and discover through real Nostr relays over websocket (nostr-relay-builder's
//! LocalRelay, in process).

use std::time::Duration;

use archy_registry::{Artifact, Manifest, Origin, Publication, Publisher};
use nostr_relay_builder::prelude::*;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(3);
const DEV: &str = "leader monkey parrot ring guide accident before fence cannon height naive bean";

async fn relay() -> (LocalRelay, String) {
    let relay = LocalRelay::new(RelayBuilder::default().addr([127, 0, 0, 1].into()));
    relay.run().await.unwrap();
    let url = relay.url().await.to_string();
    (relay, url)
}

fn publication(dev: &DeveloperIdentity, version: &str, nostr: Option<String>) -> Publication {
    let manifest = Manifest::from_yaml(&format!(
        "id: notes\nname: Notes\nversion: {version}\nartifacts:\n  - {{ name: image, media_type: x }}\ncontainers:\n  - name: web\n    image: {{ artifact: image }}\n"
    ))
    .unwrap();
    Publication::new(
        Publisher {
            did: dev.did(),
            nostr: nostr.unwrap_or_else(|| dev.nostr_public_hex()),
        },
        manifest,
        vec![Artifact {
            name: "image".into(),
            blake3: "cd".repeat(32),
            size: 10,
            media_type: "x".into(),
        }],
        Origin {
            http: "http://127.0.0.1:1".into(),
            iroh: "ef".repeat(32),
        },
        chrono::Utc::now(),
    )
}

fn event_at(dev: &DeveloperIdentity, envelope: &archy_registry::Envelope, at: u64) -> Event {
    let content = String::from_utf8(envelope.to_bytes()).unwrap();
    EventBuilder::new(Kind::Custom(MANIFEST_EVENT_KIND), content)
        .tags([
            Tag::identifier(manifest_d_tag("notes")),
            Tag::hashtag(APP_HASHTAG),
        ])
        .custom_created_at(Timestamp::from_secs(at))
        .sign_with_keys(dev.nostr_keys())
        .unwrap()
}

#[tokio::test]
async fn publish_then_discover_through_a_relay() {
    let (_relay, url) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let envelope = publication(&dev, "1.0.0", None)
        .sign(dev.did_key())
        .unwrap();
    let event = publication_event(&dev, &envelope, "notes").unwrap();
    let accepted = publish(&event, std::slice::from_ref(&url)).await.unwrap();
    assert_eq!(accepted.len(), 1);

    let found = discover(&[url], TIMEOUT).await.unwrap();
    assert!(found.rejected.is_empty(), "{:?}", found.rejected);
    assert_eq!(found.listings.len(), 1);
    let l = &found.listings[0];
    assert_eq!(
        (l.app_id.as_str(), l.author.as_str()),
        ("notes", dev.nostr_public_hex().as_str())
    );
    assert_eq!(l.publication.did(), dev.did_public_key());
    assert_eq!(
        l.publication.publication().manifest.version.to_string(),
        "1.0.0"
    );
}

#[tokio::test]
async fn mismatched_did_and_tampered_manifest_are_rejected_with_reasons() {
    let (_relay, url) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let other = DeveloperIdentity::from_mnemonic(DEV, "", 1).unwrap();

    // The DID binds `other`'s Nostr key, but `dev` signs the event.
    let wrong_binding = publication(&dev, "1.0.0", Some(other.nostr_public_hex()))
        .sign(dev.did_key())
        .unwrap();
    publish(
        &publication_event(&dev, &wrong_binding, "notes").unwrap(),
        std::slice::from_ref(&url),
    )
    .await
    .unwrap();

    // A valid Nostr event around a manifest changed after the DID signed it.
    let mut tampered = publication(&other, "1.0.0", None)
        .sign(other.did_key())
        .unwrap();
    let mut evil = publication(&other, "1.0.0", None);
    evil.manifest.containers[0].privileged = true;
    use base64::Engine as _;
    tampered.payload =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&evil).unwrap());
    publish(
        &publication_event(&other, &tampered, "notes").unwrap(),
        std::slice::from_ref(&url),
    )
    .await
    .unwrap();

    let found = discover(&[url], TIMEOUT).await.unwrap();
    assert!(found.listings.is_empty(), "{:?}", found.listings);
    let reasons: Vec<&str> = found.rejected.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("binds Nostr key")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("0 valid signature")),
        "{reasons:?}"
    );
}

#[test]
fn forged_nostr_signatures_and_ids_are_rejected() {
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let envelope = publication(&dev, "1.0.0", None)
        .sign(dev.did_key())
        .unwrap();
    let good = publication_event(&dev, &envelope, "notes").unwrap();
    assert!(verify_event(&good).is_ok());
    // Same id and signature, other content.
    let mut forged = good.clone();
    forged.content.push(' ');
    assert!(verify_event(&forged).unwrap_err().contains("NIP-01"));
    // Someone else's key claimed as author.
    let mut stolen = good;
    stolen.pubkey = DeveloperIdentity::from_mnemonic(DEV, "", 2)
        .unwrap()
        .nostr_keys()
        .public_key();
    assert!(verify_event(&stolen).unwrap_err().contains("NIP-01"));
}

#[tokio::test]
async fn newest_version_wins_across_relays_and_old_replays() {
    let (_a, url_a) = relay().await;
    let (_b, url_b) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let old = event_at(
        &dev,
        &publication(&dev, "1.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        1_700_000_000,
    );
    let new = event_at(
        &dev,
        &publication(&dev, "2.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        1_700_000_100,
    );
    // Relay A is stale (only the old one); relay B got the new one, then the old one replayed.
    publish(&old, std::slice::from_ref(&url_a)).await.unwrap();
    publish(&new, std::slice::from_ref(&url_b)).await.unwrap();
    let _ = publish(&old, std::slice::from_ref(&url_b)).await;
    let found = discover(&[url_a, url_b], TIMEOUT).await.unwrap();
    assert_eq!(found.listings.len(), 1);
    assert_eq!(
        found.listings[0]
            .publication
            .publication()
            .manifest
            .version
            .to_string(),
        "2.0.0"
    );
}

#[tokio::test]
async fn deleted_publications_disappear() {
    let (_relay, url) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let event = publication_event(
        &dev,
        &publication(&dev, "1.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        "notes",
    )
    .unwrap();
    publish(&event, std::slice::from_ref(&url)).await.unwrap();
    assert_eq!(
        discover(std::slice::from_ref(&url), TIMEOUT)
            .await
            .unwrap()
            .listings
            .len(),
        1
    );
    let deletion = EventBuilder::delete(EventDeletionRequest::new().id(event.id))
        .sign_with_keys(dev.nostr_keys())
        .unwrap();
    publish(&deletion, std::slice::from_ref(&url))
        .await
        .unwrap();
    let found = discover(&[url], TIMEOUT).await.unwrap();
    assert!(
        found.listings.is_empty(),
        "a deleted publication is still listed"
    );
}

#[tokio::test]
async fn a_dead_relay_does_not_stop_discovery() {
    let (_relay, url) = relay().await;
    let dead = format!("ws://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let event = publication_event(
        &dev,
        &publication(&dev, "1.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        "notes",
    )
    .unwrap();
    publish(&event, &[url.clone(), dead.clone()]).await.unwrap();
    let found = discover(&[dead, url], TIMEOUT).await.unwrap();
    assert_eq!(found.listings.len(), 1);
}
