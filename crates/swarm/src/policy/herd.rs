//! A fetch in a herd: many nodes that want one blob at once, none of them holding it yet
//! (DESIGN "Swarm: origin always wins" 8).
//!
//! The fetch announces itself to the tracker as it starts. Its provider already serves
//! what it has verified of a partial blob: iroh-blobs checks every chunk it sends against
//! the outboard and stops at the first one it does not hold. Then, in rounds:
//!
//! - the tracker is asked for peers (again at most every [`REFRESH`]), new ones are dialed
//!   together, and every peer connected is asked which ranges it holds (iroh-blobs'
//!   `observe`, its first answer, under [`OBSERVE_WITHIN`]);
//! - when peers hold ranges this node misses, it takes them in pieces of [`PIECE_CHUNKS`],
//!   each from a random peer that holds it, from up to [`PEERS_PER_ROUND`] peers at once and
//!   at most [`PIECES_PER_PEER`] pieces of each per round, so the load spreads and the
//!   picture is fresh every round;
//! - when no peer holds anything it misses, it takes up to [`PIECES_PER_PEER`] random pieces
//!   of what it misses from the origin, so the herd's origin traffic spreads over the blob
//!   instead of every node taking the same first bytes.
//!
//! Bounds. Only ranges a peer said it holds are asked of it. A peer whose round fails in
//! any way (it did not send what it claimed, stalled, fell behind, sent bad data, did not
//! say what it holds in time) is left for the rest of the fetch; bad data also earns a
//! strike. At most [`MAX_PEERS`] peers are dialed per fetch. Dialing and asking peers, and
//! transfers from them beyond the minimum rate, are charged to the detour budget; when it is
//! spent, or the origin fails, the ordinary origin turn takes whatever is missing (iroh,
//! then HTTP). Every round either stores new verified bytes or leaves a peer, so the
//! rounds end.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bao_tree::{ChunkNum, ChunkRanges};
use futures::StreamExt;
use futures::future::join_all;
use iroh::EndpointId;
use iroh::endpoint::Connection;
use iroh_blobs::protocol::{GetRequest, ObserveRequest};
use rand::seq::{IndexedRandom, SliceRandom};
use tracing::{debug, warn};

use super::attempt::{End, Limits, Transport, detour_of, full_request, path_bytes};
use super::inflight::Progress;
use super::{FetchPolicy, FetchReport, PeerPaths};
use crate::metrics::{FallbackReason, Source};
use crate::{BlobRef, Error, PeerAddr, Result, Swarm};

/// Chunks (1 KiB) in one piece: 256 KiB.
pub(super) const PIECE_CHUNKS: u64 = 256;
/// Peers asked for pieces at once.
const PEERS_PER_ROUND: usize = 4;
/// Pieces asked of one provider in one round.
const PIECES_PER_PEER: usize = 4;
/// Peers dialed in one fetch, at most.
const MAX_PEERS: usize = 32;
/// Peers remembered from the tracker in one fetch, at most.
const MAX_KNOWN: usize = 128;
/// The tracker is asked again at most this often.
const REFRESH: Duration = Duration::from_secs(1);
/// How long the tracker may take to answer.
const TRACKER_WITHIN: Duration = Duration::from_secs(2);
/// How long a peer may take to say which ranges it holds.
const OBSERVE_WITHIN: Duration = Duration::from_secs(2);

/// The pieces (start chunk of each) that `ranges` touches, below `end`.
fn pieces_of(ranges: &ChunkRanges, end: u64) -> Vec<u64> {
    let mut pieces = Vec::new();
    // Boundaries alternate start, end; an odd last one starts a range open to the end.
    for pair in ranges.boundaries().chunks(2) {
        let start = pair[0].0;
        let stop = pair.get(1).map_or(end, |e| e.0).min(end);
        let mut piece = start / PIECE_CHUNKS;
        while piece * PIECE_CHUNKS < stop {
            if pieces.last() != Some(&piece) {
                pieces.push(piece);
            }
            piece += 1;
        }
    }
    pieces
}

fn piece_range(piece: u64) -> ChunkRanges {
    ChunkRanges::from(ChunkNum(piece * PIECE_CHUNKS)..ChunkNum((piece + 1) * PIECE_CHUNKS))
}

/// Which ranges to ask of which peer this round: every piece some peer holds and this node
/// misses goes to a random holder, up to [`PIECES_PER_PEER`] per peer and
/// [`PEERS_PER_ROUND`] peers.
pub(super) fn plan(
    missing: &ChunkRanges,
    held: &[(EndpointId, ChunkRanges)],
    end: u64,
) -> Vec<(EndpointId, ChunkRanges)> {
    let mut rng = rand::rng();
    let mut peers: Vec<&(EndpointId, ChunkRanges)> = held.iter().collect();
    peers.shuffle(&mut rng);
    peers.truncate(PEERS_PER_ROUND);
    let mut pieces: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, (_, has)) in peers.iter().enumerate() {
        for piece in pieces_of(&(has.clone() & missing.clone()), end) {
            pieces.entry(piece).or_default().push(i);
        }
    }
    let mut order: Vec<(u64, Vec<usize>)> = pieces.into_iter().collect();
    order.shuffle(&mut rng);
    let mut given = vec![(0usize, ChunkRanges::empty()); peers.len()];
    for (piece, mut holders) in order {
        holders.retain(|&i| given[i].0 < PIECES_PER_PEER);
        let Some(&i) = holders.choose(&mut rng) else {
            continue;
        };
        // Only what the peer holds and this node misses of the piece.
        let part = piece_range(piece) & peers[i].1.clone() & missing.clone();
        given[i].0 += 1;
        given[i].1 |= part;
    }
    peers
        .iter()
        .zip(given)
        .filter(|(_, (n, _))| *n > 0)
        .map(|((id, _), (_, ranges))| (*id, ranges))
        .collect()
}

/// Done with a peer's connection: what came in on which paths, then closed.
fn retire(report: &mut FetchReport, peer: &PeerAddr, conn: Connection) {
    let paths = path_bytes(&conn);
    report.peer_paths.push(PeerPaths {
        peer: peer.id.clone(),
        direct_bytes: paths.direct,
        relayed_bytes: paths.relayed,
    });
    conn.close(0u32.into(), b"done");
}

impl Swarm {
    /// What the store holds of the whole request, and what it misses.
    async fn held_and_missing(
        &self,
        blob: &BlobRef,
        full: &GetRequest,
    ) -> Result<(u64, ChunkRanges)> {
        let local = self
            .store
            .remote()
            .local_for_request(full.clone())
            .await
            .map_err(|e| Error::Blob {
                hash: blob.hex(),
                reason: format!("reading local state: {e}"),
            })?;
        let missing = local
            .missing()
            .ranges
            .iter_infinite()
            .next()
            .cloned()
            .unwrap_or_default();
        Ok((local.local_bytes(), missing))
    }

    /// Which ranges of `hash` the peer on `conn` says it holds (its first answer), or why not.
    async fn observe_ranges(
        &self,
        conn: &Connection,
        hash: iroh_blobs::Hash,
    ) -> std::result::Result<ChunkRanges, String> {
        let mut answers = Box::pin(
            self.store
                .remote()
                .observe(conn.clone(), ObserveRequest::new(hash)),
        );
        match tokio::time::timeout(OBSERVE_WITHIN, answers.next()).await {
            Ok(Some(Ok(bitfield))) => Ok(bitfield.ranges),
            Ok(Some(Err(e))) => Err(format!("asking what it holds: {e}")),
            Ok(None) => Err("it did not say what it holds".into()),
            Err(_) => Err(format!(
                "it did not say what it holds within {OBSERVE_WITHIN:?}"
            )),
        }
    }

    /// The herd's rounds (module doc), then the origin turn for whatever is still missing.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_herd(
        &self,
        blob: &BlobRef,
        static_peers: &[PeerAddr],
        origin: &PeerAddr,
        origins: &[PeerAddr],
        http: Option<&str>,
        tracker: &str,
        policy: &FetchPolicy,
        progress: &Progress<'_>,
        report: &mut FetchReport,
    ) -> Result<()> {
        let hash = blob.hash;
        let full = full_request(blob);
        let end = ChunkNum::chunks(blob.size).max(ChunkNum(1)).0;
        let mut budget = policy.detour_budget;
        self.mark_partial(&hash).await;
        report.resumed_from = self.held_and_missing(blob, &full).await?.0;
        self.announce_in_background(tracker, &hash);
        let origin_conn = match (&mut self.dial(origin, policy.connect_timeout).0).await {
            Ok(Ok(conn)) => Some(conn),
            failed => {
                let e = failed.map_or_else(|e| e.to_string(), |r| r.err().unwrap_or_default());
                debug!(hash = %blob.hex(), error = %e, "origin not dialed for the herd; the origin turn tries it");
                None
            }
        };
        let mut known: Vec<PeerAddr> = static_peers.iter().take(MAX_KNOWN).cloned().collect();
        let mut refreshed: Option<Instant> = None;
        let mut conns: HashMap<EndpointId, (PeerAddr, Connection)> = HashMap::new();
        let mut left: HashSet<EndpointId> = HashSet::new();
        let mut dialed = 0usize;
        while let Some(origin_conn) = &origin_conn {
            let (held, missing) = self.held_and_missing(blob, &full).await?;
            progress.report(held);
            if missing.is_empty() {
                break;
            }
            if budget.is_zero() {
                debug!(hash = %blob.hex(), "detour budget spent; the origin takes the rest");
                break;
            }
            let round = Instant::now();
            if refreshed.is_none_or(|t| t.elapsed() >= REFRESH) {
                refreshed = Some(Instant::now());
                if let Ok(Ok(found)) =
                    tokio::time::timeout(TRACKER_WITHIN, self.providers(tracker, &hash)).await
                {
                    for p in found {
                        if known.len() < MAX_KNOWN && !known.iter().any(|k| k.id == p.id) {
                            known.push(p);
                        }
                    }
                }
            }
            // Dial the peers not dialed yet, together.
            let connect = policy.connect_timeout.min(budget);
            let fresh: Vec<(PeerAddr, EndpointId)> = self
                .candidates(hash, &known, origins, true, MAX_PEERS, report)
                .into_iter()
                .filter(|(_, id)| !conns.contains_key(id) && !left.contains(id))
                .take(MAX_PEERS.saturating_sub(dialed))
                .map(|(p, id)| (p.clone(), id))
                .collect();
            dialed += fresh.len();
            let mut dials: Vec<_> = fresh.iter().map(|(p, _)| self.dial(p, connect)).collect();
            let results = join_all(dials.iter_mut().map(|d| &mut d.0)).await;
            for ((peer, id), result) in fresh.into_iter().zip(results) {
                match result.map_err(|e| e.to_string()).and_then(|r| r) {
                    Ok(conn) => {
                        self.backoff_lock().succeeded(&id);
                        conns.insert(id, (peer, conn));
                    }
                    Err(detail) => {
                        self.backoff_lock().failed(id, Instant::now());
                        self.metrics.fallback(&hash, FallbackReason::PeerConnect);
                        self.report_unreachable(&hash, &id);
                        report.failed(&peer, FallbackReason::PeerConnect, detail);
                        left.insert(id);
                    }
                }
            }
            // Ask every connected peer what it holds, together.
            let asked = join_all(conns.iter().map(|(id, (_, conn))| async move {
                (*id, self.observe_ranges(conn, hash).await)
            }))
            .await;
            let mut holders = Vec::new();
            for (id, answer) in asked {
                match answer {
                    Ok(ranges) => {
                        let useful = ranges & missing.clone();
                        if !useful.is_empty() {
                            holders.push((id, useful));
                        }
                    }
                    Err(detail) => {
                        if let Some((peer, conn)) = conns.remove(&id) {
                            self.metrics.fallback(&hash, FallbackReason::PeerError);
                            report.failed(&peer, FallbackReason::PeerError, detail);
                            retire(report, &peer, conn);
                        }
                        left.insert(id);
                    }
                }
            }
            if holders.is_empty() {
                // Nobody holds what this node misses: random pieces of it from the origin.
                let asking = round.elapsed();
                report.detour += asking;
                self.metrics.detour(asking);
                budget = budget.saturating_sub(asking);
                let mut pieces = pieces_of(&missing, end);
                pieces.shuffle(&mut rand::rng());
                let mut ranges = ChunkRanges::empty();
                for piece in pieces.into_iter().take(PIECES_PER_PEER) {
                    ranges |= piece_range(piece) & missing.clone();
                }
                let limits = Limits {
                    connect: policy.connect_timeout,
                    stall: policy.origin_stall_timeout,
                    min_rate: None,
                    budget: None,
                };
                let attempt = self
                    .attempt(
                        blob,
                        &GetRequest::blob_ranges(hash, ranges),
                        Transport::Shared(origin_conn.clone()),
                        &limits,
                        progress,
                    )
                    .await?;
                self.metrics
                    .received(&hash, Source::OriginIroh, attempt.bytes);
                report.bytes_from_origin_iroh += attempt.bytes;
                if let End::Failed(reason, detail) = attempt.end {
                    warn!(hash = %blob.hex(), ?reason, %detail, "origin failed a piece; the origin turn takes the rest");
                    break;
                }
                continue;
            }
            let assigned = plan(&missing, &holders, end);
            let share = (policy.min_rate_bytes_per_sec / assigned.len().max(1) as u64).max(1);
            let limits = Limits {
                connect,
                stall: policy.stall_timeout,
                min_rate: Some(share),
                budget: Some(budget),
            };
            let attempts = join_all(assigned.iter().filter_map(|(id, ranges)| {
                let (_, conn) = conns.get(id)?;
                let request = GetRequest::blob_ranges(hash, ranges.clone());
                let limits = &limits;
                Some(async move {
                    let attempt = self
                        .attempt(
                            blob,
                            &request,
                            Transport::Shared(conn.clone()),
                            limits,
                            progress,
                        )
                        .await;
                    (*id, attempt)
                })
            }))
            .await;
            let mut bytes = 0;
            for (id, attempt) in attempts {
                let attempt = attempt?;
                bytes += attempt.bytes;
                self.metrics.received(&hash, Source::Peer, attempt.bytes);
                report.bytes_from_peers += attempt.bytes;
                if let End::Failed(reason, detail) = attempt.end {
                    warn!(hash = %blob.hex(), peer = %id, ?reason, %detail, "herd peer left for this fetch");
                    self.metrics.fallback(&hash, reason);
                    if reason == FallbackReason::PeerBadData {
                        self.metrics.verification_failure(&hash);
                        self.metrics.strike(&hash);
                        self.strikes_lock().add(hash, id, detail.clone());
                    }
                    if let Some((peer, _)) = conns.get(&id) {
                        report.failed(peer, reason, detail);
                    }
                    if let Some((peer, conn)) = conns.remove(&id) {
                        left.insert(id);
                        retire(report, &peer, conn);
                    }
                }
            }
            let detour = detour_of(round.elapsed(), bytes, Some(policy.min_rate_bytes_per_sec));
            report.detour += detour;
            self.metrics.detour(detour);
            budget = budget.saturating_sub(detour);
        }
        for (_, (peer, conn)) in conns {
            retire(report, &peer, conn);
        }
        if let Some(conn) = origin_conn {
            conn.close(0u32.into(), b"done");
        }
        self.origin_turn(blob, &full, origins, http, policy, progress, report)
            .await
    }
}
