//! Operations belong to the node, not to the request: a client that goes away (Ctrl-C, a
//! dropped connection) cancels nothing, any client re-attaches to an operation's events,
//! and a node killed at any stage of any operation comes back consistent: nothing it
//! created left behind, no operation still "running", and a purge never brings an app
//! back without its data.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// What Podman holds of `app`: containers, volumes, its network, its secrets.
fn podman_objects(app: &str) -> Vec<String> {
    let label = format!("label=archy.app={app}");
    let mut found = Vec::new();
    for (what, args) in [
        (
            "container",
            vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &label],
        ),
        (
            "volume",
            vec!["volume", "ls", "--format", "{{.Name}}", "--filter", &label],
        ),
        ("network", vec!["network", "ls", "--format", "{{.Name}}"]),
        ("secret", vec!["secret", "ls", "--format", "{{.Name}}"]),
    ] {
        let (_, out) = podman(&args);
        let prefix = format!("archy-{app}");
        for name in out
            .lines()
            .filter(|n| *n == prefix || n.strip_prefix(&prefix).is_some_and(|r| r.starts_with('-')))
        {
            found.push(format!("{what} {name}"));
        }
    }
    found
}

/// Removes whatever an earlier run left of `app` in Podman.
fn remove_everything_of(app: &str) {
    for object in podman_objects(app) {
        let (what, name) = object.split_once(' ').unwrap();
        let _ = match what {
            "container" => podman(&["rm", "--force", "--", name]),
            "volume" => podman(&["volume", "rm", "--force", "--", name]),
            "network" => podman(&["network", "rm", "--force", "--", name]),
            _ => podman(&["secret", "rm", "--", name]),
        };
    }
}

/// A node in this process serving its API and reconciling every second, `app` (hello edited
/// by `edit`, published on `port`) in its catalog; nothing left of `app` by an earlier run.
async fn ops_node(dir: &Path, app: &str, port: u16, edit: &dyn Fn(String) -> String) -> ApiNode {
    remove_everything_of(app);
    let origin = TestOrigin::hello_apps(dir, &[(app, port, edit)]).await;
    ApiNode::start(dir, origin, |c| c.reconcile_interval_seconds = 1).await
}

/// The end of those tests: the node stopped, nothing left of `app`.
async fn stop_and_clean(n: ApiNode, app: &str) {
    n.stop().await;
    remove_everything_of(app);
}

/// The operation a response names.
fn operation_of(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get(archy_api::OPERATION_HEADER)
        .unwrap_or_else(|| panic!("no {} header", archy_api::OPERATION_HEADER))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn operation(client: &reqwest::Client, api: &str, id: u64) -> archy_api::OperationView {
    client
        .get(format!("{api}{}", archy_api::routes::operation(id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until operation `id` ends; its record.
async fn finished(client: &reqwest::Client, api: &str, id: u64) -> archy_api::OperationView {
    let started = Instant::now();
    loop {
        let view = operation(client, api, id).await;
        if view.state != archy_api::OperationState::Running {
            return view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "operation {id} still runs: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn operations(client: &reqwest::Client, api: &str) -> Vec<archy_api::OperationView> {
    client
        .get(format!("{api}{}", archy_api::routes::OPERATIONS))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The found case: `DELETE /v1/apps/…` whose client is gone after 0.3 s (Ctrl-C on
/// `archy app uninstall`) used to remove the containers but not the record, and the
/// reconciler then brought the app back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninstall_whose_client_leaves_still_completes() {
    let _podman = PODMAN.lock().await;
    let app = "opsgone";
    let tmp = tempfile::tempdir().unwrap();
    // A container that ignores SIGTERM: removing it waits out Podman's 10 s stop timeout,
    // so the uninstall is still running when the client leaves, however fast Podman is.
    let deaf = |m: String| {
        with_data(m.replace(
            "    image: { artifact: image }",
            "    image: { artifact: image }\n    command: [sh, -c, \"trap '' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait\"]",
        ))
    };
    let n = ops_node(tmp.path(), app, 18492, &deaf).await;
    n.node.install(app).await.unwrap();
    let client = n.client();

    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .default_headers({
            let mut h = reqwest::header::HeaderMap::new();
            for (k, v) in [
                (
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", n.token()),
                ),
                (reqwest::header::CONTENT_TYPE, "application/json".into()),
            ] {
                h.insert(k, v.parse().unwrap());
            }
            h
        })
        .build()
        .unwrap();
    let gone = impatient
        .delete(n.url(&archy_api::routes::uninstall(app, false)))
        .send()
        .await;
    assert!(
        gone.is_err(),
        "the uninstall answered within 0.3 s; the test needs a client that leaves first"
    );

    let removal = operations(&client, &n.api)
        .await
        .into_iter()
        .find(|o| o.app == app && o.kind == archy_api::OperationKind::Uninstall)
        .expect("the uninstall is listed");
    let done = finished(&client, &n.api, removal.id).await;
    assert_eq!(done.state, archy_api::OperationState::Succeeded, "{done:?}");
    // The reconciler runs every second: three passes must not bring it back.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = client
        .get(n.url(&archy_api::routes::app(app)))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404, "the app's record is still there");
    let left: Vec<String> = podman_objects(app)
        .into_iter()
        .filter(|o| !o.starts_with("volume "))
        .collect();
    assert!(left.is_empty(), "the uninstall left {left:?}");
    assert!(
        podman_objects(app).iter().any(|o| o.starts_with("volume ")),
        "an uninstall without --purge deleted the data"
    );
    stop_and_clean(n, app).await;
}

/// An install streamed to a client that disconnects goes on, and another request
/// re-attaches to it: the history, then what follows, up to the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_install_outlives_its_client_and_can_be_watched() {
    let _podman = PODMAN.lock().await;
    let app = "opswatch";
    let tmp = tempfile::tempdir().unwrap();
    let n = ops_node(tmp.path(), app, 18493, &|m| m).await;
    let client = n.client();

    let response = client
        .post(n.url(&archy_api::routes::app_install(app, true, false)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let id = operation_of(&response);
    let mut response = response;
    let first = response.chunk().await.unwrap().expect("a first event");
    assert!(
        String::from_utf8_lossy(&first).contains("\"progress\""),
        "{first:?}"
    );
    drop(response);

    let events = client
        .get(n.url(&archy_api::routes::operation_events(id)))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert_eq!(operation_of(&events), id);
    let body = tokio::time::timeout(Duration::from_secs(120), events.text())
        .await
        .expect("the events end with the operation")
        .unwrap();
    let lines: Vec<archy_api::OperationStreamEvent> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        matches!(
            lines.first(),
            Some(archy_api::OperationStreamEvent::Progress { .. })
        ),
        "the replay starts with the history: {body}"
    );
    match lines.last() {
        Some(archy_api::OperationStreamEvent::Result {
            result: archy_api::OperationResult::App(view),
        }) => assert_eq!(view.id, app),
        other => panic!("the events end with {other:?}"),
    }
    let view = operation(&client, &n.api, id).await;
    assert_eq!(view.state, archy_api::OperationState::Succeeded);
    assert_eq!(
        (view.kind, view.app.as_str()),
        (archy_api::OperationKind::Install, app)
    );
    // After the end, re-attaching replays everything and stops.
    let again = client
        .get(n.url(&archy_api::routes::operation_events(id)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(again, body);
    // A plain install of an installed app: the operation's error, named.
    let conflict = client
        .post(n.url(&archy_api::routes::app_install(app, false, false)))
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status().as_u16(), 409);
    let failed = operation_of(&conflict);
    assert_eq!(
        operation(&client, &n.api, failed).await.state,
        archy_api::OperationState::Failed
    );
    n.node.uninstall(app, true).await.unwrap();
    stop_and_clean(n, app).await;
}

/// Ctrl-C on `archy app install` detaches: exit 130, the message names the operation, and
/// `archy app watch N` follows it to its result; the node finished it all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_detaches_the_cli_and_watch_re_attaches() {
    let _podman = PODMAN.lock().await;
    let app = "opscli";
    let tmp = tempfile::tempdir().unwrap();
    let n = ops_node(tmp.path(), app, 18494, &|m| m).await;
    let client = n.client();
    let token = archy_node::auth::token_path(&n.data_dir);
    let api = n.api.clone();
    let archy = move |args: &[&str]| {
        let mut command = std::process::Command::new(archy_binary());
        command
            .arg("--api")
            .arg(&api)
            .arg("--token-file")
            .arg(&token)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let child = archy(&["app", "install", app]).spawn().unwrap();
    let started = Instant::now();
    let id = loop {
        if let Some(op) = operations(&client, &n.api)
            .await
            .into_iter()
            .find(|o| o.app == app && o.state == archy_api::OperationState::Running)
        {
            break op.id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no install began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "still running on the node as operation {id}; `archy app watch {id}` re-attaches"
        )),
        "{stderr}"
    );

    let mut watch = archy(&["--json", "app", "watch", &id.to_string()]);
    let watched = tokio::task::spawn_blocking(move || watch.output().unwrap())
        .await
        .unwrap();
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let view: archy_api::AppView = serde_json::from_slice(&watched.stdout).unwrap();
    assert_eq!(view.id, app);
    assert_eq!(
        finished(&client, &n.api, id).await.state,
        archy_api::OperationState::Succeeded
    );
    assert_eq!(n.node.app(app).await.unwrap().state, "running");
    n.node.uninstall(app, true).await.unwrap();
    stop_and_clean(n, app).await;
}

/// One crash case: start an operation, SIGKILL the node once the operation's record
/// reaches one of `stages`, start the node again. Returns the stage it was killed at.
async fn kill_at(
    node: &mut NodeProcess,
    method: reqwest::Method,
    path: &str,
    stages: &[&str],
) -> String {
    let client = node.client();
    let response = client
        .request(method, format!("{}{path}", node.api))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let id = operation_of(&response);
    let started = Instant::now();
    let stage = loop {
        let view = operation(&client, &node.api, id).await;
        if stages.contains(&view.stage.as_str()) {
            break view.stage;
        }
        assert_eq!(
            view.state,
            archy_api::OperationState::Running,
            "operation {id} ended before reaching {stages:?}: {view:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "{view:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    node.kill();
    drop(response);
    node.restart().await;
    let client = node.client();
    let view = operation(&client, &node.api, id).await;
    assert_eq!(
        view.state,
        archy_api::OperationState::Interrupted,
        "after the restart: {view:?}"
    );
    eprintln!("killed at {stage}: {}", view.error.unwrap_or_default());
    assert!(
        operations(&client, &node.api)
            .await
            .iter()
            .all(|o| o.state != archy_api::OperationState::Running),
        "an operation is still running after the restart"
    );
    stage
}

async fn app_status(node: &NodeProcess, app: &str) -> Option<archy_api::AppView> {
    let r = node
        .client()
        .get(format!("{}{}", node.api, archy_api::routes::app(app)))
        .send()
        .await
        .unwrap();
    if r.status().as_u16() == 404 {
        return None;
    }
    Some(r.json().await.unwrap())
}

/// Waits for the reconciler to bring `app` to running; its containers' version label.
async fn running_version(node: &NodeProcess, app: &str) -> String {
    let started = Instant::now();
    loop {
        if app_status(node, app)
            .await
            .is_some_and(|a| a.state == "running")
        {
            let (_, version) = podman(&[
                "inspect",
                "--format",
                "{{index .Config.Labels \"archy.version\"}}",
                &format!("archy-{app}-web"),
            ]);
            return version;
        }
        if started.elapsed() >= Duration::from_secs(90) {
            let log = node.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{app} is not back: {:?}\nnode log (last lines, newest first):\n{}",
                app_status(node, app).await,
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A node process SIGKILLed at each stage of each kind of operation comes back consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_at_any_stage_comes_back_consistent() {
    let _podman = PODMAN.lock().await;
    let app = "opskill";
    remove_everything_of(app);
    let tmp = tempfile::tempdir().unwrap();
    let v1_apps = apps_from_hello(&tmp.path().join("v1"), &[(app, 18495, &with_data)]);
    let origin = TestOrigin::of(tmp.path(), &v1_apps).await;
    let v1 = origin.catalog();
    let newer = |m: String| with_data(m).replace("version: 1.0.0", "version: 1.1.0");
    let v2_apps = apps_from_hello(&tmp.path().join("v2"), &[(app, 18495, &newer)]);
    let (url, root) = (&origin.url, &origin.root);
    let extra = "reconcile_interval_seconds = 1\n";
    let mut node = NodeProcess::start(tmp.path(), url, root, extra).await;
    let api = node.api.clone();
    let data_dir = node.data_dir.clone();
    let nothing_of = |when: &str| {
        let left = podman_objects(app);
        assert!(left.is_empty(), "{when}: left {left:?}");
        assert!(
            !data_dir.join("apps").join(app).exists(),
            "{when}: the app's data dir is left"
        );
    };
    let install = archy_api::routes::app_install(app, true, false);

    // Install, killed while fetching, creating, starting: everything it created goes.
    let mut hit = Vec::new();
    for stages in [
        &["fetching", "installing", "loading", "creating", "starting"][..],
        &["creating", "starting"][..],
        &["starting"][..],
    ] {
        let stage = kill_at(&mut node, reqwest::Method::POST, &install, stages).await;
        assert!(
            app_status(&node, app).await.is_none(),
            "after {stage}: the app is recorded"
        );
        nothing_of(&format!("install killed at {stage}"));
        hit.push(format!("install@{stage}"));
    }

    // Update, killed while replacing: the new version's objects go, the recorded
    // version comes back.
    let client = node.client();
    let r = client.post(format!("{api}{install}")).send().await.unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("\"result\""), "{body}");
    origin.serve(origin.sign(&v2_apps, 2, 30, Some(&v1)));
    let pulled = client
        .post(format!("{api}{}", archy_api::routes::CATALOG_PULL))
        .send()
        .await
        .unwrap();
    assert!(pulled.status().is_success());
    // While the old version stops, and once the new one's containers exist.
    let update = format!("{}&stream=true", archy_api::routes::app_update(app, false));
    for stages in [&["replacing"][..], &["creating", "starting"][..]] {
        let stage = kill_at(&mut node, reqwest::Method::POST, &update, stages).await;
        hit.push(format!("update@{stage}"));
        assert_eq!(app_status(&node, app).await.unwrap().version, "1.0.0");
        assert_eq!(running_version(&node, app).await, "1.0.0");
    }

    // Uninstall, killed while removing: finished at the restart, never brought back.
    let stage = kill_at(
        &mut node,
        reqwest::Method::DELETE,
        &format!("{}&stream=true", archy_api::routes::uninstall(app, false)),
        &["started", "removing"],
    )
    .await;
    hit.push(format!("uninstall@{stage}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        app_status(&node, app).await.is_none(),
        "the uninstalled app is back"
    );
    let left: Vec<String> = podman_objects(app)
        .into_iter()
        .filter(|o| !o.starts_with("volume ") && !o.starts_with("secret "))
        .collect();
    assert!(left.is_empty(), "the uninstall left {left:?}");

    // Purge, killed while removing: finished at the restart; the app never comes back.
    let client = node.client();
    let body = client
        .post(format!("{api}{install}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"result\""), "{body}");
    let stage = kill_at(
        &mut node,
        reqwest::Method::DELETE,
        &format!("{}&stream=true", archy_api::routes::uninstall(app, true)),
        &["started", "removing"],
    )
    .await;
    hit.push(format!("purge@{stage}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        app_status(&node, app).await.is_none(),
        "the purged app is back"
    );
    nothing_of("purge killed while removing");
    eprintln!("crash cases: {hit:?}");

    drop(node);
    origin.server.abort();
    remove_everything_of(app);
}
