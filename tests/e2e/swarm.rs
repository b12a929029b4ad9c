//! The swarm at node level: a second node takes the image from a peer instead of the
//! origin (peer found by config and by the origin's tracker), and with the origin down a
//! fresh node gets the signed catalog relayed by a peer, verified by the same rules, and
//! installs from that peer. A node that shuts down leaves the tracker.

use super::*;

/// A node that pulls only when told, with `peers` as its static peers.
fn config_with_peers(
    dir: &std::path::Path,
    origin: &str,
    root: &std::path::Path,
    peers: Vec<archy_swarm::PeerAddr>,
) -> archy_node::NodeConfig {
    archy_node::NodeConfig {
        pull_interval_seconds: 3600,
        static_peers: peers,
        ..node_config(dir, origin, root)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_offload_the_origin_and_relay_the_catalog_while_it_is_down() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (origin_swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
    let (listener, url) = loopback_listener().await;
    let server = serve_bytes(
        listener,
        signed_catalog(&keys, &url, &id, 1, 30).to_bytes(),
        origin_swarm.clone(),
    );
    let image_size = std::fs::metadata(artifacts_dir().join("hello/image.tar"))
        .unwrap()
        .len();

    // Node A installs hello from the origin and announces the image to its tracker.
    let a = archy_node::Node::start(config_with_peers(
        &tmp.path().join("a"),
        &url,
        &root,
        vec![],
    ))
    .await
    .unwrap();
    a.pull_catalog().await.unwrap();
    a.install("hello").await.unwrap();
    // Uninstalled (data kept): the catalog still lists the image, so A keeps and serves it.
    a.uninstall("hello", false).await.unwrap();
    assert!(
        a.swarm().pins("archy/app/hello/").await.unwrap().is_empty(),
        "uninstall must release the app's pins"
    );
    let gc = a.swarm_upkeep().await.unwrap();
    assert!(gc.removed.is_empty(), "GC removed {:?}", gc.removed);
    assert_eq!(
        a.status().await.unwrap().swarm.bytes_from_origin_iroh,
        image_size
    );

    // Node B learns A from the tracker (no static peer): the image comes from A.
    let b = archy_node::Node::start(config_with_peers(
        &tmp.path().join("b"),
        &url,
        &root,
        vec![],
    ))
    .await
    .unwrap();
    b.pull_catalog().await.unwrap();
    b.install("hello").await.unwrap();
    let swarm_b = b.swarm_status();
    assert_eq!(
        swarm_b.metrics.bytes_from_peers, image_size,
        "{:?}",
        swarm_b.metrics
    );
    assert_eq!(swarm_b.metrics.bytes_from_origin_iroh, 0);
    assert_eq!(swarm_b.metrics.bytes_from_http, 0);
    assert!(a.swarm_status().metrics.bytes_served_iroh >= image_size);
    // B announced the image once it held it; when B shuts down it withdraws (signed with
    // its endpoint key), so the tracker stops sending fetchers to a node that is gone.
    let image = archy_swarm::BlobRef::from_hex(
        &blake3::hash(&std::fs::read(artifacts_dir().join("hello/image.tar")).unwrap()).to_hex(),
        image_size,
    )
    .unwrap();
    let listed = || async {
        let peers = a.swarm().providers(&url, &image.hash).await.unwrap();
        peers.into_iter().map(|p| p.id).collect::<Vec<_>>()
    };
    let b_id = b.swarm().endpoint_id().to_string();
    // Its announcement goes out in the background: give it a few seconds.
    for _ in 0..50 {
        if listed().await == vec![b_id.clone()] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(listed().await, vec![b_id.clone()]);
    b.uninstall("hello", true).await.unwrap();
    b.shutdown().await;
    assert_eq!(listed().await, Vec::<String>::new(), "{b_id} still listed");

    // The origin goes down. Node C, new, knows only A: the catalog comes relayed by A
    // (checked like the origin's), the image from A.
    server.abort();
    origin_swarm.shutdown().await;
    let c = archy_node::Node::start(config_with_peers(
        &tmp.path().join("c"),
        &url,
        &root,
        vec![a.swarm().addr()],
    ))
    .await
    .unwrap();
    let update = c.pull_catalog().await.unwrap();
    assert!(
        matches!(update, archy_registry::CatalogUpdate::Updated { to: 1, .. }),
        "{update:?}"
    );
    let status = c.status().await.unwrap();
    assert!(
        status.last_pull.message.contains("relayed by peer")
            && status.last_pull.message.contains("origin is unreachable"),
        "{:?}",
        status.last_pull
    );
    let app = c.install("hello").await.unwrap();
    assert_eq!(app.state, "running");
    let swarm_c = c.swarm_status();
    assert_eq!(swarm_c.metrics.bytes_from_peers, image_size);
    assert_eq!(
        swarm_c.metrics.bytes_from_origin_iroh + swarm_c.metrics.bytes_from_http,
        0
    );
    c.uninstall("hello", true).await.unwrap();
    c.shutdown().await;
    a.uninstall("hello", true).await.ok();
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_catalog_is_held_to_the_same_rules() {
    let _service = PODMAN_SERVICE.read().await;
    // A peer that relays a tampered catalog gets nothing accepted; the node keeps nothing.
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (origin_swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
    let liar = archy_swarm::Swarm::start(archy_swarm::SwarmConfig::new(tmp.path().join("liar")))
        .await
        .unwrap();
    let good = signed_catalog(&keys, "http://127.0.0.1:9", &id, 1, 30);
    let tampered = edit_payload(&good, |v| v["version"] = 7.into());
    liar.set_relayed_document("catalog", tampered.to_bytes())
        .unwrap();
    let node = archy_node::Node::start(config_with_peers(
        &tmp.path().join("node"),
        "http://127.0.0.1:9",
        &root,
        vec![liar.addr()],
    ))
    .await
    .unwrap();
    let err = node.pull_catalog().await.unwrap_err();
    assert!(
        err.message.contains("http://127.0.0.1:9"),
        "{}",
        err.message
    );
    assert!(node.status().await.unwrap().catalog.is_none());
    // An expired but correctly signed one is refused too.
    let expired = signed_catalog_expiring(
        &repo_root().join("apps"),
        &keys,
        "http://127.0.0.1:9",
        &id,
        1,
        chrono::Duration::seconds(-60),
        None,
    );
    liar.set_relayed_document("catalog", expired.to_bytes())
        .unwrap();
    assert!(node.pull_catalog().await.is_err());
    assert!(node.status().await.unwrap().catalog.is_none());
    // The genuine one is accepted.
    liar.set_relayed_document("catalog", good.to_bytes())
        .unwrap();
    node.pull_catalog().await.unwrap();
    assert_eq!(node.status().await.unwrap().catalog.unwrap().version, 1);
    node.shutdown().await;
    liar.shutdown().await;
    origin_swarm.shutdown().await;
}
