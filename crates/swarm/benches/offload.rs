//! Origin offload: ten nodes want one blob. Compared, in one run:
//!   alone   — one node fetching from the origin (the reference time)
//!   origin  — ten nodes fetching from the origin at once (what plain HTTP/iroh would do)
//!   swarm   — ten nodes finding each other through the origin's tracker, in doubling
//!             waves (1, 2, 4, 3): each wave fetches from whoever announced before it
//!   herd    — ten nodes starting together with the tracker: each takes from the others
//!             what they have verified so far (partial content)
//!   lone    — one node on the herd's path with no one else around (what the herd costs
//!             a fetch that turns out to be alone); then the same with the tracker still
//!             listing the lone node, which left (a stale entry)
//! For each: bytes the origin served / blob size, and the time until all ten hold it.
//! Two settings: raw loopback (CPU-bound on this machine) and every node's uplink capped
//! (ARCHY_BENCH_UPLINK_MIB, default 32 MiB/s), which is what home nodes look like.
//! Run: `cargo bench -p archy-swarm --bench offload` (ARCHY_BENCH_MIB, default 64).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use archy_swarm::{
    BlobRef, FetchPolicy, Providers, Swarm, SwarmConfig, Tracker, TrackerConfig, http_routes,
    tracker_routes,
};

const NODES: usize = 10;
const WAVES: [usize; 4] = [1, 2, 4, 3];

async fn swarm(dir: &std::path::Path, uplink: Option<u64>) -> Swarm {
    let mut config = SwarmConfig::new(dir);
    config.upload_limit_bytes_per_sec = uplink;
    Swarm::start(config).await.unwrap()
}

fn content(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// Bytes the origin has served so far (iroh and HTTP). Served counters arrive from the
/// provider's event stream just after a transfer ends, so wait for them to settle.
async fn served(origin: &Swarm) -> u64 {
    let mut last = u64::MAX;
    loop {
        let m = origin.metrics();
        let now = m.bytes_served_iroh + m.bytes_served_http;
        if now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Outcome {
    time: Duration,
    origin_ratio: f64,
}

/// `count` fresh nodes fetch `blob` together from `providers`: the time until all hold it,
/// what the origin served meanwhile and what came from peers (both / blob size).
async fn together(
    dir: &Path,
    prefix: &str,
    count: usize,
    uplink: Option<u64>,
    origin: &Swarm,
    blob: &BlobRef,
    providers: &Providers,
) -> (Outcome, f64) {
    let mut nodes = Vec::new();
    for i in 0..count {
        nodes.push(swarm(&dir.join(format!("{prefix}{i}")), uplink).await);
    }
    let policy = FetchPolicy::default();
    let before = served(origin).await;
    let start = Instant::now();
    let reports = futures::future::join_all(
        nodes
            .iter()
            .map(|n| n.fetch_with_policy(blob, providers, &policy, &|_| {})),
    )
    .await;
    let time = start.elapsed();
    let from_peers: u64 = reports
        .into_iter()
        .map(|r| r.unwrap().bytes_from_peers)
        .sum();
    for n in &nodes {
        n.shutdown().await;
    }
    let size = blob.size as f64;
    (
        Outcome {
            time,
            origin_ratio: (served(origin).await - before) as f64 / size,
        },
        from_peers as f64 / size,
    )
}

/// How many nodes the tracker lists for `blob`, asked by a node of its own.
async fn listed_by_tracker(dir: &Path, url: &str, blob: &BlobRef) -> usize {
    let asker = swarm(&dir.join("asker"), None).await;
    let listed = asker.providers(url, &blob.hash).await.unwrap().len();
    asker.shutdown().await;
    assert!(
        listed > 0,
        "the tracker lists nobody: no stale entry to measure"
    );
    listed
}

async fn scenario(name: &str, blob_bytes: &[u8], uplink: Option<u64>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let file = tmp.path().join("blob");
    std::fs::write(&file, blob_bytes).unwrap();
    let origin = Arc::new(swarm(&tmp.path().join("origin"), uplink).await);
    let blob: BlobRef = origin.import_file(&file, "bench").await.unwrap();
    let tracker = Arc::new(Tracker::new(TrackerConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let routes = http_routes(origin.clone()).merge(tracker_routes(tracker));
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    let policy = FetchPolicy::default();
    let origin_only = Providers {
        origin: Some(origin.addr()),
        origin_http: Some(url.clone()),
        peers: vec![],
        tracker: None,
    };
    let size = blob.size as f64;

    // One node, the origin alone.
    let (alone, _) = together(&dir, "alone", 1, uplink, &origin, &blob, &origin_only).await;

    let with_tracker = Providers {
        tracker: Some(url.clone()),
        ..origin_only.clone()
    };

    // One node on the herd's path with nobody else around: what joining a herd costs a
    // fetch that turns out to be alone (an install's usual case), while the tracker
    // knows nobody (it runs first).
    let (lone_herd, _) = together(&dir, "lone", 1, uplink, &origin, &blob, &with_tracker).await;
    // The same, with the tracker still listing the lone node, which announced and left
    // (a stale entry: dialing it can take the whole connect timeout).
    let listed = listed_by_tracker(&dir, &url, &blob).await;
    let (stale, _) = together(&dir, "stale", 1, uplink, &origin, &blob, &with_tracker).await;

    // Ten nodes at once, the origin alone.
    let (crowd, _) = together(&dir, "crowd", NODES, uplink, &origin, &blob, &origin_only).await;

    // Ten nodes through the tracker, in waves.
    let (shared, from_peers) = {
        let mut nodes = Vec::new();
        for i in 0..NODES {
            nodes.push(swarm(&tmp.path().join(format!("swarm{i}")), uplink).await);
        }
        let before = served(&origin).await;
        let start = Instant::now();
        let mut from_peers = 0;
        let mut next = 0;
        for wave in WAVES {
            let members = &nodes[next..next + wave];
            next += wave;
            let reports = futures::future::join_all(members.iter().map(|n| {
                let (url, origin_only, policy) = (&url, &origin_only, &policy);
                async move {
                    let peers = n.providers(url, &blob.hash).await.unwrap();
                    let providers = Providers {
                        peers,
                        ..origin_only.clone()
                    };
                    let report = n
                        .fetch_with_policy(&blob, &providers, policy, &|_| {})
                        .await
                        .unwrap();
                    n.announce(url, &[blob.hash]).await.unwrap();
                    report
                }
            }))
            .await;
            from_peers += reports.iter().map(|r| r.bytes_from_peers).sum::<u64>();
        }
        let time = start.elapsed();
        for n in &nodes {
            n.shutdown().await;
        }
        (
            Outcome {
                time,
                origin_ratio: (served(&origin).await - before) as f64 / size,
            },
            from_peers as f64 / size,
        )
    };

    // Ten nodes through the tracker, all starting together: the herd. Each announces as it
    // starts and takes from the others what they have verified so far.
    let (herd, herd_from_peers) =
        together(&dir, "herd", NODES, uplink, &origin, &blob, &with_tracker).await;

    println!("--- {name} ---");
    println!(
        "one node, origin alone:       {:>8.2?}   origin served {:.2}x the blob",
        alone.time, alone.origin_ratio
    );
    println!(
        "ten nodes, origin alone:      {:>8.2?}   origin served {:.2}x the blob",
        crowd.time, crowd.origin_ratio
    );
    println!(
        "ten nodes, tracker + peers:   {:>8.2?}   origin served {:.2}x the blob, peers {:.2}x",
        shared.time, shared.origin_ratio, from_peers
    );
    println!(
        "time for all ten: swarm/one-alone {:.2}x, swarm/origin-crowd {:.2}x",
        shared.time.as_secs_f64() / alone.time.as_secs_f64(),
        shared.time.as_secs_f64() / crowd.time.as_secs_f64()
    );
    println!(
        "ten nodes together, herd:     {:>8.2?}   origin served {:.2}x the blob, peers {:.2}x",
        herd.time, herd.origin_ratio, herd_from_peers
    );
    println!(
        "time for all ten: herd/one-alone {:.2}x, herd/origin-crowd {:.2}x",
        herd.time.as_secs_f64() / alone.time.as_secs_f64(),
        herd.time.as_secs_f64() / crowd.time.as_secs_f64()
    );
    println!(
        "one node, herd path, alone:   {:>8.2?}   origin served {:.2}x the blob; {:.2}x the origin-alone time",
        lone_herd.time,
        lone_herd.origin_ratio,
        lone_herd.time.as_secs_f64() / alone.time.as_secs_f64()
    );
    println!(
        "the same, 1 of {listed} listed left: {:>8.2?}   origin served {:.2}x the blob; {:.2}x the origin-alone time",
        stale.time,
        stale.origin_ratio,
        stale.time.as_secs_f64() / alone.time.as_secs_f64()
    );
    origin.shutdown().await;
}

#[tokio::main]
async fn main() {
    let mib: usize = std::env::var("ARCHY_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let uplink_mib: u64 = std::env::var("ARCHY_BENCH_UPLINK_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let data = content(mib * 1024 * 1024);
    println!("blob: {mib} MiB, {NODES} nodes, waves {WAVES:?}");
    scenario("loopback, no uplink cap", &data, None).await;
    scenario(
        &format!("every node's uplink capped at {uplink_mib} MiB/s"),
        &data,
        Some(uplink_mib * 1024 * 1024),
    )
    .await;
}
