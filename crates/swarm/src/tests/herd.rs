//! The herd (DESIGN "Swarm: origin always wins" 8): a node serves what it has verified of a
//! blob while it still downloads it, and a peer that claims ranges it does not hold (or
//! sends garbage for them) costs one round and never a byte.

use std::sync::Arc;

use bao_tree::ChunkRanges;
use bytes::Bytes;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, RelayMode};
use iroh_blobs::protocol::{ObserveItem, Request};

use super::fetch_policy::{quick_policy, serve_with_tracker};
use super::*;

const MIB: usize = 1024 * 1024;

fn herd_providers(origin: &Swarm, url: &str, peers: Vec<PeerAddr>) -> Providers {
    Providers {
        origin: Some(origin.addr()),
        origin_http: Some(url.to_owned()),
        peers,
        tracker: Some(url.to_owned()),
    }
}

/// Node A fetches 8 MiB from an origin that sends 2 MiB/s; once A holds 2 MiB, node B
/// starts. B finds A through the tracker (A announced when it started), asks it what it
/// holds and takes those ranges from it: A has served B verified bytes by the time A's own
/// fetch completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_what_it_holds_while_it_downloads() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Arc::new(throttled_node(&tmp.path().join("origin"), 2 * MIB as u64).await);
    let (blob, data) = import(&origin, tmp.path(), 8 * MIB, 31).await;
    let (url, _tracker) = serve_with_tracker(&origin).await;
    let a = Arc::new(node(&tmp.path().join("a")).await);
    let b = node(&tmp.path().join("b")).await;
    let providers = herd_providers(&origin, &url, vec![]);
    let policy = quick_policy();

    let (held_2mib, mut a_started) = tokio::sync::watch::channel(false);
    let a_fetch = {
        let (a, providers, policy) = (a.clone(), providers.clone(), policy.clone());
        tokio::spawn(async move {
            let on_bytes = move |n: u64| {
                if n >= 2 * MIB as u64 {
                    held_2mib.send_replace(true);
                }
            };
            let report = a
                .fetch_with_policy(&blob, &providers, &policy, &on_bytes)
                .await
                .unwrap();
            // What A had served of the blob when its own download completed (B's requests
            // to A end milliseconds after they start, seconds before A completes).
            let served = served_iroh(&a, &blob);
            (report, served)
        })
    };
    tokio::time::timeout(Duration::from_secs(30), a_started.wait_for(|held| *held))
        .await
        .expect("A holds 2 MiB within 30 s")
        .unwrap();
    let b_report = b
        .fetch_with_policy(&blob, &providers, &policy, &|_| {})
        .await
        .unwrap();
    let (a_report, served_before_a_completed) = a_fetch.await.unwrap();

    assert!(
        served_before_a_completed > 0,
        "A served nothing while it downloaded; A: {a_report:?}, B: {b_report:?}"
    );
    assert!(
        b_report.bytes_from_peers > 0,
        "B took nothing from A: {b_report:?}"
    );
    assert_eq!(b.metrics().bytes_from_peers, b_report.bytes_from_peers);
    assert_holds(&b, &blob, &data, tmp.path()).await;
    assert_holds(&a, &blob, &data, tmp.path()).await;
    for s in [&b] {
        s.shutdown().await;
    }
    a.shutdown().await;
    origin.shutdown().await;
}

fn served_iroh(swarm: &Swarm, blob: &BlobRef) -> u64 {
    swarm
        .metrics()
        .per_hash
        .get(&blob.hex())
        .map_or(0, |m| m.bytes_served_iroh)
}

/// How a hostile herd peer behaves: it always claims to hold the whole blob.
#[derive(Debug, Clone, Copy)]
enum Lie {
    /// Asked for ranges, it ends the answer without a byte.
    Silent,
    /// Asked for ranges, it sends garbage.
    Garbage,
    /// Asked what it holds, it never answers.
    Mute,
}

#[derive(Debug, Clone)]
struct Claiming {
    size: u64,
    lie: Lie,
}

/// The length-prefixed framing iroh-blobs uses for observe answers (a LEB128 length).
fn length_prefixed(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = bytes.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(bytes);
    out
}

impl ProtocolHandler for Claiming {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let this = self.clone();
            tokio::spawn(async move {
                let Ok(bytes) = recv.read_to_end(64 * 1024).await else {
                    return;
                };
                match postcard::from_bytes::<Request>(&bytes) {
                    Ok(Request::Observe(_)) => {
                        if let Lie::Mute = this.lie {
                            send.stopped().await.ok();
                            return;
                        }
                        let item = ObserveItem {
                            size: this.size,
                            ranges: ChunkRanges::all(),
                        };
                        let encoded = postcard::to_allocvec(&item).unwrap();
                        send.write_all(&length_prefixed(&encoded)).await.ok();
                        // Hold the answer open, as a real provider does, until the asker leaves.
                        send.stopped().await.ok();
                    }
                    Ok(_) => match this.lie {
                        Lie::Garbage => {
                            let mut garbage = this.size.to_le_bytes().to_vec();
                            garbage.extend(std::iter::repeat_n(0xa5u8, 256 * 1024));
                            send.write_chunk(Bytes::from(garbage)).await.ok();
                            send.finish().ok();
                            send.stopped().await.ok();
                        }
                        Lie::Silent | Lie::Mute => {
                            send.finish().ok();
                            send.stopped().await.ok();
                        }
                    },
                    Err(_) => {}
                }
            });
        }
        Ok(())
    }
}

async fn claiming_peer(size: u64, lie: Lie) -> Router {
    let endpoint = Endpoint::builder(iroh::endpoint::presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled)
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap();
    Router::builder(endpoint)
        .accept(iroh_blobs::ALPN, Claiming { size, lie })
        .spawn()
}

fn addr_of(router: &Router) -> PeerAddr {
    PeerAddr {
        id: router.endpoint().id().to_string(),
        addrs: router.endpoint().bound_sockets(),
        relay_url: None,
    }
}

/// Three herd peers claim the whole blob: one sends nothing for it, one sends garbage, one
/// never says what it holds. Each costs one round (the mute one its observe deadline) and
/// is left for the rest of the fetch; the garbage one is struck; the fetch completes from
/// the origin with every byte right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_peers_that_claim_what_they_lack_cost_one_round() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Arc::new(node(&tmp.path().join("origin")).await);
    let (blob, data) = import(&origin, tmp.path(), 4 * MIB, 32).await;
    let (url, _tracker) = serve_with_tracker(&origin).await;
    let silent = claiming_peer(blob.size, Lie::Silent).await;
    let garbage = claiming_peer(blob.size, Lie::Garbage).await;
    let mute = claiming_peer(blob.size, Lie::Mute).await;
    let me = node(&tmp.path().join("me")).await;
    let policy = FetchPolicy {
        // Enough budget for many rounds: what ends the liars is leaving them, not the budget.
        detour_budget: Duration::from_secs(20),
        ..quick_policy()
    };
    let providers = herd_providers(
        &origin,
        &url,
        vec![addr_of(&silent), addr_of(&garbage), addr_of(&mute)],
    );
    let report = me
        .fetch_with_policy(&blob, &providers, &policy, &|_| {})
        .await
        .unwrap();

    assert_holds(&me, &blob, &data, tmp.path()).await;
    assert_eq!(report.bytes_from_peers, 0, "{report:?}");
    assert_eq!(report.bytes_from_origin_iroh, blob.size, "{report:?}");
    for liar in [&silent, &garbage, &mute] {
        let id = liar.endpoint().id().to_string();
        let times = report.fallbacks.iter().filter(|f| f.provider == id).count();
        assert_eq!(times, 1, "{id} was left {times} times: {report:?}");
    }
    assert!(me.is_struck(&blob.hash, &garbage.endpoint().id()));
    assert!(!me.is_struck(&blob.hash, &silent.endpoint().id()));
    me.shutdown().await;
    for liar in [silent, garbage, mute] {
        liar.shutdown().await.ok();
    }
    origin.shutdown().await;
}

/// A peer the tracker still lists but that left: the herd fetch dials it, the dial fails
/// within the connect timeout, the peer is reported as unreachable and left for the rest of
/// the fetch, and the origin supplies every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_left_is_dialed_once_and_the_origin_supplies_the_blob() {
    let tmp = tempfile::tempdir().unwrap();
    // Slow enough (4 s) that the dial's failure comes while the fetch still runs.
    let origin = Arc::new(throttled_node(&tmp.path().join("origin"), 2 * MIB as u64).await);
    let (blob, data) = import(&origin, tmp.path(), 8 * MIB, 41).await;
    let (url, _tracker) = serve_with_tracker(&origin).await;
    // A node announces the blob, then leaves without saying so.
    let gone = node(&tmp.path().join("gone")).await;
    gone.announce(&url, &[blob.hash]).await.unwrap();
    let gone_id = gone.endpoint_id().to_string();
    gone.shutdown().await;

    let me = node(&tmp.path().join("me")).await;
    let policy = FetchPolicy {
        detour_budget: Duration::from_secs(20),
        ..quick_policy()
    };
    let report = me
        .fetch_with_policy(
            &blob,
            &herd_providers(&origin, &url, vec![]),
            &policy,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.bytes_from_origin_iroh, blob.size, "{report:?}");
    assert_eq!(report.bytes_from_peers, 0, "{report:?}");
    let failures: Vec<_> = report
        .fallbacks
        .iter()
        .filter(|f| f.provider == gone_id)
        .collect();
    assert_eq!(failures.len(), 1, "{report:?}");
    assert_eq!(
        failures[0].reason,
        FallbackReason::PeerConnect,
        "{report:?}"
    );
    assert_holds(&me, &blob, &data, tmp.path()).await;
    me.shutdown().await;
    origin.shutdown().await;
}

/// What [`beside_one_peer`] saw: the fetch's report, the peer's id, and whether the
/// peer was struck.
struct BesideOnePeer {
    report: FetchReport,
    peer: String,
    struck: bool,
}

/// A node fetches 8 MiB (content `seed`) under `budget`, from an origin serving
/// `origin_rate` bytes/s with a tracker, and one herd peer that holds all of it and
/// serves `peer_rate`; what it fetched is checked against the content.
async fn beside_one_peer(
    origin_rate: u64,
    peer_rate: u64,
    budget: Duration,
    seed: u64,
) -> BesideOnePeer {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Arc::new(throttled_node(&tmp.path().join("origin"), origin_rate).await);
    let (blob, data) = import(&origin, tmp.path(), 8 * MIB, seed).await;
    let (url, _tracker) = serve_with_tracker(&origin).await;
    let peer = throttled_node(&tmp.path().join("peer"), peer_rate).await;
    import(&peer, tmp.path(), 8 * MIB, seed).await;
    let me = node(&tmp.path().join("me")).await;
    let policy = FetchPolicy {
        detour_budget: budget,
        ..quick_policy()
    };
    let report = me
        .fetch_with_policy(
            &blob,
            &herd_providers(&origin, &url, vec![peer.addr()]),
            &policy,
            &|_| {},
        )
        .await
        .unwrap();
    assert_holds(&me, &blob, &data, tmp.path()).await;
    let seen = BesideOnePeer {
        report,
        peer: peer.endpoint_id().to_string(),
        struck: me.is_struck(&blob.hash, &peer.endpoint_id()),
    };
    me.shutdown().await;
    peer.shutdown().await;
    origin.shutdown().await;
    seen
}

/// A herd peer that holds the blob but serves it at 32 KiB/s (an uplink others share, as
/// it looks from here): each transfer falls behind its share of the minimum rate and ends,
/// the peer rests and is asked again, and at the third slow transfer it is left. It is
/// never struck; the origin (1 MiB/s, slower than the fetch takes) supplies the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_herd_peer_rests_and_is_left_at_the_third_slow_transfer() {
    // What ends the slow peer is its third slow transfer, not the budget.
    let seen = beside_one_peer(MIB as u64, 32 * 1024, Duration::from_secs(30), 43).await;
    let report = &seen.report;
    let failures: Vec<_> = report
        .fallbacks
        .iter()
        .filter(|f| f.provider == seen.peer)
        .collect();
    assert_eq!(failures.len(), 3, "{report:?}");
    assert!(
        failures
            .iter()
            .all(|f| f.reason == FallbackReason::PeerSlow),
        "{report:?}"
    );
    assert!(!seen.struck);
}

/// A peer slower than the minimum rate spends the detour budget (2 s); from then on the
/// origin sends from the front and the peer keeps sending the last pieces, one at a time,
/// until they meet. Before, the peer's transfers were dropped and the origin sent all that
/// was missing. The peer (512 KiB/s) can have sent at most 2 MiB when the budget is spent
/// (the charge is the time beyond its bytes at 1 MiB/s), so more than 3 MiB from it means
/// it went on (it sends about 5); the origin (384 KiB/s) sends the rest, and what both sent overlaps by
/// at most the piece they raced for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_detour_budget_keeps_peers_sending_beside_the_origin() {
    let budget = Duration::from_secs(2);
    let seen = beside_one_peer(384 * 1024, 512 * 1024, budget, 47).await;
    let report = &seen.report;
    assert!(report.detour >= budget, "{report:?}");
    assert!(
        report.bytes_from_peers > 3 * MIB as u64,
        "the peer stopped when the budget was spent: {report:?}"
    );
    let sent =
        report.bytes_from_peers + report.bytes_from_origin_iroh + report.bytes_from_origin_http;
    assert!(
        sent <= 8 * MIB as u64 + 256 * 1024,
        "the origin sent what the peer had sent: {report:?}"
    );
    assert!(report.fallbacks.is_empty(), "{report:?}");
}
