//! The operator key and its vouches through a real relay over websocket (nostr-relay-builder,
//! in process) and a sqlite file, on publish-only nodes: they need no root and no Podman,
//! and install nothing.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use archy_marketplace::DeveloperIdentity;
use archy_marketplace::test_support::{dead_relay, manifest, relay, signed_publication};
use nostr_relay_builder::prelude::{EventBuilder, Keys, Kind, Tag, Timestamp};

use crate::config::NodeConfig;
use crate::node::{ErrorKind, Node};

/// NIP-06's test vector; its key is `17162c92…`.
const OPERATOR: &str =
    "leader monkey parrot ring guide accident before fence cannon height naive bean";
const OPERATOR_HEX: &str = "17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917";
const OTHER: &str = "what bleak badge arrange retreat wolf trade produce cricket blur garlic valid proud rude strong choose busy staff weather area salt hollow arm fade";
const DEV: &str = "legal winner thank year wave sausage worth useful legal winner thank yellow";

fn config(dir: &std::path::Path, relays: Vec<String>) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_owned(),
        publish_only: true,
        relays,
        // Nothing listens there: a publish-only node never asks.
        podman_url: "unix:///nonexistent/archy-test/podman.sock".into(),
        ..NodeConfig::default()
    }
}

async fn node(dir: &std::path::Path, relays: Vec<String>) -> Arc<Node> {
    Node::start(config(dir, relays)).await.unwrap()
}

/// Publishes `notes` 1.0.0 by `dev` to `relay`.
async fn publish_notes(
    dev: &DeveloperIdentity,
    relay: &str,
) -> nostr_relay_builder::prelude::Event {
    let envelope = signed_publication(dev, manifest("notes", "1.0.0"));
    let event = archy_marketplace::publication_event(dev, &envelope, "notes").unwrap();
    archy_marketplace::publish(&event, &[relay.to_owned()])
        .await
        .unwrap();
    event
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A publish-only node starts with no pinned root and no Podman service, pulls no
/// catalog, and refuses every install, update and adoption, a listing's included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_only_node_needs_no_root_nor_podman_and_installs_nothing() {
    let (_relay, url) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    publish_notes(&dev, &url).await;
    let tmp = tempfile::tempdir().unwrap();
    let node = node(tmp.path(), vec![url.clone()]).await;
    let status = node.status().await.unwrap();
    assert!(status.publish_only);
    assert!(status.catalog.is_none());
    let refused = |e: super::NodeError| {
        assert_eq!(e.kind, ErrorKind::Refused, "{e}");
        assert!(e.message.contains("publish-only"), "{e}");
    };
    refused(node.install("hello").await.unwrap_err());
    refused(node.pull_catalog().await.unwrap_err());
    refused(node.adopt("hello").await.unwrap_err());
    // Discovery works (a developer sees their own listing), an install of it does not.
    let found = node.discover_market().await.unwrap();
    assert_eq!(found.listings.len(), 1, "{:?}", found.rejected);
    refused(
        node.install_listing("notes", None, true, &|_| {})
            .await
            .unwrap_err(),
    );
    assert!(node.apps().await.unwrap().is_empty());
    node.shutdown().await;

    // Publish-only with a pinned root is a contradiction, refused by name.
    let err = Node::start(NodeConfig {
        pinned_root: Some(tmp.path().join("root.json")),
        ..config(tmp.path(), Vec::new())
    })
    .await
    .err()
    .unwrap();
    assert!(
        format!("{err:#}").contains("publish_only and pinned_root"),
        "{err:#}"
    );
}

/// The whole path on a node: before a follow the publisher scores 0; a follow by the
/// operator key raises it (and keeps a follow another client made with the same key); an
/// endorsement raises it more, a report lowers it; by DID, an unfollow takes it away. The
/// key lives 0600 in the data dir, survives a restart, and is replaced only on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_key_vouches_and_the_scores_follow() {
    let (_relay, url) = relay().await;
    let relays = vec![url.clone()];
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let publisher = dev.nostr_public_hex();
    let listing = publish_notes(&dev, &url).await;
    let tmp = tempfile::tempdir().unwrap();
    let node = node(tmp.path(), relays.clone()).await;
    assert!(node.operator().await.unwrap().key.is_none());

    node.discover_market().await.unwrap();
    let score = node.market_show("notes").await.unwrap()[0]
        .score
        .clone()
        .unwrap();
    assert_eq!(score.score, 0, "{:?}", score.explanation);

    // The operator's own key, imported (as from a phone's Nostr app).
    let bad = node
        .import_operator_key("leader monkey parrot secretword", false)
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Invalid);
    assert!(!bad.message.contains("secretword"), "{bad}");
    let view = node.import_operator_key(OPERATOR, false).await.unwrap();
    let key = view.key.unwrap();
    assert_eq!(key.hex, OPERATOR_HEX);
    let file = tmp.path().join(super::OPERATOR_KEY_FILE);
    assert_eq!(std::path::PathBuf::from(&key.file), file);
    assert_eq!(mode(&file), 0o600);
    let trusted = node.trusted_keys().await.unwrap();
    assert!(
        trusted
            .iter()
            .any(|k| k.key == OPERATOR_HEX && k.source == archy_api::KeySource::Operator),
        "{trusted:?}"
    );
    let err = node.untrust_key(OPERATOR_HEX).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused, "{err}");

    // Another client with the same key follows a friend first.
    let keys = Keys::parse(&archy_marketplace_secret(OPERATOR)).unwrap();
    let friend = Keys::generate().public_key();
    let elsewhere = EventBuilder::new(Kind::ContactList, "")
        .tags([Tag::public_key(friend)])
        .custom_created_at(Timestamp::from_secs(Timestamp::now().as_secs() - 60))
        .sign_with_keys(&keys)
        .unwrap();
    archy_marketplace::publish(&elsewhere, &relays)
        .await
        .unwrap();

    let followed = node.vouch_follow(&dev.npub(), true, false).await.unwrap();
    assert_eq!(
        followed.follows,
        Some(2),
        "the friend followed elsewhere is kept"
    );
    assert!(followed.event_id.is_some());
    assert!(
        followed.fetched.iter().all(|r| r.ok),
        "{:?}",
        followed.fetched
    );
    assert!(
        followed.published.iter().all(|r| r.ok),
        "{:?}",
        followed.published
    );
    let score = followed.score.unwrap();
    assert_eq!(score.score, 50, "{:?}", score.explanation);
    assert!(
        score.explanation[0]
            .reason
            .starts_with("followed by operator key"),
        "{:?}",
        score.explanation
    );
    let following = node.operator().await.unwrap().follows;
    assert_eq!(following, vec![friend.to_hex(), publisher.clone()]);
    let again = node.vouch_follow(&publisher, true, false).await.unwrap();
    assert!(again.event_id.is_none(), "{}", again.note);
    assert!(again.note.contains("already following"), "{}", again.note);

    let endorsed = node
        .vouch_endorse(&archy_api::EndorseRequest {
            target: "notes".into(),
            labels: vec!["audited".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(endorsed.app.as_deref(), Some("notes"));
    assert_eq!(endorsed.kind, 1985);
    assert_eq!(endorsed.score.unwrap().score, 70);

    let bad = node
        .vouch_report(&archy_api::ReportRequest {
            target: publisher.clone(),
            reason: "rude".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Invalid, "{bad}");
    let reported = node
        .vouch_report(&archy_api::ReportRequest {
            target: listing.id.to_hex(),
            reason: "other".into(),
            comment: "not what it says".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reported.kind, 1984);
    assert_eq!(reported.subject, publisher);
    let score = reported.score.unwrap();
    assert_eq!(score.score, 50, "{:?}", score.explanation);
    assert!(
        score
            .explanation
            .iter()
            .any(|t| t.points == -20 && t.reason.starts_with("reported as other by operator key")),
        "{:?}",
        score.explanation
    );

    // By DID: the listing binds it to the publisher's key.
    let unfollowed = node.vouch_follow(&dev.did(), false, false).await.unwrap();
    assert_eq!(unfollowed.subject, publisher);
    assert_eq!(unfollowed.follows, Some(1));
    assert_eq!(unfollowed.score.unwrap().score, 0);
    assert_eq!(
        node.operator().await.unwrap().follows,
        vec![friend.to_hex()]
    );

    // The key outlives a restart; another replaces it only with `replace`.
    node.shutdown().await;
    let node = self::node(tmp.path(), relays.clone()).await;
    assert_eq!(
        node.operator().await.unwrap().key.unwrap().hex,
        OPERATOR_HEX
    );
    let err = node.import_operator_key(OTHER, false).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
    let replaced = node.import_operator_key(OTHER, true).await.unwrap();
    assert_ne!(replaced.key.unwrap().hex, OPERATOR_HEX);
    assert!(
        replaced.follows.is_empty(),
        "the old key's follows stay with it"
    );
    assert_eq!(mode(&file), 0o600);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("what bleak")
    );
    node.shutdown().await;
}

/// The secret key (hex) NIP-06 derives from `mnemonic`, as another client would hold it.
fn archy_marketplace_secret(mnemonic: &str) -> String {
    DeveloperIdentity::from_mnemonic(mnemonic, "", 0)
        .unwrap()
        .nostr_keys()
        .secret_key()
        .to_secret_hex()
}

/// No relay answers: a follow publishes nothing, and says which relay failed and why; the
/// key is made on this first use anyway (0600, 24 words). No relay configured: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_without_an_answering_relay_publishes_nothing() {
    let dead = dead_relay();
    let tmp = tempfile::tempdir().unwrap();
    let node = node(tmp.path(), vec![dead.clone()]).await;
    let target = Keys::generate().public_key().to_hex();
    let err = node.vouch_follow(&target, true, false).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("no relay answered"), "{err}");
    assert!(
        err.message.contains(dead.trim_start_matches("ws://")),
        "{err}"
    );
    let err = node.vouch_follow(&target, true, true).await.unwrap_err();
    assert!(err.message.contains("no relay accepted"), "{err}");
    assert!(node.operator_events().await.unwrap().is_empty());
    assert!(node.operator().await.unwrap().follows.is_empty());
    let file = tmp.path().join(super::OPERATOR_KEY_FILE);
    assert_eq!(mode(&file), 0o600);
    let words = std::fs::read_to_string(&file).unwrap();
    assert_eq!(words.split_whitespace().count(), 24);
    node.shutdown().await;

    let bare = tempfile::tempdir().unwrap();
    let node = self::node(bare.path(), Vec::new()).await;
    let err = node.vouch_follow(&target, true, false).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused, "{err}");
    assert!(err.message.contains("no relay is configured"), "{err}");
    assert!(node.operator().await.unwrap().key.is_none());
    node.shutdown().await;
}

/// `relay_ca_certs`: a node that trusts the relay's CA discovers and vouches over
/// `wss://`; one that does not is refused, the relay and the TLS failure named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_ca_certs_let_the_node_use_a_tls_relay_of_a_private_ca() {
    let ca = archy_marketplace::tls_fixture::TestCa::new("archy test CA");
    let relay = archy_marketplace::tls_fixture::TlsRelay::start(&ca).await;
    let (plain, wss) = (relay.plain_url.clone(), relay.url.clone());
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    publish_notes(&dev, &plain).await;
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("relay-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let trusting = Node::start(NodeConfig {
        relay_ca_certs: vec![ca_file.clone()],
        ..config(&tmp.path().join("trusting"), vec![wss.clone()])
    })
    .await
    .unwrap();
    // `GET /v1/settings` names the CA files, as the config file gives them.
    let settings = trusting.settings().await.unwrap();
    assert_eq!(settings.relay_ca_certs, [ca_file.display().to_string()]);
    let found = trusting.discover_market().await.unwrap();
    assert!(found.relay_errors.is_empty(), "{:?}", found.relay_errors);
    assert_eq!(found.listings.len(), 1, "{:?}", found.rejected);
    let followed = trusting
        .vouch_follow(&dev.npub(), true, false)
        .await
        .unwrap();
    assert!(
        followed.published.iter().all(|r| r.ok) && followed.published.len() == 1,
        "{followed:?}"
    );

    // Without the CA: refused, and the market status says which relay and why.
    let refusing = node(&tmp.path().join("refusing"), vec![wss.clone()]).await;
    let found = refusing.discover_market().await.unwrap();
    assert!(found.listings.is_empty());
    let (relay_url, why) = &found.relay_errors[0];
    assert!(relay_url.starts_with(&wss), "{:?}", found.relay_errors);
    assert!(why.contains("invalid peer certificate"), "{why}");
    let err = refusing
        .vouch_follow(&dev.npub(), true, false)
        .await
        .unwrap_err();
    assert!(
        err.message.contains(&wss) && err.message.contains("invalid peer certificate"),
        "{err}"
    );

    // A CA file that is not one stops the node at start, naming the setting and the file.
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "nothing\n").unwrap();
    let err = Node::start(NodeConfig {
        relay_ca_certs: vec![junk],
        ..config(&tmp.path().join("junk"), vec![wss])
    })
    .await
    .err()
    .unwrap();
    let err = format!("{err:#}");
    assert!(
        err.contains("relay_ca_certs") && err.contains("junk.pem"),
        "{err}"
    );
}

/// The outbox model on a node: the developer publishes to relay B only and announces B in
/// its relay list (NIP-65) on relay A; the node knows relay A alone. Before the operator
/// follows the developer, B is never asked (no stranger's list makes the node connect
/// anywhere); after the follow, the next pass lists the app through B, and the market
/// status names B. With the default (strict) config, B, on loopback, is refused and said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_publisher_is_found_on_the_relays_it_announces() {
    let (_a, a) = relay().await;
    let (_b, b) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    publish_notes(&dev, &b).await;
    let list = archy_marketplace::relay_list_event(&dev, std::slice::from_ref(&b), None)
        .unwrap()
        .unwrap();
    archy_marketplace::publish(&list, std::slice::from_ref(&a))
        .await
        .unwrap();
    let b_used = |status: &archy_api::MarketStatus| {
        status
            .outbox
            .iter()
            .any(|o| o.relay.trim_end_matches('/') == b.trim_end_matches('/'))
    };

    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig {
        outbox_allow_private: true,
        ..config(&tmp.path().join("lax"), vec![a.clone()])
    })
    .await
    .unwrap();
    let found = node.discover_market().await.unwrap();
    assert!(found.listings.is_empty() && found.outbox.is_empty());
    node.vouch_follow(&dev.npub(), true, false).await.unwrap();
    let found = node.discover_market().await.unwrap();
    assert_eq!(found.listings.len(), 1, "{:?}", found.relay_errors);
    assert!(found.relay_errors.is_empty(), "{:?}", found.relay_errors);
    let listed = node.market().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].author, dev.nostr_public_hex());
    let status = node.status().await.unwrap().market.unwrap();
    assert!(b_used(&status), "{status:?}");
    assert_eq!(status.outbox[0].publishers, [dev.nostr_public_hex()]);
    node.shutdown().await;

    // The default config takes no relay on a loopback or private address.
    let strict = self::node(&tmp.path().join("strict"), vec![a.clone()]).await;
    strict.vouch_follow(&dev.npub(), true, false).await.unwrap();
    let found = strict.discover_market().await.unwrap();
    assert!(found.listings.is_empty());
    let status = strict.status().await.unwrap().market.unwrap();
    assert!(!b_used(&status), "{status:?}");
    assert_eq!(status.outbox_refused.len(), 1, "{status:?}");
    assert!(
        status.outbox_refused[0].reason.contains("non-public"),
        "{status:?}"
    );
    strict.shutdown().await;
}

/// Only publishers whose score reaches the gate (or that the operator key follows) lend
/// their relays to a pass: one scored just below it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_followed_or_gated_publishers_lend_their_relays() {
    let tmp = tempfile::tempdir().unwrap();
    let node = node(tmp.path(), Vec::new()).await;
    let (high, low) = (Keys::generate().public_key(), Keys::generate().public_key());
    let none = serde_json::json!([]);
    crate::db::store_score(&node.db, &high.to_hex(), 50, &none)
        .await
        .unwrap();
    crate::db::store_score(&node.db, &low.to_hex(), 49, &none)
        .await
        .unwrap();
    assert_eq!(node.outbox_publishers().await.unwrap(), [high]);
    node.shutdown().await;
}

/// `min_peer_rate_bytes_per_sec` and `detour_budget_seconds` make the fetch policy; a rate
/// of 0, which would count every moment with a peer as detour, is refused by name.
#[test]
fn the_peer_rate_and_detour_budget_reach_the_fetch_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let fetch_policy = crate::node::fetch_policy;
    let set = NodeConfig {
        min_peer_rate_bytes_per_sec: 256 * 1024,
        detour_budget_seconds: 30,
        ..config(tmp.path(), Vec::new())
    };
    let policy = fetch_policy(&set).unwrap();
    assert_eq!(policy.min_rate_bytes_per_sec, 256 * 1024);
    assert_eq!(policy.detour_budget, std::time::Duration::from_secs(30));
    let default = fetch_policy(&config(tmp.path(), Vec::new())).unwrap();
    assert_eq!(
        default.min_rate_bytes_per_sec,
        archy_swarm::FetchPolicy::default().min_rate_bytes_per_sec
    );
    let zero = NodeConfig {
        min_peer_rate_bytes_per_sec: 0,
        ..config(tmp.path(), Vec::new())
    };
    let err = fetch_policy(&zero).unwrap_err();
    assert!(
        format!("{err:#}").contains("min_peer_rate_bytes_per_sec = 0"),
        "{err:#}"
    );
}

/// `upload_limit_bytes_per_sec` reaches the swarm (whose limiter the swarm's own tests
/// measure); 0, which would serve nothing, is refused by name.
#[test]
fn the_upload_limit_reaches_the_swarm_and_zero_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let swarm_config = crate::node::swarm_config;
    let limited = NodeConfig {
        upload_limit_bytes_per_sec: Some(2_250_000),
        ..config(tmp.path(), Vec::new())
    };
    let unlimited = config(tmp.path(), Vec::new());
    assert_eq!(
        swarm_config(&limited).unwrap().upload_limit_bytes_per_sec,
        Some(2_250_000)
    );
    assert_eq!(
        swarm_config(&unlimited).unwrap().upload_limit_bytes_per_sec,
        None
    );
    let zero = NodeConfig {
        upload_limit_bytes_per_sec: Some(0),
        ..config(tmp.path(), Vec::new())
    };
    let err = swarm_config(&zero).unwrap_err();
    assert!(
        format!("{err:#}").contains("upload_limit_bytes_per_sec = 0"),
        "{err:#}"
    );
}
