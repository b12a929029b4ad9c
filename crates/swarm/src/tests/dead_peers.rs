//! Dead peers on the tracker: one connect timeout for all of them together, then a local
//! backoff skips them, and the tracker lists them last (never removes them on a report).

use std::sync::Arc;
use std::time::Instant;

use super::fetch_policy::{serve, serve_with_tracker};
use super::*;
use crate::policy::Backoff;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_peers_cost_one_connect_timeout_together_and_are_skipped_after() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Arc::new(node(&tmp.path().join("origin")).await);
    let (first, first_data) = import(&origin, tmp.path(), 4 * MIB, 70).await;
    let (second, second_data) = import(&origin, tmp.path(), 4 * MIB, 71).await;
    let (url, tracker) = serve_with_tracker(&origin).await;
    // Five nodes announce both blobs, then die.
    let mut dead = Vec::new();
    for i in 0..5 {
        let n = node(&tmp.path().join(format!("dead{i}"))).await;
        n.announce(&url, &[first.hash, second.hash]).await.unwrap();
        dead.push(n.endpoint_id());
        n.shutdown().await;
    }
    let policy = FetchPolicy {
        connect_timeout: Duration::from_secs(1),
        // Larger than five connect timeouts: the budget is not what bounds the detour.
        detour_budget: Duration::from_secs(10),
        fallback_jitter: Duration::ZERO,
        ..FetchPolicy::default()
    };
    let providers = |peers| Providers {
        origin: Some(origin.addr()),
        origin_http: Some(url.clone()),
        peers,
        tracker: None,
    };

    // The reference: the origin alone.
    let alone = node(&tmp.path().join("alone")).await;
    let started = Instant::now();
    alone
        .fetch_with_policy(&first, &providers(vec![]), &policy, &|_| {})
        .await
        .unwrap();
    let origin_time = started.elapsed();

    // A fresh node: the tracker lists the five dead peers.
    let me = node(&tmp.path().join("me")).await;
    let peers = me.providers(&url, &first.hash).await.unwrap();
    assert_eq!(peers.len(), 5);
    let started = Instant::now();
    let report = me
        .fetch_with_policy(&first, &providers(peers), &policy, &|_| {})
        .await
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "5 dead peers: detour {:?} (connect timeout {:?}), took {elapsed:?}, origin alone {origin_time:?}",
        report.detour, policy.connect_timeout
    );
    assert_eq!(report.fallbacks.len(), 5, "{report:?}");
    assert!(
        report
            .fallbacks
            .iter()
            .all(|f| f.reason == FallbackReason::PeerConnect),
        "{report:?}"
    );
    // All five were dialed at once: together they cost one connect timeout, not five.
    assert!(
        report.detour <= policy.connect_timeout + Duration::from_millis(300),
        "detour {:?} for five dead peers",
        report.detour
    );
    assert_eq!(report.bytes_from_origin_iroh, first.size);
    assert_holds(&me, &first, &first_data, tmp.path()).await;
    for id in &dead {
        let rest = me.peer_backoff(id).expect("a dead peer is backed off");
        assert!(rest > Duration::from_secs(25) && rest <= Duration::from_secs(30));
    }

    // The next fetch skips them: no detour at all.
    let peers = me.providers(&url, &second.hash).await.unwrap();
    assert_eq!(peers.len(), 5, "a report removes nobody from the tracker");
    let report = me
        .fetch_with_policy(&second, &providers(peers), &policy, &|_| {})
        .await
        .unwrap();
    assert!(report.fallbacks.is_empty(), "{report:?}");
    assert_eq!(report.skipped_backoff.len(), 5, "{report:?}");
    assert!(report.detour < Duration::from_millis(50), "{report:?}");
    assert_eq!(report.bytes_from_origin_iroh, second.size);
    assert_holds(&me, &second, &second_data, tmp.path()).await;

    // The fetcher told the tracker: a live provider that announces now is listed before
    // the five it could not reach (they stay listed until their TTL runs out).
    alone.announce(&url, &[first.hash]).await.unwrap();
    let holder = alone.endpoint_id().to_string();
    let demoted = super::fetch_policy::eventually(
        || {
            (0..20).all(|_| {
                let listed = tracker.providers(&first.hash);
                listed.len() == 6 && listed[0].id == holder
            }) as u64
        },
        |v| v == 1,
    )
    .await;
    assert_eq!(demoted, 1, "the reports did not reach the tracker");
}

#[test]
fn backoff_doubles_from_30_seconds_to_15_minutes_and_resets_on_success() {
    let mut b = Backoff::new(Duration::from_secs(30), Duration::from_secs(15 * 60));
    let peer = SecretKey::from_bytes(&[7; 32]).public();
    let now = Instant::now();
    assert_eq!(b.remaining(&peer, now), None);
    let delays: Vec<u64> = (0..7).map(|_| b.failed(peer, now).as_secs()).collect();
    assert_eq!(delays, [30, 60, 120, 240, 480, 900, 900]);
    assert_eq!(b.remaining(&peer, now), Some(Duration::from_secs(900)));
    assert_eq!(b.remaining(&peer, now + Duration::from_secs(900)), None);
    b.succeeded(&peer);
    assert_eq!(b.failed(peer, now).as_secs(), 30);
}

#[test]
fn reports_only_demote_and_are_rate_limited() {
    let tracker = Tracker::new(TrackerConfig {
        max_reports_per_minute: 3,
        ..TrackerConfig::default()
    });
    let ids: Vec<String> = (0..3u8)
        .map(|i| SecretKey::from_bytes(&[i + 1; 32]).public().to_string())
        .collect();
    let h = blake3::hash(b"r").to_hex().to_string();
    let hash = BlobRef::from_hex(&h, 0).unwrap().hash;
    for (i, id) in ids.iter().enumerate() {
        let peer = PeerAddr {
            id: id.clone(),
            addrs: vec![format!("10.0.0.{}:1", i + 1).parse().unwrap()],
            relay_url: None,
        };
        tracker
            .announce(&peer, std::slice::from_ref(&h), None)
            .unwrap();
    }
    let report = |peer: &str| UnreachableReport {
        hash: h.clone(),
        peer: peer.to_owned(),
    };
    let liar: std::net::SocketAddr = "192.0.2.1:5000".parse().unwrap();
    // A hostile node reports two honest peers: they are listed last, never removed.
    assert_eq!(
        tracker.report(&report(&ids[0]), Some(liar)),
        Ok(ReportOutcome::Demoted)
    );
    assert_eq!(
        tracker.report(&report(&ids[1]), Some(liar)),
        Ok(ReportOutcome::Demoted)
    );
    for _ in 0..20 {
        let listed = tracker.providers(&hash);
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].id, ids[2]);
    }
    // Rate-limited per source address.
    assert_eq!(
        tracker.report(&report(&random_peer()), Some(liar)),
        Ok(ReportOutcome::NotListed)
    );
    assert_eq!(
        tracker.report(&report(&ids[2]), Some(liar)),
        Err(ReportError::RateLimited)
    );
    assert_eq!(
        tracker.report(&report(&ids[2]), Some("192.0.2.2:1".parse().unwrap())),
        Ok(ReportOutcome::Demoted)
    );
    // An IPv6 reporter is counted per /56: new addresses (and /64s) in its own /56 do not
    // get it more reports, another /56 has its own count (and the IPv4-mapped form is the
    // IPv4 one).
    let v6 = |a: &str| Some(std::net::SocketAddr::new(a.parse().unwrap(), 1));
    for _ in 0..3 {
        assert_eq!(
            tracker.report(&report(&random_peer()), v6("2001:db8:1:2::1")),
            Ok(ReportOutcome::NotListed)
        );
    }
    assert_eq!(
        tracker.report(&report(&random_peer()), v6("2001:db8:1:2:ffff::9")),
        Err(ReportError::RateLimited)
    );
    assert_eq!(
        tracker.report(&report(&random_peer()), v6("2001:db8:1:3::1")),
        Err(ReportError::RateLimited)
    );
    assert_eq!(
        tracker.report(&report(&random_peer()), v6("2001:db8:1:102::1")),
        Ok(ReportOutcome::NotListed)
    );
    assert_eq!(
        tracker.report(&report(&random_peer()), v6("::ffff:192.0.2.1")),
        Err(ReportError::RateLimited)
    );
    // A peer that announces again is alive: the demotion ends.
    let again = PeerAddr {
        id: ids[0].clone(),
        addrs: vec!["10.0.0.1:1".parse().unwrap()],
        relay_url: None,
    };
    tracker
        .announce(&again, std::slice::from_ref(&h), None)
        .unwrap();
    for _ in 0..20 {
        assert_eq!(tracker.providers(&hash)[0].id, ids[0]);
    }
    // Malformed reports are refused.
    assert!(matches!(
        tracker.report(
            &UnreachableReport {
                hash: "zz".into(),
                peer: ids[0].clone()
            },
            None
        ),
        Err(ReportError::BadHash(_))
    ));
    assert!(matches!(
        tracker.report(&report("nobody"), None),
        Err(ReportError::BadPeerId(_))
    ));
}

fn random_peer() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    SecretKey::from_bytes(&bytes).public().to_string()
}

#[tokio::test]
async fn the_report_route_answers_and_limits() {
    let tracker = Arc::new(Tracker::new(TrackerConfig {
        max_reports_per_minute: 1,
        ..TrackerConfig::default()
    }));
    let url = serve(tracker_routes(tracker)).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let body = UnreachableReport {
        hash: blake3::hash(b"x").to_hex().to_string(),
        peer: random_peer(),
    };
    let post = || {
        client
            .post(format!("{url}/v1/swarm/report"))
            .json(&body)
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.json::<ReportOutcome>().await.unwrap(),
        ReportOutcome::NotListed
    );
    assert_eq!(post().await.unwrap().status(), 429);
    let big = client
        .post(format!("{url}/v1/swarm/report"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
}
