//! A catalog that skips versions is not a way around the hash chain: a node on version 1
//! offered version 3 fetches version 2 from the origin (`/v1/catalog/2`, kept by the
//! origin in its data dir) and checks 1 → 2 → 3. A version 2 that does not chain is a
//! fork and is refused with an alarm; only a version 2 the origin does not have is
//! accepted across, and the node says the gap is unverified.

use super::*;

/// What the origin holds as version 2 when it offers version 3.
enum Middle {
    /// A version 2 of another history (it names some other version 1).
    Forked,
    /// The real version 2, naming version 1.
    Honest,
    /// None: the origin no longer has it.
    Missing,
}

struct Offered {
    node: std::sync::Arc<archy_node::Node>,
    pulled: Result<archy_registry::CatalogUpdate, archy_node::node::NodeError>,
    origin: String,
    v1: Vec<u8>,
    v3: Vec<u8>,
}

/// A node pulls version 1 from a real origin; the origin is replaced (same key, and the
/// catalogs it served, kept in its data dir) by one serving version 3 with `middle` as
/// version 2; the node, restarted on it, pulls.
async fn node_on_v1_offered_v3(tmp: &std::path::Path, middle: Middle) -> Offered {
    let keys = Keys::new();
    let root = keys.write_root(tmp);
    let apps = repo_root().join("apps");
    let first = tmp.join("origin-1");
    let id = archy_swarm::endpoint_id_of(&first.join("swarm"))
        .unwrap()
        .to_string();
    let (listener, url) = loopback_listener().await;
    let v1 = signed_catalog_after(&apps, &keys, &url, &id, 1, 30, None).to_bytes();
    let v1_path = tmp.join("v1.json");
    std::fs::write(&v1_path, &v1).unwrap();
    let origin = start_origin(&first, &v1_path, listener, url.clone()).await;
    let node_dir = tmp.join("node");
    let node = start_node(&node_dir, &url, &root).await;
    let update = node.pull_catalog().await.expect("version 1 accepted");
    assert!(
        matches!(update, archy_registry::CatalogUpdate::Updated { to: 1, .. }),
        "{update:?}"
    );
    node.shutdown().await;
    drop(node);
    origin.server.abort();
    origin.swarm.shutdown().await;

    // The next origin run: same key, the history the first one kept.
    let second = tmp.join("origin-2");
    std::fs::create_dir_all(second.join("swarm")).unwrap();
    std::fs::create_dir_all(second.join(archy_node::origin::HISTORY_DIR)).unwrap();
    std::fs::copy(first.join("swarm/iroh.key"), second.join("swarm/iroh.key")).unwrap();
    let kept = first.join(archy_node::origin::HISTORY_DIR).join("1.json");
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        v1,
        "the origin keeps what it served"
    );
    std::fs::copy(
        &kept,
        second.join(archy_node::origin::HISTORY_DIR).join("1.json"),
    )
    .unwrap();
    let (listener, url) = loopback_listener().await;
    let honest_v2 = signed_catalog_after(&apps, &keys, &url, &id, 2, 30, Some(&v1)).to_bytes();
    let v2 = match middle {
        Middle::Honest | Middle::Missing => honest_v2,
        Middle::Forked => {
            let other_v1 = signed_catalog_after(&apps, &keys, &url, &id, 1, 29, None).to_bytes();
            signed_catalog_after(&apps, &keys, &url, &id, 2, 30, Some(&other_v1)).to_bytes()
        }
    };
    if !matches!(middle, Middle::Missing) {
        std::fs::write(
            second.join(archy_node::origin::HISTORY_DIR).join("2.json"),
            &v2,
        )
        .unwrap();
    }
    let v3 = signed_catalog_after(&apps, &keys, &url, &id, 3, 30, Some(&v2)).to_bytes();
    let v3_path = tmp.join("v3.json");
    std::fs::write(&v3_path, &v3).unwrap();
    let _origin = start_origin(&second, &v3_path, listener, url.clone()).await;
    let node = start_node(&node_dir, &url, &root).await;
    let pulled = node.pull_catalog().await;
    Offered {
        node,
        pulled,
        origin: url,
        v1,
        v3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_version_that_does_not_chain_is_refused_with_an_alarm() {
    let _service = PODMAN_SERVICE.read().await;
    let tmp = tempfile::tempdir().unwrap();
    let o = node_on_v1_offered_v3(tmp.path(), Middle::Forked).await;
    let err = o
        .pulled
        .expect_err("a forked version 2 must not pass as a gap");
    assert!(
        err.message.contains(&format!(
            "the chain from the current catalog breaks at version 2 ({}/v1/catalog/2)",
            o.origin
        )) && err
            .message
            .contains("does not chain to the current version 1"),
        "{}",
        err.message
    );
    let status = o.node.status().await.unwrap();
    assert_eq!(status.catalog.as_ref().unwrap().version, 1, "node left v1");
    assert!(
        status.alarms.iter().any(|a| a.kind == "chain-broken"),
        "{:?}",
        status.alarms
    );
    assert!(
        !status.alarms.iter().any(|a| a.kind == "unverified-gap"),
        "{:?}",
        status.alarms
    );
    assert!(!status.last_pull.ok);
    // The refusal holds on the next pull: nothing was learned from the fork.
    assert!(o.node.pull_catalog().await.is_err());
    assert_eq!(o.node.status().await.unwrap().catalog.unwrap().version, 1);
    o.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_version_served_by_the_origin_is_chained_through() {
    let _service = PODMAN_SERVICE.read().await;
    let tmp = tempfile::tempdir().unwrap();
    let o = node_on_v1_offered_v3(tmp.path(), Middle::Honest).await;
    let update = o.pulled.expect("1 → 2 → 3 chains");
    assert_eq!(
        update,
        archy_registry::CatalogUpdate::Updated {
            from: Some(1),
            to: 3,
            missed: 0
        }
    );
    let status = o.node.status().await.unwrap();
    let catalog = status.catalog.as_ref().unwrap();
    assert_eq!((catalog.version, catalog.missed_versions), (3, 0));
    // Other tests' apps may run in the shared Podman meanwhile ("unknown-app" here); what
    // matters is that the chain raised nothing.
    assert!(
        status.alarms.iter().all(|a| a.kind == "unknown-app"),
        "{:?}",
        status.alarms
    );
    assert!(
        status.last_pull.ok
            && status
                .last_pull
                .message
                .contains("chain verified through 1 skipped version(s)")
            && !status.last_pull.message.contains("gap"),
        "{:?}",
        status.last_pull
    );
    // The origin serves every version it has, by number; none it does not.
    let get = |v: u64| {
        let url = format!("{}/v1/catalog/{v}", o.origin);
        async move { reqwest::get(url).await.unwrap() }
    };
    assert_eq!(get(1).await.bytes().await.unwrap(), o.v1);
    assert_eq!(get(3).await.bytes().await.unwrap(), o.v3);
    assert_eq!(get(4).await.status(), reqwest::StatusCode::NOT_FOUND);
    o.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_version_the_origin_lost_is_accepted_as_an_unverified_gap() {
    let _service = PODMAN_SERVICE.read().await;
    let tmp = tempfile::tempdir().unwrap();
    let o = node_on_v1_offered_v3(tmp.path(), Middle::Missing).await;
    let update = o
        .pulled
        .expect("a version the origin no longer has is a gap");
    assert_eq!(
        update,
        archy_registry::CatalogUpdate::Updated {
            from: Some(1),
            to: 3,
            missed: 1
        }
    );
    let status = o.node.status().await.unwrap();
    assert_eq!(status.catalog.as_ref().unwrap().missed_versions, 1);
    let expected = format!(
        "accepted across an unverified gap of 1 version(s) (version 2): the origin no longer has it \
         ({}/v1/catalog/2 answered 404 Not Found)",
        o.origin
    );
    assert!(
        status.last_pull.ok && status.last_pull.message.contains(&expected),
        "{:?}",
        status.last_pull
    );
    assert!(
        status
            .alarms
            .iter()
            .any(|a| a.kind == "unverified-gap" && a.message.contains(&expected)),
        "{:?}",
        status.alarms
    );
    o.node.shutdown().await;
}
