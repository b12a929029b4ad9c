//! The walking skeleton with real parts: a signed catalog served by an origin on loopback,
//! a node that pulls and verifies it into sqlite, fetches the image over iroh, and runs the
//! app in rootless Podman. Every bad input gets a clear error and leaves nothing behind.

use archy_registry::{Envelope, SecretKey};
use archy_tests::*;
use base64::Engine as _;

/// These tests share the rootless Podman user and the hello app's host port: one at a time.
static PODMAN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn podman_has_app(app: &str) -> bool {
    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .expect("podman reachable");
    !engine.containers_of(app).await.unwrap().is_empty()
}

async fn remove_leftovers(app: &str) {
    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .expect("podman reachable");
    for c in engine.containers_of(app).await.unwrap() {
        engine.remove_container(&c.name).await.unwrap();
    }
}

/// Rewrites a catalog's payload with `edit`, keeping (now invalid) signatures unless re-signed.
fn edit_payload(env: &Envelope, edit: impl FnOnce(&mut serde_json::Value)) -> Envelope {
    let mut value: serde_json::Value =
        serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    edit(&mut value);
    let mut out = env.clone();
    out.payload =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&value).unwrap());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalogs_are_refused_and_nothing_is_installed() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    // A real swarm node stands behind the hostile origins, so only the catalog is at fault.
    let swarm = std::sync::Arc::new(
        archy_swarm::Swarm::start(archy_swarm::SwarmConfig::new(
            tmp.path().join("origin-swarm"),
        ))
        .await
        .unwrap(),
    );
    let origin_id = swarm.endpoint_id().to_string();
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
        err.message.contains("not enough disk") && err.message.contains("MiB"),
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

/// The daemon pulls on its own, serves its API, and shows an equivocating origin as an alarm
/// while keeping the catalog it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_auto_pulls_and_raises_equivocation_alarm() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let swarm = std::sync::Arc::new(
        archy_swarm::Swarm::start(archy_swarm::SwarmConfig::new(
            tmp.path().join("origin-swarm"),
        ))
        .await
        .unwrap(),
    );
    let id = swarm.endpoint_id().to_string();
    let (listener, url) = loopback_listener().await;
    let apps_dir = repo_root().join("apps");
    let v1 = signed_catalog(&keys, &url, &id, 1, 30).to_bytes();
    let slot: CatalogSlot = std::sync::Arc::new(std::sync::Mutex::new(v1.clone()));
    let server = serve_slot(listener, slot.clone(), Default::default(), swarm.clone());

    let node = start_node_with(&tmp.path().join("node"), &url, &root, 1).await;
    let (api_listener, api) = loopback_listener().await;
    let daemon = tokio::spawn(archy_node::serve(node, api_listener));
    let client = {
        let token = archy_node::auth::token_path(&tmp.path().join("node"));
        while !token.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        api_client(&tmp.path().join("node"))
    };
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

    assert_eq!(s["alarms"][0]["kind"], "equivocation");
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
    use archy_registry::{PayloadType, Root};
    use chrono::{Duration, Utc};
    let tmp = tempfile::tempdir().unwrap();
    let old = Keys::new();
    let root_v1 = old.write_root(tmp.path());
    let swarm = std::sync::Arc::new(
        archy_swarm::Swarm::start(archy_swarm::SwarmConfig::new(
            tmp.path().join("origin-swarm"),
        ))
        .await
        .unwrap(),
    );
    let id = swarm.endpoint_id().to_string();
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
    assert_eq!(node.status().await.unwrap().alarms[0].kind, "root-rotation");

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
    assert_eq!(status.alarms[0].kind, "pinned-root-replaced");
    *slot.lock().unwrap() = signed_catalog(&fresh, &url, &id, 1, 30).to_bytes();
    node.pull_catalog()
        .await
        .expect("catalog under the new anchor");
    server.abort();
}

/// Updates keep volumes, secrets, names and ports; an update that never becomes healthy
/// goes back to the previous version with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_rolls_back_when_unhealthy_and_keeps_data() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
    let with_data = |m: String| {
        m.replace(
            "    stop_grace_seconds: 5",
            "    stop_grace_seconds: 5\n    volumes: [{ name: data, path: /data }]\n    env: { TOKEN: { secret: token } }",
        )
        .replace("resources:", "secrets: [{ name: token }]\nresources:")
    };
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

    let (listener, url) = loopback_listener().await;
    let c1 = signed_catalog_after(&v1, &keys, &url, &id, 1, 30, None).to_bytes();
    let slot: CatalogSlot = std::sync::Arc::new(std::sync::Mutex::new(c1.clone()));
    let server = serve_slot(listener, slot.clone(), Default::default(), swarm.clone());
    let node_dir = tmp.path().join("node");
    let node = start_node(&node_dir, &url, &root).await;
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
    let c2 = signed_catalog_after(&v2, &keys, &url, &id, 2, 30, Some(&c1)).to_bytes();
    *slot.lock().unwrap() = c2.clone();
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
    let c3 = signed_catalog_after(&v3, &keys, &url, &id, 3, 30, Some(&c2)).to_bytes();
    *slot.lock().unwrap() = c3;
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
    let node = start_node(&node_dir, &url, &root).await;
    assert_eq!(node.app("hello").await.unwrap().version, "1.2.0");
    node.uninstall("hello", true).await.unwrap();
    assert!(!token_path.exists());
    let volumes = engine.volumes_of("hello").await.unwrap();
    assert!(volumes.is_empty(), "purge left volumes: {volumes:?}");
    server.abort();
}

/// An expired catalog freezes installs and updates, never the apps already running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_catalog_keeps_running_apps_running() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
    let (listener, url) = loopback_listener().await;
    let apps = repo_root().join("apps");
    let short = signed_catalog_expiring(
        &apps,
        &keys,
        &url,
        &id,
        1,
        chrono::Duration::seconds(20),
        None,
    );
    let server = serve_bytes(listener, short.to_bytes(), swarm.clone());
    let node = start_node(&tmp.path().join("node"), &url, &root).await;
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
    server.abort();
}

/// Dependencies between apps: install refuses a missing or too-old dependency by name, and
/// an app others need cannot be uninstalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_dependencies_are_enforced() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    remove_leftovers("greeter").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
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
    let (listener, url) = loopback_listener().await;
    let catalog = signed_catalog_of(&apps, &keys, &url, &id, 1, 30).to_bytes();
    let slot: CatalogSlot = std::sync::Arc::new(std::sync::Mutex::new(catalog.clone()));
    let server = serve_slot(listener, slot.clone(), Default::default(), swarm);
    let node = start_node(&tmp.path().join("node"), &url, &root).await;
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
    *slot.lock().unwrap() =
        signed_catalog_after(&apps2, &keys, &url, &id, 2, 30, Some(&catalog)).to_bytes();
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
    server.abort();
}

/// A multi-container app: its own network where containers find each other by name, start
/// order from depends_on and health, and nothing left of it (network included) after removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_container_app_gets_its_own_network_and_start_order() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("duo").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
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
    let (listener, url) = loopback_listener().await;
    let server = serve_bytes(
        listener,
        signed_catalog_of(&apps, &keys, &url, &id, 1, 30).to_bytes(),
        swarm,
    );
    let node = start_node(&tmp.path().join("node"), &url, &root).await;
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
    server.abort();
}

/// A node killed (SIGKILL) in the middle of an install leaves no ghost: at the next start
/// the operation is rolled back, and the app can be installed cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_install_rolls_back_at_restart() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
    let (listener, url) = loopback_listener().await;
    let server = serve_bytes(
        listener,
        signed_catalog(&keys, &url, &id, 1, 30).to_bytes(),
        swarm,
    );
    let api = format!("http://127.0.0.1:{}", free_port());
    let config = write_node_config(tmp.path(), &url, &root, &api, "");

    let mut node = NodeProcess::spawn(&config, &api).await;
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
    node.kill();

    // Restart: the interrupted install is rolled back, nothing half-installed remains.
    let node = NodeProcess::spawn(&config, &api).await;
    let apps: serde_json::Value = client
        .get(format!("{api}/v1/apps"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        apps,
        serde_json::json!([]),
        "an interrupted install is listed"
    );
    assert!(
        !podman_has_app("hello").await,
        "the killed install left containers behind"
    );
    let log = std::fs::read_to_string(config.with_extension("log")).unwrap();
    assert!(
        log.contains("rolling back interrupted operation"),
        "no rollback at restart: {log}"
    );

    // And installing again works.
    let app: serde_json::Value = client
        .post(format!("{api}/v1/apps/hello/install"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["state"], "running", "{app}");
    client
        .delete(format!("{api}/v1/apps/hello?purge=true"))
        .send()
        .await
        .unwrap();
    assert!(!podman_has_app("hello").await);
    drop(node);
    server.abort();
}

/// A node killed in the middle of an update comes back on the previous version: the half
/// of the update that exists is removed and the reconciler rebuilds what sqlite records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_update_comes_back_on_the_previous_version() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
    let (listener, url) = loopback_listener().await;
    let v1 = signed_catalog(&keys, &url, &id, 1, 30).to_bytes();
    // 1.1.0 takes its time to become healthy (it never does), which leaves room to kill.
    let slow = hello_variant(&tmp.path().join("v2"), |m| {
        m.replace("version: 1.0.0", "version: 1.1.0")
            .replace("path: /healthz", "path: /not-yet")
    });
    let v2 = signed_catalog_after(&slow, &keys, &url, &id, 2, 30, Some(&v1)).to_bytes();
    let slot: CatalogSlot = std::sync::Arc::new(std::sync::Mutex::new(v1));
    let server = serve_slot(listener, slot.clone(), Default::default(), swarm);
    let api = format!("http://127.0.0.1:{}", free_port());
    let config = write_node_config(
        tmp.path(),
        &url,
        &root,
        &api,
        "reconcile_interval_seconds = 1\n",
    );
    let mut node = NodeProcess::spawn(&config, &api).await;
    let client = node.client();
    let app: serde_json::Value = client
        .post(format!("{api}/v1/apps/hello/install"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = app["url"].as_str().unwrap().to_owned();

    *slot.lock().unwrap() = v2;
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

    let _node = NodeProcess::spawn(&config, &api).await;
    let mut back = serde_json::Value::Null;
    for _ in 0..100 {
        back = client
            .get(format!("{api}/v1/apps/hello"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    client
        .delete(format!("{api}/v1/apps/hello?purge=true"))
        .send()
        .await
        .unwrap();
    server.abort();
}

#[path = "e2e/adopt_and_health.rs"]
mod adopt_and_health;
#[path = "e2e/api_contract.rs"]
mod api_contract;
#[path = "e2e/dashboard.rs"]
mod dashboard;
#[path = "e2e/hardening.rs"]
mod hardening;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/market.rs"]
mod market;
#[path = "e2e/operations.rs"]
mod operations;
#[path = "e2e/reliability.rs"]
mod reliability;
#[path = "e2e/security.rs"]
mod security;
#[path = "e2e/swarm.rs"]
mod swarm;
#[path = "e2e/trust_chain.rs"]
mod trust_chain;
