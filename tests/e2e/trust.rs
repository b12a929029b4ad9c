//! The trust chain end to end: a node refuses bad catalogs (tampered, foreign-signed,
//! expired, of the wrong type) and roots it was not pinned to, walks root rotations, raises
//! equivocation and rollback alarms, and keeps running apps under an expired catalog; the
//! origin serves only signed catalogs it can back byte for byte.

use super::*;
use archy_registry::SecretKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalogs_are_refused_and_nothing_is_installed() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    // A real swarm node stands behind the hostile origins, so only the catalog is at fault.
    let (swarm, origin_id) = origin_swarm(&tmp.path().join("origin-swarm")).await;
    let good = |url: &str, days: i64| signed_catalog(&keys, url, &origin_id, 1, days);

    let stranger = SecretKey::from_bytes(&[42; 32]);
    type Case<'a> = (
        &'static str,
        Box<dyn Fn(&str) -> Vec<u8> + 'a>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "tampered payload",
            Box::new(|url: &str| {
                edit_payload(&good(url, 30), |v| {
                    v["apps"][0]["manifest"]["name"] = "Evil".into()
                })
                .to_bytes()
            }),
            "catalog role: 0 valid signature(s)",
        ),
        (
            "signature by a key outside the catalog role",
            Box::new(|url: &str| {
                let mut env = good(url, 30);
                env.signatures.clear();
                env.sign(&stranger).unwrap();
                env.to_bytes()
            }),
            "catalog role: 0 valid signature(s)",
        ),
        (
            "expired catalog",
            Box::new(|url: &str| good(url, -1).to_bytes()),
            "expired",
        ),
        (
            "a signed root presented as a catalog",
            Box::new(|_: &str| std::fs::read(&root).unwrap()),
            "payload type",
        ),
        (
            "not an envelope",
            Box::new(|_: &str| b"<html>hello</html>".to_vec()),
            "not a signed envelope",
        ),
    ];

    for (i, (name, make, expected)) in cases.iter().enumerate() {
        let (listener, url) = loopback_listener().await;
        let server = serve_bytes(listener, make(&url), swarm.clone());
        let node = start_node(&tmp.path().join(format!("node-{i}")), &url, &root).await;
        let err = node.pull_catalog().await.expect_err(name);
        assert!(
            err.message.contains(expected),
            "{name}: expected {expected:?} in {:?}",
            err.message
        );
        assert!(
            node.catalog_apps().await.unwrap().is_empty(),
            "{name}: a refused catalog was kept"
        );
        let status = node.status().await.unwrap();
        assert!(
            status.catalog.is_none() && !status.last_pull.ok,
            "{name}: status hides the refusal"
        );
        let install = node.install("hello").await.expect_err(name);
        assert!(
            install.message.contains("no verified catalog"),
            "{name}: {}",
            install.message
        );
        server.abort();
    }
    assert!(
        !podman_has_app("hello").await,
        "a refused catalog led to containers"
    );
}

/// The daemon pulls on its own, serves its API, and shows an equivocating origin as an alarm
/// while keeping the catalog it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_auto_pulls_and_raises_equivocation_alarm() {
    let _service = PODMAN_SERVICE.read().await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm(&tmp.path().join("origin-swarm")).await;
    let (listener, url) = loopback_listener().await;
    let apps_dir = repo_root().join("apps");
    let v1 = signed_catalog(&keys, &url, &id, 1, 30).to_bytes();
    let slot: CatalogSlot = std::sync::Arc::new(std::sync::Mutex::new(v1.clone()));
    let server = serve_slot(listener, slot.clone(), Default::default(), swarm.clone());

    let node = start_node_with(&tmp.path().join("node"), &url, &root, 1).await;
    let (api, daemon) = serve_api(node).await;
    let client = api_client(&tmp.path().join("node"));
    let status = |api: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{api}/v1/status"))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let wait_for = |want: &'static str| {
        let api = api.clone();
        async move {
            for _ in 0..100 {
                let s = status(api.clone()).await;
                if s.to_string().contains(want) {
                    return s;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("status never showed {want:?}: {}", status(api).await);
        }
    };
    let s = wait_for("\"version\":1").await;
    assert_eq!(s["catalog"]["expired"], false);

    // Version 2 must chain to version 1; one that does not is a fork.
    *slot.lock().unwrap() = signed_catalog(&keys, &url, &id, 2, 30).to_bytes();
    wait_for("chain-broken").await;
    // Expiring inside the warning window: accepted, with a warning.
    *slot.lock().unwrap() =
        signed_catalog_after(&apps_dir, &keys, &url, &id, 2, 3, Some(&v1)).to_bytes();
    let s = wait_for("\"version\":2").await;
    assert!(
        s["catalog"]["warning"]
            .as_str()
            .unwrap_or("")
            .contains("expires in"),
        "{s}"
    );

    // Same version, different bytes, validly signed: equivocation.
    *slot.lock().unwrap() =
        signed_catalog_after(&apps_dir, &keys, &url, &id, 2, 31, Some(&v1)).to_bytes();
    let s = wait_for("equivocation").await;
    assert_eq!(
        s["catalog"]["version"], 2,
        "the current catalog must be kept"
    );

    assert!(
        s["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "equivocation"),
        "{s}"
    );
    assert_eq!(s["last_pull"]["ok"], false);

    // An origin (or a man in the middle) replaying the older catalog: rollback refused.
    *slot.lock().unwrap() = v1.clone();
    let s = wait_for("rollback refused").await;
    assert_eq!(s["catalog"]["version"], 2);

    // A node that was behind takes the newest valid catalog and records the gap.
    *slot.lock().unwrap() = signed_catalog(&keys, &url, &id, 5, 30).to_bytes();
    let s = wait_for("\"version\":5").await;
    assert_eq!(s["catalog"]["missed_versions"], 2, "{s}");
    assert_eq!(s["last_pull"]["ok"], true);
    // The equivocation alarm stays visible after the node moved on.
    assert!(
        s["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "equivocation"),
        "{s}"
    );
    let apps = client
        .get(format!("{api}/v1/catalog/apps"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(apps[0]["id"], "hello");
    daemon.abort();
    server.abort();
}

/// A node never learns its trust anchor from the network: no pinned root, no start.
#[tokio::test]
async fn node_refuses_to_start_without_a_valid_pinned_root() {
    let _service = PODMAN_SERVICE.read().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = archy_node::NodeConfig {
        data_dir: tmp.path().join("node"),
        origin: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    };
    let err = format!(
        "{:#}",
        archy_node::Node::start(config.clone())
            .await
            .err()
            .expect("no pinned root")
    );
    assert!(err.contains("no pinned root"), "{err}");

    // A root whose own keys did not sign it is not a trust anchor.
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let mut env = Envelope::from_bytes(&std::fs::read(&root).unwrap()).unwrap();
    env.signatures.clear();
    env.sign(&SecretKey::from_bytes(&[5; 32])).unwrap();
    std::fs::write(&root, env.to_bytes()).unwrap();
    config.pinned_root = Some(root.clone());
    let err = format!(
        "{:#}",
        archy_node::Node::start(config)
            .await
            .err()
            .expect("bad pinned root")
    );
    assert!(
        err.contains("pinned root") && err.contains("root role: 0 valid signature(s)"),
        "{err}"
    );
}

/// The origin serves only what it can back byte for byte, and only signed catalogs.
#[tokio::test]
async fn origin_refuses_unsigned_or_mismatched_catalogs() {
    let _service = PODMAN_SERVICE.read().await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let dir = tmp.path().join("origin");
    let id = archy_swarm::endpoint_id_of(&dir.join("swarm"))
        .unwrap()
        .to_string();
    let config =
        |catalog: &std::path::Path, dir: &std::path::Path| archy_node::origin::OriginConfig {
            data_dir: dir.to_owned(),
            catalog: catalog.to_owned(),
            artifacts: artifacts_dir(),
            iroh_bind: "127.0.0.1:0".parse().unwrap(),
            roots: None,
        };
    let path = tmp.path().join("catalog.json");
    // Each attempt gets its own store (a failed start does not release the last one), same key.
    let same_key = |name: &str| {
        let other = tmp.path().join(name);
        std::fs::create_dir_all(other.join("swarm")).unwrap();
        std::fs::copy(dir.join("swarm/iroh.key"), other.join("swarm/iroh.key")).unwrap();
        other
    };

    let mut unsigned = signed_catalog(&keys, "http://127.0.0.1:7780", &id, 1, 30);
    unsigned.signatures.clear();
    std::fs::write(&path, unsigned.to_bytes()).unwrap();
    let err = format!(
        "{:#}",
        archy_node::origin::prepare(&config(&path, &dir))
            .await
            .err()
            .unwrap()
    );
    assert!(err.contains("carries no signature"), "{err}");

    let mut wrong = edit_payload(
        &signed_catalog(&keys, "http://127.0.0.1:7780", &id, 1, 30),
        |v| {
            v["apps"][0]["artifacts"][0]["blake3"] = blake3::hash(b"x").to_hex().to_string().into();
        },
    );
    wrong.sign(&keys.catalog).unwrap();
    std::fs::write(&path, wrong.to_bytes()).unwrap();
    let err = format!(
        "{:#}",
        archy_node::origin::prepare(&config(&path, &same_key("b")))
            .await
            .err()
            .unwrap()
    );
    assert!(err.contains("does not match the catalog"), "{err}");

    // A catalog naming another origin's endpoint is refused too.
    let elsewhere = signed_catalog(&keys, "http://127.0.0.1:7780", &"cd".repeat(32), 1, 30);
    std::fs::write(&path, elsewhere.to_bytes()).unwrap();
    let err = format!(
        "{:#}",
        archy_node::origin::prepare(&config(&path, &same_key("c")))
            .await
            .err()
            .unwrap()
    );
    assert!(err.contains("archy origin id"), "{err}");
}

/// Root rotation over the origin's HTTP: N+1 is accepted only with the old and the new root
/// thresholds, the new catalog keys take over, and the chain survives a node restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_rotation_is_walked_and_checked() {
    let _service = PODMAN_SERVICE.read().await;
    use archy_registry::{PayloadType, Root};
    use chrono::{Duration, Utc};
    let tmp = tempfile::tempdir().unwrap();
    let old = Keys::new();
    let root_v1 = old.write_root(tmp.path());
    let (swarm, id) = origin_swarm(&tmp.path().join("origin-swarm")).await;
    // The new root replaces both keys (say the old catalog key was compromised).
    let new = Keys {
        root: SecretKey::from_bytes(&[21; 32]),
        catalog: SecretKey::from_bytes(&[22; 32]),
    };
    let make_root = |version: u64, keys: &Keys| {
        Root::new(
            version,
            Utc::now() + Duration::days(365),
            &[keys.root.public()],
            1,
            &[keys.catalog.public()],
            1,
        )
        .unwrap()
    };
    let mut root_v2 = Envelope::unsigned(PayloadType::Root, &make_root(2, &new).to_json());
    root_v2.sign(&new.root).unwrap();
    let only_new_keys = root_v2.to_bytes();
    root_v2.sign(&old.root).unwrap();

    let (listener, url) = loopback_listener().await;
    let catalog = signed_catalog(&new, &url, &id, 1, 30).to_bytes();
    let slot: CatalogSlot = std::sync::Arc::new(std::sync::Mutex::new(catalog));
    let roots: RootsSlot = Default::default();
    let server = serve_slot(listener, slot.clone(), roots.clone(), swarm.clone());
    let node_dir = tmp.path().join("node");
    let node = start_node(&node_dir, &url, &root_v1).await;

    // Signed by keys the pinned root does not know.
    let err = node.pull_catalog().await.unwrap_err();
    assert!(
        err.message.contains("catalog role: 0 valid signature(s)"),
        "{}",
        err.message
    );

    // Root 2 signed by its own keys only: not a valid rotation.
    roots.lock().unwrap().insert(2, only_new_keys);
    let err = node.pull_catalog().await.unwrap_err();
    assert!(
        err.message.contains("root version 2") && err.message.contains("root role: 0 valid"),
        "{}",
        err.message
    );
    assert_eq!(node.status().await.unwrap().root_version, 1);
    assert!(
        node.status()
            .await
            .unwrap()
            .alarms
            .iter()
            .any(|a| a.kind == "root-rotation")
    );

    // Double-signed: accepted, and the catalog under the new keys with it.
    roots.lock().unwrap().insert(2, root_v2.to_bytes());
    node.pull_catalog()
        .await
        .expect("rotation and catalog accepted");
    let status = node.status().await.unwrap();
    assert_eq!(
        (status.root_version, status.catalog.unwrap().version),
        (2, 1)
    );

    // A root that skips a version is never fetched: the walk asks for 3, finds none.
    let mut root_v4 = Envelope::unsigned(PayloadType::Root, &make_root(4, &new).to_json());
    root_v4.sign(&new.root).unwrap();
    roots.lock().unwrap().insert(4, root_v4.to_bytes());
    node.pull_catalog().await.unwrap();
    assert_eq!(node.status().await.unwrap().root_version, 2);

    node.shutdown().await;
    drop(node);
    let node = start_node(&node_dir, &url, &root_v1).await;
    assert_eq!(
        node.status().await.unwrap().root_version,
        2,
        "rotation chain not restored"
    );
    assert_eq!(node.catalog_apps().await.unwrap().len(), 1);

    // The root threshold was compromised: the operator pins a brand-new root out of band.
    // The node drops what it learned under the old anchor, says so, and starts over.
    node.shutdown().await;
    drop(node);
    let fresh = Keys {
        root: SecretKey::from_bytes(&[31; 32]),
        catalog: SecretKey::from_bytes(&[32; 32]),
    };
    let fresh_dir = tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh_dir).unwrap();
    let fresh_root = fresh.write_root(&fresh_dir);
    roots.lock().unwrap().clear();
    let node = start_node(&node_dir, &url, &fresh_root).await;
    let status = node.status().await.unwrap();
    assert_eq!((status.root_version, status.catalog.is_none()), (1, true));
    assert!(
        status
            .alarms
            .iter()
            .any(|a| a.kind == "pinned-root-replaced"),
        "{:?}",
        status.alarms
    );
    *slot.lock().unwrap() = signed_catalog(&fresh, &url, &id, 1, 30).to_bytes();
    node.pull_catalog()
        .await
        .expect("catalog under the new anchor");
    server.abort();
}

/// An expired catalog freezes installs and updates, never the apps already running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_catalog_keeps_running_apps_running() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let apps = repo_root().join("apps");
    let origin = TestOrigin::with(tmp.path(), |keys, url, id| {
        signed_catalog_expiring(&apps, keys, url, id, 1, chrono::Duration::seconds(20), None)
    })
    .await;
    let node = origin.node(&tmp.path().join("node")).await;
    node.pull_catalog().await.unwrap();
    let status = node.status().await.unwrap();
    assert!(
        status
            .catalog
            .unwrap()
            .warning
            .unwrap()
            .contains("expires in 0 day(s)")
    );
    let app = node.install("hello").await.unwrap();
    let page = app.url.unwrap();

    let expires = chrono::Utc::now() + chrono::Duration::seconds(21);
    while chrono::Utc::now() < expires {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let catalog = node.status().await.unwrap().catalog.unwrap();
    assert!(catalog.expired, "{catalog:?}");
    assert!(
        catalog
            .warning
            .unwrap()
            .contains("running apps keep running")
    );
    // The app is untouched and still managed: the reconciler repairs it as before.
    assert!(reqwest::get(&page).await.unwrap().status().is_success());
    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    engine.kill_container("archy-hello-web").await.unwrap();
    assert_eq!(node.reconcile_once().await.unwrap().len(), 1);
    assert!(reqwest::get(&page).await.unwrap().status().is_success());
    // Nothing new is installed from it.
    node.uninstall("hello", false).await.unwrap();
    let err = node.install("hello").await.unwrap_err();
    assert!(
        err.message.contains("expired") && err.message.contains("no installs"),
        "{}",
        err.message
    );
    assert!(!podman_has_app("hello").await);
    node.uninstall("hello", true).await.unwrap();
    origin.server.abort();
}
