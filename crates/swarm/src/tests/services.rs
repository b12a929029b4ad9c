//! The tracker, garbage collection, the document relay and the metrics' JSON.

use std::collections::HashSet;
use std::sync::Arc;

use super::fetch_policy::serve;
use super::*;
use crate::tracker::unix_now_ms;

fn peer(swarm_like_id: &str, addr: &str) -> PeerAddr {
    PeerAddr {
        id: swarm_like_id.to_owned(),
        addrs: vec![addr.parse().unwrap()],
        relay_url: None,
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    SecretKey::from_bytes(&bytes).public().to_string()
}

fn hex_of(seed: &[u8]) -> String {
    blake3::hash(seed).to_hex().to_string()
}

#[test]
fn the_tracker_bounds_expires_and_validates() {
    let tracker = Tracker::new(TrackerConfig {
        ttl: Duration::from_millis(200),
        max_providers_per_hash: 2,
        max_hashes: 2,
        max_hashes_per_announce: 3,
        ..TrackerConfig::default()
    });
    let (a, b, c) = (random_id(), random_id(), random_id());
    let h = hex_of(b"h");
    let hash = BlobRef::from_hex(&h, 0).unwrap().hash;
    tracker
        .announce(&peer(&a, "10.0.0.1:1"), std::slice::from_ref(&h), None)
        .unwrap();
    tracker
        .announce(&peer(&b, "10.0.0.2:1"), std::slice::from_ref(&h), None)
        .unwrap();
    // A third provider replaces the oldest: the list stays bounded.
    tracker
        .announce(&peer(&c, "10.0.0.3:1"), std::slice::from_ref(&h), None)
        .unwrap();
    let ids: HashSet<String> = tracker.providers(&hash).into_iter().map(|p| p.id).collect();
    assert_eq!(ids, HashSet::from([b.clone(), c.clone()]));
    // Announcing again refreshes rather than duplicates.
    tracker
        .announce(&peer(&c, "10.0.0.3:1"), std::slice::from_ref(&h), None)
        .unwrap();
    assert_eq!(tracker.providers(&hash).len(), 2);

    // Bounded hashes: a third distinct hash is ignored, not an error.
    let accepted = tracker
        .announce(&peer(&a, "10.0.0.1:1"), &[hex_of(b"x"), hex_of(b"y")], None)
        .unwrap();
    assert_eq!(accepted, 1);

    // Validation names what is wrong.
    let too_many: Vec<String> = (0..4u8).map(|i| hex_of(&[i])).collect();
    assert_eq!(
        tracker.announce(&peer(&a, "10.0.0.1:1"), &too_many, None),
        Err(AnnounceError::TooManyHashes { given: 4, max: 3 })
    );
    assert_eq!(
        tracker.announce(
            &peer("nobody", "10.0.0.1:1"),
            std::slice::from_ref(&h),
            None
        ),
        Err(AnnounceError::BadPeerId("nobody".into()))
    );
    assert_eq!(
        tracker.announce(&peer(&a, "10.0.0.1:1"), &["zz".into()], None),
        Err(AnnounceError::BadHash("zz".into()))
    );
    // An unspecified address is completed with the announcer's IP, or refused.
    assert_eq!(
        tracker.announce(&peer(&a, "0.0.0.0:7"), std::slice::from_ref(&h), None),
        Err(AnnounceError::NoAddress)
    );
    tracker
        .announce(
            &peer(&a, "0.0.0.0:7"),
            std::slice::from_ref(&h),
            Some("192.168.1.5:40000".parse().unwrap()),
        )
        .unwrap();
    let listed = tracker.providers(&hash);
    let a_entry = listed.iter().find(|p| p.id == a).expect("a is listed");
    assert_eq!(a_entry.addrs, vec!["192.168.1.5:7".parse().unwrap()]);

    // An id spelled another way (base32, which iroh also parses) is listed in its one
    // canonical form, so a fetcher that leaves itself out of the answer recognises itself.
    let d_key = SecretKey::from_bytes(&[7u8; 32]).public();
    let d_base32 = base32(d_key.as_bytes());
    assert_eq!(d_base32.parse::<iroh::EndpointId>().unwrap(), d_key);
    let fresh = Tracker::new(TrackerConfig::default());
    fresh
        .announce(
            &peer(&d_base32, "10.0.0.4:1"),
            std::slice::from_ref(&h),
            None,
        )
        .unwrap();
    let listed: Vec<String> = fresh.providers(&hash).into_iter().map(|p| p.id).collect();
    assert_eq!(listed, vec![d_key.to_string()]);

    // Entries expire.
    std::thread::sleep(Duration::from_millis(250));
    assert!(tracker.providers(&hash).is_empty());
}

/// RFC 4648 base32 without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut acc, mut bits) = (String::new(), 0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[tokio::test]
async fn the_tracker_over_http_refuses_oversized_and_malformed_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let tracker = Arc::new(Tracker::new(TrackerConfig {
        max_body_bytes: 2048,
        ..TrackerConfig::default()
    }));
    let url = serve(tracker_routes(tracker.clone())).await;
    let me = node(&tmp.path().join("me")).await;
    let other = node(&tmp.path().join("other")).await;
    let hash = BlobRef::from_hex(&hex_of(b"held"), 0).unwrap().hash;
    other.announce(&url, &[hash]).await.unwrap();
    let found = me.providers(&url, &hash).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, other.endpoint_id().to_string());
    let v4 = other
        .addr()
        .addrs
        .into_iter()
        .find(|a| a.is_ipv4())
        .unwrap();
    assert!(found[0].addrs.contains(&v4), "{found:?}");
    // A node never lists itself.
    assert!(other.providers(&url, &hash).await.unwrap().is_empty());

    let client = reqwest::Client::new();
    let big = Announcement {
        peer: me.addr(),
        hashes: (0..100u8).map(|i| hex_of(&[i])).collect(),
        issued_at_ms: unix_now_ms(),
        signature: String::new(),
    };
    let response = client
        .post(format!("{url}/v1/swarm/announce"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = client
        .get(format!("{url}/v1/swarm/providers/nothex"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let err = me
        .announce(&format!("{url}/nowhere"), &[hash])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tracker { .. }), "{err}");
}

#[tokio::test]
async fn gc_removes_what_nothing_references() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let me = node(&tmp.path().join("me")).await;
    let mut blobs = Vec::new();
    for seed in 0..4 {
        let (blob, data) = import(&origin, tmp.path(), 100_000, 100 + seed).await;
        me.fetch(&blob, &[origin.addr()]).await.unwrap();
        blobs.push((blob, data));
    }
    let [
        (pinned, pinned_data),
        (kept, _),
        (dropped, _),
        (unpinned, _),
    ] = &blobs[..]
    else {
        unreachable!()
    };
    me.pin(&pinned.hash, "archy/app/x/image").await.unwrap();
    me.pin(&unpinned.hash, "archy/app/y/image").await.unwrap();
    me.unpin("archy/app/y/image").await.unwrap();
    assert_eq!(
        me.pins("archy/app/").await.unwrap(),
        vec![("archy/app/x/image".to_owned(), pinned.hash)]
    );
    let report = me.gc(&HashSet::from([kept.hash])).await.unwrap();
    let mut expected = vec![dropped.hex(), unpinned.hex()];
    expected.sort();
    assert_eq!(report.removed, expected);
    assert_eq!(report.bytes_freed, 200_000);
    assert_eq!(report.kept, 2);
    assert_eq!(me.complete_size(&dropped.hash).await.unwrap(), None);
    assert_eq!(me.complete_size(&kept.hash).await.unwrap(), Some(100_000));
    assert_holds(&me, pinned, pinned_data, tmp.path()).await;
    // The origin's imports are pinned by their tags: its GC keeps them.
    assert!(origin.gc(&HashSet::new()).await.unwrap().removed.is_empty());
    // A second run finds nothing more to do.
    assert!(
        me.gc(&HashSet::from([kept.hash]))
            .await
            .unwrap()
            .removed
            .is_empty()
    );
}

#[tokio::test]
async fn documents_are_relayed_by_name_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = node(&tmp.path().join("relay")).await;
    let me = node(&tmp.path().join("me")).await;
    let envelope = content(50_000, 11);
    relay
        .set_relayed_document("catalog", envelope.clone())
        .unwrap();
    let got = me
        .fetch_document(&relay.addr(), "catalog", 1 << 20)
        .await
        .unwrap();
    assert_eq!(got, envelope);
    let err = me
        .fetch_document(&relay.addr(), "catalog", 49_999)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DocumentTooLarge {
                size: 50_000,
                max: 49_999,
                ..
            }
        ),
        "{err}"
    );
    let err = me
        .fetch_document(&relay.addr(), "root", 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DocumentNotFound { .. }), "{err}");
    relay.remove_relayed_document("catalog");
    let err = me
        .fetch_document(&relay.addr(), "catalog", 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DocumentNotFound { .. }), "{err}");
    assert!(
        relay
            .set_relayed_document(&"n".repeat(300), vec![1])
            .is_err()
    );
    let dead = dead_peer(&tmp.path().join("dead")).await;
    let err = me.fetch_document(&dead, "catalog", 10).await.unwrap_err();
    assert!(err.to_string().contains("catalog"), "{err}");
}

#[tokio::test]
async fn metrics_serialize_with_totals_reasons_and_per_hash_counters() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let me = node(&tmp.path().join("me")).await;
    let (blob, _) = import(&origin, tmp.path(), 70_000, 12).await;
    me.fetch(&blob, &[origin.addr()]).await.unwrap();
    let json = serde_json::to_value(me.metrics()).unwrap();
    assert_eq!(json["bytes_from_iroh"], 70_000);
    assert_eq!(json["bytes_from_origin_iroh"], 70_000);
    assert_eq!(json["fallbacks"]["peer_bad_data"], 0);
    assert_eq!(
        json["per_hash"][blob.hex()]["bytes_from_origin_iroh"],
        70_000
    );
    assert_eq!(
        serde_json::to_value(FallbackReason::OriginIrohFailed).unwrap(),
        "origin-iroh-failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_discovery_finds_swarm_nodes_on_the_lan() {
    let tmp = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let mut config = SwarmConfig::new(tmp.path().join(name));
        config.local_discovery = true;
        Swarm::start(config)
    };
    let (a, b) = (start("a").await.unwrap(), start("b").await.unwrap());
    let off = node(&tmp.path().join("off")).await;
    // Other swarms on this machine may show up too (tests running in parallel elsewhere).
    let b_id = b.endpoint_id().to_string();
    let has_b = || a.local_peers().iter().any(|p| p.id == b_id) as u64;
    assert_eq!(super::fetch_policy::eventually(has_b, |v| v == 1).await, 1);
    let b_found = a.local_peers().into_iter().find(|p| p.id == b_id).unwrap();
    assert!(!b_found.addrs.is_empty());
    assert!(off.local_peers().is_empty());
    // What discovery found is dialable: fetch a blob from it.
    let (blob, data) = import(&b, tmp.path(), 100_000, 21).await;
    let report = a
        .fetch_with_policy(
            &blob,
            &Providers {
                peers: vec![b_found],
                ..Default::default()
            },
            &FetchPolicy::default(),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.bytes_from_peers, blob.size);
    assert_holds(&a, &blob, &data, tmp.path()).await;
}

/// Ids are free to make, so one address announcing hundreds of them for a hash (to push
/// honest providers out of its list and take a herd's charges) keeps at most
/// `max_providers_per_source` entries: an IPv4 address, or an IPv6 /56 whatever address
/// (and /64) in it each came from. Five such addresses (more than the list holds) still
/// leave every honest provider listed: a full list gives up the oldest entry of the network
/// with most.
#[test]
fn one_address_cannot_fill_a_hash_with_ids() {
    let config = TrackerConfig::default();
    let (per_source, per_hash) = (
        config.max_providers_per_source,
        config.max_providers_per_hash,
    );
    let tracker = Tracker::new(config);
    let h = hex_of(b"crowded");
    let hash = BlobRef::from_hex(&h, 0).unwrap().hash;
    let from = |ip: &str| Some(std::net::SocketAddr::new(ip.parse().unwrap(), 40000));
    let honest: Vec<String> = (1..=10).map(|_| random_id()).collect();
    for (i, id) in honest.iter().enumerate() {
        let ip = format!("10.0.0.{}", i + 1);
        let accepted = tracker.announce(
            &peer(id, &format!("{ip}:1")),
            std::slice::from_ref(&h),
            from(&ip),
        );
        assert_eq!(accepted, Ok(1));
    }
    let listed = |tracker: &Tracker| -> HashSet<String> {
        tracker.providers(&hash).into_iter().map(|p| p.id).collect()
    };
    let from_v4 = |tracker: &Tracker, ip: &str, count: usize| {
        for _ in 0..count {
            let p = peer(&random_id(), "198.51.100.1:1");
            tracker
                .announce(&p, std::slice::from_ref(&h), from(ip))
                .unwrap();
        }
    };
    from_v4(&tracker, "203.0.113.7", 200);
    // One IPv6 /56, a different address (in one of two /64s) of it for each id.
    for i in 0..200u16 {
        let p = peer(&random_id(), "198.51.100.1:1");
        let ip = format!("2001:db8:0:{}::{i:x}", if i % 2 == 0 { "7" } else { "ff" });
        tracker
            .announce(&p, std::slice::from_ref(&h), from(&ip))
            .unwrap();
    }
    let now = listed(&tracker);
    assert!(
        honest.iter().all(|id| now.contains(id)),
        "an honest provider was pushed out"
    );
    assert_eq!(now.len(), honest.len() + 2 * per_source);

    for n in 1..=5 {
        from_v4(&tracker, &format!("203.0.113.{}", 10 + n), 100);
    }
    let now = listed(&tracker);
    assert!(
        honest.iter().all(|id| now.contains(id)),
        "an honest provider was pushed out"
    );
    assert_eq!(now.len(), per_hash);
}

/// A source is cheap inside one site: an IPv6 /48 holds 256 homes' /56s. An attacker
/// announcing one id from each of hundreds of them (the per-source cap never applies)
/// keeps at most `max_providers_per_network` entries per /48, and when the list is full
/// the sites with most give entries up: every honest provider stays listed, and a new one
/// gets in and stays. (Counted per /56 alone, the attacker's ids pushed every honest one
/// out; without the network cap one site took all the list's free places.)
#[test]
fn one_sites_many_sources_cannot_push_honest_providers_out() {
    let config = TrackerConfig::default();
    let (per_network, per_hash) = (
        config.max_providers_per_network,
        config.max_providers_per_hash,
    );
    let tracker = Tracker::new(config);
    let h = hex_of(b"a site's worth of ids");
    let hash = BlobRef::from_hex(&h, 0).unwrap().hash;
    let from = |ip: &str| Some(std::net::SocketAddr::new(ip.parse().unwrap(), 40000));
    let announce = |ip: &str| {
        let id = random_id();
        let p = peer(&id, "198.51.100.1:1");
        assert_eq!(
            tracker.announce(&p, std::slice::from_ref(&h), from(ip)),
            Ok(1)
        );
        id
    };
    // Honest providers, each at home: an IPv4 address or an IPv6 /48 of its own.
    let mut honest: Vec<String> = (1..=10).map(|i| announce(&format!("10.0.0.{i}"))).collect();
    honest.extend((1..=5).map(|i| announce(&format!("2001:db8:{i}::2"))));
    let listed =
        || -> HashSet<String> { tracker.providers(&hash).into_iter().map(|p| p.id).collect() };
    // One /48: 300 ids from its 256 /56s (a /64 of each).
    let site = |n: u32, i: u32| format!("2001:db8:7{n}:{:x}:{:x}::1", (i % 256) << 8, i);
    let first: HashSet<String> = (0..300).map(|i| announce(&site(0, i))).collect();
    let now = listed();
    assert!(
        honest.iter().all(|id| now.contains(id)),
        "an honest provider was pushed out"
    );
    assert_eq!(now.intersection(&first).count(), per_network);
    assert_eq!(now.len(), honest.len() + per_network);
    // Two more such sites, in turn: the list fills.
    let mut others: Vec<HashSet<String>> = vec![HashSet::new(); 2];
    for i in 0..300 {
        for (n, ids) in others.iter_mut().enumerate() {
            ids.insert(announce(&site(n as u32 + 1, i)));
        }
    }
    let now = listed();
    assert!(
        honest.iter().all(|id| now.contains(id)),
        "an honest provider was pushed out"
    );
    assert_eq!(now.len(), per_hash);
    for ids in others.iter().chain([&first]) {
        assert!(now.intersection(ids).count() <= per_network);
    }
    // A new honest provider gets in, and stays while the sites go on announcing.
    let newcomer = announce("192.0.2.44");
    for i in 0..100 {
        announce(&site(i % 3, i));
    }
    let now = listed();
    assert!(
        now.contains(&newcomer),
        "a new honest provider was pushed out"
    );
    assert!(
        honest.iter().all(|id| now.contains(id)),
        "an honest provider was pushed out"
    );
}

/// An IPv6 address that carries an IPv4 one (NAT64, 6to4, Teredo, IPv4-mapped) is that
/// IPv4 address's source: one address cannot take a second set of places through a 6to4
/// or Teredo prefix. And an IPv4 announcer seen on a dual-stack socket (`::ffff:a.b.c.d`)
/// has its `0.0.0.0:port` completed with its IPv4 address.
#[test]
fn ipv6_forms_of_one_ipv4_address_are_one_source() {
    let config = TrackerConfig::default();
    let per_source = config.max_providers_per_source;
    let tracker = Tracker::new(config);
    let h = hex_of(b"one address, four spellings");
    let hash = BlobRef::from_hex(&h, 0).unwrap().hash;
    let from = |ip: &str| Some(std::net::SocketAddr::new(ip.parse().unwrap(), 40000));
    // 203.0.113.7 is cb00:7107; Teredo carries it inverted (34ff:8ef8).
    for ip in [
        "203.0.113.7",
        "::ffff:203.0.113.7",
        "64:ff9b::cb00:7107",
        "2002:cb00:7107::1",
        "2002:cb00:7107:ff00::2",
        "2001:0:4136:e378:8000:63bf:34ff:8ef8",
    ] {
        for _ in 0..per_source {
            let p = peer(&random_id(), "198.51.100.1:1");
            tracker
                .announce(&p, std::slice::from_ref(&h), from(ip))
                .unwrap();
        }
    }
    assert_eq!(tracker.providers(&hash).len(), per_source);

    let id = random_id();
    let unspecified = peer(&id, "0.0.0.0:7000");
    tracker
        .announce(
            &unspecified,
            std::slice::from_ref(&h),
            from("::ffff:198.51.100.9"),
        )
        .unwrap();
    let listed = tracker.providers(&hash);
    let entry = listed.iter().find(|p| p.id == id).expect("listed");
    assert_eq!(entry.addrs, vec!["198.51.100.9:7000".parse().unwrap()]);
}

/// A tracker that lists only its origin's hashes records nothing else, and answers an
/// announcement of nothing it lists before checking its signature: made-up hashes, free
/// like the ids, neither fill its table nor cost it a signature check.
#[test]
fn a_tracker_lists_only_the_hashes_it_tracks() {
    let served = hex_of(b"in the catalog");
    let served_hash = BlobRef::from_hex(&served, 0).unwrap().hash;
    let tracker = Tracker::new(TrackerConfig::default()).only([served_hash]);
    let made_up: Vec<String> = (0..1000u32).map(|i| hex_of(&i.to_le_bytes())).collect();
    let from = Some("203.0.113.9:4000".parse().unwrap());
    let p = peer(&random_id(), "198.51.100.1:1");
    assert_eq!(tracker.announce(&p, &made_up, from), Ok(0));
    let mut both = made_up.clone();
    both.push(served.clone());
    assert_eq!(tracker.announce(&p, &both, from), Ok(1));
    assert_eq!(tracker.providers(&served_hash).len(), 1);
    let first_made_up = BlobRef::from_hex(&made_up[0], 0).unwrap().hash;
    assert!(tracker.providers(&first_made_up).is_empty());

    // Signed by nobody: refused when it names a tracked hash, not even checked otherwise.
    let key = SecretKey::generate();
    let mut forged = crate::tracker::Announcement::sign(
        &key,
        peer(&key.public().to_string(), "198.51.100.2:1"),
        unix_now_ms(),
        &[first_made_up],
    );
    forged.signature = "00".repeat(64);
    assert_eq!(tracker.announce_signed(&forged, from), Ok(0));
    forged.hashes.push(served);
    assert!(tracker.announce_signed(&forged, from).is_err());
}

/// Signed announcements are counted per source and minute, like reports: past the bound
/// one is refused before its signature is checked (429 over HTTP), other sources go on,
/// and loopback (the operator's own processes) is not counted.
#[test]
fn announcements_are_rate_limited_per_source() {
    let tracker = Tracker::new(TrackerConfig {
        max_announcements_per_minute: 3,
        ..TrackerConfig::default()
    });
    let key = SecretKey::generate();
    let h = BlobRef::from_hex(&hex_of(b"announced often"), 0)
        .unwrap()
        .hash;
    let announcement = crate::tracker::Announcement::sign(
        &key,
        peer(&key.public().to_string(), "198.51.100.2:1"),
        unix_now_ms(),
        &[h],
    );
    let from = |ip: &str| Some(std::net::SocketAddr::new(ip.parse().unwrap(), 4000));
    let mut answers: Vec<_> = (0..4)
        .map(|_| tracker.announce_signed(&announcement, from("203.0.113.9")))
        .collect();
    assert_eq!(answers.pop(), Some(Err(AnnounceError::RateLimited)));
    assert_eq!(answers, vec![Ok(1), Ok(0), Ok(0)]);
    // Another source has its own count; the addresses (and /64s) of one /56 share one.
    assert_eq!(
        tracker.announce_signed(&announcement, from("198.51.100.7")),
        Ok(0)
    );
    for _ in 0..3 {
        assert_eq!(
            tracker.announce_signed(&announcement, from("2001:db8:5:2::1")),
            Ok(0)
        );
    }
    assert_eq!(
        tracker.announce_signed(&announcement, from("2001:db8:5:3::9")),
        Err(AnnounceError::RateLimited)
    );
    for _ in 0..10 {
        assert!(
            tracker
                .announce_signed(&announcement, from("127.0.0.1"))
                .is_ok()
        );
    }
    // Sources enough to fill the count's table (10,000: forged announcements, counted
    // before their signature is checked) do not shut a new honest announcer out...
    let mut forged = announcement.clone();
    forged.signature = "00".repeat(64);
    for i in 0..10_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 | i);
        let refused = tracker.announce_signed(&forged, from(&ip.to_string()));
        assert!(
            matches!(refused, Err(AnnounceError::Signature(_))),
            "{refused:?}"
        );
    }
    let honest = SecretKey::generate();
    let its = crate::tracker::Announcement::sign(
        &honest,
        peer(&honest.public().to_string(), "198.51.100.3:1"),
        unix_now_ms(),
        &[h],
    );
    assert_eq!(tracker.announce_signed(&its, from("192.0.2.77")), Ok(1));
    // Sources past the table share one count, 1,000 a minute: more is refused. Used so
    // far: the 3 forged ones past the 10,000 (3 sources were counted before them: two
    // addresses and one /56) and the honest one.
    let mut checked = 0;
    for i in 0..2000u32 {
        let ip = std::net::Ipv4Addr::from(0x0b00_0000 | i);
        match tracker.announce_signed(&forged, from(&ip.to_string())) {
            Err(AnnounceError::Signature(_)) => checked += 1,
            Err(AnnounceError::RateLimited) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(checked, 1000 - 3 - 1);
}

/// A per-source cap of 0 is read as 1: the list stays bounded.
#[test]
fn a_per_source_cap_of_zero_keeps_one() {
    let tracker = Tracker::new(TrackerConfig {
        max_providers_per_source: 0,
        ..TrackerConfig::default()
    });
    let h = hex_of(b"capped");
    let hash = BlobRef::from_hex(&h, 0).unwrap().hash;
    let from = Some("203.0.113.9:4000".parse().unwrap());
    for _ in 0..3 {
        let p = peer(&random_id(), "198.51.100.1:1");
        tracker
            .announce(&p, std::slice::from_ref(&h), from)
            .unwrap();
    }
    assert_eq!(tracker.providers(&hash).len(), 1);
}
