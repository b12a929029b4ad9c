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
    assert_eq!(Runtime::volumes_of(&cli, APP).await.unwrap(), vec![vol.clone()]);
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
