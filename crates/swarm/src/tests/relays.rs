//! Relays: a real iroh-relay server on loopback (plain HTTP, the engine `archy relay run`
//! runs), nodes that know each other only by endpoint id and relay URL, and the tracker
//! carrying the relay URL from an announcement to a fetch.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use iroh_relay::server::{RelayConfig, Server, ServerConfig};

use super::fetch_policy::serve;
use super::*;
use crate::tracker::unix_now_ms;

/// An iroh-relay server on 127.0.0.1 over plain HTTP, and its URL.
async fn local_relay() -> (Server, RelayUrl) {
    let mut config = ServerConfig::default();
    config.relay = Some(RelayConfig::new((Ipv4Addr::LOCALHOST, 0)));
    let server = Server::spawn(config).await.expect("relay server starts");
    let addr = server.http_addr().expect("the relay serves HTTP");
    let url = check_relay_url(&format!("http://{addr}")).unwrap();
    (server, url)
}

/// A node whose endpoint uses `relay` as its only relay, once it is connected to it.
async fn relayed_node(dir: &Path, relay: &RelayUrl) -> Swarm {
    let mut config = SwarmConfig::new(dir);
    config.relay_mode = RelayMode::Custom(vec![relay.clone()]);
    let swarm = Swarm::start(config).await.expect("swarm starts");
    assert!(
        swarm.online(Duration::from_secs(20)).await,
        "the node reaches its relay"
    );
    assert_eq!(swarm.home_relay().as_ref(), Some(relay));
    swarm
}

/// What a node behind a NAT gives out: its id and its relay, no direct address.
fn behind_nat(swarm: &Swarm) -> PeerAddr {
    let addr = swarm.addr();
    assert!(addr.relay_url.is_some(), "{addr:?} names its relay");
    PeerAddr {
        addrs: vec![],
        ..addr
    }
}

/// Peers only, no origin: the fetch succeeds through a peer or not at all.
async fn fetch_from_peers(swarm: &Swarm, blob: &BlobRef, peers: Vec<PeerAddr>) -> FetchReport {
    let providers = Providers {
        origin: None,
        origin_http: None,
        peers,
        tracker: None,
    };
    let policy = FetchPolicy {
        connect_timeout: Duration::from_secs(10),
        ..FetchPolicy::default()
    };
    swarm
        .fetch_with_policy(blob, &providers, &policy, &|_| {})
        .await
        .expect("the blob comes from the peer")
}

fn relayed_bytes(server: &Server) -> u64 {
    server.metrics().server.bytes_sent.get()
}

#[tokio::test]
async fn nodes_known_only_by_id_and_relay_fetch_from_each_other_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, relay) = local_relay().await;
    let a = relayed_node(&tmp.path().join("a"), &relay).await;
    let b = relayed_node(&tmp.path().join("b"), &relay).await;
    let (from_a, a_data) = import(&a, tmp.path(), 300_000, 81).await;
    let (from_b, b_data) = import(&b, tmp.path(), 300_000, 82).await;

    // Without the relay URL the id alone reaches nobody: no direct address, no lookup.
    let id_only = PeerAddr {
        relay_url: None,
        ..behind_nat(&b)
    };
    let err = a
        .fetch_with_policy(
            &from_b,
            &Providers {
                origin: None,
                origin_http: None,
                peers: vec![id_only],
                tracker: None,
            },
            &FetchPolicy {
                connect_timeout: Duration::from_secs(2),
                ..FetchPolicy::default()
            },
            &|_| {},
        )
        .await
        .expect_err("an id without any address cannot be dialed");
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");

    let before = relayed_bytes(&server);
    let got = fetch_from_peers(&a, &from_b, vec![behind_nat(&b)]).await;
    assert_eq!(got.bytes_from_peers, from_b.size);
    assert_holds(&a, &from_b, &b_data, tmp.path()).await;
    let back = fetch_from_peers(&b, &from_a, vec![behind_nat(&a)]).await;
    assert_eq!(back.bytes_from_peers, from_a.size);
    assert_holds(&b, &from_a, &a_data, tmp.path()).await;
    // The connections were made through the relay (iroh may move the rest of a transfer
    // to a direct path it punches; on loopback it can).
    let relayed = relayed_bytes(&server) - before;
    assert!(relayed > 0, "the relay carried the connections");
    eprintln!(
        "relay carried {relayed} bytes for {} bytes of blobs",
        from_a.size + from_b.size
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_tracker_carries_the_relay_url_from_announcement_to_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, relay) = local_relay().await;
    let tracker = Arc::new(Tracker::new(TrackerConfig::default()));
    let url = serve(tracker_routes(tracker.clone())).await;
    let holder = relayed_node(&tmp.path().join("holder"), &relay).await;
    let fetcher = relayed_node(&tmp.path().join("fetcher"), &relay).await;
    let (blob, data) = import(&holder, tmp.path(), 200_000, 83).await;

    holder.announce(&url, &[blob.hash]).await.unwrap();
    let listed = fetcher.providers(&url, &blob.hash).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, holder.endpoint_id().to_string());
    assert_eq!(listed[0].relay_url.as_deref(), Some(relay.as_str()));

    // On loopback every direct address works; behind two NATs none would. So the fetcher
    // keeps only what a NAT leaves usable of the tracker's answer: the id and the relay.
    let through_relay: Vec<PeerAddr> = listed
        .into_iter()
        .map(|p| PeerAddr { addrs: vec![], ..p })
        .collect();
    let got = fetch_from_peers(&fetcher, &blob, through_relay).await;
    assert_eq!(got.bytes_from_peers, blob.size);
    assert_holds(&fetcher, &blob, &data, tmp.path()).await;

    // A node behind a NAT announces its private address and its relay; the tracker keeps
    // both, and a relay-only announcement (no usable address at all) is accepted too.
    let nat = PeerAddr {
        addrs: vec!["192.168.1.20:4433".parse().unwrap()],
        ..holder.announce_addr()
    };
    let relay_only = PeerAddr {
        addrs: vec![],
        ..fetcher.announce_addr()
    };
    for (peer, key, expect_addrs) in [
        (&nat, holder.router.endpoint().secret_key(), 1),
        (&relay_only, fetcher.router.endpoint().secret_key(), 0),
    ] {
        let client = reqwest::Client::new();
        let reply = client
            .post(format!("{url}/v1/swarm/announce"))
            .json(&Announcement::sign(
                key,
                peer.clone(),
                unix_now_ms(),
                &[blob.hash],
            ))
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{:?}", reply.text().await);
        let entry = tracker
            .providers(&blob.hash)
            .into_iter()
            .find(|p| p.id == peer.id)
            .unwrap();
        assert_eq!(entry.addrs.len(), expect_addrs);
        assert_eq!(entry.relay_url.as_deref(), Some(relay.as_str()));
    }
    holder.shutdown().await;
    fetcher.shutdown().await;
}

#[tokio::test]
async fn hostile_relay_urls_are_refused_by_the_tracker_and_dropped_by_fetchers() {
    let tmp = tempfile::tempdir().unwrap();
    let tracker = Arc::new(Tracker::new(TrackerConfig::default()));
    let url = serve(tracker_routes(tracker.clone())).await;
    let hash = blake3::hash(b"relay-hostile").to_hex().to_string();
    let blob = BlobRef::from_hex(&hash, 0).unwrap();
    let me = node(&tmp.path().join("me")).await;
    let key = |seed: u8| SecretKey::from_bytes(&[seed; 32]);
    let id = |seed: u8| key(seed).public().to_string();
    let client = reqwest::Client::new();
    let long = format!("https://{}.example", "a".repeat(MAX_RELAY_URL_LEN));
    for (seed, relay, why) in [
        (1, "file:///etc/passwd", "only https:// and http://"),
        (2, "https://admin:secret@relay.example", "userinfo"),
        (3, long.as_str(), "longer than"),
        (4, "https://relay.example/?token=x", "query or fragment"),
    ] {
        let peer = PeerAddr {
            id: id(seed),
            addrs: vec!["10.0.0.1:1".parse().unwrap()],
            relay_url: Some(relay.to_owned()),
        };
        let reply = client
            .post(format!("{url}/v1/swarm/announce"))
            .json(&Announcement::sign(
                &key(seed),
                peer,
                unix_now_ms(),
                &[blob.hash],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), reqwest::StatusCode::BAD_REQUEST);
        let text = reply.text().await.unwrap();
        assert!(text.contains(why), "{relay}: {text}");
    }
    assert!(tracker.providers(&blob.hash).is_empty(), "nothing was kept");
    // A static peer from the config gets the same check.
    let err = me
        .add_peer(&PeerAddr {
            id: id(7),
            addrs: vec![],
            relay_url: Some("ftp://relay.example".into()),
        })
        .unwrap_err();
    assert!(err.to_string().contains("only https://"), "{err}");

    // A tracker that lists a hostile relay URL anyway (a fake one here): the fetcher drops
    // that entry and keeps the others. One that lists more addresses for a peer than a
    // tracker keeps is believed up to that many (the address book would hold them all).
    let good = PeerAddr {
        id: id(5),
        addrs: vec![],
        relay_url: Some("https://relay.example/".into()),
    };
    let bad = PeerAddr {
        id: id(6),
        addrs: vec!["10.0.0.6:1".parse().unwrap()],
        relay_url: Some("gopher://relay.example".into()),
    };
    let kept = TrackerConfig::default().max_addrs_per_peer;
    let crowded = PeerAddr {
        id: id(8),
        addrs: (1..=3 * kept as u16)
            .map(|port| SocketAddr::from(([10, 0, 0, 8], port)))
            .collect(),
        relay_url: None,
    };
    let mut cut = crowded.clone();
    cut.addrs.truncate(kept);
    let answer = serde_json::to_vec(&vec![good.clone(), bad, crowded]).unwrap();
    let fake = serve(axum::Router::new().route(
        "/v1/swarm/providers/{hash}",
        axum::routing::get(move || {
            let answer = answer.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    answer,
                )
            }
        }),
    ))
    .await;
    assert_eq!(
        me.providers(&fake, &blob.hash).await.unwrap(),
        vec![good, cut]
    );
    me.shutdown().await;
}

#[test]
fn announcements_and_configs_from_before_relays_parse() {
    let id = SecretKey::from_bytes(&[9; 32]).public().to_string();
    let old = format!(r#"{{"peer":{{"id":"{id}","addrs":["10.0.0.1:7"]}},"hashes":[]}}"#);
    let parsed: Announcement = serde_json::from_str(&old).unwrap();
    assert_eq!(parsed.peer.relay_url, None);
    // It parses, so a node from before signed announcements hears why it is refused.
    assert_eq!(
        Tracker::new(TrackerConfig::default()).announce_signed(&parsed, None),
        Err(AnnounceError::Unsigned)
    );
    let with = PeerAddr {
        relay_url: Some("https://relay.example/".into()),
        ..parsed.peer
    };
    assert!(
        serde_json::to_string(&with)
            .unwrap()
            .contains(r#""relay_url":"https://relay.example/""#)
    );
}
