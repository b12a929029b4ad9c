//! What the swarm moved and why it detoured (DESIGN "Observable"): bytes by source, fallbacks
//! by reason, verification failures and strikes, in total and per hash.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use iroh_blobs::Hash;
use serde::{Deserialize, Serialize};

/// Why a fetch left a provider for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FallbackReason {
    /// The peer could not be reached within the connect deadline.
    PeerConnect,
    /// The peer sent nothing for the stall deadline.
    PeerStall,
    /// The peer fell too far behind the minimum rate.
    PeerSlow,
    /// The peer sent bytes that did not verify against the hash (it gets a strike).
    PeerBadData,
    /// The peer does not hold the blob (or not all of it).
    PeerMissing,
    /// The connection or stream to the peer failed mid-transfer.
    PeerError,
    /// The origin could not deliver over iroh; its HTTP was tried next.
    OriginIrohFailed,
}

/// Fallbacks counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FallbackCounts {
    pub peer_connect: u64,
    pub peer_stall: u64,
    pub peer_slow: u64,
    pub peer_bad_data: u64,
    pub peer_missing: u64,
    pub peer_error: u64,
    pub origin_iroh_failed: u64,
}

impl FallbackCounts {
    fn add(&mut self, reason: FallbackReason) {
        let slot = match reason {
            FallbackReason::PeerConnect => &mut self.peer_connect,
            FallbackReason::PeerStall => &mut self.peer_stall,
            FallbackReason::PeerSlow => &mut self.peer_slow,
            FallbackReason::PeerBadData => &mut self.peer_bad_data,
            FallbackReason::PeerMissing => &mut self.peer_missing,
            FallbackReason::PeerError => &mut self.peer_error,
            FallbackReason::OriginIrohFailed => &mut self.origin_iroh_failed,
        };
        *slot += 1;
    }
}

/// The counters kept for one hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HashMetrics {
    /// Verified payload bytes received from the origin over iroh.
    pub bytes_from_origin_iroh: u64,
    /// Verified bytes received from the origin over HTTP.
    pub bytes_from_origin_http: u64,
    /// Verified payload bytes received from peers (never the origin) over iroh.
    pub bytes_from_peers: u64,
    /// Payload bytes this node served to others over iroh.
    pub bytes_served_iroh: u64,
    /// Bytes this node served over its HTTP blob route.
    pub bytes_served_http: u64,
    pub fallbacks: FallbackCounts,
    pub verification_failures: u64,
    pub strikes: u64,
}

/// Totals since start, and the same per hash, for the node's status. Serialized as JSON by
/// the node: the first four fields keep their historical names and meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwarmMetrics {
    /// Verified payload bytes received over iroh, from the origin and from peers.
    pub bytes_from_iroh: u64,
    /// Verified bytes received over HTTP (always from the origin).
    pub bytes_from_http: u64,
    /// Fetches that fell back from iroh to the origin's HTTP.
    pub http_fallbacks: u64,
    /// Downloads or ranges refused because their bytes did not match the hash or size.
    pub verification_failures: u64,
    pub bytes_from_origin_iroh: u64,
    pub bytes_from_peers: u64,
    pub bytes_served_iroh: u64,
    pub bytes_served_http: u64,
    pub fallbacks: FallbackCounts,
    /// Strikes given to peers for bad data.
    pub strikes: u64,
    /// Fetches that waited for a concurrent fetch of the same hash instead of downloading.
    pub coalesced_fetches: u64,
    /// Time charged to detour budgets (failed peer attempts and fallback jitter).
    pub detour_ms: u64,
    /// The same counters per hash (hex), for the most recently active hashes.
    pub per_hash: BTreeMap<String, HashMetrics>,
}

/// Where verified bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    OriginIroh,
    OriginHttp,
    Peer,
}

/// Hashes tracked individually; the least recently touched is forgotten past this (its
/// bytes stay in the totals).
const MAX_TRACKED_HASHES: usize = 4096;

#[derive(Debug, Default)]
struct State {
    total: HashMetrics,
    http_fallbacks: u64,
    coalesced: u64,
    detour: Duration,
    per_hash: HashMap<Hash, (u64, HashMetrics)>,
    clock: u64,
}

impl State {
    fn entry(&mut self, hash: &Hash) -> &mut HashMetrics {
        self.clock += 1;
        let now = self.clock;
        if !self.per_hash.contains_key(hash) && self.per_hash.len() >= MAX_TRACKED_HASHES {
            let oldest = self
                .per_hash
                .iter()
                .min_by_key(|(_, (touched, _))| *touched)
                .map(|(h, _)| *h);
            if let Some(oldest) = oldest {
                self.per_hash.remove(&oldest);
            }
        }
        let slot = self.per_hash.entry(*hash).or_default();
        slot.0 = now;
        &mut slot.1
    }

    /// Applies `f` to the totals and to the hash's counters.
    fn both(&mut self, hash: &Hash, f: impl Fn(&mut HashMetrics)) {
        f(&mut self.total);
        f(self.entry(hash));
    }
}

/// The live counters behind [`SwarmMetrics`]. Updated once per attempt or served request,
/// never per chunk, so one lock is cheap enough.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    pub(crate) fn received(&self, hash: &Hash, source: Source, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.with(|s| {
            s.both(hash, |m| match source {
                Source::OriginIroh => m.bytes_from_origin_iroh += bytes,
                Source::OriginHttp => m.bytes_from_origin_http += bytes,
                Source::Peer => m.bytes_from_peers += bytes,
            })
        });
    }

    pub(crate) fn served_iroh(&self, hash: &Hash, bytes: u64) {
        if bytes > 0 {
            self.with(|s| s.both(hash, |m| m.bytes_served_iroh += bytes));
        }
    }

    pub(crate) fn served_http(&self, hash: &Hash, bytes: u64) {
        if bytes > 0 {
            self.with(|s| s.both(hash, |m| m.bytes_served_http += bytes));
        }
    }

    pub(crate) fn fallback(&self, hash: &Hash, reason: FallbackReason) {
        self.with(|s| {
            if reason == FallbackReason::OriginIrohFailed {
                s.http_fallbacks += 1;
            }
            s.both(hash, |m| m.fallbacks.add(reason))
        });
    }

    pub(crate) fn verification_failure(&self, hash: &Hash) {
        self.with(|s| s.both(hash, |m| m.verification_failures += 1));
    }

    pub(crate) fn strike(&self, hash: &Hash) {
        self.with(|s| s.both(hash, |m| m.strikes += 1));
    }

    pub(crate) fn coalesced(&self) {
        self.with(|s| s.coalesced += 1);
    }

    pub(crate) fn detour(&self, spent: Duration) {
        self.with(|s| s.detour += spent);
    }

    pub(crate) fn snapshot(&self) -> SwarmMetrics {
        self.with(|s| {
            let t = &s.total;
            SwarmMetrics {
                bytes_from_iroh: t.bytes_from_origin_iroh + t.bytes_from_peers,
                bytes_from_http: t.bytes_from_origin_http,
                http_fallbacks: s.http_fallbacks,
                verification_failures: t.verification_failures,
                bytes_from_origin_iroh: t.bytes_from_origin_iroh,
                bytes_from_peers: t.bytes_from_peers,
                bytes_served_iroh: t.bytes_served_iroh,
                bytes_served_http: t.bytes_served_http,
                fallbacks: t.fallbacks.clone(),
                strikes: t.strikes,
                coalesced_fetches: s.coalesced,
                detour_ms: s.detour.as_millis() as u64,
                per_hash: s
                    .per_hash
                    .iter()
                    .map(|(h, (_, m))| (h.to_hex().to_string(), m.clone()))
                    .collect(),
            }
        })
    }
}
