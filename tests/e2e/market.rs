//! Third-party apps end to end: `archy app publish` from a developer's own node (its origin),
//! discovery through a real Nostr relay over websocket, trust gating, the sandbox policy and
//! namespacing, and the install into rootless Podman.

use super::*;
use archy_marketplace::DeveloperIdentity;
use nostr_relay_builder::prelude::{EventBuilder, EventDeletionRequest, LocalRelay, RelayBuilder};

pub(super) const DEV_MNEMONIC: &str =
    "legal winner thank year wave sausage worth useful legal winner thank yellow";

/// Hello's manifest as a third party would ship it: same id as the first-party app (an
/// attempt to shadow it), its own host port.
pub(super) fn third_party_hello(
    dir: &std::path::Path,
    edit: impl Fn(String) -> String,
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("apps/hello/manifest.yml"))
        .unwrap()
        .replace("host: 18080", "host: 18090");
    let path = dir.join(format!("manifest-{}.yml", rand_suffix()));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// The operator's node: first-party catalog from `origin`, discovery on `relay`.
pub(super) async fn operator_node(
    dir: &std::path::Path,
    origin: &str,
    root: &std::path::Path,
    relay: &str,
) -> std::sync::Arc<archy_node::Node> {
    operator_node_on(dir, origin, root, &[relay.to_owned()]).await
}

pub(super) async fn operator_node_on(
    dir: &std::path::Path,
    origin: &str,
    root: &std::path::Path,
    relays: &[String],
) -> std::sync::Arc<archy_node::Node> {
    archy_node::Node::start(archy_node::NodeConfig {
        relays: relays.to_vec(),
        ..node_config(dir, origin, root)
    })
    .await
    .unwrap()
}

/// `archy app unpublish ID` with the developer's mnemonic, to `relays`.
pub(super) fn archy_unpublish(
    id: &str,
    mnemonic: &std::path::Path,
    relays: &[&str],
    json: bool,
) -> std::process::Output {
    let mut command = std::process::Command::new(archy_binary());
    if json {
        command.arg("--json");
    }
    command
        .args(["app", "unpublish", id, "--mnemonic-file"])
        .arg(mnemonic);
    for relay in relays {
        command.args(["--relay", relay]);
    }
    command.output().unwrap()
}

/// A 0600 file holding the developer's mnemonic, as `archy dev init` writes it.
pub(super) fn mnemonic_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("dev.mnemonic");
    std::fs::write(&path, DEV_MNEMONIC).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// A loopback URL nothing listens on.
fn dead_relay() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("ws://127.0.0.1:{}", l.local_addr().unwrap().port())
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Publishes without the CLI (and so without its checks), as a hostile developer could.
/// Returns the DID-signed envelope and the event that carried it.
pub(super) async fn publish_directly(
    who: &DeveloperIdentity,
    manifest: archy_registry::Manifest,
    origin_http: &str,
    origin_iroh: &str,
    relay: &str,
) -> (
    archy_registry::Envelope,
    nostr_relay_builder::prelude::Event,
) {
    let image = artifacts_dir().join("hello/image.tar");
    let app_id = manifest.id.clone();
    let envelope = archy_registry::Publication::new(
        archy_registry::Publisher {
            did: who.did(),
            nostr: who.nostr_public_hex(),
        },
        manifest,
        vec![archy_registry::Artifact {
            name: "image".into(),
            blake3: blake3::hash(&std::fs::read(&image).unwrap())
                .to_hex()
                .to_string(),
            size: std::fs::metadata(&image).unwrap().len(),
            media_type: archy_registry::manifest::OCI_ARCHIVE_MEDIA_TYPE.into(),
        }],
        archy_registry::Origin {
            http: origin_http.to_owned(),
            iroh: origin_iroh.to_owned(),
        },
        chrono::Utc::now(),
    )
    .sign(who.did_key())
    .unwrap();
    let event = archy_marketplace::publication_event(who, &envelope, &app_id).unwrap();
    archy_marketplace::publish(&event, &[relay.to_owned()])
        .await
        .unwrap();
    (envelope, event)
}

pub(super) fn archy_publish(
    api: &str,
    manifest: &std::path::Path,
    mnemonic: &std::path::Path,
    relay: &str,
) -> std::process::Output {
    // The developer's node keeps its token in `node/` beside its config ([`write_node_config`]).
    let token = archy_node::auth::token_path(&manifest.parent().unwrap().join("node"));
    std::process::Command::new(archy_binary())
        .args(["--api", api, "app", "publish", "--manifest"])
        .arg(manifest)
        .arg("--artifact")
        .arg(format!(
            "image={}",
            artifacts_dir().join("hello/image.tar").display()
        ))
        .arg("--mnemonic-file")
        .arg(mnemonic)
        .args(["--relay", relay])
        .env("ARCHY_TOKEN_FILE", token)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_app_is_published_discovered_gated_and_installed() {
    let _podman = PODMAN.lock().await;
    let relay = LocalRelay::new(RelayBuilder::default().addr([127, 0, 0, 1].into()));
    relay.run().await.unwrap();
    let relay_url = relay.url().await.to_string();

    let tmp = tempfile::tempdir().unwrap();
    // The first-party origin: hello's catalog, its image on iroh.
    let origin = TestOrigin::start(tmp.path()).await;
    let (url, root, id) = (origin.url.clone(), origin.root.clone(), origin.id.clone());

    // The developer's own node: it serves the artifacts (blobs_listen) as their origin.
    let dev_dir = tmp.path().join("dev");
    std::fs::create_dir_all(&dev_dir).unwrap();
    let extra = "blobs_listen = \"127.0.0.1:0\"
";
    let dev_node = NodeProcess::start(&dev_dir, &url, &root, extra).await;
    let dev_api = dev_node.api.clone();
    let mnemonic = mnemonic_file(&dev_dir);
    let dev = DeveloperIdentity::from_mnemonic(DEV_MNEMONIC, "", 0).unwrap();
    let local_id = archy_registry::namespaced_id("hello", &dev.nostr_public_hex());

    let published = archy_publish(
        &dev_api,
        &third_party_hello(&dev_dir, |m| m),
        &mnemonic,
        &relay_url,
    );
    let stdout = String::from_utf8_lossy(&published.stdout);
    assert!(
        published.status.success(),
        "publish failed: {}{}",
        stdout,
        String::from_utf8_lossy(&published.stderr)
    );
    assert!(stdout.contains(&local_id), "{stdout}");

    // The CLI refuses to publish what the sandbox policy forbids, naming the field.
    let privileged = archy_publish(
        &dev_api,
        &third_party_hello(&dev_dir, |m| web_lines(m, "    privileged: true")),
        &mnemonic,
        &relay_url,
    );
    let stderr = String::from_utf8_lossy(&privileged.stderr);
    assert!(!privileged.status.success());
    assert!(stderr.contains("containers[0].privileged"), "{stderr}");

    // A hostile developer skips the CLI and publishes a privileged app straight to the relay.
    let attacker = DeveloperIdentity::from_mnemonic(DEV_MNEMONIC, "", 3).unwrap();
    let mut rootkit = archy_registry::Manifest::from_yaml(
        &std::fs::read_to_string(third_party_hello(&dev_dir, |m| {
            m.replace("id: hello", "id: rootkit")
        }))
        .unwrap(),
    )
    .unwrap();
    rootkit.containers[0].privileged = true;
    let image = artifacts_dir().join("hello/image.tar");
    publish_directly(&attacker, rootkit, &url, &id, &relay_url).await;

    // The operator's node: first-party hello from the catalog, third-party from the relay.
    remove_leftovers("hello").await;
    remove_leftovers(&local_id).await;
    let node = operator_node(&tmp.path().join("node"), &url, &root, &relay_url).await;
    // The operator trusts their own Nostr key (as `archy market trust add` does); it does
    // not follow the developer yet.
    let operator = nostr_relay_builder::prelude::Keys::generate();
    node.trust_key(&operator.public_key().to_hex())
        .await
        .unwrap();
    let found = node.discover_market().await.unwrap();
    assert_eq!(found.listings.len(), 2, "{:?}", found.rejected);

    let shown = node.market_show("hello").await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].local_id.as_deref(), Some(local_id.as_str()));
    assert_eq!(shown[0].sandbox, "passes");

    // No path from the operator's key: score 0, refused without the operator's approval.
    let score = shown[0]
        .score
        .as_ref()
        .expect("publisher scored at discovery");
    assert_eq!(score.score, 0, "{:?}", score.explanation);
    let err = node
        .install_listing("hello", None, false, &|_| {})
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("scores 0/100, below this node's threshold of 50"),
        "{err}"
    );
    assert!(!podman_has_app(&local_id).await);

    // A privileged third-party manifest is refused even with approval; nothing is created.
    let err = node
        .install_listing("rootkit", None, true, &|_| {})
        .await
        .unwrap_err();
    assert!(err.message.contains("sandbox policy"), "{err}");
    assert!(err.message.contains("privileged"), "{err}");
    let rootkit_id = archy_registry::namespaced_id("rootkit", &attacker.nostr_public_hex());
    assert!(!podman_has_app(&rootkit_id).await);
    assert!(node.app(&rootkit_id).await.is_err());

    // The operator follows the developer (NIP-02): one hop from a trusted key scores 50,
    // which clears the threshold. Installed under the publisher's namespace, its image
    // fetched over iroh from the developer's node, the origin the publication names.
    let follow = nostr_relay_builder::prelude::EventBuilder::contact_list([
        nostr_relay_builder::prelude::Contact::new(dev.nostr_keys().public_key()),
    ])
    .sign_with_keys(&operator)
    .unwrap();
    archy_marketplace::publish(&follow, std::slice::from_ref(&relay_url))
        .await
        .unwrap();
    node.discover_market().await.unwrap();
    let score = node.market_show("hello").await.unwrap()[0]
        .score
        .clone()
        .unwrap();
    assert_eq!(score.score, 50, "{:?}", score.explanation);
    assert!(
        score
            .explanation
            .iter()
            .any(|term| term.reason.contains("followed by operator key")),
        "{:?}",
        score.explanation
    );
    let app = node
        .install_listing("hello", None, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(app.id, local_id);
    assert_eq!(app.state, "running");
    let body = reqwest::get("http://127.0.0.1:18090/").await.unwrap();
    assert!(body.status().is_success());
    let metrics = node.status().await.unwrap().swarm;
    assert_eq!(
        metrics.bytes_from_iroh,
        std::fs::metadata(&image).unwrap().len()
    );
    assert_eq!(metrics.bytes_from_http, 0);

    // First-party hello installs beside it: neither shadows the other.
    node.pull_catalog().await.unwrap();
    node.install("hello").await.unwrap();
    let first_party = node.app("hello").await.unwrap();
    assert_eq!(first_party.state, "running");
    assert!(
        reqwest::get("http://127.0.0.1:18080/")
            .await
            .unwrap()
            .status()
            .is_success(),
        "first-party hello must be untouched"
    );
    let apps: Vec<String> = node
        .apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(apps, vec!["hello".to_owned(), local_id.clone()]);
    let again = node
        .install_listing("hello", None, true, &|_| {})
        .await
        .unwrap_err();
    assert!(again.message.contains("already installed"), "{again}");

    // Another publisher lists a "hello" 9.0.0; the developer publishes 1.1.0. The installed
    // app updates from its own publisher only, and the other gets a namespace of its own.
    let other = DeveloperIdentity::from_mnemonic(DEV_MNEMONIC, "", 5).unwrap();
    let nine = archy_registry::Manifest::from_yaml(
        &std::fs::read_to_string(third_party_hello(&dev_dir, |m| {
            m.replace("version: 1.0.0", "version: 9.0.0")
                .replace("host: 18090", "host: 18091")
        }))
        .unwrap(),
    )
    .unwrap();
    publish_directly(&other, nine, &url, &id, &relay_url).await;
    let newer = archy_publish(
        &dev_api,
        &third_party_hello(&dev_dir, |m| m.replace("version: 1.0.0", "version: 1.1.0")),
        &mnemonic,
        &relay_url,
    );
    assert!(
        newer.status.success(),
        "{}",
        String::from_utf8_lossy(&newer.stderr)
    );
    node.discover_market().await.unwrap();
    // The installed app names its publisher and the newer version it lists.
    let standing = node.app(&local_id).await.unwrap().market.unwrap();
    assert_eq!(
        (standing.publisher.as_str(), standing.did.as_str()),
        (dev.nostr_public_hex().as_str(), dev.did().as_str())
    );
    assert_eq!(standing.newer_version.as_deref(), Some("1.1.0"));
    assert!(standing.withdrawn.is_none());
    let shown = node.market_show("hello").await.unwrap();
    let mine = shown
        .iter()
        .find(|d| d.listing.author == dev.nostr_public_hex())
        .unwrap();
    assert_eq!(
        (
            mine.listing.version.as_str(),
            mine.installed_version.as_deref()
        ),
        ("1.1.0", Some("1.0.0"))
    );
    let ambiguous = node
        .install_listing("hello", None, true, &|_| {})
        .await
        .unwrap_err();
    assert!(
        ambiguous.message.contains("2 publishers list"),
        "{ambiguous}"
    );
    let updated = node.update(&local_id, false).await.unwrap();
    assert_eq!(updated.version, "1.1.0");
    let standing = node.app(&local_id).await.unwrap().market.unwrap();
    assert_eq!(standing.newer_version, None);

    // The other publisher is a stranger (score 0): only the operator's approval installs it,
    // under its own namespace, beside the developer's.
    let other_prefix = &other.nostr_public_hex()[..16];
    let err = node
        .install_listing("hello", Some(other_prefix), false, &|_| {})
        .await
        .unwrap_err();
    assert!(err.message.contains("below this node's threshold"), "{err}");
    let other_id = archy_registry::namespaced_id("hello", &other.nostr_public_hex());
    let approved = node
        .install_listing("hello", Some(other_prefix), true, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        (approved.id.as_str(), approved.version.as_str()),
        (other_id.as_str(), "9.0.0")
    );
    assert_eq!(node.app(&local_id).await.unwrap().version, "1.1.0");
    node.uninstall(&other_id, true).await.unwrap();
    let others = node.market_show("hello").await.unwrap();
    let ids: Vec<_> = others.iter().filter_map(|d| d.local_id.clone()).collect();
    assert!(ids.contains(&archy_registry::namespaced_id(
        "hello",
        &other.nostr_public_hex()
    )));
    assert!(ids.contains(&local_id));
    assert_eq!(node.app("hello").await.unwrap().version, "1.0.0");

    // The app survives a restart of the node: it is re-verified from its stored publication.
    node.shutdown().await;
    let node = operator_node(&tmp.path().join("node"), &url, &root, &relay_url).await;
    assert_eq!(node.app(&local_id).await.unwrap().state, "running");

    // The developer withdraws hello. The installed app keeps running, marked withdrawn;
    // nothing more is installed or updated from it.
    let withdrawn = archy_unpublish("hello", &mnemonic, &[&relay_url], false);
    assert!(
        withdrawn.status.success(),
        "{}",
        String::from_utf8_lossy(&withdrawn.stderr)
    );
    node.discover_market().await.unwrap();
    let app = node.app(&local_id).await.unwrap();
    assert_eq!(app.state, "running");
    let standing = app.market.unwrap();
    assert!(standing.withdrawn.is_some(), "{standing:?}");
    assert_eq!(standing.newer_version, None);
    let err = node.update(&local_id, true).await.unwrap_err();
    assert!(err.message.contains("withdrew hello"), "{err}");
    let dev_prefix = &dev.nostr_public_hex()[..16];
    let err = node
        .install_listing("hello", Some(dev_prefix), true, &|_| {})
        .await
        .unwrap_err();
    assert!(err.message.contains("withdrew hello"), "{err}");
    node.uninstall(&local_id, true).await.unwrap();
    node.uninstall("hello", true).await.unwrap();
    assert!(!podman_has_app(&local_id).await);
    node.shutdown().await;
    origin.server.abort();
    relay.shutdown();
}

/// The outbox model (NIP-65) end to end: `archy app publish` sends the publication to relay
/// B only and announces B in the developer's relay list; that list is also on relay A (as a
/// client posting it to a popular relay would). The operator's node knows relay A alone:
/// once it follows the developer, it finds the app on B, and installs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_publishers_app_is_installed_from_the_relay_it_announces() {
    let _podman = PODMAN.lock().await;
    let (_relay_a, relay_a) = archy_marketplace::test_support::relay().await;
    let (_relay_b, relay_b) = archy_marketplace::test_support::relay().await;
    let tmp = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(tmp.path()).await;
    let (url, root) = (origin.url.clone(), origin.root.clone());
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
        &relay_b,
    );
    let stdout = String::from_utf8_lossy(&published.stdout);
    assert!(
        published.status.success(),
        "publish failed: {stdout}{}",
        String::from_utf8_lossy(&published.stderr)
    );
    assert!(stdout.contains("relay list"), "{stdout}");
    let (list, errors) = archy_marketplace::fetch_relay_list(
        std::slice::from_ref(&relay_b),
        &dev.nostr_keys().public_key(),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let list = list.expect("publish announced the developer's relays");
    assert_eq!(
        archy_marketplace::write_relays(&list)
            .iter()
            .map(|r| r.trim_end_matches('/'))
            .collect::<Vec<_>>(),
        [relay_b.trim_end_matches('/')]
    );
    archy_marketplace::publish(&list, std::slice::from_ref(&relay_a))
        .await
        .unwrap();

    remove_leftovers(&local_id).await;
    let node = archy_node::Node::start(archy_node::NodeConfig {
        relays: vec![relay_a.clone()],
        // The relays here are on loopback, which the default refuses.
        outbox_allow_private: true,
        ..node_config(&tmp.path().join("node"), &url, &root)
    })
    .await
    .unwrap();
    let found = node.discover_market().await.unwrap();
    assert!(found.listings.is_empty(), "B is not asked for a stranger");
    node.vouch_follow(&dev.npub(), true, false).await.unwrap();
    let found = node.discover_market().await.unwrap();
    assert_eq!(found.listings.len(), 1, "{:?}", found.relay_errors);
    let status = node.status().await.unwrap().market.unwrap();
    assert!(
        status
            .outbox
            .iter()
            .any(|o| o.relay.trim_end_matches('/') == relay_b.trim_end_matches('/')),
        "{status:?}"
    );
    let app = node
        .install_listing("hello", None, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(app.id, local_id);
    assert_eq!(app.state, "running");
    node.uninstall(&local_id, true).await.unwrap();
    assert!(!podman_has_app(&local_id).await);
    node.shutdown().await;
    origin.server.abort();
}

/// The node discovers third-party publications on its relays (a real Nostr relay over
/// websocket), keeps verified ones, forgets deleted ones, and never lists a forged binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_discovers_third_party_apps_on_relays() {
    let _service = PODMAN_SERVICE.read().await;
    let relay = LocalRelay::new(RelayBuilder::default().addr([127, 0, 0, 1].into()));
    relay.run().await.unwrap();
    let relay_url = relay.url().await.to_string();

    let tmp = tempfile::tempdir().unwrap();
    // The first-party origin: hello's catalog, its image on iroh.
    let origin = TestOrigin::start(tmp.path()).await;
    let (url, root, id) = (origin.url.clone(), origin.root.clone(), origin.id.clone());
    // A second relay that lags behind: it gets what the developer sent first, and no more.
    let lagging = LocalRelay::new(RelayBuilder::default().addr([127, 0, 0, 1].into()));
    lagging.run().await.unwrap();
    let lagging_url = lagging.url().await.to_string();
    let node = operator_node_on(
        &tmp.path().join("node"),
        &url,
        &root,
        &[relay_url.clone(), lagging_url.clone()],
    )
    .await;

    // A developer publishes "notes" (their own node as origin).
    let dev = DeveloperIdentity::from_mnemonic(DEV_MNEMONIC, "", 0).unwrap();
    let notes = archy_registry::Manifest::from_yaml(
        &std::fs::read_to_string(third_party_hello(tmp.path(), |m| {
            m.replace("id: hello", "id: notes")
                .replace("name: Hello", "name: Notes")
        }))
        .unwrap(),
    )
    .unwrap();
    let (envelope, event) = publish_directly(&dev, notes, &url, &id, &relay_url).await;
    // A forger reuses the developer's DID-signed envelope under their own Nostr key.
    let forger = DeveloperIdentity::from_mnemonic(DEV_MNEMONIC, "", 7).unwrap();
    let stolen = archy_marketplace::publication_event(&forger, &envelope, "notes").unwrap();
    archy_marketplace::publish(&stolen, std::slice::from_ref(&relay_url))
        .await
        .unwrap();

    let found = node.discover_market().await.unwrap();
    assert_eq!(found.rejected.len(), 1, "{:?}", found.rejected);
    assert!(
        found.rejected[0].1.contains("binds Nostr key"),
        "{:?}",
        found.rejected
    );
    let market = node.market().await.unwrap();
    assert_eq!(market.len(), 1);
    assert_eq!(
        (market[0].app_id.as_str(), market[0].did.as_str()),
        ("notes", dev.did().as_str())
    );
    assert_eq!(market[0].author, dev.nostr_public_hex());

    // The developer deletes it: the node forgets it at the next discovery.
    let deletion = EventBuilder::delete(EventDeletionRequest::new().id(event.id))
        .sign_with_keys(dev.nostr_keys())
        .unwrap();
    archy_marketplace::publish(&deletion, std::slice::from_ref(&relay_url))
        .await
        .unwrap();
    node.discover_market().await.unwrap();
    assert!(
        node.market().await.unwrap().is_empty(),
        "a deleted publication is still listed"
    );
    let shown = node.market_show("notes").await.unwrap();
    assert!(shown[0].listing.withdrawn.is_some(), "{shown:?}");

    // "board" 1.0.0 reaches both relays, 1.1.0 only the first.
    let board = |version: &str| {
        archy_registry::Manifest::from_yaml(
            &std::fs::read_to_string(third_party_hello(tmp.path(), |m| {
                m.replace("id: hello", "id: board")
                    .replace("version: 1.0.0", &format!("version: {version}"))
            }))
            .unwrap(),
        )
        .unwrap()
    };
    let (_, first) = publish_directly(&dev, board("1.0.0"), &url, &id, &relay_url).await;
    archy_marketplace::publish(&first, std::slice::from_ref(&lagging_url))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    publish_directly(&dev, board("1.1.0"), &url, &id, &relay_url).await;
    node.discover_market().await.unwrap();
    let listed = node.market().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].app_id.as_str(), listed[0].version.as_str()),
        ("board", "1.1.0")
    );

    // `archy app unpublish` while the lagging relay is out of the developer's reach: one
    // request, every relay answered for; a dead relay is named with its reason.
    let mnemonic = mnemonic_file(tmp.path());
    let dead = dead_relay();
    let out = archy_unpublish("board", &mnemonic, &[&relay_url, &dead], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let relays = report["relays"].as_array().unwrap();
    assert_eq!(relays.len(), 2, "{report}");
    let answer = |prefix: &str| {
        relays
            .iter()
            .find(|r| r["relay"].as_str().unwrap().starts_with(prefix))
            .unwrap()
            .clone()
    };
    assert_eq!(answer(&relay_url)["accepted"], true, "{report}");
    assert_eq!(answer(&dead)["accepted"], false, "{report}");
    assert!(
        answer(&dead)["error"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{report}"
    );
    assert_eq!(report["versions"].as_array().unwrap().len(), 1, "{report}");
    let deletion = report["event_id"].as_str().unwrap().to_owned();

    node.discover_market().await.unwrap();
    assert!(node.market().await.unwrap().is_empty());
    let shown = node.market_show("board").await.unwrap();
    assert_eq!(
        shown[0]
            .listing
            .withdrawn
            .as_ref()
            .map(|w| w.deletion.as_str()),
        Some(deletion.as_str())
    );
    // The first relay goes away; the lagging one still serves 1.0.0. The node remembers.
    relay.shutdown();
    let found = node.discover_market().await.unwrap();
    assert!(found.listings.is_empty(), "{:?}", found.listings);
    assert!(
        node.market().await.unwrap().is_empty(),
        "resurrected by a lagging relay"
    );
    let status = node.status().await.unwrap().market.unwrap();
    assert!(status.incomplete);
    assert_eq!((status.listed, status.withdrawn), (0, 2));

    // No relay takes it: the command fails and names the relay and why.
    let out = archy_unpublish("board", &mnemonic, &[&dead], false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no relay accepted the withdrawal of board") && stderr.contains(&dead),
        "{stderr}"
    );
    node.shutdown().await;
    origin.server.abort();
    lagging.shutdown();
}
