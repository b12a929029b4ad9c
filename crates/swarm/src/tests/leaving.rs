//! Leaving: a node that shuts down withdraws its tracker entries with a withdrawal signed by
//! its endpoint key, so fetchers stop dialing it; nobody else can withdraw it (forged,
//! moved to other hashes or stale withdrawals are refused and remove nothing, a replayed
//! one never removes a later announcement), nor move it elsewhere by announcing its id.
//! A node that crashed is removed once the tracker's own dial finds nobody.

use std::sync::Arc;

use super::fetch_policy::{quick_policy, serve, serve_with_tracker};
use super::*;
use crate::tracker::{unix_now, unix_now_ms};

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

/// A peer at 10.0.0.`n`.
fn peer_at(k: &SecretKey, n: u8) -> PeerAddr {
    PeerAddr {
        id: k.public().to_string(),
        addrs: vec![format!("10.0.0.{n}:1").parse().unwrap()],
        relay_url: None,
    }
}

#[test]
fn withdrawals_must_be_signed_by_the_peer_and_fresh() {
    let tracker = Tracker::new(TrackerConfig::default());
    let (alice, bob) = (key(1), key(2));
    let h1 = blake3::hash(b"one").to_hex().to_string();
    let h2 = blake3::hash(b"two").to_hex().to_string();
    let hashes = [h1.clone(), h2.clone()];
    let now = 1_800_000_000;
    for (i, k) in [&alice, &bob].into_iter().enumerate() {
        tracker
            .announce_at(&peer_at(k, i as u8 + 1), &hashes, None, now - 100)
            .unwrap();
    }
    let both = {
        let mut v = vec![alice.public().to_string(), bob.public().to_string()];
        v.sort();
        v
    };
    let h = |hex: &str| BlobRef::from_hex(hex, 0).unwrap().hash;

    // Bob signs a withdrawal and names Alice as the peer: the signature is not Alice's.
    let mut forged = Withdrawal::sign(&bob, now, &[h(&h1)]);
    forged.peer = alice.public().to_string();
    assert_eq!(
        tracker.withdraw_at(&forged, now),
        Err(WithdrawError::Signature(SignatureError::Forged))
    );
    // Alice's own withdrawal of h1, moved to h2.
    let mut moved = Withdrawal::sign(&alice, now, &[h(&h1)]);
    moved.hashes = vec![h2.clone()];
    assert_eq!(
        tracker.withdraw_at(&moved, now),
        Err(WithdrawError::Signature(SignatureError::Forged))
    );
    // Issued too long ago, or too far ahead (a clock set wrong, or one saved for later).
    let window = WITHDRAWAL_WINDOW.as_secs();
    for issued_at in [now - window - 1, now + window + 1] {
        let stale = Withdrawal::sign(&alice, issued_at, &[h(&h1)]);
        assert!(
            matches!(
                tracker.withdraw_at(&stale, now),
                Err(WithdrawError::Signature(SignatureError::OutOfWindow { .. }))
            ),
            "issued at {issued_at}"
        );
    }
    let mut garbled = Withdrawal::sign(&alice, now, &[h(&h1)]);
    garbled.signature = "00".repeat(63);
    assert_eq!(
        tracker.withdraw_at(&garbled, now),
        Err(WithdrawError::Signature(SignatureError::BadSignature))
    );
    // None of that removed anything.
    assert_eq!(listed(&tracker, &h1), both);
    assert_eq!(listed(&tracker, &h2), both);

    // Alice's own, fresh: h1 loses her, h2 keeps her, Bob stays everywhere.
    let real = Withdrawal::sign(&alice, now - 10, &[h(&h1)]);
    assert_eq!(tracker.withdraw_at(&real, now), Ok(1));
    assert_eq!(listed(&tracker, &h1), vec![bob.public().to_string()]);
    assert_eq!(listed(&tracker, &h2), both);
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

/// A withdrawal removes only what was announced by the time it was issued: replayed to
/// the same tracker after the peer came back, or to another tracker it announced to
/// later, it removes nothing (no record of past withdrawals is needed for that).
#[test]
fn a_replayed_withdrawal_never_removes_a_later_announcement() {
    let alice = key(1);
    let hash = blake3::hash(b"one").to_hex().to_string();
    let blob = BlobRef::from_hex(&hash, 0).unwrap().hash;
    let one = std::slice::from_ref(&hash);
    let now = 1_800_000_000;
    let first = Tracker::new(TrackerConfig::default());
    let second = Tracker::new(TrackerConfig::default());
    let me = vec![alice.public().to_string()];
    first
        .announce_at(&peer_at(&alice, 1), one, None, now - 60)
        .unwrap();
    let leaving = Withdrawal::sign(&alice, now, &[blob]);
    assert_eq!(first.withdraw_at(&leaving, now), Ok(1));
    assert!(listed(&first, &hash).is_empty());
    // She comes back a minute later and announces to both trackers.
    for t in [&first, &second] {
        t.announce_at(&peer_at(&alice, 1), one, None, now + 60)
            .unwrap();
    }
    // Her old withdrawal, replayed to each, inside the window: nothing goes.
    for t in [&first, &second] {
        assert_eq!(t.withdraw_at(&leaving, now + 90), Ok(0));
        assert_eq!(listed(t, &hash), me);
    }
    // An announcement from the same second as the withdrawal counts as before it.
    let third = Tracker::new(TrackerConfig::default());
    third
        .announce_at(&peer_at(&alice, 1), one, None, now)
        .unwrap();
    assert_eq!(third.withdraw_at(&leaving, now), Ok(1));
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
/// after. A false report of a live peer is undone by the same dial. A peer the tracker
/// cannot judge stays listed (demoted): one that names a relay the tracker's swarm does
/// not use, or addresses other than the IP its announcement came from (the tracker never
/// dials an address an announcer merely named: that would let anyone point the origin's
/// packets at a host of their choice).
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
    let live_id = live.endpoint_id().to_string();
    let crashed = node(&tmp.path().join("crashed")).await;
    crashed.announce(&url, &[blob.hash]).await.unwrap();
    let crashed_id = crashed.endpoint_id();
    crashed.shutdown().await;
    // Names a relay the origin's swarm does not use (it runs without relays), and an
    // address at its own IP where nothing answers: behind a NAT that is the usual case,
    // and others may reach it through the relay, so the tracker does not judge it.
    let relayed = PeerAddr {
        id: key(7).public().to_string(),
        addrs: vec!["127.0.0.1:9".parse().unwrap()],
        relay_url: Some("https://relay.example.net/".into()),
    };
    let own_ip = Some("127.0.0.1:5554".parse().unwrap());
    tracker.announce(&relayed, &[blob.hex()], own_ip).unwrap();
    // Announced from loopback, naming an address elsewhere.
    let elsewhere = PeerAddr {
        id: key(8).public().to_string(),
        addrs: vec!["10.9.9.9:4433".parse().unwrap()],
        relay_url: None,
    };
    let from = "127.0.0.1:5555".parse().unwrap();
    tracker
        .announce(&elsewhere, &[blob.hex()], Some(from))
        .unwrap();
    let ids = |t: &Tracker| {
        let mut v: Vec<String> = t.providers(&blob.hash).into_iter().map(|p| p.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&tracker).len(), 4);

    // Reports over HTTP, as fetchers send them: the probes run in the background.
    let client = reqwest::Client::new();
    let reported = [
        crashed_id.to_string(),
        live_id.clone(),
        relayed.id.clone(),
        elsewhere.id.clone(),
    ];
    for peer in reported {
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
    let mut expected = vec![live_id.clone(), relayed.id.clone(), elsewhere.id.clone()];
    expected.sort();
    for _ in 0..100 {
        if ids(&tracker) == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids(&tracker), expected, "the crashed peer is still listed");
    // The live peer answered the tracker's dial: it is no longer listed after the others
    // (wait for its probe too; then it comes first, before the still-demoted two).
    for _ in 0..100 {
        if tracker.providers(&blob.hash)[0].id == live_id {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..20 {
        assert_eq!(tracker.providers(&blob.hash)[0].id, live_id);
    }
    // The direct calls say the same.
    assert_eq!(
        tracker.probe(blob.hash, live.endpoint_id()).await,
        ProbeOutcome::Alive
    );
    for unjudged in [key(7).public(), key(8).public()] {
        assert_eq!(
            tracker.probe(blob.hash, unjudged).await,
            ProbeOutcome::Unjudged
        );
    }
    assert_eq!(
        tracker.probe(blob.hash, crashed_id).await,
        ProbeOutcome::Unjudged,
        "nothing left to judge"
    );
    live.shutdown().await;
    origin.shutdown().await;
}

/// Nobody but a peer moves its tracker entry. Unsigned announcements were accepted, so
/// anybody could list an honest peer's id at an address that leads nowhere, report it
/// unreachable, and have the tracker's probe (which dials the listed address) remove it:
/// the delisting signed withdrawals exist to prevent. Now an announcement its key did not
/// sign, signed for other addresses, garbled or out of the window (either way) is refused
/// and changes nothing; an older signed one (replayed after the peer moved) or the same one
/// replayed from another address does not replace the entry; the peer itself moves it
/// with a fresh one, two in one second included.
#[tokio::test]
async fn only_a_peer_moves_its_own_tracker_entry() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tracker = Arc::new(Tracker::new(TrackerConfig::default()));
    let url = serve(tracker_routes(tracker.clone())).await;
    let (alice, mallory) = (key(1), key(9));
    let hash = Hash::new(b"moved");
    let (now, ms) = (unix_now(), unix_now() * 1000);
    let (home, nowhere) = (peer_at(&alice, 1), peer_at(&alice, 66));
    let listed_at = || -> Vec<Vec<std::net::SocketAddr>> {
        tracker
            .providers(&hash)
            .into_iter()
            .map(|p| p.addrs)
            .collect()
    };
    let sign = |peer: &PeerAddr, at: u64| Announcement::sign(&alice, peer.clone(), at, &[hash]);
    assert_eq!(
        tracker.announce_signed_at(&sign(&home, ms), None, now),
        Ok(1)
    );
    assert_eq!(listed_at(), vec![home.addrs.clone()]);

    // Over HTTP, unsigned (as every node announced before): 400, naming why.
    let unsigned = Announcement {
        peer: nowhere.clone(),
        hashes: vec![hash.to_hex().to_string()],
        issued_at_ms: ms + 1,
        signature: String::new(),
    };
    let reply = reqwest::Client::new()
        .post(format!("{url}/v1/swarm/announce"))
        .json(&unsigned)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), reqwest::StatusCode::BAD_REQUEST);
    let text = reply.text().await.unwrap();
    assert!(text.contains("not signed by the peer's key"), "{text}");

    let by_mallory = {
        let mut a = Announcement::sign(&mallory, nowhere.clone(), ms + 1, &[hash]);
        a.peer.id = alice.public().to_string();
        a
    };
    let moved_after_signing = {
        let mut a = sign(&home, ms + 1);
        a.peer.addrs = nowhere.addrs.clone();
        a
    };
    let relay_added_after_signing = {
        let mut a = sign(&home, ms + 1);
        a.peer.relay_url = Some("https://relay.example/".into());
        a
    };
    let hash_added_after_signing = {
        let mut a = sign(&nowhere, ms + 1);
        a.hashes.push(Hash::new(b"another").to_hex().to_string());
        a
    };
    let garbled = {
        let mut a = sign(&nowhere, ms + 1);
        a.signature = "zz".into();
        a
    };
    let window = WITHDRAWAL_WINDOW.as_secs();
    let out_of_window = |issued_at| {
        AnnounceError::Signature(SignatureError::OutOfWindow {
            issued_at,
            now,
            window,
        })
    };
    for (what, announcement, expected) in [
        ("unsigned", unsigned, AnnounceError::Unsigned),
        (
            "signed by another key",
            by_mallory,
            AnnounceError::Signature(SignatureError::Forged),
        ),
        (
            "addresses changed",
            moved_after_signing,
            AnnounceError::Signature(SignatureError::Forged),
        ),
        (
            "relay changed",
            relay_added_after_signing,
            AnnounceError::Signature(SignatureError::Forged),
        ),
        (
            "hash added",
            hash_added_after_signing,
            AnnounceError::Signature(SignatureError::Forged),
        ),
        (
            "garbled",
            garbled,
            AnnounceError::Signature(SignatureError::BadSignature),
        ),
        (
            "stale",
            sign(&nowhere, (now - window - 1) * 1000),
            out_of_window(now - window - 1),
        ),
        (
            "from the future",
            sign(&nowhere, (now + window + 1) * 1000),
            out_of_window(now + window + 1),
        ),
    ] {
        assert_eq!(
            tracker.announce_signed_at(&announcement, None, now),
            Err(expected),
            "{what}"
        );
        assert_eq!(listed_at(), vec![home.addrs.clone()], "{what}");
    }

    // Alice's own older announcement, replayed: not recorded.
    assert_eq!(
        tracker.announce_signed_at(&sign(&nowhere, ms - 10_000), None, now),
        Ok(0)
    );
    assert_eq!(listed_at(), vec![home.addrs.clone()]);

    // An unspecified address is completed with the announcer's IP; the same announcement
    // replayed from elsewhere does not move it there.
    let bound = PeerAddr {
        addrs: vec!["0.0.0.0:7".parse().unwrap()],
        ..home.clone()
    };
    let fresh = sign(&bound, ms + 2);
    let (hers, theirs) = (
        "10.0.0.1:5000".parse().unwrap(),
        "10.6.6.6:5000".parse().unwrap(),
    );
    assert_eq!(tracker.announce_signed_at(&fresh, Some(hers), now), Ok(1));
    assert_eq!(tracker.announce_signed_at(&fresh, Some(theirs), now), Ok(0));
    assert_eq!(listed_at(), vec![vec!["10.0.0.1:7".parse().unwrap()]]);

    // Alice moves herself, twice within a millisecond of the clock's second: both count.
    assert_eq!(
        tracker.announce_signed_at(&sign(&nowhere, ms + 3), None, now),
        Ok(1)
    );
    assert_eq!(listed_at(), vec![nowhere.addrs.clone()]);
    assert_eq!(
        tracker.announce_signed_at(&sign(&home, ms + 4), None, now),
        Ok(1)
    );
    assert_eq!(listed_at(), vec![home.addrs.clone()]);
}

/// A withdrawal is judged by the peer's clock, as the announcements it removes are: a
/// node whose clock runs a minute fast withdraws what it announced, and its withdrawal
/// replayed later does not remove what it announced after it. An announcement it issued
/// before withdrawing, replayed after, does not list it again.
#[test]
fn withdrawals_and_announcements_share_the_peers_clock_and_replays_stay_out() {
    let tracker = Tracker::new(TrackerConfig::default());
    let alice = key(1);
    let hash = Hash::new(b"withdrawn");
    let tracker_now = 1_800_000_000;
    // Alice's clock: 60 s ahead of the tracker's.
    let hers = tracker_now + 60;
    let announce = |at_ms: u64| {
        let a = Announcement::sign(&alice, peer_at(&alice, 1), at_ms, &[hash]);
        tracker.announce_signed_at(&a, None, tracker_now)
    };
    let earlier = hers * 1000 - 30_000;
    assert_eq!(announce(earlier), Ok(1));
    let withdrawal = Withdrawal::sign(&alice, hers, &[hash]);
    assert_eq!(tracker.withdraw_at(&withdrawal, tracker_now), Ok(1));
    assert!(tracker.providers(&hash).is_empty());
    // The announcement from before the withdrawal, replayed: refused.
    assert_eq!(announce(earlier), Ok(0));
    assert!(tracker.providers(&hash).is_empty());
    // Back 10 s later by her clock (the tracker's still says before the withdrawal).
    assert_eq!(announce(hers * 1000 + 10_000), Ok(1));
    // The withdrawal replayed: it does not remove her new announcement.
    assert_eq!(tracker.withdraw_at(&withdrawal, tracker_now), Ok(0));
    assert_eq!(tracker.providers(&hash).len(), 1);
}

/// A node's announcements are issued at strictly increasing times, however fast they
/// follow each other: the tracker keeps the newer of two, so two in one millisecond (or a
/// clock that stepped back) must not make the second look like a replay.
#[tokio::test]
async fn a_nodes_announcements_are_issued_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let me = node(&tmp.path().join("me")).await;
    let times: Vec<u64> = (0..1000).map(|_| me.next_issue_ms()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    // A clock behind the last issue time (as after a step back): still later, and the
    // node's withdrawal removes what it announced at those times.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tracker = Arc::new(Tracker::new(TrackerConfig::default()));
    let url = serve(tracker_routes(tracker.clone())).await;
    let hash = Hash::new(b"issued ahead");
    me.last_announcement_ms
        .store(unix_now_ms() + 60_000, std::sync::atomic::Ordering::Relaxed);
    me.announce(&url, &[hash]).await.unwrap();
    assert!(
        me.last_announcement_ms
            .load(std::sync::atomic::Ordering::Relaxed)
            > unix_now_ms() + 59_000
    );
    assert_eq!(tracker.providers(&hash).len(), 1);
    assert_eq!(me.withdraw(Duration::from_secs(5)).await, 1);
    assert!(tracker.providers(&hash).is_empty());
    // A clock that was ahead by more than a tracker's window, corrected: now again (those
    // times were refused everywhere).
    me.last_announcement_ms.store(
        unix_now_ms() + 3_600_000,
        std::sync::atomic::Ordering::Relaxed,
    );
    assert!(me.next_issue_ms() <= unix_now_ms());
    me.shutdown().await;
}

/// What a tracker does before it checks a signature, and what it keeps for withdrawals,
/// is bounded: an announcement with too many hashes is refused for that, whatever its
/// signature; a withdrawal of hashes the peer was never listed for (listed for nobody, or
/// for others) leaves nothing behind.
#[test]
fn a_tracker_bounds_the_work_and_the_memory_signed_statements_cost() {
    let tracker = Tracker::new(TrackerConfig::default());
    let alice = key(1);
    let now = unix_now();
    let many: Vec<Hash> = (0..1025u32).map(|i| Hash::new(i.to_le_bytes())).collect();
    let mut big = Announcement::sign(&alice, peer_at(&alice, 1), now * 1000, &many);
    big.signature = "00".repeat(64);
    assert_eq!(
        tracker.announce_signed_at(&big, None, now),
        Err(AnnounceError::TooManyHashes {
            given: 1025,
            max: 1024
        })
    );
    // Hashes nobody holds, and hashes only others hold.
    let made_up: Vec<Hash> = many[..1024].to_vec();
    let bob = key(2);
    let bobs = Announcement::sign(&bob, peer_at(&bob, 2), now * 1000, &many[512..1024]);
    assert_eq!(tracker.announce_signed_at(&bobs, None, now), Ok(512));
    let withdrawal = Withdrawal::sign(&alice, now, &made_up);
    assert_eq!(tracker.withdraw_at(&withdrawal, now), Ok(0));
    assert_eq!(tracker.tombstones(), 0);
    // Listed for one of them: that one is remembered.
    let listed = Announcement::sign(&alice, peer_at(&alice, 1), now * 1000 - 1000, &many[..1]);
    assert_eq!(tracker.announce_signed_at(&listed, None, now), Ok(1));
    assert_eq!(tracker.withdraw_at(&withdrawal, now), Ok(1));
    assert_eq!(tracker.tombstones(), 1);
}
