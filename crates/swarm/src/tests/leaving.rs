//! Leaving: a node that shuts down withdraws its tracker entries with a withdrawal signed by
//! its endpoint key, so fetchers stop dialing it; nobody else can withdraw it (forged,
//! moved to other hashes, stale or replayed withdrawals are refused and remove nothing).

use std::sync::Arc;

use super::fetch_policy::{quick_policy, serve_with_tracker};
use super::*;

const MIB: usize = 1024 * 1024;

fn key(seed: u8) -> SecretKey {
    SecretKey::from_bytes(&[seed; 32])
}

fn listed(tracker: &Tracker, hash: &str) -> Vec<String> {
    let hash = BlobRef::from_hex(hash, 0).unwrap().hash;
    let mut ids: Vec<String> = tracker.providers(&hash).into_iter().map(|p| p.id).collect();
    ids.sort();
    ids
}

#[test]
fn withdrawals_must_be_signed_by_the_peer_fresh_and_used_once() {
    let tracker = Tracker::new(TrackerConfig::default());
    let (alice, bob) = (key(1), key(2));
    let h1 = blake3::hash(b"one").to_hex().to_string();
    let h2 = blake3::hash(b"two").to_hex().to_string();
    let hashes = [h1.clone(), h2.clone()];
    for (i, k) in [&alice, &bob].into_iter().enumerate() {
        let peer = PeerAddr {
            id: k.public().to_string(),
            addrs: vec![format!("10.0.0.{}:1", i + 1).parse().unwrap()],
            relay_url: None,
        };
        tracker.announce(&peer, &hashes, None).unwrap();
    }
    let both = {
        let mut v = vec![alice.public().to_string(), bob.public().to_string()];
        v.sort();
        v
    };
    let h = |hex: &str| BlobRef::from_hex(hex, 0).unwrap().hash;
    let now = 1_800_000_000;

    // Bob signs a withdrawal and names Alice as the peer: the signature is not Alice's.
    let mut forged = Withdrawal::sign(&bob, now, &[h(&h1)]);
    forged.peer = alice.public().to_string();
    assert_eq!(
        tracker.withdraw_at(&forged, now),
        Err(WithdrawError::Forged)
    );
    // Alice's own withdrawal of h1, moved to h2.
    let mut moved = Withdrawal::sign(&alice, now, &[h(&h1)]);
    moved.hashes = vec![h2.clone()];
    assert_eq!(tracker.withdraw_at(&moved, now), Err(WithdrawError::Forged));
    // Issued too long ago, or too far ahead (a clock set wrong, or one saved for later).
    let window = WITHDRAWAL_WINDOW.as_secs();
    for issued_at in [now - window - 1, now + window + 1] {
        let stale = Withdrawal::sign(&alice, issued_at, &[h(&h1)]);
        assert!(
            matches!(
                tracker.withdraw_at(&stale, now),
                Err(WithdrawError::OutOfWindow { .. })
            ),
            "issued at {issued_at}"
        );
    }
    let mut garbled = Withdrawal::sign(&alice, now, &[h(&h1)]);
    garbled.signature = "00".repeat(63);
    assert_eq!(
        tracker.withdraw_at(&garbled, now),
        Err(WithdrawError::BadSignature)
    );
    // None of that removed anything.
    assert_eq!(listed(&tracker, &h1), both);
    assert_eq!(listed(&tracker, &h2), both);

    // Alice's own, fresh: h1 loses her, h2 keeps her, Bob stays everywhere.
    let real = Withdrawal::sign(&alice, now - 10, &[h(&h1)]);
    assert_eq!(tracker.withdraw_at(&real, now), Ok(1));
    assert_eq!(listed(&tracker, &h1), vec![bob.public().to_string()]);
    assert_eq!(listed(&tracker, &h2), both);
    // Alice comes back and announces again; a replay of her old withdrawal is refused.
    let again = PeerAddr {
        id: alice.public().to_string(),
        addrs: vec!["10.0.0.1:1".parse().unwrap()],
        relay_url: None,
    };
    tracker
        .announce(&again, std::slice::from_ref(&h1), None)
        .unwrap();
    assert_eq!(
        tracker.withdraw_at(&real, now + 60),
        Err(WithdrawError::Replayed)
    );
    assert_eq!(listed(&tracker, &h1), both);
    // Withdrawing what the tracker does not list her for removes nothing and is fine.
    let other = blake3::hash(b"other").to_hex().to_string();
    let nothing = Withdrawal::sign(&alice, now, &[h(&other)]);
    assert_eq!(tracker.withdraw_at(&nothing, now), Ok(0));
    // Malformed ones are named.
    let mut bad_peer = nothing.clone();
    bad_peer.peer = "nobody".into();
    assert!(matches!(
        tracker.withdraw_at(&bad_peer, now),
        Err(WithdrawError::BadPeerId(_))
    ));
    let mut bad_hash = nothing.clone();
    bad_hash.hashes = vec!["zz".into()];
    assert!(matches!(
        tracker.withdraw_at(&bad_hash, now),
        Err(WithdrawError::BadHash(_))
    ));
}

#[test]
fn remembered_withdrawals_are_bounded_and_never_forgotten_early() {
    let tracker = Tracker::new(TrackerConfig {
        max_remembered_withdrawals: 2,
        ..TrackerConfig::default()
    });
    let now = 1_800_000_000;
    let hash = BlobRef::from_hex(&blake3::hash(b"x").to_hex(), 0)
        .unwrap()
        .hash;
    let signed = |seed: u8, at: u64| Withdrawal::sign(&key(seed), at, &[hash]);
    let old = signed(1, now - 200);
    assert_eq!(tracker.withdraw_at(&old, now), Ok(0));
    assert_eq!(tracker.withdraw_at(&signed(2, now), now), Ok(0));
    // Full of withdrawals still inside the window: a new one is refused, so neither of the
    // remembered ones can be replayed.
    assert_eq!(
        tracker.withdraw_at(&signed(3, now), now),
        Err(WithdrawError::Busy)
    );
    assert_eq!(tracker.withdraw_at(&old, now), Err(WithdrawError::Replayed));
    // Once the oldest has left the window (where it would be refused anyway), it is
    // forgotten to make room.
    let later = now + WITHDRAWAL_WINDOW.as_secs() - 150;
    assert_eq!(tracker.withdraw_at(&signed(3, later), later), Ok(0));
    assert!(matches!(
        tracker.withdraw_at(&old, later),
        Err(WithdrawError::OutOfWindow { .. })
    ));
}

/// A node announces a blob, withdraws and leaves: the tracker lists nobody, and a herd
/// fetch neither dials nor reports it (a peer that left without withdrawing costs a
/// connect timeout: herd.rs). A forged withdrawal over HTTP is refused, naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_withdrew_is_not_dialed() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Arc::new(node(&tmp.path().join("origin")).await);
    let (blob, data) = import(&origin, tmp.path(), 4 * MIB, 43).await;
    let (url, tracker) = serve_with_tracker(&origin).await;
    let stays = node(&tmp.path().join("stays")).await;
    stays.fetch(&blob, &[origin.addr()]).await.unwrap();
    stays.announce(&url, &[blob.hash]).await.unwrap();
    let gone = node(&tmp.path().join("gone")).await;
    gone.announce(&url, &[blob.hash]).await.unwrap();
    assert_eq!(tracker.providers(&blob.hash).len(), 2);

    // Somebody else tries to withdraw `stays`: refused over HTTP, with the reason.
    let mut forged = Withdrawal::sign(&key(9), crate::tracker::unix_now(), &[blob.hash]);
    forged.peer = stays.endpoint_id().to_string();
    let answer = reqwest::Client::new()
        .post(format!("{url}/v1/swarm/withdraw"))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let text = answer.text().await.unwrap();
    assert!(text.contains("does not verify"), "{text}");
    assert_eq!(tracker.providers(&blob.hash).len(), 2);

    assert_eq!(gone.withdraw(Duration::from_secs(5)).await, 1);
    let gone_id = gone.endpoint_id().to_string();
    gone.shutdown().await;
    let ids: Vec<String> = tracker
        .providers(&blob.hash)
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, vec![stays.endpoint_id().to_string()]);
    // Nothing left to withdraw a second time.
    assert_eq!(gone.withdraw(Duration::from_secs(5)).await, 0);

    let me = node(&tmp.path().join("me")).await;
    let report = me
        .fetch_with_policy(
            &blob,
            &Providers {
                origin: Some(origin.addr()),
                origin_http: Some(url.clone()),
                peers: vec![],
                tracker: Some(url.clone()),
            },
            &quick_policy(),
            &|_| {},
        )
        .await
        .unwrap();
    assert!(
        report.fallbacks.iter().all(|f| f.provider != gone_id),
        "the withdrawn node was dialed: {report:?}"
    );
    assert_holds(&me, &blob, &data, tmp.path()).await;
    for s in [me, stays] {
        s.shutdown().await;
    }
    origin.shutdown().await;
}

/// A node that crashed (no withdrawal) is reported by the first fetcher that cannot reach
/// it; the tracker dials it itself, nobody answers, and the entry is gone for everyone
/// after. A false report of a live peer is undone by the same dial, and a peer the tracker
/// cannot judge (it names a relay, the tracker's swarm uses none) stays listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_dials_reported_peers_and_drops_only_those_that_do_not_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Arc::new(node(&tmp.path().join("origin")).await);
    let (blob, _) = import(&origin, tmp.path(), MIB, 44).await;
    let tracker = Arc::new(Tracker::with_prober(
        TrackerConfig {
            probe_timeout: Duration::from_secs(1),
            ..TrackerConfig::default()
        },
        origin.clone(),
    ));
    let url = super::fetch_policy::serve(
        crate::http_routes(origin.clone()).merge(tracker_routes(tracker.clone())),
    )
    .await;
    let live = node(&tmp.path().join("live")).await;
    live.fetch(&blob, &[origin.addr()]).await.unwrap();
    live.announce(&url, &[blob.hash]).await.unwrap();
    let crashed = node(&tmp.path().join("crashed")).await;
    crashed.announce(&url, &[blob.hash]).await.unwrap();
    let crashed_id = crashed.endpoint_id();
    crashed.shutdown().await;
    // Names a relay only; the origin's swarm runs without relays, so it cannot judge it.
    let relayed = PeerAddr {
        id: key(7).public().to_string(),
        addrs: vec![],
        relay_url: Some("https://relay.example.net/".into()),
    };
    tracker.announce(&relayed, &[blob.hex()], None).unwrap();
    let ids = |t: &Tracker| {
        let mut v: Vec<String> = t.providers(&blob.hash).into_iter().map(|p| p.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&tracker).len(), 3);

    // Reports over HTTP, as fetchers send them: the probes run in the background.
    let client = reqwest::Client::new();
    for peer in [
        crashed_id.to_string(),
        live.endpoint_id().to_string(),
        relayed.id.clone(),
    ] {
        let answer = client
            .post(format!("{url}/v1/swarm/report"))
            .json(&UnreachableReport {
                hash: blob.hex(),
                peer,
            })
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let mut expected = vec![live.endpoint_id().to_string(), relayed.id.clone()];
    expected.sort();
    for _ in 0..100 {
        if ids(&tracker) == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids(&tracker), expected, "the crashed peer is still listed");
    // The live peer answered the tracker's dial: it is no longer listed after the others
    // (wait for its probe too; then it comes first, before the still-demoted relayed one).
    for _ in 0..100 {
        if tracker.providers(&blob.hash)[0].id == live.endpoint_id().to_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..20 {
        assert_eq!(
            tracker.providers(&blob.hash)[0].id,
            live.endpoint_id().to_string()
        );
    }
    // The direct calls say the same.
    assert_eq!(
        tracker.probe(blob.hash, live.endpoint_id()).await,
        ProbeOutcome::Alive
    );
    assert_eq!(
        tracker.probe(blob.hash, key(7).public()).await,
        ProbeOutcome::Unjudged
    );
    assert_eq!(
        tracker.probe(blob.hash, crashed_id).await,
        ProbeOutcome::Unjudged,
        "nothing left to judge"
    );
    live.shutdown().await;
    origin.shutdown().await;
}
