//! A fetch in a herd: many nodes that want one blob at once, none of them holding it yet
//! (DESIGN "Swarm: origin always wins" 8).
//!
//! The fetch announces itself to the tracker as it starts. Its provider already serves
//! what it has verified of a partial blob: iroh-blobs checks every chunk it sends against
//! the outboard and stops at the first one it does not hold. Then it loops:
//!
//! - a survey: the tracker is asked for peers (again at most every [`REFRESH`]), new ones
//!   are dialed together (at most [`MAX_PEERS`] per fetch), and up to [`ASKED_PER_SURVEY`]
//!   idle peers are asked which ranges they hold (iroh-blobs' `observe`, its first answer,
//!   under [`OBSERVE_WITHIN`]); transfers in flight keep moving meanwhile;
//! - what idle peers hold and this node misses (and nobody is already sending it) is
//!   taken in pieces of [`PIECE_CHUNKS`], each from a random holder, from up to
//!   [`PEERS_PER_ROUND`] peers at once, at most [`PIECES_PER_PEER`] pieces per request; a
//!   peer whose transfer ends well is asked at once for more of what it was last seen
//!   holding (waiting for the next survey left home uplinks idle: a herd of 20 moved 66%
//!   of what its uplinks could carry);
//! - what no peer is known to hold comes from the origin, one request in flight: first the
//!   pieces this node is in charge of ([`in_charge`]: rendezvous hashing over the herd it
//!   knows, so the herd's nodes split the blob between them without talking and the origin
//!   sends each piece about once), a few at a time; once none of those is left and no peer
//!   has had anything to send for [`IDLE_GRACE`] (the node in charge may be slow, gone, or
//!   known only to others), any of them, one random piece at a time (a few when no peer is
//!   connected). A fetch with nobody connected and nobody left to dial takes everything
//!   missing in one transfer, stopped the moment a peer is connected (piece by piece, a
//!   lone fetch was 2.5-9.5x slower). So a peer that left but is still listed costs one
//!   connect timeout, after which the fetch is alone again;
//! - then it waits for a transfer to end, or [`RESURVEY`], and looks again.
//!
//! Bounds. Only ranges a peer said it holds are asked of it. A peer whose transfer stalled
//! or fell behind its share of the minimum rate rests for [`REST`] (in a herd that is
//! mostly an uplink others share: left, its charge went to the origin again, and at 40
//! nodes fetches left 1-11 of their 12 peers so), and leaves at the
//! [`SLOW_TIMES_LEAVES`]th time. A peer whose transfer fails in any other way (it did not
//! send what it claimed, sent bad data, did not say what it holds in time) is left for
//! the rest of the fetch; bad data also earns a strike. Time with only peers at work
//! (counted per pass: see `run_herd`) beyond what their bytes justify at the minimum rate
//! is charged to the detour budget. When it is spent (the endgame) the origin sends what
//! is missing from the front without a break, [`ORIGIN_BLOCKS`] blocks in flight, sized to
//! about [`BLOCK_TIME`] of its time each, and never waits for a survey, so the fetch ends
//! within the origin's own time; peers go on with the last pieces, one at a time, until
//! the two meet, and once only pieces peers are sending are left, the origin races them
//! one at a time rather than idle.
//! With nobody left to help, the origin turn sends the rest in one transfer.
//! (Before, the peers' transfers were dropped and the origin sent everything missing: a
//! node whose peers were slow took most of the blob from it.) When the origin fails a
//! piece, the ordinary origin turn takes whatever is missing (iroh, then HTTP). Each pass
//! either settles a transfer (new verified bytes, or a peer left), or waits [`RESURVEY`]
//! with only peers at work (charged), or has the origin's piece in flight, so the loop
//! ends.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bao_tree::{ChunkNum, ChunkRanges};
use futures::StreamExt;
use futures::future::{BoxFuture, join_all};
use futures::stream::FuturesUnordered;
use iroh::EndpointId;
use iroh::endpoint::Connection;
use iroh_blobs::protocol::{GetRequest, ObserveRequest};
use rand::seq::{IndexedRandom, SliceRandom};
use tracing::{debug, warn};

use super::attempt::{
    Attempt, End, Limits, Transport, chunk_end, detour_of, full_request, path_bytes,
};
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
const MAX_PEERS: usize = 12;
/// Peers remembered from the tracker in one fetch, at most.
const MAX_KNOWN: usize = 128;
/// The tracker is asked again at most this often.
const REFRESH: Duration = Duration::from_secs(1);
/// How long the tracker may take to answer.
const TRACKER_WITHIN: Duration = Duration::from_secs(2);
/// How long a peer may take to say which ranges it holds.
const OBSERVE_WITHIN: Duration = Duration::from_secs(3);
/// Idle peers asked what they hold in one survey, at most (a random choice).
const ASKED_PER_SURVEY: usize = 8;
/// With transfers in flight and nothing new to ask, peers are asked again after this.
const RESURVEY: Duration = Duration::from_millis(500);
/// With no peer transfer in flight for this long, the origin also sends pieces another
/// node of the herd is in charge of (it may be slow, gone, or known only to others).
const IDLE_GRACE: Duration = Duration::from_secs(1);
/// A peer whose transfer was slow or stalled is not asked again for this long.
const REST: Duration = Duration::from_secs(2);
/// The slow or stalled transfer of a peer that leaves it for the rest of the fetch.
const SLOW_TIMES_LEAVES: u32 = 3;
/// Once the detour budget is spent, the origin sends what is missing from the front in
/// blocks, this many in flight so it does not idle a round trip between them...
const ORIGIN_BLOCKS: usize = 2;
/// ... each of one piece at first, then of what one transfer moved in this long at the
/// last block's pace ([`next_block`]), at most [`MAX_BLOCK_PIECES`]: what the origin has
/// claimed, and peers may not send, stays about a second of its time.
const BLOCK_TIME: Duration = Duration::from_secs(1);
const MAX_BLOCK_PIECES: usize = 16;

/// A node's weight key for one blob (rendezvous hashing): the first 8 bytes of
/// BLAKE3(blob hash, endpoint id). Every node of a herd computes the same key for a node.
fn stripe_key(hash: &iroh_blobs::Hash, id: &EndpointId) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(hash.as_bytes());
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The weight of `piece` for the node with `key` (splitmix64 of the two): each piece goes
/// to the node with the highest weight, an independent draw per piece.
fn weight(key: u64, piece: u64) -> u64 {
    let mut z = key ^ piece.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pieces of `ranges` this node is in charge of taking from the origin: those whose
/// weight under `mine` beats every key of `others` (the rest of the herd as this node knows
/// it). The herd's nodes split the blob between them without talking, each piece to one
/// node, so the origin sends the blob about once however many nodes start together.
pub(super) fn in_charge(ranges: &ChunkRanges, end: u64, mine: u64, others: &[u64]) -> ChunkRanges {
    // Runs of consecutive pieces kept, then one intersection: a piece at a time, a
    // fragmented `ranges` cost a copy per piece.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for piece in pieces_of(ranges, end) {
        let own = weight(mine, piece);
        if others.iter().all(|&k| weight(k, piece) < own) {
            match runs.last_mut() {
                Some((_, stop)) if *stop == piece => *stop = piece + 1,
                _ => runs.push((piece, piece + 1)),
            }
        }
    }
    let mut kept = ChunkRanges::empty();
    for (start, stop) in runs {
        kept |= ChunkRanges::from(ChunkNum(start * PIECE_CHUNKS)..ChunkNum(stop * PIECE_CHUNKS));
    }
    kept & ranges.clone()
}

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

/// How a round picks the pieces it asks of peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pick {
    /// Random pieces, up to [`PIECES_PER_PEER`] per peer: the nodes of a herd ask for
    /// different ones.
    Random,
    /// The last pieces missing, one per peer: the detour budget is spent and the origin
    /// sends from the front, so peers fill in from the back and are never waited for long.
    Last,
}

/// Which ranges to ask of which peer this round: every piece some peer holds and this node
/// misses goes to a random holder, up to [`PEERS_PER_ROUND`] peers and as many pieces per
/// peer as `pick` says, in its order.
pub(super) fn plan(
    missing: &ChunkRanges,
    held: &[(EndpointId, ChunkRanges)],
    end: u64,
    slots: usize,
    pick: Pick,
) -> Vec<(EndpointId, ChunkRanges)> {
    let mut rng = rand::rng();
    let mut peers: Vec<&(EndpointId, ChunkRanges)> = held.iter().collect();
    peers.shuffle(&mut rng);
    peers.truncate(slots);
    let mut pieces: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, (_, has)) in peers.iter().enumerate() {
        for piece in pieces_of(&(has.clone() & missing.clone()), end) {
            pieces.entry(piece).or_default().push(i);
        }
    }
    let mut order: Vec<(u64, Vec<usize>)> = pieces.into_iter().collect();
    let per_peer = match pick {
        Pick::Random => {
            order.shuffle(&mut rng);
            PIECES_PER_PEER
        }
        Pick::Last => {
            order.sort_unstable_by_key(|(piece, _)| std::cmp::Reverse(*piece));
            1
        }
    };
    let mut given = vec![(0usize, ChunkRanges::empty()); peers.len()];
    for (piece, mut holders) in order {
        holders.retain(|&i| given[i].0 < per_peer);
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

/// Peers of one herd fetch.
#[derive(Default)]
struct HerdState {
    /// Peers from the caller and the tracker.
    known: Vec<PeerAddr>,
    /// The stripe key ([`stripe_key`]) of each known peer.
    keys: HashMap<EndpointId, u64>,
    /// This node and the origins: never learned as peers.
    outside: HashSet<EndpointId>,
    conns: HashMap<EndpointId, (PeerAddr, Connection)>,
    /// Peers left for the rest of the fetch.
    left: HashSet<EndpointId>,
    /// Peers whose transfer was slow or stalled, and until when they are not asked.
    resting: HashMap<EndpointId, Instant>,
    /// How many of each peer's transfers were slow or stalled.
    slow: HashMap<EndpointId, u32>,
    /// Peers with a transfer in flight, and the ranges asked of each.
    busy: HashMap<EndpointId, ChunkRanges>,
    /// What each peer last said it holds (of what this node missed then).
    seen: HashMap<EndpointId, ChunkRanges>,
    /// Peers dialed so far.
    dialed: usize,
    /// Verified bytes from peers.
    peer_bytes: u64,
}

impl HerdState {
    /// A peer transfer ended: count its bytes; a slow or stalled one rests the peer
    /// ([`HerdState::rest`]), any other failure leaves it (with a strike for bad data).
    /// Whether it delivered everything it was asked for.
    fn settle(
        &mut self,
        swarm: &Swarm,
        blob: &BlobRef,
        report: &mut FetchReport,
        id: EndpointId,
        attempt: Attempt,
    ) -> bool {
        self.busy.remove(&id);
        self.peer_bytes += attempt.bytes;
        swarm
            .metrics
            .received(&blob.hash, Source::Peer, attempt.bytes);
        report.bytes_from_peers += attempt.bytes;
        if let End::Failed(reason, detail) = attempt.end {
            if matches!(reason, FallbackReason::PeerSlow | FallbackReason::PeerStall)
                && self.rest(id, Instant::now())
            {
                debug!(hash = %blob.hex(), peer = %id, ?reason, %detail, "herd peer rests");
                self.failed(swarm, blob.hash, report, id, reason, detail);
                return false;
            }
            warn!(hash = %blob.hex(), peer = %id, ?reason, %detail, "herd peer left for this fetch");
            if reason == FallbackReason::PeerBadData {
                swarm.metrics.verification_failure(&blob.hash);
                swarm.metrics.strike(&blob.hash);
                swarm.strikes_lock().add(blob.hash, id, detail.clone());
            }
            self.leave(swarm, blob.hash, report, id, reason, detail);
            return false;
        }
        true
    }

    /// A transfer of `id` was slow or stalled: in a herd that is mostly a peer whose uplink
    /// others share, not a broken one, so it stays connected and in the split (left, its
    /// charge would be taken from the origin a second time) and is not asked for [`REST`];
    /// what it was seen holding is forgotten until it is asked again. Whether it rests;
    /// at the [`SLOW_TIMES_LEAVES`]th time it does not, and leaves. Time lost to it is
    /// charged to the detour budget as any peer's.
    fn rest(&mut self, id: EndpointId, now: Instant) -> bool {
        let times = self.slow.entry(id).or_default();
        *times += 1;
        if *times >= SLOW_TIMES_LEAVES {
            return false;
        }
        self.resting.insert(id, now + REST);
        self.seen.remove(&id);
        true
    }

    /// Whether `id` is resting at `now`.
    fn resting(&self, id: &EndpointId, now: Instant) -> bool {
        self.resting.get(id).is_some_and(|until| now < *until)
    }

    /// Whether `id` may be asked something at `now`: no transfer in flight, not resting.
    fn askable(&self, id: &EndpointId, now: Instant) -> bool {
        !self.busy.contains_key(id) && !self.resting(id, now)
    }

    /// More for `id`, whose transfer just ended well, from what it was last seen holding:
    /// asked at once, its uplink does not idle until the next survey has asked everyone
    /// (which waits for the slowest answer, seconds on a busy machine). Its connection and
    /// the ranges (now busy), if it holds anything still wanted and a slot is free.
    fn more_from(
        &mut self,
        id: EndpointId,
        missing: &ChunkRanges,
        origin: &OriginSlot,
        end: u64,
    ) -> Option<(Connection, ChunkRanges)> {
        if self.busy.len() >= PEERS_PER_ROUND || self.busy.contains_key(&id) {
            return None;
        }
        let (_, conn) = self.conns.get(&id)?;
        let wanted = self.wanted(missing, origin);
        let useful = self.seen.get(&id)?.clone() & wanted.clone();
        if useful.is_empty() {
            return None;
        }
        let conn = conn.clone();
        let (_, ranges) = plan(&wanted, &[(id, useful)], end, 1, origin.pick())
            .into_iter()
            .next()?;
        self.busy.insert(id, ranges.clone());
        Some((conn, ranges))
    }

    /// What is missing and nobody is sending.
    fn wanted(&self, missing: &ChunkRanges, origin: &OriginSlot) -> ChunkRanges {
        let mut wanted = missing.clone();
        for ranges in self
            .busy
            .values()
            .chain(origin.busy.iter().map(|t| &t.ranges))
        {
            wanted -= ranges.clone();
        }
        wanted
    }

    /// Remembers a peer (at most [`MAX_KNOWN`]), with its stripe key for `hash`.
    /// This node and the origins are not in the herd: listed (a static peer, or a tracker
    /// entry that spells this node's id), they would take a charge nobody fetches.
    fn learn(&mut self, hash: &iroh_blobs::Hash, peer: PeerAddr) {
        let Ok(id) = peer.endpoint_id() else {
            return;
        };
        if self.known.len() >= MAX_KNOWN
            || self.outside.contains(&id)
            || self.keys.contains_key(&id)
        {
            return;
        }
        self.keys.insert(id, stripe_key(hash, &id));
        self.known.push(peer);
    }

    /// The stripe keys of the known peers not left.
    fn herd_keys(&self) -> Vec<u64> {
        self.keys
            .iter()
            .filter(|(id, _)| !self.left.contains(*id))
            .map(|(_, key)| *key)
            .collect()
    }

    /// What of `wanted` no peer is known to hold: the origin's to send.
    fn unowned(&self, wanted: &ChunkRanges) -> ChunkRanges {
        let mut unowned = wanted.clone();
        for ranges in self.seen.values() {
            unowned -= ranges.clone();
        }
        unowned
    }

    /// `id` is not asked again in this fetch.
    fn leave(
        &mut self,
        swarm: &Swarm,
        hash: iroh_blobs::Hash,
        report: &mut FetchReport,
        id: EndpointId,
        reason: FallbackReason,
        detail: String,
    ) {
        self.left.insert(id);
        self.seen.remove(&id);
        self.failed(swarm, hash, report, id, reason, detail);
        if let Some((peer, conn)) = self.conns.remove(&id) {
            retire(report, &peer, conn);
        }
    }

    /// A fallback from the connected peer `id`, counted and reported (it rests or leaves).
    fn failed(
        &self,
        swarm: &Swarm,
        hash: iroh_blobs::Hash,
        report: &mut FetchReport,
        id: EndpointId,
        reason: FallbackReason,
        detail: String,
    ) {
        if let Some((peer, _)) = self.conns.get(&id) {
            swarm.metrics.fallback(&hash, reason);
            report.failed(peer, reason, detail);
        }
    }
}

/// Whose transfer ended (the origin's by their number).
enum Who {
    Peer(EndpointId),
    Origin(u64),
    /// The origin's whole-blob transfer of a fetch that was alone, stopped when peers came
    /// (its bytes are counted when it is stopped).
    OriginStopped(u64),
}

/// How much of what it is offered the origin's next transfer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Everything: a fetch alone (nobody connected, nobody left to dial).
    All,
    /// This many random pieces.
    Pieces(usize),
    /// The first this many pieces (the endgame's blocks).
    Front(usize),
}

/// The origin's side of a herd fetch: one transfer in flight, [`ORIGIN_BLOCKS`] in the
/// endgame.
#[derive(Default)]
struct OriginSlot {
    /// The transfers in flight.
    busy: Vec<OriginTransfer>,
    /// The number of the next transfer.
    next: u64,
    /// The pieces of the endgame's next block ([`BLOCK_TIME`]); 0 before the first.
    block: usize,
    /// While nobody else is around the origin sends everything missing in one transfer
    /// (piece by piece, a lone fetch took 2.5-9.5x as long: benches/offload.rs); it is
    /// stopped as soon as a peer is connected. Its stop handle, and the bytes held when it
    /// began.
    lone: Option<(futures::future::AbortHandle, u64)>,
    /// The origin failed a transfer: the origin turn takes the rest.
    failed: bool,
    /// The detour budget is spent: the origin sends from the front, without a break (the
    /// fetch ends within the origin's own time), and peers fill in the last pieces
    /// ([`Pick::Last`]). Before, the peers' transfers were dropped and the origin sent
    /// everything missing, so a node whose peers were slow took most of the blob from it.
    endgame: bool,
}

/// The pieces of the endgame's next block after one brought `bytes` in `took`: what one
/// transfer of the origin moves in [`BLOCK_TIME`] at that pace, 1 to [`MAX_BLOCK_PIECES`].
/// From the rate, not from the block's size: blocks end short (the tail, a piece partly
/// held), and two in flight share the origin's pace.
fn next_block(bytes: u64, took: Duration) -> usize {
    let per_block = bytes as f64 / took.as_secs_f64().max(1e-3) * BLOCK_TIME.as_secs_f64();
    let pieces = (per_block / (PIECE_CHUNKS * 1024) as f64).round();
    (pieces as usize).clamp(1, MAX_BLOCK_PIECES)
}

/// One transfer of the origin in flight.
struct OriginTransfer {
    number: u64,
    ranges: ChunkRanges,
    since: Instant,
}

/// A transfer of the herd, as it ends.
type Transfer<'a> = BoxFuture<'a, (Who, Result<Attempt>)>;

impl OriginSlot {
    /// How peers' pieces are picked now.
    fn pick(&self) -> Pick {
        if self.endgame {
            Pick::Last
        } else {
            Pick::Random
        }
    }

    /// What of `missing` the origin is not sending.
    fn unsent(&self, missing: &ChunkRanges) -> ChunkRanges {
        let mut unsent = missing.clone();
        for transfer in &self.busy {
            unsent -= transfer.ranges.clone();
        }
        unsent
    }

    /// Starts the origin's next transfer of `ranges` (what no peer is known to hold), if
    /// a slot is free: all of them (a lone fetch's one transfer), that many random pieces
    /// of them, or the first pieces.
    #[allow(clippy::too_many_arguments)]
    fn start<'a>(
        &mut self,
        swarm: &'a Swarm,
        blob: &'a BlobRef,
        conn: &Connection,
        ranges: ChunkRanges,
        take: Take,
        held: u64,
        policy: &'a FetchPolicy,
        progress: &'a Progress<'_>,
    ) -> Option<Transfer<'a>> {
        let slots = if self.endgame { ORIGIN_BLOCKS } else { 1 };
        if self.busy.len() >= slots || self.failed || ranges.is_empty() {
            return None;
        }
        let end = chunk_end(blob).0;
        let alone = take == Take::All;
        let ranges = match take {
            Take::All => ranges,
            Take::Pieces(count) | Take::Front(count) => {
                let mut pieces = pieces_of(&ranges, end);
                if matches!(take, Take::Pieces(_)) {
                    pieces.shuffle(&mut rand::rng());
                }
                let mut taken = ChunkRanges::empty();
                for piece in pieces.into_iter().take(count) {
                    taken |= piece_range(piece) & ranges.clone();
                }
                taken
            }
        };
        if ranges.is_empty() {
            return None;
        }
        let number = self.next;
        self.next += 1;
        self.busy.push(OriginTransfer {
            number,
            ranges: ranges.clone(),
            since: Instant::now(),
        });
        let conn = conn.clone();
        let limits = Limits {
            connect: policy.connect_timeout,
            stall: policy.origin_stall_timeout,
            min_rate: None,
            budget: None,
        };
        let hash = blob.hash;
        let (transfer, stop) = futures::future::abortable(async move {
            let request = GetRequest::blob_ranges(hash, ranges);
            swarm
                .attempt(blob, &request, Transport::Shared(conn), &limits, progress)
                .await
        });
        if alone {
            self.lone = Some((stop, held));
        }
        Some(Box::pin(async move {
            match transfer.await {
                Ok(attempt) => (Who::Origin(number), attempt),
                Err(futures::future::Aborted) => (
                    Who::OriginStopped(number),
                    Ok(Attempt {
                        end: End::Complete,
                        bytes: 0,
                        detour: Duration::ZERO,
                        paths: None,
                    }),
                ),
            }
        }))
    }

    /// Settles a transfer that ended, the origin's or a peer's; the peer, when it was a
    /// peer's and it delivered everything asked.
    fn settle(
        &mut self,
        swarm: &Swarm,
        herd: &mut HerdState,
        blob: &BlobRef,
        report: &mut FetchReport,
        who: Who,
        attempt: Attempt,
    ) -> Option<EndpointId> {
        match who {
            Who::Peer(id) => return herd.settle(swarm, blob, report, id, attempt).then_some(id),
            Who::Origin(number) => {
                if let Some(ended) = self.busy.iter().find(|t| t.number == number)
                    && self.endgame
                {
                    self.block = next_block(attempt.bytes, ended.since.elapsed());
                }
                self.busy.retain(|t| t.number != number);
                self.lone = None;
                self.failed |= swarm.settle_origin(blob, report, attempt);
            }
            Who::OriginStopped(number) => self.busy.retain(|t| t.number != number),
        }
        None
    }
}

/// What one survey found: the tracker's answer (when asked), the peers dialed, and what
/// the idle peers hold.
struct Survey {
    found: Option<Vec<PeerAddr>>,
    dialed: Vec<(
        PeerAddr,
        EndpointId,
        std::result::Result<Connection, String>,
    )>,
    observed: Vec<(EndpointId, std::result::Result<ChunkRanges, String>)>,
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

    /// The origin's piece ended: count it; whether it failed (then the origin turn takes
    /// over).
    fn settle_origin(&self, blob: &BlobRef, report: &mut FetchReport, attempt: Attempt) -> bool {
        self.metrics
            .received(&blob.hash, Source::OriginIroh, attempt.bytes);
        report.bytes_from_origin_iroh += attempt.bytes;
        match attempt.end {
            End::Complete => false,
            End::Failed(reason, detail) => {
                warn!(hash = %blob.hex(), ?reason, %detail, "origin failed a piece; the origin turn takes the rest");
                true
            }
        }
    }

    /// Settles a transfer that ended ([`OriginSlot::settle`]); a peer that delivered
    /// everything asked is asked at once for more of what it was last seen holding
    /// ([`HerdState::more_from`]).
    #[allow(clippy::too_many_arguments)]
    async fn settle_herd<'a>(
        &'a self,
        (herd, origin, inflight): (
            &mut HerdState,
            &mut OriginSlot,
            &mut FuturesUnordered<Transfer<'a>>,
        ),
        (who, attempt): (Who, Attempt),
        blob: &'a BlobRef,
        full: &GetRequest,
        report: &mut FetchReport,
        limits: Limits,
        progress: &'a Progress<'_>,
    ) -> Result<()> {
        let Some(id) = origin.settle(self, herd, blob, report, who, attempt) else {
            return Ok(());
        };
        let (_, missing) = self.held_and_missing(blob, full).await?;
        let end = chunk_end(blob).0;
        let more = herd.more_from(id, &missing, origin, end);
        inflight.extend(
            more.map(|(conn, ranges)| self.peer_transfer(blob, id, conn, ranges, limits, progress)),
        );
        Ok(())
    }

    /// The endgame's origin ([`OriginSlot::endgame`]): [`ORIGIN_BLOCKS`] transfers in
    /// flight, each the first pieces nobody is sending ([`BLOCK_TIME`] says how many). Once
    /// only pieces peers are sending are left, and the origin would idle, it races them one
    /// at a time (peers get one at a time in the endgame), so the fetch never waits for a
    /// peer; the copy that arrives second is written over the first, byte for byte.
    #[allow(clippy::too_many_arguments)]
    async fn endgame_blocks<'a>(
        &'a self,
        (herd, origin, inflight): (
            &HerdState,
            &mut OriginSlot,
            &mut FuturesUnordered<Transfer<'a>>,
        ),
        blob: &'a BlobRef,
        full: &GetRequest,
        conn: &Connection,
        policy: &'a FetchPolicy,
        progress: &'a Progress<'_>,
    ) -> Result<()> {
        if !origin.endgame || origin.busy.len() >= ORIGIN_BLOCKS {
            return Ok(());
        }
        let (held, missing) = self.held_and_missing(blob, full).await?;
        while origin.busy.len() < ORIGIN_BLOCKS {
            let mut ask = herd.wanted(&missing, origin);
            let mut take = Take::Front(origin.block.max(1));
            if ask.is_empty() {
                // Only peers' pieces are left: raced one at a time, and only while the
                // origin would idle otherwise.
                if !origin.busy.is_empty() {
                    break;
                }
                ask = origin.unsent(&missing);
                take = Take::Front(1);
            }
            let Some(transfer) = origin.start(self, blob, conn, ask, take, held, policy, progress)
            else {
                break;
            };
            inflight.push(transfer);
        }
        Ok(())
    }

    /// A transfer of `ranges` from the peer `id` on `conn`.
    fn peer_transfer<'a>(
        &'a self,
        blob: &'a BlobRef,
        id: EndpointId,
        conn: Connection,
        ranges: ChunkRanges,
        limits: Limits,
        progress: &'a Progress<'_>,
    ) -> Transfer<'a> {
        Box::pin(async move {
            let request = GetRequest::blob_ranges(blob.hash, ranges);
            let attempt = self
                .attempt(blob, &request, Transport::Shared(conn), &limits, progress)
                .await;
            (Who::Peer(id), attempt)
        })
    }

    /// Known peers this fetch may still dial: not connected, not left, a random choice
    /// within [`MAX_PEERS`] dials. Random, not in the order learned: the nodes that
    /// announced first are in every node's first tracker answer, and dialing in that order
    /// put most of a herd's requests on their uplinks.
    fn to_dial(
        &self,
        hash: iroh_blobs::Hash,
        herd: &HerdState,
        origins: &[PeerAddr],
        report: &mut FetchReport,
    ) -> Vec<(PeerAddr, EndpointId)> {
        let mut dialable: Vec<(PeerAddr, EndpointId)> = self
            .candidates(hash, &herd.known, origins, true, MAX_KNOWN, report)
            .into_iter()
            .filter(|(_, id)| !herd.conns.contains_key(id) && !herd.left.contains(id))
            .map(|(p, id)| (p.clone(), id))
            .collect();
        dialable.shuffle(&mut rand::rng());
        dialable.truncate(MAX_PEERS.saturating_sub(herd.dialed));
        dialable
    }

    /// Asks the tracker (when `refresh`), dials `fresh` together, then asks every peer of
    /// `ask` and every one just dialed which ranges of `hash` it holds, together.
    async fn survey(
        &self,
        tracker: &str,
        hash: iroh_blobs::Hash,
        refresh: bool,
        fresh: Vec<(PeerAddr, EndpointId)>,
        mut ask: Vec<(EndpointId, Connection)>,
        connect: Duration,
    ) -> Survey {
        let found = async {
            if !refresh {
                return None;
            }
            tokio::time::timeout(TRACKER_WITHIN, self.providers(tracker, &hash))
                .await
                .ok()
                .and_then(|r| r.ok())
        };
        let dialing = async {
            let mut dials: Vec<_> = fresh.iter().map(|(p, _)| self.dial(p, connect)).collect();
            let results = join_all(dials.iter_mut().map(|d| &mut d.0)).await;
            fresh
                .into_iter()
                .zip(results)
                .map(|((peer, id), r)| (peer, id, r.map_err(|e| e.to_string()).and_then(|r| r)))
                .collect::<Vec<_>>()
        };
        let (found, dialed) = tokio::join!(found, dialing);
        ask.extend(
            dialed
                .iter()
                .filter_map(|(_, id, r)| r.as_ref().ok().map(|conn| (*id, conn.clone()))),
        );
        let observed = join_all(
            ask.iter()
                .map(|(id, conn)| async move { (*id, self.observe_ranges(conn, hash).await) }),
        )
        .await;
        Survey {
            found,
            dialed,
            observed,
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
        let end = chunk_end(blob).0;
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
        let mut herd = HerdState {
            outside: origins
                .iter()
                .chain([origin])
                .filter_map(|o| o.endpoint_id().ok())
                .chain([self.endpoint_id()])
                .collect(),
            ..HerdState::default()
        };
        for peer in static_peers {
            herd.learn(&hash, peer.clone());
        }
        let my_key = stripe_key(&hash, &self.endpoint_id());
        // Since when no peer transfer has been in flight.
        let mut idle_since = Some(Instant::now());
        let mut refreshed: Option<Instant> = None;
        // For the log at the end: passes, tracker queries, peers asked what they hold.
        let (mut passes, mut queries, mut asked) = (0u64, 0u64, 0u64);
        // Transfers in flight; they keep moving while the next survey runs.
        let mut inflight: FuturesUnordered<Transfer<'_>> = FuturesUnordered::new();
        // The origin's transfers in flight.
        let mut origin = OriginSlot::default();
        // Time with only peers at work (no origin piece running), charged beyond what
        // their bytes justify at the minimum rate. Counted per pass, by whether the origin
        // is busy when the pass begins: an interval that ends with an origin piece running
        // is not charged, one that ends without is charged whole. Charging exactly the time
        // with nothing of the origin's in flight (surveys hold it back) ran out 17 budgets
        // of a 40-node herd on two cores and cost the origin 13.4 and 5.9 blobs in two runs
        // (docs/fleet.md); what the bound should count there is still open.
        let mut peer_clock = Duration::ZERO;
        let mut charged = Duration::ZERO;
        let mut clock = Instant::now();
        let min_rate = policy.min_rate_bytes_per_sec;
        let share = (min_rate / PEERS_PER_ROUND as u64).max(1);
        let connect = policy.connect_timeout.min(policy.detour_budget);
        let peer_limits = || Limits {
            connect,
            stall: policy.stall_timeout,
            min_rate: Some(share),
            budget: Some(policy.detour_budget),
        };
        while let Some(origin_conn) = &origin_conn {
            if origin.failed {
                break;
            }
            passes += 1;
            // The origin's time is not detour.
            if origin.busy.is_empty() {
                peer_clock += clock.elapsed();
            }
            clock = Instant::now();
            let detour = detour_of(peer_clock, herd.peer_bytes, Some(min_rate));
            if detour > charged {
                report.detour += detour - charged;
                self.metrics.detour(detour - charged);
                charged = detour;
            }
            if charged >= policy.detour_budget && !origin.endgame {
                debug!(hash = %blob.hex(), "detour budget spent: the origin sends the rest from the front, peers fill in the last pieces");
                origin.endgame = true;
            }
            let (held, missing) = self.held_and_missing(blob, &full).await?;
            progress.report(held);
            if missing.is_empty() {
                break;
            }
            let state = (&herd, &mut origin, &mut inflight);
            self.endgame_blocks(state, blob, &full, origin_conn, policy, progress)
                .await?;
            // Survey: the tracker when due, new peers dialed together, the idle ones asked
            // what they hold; transfers in flight are settled as they end meanwhile.
            let refresh = refreshed.is_none_or(|t| t.elapsed() >= REFRESH);
            if refresh {
                refreshed = Some(Instant::now());
                queries += 1;
            }
            let fresh = self.to_dial(hash, &herd, origins, report);
            herd.dialed += fresh.len();
            let now = Instant::now();
            let mut idle: Vec<(EndpointId, Connection)> = herd
                .conns
                .iter()
                .filter(|(id, _)| herd.askable(id, now))
                .map(|(id, (_, conn))| (*id, conn.clone()))
                .collect();
            idle.shuffle(&mut rand::rng());
            idle.truncate(ASKED_PER_SURVEY);
            asked += (idle.len() + fresh.len()) as u64;
            let survey = self.survey(tracker, hash, refresh, fresh, idle, connect);
            tokio::pin!(survey);
            // Transfers in flight are settled as they end meanwhile; no new origin piece goes
            // out while the survey runs. A herd's surveys take seconds on a busy machine, and
            // an origin kept busy through them sends what the herd's peers would have
            // (measured: 9.3x the blob for ten nodes on loopback instead of 1.35x; 4.1x with
            // that only after 2 s of survey). The price: a peer that left but is still
            // listed holds a fetch for one connect timeout, once.
            let survey = loop {
                tokio::select! {
                    survey = &mut survey => break survey,
                    Some((who, attempt)) = inflight.next() => {
                        let (done, limits) = ((who, attempt?), peer_limits());
                        let state = (&mut herd, &mut origin, &mut inflight);
                        self.settle_herd(state, done, blob, &full, report, limits, progress).await?;
                        // A survey holds no block of the endgame: its origin never idles.
                        let state = (&herd, &mut origin, &mut inflight);
                        self.endgame_blocks(state, blob, &full, origin_conn, policy, progress).await?;
                    }
                }
            };
            for p in survey.found.into_iter().flatten() {
                herd.learn(&hash, p);
            }
            for (peer, id, result) in survey.dialed {
                match result {
                    Ok(conn) => {
                        self.backoff_lock().succeeded(&id);
                        herd.conns.insert(id, (peer, conn));
                    }
                    Err(detail) => {
                        self.backoff_lock().failed(id, Instant::now());
                        self.metrics.fallback(&hash, FallbackReason::PeerConnect);
                        self.report_unreachable(&hash, &id);
                        report.failed(&peer, FallbackReason::PeerConnect, detail);
                        herd.left.insert(id);
                    }
                }
            }
            if !herd.conns.is_empty()
                && let Some((stop, held_then)) = origin.lone.take()
            {
                stop.abort();
                // Nothing else was in flight since it began: what arrived came from it.
                let (held_now, _) = self.held_and_missing(blob, &full).await?;
                let bytes = held_now.saturating_sub(held_then);
                self.metrics.received(&blob.hash, Source::OriginIroh, bytes);
                report.bytes_from_origin_iroh += bytes;
                debug!(hash = %blob.hex(), bytes, "peers came: the origin's whole transfer stops");
            }
            // What arrived during the survey is not missing any more.
            let (held, missing) = self.held_and_missing(blob, &full).await?;
            if missing.is_empty() {
                break;
            }
            let wanted = herd.wanted(&missing, &origin);
            let mut holders = Vec::new();
            for (id, answer) in survey.observed {
                match answer {
                    Ok(ranges) => {
                        // It may have begun to rest while the survey ran.
                        if herd.resting(&id, Instant::now()) {
                            continue;
                        }
                        herd.seen.insert(id, ranges.clone() & missing.clone());
                        let useful = ranges & wanted.clone();
                        if !useful.is_empty() && !herd.busy.contains_key(&id) {
                            holders.push((id, useful));
                        }
                    }
                    Err(detail) => {
                        herd.leave(self, hash, report, id, FallbackReason::PeerError, detail)
                    }
                }
            }
            let slots = PEERS_PER_ROUND.saturating_sub(herd.busy.len());
            for (id, ranges) in plan(&wanted, &holders, end, slots, origin.pick()) {
                let Some((_, conn)) = herd.conns.get(&id) else {
                    continue;
                };
                let conn = conn.clone();
                herd.busy.insert(id, ranges.clone());
                inflight.push(self.peer_transfer(blob, id, conn, ranges, peer_limits(), progress));
            }
            // What no peer is known to hold comes from the origin: the pieces this node is
            // in charge of, or any of them once no peer has had anything to send it for
            // `IDLE_GRACE`; with nobody connected and nobody left to dial, all of it in one
            // transfer.
            if !herd.busy.is_empty() {
                idle_since = None;
            } else if idle_since.is_none() {
                idle_since = Some(Instant::now());
            }
            let unowned = herd.unowned(&herd.wanted(&missing, &origin));
            let connected = !herd.conns.is_empty();
            let alone = !connected && self.to_dial(hash, &herd, origins, report).is_empty();
            if origin.endgame && alone && herd.busy.is_empty() {
                // Nobody left to help: the origin turn sends the rest in one transfer (in
                // blocks a lone fetch was 2.5-9.5x slower).
                break;
            }
            // Weighing every piece against every known key is not needed alone, nor once
            // the origin sends from the front.
            let mine = if alone || origin.endgame {
                ChunkRanges::empty()
            } else {
                in_charge(&unowned, end, my_key, &herd.herd_keys())
            };
            let idle = idle_since.is_some_and(|t| t.elapsed() >= IDLE_GRACE);
            // What others are in charge of waits out the grace, a pass at a time.
            let waiting =
                !origin.endgame && !alone && !idle && mine.is_empty() && !unowned.is_empty();
            let (ask, take) = if origin.endgame {
                // Its blocks are on their way (before the survey, and as transfers end).
                (ChunkRanges::empty(), Take::Pieces(0))
            } else if alone {
                (unowned, Take::All)
            } else if !mine.is_empty() {
                (mine, Take::Pieces(PIECES_PER_PEER))
            } else if idle {
                // A random piece, so the idle nodes of a herd take different ones (a few
                // while no peer is connected).
                (
                    unowned,
                    Take::Pieces(if connected { 1 } else { PIECES_PER_PEER }),
                )
            } else {
                (ChunkRanges::empty(), Take::Pieces(0))
            };
            inflight.extend(origin.start(
                self,
                blob,
                origin_conn,
                ask,
                take,
                held,
                policy,
                progress,
            ));
            if inflight.is_empty() && !waiting {
                // Nothing to ask of anyone (cannot happen while something is missing: what
                // no idle peer holds is unowned); the origin turn takes the rest.
                break;
            }
            // Wait for a transfer to end, or a moment for peers to hold more, and look again.
            tokio::select! {
                Some((who, attempt)) = inflight.next() => {
                    let (done, limits) = ((who, attempt?), peer_limits());
                    let state = (&mut herd, &mut origin, &mut inflight);
                    self.settle_herd(state, done, blob, &full, report, limits, progress).await?;
                    let state = (&herd, &mut origin, &mut inflight);
                    self.endgame_blocks(state, blob, &full, origin_conn, policy, progress).await?;
                }
                _ = tokio::time::sleep(RESURVEY) => {}
            }
        }
        debug!(hash = %blob.hex(), passes, queries, asked, "herd rounds ended");
        // Dropping a transfer cancels it; what verified stays in the store.
        drop(inflight);
        for (_, (peer, conn)) in herd.conns {
            retire(report, &peer, conn);
        }
        if let Some(conn) = origin_conn {
            conn.close(0u32.into(), b"done");
        }
        self.origin_turn(blob, &full, origins, http, policy, progress, report)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: usize) -> Vec<EndpointId> {
        (0..count)
            .map(|_| iroh::SecretKey::generate().public())
            .collect()
    }

    /// A tracker's entry for `id`, with no address.
    fn listed(id: &EndpointId) -> PeerAddr {
        PeerAddr {
            id: id.to_string(),
            addrs: vec![],
            relay_url: None,
        }
    }

    /// The endgame's blocks follow the origin's pace: about a second of one transfer's
    /// bytes, within 1 and 16 pieces.
    #[test]
    fn the_endgames_blocks_follow_the_origins_pace() {
        let piece = PIECE_CHUNKS * 1024;
        let ms = Duration::from_millis;
        assert_eq!(next_block(piece, ms(100)), 10);
        assert_eq!(next_block(8 * piece, ms(1000)), 8);
        assert_eq!(next_block(16 * piece, ms(500)), 16);
        assert_eq!(next_block(piece, ms(2000)), 1);
        assert_eq!(next_block(0, ms(0)), 1);
        // A short block at a good pace: what its rate says, not its size.
        assert_eq!(next_block(piece / 4, ms(50)), 5);
    }

    /// Once the budget is spent, peers are asked for the last pieces they hold, one each,
    /// never two peers for one piece; before, up to four random ones each.
    #[test]
    fn a_spent_budget_asks_peers_for_the_last_pieces_one_each() {
        let end = 40 * PIECE_CHUNKS;
        let missing = ChunkRanges::from(ChunkNum(0)..ChunkNum(end - 100));
        let peers = ids(3);
        let everything = ChunkRanges::from(ChunkNum(0)..ChunkNum(end));
        let front = ChunkRanges::from(ChunkNum(0)..ChunkNum(20 * PIECE_CHUNKS));
        let held = vec![
            (peers[0], everything.clone()),
            (peers[1], everything),
            (peers[2], front),
        ];
        let asked = plan(&missing, &held, end, 4, Pick::Last);
        let mut pieces: Vec<u64> = asked
            .iter()
            .flat_map(|(_, ranges)| pieces_of(ranges, end))
            .collect();
        assert_eq!(asked.len(), 3, "{asked:?}");
        assert!(asked.iter().all(|(_, r)| pieces_of(r, end).len() == 1));
        pieces.sort_unstable();
        // The two that hold everything share the last two pieces (the last one cut short
        // where `missing` ends); the third holds only the front and gets its last.
        assert_eq!(pieces, vec![19, 38, 39]);
        let last = asked
            .iter()
            .find(|(_, r)| pieces_of(r, end) == [39])
            .unwrap();
        assert_eq!(
            last.1,
            ChunkRanges::from(ChunkNum(39 * PIECE_CHUNKS)..ChunkNum(end - 100))
        );
        let random = plan(&missing, &held, end, 4, Pick::Random);
        assert!(
            random
                .iter()
                .all(|(_, r)| pieces_of(r, end).len() == PIECES_PER_PEER)
        );
    }

    /// With the whole herd known to every node, each piece is in exactly one node's charge,
    /// and the charges are about even.
    #[test]
    fn a_herd_splits_the_blob_between_its_nodes() {
        let hash = iroh_blobs::Hash::new(b"a blob");
        let end = 64 * 1024; // 64 MiB in 1 KiB chunks: 256 pieces
        // Fragmented, as a herd's missing ranges are: pieces cut in two and holes.
        let all = ChunkRanges::from(ChunkNum(0)..ChunkNum(end))
            - ChunkRanges::from(ChunkNum(1000)..ChunkNum(1100))
            - ChunkRanges::from(ChunkNum(5000)..ChunkNum(9000))
            - ChunkRanges::from(ChunkNum(30_000)..ChunkNum(30_001));
        let herd = ids(10);
        let keys: Vec<u64> = herd.iter().map(|id| stripe_key(&hash, id)).collect();
        let charges: Vec<ChunkRanges> = (0..herd.len())
            .map(|i| {
                let others: Vec<u64> = (0..keys.len())
                    .filter(|&j| j != i)
                    .map(|j| keys[j])
                    .collect();
                in_charge(&all, end, keys[i], &others)
            })
            .collect();
        let mut union = ChunkRanges::empty();
        for (i, charge) in charges.iter().enumerate() {
            assert!(
                (union.clone() & charge.clone()).is_empty(),
                "node {i}'s charge overlaps another's"
            );
            union |= charge.clone();
            let pieces = pieces_of(charge, end).len();
            // 25.6 pieces each on average; a binomial draw stays well within 8..=50.
            assert!(
                (8..=50).contains(&pieces),
                "node {i} is in charge of {pieces} pieces"
            );
        }
        assert_eq!(union, all, "some piece is nobody's charge");
    }

    /// A node that knows nobody is in charge of everything; one whose peers left takes
    /// their pieces back; and the charge is only ever within what it was offered.
    #[test]
    fn a_node_alone_or_left_alone_is_in_charge_of_everything_offered() {
        let hash = iroh_blobs::Hash::new(b"another blob");
        // 234 pieces offered: with 12 (a 4 MiB blob) this node, against 3 random keys,
        // was in charge of none in 3% of runs, and the test failed so.
        let end = 64 * 1024;
        let offered = ChunkRanges::from(ChunkNum(100)..ChunkNum(60_000));
        let me = stripe_key(&hash, &ids(1)[0]);
        assert_eq!(in_charge(&offered, end, me, &[]), offered);

        let mut herd = HerdState::default();
        let peers = ids(3);
        for id in &peers {
            herd.learn(&hash, listed(id));
        }
        // Neither this node nor an origin is learned as a member of the herd.
        let (my_id, origin_id) = (ids(1)[0], ids(1)[0]);
        herd.outside.extend([my_id, origin_id]);
        for id in [my_id, origin_id] {
            herd.learn(&hash, listed(&id));
        }
        assert_eq!(herd.herd_keys().len(), 3);
        let shared = in_charge(&offered, end, me, &herd.herd_keys());
        assert!(shared != offered && !shared.is_empty(), "{shared:?}");
        assert!((shared.clone() - offered.clone()).is_empty());
        herd.left.extend(peers.iter().copied());
        assert_eq!(in_charge(&offered, end, me, &herd.herd_keys()), offered);
    }

    /// A peer with a slow transfer rests: it keeps its place in the split, what it was seen
    /// holding is forgotten, it is not asked until the rest is over; the third time it
    /// does not rest (the caller leaves it).
    #[test]
    fn a_slow_peer_rests_in_the_split_and_the_third_time_does_not() {
        let hash = iroh_blobs::Hash::new(b"a third blob");
        let mut herd = HerdState::default();
        let id = ids(1)[0];
        herd.learn(&hash, listed(&id));
        let start = Instant::now();
        for time in 1..SLOW_TIMES_LEAVES {
            let now = start + (REST + REST) * time;
            herd.seen.insert(id, ChunkRanges::all());
            assert!(herd.rest(id, now), "slow time {time}");
            assert!(!herd.seen.contains_key(&id));
            assert_eq!(herd.herd_keys(), vec![stripe_key(&hash, &id)]);
            assert!(!herd.askable(&id, now + REST / 2));
            assert!(herd.askable(&id, now + REST));
        }
        let now = start + (REST + REST) * SLOW_TIMES_LEAVES;
        assert!(!herd.rest(id, now), "left at the last slow time");
    }
}
