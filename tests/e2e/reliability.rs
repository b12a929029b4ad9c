//! Every operation finishes or is undone, whatever fails, and the node comes back after a
//! reboot: undo removes exactly what an operation created, a dead Podman service is a named
//! error in bounded time, and a simulated reboot brings every app back to its desired state.
//!
//! Two tests here kill the Podman service (and one all of the Podman user's processes):
//! they restart it with scripts/setup-podman.sh, but anything else using that Podman at the
//! same time sees it die. Their apps have ids and ports of their own.

use std::path::Path;
use std::time::{Duration, Instant};

use archy_orchestrator::{Created, Orchestrator, OrchestratorConfig};

use super::*;

async fn orchestrator(data_dir: &Path) -> Orchestrator {
    Orchestrator::connect(OrchestratorConfig {
        podman_url: podman_url(),
        data_dir: data_dir.to_owned(),
        publish_address: [127, 0, 0, 1].into(),
    })
    .await
    .unwrap()
}

/// A node whose catalog holds apps made from hello, pulled and ready.
async fn node_with_apps(
    tmp: &Path,
    apps: &[HelloApp<'_>],
) -> (
    std::sync::Arc<archy_node::Node>,
    tokio::task::JoinHandle<()>,
    std::path::PathBuf,
) {
    let origin = TestOrigin::hello_apps(tmp, apps).await;
    let node = quiet_node(&tmp.join("node"), &origin.url, &origin.root).await;
    node.pull_catalog().await.unwrap();
    (node, origin.server, origin.root)
}

/// Runs scripts/setup-podman.sh (as root): starts the service if it is not answering.
fn start_podman_service() {
    let status = std::process::Command::new(repo_root().join("scripts/setup-podman.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/setup-podman.sh failed");
}

fn kill_podman_service() {
    let _ = std::process::Command::new("pkill")
        .args(["-f", "podman system service"])
        .status();
}

/// The page a published hello answers on, if it answers.
async fn page(port: u16) -> Option<String> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_install_removes_what_it_created_and_keeps_what_was_there() {
    let _podman = PODMAN.lock().await;
    let app = "relia";
    remove_everything_of(app).await;
    let engine = engine().await;
    // The operator's data from an earlier life of the app: a labelled volume with a file.
    let (ok, _) = podman(&[
        "volume",
        "create",
        "--label",
        "archy.app=relia",
        "--",
        "archy-relia-data",
    ]);
    assert!(ok, "volume create");
    let (_, mount) = podman(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        "--",
        "archy-relia-data",
    ]);
    let kept = Path::new(&mount).join("keep.txt");
    std::fs::write(&kept, "the operator's data").unwrap();
    // As if the app had written it: owned like the volume (rootless Podman must chown it).
    use std::os::unix::fs::MetadataExt as _;
    let owner = std::fs::metadata(&mount).unwrap();
    std::os::unix::fs::chown(&kept, Some(owner.uid()), Some(owner.gid())).unwrap();

    // A volume that exists (data), one the install creates (cache), a secret, the app's
    // network, and a health check that never passes.
    let edit = |m: String| {
        token_secret(web_lines(
            m,
            "    volumes: [{ name: data, path: /data }, { name: cache, path: /cache }]\n    env: { TOKEN: { secret: token } }",
        ))
        .replace("path: /healthz", "path: /never")
        .replace("start_period_seconds: 20", "start_period_seconds: 1")
        .replace("retries: 3", "retries: 1")
        .replace("interval_seconds: 2", "interval_seconds: 1")
    };
    let tmp = tempfile::tempdir().unwrap();
    let (node, server, _) = node_with_apps(tmp.path(), &[(app, 18481, &edit)]).await;
    let err = node.install(app).await.unwrap_err();
    assert!(
        err.message.contains("did not become healthy"),
        "{}",
        err.message
    );

    let mut left = Vec::new();
    if !engine.containers_of(app).await.unwrap().is_empty() {
        left.push("containers".to_owned());
    }
    if engine.network_exists("archy-relia").await.unwrap() {
        left.push("the app network".to_owned());
    }
    if engine
        .secret_owner("archy-relia-token")
        .await
        .unwrap()
        .is_some()
    {
        left.push("the Podman secret".to_owned());
    }
    let volumes = engine.volumes_of(app).await.unwrap();
    if volumes != ["archy-relia-data"] {
        left.push(format!(
            "volumes {volumes:?} (only archy-relia-data existed)"
        ));
    }
    if tmp.path().join("node/apps").join(app).exists() {
        left.push("the app's data dir (secret files, env files)".to_owned());
    }
    assert!(left.is_empty(), "a failed install left: {left:?}");
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        "the operator's data",
        "the app's existing volume lost its data"
    );

    node.shutdown().await;
    server.abort();
    remove_everything_of(app).await;
}

/// What an install interrupted by a crash leaves (a network, a secret, a volume, no
/// container) goes with `undo` of its record, and with `uninstall`, which used to stop at
/// "not installed" before the network; objects not named for the app are never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_and_uninstall_remove_an_apps_objects_without_any_container() {
    let _podman = PODMAN.lock().await;
    let app = "reliaundo";
    remove_everything_of(app).await;
    let engine = engine().await;
    let tmp = tempfile::tempdir().unwrap();
    let orchestrator = orchestrator(tmp.path()).await;
    let label = format!("archy.app={app}");
    let make = |kind: &str, name: &str| {
        let (ok, _) = podman(&[kind, "create", "--label", &label, "--", name]);
        assert!(ok, "{kind} create {name}");
    };
    make("network", "archy-reliaundo");
    make("volume", "archy-reliaundo-new");
    make("volume", "archy-reliaundo-old");
    // A foreign volume carrying the app's label but not its name, and an unlabelled one.
    make("volume", "reliaundo-foreign");
    let (ok, _) = podman(&["volume", "create", "--", "archy-reliaundo-unlabelled"]);
    assert!(ok);
    let mut secret = std::process::Command::new("podman")
        .args(["--remote", "--url", &podman_url()])
        .args([
            "secret",
            "create",
            "--label",
            &label,
            "--",
            "archy-reliaundo-token",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    secret.stdin.take().unwrap().write_all(b"s3cret").unwrap();
    assert!(secret.wait().unwrap().success());
    let dir = tmp.path().join("apps").join(app);
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/token"), "s3cret").unwrap();

    let created = Created {
        app: app.into(),
        app_dir: true,
        networks: vec!["archy-reliaundo".into()],
        volumes: vec![
            "archy-reliaundo-new".into(),
            "archy-reliaundo-unlabelled".into(),
            "reliaundo-foreign".into(),
        ],
        secrets: vec!["archy-reliaundo-token".into()],
        containers: vec!["archy-reliaundo-web".into()],
        ..Created::default()
    };
    // Round trip through the operation row's JSON.
    let json = serde_json::to_string(&created).unwrap();
    let created: Created = serde_json::from_str(&json).unwrap();
    let err = orchestrator.undo(&created).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("\"reliaundo-foreign\" is not named for reliaundo"),
        "{err}"
    );
    assert!(!engine.network_exists("archy-reliaundo").await.unwrap());
    assert_eq!(
        engine.secret_owner("archy-reliaundo-token").await.unwrap(),
        None
    );
    assert!(!dir.exists(), "the app dir the install made stayed");
    let volumes = engine.volumes_of(app).await.unwrap();
    assert_eq!(
        volumes,
        ["archy-reliaundo-old", "reliaundo-foreign"],
        "undo removes the volume it created, never an older or a foreign one"
    );
    let (unlabelled, _) = podman(&["volume", "exists", "--", "archy-reliaundo-unlabelled"]);
    assert!(unlabelled, "undo removed a volume without the app's label");
    // Undoing twice is harmless (what is gone is skipped).
    let again = Created {
        volumes: vec!["archy-reliaundo-new".into()],
        ..created.clone()
    };
    orchestrator.undo(&again).await.unwrap();

    // `uninstall` of an app without containers still takes its network and secrets.
    make("network", "archy-reliaundo");
    let err = orchestrator.uninstall(app, false).await.unwrap_err();
    assert!(
        matches!(err, archy_orchestrator::Error::NotInstalled(_)),
        "{err}"
    );
    assert!(
        !engine.network_exists("archy-reliaundo").await.unwrap(),
        "uninstall without containers left the app network"
    );

    for v in [
        "archy-reliaundo-old",
        "reliaundo-foreign",
        "archy-reliaundo-unlabelled",
    ] {
        podman(&["volume", "rm", "--", v]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_dying_mid_install_is_a_named_error_in_bounded_time() {
    let _podman = PODMAN.lock().await;
    let _service = PODMAN_SERVICE.write().await;
    let app = "reliadie";
    remove_everything_of(app).await;
    // Healthy never: without noticing the dead service, the install would wait out a 60 s
    // start period and then its retries.
    let edit = |m: String| {
        m.replace("path: /healthz", "path: /never")
            .replace("start_period_seconds: 20", "start_period_seconds: 60")
    };
    let tmp = tempfile::tempdir().unwrap();
    let (node, server, _) = node_with_apps(tmp.path(), &[(app, 18484, &edit)]).await;
    let engine = engine().await;
    let install = tokio::spawn({
        let node = node.clone();
        async move { node.install(app).await }
    });
    // Wait until the install is waiting for health (its container runs).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = engine
            .containers_of(app)
            .await
            .unwrap()
            .iter()
            .any(|c| c.state == archy_orchestrator::ContainerState::Running);
        if running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the install never started its container"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kill_podman_service();
    let killed = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(120), install).await;
    let after = killed.elapsed();
    start_podman_service();
    let err = result
        .expect("the install hung after Podman died")
        .unwrap()
        .expect_err("an install cannot succeed without Podman");
    eprintln!(
        "podman died: the install failed after {after:?}: {}",
        err.message
    );
    assert!(
        err.message.contains("Podman service") && err.message.contains("is not running"),
        "the error does not name the dead service: {}",
        err.message
    );
    assert!(
        after < Duration::from_secs(20),
        "the named error took {after:?}"
    );
    // Podman is back: the node answers and the leftovers can go.
    node.shutdown().await;
    server.abort();
    remove_everything_of(app).await;
    assert!(engine.containers_of(app).await.unwrap().is_empty());
}

/// A reboot, as far as a machine without systemd can have one: the node stops, every
/// process of the Podman user dies (service, conmon, slirp4netns, the containers, which
/// run as its subordinate ids), its runtime dir and its /dev/shm files (tmpfs after a real
/// boot) are gone, and the service is started again as at boot.
fn simulate_reboot() {
    let user = std::env::var("ARCHY_PODMAN_USER").unwrap_or_else(|_| "archy-podman".into());
    let _ = std::process::Command::new("pkill")
        .args(["-KILL", "-u", &user])
        .status();
    // Container processes run as the user's subordinate ids (--userns=nomap).
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    let (start, count) = subuid
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == user).then(|| {
                Some((
                    f.next()?.parse::<u32>().ok()?,
                    f.next()?.parse::<u32>().ok()?,
                ))
            })?
        })
        .expect("the podman user has subordinate ids");
    let ps = std::process::Command::new("ps")
        .args(["-eo", "pid=,uid="])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&ps.stdout).lines() {
        let mut f = line.split_whitespace();
        if let (Some(pid), Some(Ok(uid))) = (f.next(), f.next().map(str::parse::<u32>))
            && (start..start + count).contains(&uid)
        {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let uid = std::process::Command::new("id")
        .args(["-u", &user])
        .output()
        .unwrap();
    let run = format!("/run/user/{}", String::from_utf8_lossy(&uid.stdout).trim());
    if let Ok(entries) = std::fs::read_dir(format!("{run}/netns")) {
        for e in entries.flatten() {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(e.path())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    if let Ok(entries) = std::fs::read_dir(&run) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
    // /dev/shm is a tmpfs too: Podman's rootless locks live there, and locks that survive
    // make the refresh after boot fail ("acquiring lock N: file exists"), after which
    // started containers get no port forwarding.
    let uid_n: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().unwrap();
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        use std::os::unix::fs::MetadataExt as _;
        for e in entries.flatten() {
            if e.metadata().is_ok_and(|m| m.uid() == uid_n) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    start_podman_service();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_simulated_reboot_every_app_is_back_as_the_operator_left_it() {
    let _podman = PODMAN.lock().await;
    let _service = PODMAN_SERVICE.write().await;
    for app in ["reliaup", "reliaoff"] {
        remove_everything_of(app).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let same = |m: String| m;
    let (node, server, root) = node_with_apps(
        tmp.path(),
        &[("reliaup", 18482, &same), ("reliaoff", 18483, &same)],
    )
    .await;
    node.install("reliaup").await.unwrap();
    node.install("reliaoff").await.unwrap();
    node.stop_app("reliaoff").await.unwrap();
    assert!(
        page(18482).await.is_some(),
        "reliaup does not answer before the reboot"
    );
    let origin = node.config().origin.clone().unwrap();
    node.shutdown().await;
    drop(node);

    simulate_reboot();
    assert!(
        page(18482).await.is_none(),
        "the app survived the simulated reboot"
    );

    // The node starts on the same data dir, as its unit does at boot.
    let node = archy_node::Node::start(archy_node::NodeConfig {
        pull_interval_seconds: 3600,
        reconcile_interval_seconds: 3600,
        ..node_config(&tmp.path().join("node"), &origin, &root)
    })
    .await
    .expect("the node starts after the reboot");
    let reconciler = tokio::spawn(node.clone().reconcile_loop());
    let started = Instant::now();
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(60) {
        if node
            .app("reliaup")
            .await
            .is_ok_and(|a| a.state == "running")
            && let Some(body) = page(18482).await
        {
            answered = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "after the reboot: reliaup answered after {:?}",
        started.elapsed()
    );
    assert!(
        answered.is_some(),
        "reliaup is not back and answering after the reboot"
    );
    let off = node.app("reliaoff").await.unwrap();
    assert_eq!(
        off.state, "stopped",
        "the app the operator stopped was started"
    );
    assert!(page(18483).await.is_none(), "the stopped app answers");

    reconciler.abort();
    node.uninstall("reliaup", true).await.unwrap();
    node.uninstall("reliaoff", true).await.unwrap();
    node.shutdown().await;
    server.abort();
}
