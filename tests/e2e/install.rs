//! Installing for real: a signed catalog's app fetched over iroh into rootless Podman and
//! run, failed installs and updates rolled back completely, dependencies between apps,
//! and a multi-container app on its own network.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_catalog_installs_hello_over_iroh_into_rootless_podman() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let origin_dir = tmp.path().join("origin");
    let origin_id = archy_swarm::endpoint_id_of(&origin_dir.join("swarm"))
        .unwrap()
        .to_string();
    let (listener, origin_url) = loopback_listener().await;
    let catalog = signed_catalog(&keys, &origin_url, &origin_id, 1, 30);
    let catalog_path = tmp.path().join("catalog.json");
    std::fs::write(&catalog_path, catalog.to_bytes()).unwrap();
    let origin = start_origin(&origin_dir, &catalog_path, listener, origin_url.clone()).await;

    // Artifacts that do not match what the signed catalog says are refused before Podman sees them.
    type ArtifactCase = (&'static str, fn(&mut serde_json::Value), &'static str);
    let artifact_cases: [ArtifactCase; 2] = [
        (
            "wrong hash",
            |v| {
                v["apps"][0]["artifacts"][0]["blake3"] =
                    blake3::hash(b"other bytes").to_hex().to_string().into()
            },
            "no provider could serve it",
        ),
        (
            "wrong size",
            |v| {
                let size = v["apps"][0]["artifacts"][0]["size"].as_u64().unwrap();
                v["apps"][0]["artifacts"][0]["size"] = (size - 1000).into();
            },
            "declared size",
        ),
    ];
    for (i, (name, edit, expected)) in artifact_cases.into_iter().enumerate() {
        let (listener, url) = loopback_listener().await;
        let mut bad = edit_payload(&signed_catalog(&keys, &url, &origin_id, 1, 30), edit);
        bad.signatures.clear();
        bad.sign(&keys.catalog).unwrap();
        let server = serve_bytes(listener, bad.to_bytes(), origin.swarm.clone());
        let node = start_node(&tmp.path().join(format!("bad-node-{i}")), &url, &root).await;
        node.pull_catalog()
            .await
            .expect("validly signed catalog is accepted");
        let err = node.install("hello").await.expect_err(name);
        assert!(
            err.message.contains(expected),
            "{name}: expected {expected:?} in {:?}",
            err.message
        );
        assert!(
            node.apps().await.unwrap().is_empty(),
            "{name}: app recorded"
        );
        assert!(
            !podman_has_app("hello").await,
            "{name}: containers left behind"
        );
        server.abort();
    }

    // The honest path.
    let node = start_node(&tmp.path().join("node"), &origin_url, &root).await;
    let update = node.pull_catalog().await.expect("catalog accepted");
    assert_eq!(
        update,
        archy_registry::CatalogUpdate::Updated {
            from: None,
            to: 1,
            missed: 0
        }
    );
    assert_eq!(
        node.pull_catalog().await.unwrap(),
        archy_registry::CatalogUpdate::Unchanged { version: 1 }
    );
    let missing = node.install("nope").await.unwrap_err();
    assert!(
        missing.message.contains("no app \"nope\""),
        "{}",
        missing.message
    );

    let events = std::sync::Mutex::new(Vec::new());
    let sink = |p: archy_orchestrator::Progress| events.lock().unwrap().push(p);
    let app = node
        .install_with_progress("hello", &sink)
        .await
        .expect("hello installs");
    assert_eq!(app.state, "running");
    let events = events.into_inner().unwrap();
    let stages: Vec<_> = events.iter().map(|p| p.stage).collect();
    use archy_orchestrator::Stage;
    for stage in [
        Stage::Checking,
        Stage::Fetching,
        Stage::Loading,
        Stage::Creating,
        Stage::Starting,
        Stage::WaitingForHealth,
        Stage::Finished,
    ] {
        assert!(stages.contains(&stage), "no {stage:?} event in {stages:?}");
    }
    assert!(
        stages.windows(2).all(|w| w[0] <= w[1]),
        "stages went backward: {stages:?}"
    );
    let fetched = events
        .iter()
        .filter(|p| p.stage == Stage::Fetching)
        .map(|p| p.done)
        .max()
        .unwrap();
    assert_eq!(
        fetched,
        events
            .iter()
            .find(|p| p.stage == Stage::Fetching)
            .unwrap()
            .total,
        "fetch progress never reached the artifact size"
    );
    // The image came over iroh, all of it, and nothing fell back to HTTP.
    let swarm = node.status().await.unwrap().swarm;
    let image_size = std::fs::metadata(artifacts_dir().join("hello/image.tar"))
        .unwrap()
        .len();
    assert_eq!(
        (
            swarm.bytes_from_iroh,
            swarm.bytes_from_http,
            swarm.http_fallbacks
        ),
        (image_size, 0, 0)
    );
    let url = app.url.clone().expect("hello declares a UI");
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Hello from Archipelago"), "{page}");
    let again = node.install("hello").await.unwrap_err();
    assert!(
        again.message.contains("already installed"),
        "{}",
        again.message
    );

    let stopped = node.stop_app("hello").await.unwrap();
    assert_eq!(
        (stopped.state.as_str(), stopped.desired.as_str()),
        ("stopped", "stopped")
    );
    assert!(
        reqwest::get(&url).await.is_err(),
        "a stopped app still answers"
    );
    let started = node.start_app("hello").await.unwrap();
    assert_eq!(started.state, "running");
    let restarted = node.restart_app("hello").await.unwrap();
    assert_eq!(restarted.state, "running");
    assert!(reqwest::get(&url).await.unwrap().status().is_success());

    // State survives a node restart: sqlite and the re-verified catalog.
    node.shutdown().await;
    drop(node);
    let node = start_node(&tmp.path().join("node"), &origin_url, &root).await;
    let apps = node.apps().await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].state, "running");

    // The reconciler: running containers are adopted as they are, never recreated.
    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    let container_id = || async {
        engine
            .inspect_container("archy-hello-web")
            .await
            .unwrap()
            .expect("the container exists")["Id"]
            .to_string()
    };
    let id_before = container_id().await;
    assert!(
        node.reconcile_once().await.unwrap().is_empty(),
        "a healthy app was repaired"
    );
    assert_eq!(
        container_id().await,
        id_before,
        "a running container was recreated"
    );

    // A container removed behind the node's back is recreated from the pinned local blob.
    engine.remove_container("archy-hello-web").await.unwrap();
    let repairs = node.reconcile_once().await.unwrap();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert_eq!(repairs[0].1.recreated, vec!["archy-hello-web".to_owned()]);
    assert!(reqwest::get(&url).await.unwrap().status().is_success());

    // A container killed behind the node's back is started again.
    engine.kill_container("archy-hello-web").await.unwrap();
    // The kill returns once Podman says the container exited (not while it is stopping).
    let repairs = node.reconcile_once().await.unwrap();
    assert_eq!(
        repairs[0].1.restarted,
        vec!["archy-hello-web".to_owned()],
        "{repairs:?}"
    );
    assert!(reqwest::get(&url).await.unwrap().status().is_success());

    // An app the user stopped stays stopped.
    node.stop_app("hello").await.unwrap();
    assert!(node.reconcile_once().await.unwrap().is_empty());
    assert_eq!(node.app("hello").await.unwrap().state, "stopped");

    node.uninstall("hello", false).await.unwrap();
    assert!(!podman_has_app("hello").await);
    assert!(node.apps().await.unwrap().is_empty());

    // Reinstall through the API, streaming progress as the CLI does.
    let (api_listener, api) = loopback_listener().await;
    let api_server = tokio::spawn(
        axum::serve(api_listener, archy_node::api_router(node.clone()).unwrap()).into_future(),
    );
    let body = api_client(&node.config().data_dir)
        .post(format!("{api}/v1/apps/hello/install?stream=true"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 3, "{body}");
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l.get("progress").is_some()),
        "{body}"
    );
    assert_eq!(
        lines.last().unwrap()["result"]["state"],
        "running",
        "{body}"
    );
    assert!(reqwest::get(&url).await.unwrap().status().is_success());
    api_server.abort();
    node.uninstall("hello", false).await.unwrap();
    let err = node.uninstall("hello", false).await.unwrap_err();
    assert!(err.message.contains("not installed"), "{}", err.message);
    node.uninstall("hello", true).await.unwrap();
    origin.server.abort();
}

/// Installs that fail inside Podman (port taken, never healthy) leave no container,
/// no record and no secrets behind; the error names the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_installs_roll_back_completely() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let swarm_dir = tmp.path().join("origin");
    let origin_id = archy_swarm::endpoint_id_of(&swarm_dir.join("swarm"))
        .unwrap()
        .to_string();
    let (listener, url) = loopback_listener().await;

    // Never healthy: the health check asks for a page the app does not serve.
    let apps = hello_variant(tmp.path(), |m| {
        m.replace("path: /healthz", "path: /no-such-page")
            .replace("start_period_seconds: 20", "start_period_seconds: 1")
            .replace("retries: 3", "retries: 1")
            .replace("interval_seconds: 2", "interval_seconds: 1")
    });
    let catalog = signed_catalog_of(&apps, &keys, &url, &origin_id, 1, 30);
    let catalog_path = tmp.path().join("catalog.json");
    std::fs::write(&catalog_path, catalog.to_bytes()).unwrap();
    let origin = start_origin(&swarm_dir, &catalog_path, listener, url.clone()).await;
    let node = start_node(&tmp.path().join("node"), &url, &root).await;
    node.pull_catalog().await.unwrap();
    let err = node.install("hello").await.unwrap_err();
    assert!(
        err.message.contains("did not become healthy") && err.message.contains("404"),
        "{}",
        err.message
    );
    assert!(
        !podman_has_app("hello").await,
        "unhealthy install left containers"
    );
    assert!(node.apps().await.unwrap().is_empty());
    assert!(
        !tmp.path().join("node/apps/hello").exists(),
        "app data of a failed fresh install was kept"
    );

    // Port already taken on the host: refused before anything is created.
    let squatter =
        std::net::TcpListener::bind("127.0.0.1:18080").expect("port 18080 free for the test");
    let err = node.install("hello").await.unwrap_err();
    assert!(
        err.message.contains("18080") && err.message.contains("in use"),
        "{}",
        err.message
    );
    assert!(!podman_has_app("hello").await);
    drop(squatter);
    origin.server.abort();

    // Too little disk: refused before a byte is fetched.
    let (listener, url) = loopback_listener().await;
    let apps = hello_variant(&tmp.path().join("huge"), |m| {
        m.replace("disk_mb: 10", "disk_mb: 1000000000")
    });
    let catalog = signed_catalog_of(&apps, &keys, &url, &origin_id, 1, 30);
    let server = serve_bytes(listener, catalog.to_bytes(), origin.swarm.clone());
    let node = start_node(&tmp.path().join("node-huge"), &url, &root).await;
    node.pull_catalog().await.unwrap();
    let err = node.install("hello").await.unwrap_err();
    assert!(
        err.message.contains("no space left on") && err.message.contains("MiB"),
        "{}",
        err.message
    );
    assert!(!podman_has_app("hello").await);
    assert!(node.apps().await.unwrap().is_empty());
    let hash = catalog_artifact_hash(&catalog);
    assert!(
        node.swarm()
            .complete_size(&archy_swarm::BlobRef::from_hex(&hash, 0).unwrap().hash)
            .await
            .unwrap()
            .is_none(),
        "the artifact was fetched although the install could not fit"
    );
    server.abort();
}

fn catalog_artifact_hash(env: &Envelope) -> String {
    let v: serde_json::Value = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    v["apps"][0]["artifacts"][0]["blake3"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Updates keep volumes, secrets, names and ports; an update that never becomes healthy
/// goes back to the previous version with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_rolls_back_when_unhealthy_and_keeps_data() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let v1 = hello_variant(&tmp.path().join("v1"), with_data);
    let v2 = hello_variant(&tmp.path().join("v2"), |m| {
        with_data(m)
            .replace("version: 1.0.0", "version: 1.1.0")
            .replace("path: /healthz", "path: /broken-in-1.1")
            .replace("start_period_seconds: 20", "start_period_seconds: 1")
            .replace("retries: 3", "retries: 1")
            .replace("interval_seconds: 2", "interval_seconds: 1")
    });
    let v3 = hello_variant(&tmp.path().join("v3"), |m| {
        with_data(m).replace("version: 1.0.0", "version: 1.2.0")
    });

    let origin = TestOrigin::of(tmp.path(), &v1).await;
    let c1 = origin.catalog();
    let node_dir = tmp.path().join("node");
    let node = origin.node(&node_dir).await;
    node.pull_catalog().await.unwrap();
    let app = node.install("hello").await.unwrap();
    let page = app.url.unwrap();

    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    // The image runs as uid 1000: the volume must be writable by it.
    engine
        .exec(
            "archy-hello-web",
            &["/bin/busybox", "sh", "-c", "echo keep > /data/keep"],
        )
        .await
        .expect("the app can write its own volume");
    let read_data = || async {
        engine
            .exec("archy-hello-web", &["/bin/busybox", "cat", "/data/keep"])
            .await
            .unwrap_or_default()
    };
    let token_path = node_dir.join("apps/hello/secrets/token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    let token_in_app = || async {
        engine
            .exec(
                "archy-hello-web",
                &["/bin/busybox", "sh", "-c", "echo $TOKEN"],
            )
            .await
            .unwrap_or_default()
    };
    assert_eq!(token_in_app().await.trim(), token);

    // 1.1.0 never becomes healthy: back to 1.0.0 with its data.
    let c2 = origin.sign(&v2, 2, 30, Some(&c1));
    origin.serve(c2.clone());
    node.pull_catalog().await.unwrap();
    let err = node.update("hello", false).await.unwrap_err();
    assert!(
        err.message.contains("rolled back to 1.0.0") && err.message.contains("404"),
        "{}",
        err.message
    );
    let app = node.app("hello").await.unwrap();
    assert_eq!(
        (app.version.as_str(), app.state.as_str()),
        ("1.0.0", "running")
    );
    assert!(reqwest::get(&page).await.unwrap().status().is_success());
    assert_eq!(read_data().await.trim(), "keep");

    // 1.2.0 is healthy: same name, port, data and secret.
    origin.serve(origin.sign(&v3, 3, 30, Some(&c2)));
    node.pull_catalog().await.unwrap();
    let app = node.update("hello", false).await.expect("update to 1.2.0");
    assert_eq!(
        (app.version.as_str(), app.state.as_str()),
        ("1.2.0", "running")
    );
    assert_eq!(app.url.as_deref(), Some(page.as_str()));
    assert_eq!(read_data().await.trim(), "keep");
    assert_eq!(token_in_app().await.trim(), token);
    assert_eq!(std::fs::read_to_string(&token_path).unwrap(), token);
    let err = node.update("hello", false).await.unwrap_err();
    assert!(err.message.contains("nothing newer"), "{}", err.message);

    // The version survives a restart, and purge removes data and secrets.
    node.shutdown().await;
    drop(node);
    let node = origin.node(&node_dir).await;
    assert_eq!(node.app("hello").await.unwrap().version, "1.2.0");
    node.uninstall("hello", true).await.unwrap();
    assert!(!token_path.exists());
    let volumes = engine.volumes_of("hello").await.unwrap();
    assert!(volumes.is_empty(), "purge left volumes: {volumes:?}");
    origin.server.abort();
}

/// Dependencies between apps: install refuses a missing or too-old dependency by name, and
/// an app others need cannot be uninstalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_dependencies_are_enforced() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    remove_leftovers("greeter").await;
    let tmp = tempfile::tempdir().unwrap();
    let same = |m: String| m;
    let needs_hello = |m: String| {
        m.replace(
            "resources:",
            "dependencies: [{ id: hello, version: \"^1\" }]\nresources:",
        )
    };
    let needs_hello_2 = |m: String| {
        m.replace(
            "resources:",
            "dependencies: [{ id: hello, version: \"^2\" }]\nresources:",
        )
    };
    let apps = apps_from_hello(
        &tmp.path().join("one"),
        &[("hello", 18080, &same), ("greeter", 18081, &needs_hello)],
    );
    let origin = TestOrigin::of(tmp.path(), &apps).await;
    let catalog = origin.catalog();
    let node = origin.node(&tmp.path().join("node")).await;
    node.pull_catalog().await.unwrap();

    let err = node.install("greeter").await.unwrap_err();
    assert!(
        err.message
            .contains("greeter needs hello ^1: hello is not installed"),
        "{}",
        err.message
    );
    assert!(!podman_has_app("greeter").await);

    // Asked to bring its dependencies: when greeter itself then fails (its port is taken),
    // the hello installed for it is removed again.
    let blocker = std::net::TcpListener::bind("127.0.0.1:18081").expect("port 18081 free");
    let err = node
        .install_with_dependencies("greeter", &|_| {})
        .await
        .unwrap_err();
    assert!(err.message.contains("18081"), "{}", err.message);
    assert!(
        !podman_has_app("hello").await && node.app("hello").await.is_err(),
        "the dependency installed for a failed install stayed"
    );
    drop(blocker);
    let greeter = node
        .install_with_dependencies("greeter", &|_| {})
        .await
        .unwrap();
    assert_eq!(greeter.state, "running");
    assert_eq!(node.app("hello").await.unwrap().state, "running");
    let err = node.uninstall("hello", true).await.unwrap_err();
    assert!(
        err.message.contains("hello is needed by greeter"),
        "{}",
        err.message
    );
    assert!(podman_has_app("hello").await, "a needed app was removed");

    // A newer greeter that needs hello 2 cannot be applied while hello is 1.x.
    let apps2 = apps_from_hello(
        &tmp.path().join("two"),
        &[
            ("hello", 18080, &same),
            ("greeter", 18081, &|m: String| {
                needs_hello_2(m).replace("version: 1.0.0", "version: 1.1.0")
            }),
        ],
    );
    origin.serve(origin.sign(&apps2, 2, 30, Some(&catalog)));
    node.pull_catalog().await.unwrap();
    let err = node.update("greeter", false).await.unwrap_err();
    assert!(
        err.message
            .contains("hello 1.0.0 is installed, which is outside ^2"),
        "{}",
        err.message
    );
    assert_eq!(node.app("greeter").await.unwrap().version, "1.0.0");

    node.uninstall("greeter", true).await.unwrap();
    node.uninstall("hello", true).await.unwrap();
    assert!(!podman_has_app("hello").await && !podman_has_app("greeter").await);
    origin.server.abort();
}

/// A multi-container app: its own network where containers find each other by name, start
/// order from depends_on and health, and nothing left of it (network included) after removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_container_app_gets_its_own_network_and_start_order() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("duo").await;
    let tmp = tempfile::tempdir().unwrap();
    // `web` is healthy only when it reaches `api` by its name on the app network.
    let duo = |_: String| {
        r#"
id: duo
name: Duo
version: 1.0.0
artifacts:
  - { name: image, media_type: application/vnd.oci.image.layout.v1.tar }
containers:
  - name: web
    image: { artifact: image }
    depends_on: [api]
    ports: [{ container: 8080, host: 18082 }]
    health:
      command: ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://api:8080/healthz"]
      interval_seconds: 1
      start_period_seconds: 10
    stop_grace_seconds: 5
  - name: api
    image: { artifact: image }
    health:
      command: ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
      interval_seconds: 1
      start_period_seconds: 10
    stop_grace_seconds: 5
ui: { container: web, port: 8080 }
"#
        .to_owned()
    };
    let apps = apps_from_hello(&tmp.path().join("apps"), &[("duo", 18082, &duo)]);
    let origin = TestOrigin::of(tmp.path(), &apps).await;
    let node = origin.node(&tmp.path().join("node")).await;
    node.pull_catalog().await.unwrap();

    let events = std::sync::Mutex::new(Vec::new());
    let sink = |p: archy_orchestrator::Progress| events.lock().unwrap().push(p);
    let app = node
        .install_with_progress("duo", &sink)
        .await
        .expect("duo installs");
    assert_eq!(app.state, "running");
    let started: Vec<String> = events
        .into_inner()
        .unwrap()
        .into_iter()
        .filter(|p| p.stage == archy_orchestrator::Stage::Starting)
        .map(|p| p.detail)
        .collect();
    assert_eq!(started, ["api", "web"], "depends_on must start api first");
    assert!(
        reqwest::get(app.url.unwrap())
            .await
            .unwrap()
            .status()
            .is_success()
    );

    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    let reached = engine
        .exec(
            "archy-duo-web",
            &[
                "/bin/busybox",
                "wget",
                "-q",
                "-O",
                "-",
                "http://api:8080/healthz",
            ],
        )
        .await
        .unwrap();
    assert_eq!(reached.trim(), "ok");

    node.uninstall("duo", true).await.unwrap();
    assert!(!podman_has_app("duo").await);
    assert!(
        engine
            .network_exists("archy-duo")
            .await
            .is_ok_and(|exists| !exists),
        "the app network was left behind"
    );
    origin.server.abort();
}
