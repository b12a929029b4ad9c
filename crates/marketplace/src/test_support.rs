//! Builders shared by the unit and relay tests.

use archy_registry::{Artifact, Manifest, Origin, Publication, Publisher, SecretKey};
use nostr_sdk::prelude::*;

use crate::{APP_HASHTAG, MANIFEST_EVENT_KIND, manifest_d_tag};

/// A publication of `app` at `version` by the DID `did`, binding the Nostr key `nostr`.
pub fn publication(did: &SecretKey, nostr: &PublicKey, app: &str, version: &str) -> Publication {
    let manifest = Manifest::from_yaml(&format!(
        "id: {app}\nname: App\nversion: {version}\nartifacts:\n  - {{ name: image, media_type: x }}\ncontainers:\n  - name: web\n    image: {{ artifact: image }}\n"
    ))
    .unwrap();
    Publication::new(
        Publisher {
            did: did.public().did_key(),
            nostr: nostr.to_hex(),
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
