//! The marketplace against a relay nobody here wrote: the PyPI `nostr-relay` (Python,
//! sqlite), started as its own process ([`PythonRelay`]). Publish from a developer's node
//! with `archy app publish`, discover, score through the relay, install into rootless
//! Podman, update from the same publisher, unpublish with `archy app unpublish`.
//!
//! What that relay does differently from nostr-relay-builder, and what the test holds to
//! whatever it does:
//! - NIP-33: it replaces an addressable event only with a strictly newer one of the same
//!   (pubkey, kind, d); an older copy sent later is stored beside it. The node keeps the
//!   newest per (publisher, app) and records every version it saw in its own history.
//! - NIP-09: it deletes the events a kind-5 names by `e` only; an `a` coordinate is kept as
//!   a tag and not acted on, so a version sent again after the withdrawal is served again.
//!   The kind-5 event itself is served, and the node honours its coordinate: neither the node
//!   that saw the withdrawal nor a fresh one lists the app again.
//! - `until` is exclusive (`created_at < until`, NIP-01 says inclusive): paging by the
//!   oldest second of a page would skip that second's events past the page; the walk fetches
//!   each page's last second whole ([`paging_skips_nothing_on_a_relay_whose_until_is_exclusive`]).
//! - It refuses an event whose content is over `max_event_size` (4096 by default), saying
//!   "invalid: 280 characters should be enough for anybody"; a publication is under it.

use super::market::{
    DEV_MNEMONIC, archy_publish, archy_unpublish, mnemonic_file, operator_node, third_party_hello,
};
use super::*;
use archy_marketplace::DeveloperIdentity;

/// nostr-relay's own default.
const DEFAULT_MAX_EVENT_SIZE: usize = 4096;

/// What one relay sent in a pass: nothing refused, nothing forged, no failed request.
fn relay_clean(found: &archy_marketplace::Discovery, relay: &str) {
    let report = found
        .relays
        .iter()
        .find(|(url, _)| url.trim_end_matches('/') == relay)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no report for {relay}: {:?}", found.relays));
    assert!(report.errors.is_empty(), "{relay}: {:?}", report.errors);
    assert_eq!((report.forged, report.rejected), (0, 0), "{report:?}");
    assert!(found.relay_errors.is_empty(), "{:?}", found.relay_errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_relay_carries_publish_discover_score_install_update_unpublish() {
    let _podman = PODMAN.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let relay = PythonRelay::start(&tmp.path().join("relay"), DEFAULT_MAX_EVENT_SIZE).await;
    let relay_url = relay.url.clone();

    // The first-party origin: hello's catalog, its image on iroh.
    let origin = TestOrigin::start(tmp.path()).await;
    let (url, root) = (origin.url.clone(), origin.root.clone());

    // Publish: `archy app publish` from the developer's node, its origin.
    let dev_dir = tmp.path().join("dev");
    std::fs::create_dir_all(&dev_dir).unwrap();
    let dev_node =
        NodeProcess::start(&dev_dir, &url, &root, "blobs_listen = \"127.0.0.1:0\"\n").await;
    let mnemonic = mnemonic_file(&dev_dir);
    let dev = DeveloperIdentity::from_mnemonic(DEV_MNEMONIC, "", 0).unwrap();
    let local_id = archy_registry::namespaced_id("hello", &dev.nostr_public_hex());
    let published = archy_publish(
        &dev_node.api,
        &third_party_hello(&dev_dir, |m| m),
        &mnemonic,
        &relay_url,
    );
    let stdout = String::from_utf8_lossy(&published.stdout);
    assert!(
        published.status.success(),
        "publish to {relay_url} failed: {stdout}{}\nrelay log:\n{}",
        String::from_utf8_lossy(&published.stderr),
        relay.log()
    );
    assert!(stdout.contains(&local_id), "{stdout}");
    let (held, errors) = archy_marketplace::own_publications(
        std::slice::from_ref(&relay_url),
        &dev.nostr_keys().public_key(),
        "hello",
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(held.len(), 1, "{held:?}");
    let first_event = held[0].clone();

    // Discover: the operator's node finds it, checks it, and nothing from the relay is
    // refused or forged.
    remove_leftovers(&local_id).await;
    let node = operator_node(&tmp.path().join("node"), &url, &root, &relay_url).await;
    let found = node.discover_market().await.unwrap();
    relay_clean(&found, &relay_url);
    assert_eq!(found.listings.len(), 1, "{:?}", found.rejected);
    let shown = node.market_show("hello").await.unwrap();
    assert_eq!(shown[0].local_id.as_deref(), Some(local_id.as_str()));
    assert_eq!(shown[0].score.as_ref().map(|s| s.score), Some(0));

    // Score through the relay: another key of the operator's follows the developer (its
    // contact list is only on the relay), and the operator key endorses the app (NIP-32,
    // sent to the relay by the node).
    let trusted = nostr_relay_builder::prelude::Keys::generate();
    node.trust_key(&trusted.public_key().to_hex())
        .await
        .unwrap();
    let follow = nostr_relay_builder::prelude::EventBuilder::contact_list([
        nostr_relay_builder::prelude::Contact::new(dev.nostr_keys().public_key()),
    ])
    .sign_with_keys(&trusted)
    .unwrap();
    archy_marketplace::publish(&follow, std::slice::from_ref(&relay_url))
        .await
        .unwrap();
    let found = node.discover_market().await.unwrap();
    relay_clean(&found, &relay_url);
    let score = node.market_show("hello").await.unwrap()[0]
        .score
        .clone()
        .unwrap();
    assert_eq!(score.score, 50, "{:?}", score.explanation);
    let endorsed = node
        .vouch_endorse(&archy_api::EndorseRequest {
            target: "hello".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(endorsed.published.len(), 1, "{endorsed:?}");
    assert!(endorsed.published[0].ok, "{:?}", endorsed.published);
    // What the relay now holds, read back by code that knows nothing of the node: the
    // follow and the label both count.
    let operator = archy_marketplace::parse_nostr_key(&endorsed.operator).unwrap();
    let fetched = archy_marketplace::fetch_trust_events(
        std::slice::from_ref(&relay_url),
        &[trusted.public_key(), operator],
        &[dev.nostr_keys().public_key()],
        &archy_marketplace::TrustFetchLimits::default(),
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(
        fetched.relay_errors.is_empty(),
        "{:?}",
        fetched.relay_errors
    );
    let from_relay = fetched
        .inputs
        .scores(
            &[trusted.public_key(), operator],
            &archy_marketplace::ScoreConfig::default(),
        )
        .score(&dev.nostr_keys().public_key());
    assert!(from_relay.score > 50, "{:?}", from_relay.explanation);
    assert_eq!(
        Some(from_relay.score),
        node.market_show("hello").await.unwrap()[0]
            .score
            .as_ref()
            .map(|s| s.score)
    );

    // Install: over iroh from the developer's node, into rootless Podman.
    let app = node
        .install_listing("hello", None, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        (app.id.as_str(), app.state.as_str()),
        (local_id.as_str(), "running")
    );
    assert!(
        reqwest::get("http://127.0.0.1:18090/")
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // Update: the developer publishes 1.1.0; the relay replaces 1.0.0 with it (NIP-33).
    let newer = archy_publish(
        &dev_node.api,
        &third_party_hello(&dev_dir, |m| m.replace("version: 1.0.0", "version: 1.1.0")),
        &mnemonic,
        &relay_url,
    );
    assert!(
        newer.status.success(),
        "{}",
        String::from_utf8_lossy(&newer.stderr)
    );
    let (held, _) = archy_marketplace::own_publications(
        std::slice::from_ref(&relay_url),
        &dev.nostr_keys().public_key(),
        "hello",
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(held.len(), 1, "NIP-33 keeps the newest only: {held:?}");
    assert_ne!(held[0].id, first_event.id);
    let found = node.discover_market().await.unwrap();
    relay_clean(&found, &relay_url);
    let standing = node.app(&local_id).await.unwrap().market.unwrap();
    assert_eq!(standing.newer_version.as_deref(), Some("1.1.0"));
    let updated = node.update(&local_id, false).await.unwrap();
    assert_eq!(updated.version, "1.1.0");
    assert!(
        reqwest::get("http://127.0.0.1:18090/")
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // Unpublish: `archy app unpublish`, accepted by the relay, which drops the event by id.
    let out = archy_unpublish("hello", &mnemonic, &[&relay_url], true);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["relays"][0]["accepted"], true, "{report}");
    let deletion = report["event_id"].as_str().unwrap().to_owned();
    let found = node.discover_market().await.unwrap();
    relay_clean(&found, &relay_url);
    assert!(node.market().await.unwrap().is_empty());
    let app = node.app(&local_id).await.unwrap();
    assert_eq!(app.state, "running", "a withdrawn app keeps running");
    let withdrawn = app.market.unwrap().withdrawn;
    assert_eq!(
        withdrawn.as_ref().map(|w| w.deletion.as_str()),
        Some(deletion.as_str())
    );
    let err = node.update(&local_id, true).await.unwrap_err();
    assert!(err.message.contains("withdrew hello"), "{err}");

    // The relay ignores the deletion's coordinate: 1.0.0, sent again, is served again. The
    // node holds to the withdrawal, and so does a node that never saw the app listed.
    let resent =
        archy_marketplace::publish_report(&first_event, std::slice::from_ref(&relay_url)).await;
    assert!(resent.failed.is_empty(), "{resent:?}");
    let found = node.discover_market().await.unwrap();
    relay_clean(&found, &relay_url);
    assert!(found.listings.is_empty(), "{:?}", found.listings);
    assert!(node.market().await.unwrap().is_empty(), "resurrected");
    let fresh = operator_node(&tmp.path().join("fresh"), &url, &root, &relay_url).await;
    let found = fresh.discover_market().await.unwrap();
    relay_clean(&found, &relay_url);
    assert!(found.listings.is_empty(), "{:?}", found.listings);
    assert_eq!(found.withdrawn.len(), 1, "{:?}", found.withdrawn);
    assert_eq!(found.withdrawn[0].withdrawal.deletion, deletion);
    fresh.shutdown().await;

    node.uninstall(&local_id, true).await.unwrap();
    assert!(!podman_has_app(&local_id).await);
    node.shutdown().await;
    origin.server.abort();
    drop(dev_node);
    drop(relay);
}

/// Paging against this relay, whose `until` is exclusive: ten publications two to a second,
/// walked three to a page, so pages end inside a second. All ten are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_skips_nothing_on_a_relay_whose_until_is_exclusive() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = PythonRelay::start(&tmp.path().join("relay"), DEFAULT_MAX_EVENT_SIZE).await;
    let did = archy_registry::SecretKey::from_bytes(&[7; 32]);
    let keys = nostr_relay_builder::prelude::Keys::generate();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    for i in 0..10u64 {
        let event = archy_marketplace::test_support::publication_event_at(
            &did,
            &keys,
            &format!("app{i}"),
            "1.0.0",
            now - 60 + i / 2,
        );
        archy_marketplace::publish(&event, std::slice::from_ref(&relay.url))
            .await
            .unwrap();
    }
    let limits = archy_marketplace::DiscoveryLimits {
        page_size: 3,
        ..archy_marketplace::DiscoveryLimits::default()
    };
    let found = archy_marketplace::discover_with(
        std::slice::from_ref(&relay.url),
        &[],
        &[],
        &limits,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    relay_clean(&found, &relay.url);
    assert!(!found.truncated);
    let mut apps: Vec<&str> = found.listings.iter().map(|l| l.app_id.as_str()).collect();
    apps.sort_unstable();
    assert_eq!(
        apps,
        [
            "app0", "app1", "app2", "app3", "app4", "app5", "app6", "app7", "app8", "app9"
        ]
    );
}
