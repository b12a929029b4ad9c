//! Containers are hardened by default, checked on the real container in rootless Podman:
//! capabilities dropped to what the manifest declares, no new privileges, a user namespace
//! where container root is not the Podman user, a pids limit, a read-only root on request,
//! and secrets delivered as Podman secrets rather than through the node's env files.
//!
//! Each test collects every property it checks and reports all that fail, so removing one
//! defence from `create_args` names exactly what went missing.

use std::os::unix::fs::MetadataExt;

use super::*;

/// `Name:\tvalue` from /proc/1/status inside the container.
fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The uid the Podman service runs as: the owner of its socket.
fn podman_user_uid() -> u32 {
    let url = podman_url();
    let path = url.strip_prefix("unix://").expect("a unix socket URL");
    std::fs::metadata(path).expect("podman socket").uid()
}

/// Host uid ranges (start, length) of a process's user namespace, read from the host.
fn host_uid_ranges(pid: u64) -> Vec<(u64, u64, u64)> {
    std::fs::read_to_string(format!("/proc/{pid}/uid_map"))
        .expect("uid_map of the container's process")
        .lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3).then(|| (f[0], f[1], f[2]))
        })
        .collect()
}

fn assert_all(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "hardening missing:\n  {}",
        failures.join("\n  ")
    );
}

/// Runs as root in the container (uid 0 still owns the image's files), declares one
/// capability: the bounding set holds exactly that one, privileges cannot grow, root
/// inside is a subordinate uid on the host, and the pids limit is passed to Podman.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_drop_capabilities_privileges_and_the_podman_uid() {
    let t = HelloTest::start(|m| {
        web_lines(m, "    user: \"0:0\"\n    capabilities: [NET_BIND_SERVICE]")
    })
    .await;
    let node = &t.node;
    let app = node
        .install("hello")
        .await
        .expect("hardened hello installs");
    assert_eq!(app.state, "running");
    let page = app.url.clone().unwrap();
    assert!(reqwest::get(&page).await.unwrap().status().is_success());

    let engine = engine().await;
    let status = engine
        .exec(
            "archy-hello-web",
            &["/bin/busybox", "cat", "/proc/1/status"],
        )
        .await
        .unwrap();
    let inspect = engine
        .inspect_container("archy-hello-web")
        .await
        .unwrap()
        .expect("the container exists");
    let mut failures = Vec::new();
    // CAP_NET_BIND_SERVICE is bit 10; Podman's default set would be 0x800405fb.
    let net_bind_only = "0000000000000400";
    for field in ["CapBnd", "CapEff", "CapPrm"] {
        let value = status_field(&status, field);
        if value != net_bind_only {
            failures.push(format!(
                "{field} is {value}, not {net_bind_only} (only NET_BIND_SERVICE)"
            ));
        }
    }
    if status_field(&status, "NoNewPrivs") != "1" {
        failures.push(format!(
            "NoNewPrivs is {:?}, not 1",
            status_field(&status, "NoNewPrivs")
        ));
    }
    // The user namespace, seen from the host: container root must not be the Podman user,
    // and the Podman user must not be mapped into the container at all.
    let pid = inspect["State"]["Pid"].as_u64().expect("a running pid");
    let ranges = host_uid_ranges(pid);
    let podman_uid = u64::from(podman_user_uid());
    let root_on_host = ranges
        .iter()
        .find(|(inside, _, len)| *inside == 0 && *len > 0)
        .map(|(_, host, _)| *host);
    if root_on_host == Some(podman_uid) {
        failures.push(format!(
            "container root is the Podman user (uid {podman_uid}) on the host: {ranges:?}"
        ));
    }
    if ranges
        .iter()
        .any(|(_, host, len)| (*host..host + len).contains(&podman_uid))
    {
        failures.push(format!(
            "the Podman user (uid {podman_uid}) is mapped into the container: {ranges:?}"
        ));
    }
    // Podman drops limits it cannot enforce (cgroup v1 rootless), so what is checked is
    // that the limit was asked for, and that it holds where the host can enforce it.
    let create_command = inspect["Config"]["CreateCommand"].to_string();
    if !create_command.contains("\"--pids-limit\",\"2048\"") {
        failures.push(format!(
            "no --pids-limit 2048 in the create command: {create_command}"
        ));
    }
    if engine.limits().pids && inspect["HostConfig"]["PidsLimit"].as_u64() != Some(2048) {
        failures.push(format!(
            "the host enforces pids limits but the container has {}",
            inspect["HostConfig"]["PidsLimit"]
        ));
    }
    assert_all(failures);
    t.finish().await;
}

/// The orchestrator says which limits this host enforces, from `podman info`, and the
/// install reports each declared limit Podman would silently drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unenforceable_limits_are_detected_from_podman_info() {
    let _service = PODMAN_SERVICE.read().await;
    let engine = engine().await;
    let host = engine.host().clone();
    let limits = engine.limits();
    let (_, info) = podman(&[
        "info",
        "--format",
        "{{.Host.CgroupsVersion}} {{.Host.CgroupManager}} {{.Host.CgroupControllers}}",
    ]);
    assert!(
        info.starts_with(&format!("{} {}", host.cgroup_version, host.cgroup_manager)),
        "{info} vs {host:?}"
    );
    let manifest = archy_registry::Manifest::from_yaml(
        &std::fs::read_to_string(repo_root().join("apps/hello/manifest.yml")).unwrap(),
    )
    .unwrap();
    let unenforced = limits.unenforced(&manifest.resources);
    if host.cgroup_version == "v1" {
        // This project's test host: rootless Podman on cgroup v1 applies no limit at all.
        assert!(!limits.memory && !limits.cpu && !limits.pids, "{limits:?}");
        let words: Vec<String> = unenforced.iter().map(ToString::to_string).collect();
        assert!(
            words
                .iter()
                .any(|w| w.starts_with("memory limit of 32 MiB is not enforced")),
            "{words:?}"
        );
    }
    // Whatever the host, what is reported unenforced is exactly what Podman drops.
    podman(&["rm", "--force", "--", "archy-limit-probe"]);
    let image = engine
        .load_image_file(&artifacts_dir().join("hello/image.tar"))
        .await
        .unwrap();
    let (ok, out) = podman(&[
        "create",
        "--name",
        "archy-limit-probe",
        "--memory",
        "32m",
        "--pids-limit",
        "100",
        "--",
        &image,
    ]);
    assert!(ok, "{out}");
    let probe = engine
        .inspect_container("archy-limit-probe")
        .await
        .unwrap()
        .unwrap();
    podman(&["rm", "--force", "--", "archy-limit-probe"]);
    assert_eq!(
        probe["HostConfig"]["Memory"].as_u64() == Some(32 * 1024 * 1024),
        limits.memory,
        "memory limit support misjudged: {}",
        probe["HostConfig"]
    );
    assert_eq!(
        probe["HostConfig"]["PidsLimit"].as_u64() == Some(100),
        limits.pids,
        "pids limit support misjudged: {}",
        probe["HostConfig"]
    );
}

/// `read_only_root: true`: the root filesystem refuses writes (even root's), `/tmp` is a
/// writable tmpfs, and volumes stay writable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_root_refuses_writes_but_tmp_and_volumes_work() {
    let t = HelloTest::start(|m| {
        web_lines(
            m,
            "    user: \"0:0\"\n    read_only_root: true\n    volumes: [{ name: data, path: /data }]",
        )
    })
    .await;
    let node = &t.node;
    let app = node
        .install("hello")
        .await
        .expect("read-only hello installs");
    assert_eq!(app.state, "running");
    assert!(
        reqwest::get(app.url.unwrap())
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let engine = engine().await;
    let sh = |script: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .exec("archy-hello-web", &["/bin/busybox", "sh", "-c", script])
                .await
        }
    };
    let mut failures = Vec::new();
    match sh("echo x > /www/probe").await {
        Ok(_) => failures.push("root wrote to /www: the root filesystem is writable".to_owned()),
        Err(e) if e.to_string().contains("Read-only file system") => {}
        Err(e) => failures.push(format!("writing /www failed for another reason: {e}")),
    }
    if let Err(e) = sh("echo x > /tmp/probe && cat /tmp/probe").await {
        failures.push(format!("/tmp is not writable: {e}"));
    }
    if let Err(e) = sh("echo x > /data/probe").await {
        failures.push(format!("the volume is not writable: {e}"));
    }
    assert_all(failures);
    t.finish().await;
}

/// Secrets reach the app as environment variables through Podman secrets named and
/// labelled for the app: the node's env files and the create command never hold the
/// value, uninstall removes the Podman secret (the 0600 file stays for a reinstall, which
/// gets the same value), and purge removes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_podman_secrets_kept_out_of_env_files_and_inspect() {
    let t = HelloTest::start(|m| {
        token_secret(web_lines(
            m,
            "    env: { TOKEN: { secret: token }, GREETING: hi }",
        ))
    })
    .await;
    let node = &t.node;
    // A squatting secret left by an earlier, failed run of the rollback test.
    podman(&["secret", "rm", "--", "archy-hello-token"]);
    node.install("hello")
        .await
        .expect("hello with a secret installs");
    let node_dir = t.tmp.path().join("node");
    let token_path = node_dir.join("apps/hello/secrets/token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert_eq!(token.len(), 32);
    let engine = engine().await;
    let env_of_app = || async {
        engine
            .exec(
                "archy-hello-web",
                &["/bin/busybox", "sh", "-c", "echo $TOKEN $GREETING"],
            )
            .await
            .unwrap()
    };
    let mut failures = Vec::new();
    if env_of_app().await.trim() != format!("{token} hi") {
        failures.push("the app does not see TOKEN and GREETING".to_owned());
    }
    // The node's own env files hold plain values only.
    for entry in std::fs::read_dir(node_dir.join("apps/hello/env")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        if text.contains(&token) {
            failures.push(format!("an env file holds the secret: {text:?}"));
        }
    }
    let (exists, owner) = podman(&[
        "secret",
        "inspect",
        "--format",
        "{{index .Spec.Labels \"archy.app\"}}",
        "--",
        "archy-hello-token",
    ]);
    if !exists || owner.trim() != "hello" {
        failures.push(format!(
            "no Podman secret archy-hello-token labelled for hello: {owner}"
        ));
    }
    // `podman inspect` must not show the value. Podman before 5.3 copies env secrets into
    // Config.Env (containers/podman#23788; masked since #23959, by target name since
    // #28076), which no create option avoids; everywhere else the value must be absent.
    let mut inspect = engine
        .inspect_container("archy-hello-web")
        .await
        .unwrap()
        .unwrap();
    let version = engine.host().version.clone();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if major < 5 {
        inspect["Config"]["Env"] = serde_json::Value::Null;
    }
    if inspect.to_string().contains(&token) {
        failures.push(format!(
            "podman {version} inspect shows the secret outside Config.Env"
        ));
    }
    assert_all(failures);

    // Uninstall: no container needs the Podman secret any more; the file stays.
    node.uninstall("hello", false).await.unwrap();
    let (exists, _) = podman(&["secret", "inspect", "--", "archy-hello-token"]);
    assert!(!exists, "uninstall left the Podman secret");
    assert_eq!(std::fs::read_to_string(&token_path).unwrap(), token);
    // Reinstall: the same value, from the file.
    node.install("hello").await.unwrap();
    assert_eq!(env_of_app().await.trim(), format!("{token} hi"));
    node.uninstall("hello", true).await.unwrap();
    let (exists, _) = podman(&["secret", "inspect", "--", "archy-hello-token"]);
    assert!(!exists, "purge left the Podman secret");
    assert!(!token_path.exists(), "purge left the secret file");
    t.server.abort();
}

/// A failed install removes the Podman secrets it created, and a secret of the same name
/// that is not the app's is never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_rollback_removes_secrets_and_never_touches_foreign_ones() {
    let t = HelloTest::start(|m| {
        token_secret(web_lines(m, "    env: { TOKEN: { secret: token } }"))
            // Never healthy: the install fails after the secret and container exist.
            .replace("path: /healthz", "path: /missing")
            .replace("start_period_seconds: 20", "start_period_seconds: 1")
            .replace("retries: 3", "retries: 0")
    })
    .await;
    let node = &t.node;
    // A squatting secret left by an earlier, failed run of the rollback test.
    podman(&["secret", "rm", "--", "archy-hello-token"]);
    node.install("hello").await.expect_err("never healthy");
    let (exists, _) = podman(&["secret", "inspect", "--", "archy-hello-token"]);
    assert!(!exists, "a failed install left its Podman secret");
    assert!(!podman_has_app("hello").await);

    // Someone else's secret squats the name: the install refuses and leaves it be.
    let mut child = std::process::Command::new("podman")
        .args(["--remote", "--url", &podman_url()])
        .args(["secret", "create", "--", "archy-hello-token", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"theirs").unwrap();
    assert!(child.wait().unwrap().success());
    let err = node.install("hello").await.unwrap_err();
    assert!(err.message.contains("archy-hello-token"), "{}", err.message);
    let (exists, _) = podman(&["secret", "inspect", "--", "archy-hello-token"]);
    assert!(exists, "a secret the node did not create was removed");
    podman(&["secret", "rm", "--", "archy-hello-token"]);
    node.uninstall("hello", true).await.ok();
    t.server.abort();
}
