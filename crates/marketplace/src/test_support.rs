//! Builders shared by the unit and relay tests of this crate and, with the `test-support`
//! feature, of others: publications whose artifacts are nowhere, the events carrying them,
//! vouches, and an in-process relay.

use archy_registry::{Artifact, Envelope, Manifest, Origin, Publication, Publisher, SecretKey};
use nostr_relay_builder::prelude::{LocalRelay, RelayBuilder};
use nostr_sdk::prelude::*;

use crate::{APP_HASHTAG, DeveloperIdentity, MANIFEST_EVENT_KIND, manifest_d_tag};

/// A relay (nostr-relay-builder's, in process) on a free loopback port, and its URL.
pub async fn relay() -> (LocalRelay, String) {
    let relay = LocalRelay::new(RelayBuilder::default().addr([127, 0, 0, 1].into()));
    relay.run().await.expect("a local relay starts");
    let url = relay.url().await.to_string();
    (relay, url)
}

/// A relay address nothing listens on.
pub fn dead_relay() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    format!("ws://127.0.0.1:{port}")
}

/// The manifest of a small app `app` at `version`: one container of one image.
pub fn manifest(app: &str, version: &str) -> Manifest {
    Manifest::from_yaml(&format!(
        "id: {app}\nname: App\nversion: {version}\nartifacts:\n  - {{ name: image, media_type: x }}\ncontainers:\n  - name: web\n    image: {{ artifact: image }}\n"
    ))
    .expect("the test manifest is valid")
}

/// `manifest` published by the DID `did`, binding the Nostr key `nostr`, unsigned: each
/// artifact the manifest declares is 1 MB whose bytes are nowhere (its origin is a closed
/// port). What listings and the store show of a third-party app, never something a node
/// could fetch.
pub fn unfetchable_publication(
    did: &SecretKey,
    nostr: &PublicKey,
    manifest: Manifest,
) -> Publication {
    let artifacts = manifest
        .artifacts
        .iter()
        .map(|a| Artifact {
            name: a.name.clone(),
            blake3: "cd".repeat(32),
            size: 1_000_000,
            media_type: a.media_type.clone(),
        })
        .collect();
    Publication::new(
        Publisher {
            did: did.public().did_key(),
            nostr: nostr.to_hex(),
        },
        manifest,
        artifacts,
        Origin {
            http: "http://127.0.0.1:1".into(),
            iroh: "ef".repeat(32),
        },
        chrono::Utc::now(),
    )
}

/// [`unfetchable_publication`] of `manifest` by `dev`, signed by its DID.
pub fn signed_publication(dev: &DeveloperIdentity, manifest: Manifest) -> Envelope {
    unfetchable_publication(dev.did_key(), &dev.nostr_keys().public_key(), manifest)
        .sign(dev.did_key())
        .expect("a test publication signs")
}

/// A publication of `app` at `version` by the DID `did`, binding the Nostr key `nostr`.
pub fn publication(did: &SecretKey, nostr: &PublicKey, app: &str, version: &str) -> Publication {
    unfetchable_publication(did, nostr, manifest(app, version))
}

/// The kind-30078 event of a publication signed by `did` and `keys`, created at `at`.
pub fn publication_event_at(
    did: &SecretKey,
    keys: &Keys,
    app: &str,
    version: &str,
    at: u64,
) -> Event {
    let envelope = publication(did, &keys.public_key(), app, version)
        .sign(did)
        .unwrap();
    envelope_event_at(&envelope, keys, app, at)
}

/// The kind-30078 event carrying `envelope` (as it is, even if tampered) for `app`,
/// signed by `keys` and created at `at`.
pub fn envelope_event_at(
    envelope: &archy_registry::Envelope,
    keys: &Keys,
    app: &str,
    at: u64,
) -> Event {
    EventBuilder::new(
        Kind::Custom(MANIFEST_EVENT_KIND),
        String::from_utf8(envelope.to_bytes()).unwrap(),
    )
    .tags([
        Tag::identifier(manifest_d_tag(app)),
        Tag::hashtag(APP_HASHTAG),
    ])
    .custom_created_at(Timestamp::from_secs(at))
    .sign_with_keys(keys)
    .unwrap()
}

pub fn follows(who: &Keys, whom: &[PublicKey], at: u64) -> Event {
    EventBuilder::contact_list(whom.iter().map(|pk| Contact::new(*pk)))
        .custom_created_at(Timestamp::from_secs(at))
        .sign_with_keys(who)
        .unwrap()
}

pub fn report(who: &Keys, whom: &PublicKey, what: nostr_sdk::nips::nip56::Report) -> Event {
    EventBuilder::report([Tag::public_key_report(*whom, what)], "")
        .sign_with_keys(who)
        .unwrap()
}

pub fn endorse(who: &Keys, whom: &PublicKey) -> Event {
    EventBuilder::label(crate::LABEL_NAMESPACE, crate::ENDORSE_LABEL)
        .tag(Tag::public_key(*whom))
        .sign_with_keys(who)
        .unwrap()
}
