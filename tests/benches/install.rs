//! Install-to-healthy for the demo app against `podman run` of the same image, and one
//! reconciler pass with 20 apps installed. Needs the rootless Podman service and the
//! built images, like the tests:
//!   eval "$(scripts/setup-podman.sh)"; apps/build.sh build/artifacts
//!   ARCHY_PODMAN_URL=… cargo bench -p archy-tests --bench install
//! Host ports: ARCHY_BENCH_PORT (default 18100) for hello, the next one for `podman run`,
//! and the 20 after those for the reconciler's apps.

use std::time::{Duration, Instant};

use archy_tests::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The podman CLI against the bench's service, for what a plain operator runs by hand.
async fn podman_cli(args: &[&str]) -> String {
    let out = tokio::process::Command::new("podman")
        .args(["--remote", "--url", &podman_url()])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_http_ok(url: &str) {
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() {
    let podman = podman_url();
    let engine = archy_orchestrator::Engine::connect(&podman).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;

    // Twenty apps from hello's image on ports base+2.., plus hello itself on base.
    let base: u16 = std::env::var("ARCHY_BENCH_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18100);
    let plain_publish = format!("127.0.0.1:{}:8080", base + 1);
    let plain_health = format!("http://127.0.0.1:{}/healthz", base + 1);
    let same = |m: String| m;
    let ids: Vec<String> = (0..20).map(|i| format!("bench-{i}")).collect();
    let mut specs: Vec<HelloApp<'_>> = vec![("hello", base, &same)];
    for (i, app) in ids.iter().enumerate() {
        specs.push((app.as_str(), base + 2 + i as u16, &same));
    }
    let apps = apps_from_hello(&tmp.path().join("catalog"), &specs);
    let (listener, url) = loopback_listener().await;
    let server = serve_bytes(
        listener,
        signed_catalog_of(&apps, &keys, &url, &id, 1, 30).to_bytes(),
        swarm,
    );
    let node = start_node(&tmp.path().join("node"), &url, &root).await;
    node.pull_catalog().await.unwrap();

    let image = artifacts_dir().join("hello/image.tar");
    let image_ref = engine.load_image_file(&image).await.unwrap();

    let runs = 7;
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for round in 0..runs {
        // podman run of the image already in the store, until it answers its health URL.
        let start = Instant::now();
        podman_cli(&[
            "run",
            "-d",
            "--name",
            "bench-plain",
            "-p",
            &plain_publish,
            &image_ref,
        ])
        .await;
        wait_http_ok(&plain_health).await;
        plain.push(start.elapsed());
        podman_cli(&["rm", "--force", "--time", "0", "bench-plain"]).await;

        // archy: verify, fetch over iroh (first round) or from the store, load, create, start, healthy.
        let start = Instant::now();
        node.install("hello").await.unwrap();
        ours.push(start.elapsed());
        node.uninstall("hello", true).await.unwrap();
        println!(
            "round {round}: podman run {:?}, archy install {:?}",
            plain[round], ours[round]
        );
    }
    let (ours, plain) = (median(ours), median(plain));
    println!("install to healthy, median of {runs}: archy {ours:?}, podman run {plain:?}");
    println!(
        "archy overhead: {:?} ({:.2}x podman run; aim: at most 1 s over)",
        ours.saturating_sub(plain),
        ours.as_secs_f64() / plain.as_secs_f64()
    );

    for app in &ids {
        node.install(app).await.unwrap();
    }
    let mut passes = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let repairs = node.reconcile_once().await.unwrap();
        passes.push(start.elapsed());
        assert!(repairs.is_empty());
    }
    // Baseline: the one Podman call a pass cannot do without, listing every container.
    let mut lists = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        podman_cli(&["ps", "--all", "--format", "json"]).await;
        lists.push(start.elapsed());
    }
    let (pass, list) = (median(passes), median(lists));
    println!(
        "reconciler pass with 20 apps: {pass:?} (one `podman ps --all`: {list:?}; {:.1}x)",
        pass.as_secs_f64() / list.as_secs_f64()
    );
    for app in &ids {
        node.uninstall(app, true).await.unwrap();
    }
    server.abort();
}
