//! Who is asked, and in what order: peers that lied about a hash are struck (never asked
//! for it again, and not at all past [`STRIKES_TO_BAN`]), peers that could not be reached
//! rest under a backoff, and the candidates left are dialed at once in the background.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tracing::debug;

use iroh::EndpointId;
use iroh::endpoint::Connection;
use iroh_blobs::Hash;
use serde::Serialize;

use super::FetchReport;
use crate::{PeerAddr, Swarm};

/// A peer was caught sending bytes that do not verify against a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Strike {
    /// The blob (hex) the peer lied about; it is never asked for it again.
    pub hash: String,
    /// The peer's endpoint id.
    pub peer: String,
    pub detail: String,
}

/// A peer with this many strikes (over any hashes) is not asked for anything any more.
pub const STRIKES_TO_BAN: usize = 3;
/// Strikes remembered; the oldest is forgotten past this.
const MAX_STRIKES: usize = 10_000;

/// Which peers lied about which hash.
#[derive(Debug, Default)]
pub(crate) struct StrikeTable {
    order: VecDeque<(Hash, EndpointId, String)>,
    by_pair: HashSet<(Hash, EndpointId)>,
    per_peer: HashMap<EndpointId, usize>,
}

impl StrikeTable {
    pub(crate) fn add(&mut self, hash: Hash, peer: EndpointId, detail: String) {
        if !self.by_pair.insert((hash, peer)) {
            return;
        }
        *self.per_peer.entry(peer).or_default() += 1;
        self.order.push_back((hash, peer, detail));
        if self.order.len() > MAX_STRIKES
            && let Some((h, p, _)) = self.order.pop_front()
        {
            self.by_pair.remove(&(h, p));
            if let Some(n) = self.per_peer.get_mut(&p) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_peer.remove(&p);
                }
            }
        }
    }

    pub(crate) fn excludes(&self, hash: &Hash, peer: &EndpointId) -> bool {
        self.by_pair.contains(&(*hash, *peer))
            || self.per_peer.get(peer).copied().unwrap_or(0) >= STRIKES_TO_BAN
    }

    pub(crate) fn list(&self) -> Vec<Strike> {
        self.order
            .iter()
            .map(|(h, p, d)| Strike {
                hash: h.to_hex().to_string(),
                peer: p.to_string(),
                detail: d.clone(),
            })
            .collect()
    }
}

/// What a dial of a peer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// It accepted the connection.
    Answered,
    /// Nothing answered within the deadline.
    NoAnswer,
    /// The dial failed on this side (no usable address or route, no relay, endpoint
    /// closing): it says nothing of the peer.
    Failed,
}

/// Peers that could not be reached, by endpoint id: not tried again until their backoff
/// ends (from `min`, doubling per consecutive failure, up to `max`); reaching one clears it.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    peers: HashMap<EndpointId, (u32, Instant)>,
}

/// Peers remembered in the backoff table; expired entries go first past this.
const MAX_BACKOFF_PEERS: usize = 10_000;

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            peers: HashMap::new(),
        }
    }

    /// How long `peer` is still left alone (`None`: it may be tried).
    pub(crate) fn remaining(&self, peer: &EndpointId, now: Instant) -> Option<Duration> {
        self.peers
            .get(peer)
            .and_then(|(_, until)| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// `peer` could not be reached: returns how long it is now left alone.
    pub(crate) fn failed(&mut self, peer: EndpointId, now: Instant) -> Duration {
        if self.peers.len() >= MAX_BACKOFF_PEERS {
            self.peers.retain(|_, (_, until)| *until > now);
            if self.peers.len() >= MAX_BACKOFF_PEERS {
                // Still full: forget the one whose backoff ends first.
                if let Some(first) = self.peers.iter().min_by_key(|(_, e)| e.1).map(|(k, _)| *k) {
                    self.peers.remove(&first);
                }
            }
        }
        let entry = self.peers.entry(peer).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        let delay = self
            .min
            .saturating_mul(1u32 << (entry.0 - 1).min(16))
            .min(self.max);
        entry.1 = now + delay;
        delay
    }

    /// `peer` answered: it is tried like any other again.
    pub(crate) fn succeeded(&mut self, peer: &EndpointId) {
        self.peers.remove(peer);
    }
}

/// A connection attempt running in the background; dropping it cancels the attempt.
pub(super) struct Dial(pub(super) tokio::task::JoinHandle<std::result::Result<Connection, String>>);

impl Drop for Dial {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Swarm {
    /// The peers to try for `hash`, in order: not an origin, not this node, each once, none
    /// struck for it, at most `max`. Peers that could not be reached lately are left alone
    /// while their backoff runs (listed in `report`); without an origin they are all there
    /// is, so they come last instead.
    pub(super) fn candidates<'p>(
        &self,
        hash: Hash,
        peers: &'p [PeerAddr],
        origins: &[PeerAddr],
        has_origin: bool,
        max: usize,
        report: &mut FetchReport,
    ) -> Vec<(&'p PeerAddr, EndpointId)> {
        let me = self.endpoint_id();
        // By parsed id: one id can be spelled more than one way.
        let origin_ids: HashSet<EndpointId> = origins
            .iter()
            .filter_map(|o| o.endpoint_id().ok())
            .collect();
        let mut seen = HashSet::new();
        let now = Instant::now();
        let eligible: Vec<(&PeerAddr, EndpointId)> = peers
            .iter()
            .filter_map(|p| p.endpoint_id().ok().map(|id| (p, id)))
            .filter(|(_, id)| *id != me && !origin_ids.contains(id) && seen.insert(*id))
            .filter(|(_, id)| !self.strikes_lock().excludes(&hash, id))
            .collect();
        // Peers that could not be reached lately are left alone while their backoff runs;
        // without an origin they are all there is, so they come last instead.
        let (mut candidates, resting): (Vec<_>, Vec<_>) = eligible
            .into_iter()
            .partition(|(_, id)| self.backoff_lock().remaining(id, now).is_none());
        report.skipped_backoff = resting.iter().map(|(p, _)| p.id.clone()).collect();
        if !has_origin {
            candidates.extend(resting);
            report.skipped_backoff.clear();
        }
        candidates.truncate(max);
        candidates
    }

    /// Starts connecting to `peer` in the background, for at most `timeout`.
    pub(super) fn dial(&self, peer: &PeerAddr, timeout: Duration) -> Dial {
        let endpoint = self.router.endpoint().clone();
        let addr = peer.to_endpoint_addr();
        if let Ok(addr) = &addr
            && !peer.addrs.is_empty()
        {
            self.addrs.remember(addr.clone());
        }
        Dial(tokio::spawn(async move {
            let addr = addr.map_err(|e| e.to_string())?;
            match tokio::time::timeout(timeout, endpoint.connect(addr, iroh_blobs::ALPN)).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no connection within {timeout:?}")),
            }
        }))
    }

    /// Whether `peer` accepts a connection within `within` (then closed at once), dialed
    /// at the addresses given and nothing else learned of it (nothing is added to the
    /// address lookup): the tracker's check of a peer reported unreachable.
    pub(crate) async fn reachable(&self, peer: &PeerAddr, within: Duration) -> Reach {
        let Ok(addr) = peer.to_endpoint_addr() else {
            return Reach::Failed;
        };
        let endpoint = self.router.endpoint();
        match tokio::time::timeout(within, endpoint.connect(addr, iroh_blobs::ALPN)).await {
            Ok(Ok(conn)) => {
                conn.close(0u32.into(), b"probe");
                Reach::Answered
            }
            Ok(Err(e)) => {
                debug!(peer = %peer.id, error = %e, "probe failed before anyone answered");
                Reach::Failed
            }
            Err(_) => Reach::NoAnswer,
        }
    }

    pub(super) fn backoff_lock(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `peer` is still left alone after failing to connect (`None`: it is tried).
    pub fn peer_backoff(&self, peer: &EndpointId) -> Option<Duration> {
        self.backoff_lock().remaining(peer, Instant::now())
    }

    pub(super) fn strikes_lock(&self) -> std::sync::MutexGuard<'_, StrikeTable> {
        self.strikes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every strike given so far (peers caught sending bytes that do not verify).
    pub fn strikes(&self) -> Vec<Strike> {
        self.strikes_lock().list()
    }

    /// Whether `peer` is no longer asked for `hash` (a strike for it, or too many overall).
    pub fn is_struck(&self, hash: &Hash, peer: &EndpointId) -> bool {
        self.strikes_lock().excludes(hash, peer)
    }
}
