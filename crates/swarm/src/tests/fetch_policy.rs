//! The fetch policy against real endpoints: peers found through the tracker, a lying peer,
//! dead peers, a dead origin, slow and stalled peers, a node killed mid-download.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::corrupt::LyingPeer;
use super::*;

const MIB: usize = 1024 * 1024;

pub(super) fn quick_policy() -> FetchPolicy {
    FetchPolicy {
        connect_timeout: Duration::from_secs(1),
        stall_timeout: Duration::from_millis(700),
        min_rate_bytes_per_sec: 1024 * 1024,
        detour_budget: Duration::from_secs(3),
        fallback_jitter: Duration::from_millis(200),
        max_peer_attempts: 8,
        origin_stall_timeout: Duration::from_secs(10),
    }
}

fn origin_only(origin: &Swarm) -> Providers {
    Providers {
        origin: Some(origin.addr()),
        origin_http: None,
        peers: vec![],
        tracker: None,
    }
}

/// Serves `origin`'s HTTP routes and a fresh tracker (default config) on loopback: the
/// base URL, and the tracker to look into.
pub(super) async fn serve_with_tracker(origin: &Arc<Swarm>) -> (String, Arc<Tracker>) {
    let tracker = Arc::new(Tracker::new(TrackerConfig::default()));
    let routes = http_routes(origin.clone()).merge(tracker_routes(tracker.clone()));
    (serve(routes).await, tracker)
}

pub(super) async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    url
}

/// Waits (up to 10 s) for `value()` to satisfy `ok`; served-byte counters arrive from the
/// provider's event stream a moment after the fetch returns.
pub(super) async fn eventually(value: impl Fn() -> u64, ok: impl Fn(u64) -> bool) -> u64 {
    let start = Instant::now();
    loop {
        let v = value();
        if ok(v) || start.elapsed() > Duration::from_secs(10) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_share_one_blob_through_the_tracker() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Arc::new(node(&tmp.path().join("origin")).await);
    let (blob, data) = import(&origin, tmp.path(), 32 * MIB, 1).await;
    let (url, _tracker) = serve_with_tracker(&origin).await;
    let mut nodes = Vec::new();
    // Staggered: each node asks the tracker, fetches, then announces what it holds.
    for i in 0..5 {
        let n = node(&tmp.path().join(format!("node{i}"))).await;
        let peers = n.providers(&url, &blob.hash).await.unwrap();
        assert_eq!(
            peers.len(),
            i,
            "the tracker lists every node that announced"
        );
        let providers = Providers {
            peers,
            origin_http: Some(url.clone()),
            ..origin_only(&origin)
        };
        let report = n
            .fetch_with_policy(&blob, &providers, &quick_policy(), &|_| {})
            .await
            .unwrap();
        if i > 0 {
            assert_eq!(
                (report.bytes_from_peers, report.bytes_from_origin_iroh),
                (blob.size, 0),
                "node {i} should have fetched from peers: {report:?}"
            );
        }
        assert_eq!(n.announce_held(&url).await.unwrap(), 1);
        nodes.push(n);
    }
    let size = blob.size;
    let from_origin = eventually(|| origin.metrics().bytes_served_iroh, |v| v >= size).await;
    assert_eq!(
        from_origin, size,
        "the origin served the blob once, not five times"
    );
    let by_peers = eventually(
        || nodes.iter().map(|n| n.metrics().bytes_served_iroh).sum(),
        |v| v >= 4 * size,
    )
    .await;
    assert_eq!(by_peers, 4 * size);
    assert_eq!(
        origin.metrics().per_hash[&blob.hex()].bytes_served_iroh,
        size
    );
    for n in &nodes {
        assert_holds(n, &blob, &data, tmp.path()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_bad_data_is_struck_and_the_fetch_completes_from_others() {
    let tmp = tempfile::tempdir().unwrap();
    let data = content(2 * MIB, 7);
    // The flip lands well inside the answer: a good prefix verifies and is kept.
    let liar = LyingPeer::start(&data, 700_000).await;
    let blob = liar.blob;
    let origin = node(&tmp.path().join("origin")).await;
    let imported = origin
        .import_file(&write(tmp.path(), "data", &data), "t")
        .await
        .unwrap();
    assert_eq!(imported, blob);
    let honest = node(&tmp.path().join("honest")).await;
    honest.fetch(&blob, &[origin.addr()]).await.unwrap();
    let me = node(&tmp.path().join("me")).await;
    let providers = Providers {
        peers: vec![liar.addr(), honest.addr()],
        ..origin_only(&origin)
    };
    let report = me
        .fetch_with_policy(&blob, &providers, &quick_policy(), &|_| {})
        .await
        .unwrap();
    let liar_id = liar.addr().endpoint_id().unwrap();
    assert_eq!(report.fallbacks.len(), 1, "{report:?}");
    assert_eq!(report.fallbacks[0].reason, FallbackReason::PeerBadData);
    assert_eq!(report.fallbacks[0].provider, liar_id.to_string());
    assert_eq!(
        (report.bytes_from_peers, report.bytes_from_origin_iroh),
        (blob.size, 0),
        "the honest peer finished what the liar started: {report:?}"
    );
    // The honest peer was asked only for what the liar's verified prefix did not cover.
    let honest_served = eventually(|| honest.metrics().bytes_served_iroh, |v| v > 0).await;
    assert!(
        honest_served < blob.size && honest_served > 0,
        "honest peer served {honest_served} of {}",
        blob.size
    );
    assert!(me.is_struck(&blob.hash, &liar_id));
    assert_eq!(me.strikes().len(), 1);
    assert_eq!(me.strikes()[0].peer, liar_id.to_string());
    let m = me.metrics();
    assert_eq!(
        (
            m.strikes,
            m.verification_failures,
            m.fallbacks.peer_bad_data
        ),
        (1, 1, 1)
    );
    assert_eq!(m.per_hash[&blob.hex()].strikes, 1);
    assert_holds(&me, &blob, &data, tmp.path()).await;

    // Dropped for that hash: after the blob is collected, the liar is not asked again.
    let gc = me.gc(&Default::default()).await.unwrap();
    assert_eq!(gc.removed, vec![blob.hex()]);
    let again = me
        .fetch_with_policy(&blob, &providers, &quick_policy(), &|_| {})
        .await
        .unwrap();
    assert!(again.fallbacks.is_empty(), "{again:?}");
    assert_eq!(again.bytes_from_peers, blob.size);
    assert_holds(&me, &blob, &data, tmp.path()).await;
    liar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_serve_when_the_origin_is_down_and_dead_peers_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let (blob, data) = import(&origin, tmp.path(), 3 * MIB, 3).await;
    let holder = node(&tmp.path().join("holder")).await;
    holder.fetch(&blob, &[origin.addr()]).await.unwrap();
    let origin_addr = origin.addr();
    origin.shutdown().await;
    let dead = dead_peer(&tmp.path().join("dead")).await;
    let me = node(&tmp.path().join("me")).await;
    let providers = Providers {
        origin: Some(origin_addr),
        origin_http: Some("http://127.0.0.1:9".into()),
        peers: vec![dead.clone(), holder.addr()],
        tracker: None,
    };
    let report = me
        .fetch_with_policy(&blob, &providers, &quick_policy(), &|_| {})
        .await
        .unwrap();
    assert_eq!(report.fallbacks.len(), 1, "{report:?}");
    assert_eq!(report.fallbacks[0].provider, dead.id);
    assert_eq!(report.fallbacks[0].reason, FallbackReason::PeerConnect);
    assert_eq!(
        (
            report.bytes_from_peers,
            report.bytes_from_origin_iroh,
            report.bytes_from_origin_http
        ),
        (blob.size, 0, 0)
    );
    assert_eq!(me.metrics().fallbacks.peer_connect, 1);
    assert_holds(&me, &blob, &data, tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_peer_dead_the_origin_finishes_within_its_time_plus_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let (blob, data) = import(&origin, tmp.path(), 8 * MIB, 4).await;
    let alone = node(&tmp.path().join("alone")).await;
    let started = Instant::now();
    alone
        .fetch_with_policy(&blob, &origin_only(&origin), &quick_policy(), &|_| {})
        .await
        .unwrap();
    let origin_time = started.elapsed();

    let mut peers = Vec::new();
    for i in 0..4 {
        peers.push(dead_peer(&tmp.path().join(format!("dead{i}"))).await);
    }
    let policy = FetchPolicy {
        connect_timeout: Duration::from_secs(1),
        detour_budget: Duration::from_millis(1500),
        fallback_jitter: Duration::from_millis(300),
        ..quick_policy()
    };
    let me = node(&tmp.path().join("me")).await;
    let started = Instant::now();
    let report = me
        .fetch_with_policy(
            &blob,
            &Providers {
                peers,
                ..origin_only(&origin)
            },
            &policy,
            &|_| {},
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(!report.fallbacks.is_empty(), "{report:?}");
    assert!(
        report
            .fallbacks
            .iter()
            .all(|f| f.reason == FallbackReason::PeerConnect),
        "{report:?}"
    );
    // The budget is charged before each attempt's deadline is set, so the detour cannot
    // pass it by more than scheduling noise.
    assert!(
        report.detour <= policy.detour_budget + Duration::from_millis(100),
        "detour {:?} over the budget {:?}",
        report.detour,
        policy.detour_budget
    );
    assert!(report.jitter <= policy.fallback_jitter);
    assert_eq!(report.bytes_from_origin_iroh, blob.size);
    let bound = origin_time + policy.detour_budget + Duration::from_secs(2);
    assert!(
        elapsed <= bound,
        "took {elapsed:?}; origin alone took {origin_time:?}, budget {:?}",
        policy.detour_budget
    );
    assert!(me.metrics().detour_ms <= 1600);
    assert_holds(&me, &blob, &data, tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_slow_peers_are_dropped_and_the_origin_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let (blob, data) = import(&origin, tmp.path(), 4 * MIB, 5).await;
    // One chunk group, then nothing for seconds: a stall.
    let stalling = throttled_node(&tmp.path().join("stalling"), 1024).await;
    stalling.fetch(&blob, &[origin.addr()]).await.unwrap();
    // A steady trickle far below the minimum rate: slow.
    let slow = throttled_node(&tmp.path().join("slow"), 200 * 1024).await;
    slow.fetch(&blob, &[origin.addr()]).await.unwrap();

    let policy = FetchPolicy {
        stall_timeout: Duration::from_millis(500),
        min_rate_bytes_per_sec: 2 * 1024 * 1024,
        detour_budget: Duration::from_secs(5),
        fallback_jitter: Duration::ZERO,
        ..quick_policy()
    };
    let me = node(&tmp.path().join("me")).await;
    let report = me
        .fetch_with_policy(
            &blob,
            &Providers {
                peers: vec![stalling.addr(), slow.addr()],
                ..origin_only(&origin)
            },
            &policy,
            &|_| {},
        )
        .await
        .unwrap();
    let reasons: Vec<_> = report.fallbacks.iter().map(|f| f.reason).collect();
    assert_eq!(
        reasons,
        [FallbackReason::PeerStall, FallbackReason::PeerSlow],
        "{report:?}"
    );
    // What the slow peers did deliver was kept; the origin sent only the rest.
    assert!(report.bytes_from_peers > 0, "{report:?}");
    assert_eq!(
        report.bytes_from_peers + report.bytes_from_origin_iroh,
        blob.size,
        "{report:?}"
    );
    let m = me.metrics();
    assert_eq!((m.fallbacks.peer_stall, m.fallbacks.peer_slow), (1, 1));
    assert_holds(&me, &blob, &data, tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_download_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    // 8 MiB at 4 MiB/s: two seconds to watch and interrupt.
    let origin = throttled_node(&tmp.path().join("origin"), 4 * MIB as u64).await;
    let (blob, data) = import(&origin, tmp.path(), 8 * MIB, 6).await;
    let dir = tmp.path().join("me");
    let me = Arc::new(node(&dir).await);
    let held = Arc::new(AtomicU64::new(0));
    let task = {
        let (me, held, providers) = (me.clone(), held.clone(), origin_only(&origin));
        tokio::spawn(async move {
            let on_bytes = |n: u64| held.store(n, Ordering::Relaxed);
            me.fetch_with_policy(&blob, &providers, &quick_policy(), &on_bytes)
                .await
        })
    };
    let before = eventually(|| held.load(Ordering::Relaxed), |n| n >= 3 * MIB as u64).await;
    assert!(
        before < blob.size,
        "the download finished before it could be killed"
    );
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    me.shutdown().await;
    drop(me);

    let again = node(&dir).await;
    let report = again
        .fetch_with_policy(&blob, &origin_only(&origin), &quick_policy(), &|_| {})
        .await
        .unwrap();
    assert!(
        report.bytes_from_origin_iroh < blob.size - 2 * MIB as u64,
        "restarted fetch moved {} of {} bytes: it started over",
        report.bytes_from_origin_iroh,
        blob.size
    );
    assert_holds(&again, &blob, &data, tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_of_one_hash_share_one_download() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = throttled_node(&tmp.path().join("origin"), 8 * MIB as u64).await;
    let (blob, data) = import(&origin, tmp.path(), 4 * MIB, 8).await;
    let me = node(&tmp.path().join("me")).await;
    let providers = origin_only(&origin);
    let policy = quick_policy();
    let second_saw = AtomicU64::new(0);
    let on_second = |n: u64| second_saw.store(n, Ordering::Relaxed);
    let (a, b) = tokio::join!(
        me.fetch_with_policy(&blob, &providers, &policy, &|_| {}),
        me.fetch_with_policy(&blob, &providers, &policy, &on_second),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.coalesced != b.coalesced,
        "one waits for the other: {a:?} {b:?}"
    );
    assert_eq!(
        a.bytes_from_origin_iroh + b.bytes_from_origin_iroh,
        blob.size
    );
    assert_eq!(second_saw.load(Ordering::Relaxed), blob.size);
    assert_eq!(me.metrics().coalesced_fetches, 1);
    let served = eventually(|| origin.metrics().bytes_served_iroh, |v| v >= blob.size).await;
    assert_eq!(served, blob.size, "the origin served the blob once");
    assert_holds(&me, &blob, &data, tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_http_finishes_what_peers_started_when_its_iroh_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Arc::new(node(&tmp.path().join("origin")).await);
    let (blob, data) = import(&origin, tmp.path(), 2 * MIB, 9).await;
    let url = serve(http_routes(origin.clone())).await;
    let slow = throttled_node(&tmp.path().join("slow"), 200 * 1024).await;
    slow.fetch(&blob, &[origin.addr()]).await.unwrap();
    let unreachable = PeerAddr {
        id: origin.endpoint_id().to_string(),
        addrs: vec!["127.0.0.1:9".parse().unwrap()],
        relay_url: None,
    };
    let me = node(&tmp.path().join("me")).await;
    let policy = FetchPolicy {
        stall_timeout: Duration::from_millis(500),
        min_rate_bytes_per_sec: 2 * 1024 * 1024,
        ..quick_policy()
    };
    let report = me
        .fetch_with_policy(
            &blob,
            &Providers {
                origin: Some(unreachable),
                origin_http: Some(url),
                peers: vec![slow.addr()],
                tracker: None,
            },
            &policy,
            &|_| {},
        )
        .await
        .unwrap();
    let reasons: Vec<_> = report.fallbacks.iter().map(|f| f.reason).collect();
    assert_eq!(
        reasons,
        [FallbackReason::PeerSlow, FallbackReason::OriginIrohFailed],
        "{report:?}"
    );
    // HTTP carried the verified stream of the missing ranges only, into the store directly
    // (the whole-file path would have left a part directory).
    assert!(report.bytes_from_peers > 0, "{report:?}");
    assert_eq!(
        report.bytes_from_peers + report.bytes_from_origin_http,
        blob.size,
        "{report:?}"
    );
    assert!(!tmp.path().join("me/partial").exists());
    let m = me.metrics();
    assert_eq!((m.fallbacks.origin_iroh_failed, m.http_fallbacks), (1, 1));
    assert_eq!(m.bytes_from_http, report.bytes_from_origin_http);
    let served = eventually(
        || origin.metrics().bytes_served_http,
        |v| v >= report.bytes_from_origin_http,
    )
    .await;
    assert_eq!(served, report.bytes_from_origin_http);
    assert_holds(&me, &blob, &data, tmp.path()).await;
}
