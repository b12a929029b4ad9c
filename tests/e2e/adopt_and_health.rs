//! The node never forgets silently, and watches health after install: a node started on an
//! empty data dir next to a running app raises an `unknown-app` alarm and `adopt` brings the
//! app back under management; a container whose health check starts failing is restarted
//! by the node's health loop, and the restart shows in the app's health.
//!
//! Their apps have ids and ports of their own (not hello's), so they share Podman politely.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_an_empty_data_dir_raises_the_alarm_and_adopts_the_running_app() {
    let _podman = PODMAN.lock().await;
    const APP: &str = "adoptee";
    remove_everything_of(APP).await;
    let tmp = tempfile::tempdir().unwrap();
    let keep = |m: String| m;
    let TestOrigin { url, root, .. } =
        TestOrigin::hello_apps(tmp.path(), &[(APP, 18191, &keep)]).await;

    // A node installs the app, then its data dir is lost: a new node starts on an empty one.
    let first = quiet_node(&tmp.path().join("node"), &url, &root).await;
    first.pull_catalog().await.unwrap();
    first.install(APP).await.expect("install");
    first.shutdown().await;
    drop(first);

    let started = Instant::now();
    let node = quiet_node(&tmp.path().join("empty"), &url, &root).await;
    let start_ms = started.elapsed().as_millis();
    let unknown = |s: &archy_api::StatusView| {
        s.alarms
            .iter()
            .filter(|a| a.kind == "unknown-app" && a.message.contains(APP))
            .count()
    };
    let status = node.status().await.unwrap();
    assert_eq!(unknown(&status), 1, "{:?}", status.alarms);
    let alarm = &status
        .alarms
        .iter()
        .find(|a| a.kind == "unknown-app" && a.message.contains(APP))
        .unwrap()
        .message;
    assert!(alarm.contains("archy-adoptee-web"), "{alarm}");
    assert!(alarm.contains(&format!("archy app adopt {APP}")), "{alarm}");
    assert!(node.apps().await.unwrap().is_empty());
    eprintln!("unknown-app alarm raised by Node::start in {start_ms} ms: {alarm}");

    // Once per app, not every pass.
    node.reconcile_once().await.unwrap();
    node.reconcile_once().await.unwrap();
    assert_eq!(unknown(&node.status().await.unwrap()), 1);

    // Refusals say why: no catalog yet; an app that is not there.
    let err = node.adopt(APP).await.unwrap_err();
    assert!(err.message.contains("no verified catalog"), "{err}");
    let err = node.adopt("nothing-here").await.unwrap_err();
    assert!(err.message.contains("nothing to adopt"), "{err}");

    node.pull_catalog().await.unwrap();
    let adopted = node.adopt(APP).await.expect("adopt");
    assert_eq!(adopted.version, "1.0.0");
    assert_eq!(adopted.desired, archy_api::DesiredState::Running);
    assert_eq!(adopted.state, archy_api::AppState::Running);
    let err = node.adopt(APP).await.unwrap_err();
    assert!(err.message.contains("already"), "{err}");
    // Managed again: listed, and the reconciler repairs it (its blobs were pinned).
    assert_eq!(node.apps().await.unwrap().len(), 1);
    podman(&["rm", "-f", "--", "archy-adoptee-web"]);
    let repairs = node.reconcile_once().await.unwrap();
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert_eq!(
        node.app(APP).await.unwrap().state,
        archy_api::AppState::Running
    );
    assert_eq!(unknown(&node.status().await.unwrap()), 1, "no new alarm");

    node.uninstall(APP, true).await.unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_failing_its_health_check_is_restarted_and_the_restart_shows() {
    let _podman = PODMAN.lock().await;
    const APP: &str = "sickly";
    remove_everything_of(APP).await;
    let tmp = tempfile::tempdir().unwrap();
    let quick = |m: String| m.replace("start_period_seconds: 20", "start_period_seconds: 3");
    let TestOrigin { url, root, .. } =
        TestOrigin::hello_apps(tmp.path(), &[(APP, 18192, &quick)]).await;
    let node = quiet_node(&tmp.path().join("node"), &url, &root).await;
    node.pull_catalog().await.unwrap();
    node.install(APP).await.expect("install");
    let loops = tokio::spawn(node.clone().reconcile_loop());

    let health = |v: &archy_api::AppView| v.health.iter().find(|h| h.container == "web").cloned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = health(&node.app(APP).await.unwrap()).expect("web's health");
        if h.status == archy_api::HealthStatus::Healthy {
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {h:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // httpd stops answering while the container keeps running.
    let (ok, out) = podman(&[
        "exec",
        "--",
        "archy-sickly-web",
        "/bin/busybox",
        "sh",
        "-c",
        "kill -STOP $(ps -o pid,args | awk '/httpd -f/ && !/awk/ {print $1}')",
    ]);
    assert!(ok, "{out}");
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(90);
    let restarted_at = loop {
        let v = node.app(APP).await.unwrap();
        let h = health(&v).unwrap();
        if h.restarts >= 1 && h.status == archy_api::HealthStatus::Healthy {
            assert!(h.last_failure.is_some(), "{h:?}");
            break stopped.elapsed();
        }
        assert!(Instant::now() < deadline, "not restarted: {h:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "health check failing from SIGSTOP to healthy again after the node's restart: {restarted_at:?}"
    );
    let page = reqwest::get("http://127.0.0.1:18192/").await.unwrap();
    assert!(page.status().is_success());

    // A stopped app is left alone.
    loops.abort();
    node.stop_app(APP).await.unwrap();
    node.uninstall(APP, true).await.unwrap();
    node.shutdown().await;
}
