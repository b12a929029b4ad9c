//! A node killed (SIGKILL) mid-operation: at the next start the interrupted install or
//! update is rolled back, and nothing half-done survives.

use super::*;

/// A node killed (SIGKILL) in the middle of an install leaves no ghost: at the next start
/// the operation is rolled back, and the app can be installed cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_install_rolls_back_at_restart() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(tmp.path()).await;
    let mut node = NodeProcess::start(tmp.path(), &origin.url, &origin.root, "").await;
    let api = node.api.clone();
    let client = node.client();
    let response = client
        .post(format!("{api}/v1/apps/hello/install?stream=true"))
        .send()
        .await
        .unwrap();
    // Read progress until the node is creating containers, then pull the plug.
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    use futures::StreamExt;
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if seen.contains("\"stage\":\"creating\"") {
            break;
        }
    }
    assert!(
        seen.contains("creating"),
        "never reached the creating stage: {seen}"
    );

    // Restart: the interrupted install is rolled back, nothing half-installed remains.
    node.restart().await;
    let apps = node.get_json("/v1/apps").await;
    assert_eq!(
        apps,
        serde_json::json!([]),
        "an interrupted install is listed"
    );
    assert!(
        !podman_has_app("hello").await,
        "the killed install left containers behind"
    );
    let log = node.log();
    assert!(
        log.contains("recovering interrupted operation"),
        "no rollback at restart: {log}"
    );

    // And installing again works.
    let app = node.post_json("/v1/apps/hello/install").await;
    assert_eq!(app["state"], "running", "{app}");
    node.purge("hello").await;
    assert!(!podman_has_app("hello").await);
    drop(node);
    origin.server.abort();
}

/// A node killed in the middle of an update comes back on the previous version: the half
/// of the update that exists is removed and the reconciler rebuilds what sqlite records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_update_comes_back_on_the_previous_version() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(tmp.path()).await;
    let v1 = origin.catalog();
    // 1.1.0 takes its time to become healthy (it never does), which leaves room to kill.
    let slow = hello_variant(&tmp.path().join("v2"), |m| {
        m.replace("version: 1.0.0", "version: 1.1.0")
            .replace("path: /healthz", "path: /not-yet")
    });
    let v2 = origin.sign(&slow, 2, 30, Some(&v1));
    let extra = "reconcile_interval_seconds = 1\n";
    let mut node = NodeProcess::start(tmp.path(), &origin.url, &origin.root, extra).await;
    let api = node.api.clone();
    let client = node.client();
    let app = node.post_json("/v1/apps/hello/install").await;
    let page = app["url"].as_str().unwrap().to_owned();

    origin.serve(v2);
    client
        .post(format!("{api}/v1/catalog/pull"))
        .send()
        .await
        .unwrap();
    let update = tokio::spawn(client.post(format!("{api}/v1/apps/hello/update")).send());
    // Kill once the new version's container exists.
    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    let mut replaced = false;
    for _ in 0..400 {
        let version = engine
            .inspect_container("archy-hello-web")
            .await
            .ok()
            .flatten()
            .and_then(|c| {
                c["Config"]["Labels"]["archy.version"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        if version.trim() == "1.1.0" {
            replaced = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(replaced, "the update never created the new container");
    node.kill();
    let _ = update.await;

    node.restart().await;
    let mut back = serde_json::Value::Null;
    for _ in 0..100 {
        back = node.get_json("/v1/apps/hello").await;
        if back["state"] == "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        (back["version"].as_str(), back["state"].as_str()),
        (Some("1.0.0"), Some("running")),
        "{back}"
    );
    let version = engine
        .inspect_container("archy-hello-web")
        .await
        .unwrap()
        .expect("the container exists")["Config"]["Labels"]["archy.version"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        version.trim(),
        "1.0.0",
        "the half-done update's container survived"
    );
    assert!(reqwest::get(&page).await.unwrap().status().is_success());
    node.purge("hello").await;
    origin.server.abort();
}

/// An update re-points the app's pins to the new version's blobs just before it moves the
/// record. A node killed between the two (set up here exactly: the pin moved, the record
/// and an update operation still running) comes back with the pins on the recorded
/// version's blobs, so nothing it runs from is left collectable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_killed_after_repinning_comes_back_with_the_recorded_versions_pins() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(tmp.path()).await;
    let dir = tmp.path().join("node");
    let config = node_config(&dir, &origin.url, &origin.root);
    let node = archy_node::Node::start(config.clone()).await.unwrap();
    node.pull_catalog().await.unwrap();
    node.install("hello").await.unwrap();
    let pinned = node.swarm().pins("archy/app/hello/").await.unwrap();
    assert_eq!(pinned.len(), 1, "{pinned:?}");
    assert!(node.shutdown().await);

    // The state a kill leaves between the two steps: the update operation running at its
    // last stage, and the app's pin on a blob of another version.
    let db = archy_node::db::open(&dir.join("archy.db")).await.unwrap();
    let op = archy_node::db::begin_operation(&db, "hello", "update")
        .await
        .unwrap();
    archy_node::db::set_stage(&db, op, "starting")
        .await
        .unwrap();
    db.close().await;
    let store = archy_swarm::Swarm::start(archy_swarm::SwarmConfig::new(dir.join("swarm")))
        .await
        .unwrap();
    let other = tmp.path().join("next-image.tar");
    std::fs::write(&other, b"the next version's image").unwrap();
    let next = store.import_file(&other, "test/next").await.unwrap();
    store.pin(&next.hash, &pinned[0].0).await.unwrap();
    assert_ne!(store.pins("archy/app/hello/").await.unwrap(), pinned);
    store.shutdown().await;

    let node = archy_node::Node::start(config).await.unwrap();
    assert_eq!(
        node.swarm().pins("archy/app/hello/").await.unwrap(),
        pinned,
        "the recorded version's blob is not pinned after recovery"
    );
    let ops = node.operations().await.unwrap();
    assert!(
        ops.iter().any(|o| o.app == "hello"
            && o.kind == archy_api::OperationKind::Update
            && o.state == archy_api::OperationState::Interrupted),
        "{ops:?}"
    );
    node.uninstall("hello", true).await.unwrap();
    node.shutdown().await;
    origin.server.abort();
}
