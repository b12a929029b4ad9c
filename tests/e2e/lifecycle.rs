//! Orchestrator behaviour the other tests do not reach: Podman's event stream driving the
//! reconciler, TCP health checks, the stop grace, and containers the node did not create.

use super::*;

async fn wait_until_running(
    node: &archy_node::Node,
    app: &str,
    within: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if node.app(app).await.is_ok_and(|a| a.state == "running") {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_events_trigger_repair_without_waiting_for_the_interval() {
    let t = HelloTest::start(|m| m).await;
    let node = &t.node;
    node.install("hello").await.unwrap();
    // The interval is an hour: only an event can bring the repair in time.
    let reconciler = tokio::spawn(node.clone().reconcile_loop());
    // Let the loop take its immediate first tick and subscribe to events.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    engine.remove_container("archy-hello-web").await.unwrap();
    assert!(
        wait_until_running(node, "hello", std::time::Duration::from_secs(20)).await,
        "the removed container was not recreated after Podman's remove event"
    );
    engine.kill_container("archy-hello-web").await.unwrap();
    assert!(
        wait_until_running(node, "hello", std::time::Duration::from_secs(20)).await,
        "the killed container was not restarted after Podman's died event"
    );
    // Stopped by the operator: events come, the reconciler leaves it stopped.
    node.stop_app("hello").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(node.app("hello").await.unwrap().state, "stopped");

    reconciler.abort();
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_health_checks_gate_the_install() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tcp = |port: u16| {
        move |m: String| {
            m.replace(
                "      http: { port: 8080, path: /healthz }",
                &format!("      tcp: {{ port: {port} }}"),
            )
            .replace("start_period_seconds: 20", "start_period_seconds: 3")
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let (node, server) = node_with_hello(tmp.path(), tcp(8080)).await;
    let app = node.install("hello").await.unwrap();
    assert_eq!(app.state, "running");
    node.uninstall("hello", true).await.unwrap();
    node.shutdown().await;
    server.abort();

    // A TCP check on a port nothing listens on (8081 is published, httpd is on 8080): the
    // install fails naming the check, and nothing is left.
    let tmp = tempfile::tempdir().unwrap();
    let (node, server) = node_with_hello(tmp.path(), |m| {
        tcp(8081)(m).replace(
            "      - { container: 8080, host: 18080 }",
            "      - { container: 8080, host: 18080 }\n      - { container: 8081, host: 18081 }",
        )
    })
    .await;
    let err = node.install("hello").await.unwrap_err();
    assert!(err.message.contains("tcp connect"), "{}", err.message);
    assert!(!podman_has_app("hello").await);
    assert!(node.app("hello").await.is_err());
    node.shutdown().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_out_the_grace_of_a_container_that_ignores_sigterm() {
    let t = HelloTest::start(|m| {
        m.replace(
            "    image: { artifact: image }",
            "    image: { artifact: image }\n    command: [sh, -c, \"trap '' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait\"]",
        )
        .replace("stop_grace_seconds: 5", "stop_grace_seconds: 4")
    })
    .await;
    let node = &t.node;
    node.install("hello").await.unwrap();
    let started = std::time::Instant::now();
    let app = node.stop_app("hello").await.unwrap();
    let took = started.elapsed();
    assert_eq!(app.state, "stopped");
    // Podman waited the grace before killing; the node's own wait (grace + 30 s) outlasted it.
    assert!(
        took >= std::time::Duration::from_secs(4),
        "stop returned after {took:?}, before the 4 s grace"
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_the_node_did_not_create_are_never_deleted() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    for name in ["archy-hello-web", "bystander"] {
        let _ = engine.remove_container(name).await;
    }
    let image = engine
        .load_image_file(&artifacts_dir().join("hello/image.tar"))
        .await
        .unwrap();
    // Someone else's containers: one squats the name hello's container would get.
    for name in ["archy-hello-web", "bystander"] {
        // Not something the orchestrator does: the podman CLI directly.
        let out = std::process::Command::new("podman")
            .args(["--remote", "--url", &podman_url()])
            .args(["run", "--detach", "--name", name, "--", &image])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let running = |name: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .inspect_container(name)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| c["State"]["Running"] == true)
        }
    };

    let tmp = tempfile::tempdir().unwrap();
    let (node, server) = node_with_hello(tmp.path(), |m| m).await;
    let err = node.install("hello").await.unwrap_err();
    assert!(err.message.contains("archy-hello-web"), "{}", err.message);
    assert!(running("archy-hello-web").await, "the squatter was touched");
    assert!(node.app("hello").await.is_err());

    // With the name free, hello installs; reconciling, purging and uninstalling leave the
    // bystander alone.
    engine.remove_container("archy-hello-web").await.unwrap();
    node.install("hello").await.unwrap();
    node.reconcile_once().await.unwrap();
    node.uninstall("hello", true).await.unwrap();
    assert!(
        running("bystander").await,
        "a container the node did not create was removed"
    );
    engine.remove_container("bystander").await.unwrap();
    server.abort();
}

/// Two apps whose ids and names, joined by '-', give the same Podman object
/// (`clash` + `x-web` and `clash-x` + `web` are both `archy-clash-x-web`): the second
/// install is refused before anything is fetched or created, naming both apps, and the
/// first one is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_whose_object_names_collide_are_not_installed_together() {
    let _podman = PODMAN.lock().await;
    for app in ["clash", "clash-x"] {
        remove_leftovers(app).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rename_web = |m: String| {
        m.replace("  - name: web", "  - name: x-web")
            .replace("ui: { container: web", "ui: { container: x-web")
    };
    let same = |m: String| m;
    let origin = TestOrigin::hello_apps(
        tmp.path(),
        &[("clash", 18197, &rename_web), ("clash-x", 18198, &same)],
    )
    .await;
    let node = origin.node(&tmp.path().join("node")).await;
    node.pull_catalog().await.unwrap();
    node.install("clash").await.unwrap();

    let err = node.install("clash-x").await.unwrap_err();
    assert_eq!(err.kind, archy_node::node::ErrorKind::Conflict, "{err}");
    assert!(err.message.contains("\"archy-clash-x-web\""), "{err}");
    assert!(err.message.contains("belongs to clash"), "{err}");
    assert!(
        node.app("clash-x").await.is_err(),
        "a refused app has a record"
    );
    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    assert!(
        engine.containers_of("clash-x").await.unwrap().is_empty(),
        "the refused install created containers"
    );
    assert_eq!(node.app("clash").await.unwrap().state, "running");
    node.uninstall("clash", true).await.unwrap();
    node.shutdown().await;
}

/// A container's log through the node's API: the tail, then followed lines as they come;
/// a container the manifest does not name is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_tailed_and_followed_through_the_api() {
    let t = HelloTest::start(|m| {
        web_lines(
            m,
            "    command: [\"sh\", \"-c\", \"echo archy-log-first; trap 'exit 0' TERM INT; /bin/busybox httpd -f -p 8080 -h /www & while :; do echo tick; sleep 1; done\"]",
        )
    })
    .await;
    let node = &t.node;
    node.install("hello").await.unwrap();
    let (listener, api) = loopback_listener().await;
    let router = archy_node::api_router(node.clone()).unwrap();
    let api_server = tokio::spawn(axum::serve(listener, router).into_future());
    let client = api_client(&node.config().data_dir);
    let lines = |body: &str| -> Vec<archy_api::LogLine> {
        body.lines()
            .map(|l| serde_json::from_str(l).expect("each line a LogLine"))
            .collect()
    };

    // The tail: the first line the app printed is there.
    let mut tail = Vec::new();
    for _ in 0..40 {
        let body = client
            .get(format!(
                "{api}{}",
                archy_api::routes::app_logs("hello", "web", 100, false, None)
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        tail = lines(&body);
        if tail.iter().any(|l| l.line == "archy-log-first") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        tail.iter()
            .any(|l| l.line == "archy-log-first" && l.container == "web"),
        "{tail:?}"
    );

    // The CLI reads the same tail.
    let cli = std::process::Command::new(archy_binary())
        .args(["--api", &api, "app", "logs", "hello", "--tail", "100"])
        .env(
            "ARCHY_TOKEN_FILE",
            archy_node::auth::token_path(&node.config().data_dir),
        )
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success() && printed.lines().any(|l| l == "archy-log-first"),
        "archy app logs: {printed}{}",
        String::from_utf8_lossy(&cli.stderr)
    );

    // Since: a duration or a time, passed to Podman as a time (to the second). The first
    // line is within the last 10 minutes, and before the next whole second after it was read.
    let after_first = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let since = |since: &str| {
        let client = client.clone();
        let url = format!(
            "{api}{}",
            archy_api::routes::app_logs("hello", "web", 100, false, Some(since))
        );
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = since("10m").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        lines(&body).iter().any(|l| l.line == "archy-log-first"),
        "since=10m: {body}"
    );
    let (status, body) = since(&after_first).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !lines(&body).iter().any(|l| l.line == "archy-log-first"),
        "since={after_first} still has the first line: {body}"
    );
    // A value that is neither is refused by name before Podman sees it, as are options.
    for bad in ["last tuesday", "--follow", "10m --tail=1"] {
        let (status, body) = since(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let error: archy_api::ApiError = serde_json::from_str(&body).unwrap();
        assert_eq!(error.kind, archy_api::ErrorKind::Invalid);
        assert!(
            error
                .error
                .starts_with(&format!("since {bad:?} is invalid")),
            "{error:?}"
        );
    }
    // The CLI passes --since on, and shows the node's refusal.
    let cli_since = |value: &str| {
        std::process::Command::new(archy_binary())
            .args(["--api", &api, "app", "logs", "hello", "--since", value])
            .env(
                "ARCHY_TOKEN_FILE",
                archy_node::auth::token_path(&node.config().data_dir),
            )
            .output()
            .unwrap()
    };
    let recent = cli_since("1h");
    assert!(
        recent.status.success()
            && String::from_utf8_lossy(&recent.stdout)
                .lines()
                .any(|l| l == "archy-log-first"),
        "archy app logs --since 1h: {}",
        String::from_utf8_lossy(&recent.stderr)
    );
    let refused = cli_since("soon");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("since \"soon\" is invalid"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Follow: new lines arrive while the stream is open.
    let response = client
        .get(format!(
            "{api}{}",
            archy_api::routes::app_logs("hello", "web", 0, true, None)
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    use futures::StreamExt;
    let followed = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.matches("\"tick\"").count() >= 2 {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(followed, Ok(true)), "no followed lines: {seen}");
    drop(stream);

    // Only the manifest's containers, by a valid name.
    for (container, status) in [("db", 404), ("..%2F..", 400), ("-f", 400)] {
        let answer = client
            .get(format!("{api}/v1/apps/hello/logs?container={container}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), status, "{container}");
    }
    api_server.abort();
    t.finish().await;
}
