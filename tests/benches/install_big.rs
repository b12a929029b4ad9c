//! Installing an app whose image carries a big layer (256 MiB of incompressible bytes on top
//! of hello's image), three ways in one run, alternating:
//!   archy    — a fresh node installs it through its HTTP API as the CLI does (NDJSON
//!              progress watched): verify, fetch over iroh, load, create, start, healthy;
//!              its fetch stage (first `fetching` event to first `loading` event) is timed
//!   swarm    — `Swarm::fetch` of the same blob from the same origin into a fresh store
//!              (the swarm's own fetch, the ceiling for the node's fetch stage)
//!   by hand  — `curl` of the same archive from the origin's plain HTTP route
//!              (`GET /v1/blobs/{hash}`) + `podman load -i` + `podman run -d`, until its
//!              health URL answers
//!   by hand, same isolation — the same, with the isolation archy gives every container
//!              (`archy app render`: its own network, `--cap-drop=ALL`,
//!              `--security-opt=no-new-privileges`, `--userns=nomap`, pids and memory
//!              limits). `--userns=nomap` makes Podman copy the image's files into the
//!              container's own uid range when the first container of a fresh image is
//!              created: that copy is part of what the isolation costs.
//! Each round starts with the image absent from Podman (layers are never reused).
//!
//! Needs the rootless Podman service and hello's image, like the e2e tests, and host
//! ports: ARCHY_BENCH_PORT (default 18096) for archy's container and the next one for the
//! by-hand one. ARCHY_BENCH_MIB sets the layer size, ARCHY_BENCH_ROUNDS the rounds (3).
//!   flock -o /tmp/archy-podman.lock env ARCHY_PODMAN_URL=… ARCHY_TEST_ARTIFACTS=… \
//!     cargo bench -p archy-tests --bench install_big

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use archy_api::Stage;
use archy_tests::*;

const APP: &str = "bigapp";
const TAG: &str = "localhost/archy/bench-big:1.0.0";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

/// Removes the big image (and whatever runs from it) so the next load starts from nothing.
async fn forget_image() {
    let _ = tokio::process::Command::new("podman")
        .args(["--remote", "--url", &podman_url(), "rmi", "--force", TAG])
        .output()
        .await;
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

/// hello's image with a layer of `mib` MiB of incompressible bytes, as an OCI archive.
async fn big_image(dir: &Path, mib: usize) -> std::path::PathBuf {
    let engine = archy_orchestrator::Engine::connect(&podman_url())
        .await
        .unwrap();
    let hello = engine
        .load_image_file(&artifacts_dir().join("hello/image.tar"))
        .await
        .unwrap();
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut data = vec![0u8; mib * 1024 * 1024];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(ctx.join("big"), &data).unwrap();
    drop(data);
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM {hello}\nCOPY big /big\n"),
    )
    .unwrap();
    let ctx_str = ctx.to_str().unwrap();
    podman_cli(&[
        "build",
        "--pull=never",
        "--network=none",
        "--layers=false",
        "-t",
        TAG,
        ctx_str,
    ])
    .await;
    let archive = dir.join("big.tar");
    podman_cli(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        TAG,
    ])
    .await;
    std::fs::remove_dir_all(&ctx).unwrap();
    forget_image().await;
    archive
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Archy {
    total: Duration,
    fetch: Duration,
    events: usize,
    /// Time from each stage's first event to the next stage's (and from the last to the end).
    stages: Vec<(Stage, Duration)>,
}

/// The first event of each stage, in order, and how many events there were.
#[derive(Default)]
struct Seen {
    firsts: Vec<(Stage, Instant)>,
    events: usize,
}

/// How long each stage lasted, from its first event to the next stage's (the last: to `end`).
fn stage_times(firsts: &[(Stage, Instant)], end: Instant) -> Vec<(Stage, Duration)> {
    firsts
        .iter()
        .enumerate()
        .map(|(i, (stage, at))| {
            let next = firsts.get(i + 1).map_or(end, |(_, t)| *t);
            (*stage, next - *at)
        })
        .collect()
}

/// A fresh node in `dir` installs the app through its API, watching the progress stream.
async fn archy_install(dir: &Path, origin: &TestOrigin) -> Archy {
    let node = archy_node::Node::start(node_config(dir, &origin.url, &origin.root))
        .await
        .unwrap();
    node.pull_catalog().await.unwrap();
    let (api, daemon) = serve_api(node.clone()).await;
    let client =
        archy_api::Client::from_token_file(&api, &archy_node::auth::token_path(dir)).unwrap();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let start = Instant::now();
    let s = seen.clone();
    client
        .install(APP, false, move |p| {
            let mut s = s.lock().unwrap();
            s.events += 1;
            if s.firsts.last().is_none_or(|(stage, _)| *stage != p.stage) {
                s.firsts.push((p.stage, Instant::now()));
            }
        })
        .await
        .unwrap();
    let end = Instant::now();
    let total = end - start;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let first = |stage| {
        seen.firsts
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, t)| *t)
            .unwrap()
    };
    let fetch = first(Stage::Loading) - first(Stage::Fetching);
    node.uninstall(APP, true).await.unwrap();
    daemon.abort();
    node.shutdown().await;
    forget_image().await;
    Archy {
        total,
        fetch,
        events: seen.events,
        stages: stage_times(&seen.firsts, end),
    }
}

async fn swarm_fetch(dir: &Path, origin: &TestOrigin, blob: &archy_swarm::BlobRef) -> Duration {
    let peer = archy_swarm::Swarm::start(archy_swarm::SwarmConfig::new(dir))
        .await
        .unwrap();
    let start = Instant::now();
    peer.fetch(blob, &[origin.swarm.addr()]).await.unwrap();
    let d = start.elapsed();
    peer.shutdown().await;
    d
}

struct ByHand {
    total: Duration,
    /// curl, podman load, podman run, until healthy.
    steps: [Duration; 4],
}

/// What archy adds to a plain `podman run` for hello (`archy app render hello`).
const ISOLATION: &[&str] = &[
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--userns=nomap",
    "--network=bench-by-hand",
    "--pids-limit",
    "2048",
    "--memory",
    "32m",
];

async fn by_hand(dir: &Path, url: &str, port: u16, isolated: bool) -> ByHand {
    let file = dir.join("image.tar");
    let start = Instant::now();
    let out = tokio::process::Command::new("curl")
        .args(["-sSf", "-o", file.to_str().unwrap(), url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "curl: {out:?}");
    let fetched = Instant::now();
    podman_cli(&["load", "--quiet", "-i", file.to_str().unwrap()]).await;
    let loaded = Instant::now();
    let publish = format!("127.0.0.1:{port}:8080");
    let mut run = vec!["run", "-d", "--name", "bench-by-hand", "-p", &publish];
    if isolated {
        podman_cli(&["network", "create", "bench-by-hand"]).await;
        run.extend_from_slice(ISOLATION);
    }
    run.push(TAG);
    podman_cli(&run).await;
    let ran = Instant::now();
    wait_http_ok(&format!("http://127.0.0.1:{port}/healthz")).await;
    let end = Instant::now();
    let d = ByHand {
        total: end - start,
        steps: [fetched - start, loaded - fetched, ran - loaded, end - ran],
    };
    podman_cli(&["rm", "--force", "--time", "0", "bench-by-hand"]).await;
    if isolated {
        podman_cli(&["network", "rm", "bench-by-hand"]).await;
    }
    forget_image().await;
    std::fs::remove_file(&file).unwrap();
    d
}

#[tokio::main]
async fn main() {
    // The node's own logs (e.g. RUST_LOG=archy_orchestrator=debug for each Podman call).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let mib: usize = env_or("ARCHY_BENCH_MIB", 256);
    let rounds: usize = env_or("ARCHY_BENCH_ROUNDS", 3);
    let port: u16 = env_or("ARCHY_BENCH_PORT", 18096);
    let tmp = tempfile::tempdir().unwrap();
    println!("building hello + a {mib} MiB layer …");
    let archive = big_image(tmp.path(), mib).await;
    let apps = apps_from_hello(&tmp.path().join("catalog"), &[(APP, port, &|m: String| m)]);
    std::fs::copy(
        &archive,
        tmp.path()
            .join("catalog/artifacts")
            .join(APP)
            .join("image.tar"),
    )
    .unwrap();
    std::fs::create_dir_all(tmp.path().join("origin")).unwrap();
    let origin = TestOrigin::of(&tmp.path().join("origin"), &apps).await;
    let blob = origin
        .swarm
        .import_file(&archive, "bench/big")
        .await
        .unwrap();
    let blob_url = format!("{}/v1/blobs/{}", origin.url, blob.hex());
    println!(
        "archive: {} bytes ({:.0} MiB), blake3 {}",
        blob.size,
        blob.size as f64 / 1048576.0,
        blob.hex()
    );
    forget_image().await;

    let (mut ours, mut fetches, mut swarm, mut hand, mut same) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let dir = tmp.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&dir).unwrap();
        let node_dir = dir.join("node");
        // The order rotates, so none of the three always runs first.
        let (mut a, mut h, mut i) = (None, None, None);
        for step in 0..3 {
            match (round + step) % 3 {
                0 => a = Some(archy_install(&node_dir, &origin).await),
                1 => h = Some(by_hand(&dir, &blob_url, port + 1, false).await),
                _ => i = Some(by_hand(&dir, &blob_url, port + 1, true).await),
            }
        }
        let (a, h, i) = (a.unwrap(), h.unwrap(), i.unwrap());
        let s = swarm_fetch(&dir.join("swarm"), &origin, &blob).await;
        println!(
            "round {round}: archy install {:?} (fetch stage {:?}, {:.0} MiB/s, {} progress events), \
             swarm fetch {s:?} ({:.0} MiB/s), by hand {:?}, by hand with archy's isolation {:?}",
            a.total,
            a.fetch,
            mib_s(blob.size, a.fetch),
            a.events,
            mib_s(blob.size, s),
            h.total,
            i.total,
        );
        let stages: Vec<String> = a
            .stages
            .iter()
            .map(|(stage, d)| format!("{stage:?} {:.0} ms", d.as_secs_f64() * 1e3))
            .collect();
        println!("  archy stages: {}", stages.join(", "));
        for (what, b) in [("by hand", &h), ("same isolation", &i)] {
            let [curl, load, run, health] = b.steps.map(|d| d.as_secs_f64() * 1e3);
            println!(
                "  {what}: curl {curl:.0} ms, podman load {load:.0} ms, podman run {run:.0} ms, \
                 healthy {health:.0} ms"
            );
        }
        ours.push(a.total);
        fetches.push(a.fetch);
        swarm.push(s);
        hand.push(h.total);
        same.push(i.total);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (ours, fetch, swarm, hand, same) = (
        median(ours),
        median(fetches),
        median(swarm),
        median(hand),
        median(same),
    );
    println!("median of {rounds} rounds, {mib} MiB layer:");
    println!("  archy install to healthy: {ours:?}");
    println!("  curl + podman load + podman run, to healthy: {hand:?}");
    println!("  the same with archy's isolation (--userns=nomap …): {same:?}");
    println!(
        "  install / by hand with the same isolation: {:.2}x",
        ours.as_secs_f64() / same.as_secs_f64()
    );
    println!(
        "  install / by hand: {:.2}x (aim <= 1.1x)",
        ours.as_secs_f64() / hand.as_secs_f64()
    );
    println!(
        "  install's fetch stage: {fetch:?} ({:.0} MiB/s); swarm fetch: {swarm:?} ({:.0} MiB/s); \
         fetch stage / swarm fetch throughput: {:.2}x",
        mib_s(blob.size, fetch),
        mib_s(blob.size, swarm),
        swarm.as_secs_f64() / fetch.as_secs_f64()
    );
    origin.server.abort();
    origin.swarm.shutdown().await;
}
