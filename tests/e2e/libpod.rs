//! The REST runtime ([`Libpod`]) against the real rootless Podman service: every operation
//! it serves over the API answers as the CLI runtime ([`Engine`]) does, missing objects
//! follow the `Runtime` contract, and what it creates carries the app's label.

use std::time::Duration;

use archy_orchestrator::{ArchiveSource, ContainerState, ImageArchive, Libpod, Runtime};

use super::*;

const APP: &str = "restrt";

async fn clean(cli: &archy_orchestrator::Engine) {
    for c in Runtime::containers_of(cli, APP).await.unwrap() {
        Runtime::remove_container(cli, &c.name).await.unwrap();
    }
    for v in Runtime::volumes_of(cli, APP).await.unwrap() {
        let _ = Runtime::remove_volume(cli, &v).await;
    }
    for name in [format!("archy-{APP}"), format!("archy-{APP}-stranger")] {
        let _ = podman(&["network", "rm", "--", &name]);
    }
    let _ = podman(&["secret", "rm", "--", &format!("archy-{APP}-db")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_runtime_answers_as_the_cli_does() {
    let _podman = PODMAN.lock().await;
    let _service = PODMAN_SERVICE.read().await;
    let cli = engine().await;
    let rest = Libpod::connect(&podman_url()).await.expect("libpod API");
    clean(&cli).await;
    assert!(rest.host().rootless);
    assert_eq!(
        rest.host(),
        Runtime::host(&cli),
        "GET /info is `podman info`"
    );
    rest.ping(Duration::from_secs(5)).await.unwrap();

    // Networks: created labelled; the owner as the CLI reads it; missing is None; one
    // without our label is Some("").
    let net = format!("archy-{APP}");
    assert_eq!(rest.network_owner(&net).await.unwrap(), None);
    rest.create_network(APP, &net).await.unwrap();
    assert_eq!(
        rest.network_owner(&net).await.unwrap().as_deref(),
        Some(APP)
    );
    assert_eq!(
        Runtime::network_owner(&cli, &net).await.unwrap().as_deref(),
        Some(APP)
    );
    let (_, dns) = podman(&[
        "network",
        "inspect",
        "--format",
        "{{.DNSEnabled}}",
        "--",
        &net,
    ]);
    assert_eq!(dns, "true", "the app's containers find each other by name");
    let stranger = format!("archy-{APP}-stranger");
    assert!(podman(&["network", "create", "--", &stranger]).0);
    assert_eq!(
        rest.network_owner(&stranger).await.unwrap().as_deref(),
        Some("")
    );
    rest.remove_network(&stranger).await.unwrap();
    assert!(
        rest.remove_network(&stranger).await.is_err(),
        "a missing network"
    );

    // Volumes.
    let vol = format!("archy-{APP}-data");
    rest.create_volume(APP, &vol).await.unwrap();
    assert_eq!(rest.volumes_of(APP).await.unwrap(), vec![vol.clone()]);
    assert_eq!(
        Runtime::volumes_of(&cli, APP).await.unwrap(),
        vec![vol.clone()]
    );
    assert!(rest.volumes_of("restrt-other").await.unwrap().is_empty());

    // Secrets: labelled, listed, the value delivered (read back inside a container below).
    let secret = format!("archy-{APP}-db");
    assert_eq!(rest.secret_owner(&secret).await.unwrap(), None);
    rest.create_secret(&secret, APP, b"rest-secret-value")
        .await
        .unwrap();
    assert_eq!(
        rest.secret_owner(&secret).await.unwrap().as_deref(),
        Some(APP)
    );
    assert_eq!(
        Runtime::secret_owner(&cli, &secret)
            .await
            .unwrap()
            .as_deref(),
        Some(APP)
    );
    assert!(rest.secret_names().await.unwrap().contains(&secret));

    // Images: a file and a stream load to the id the CLI loads.
    let tar = artifacts_dir().join("hello/image.tar");
    let by_cli = cli.load_image_file(&tar).await.unwrap();
    let from_file = rest
        .load_image(ImageArchive::open_file(&tar).unwrap())
        .await
        .unwrap();
    assert_eq!(from_file, by_cli);
    let bytes = std::fs::read(&tar).unwrap();
    let from_stream = rest
        .load_image(ImageArchive {
            what: "hello stream".into(),
            size: bytes.len() as u64,
            source: ArchiveSource::Stream(Box::pin(std::io::Cursor::new(bytes.clone()))),
        })
        .await
        .unwrap();
    assert_eq!(from_stream, by_cli);
    // One byte short: Podman refuses it, with its reason.
    let err = rest
        .load_image(ImageArchive {
            what: "short".into(),
            size: bytes.len() as u64 + 1,
            source: ArchiveSource::Stream(Box::pin(std::io::Cursor::new(bytes))),
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ended after"), "{err}");

    // Containers: a labelled one made by hand, driven over the API.
    let name = format!("archy-{APP}-web");
    let label = format!("archy.app={APP}");
    let secret_mount = format!("{secret},target=/run/secrets/db");
    let (ok, out) = podman(&[
        "create",
        "--name",
        &name,
        "--label",
        &label,
        "--network",
        &net,
        "--secret",
        &secret_mount,
        "--volume",
        &format!("{vol}:/data"),
        "--",
        &by_cli,
    ]);
    assert!(ok, "{out}");
    let listed = rest.containers_of(APP).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].state),
        (name.as_str(), ContainerState::Created)
    );
    let by_app = rest.containers_by_app().await.unwrap();
    assert_eq!(by_app[APP].len(), 1);
    assert_eq!(
        by_app.keys().collect::<Vec<_>>(),
        Runtime::containers_by_app(&cli)
            .await
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        rest.inspect(&name).await.unwrap(),
        Runtime::inspect(&cli, &name).await.unwrap()
    );
    rest.start_container(&name).await.unwrap();
    rest.start_container(&name).await.unwrap(); // already running: 304, not an error
    let running = rest.inspect(&name).await.unwrap().unwrap();
    assert_eq!(
        (
            running.status.as_str(),
            running.labels["archy.app"].as_str()
        ),
        ("running", APP)
    );
    let read = Runtime::exec(
        &rest,
        &name,
        &[
            "/bin/busybox".into(),
            "cat".into(),
            "/run/secrets/db".into(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(read, "rest-secret-value");
    // The command goes as it is: option-like words are its arguments, not Podman's.
    let echo = ["/bin/busybox", "echo", "--privileged", "-x"].map(String::from);
    assert_eq!(
        Runtime::exec(&rest, &name, &echo).await.unwrap(),
        "--privileged -x\n"
    );
    let fail = ["/bin/busybox", "sh", "-c", "echo nope >&2; exit 3"].map(String::from);
    let err = Runtime::exec(&rest, &name, &fail)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exit code 3") && err.contains("nope"), "{err}");
    rest.kill_container(&name).await.unwrap();
    let killed = rest.inspect(&name).await.unwrap().unwrap();
    assert_ne!(killed.status, "running");
    rest.start_container(&name).await.unwrap();
    rest.stop_container(&name, 2).await.unwrap();
    rest.stop_container(&name, 2).await.unwrap(); // already stopped: 304
    assert_eq!(
        rest.containers_of(APP).await.unwrap()[0].state,
        ContainerState::Exited
    );
    let err = rest.kill_container(&name).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("`podman kill {name}` failed")),
        "{err}"
    );
    rest.remove_container(&name).await.unwrap();
    rest.remove_container(&name).await.unwrap(); // missing: removal is idempotent
    assert_eq!(rest.inspect(&name).await.unwrap(), None);
    let err = rest.start_container(&name).await.unwrap_err().to_string();
    assert!(err.contains("no such container"), "{err}");

    rest.remove_secret(&secret).await.unwrap();
    assert_eq!(rest.secret_owner(&secret).await.unwrap(), None);
    rest.remove_volume(&vol).await.unwrap();
    assert!(rest.volumes_of(APP).await.unwrap().is_empty());
    assert!(rest.remove_volume(&vol).await.is_err(), "a missing volume");
    rest.remove_network(&net).await.unwrap();
    assert_eq!(rest.network_owner(&net).await.unwrap(), None);
    clean(&cli).await;
}

/// Every leaf of a JSON value as `path = value`, for a readable diff.
fn leaves(
    prefix: &str,
    v: &serde_json::Value,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                leaves(&format!("{prefix}.{k}"), v, out);
            }
        }
        serde_json::Value::Array(items) => {
            // Order-free where Podman's order is not ours (env, mounts, caps).
            let mut items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
            items.sort();
            out.insert(prefix.to_owned(), items.join(", "));
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// What differs between two containers only because they are two (names, ids, times,
/// the state of one that ran and one that did not).
fn incidental(path: &str) -> bool {
    [
        ".Id",
        ".Created",
        ".Name",
        ".State.",
        ".Config.Hostname",
        ".Config.CreateCommand",
        ".HostnamePath",
        ".HostsPath",
        ".ResolvConfPath",
        ".StaticDir",
        ".OCIConfigPath",
        ".OCIRuntime",
        ".ConmonPidFile",
        ".PidFile",
        ".NetworkSettings.",
        ".Mounts",
        ".GraphDriver.",
        ".Pod",
        ".ExitCommand",
        ".RestartCount",
        ".SizeRootFs",
        ".SizeRw",
        ".ProcessLabel",
        ".MountLabel",
        ".ExecIDs",
        ".HostConfig.ContainerIDFile",
        ".Config.Env",
        ".Namespace",
        ".IsInfra",
        ".IsService",
        ".Dependencies",
        ".Rootfs",
        ".AppArmorProfile",
        ".Driver",
        ".HostConfig.LogConfig.Path",
        ".Config.Annotations.io.kubernetes.cri-o.Created",
    ]
    .iter()
    .any(|p| path.starts_with(p) || path == p.trim_end_matches('.'))
}

/// A container the REST runtime created from a checked spec is the container the CLI
/// creates from the same argv: the whole `podman inspect` agrees, but for what differs
/// between any two containers; the security-relevant fields are named so that a missing
/// one says what went missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_created_over_the_api_is_the_one_the_cli_creates_from_the_same_argv() {
    let _podman = PODMAN.lock().await;
    let _service = PODMAN_SERVICE.read().await;
    let app = "restagree";
    remove_everything_of(app).await;
    let cli_name = format!("archy-{app}-cli");
    let _ = podman(&["rm", "--force", "--", &cli_name]);
    let edit = |m: String| {
        token_secret(web_lines(
            m,
            "    volumes: [{ name: data, path: /data }]\n    env: { TOKEN: { secret: token }, GREETING: hello there }\n    read_only_root: true\n    capabilities: [NET_BIND_SERVICE]\n    user: \"1000:1000\"",
        ))
    };
    let tmp = tempfile::tempdir().unwrap();
    let origin = TestOrigin::hello_apps(tmp.path(), &[(app, 18483, &edit)]).await;
    let node = quiet_node(&tmp.path().join("node"), &origin.url, &origin.root).await;
    node.pull_catalog().await.unwrap();
    node.install(app).await.unwrap();
    let web = format!("archy-{app}-web");

    // The argv the REST create was made from (what inspect shows as its create command),
    // run by the CLI under another name.
    let (ok, argv) = podman(&[
        "inspect",
        "--format",
        "{{json .Config.CreateCommand}}",
        "--",
        &web,
    ]);
    assert!(ok, "{argv}");
    let mut argv: Vec<String> = serde_json::from_str(&argv).unwrap();
    assert_eq!(argv[..2], ["podman", "create"]);
    let at = argv.iter().position(|a| a == "--name").unwrap();
    argv[at + 1] = cli_name.clone();
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let (ok, out) = podman(&args);
    assert!(ok, "the CLI refused the checked argv: {out}");

    // Both as containers that ran and stopped (what Podman reports grows at the first
    // start): the REST one stops, the CLI one runs on the port it freed, and stops.
    node.stop_app(app).await.unwrap();
    for args in [["start", "--", &cli_name], ["stop", "--", &cli_name]] {
        let (ok, out) = podman(&args);
        assert!(ok, "{out}");
    }

    let inspect = |name: &str| -> serde_json::Value {
        let (ok, out) = podman(&["container", "inspect", "--", name]);
        assert!(ok, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
    };
    let (rest, cli) = (inspect(&web), inspect(&cli_name));
    let (mut a, mut b) = Default::default();
    leaves("", &rest, &mut a);
    leaves("", &cli, &mut b);
    let mut differ = Vec::new();
    for key in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if !incidental(key) && a.get(key) != b.get(key) {
            differ.push(format!(
                "{key}: REST {:?} vs CLI {:?}",
                a.get(key),
                b.get(key)
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "the two containers differ:\n{}",
        differ.join("\n")
    );
    // The security-relevant fields, named (the diff above covers them; this says what
    // each is, and fails by name if Podman ever stops reporting one).
    let env = |c: &serde_json::Value| {
        let mut e: Vec<String> = serde_json::from_value(c["Config"]["Env"].clone()).unwrap();
        e.retain(|v| !v.starts_with("HOSTNAME="));
        e.sort();
        e
    };
    assert_eq!(
        env(&rest),
        env(&cli),
        "environment (secrets resolved by Podman)"
    );
    assert!(env(&rest).contains(&"GREETING=hello there".to_owned()));
    let mounts = |c: &serde_json::Value| {
        let mut m: Vec<String> = c["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{} {} {} {}",
                    m["Type"], m["Name"], m["Destination"], m["RW"]
                )
            })
            .collect();
        m.sort();
        m
    };
    assert_eq!(mounts(&rest), mounts(&cli), "mounts");
    assert_eq!(
        mounts(&rest).len(),
        1,
        "one volume, nothing else: {:?}",
        mounts(&rest)
    );
    for (field, want) in [
        ("/HostConfig/CapDrop", None),
        ("/HostConfig/CapAdd", None),
        ("/HostConfig/SecurityOpt", None),
        ("/HostConfig/ReadonlyRootfs", Some(serde_json::json!(true))),
        ("/HostConfig/UsernsMode", None),
        ("/HostConfig/PortBindings", None),
        ("/HostConfig/PidsLimit", None),
        // Equal, not 32 MiB: on cgroup v1 rootless Podman drops the limit of both (the
        // node says so at install).
        ("/HostConfig/Memory", None),
        ("/HostConfig/NanoCpus", None),
        ("/HostConfig/Privileged", Some(serde_json::json!(false))),
        ("/HostConfig/Tmpfs", None),
        ("/HostConfig/NetworkMode", None),
        ("/Config/User", Some(serde_json::json!("1000:1000"))),
        ("/Config/Labels", None),
        ("/Config/StopTimeout", Some(serde_json::json!(5))),
    ] {
        let (r, c) = (rest.pointer(field), cli.pointer(field));
        assert!(r.is_some(), "{field} missing from inspect");
        assert_eq!(r, c, "{field}");
        if let Some(want) = want {
            assert_eq!(r, Some(&want), "{field}");
        }
    }
    assert_eq!(
        rest.pointer("/HostConfig/SecurityOpt").unwrap(),
        &serde_json::json!(["no-new-privileges"])
    );
    // Podman 4.3 reports `--userns=nomap` as a private namespace; that the Podman user is
    // not mapped in it is checked on the running container by `hardening::`.
    assert_eq!(rest.pointer("/HostConfig/UsernsMode").unwrap(), "private");
    println!(
        "CapDrop {} CapAdd {} PortBindings {} Tmpfs {}",
        rest["HostConfig"]["CapDrop"],
        rest["HostConfig"]["CapAdd"],
        rest["HostConfig"]["PortBindings"],
        rest["HostConfig"]["Tmpfs"]
    );

    let _ = podman(&["rm", "--force", "--", &cli_name]);
    node.uninstall(app, true).await.unwrap();
    origin.server.abort();
}
