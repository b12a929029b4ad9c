//! The fetch policy, "origin always wins" (DESIGN, Swarm 2, 3 and 5).
//!
//! Peers are tried first, one after the other, each under connect, stall and minimum-rate
//! deadlines. Every verified chunk a peer delivers is kept, so whoever comes next is asked
//! only for the missing ranges. A peer that sends bytes that do not verify gets a strike
//! and is not asked for that hash again. Time lost to peers (failed attempts, time behind
//! the minimum rate, the fallback jitter) is charged to a detour budget; when it is spent
//! the origin takes over, over iroh and then over HTTP. So a fetch the origin alone could
//! finish takes at most the origin-only time plus the budget, as long as peers that count
//! as productive move bytes at least as fast as the origin would (`min_rate_bytes_per_sec`
//! is that bar: bytes a peer delivers at that rate are progress, not detour).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bao_tree::{ChunkNum, ChunkRanges};
use futures::StreamExt;
use futures::stream::BoxStream;
use iroh::EndpointId;
use iroh::endpoint::Connection;
use iroh_blobs::Hash;
use iroh_blobs::api::blobs::BlobStatus;
use iroh_blobs::api::remote::GetProgressItem;
use iroh_blobs::get::GetError;
use iroh_blobs::get::fsm::{AtBlobHeaderNextError, DecodeError};
use iroh_blobs::protocol::GetRequest;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::metrics::{FallbackReason, Source};
use crate::{BlobRef, ByteSink, Error, PeerAddr, Result, Swarm, fetched_tag};

/// Who may serve a blob. The origin is always eligible; peers are tried first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Providers {
    /// The origin's iroh endpoint (from the signed catalog and `/v1/swarm/addr`).
    pub origin: Option<PeerAddr>,
    /// The origin's HTTP base URL, the last resort (`{base}/v1/blobs/{hash}`).
    pub origin_http: Option<String>,
    /// Other nodes that may hold the blob (static config, the tracker, local discovery),
    /// tried in this order. They are never trusted: every byte is verified.
    pub peers: Vec<PeerAddr>,
}

/// Deadlines and budgets of one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// How long connecting to one provider may take.
    pub connect_timeout: Duration,
    /// How long a peer may send nothing before it is dropped.
    pub stall_timeout: Duration,
    /// A peer that falls more than `stall_timeout` behind this rate is dropped as slow.
    /// Bytes delivered at this rate count as progress; time beyond it counts as detour.
    /// 0 means every moment spent on peers counts as detour.
    pub min_rate_bytes_per_sec: u64,
    /// Total time peers may cost (failed attempts, time behind the minimum rate, jitter)
    /// before the origin takes over. Applies only when an origin is given.
    pub detour_budget: Duration,
    /// Up to this much random delay before falling back to the origin after peers failed,
    /// so a fleet that loses its peers at once does not hit the origin at once. Charged to
    /// the detour budget, so it never exceeds what is left of it.
    pub fallback_jitter: Duration,
    /// At most this many peers are tried per fetch.
    pub max_peer_attempts: usize,
    /// How long the origin may send nothing over iroh before its HTTP is tried.
    pub origin_stall_timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            stall_timeout: Duration::from_secs(4),
            min_rate_bytes_per_sec: 1024 * 1024,
            detour_budget: Duration::from_secs(10),
            fallback_jitter: Duration::from_secs(2),
            max_peer_attempts: 8,
            origin_stall_timeout: Duration::from_secs(30),
        }
    }
}

/// One provider the fetch left, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderFailure {
    /// The provider's endpoint id.
    pub provider: String,
    pub reason: FallbackReason,
    pub detail: String,
}

/// What one fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// The blob was complete in the store already; nothing moved.
    pub already_present: bool,
    /// Another fetch of the same hash in this swarm did the work; this one waited for it.
    pub coalesced: bool,
    /// Providers tried that failed, in order (endpoint ids).
    pub failed_providers: Vec<String>,
    /// Why each failed provider was left.
    pub fallbacks: Vec<ProviderFailure>,
    /// Verified payload bytes received from peers in this fetch.
    pub bytes_from_peers: u64,
    /// Verified payload bytes received from the origin over iroh in this fetch.
    pub bytes_from_origin_iroh: u64,
    /// Bytes received from the origin over HTTP in this fetch.
    pub bytes_from_origin_http: u64,
    /// Time charged to the detour budget (including `jitter`).
    pub detour: Duration,
    /// The random delay waited before falling back to the origin.
    pub jitter: Duration,
    /// Verified bytes the store already held when this fetch started (what an earlier,
    /// interrupted fetch left); only the rest was asked for.
    pub resumed_from: u64,
    /// Peers not tried because they could not be reached lately (their backoff runs).
    pub skipped_backoff: Vec<String>,
}

impl FetchReport {
    fn failed(&mut self, provider: &PeerAddr, reason: FallbackReason, detail: String) {
        self.failed_providers.push(provider.id.clone());
        self.fallbacks.push(ProviderFailure {
            provider: provider.id.clone(),
            reason,
            detail,
        });
    }
}

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
struct Dial(tokio::task::JoinHandle<std::result::Result<Connection, String>>);

impl Drop for Dial {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One fetch of a hash in progress; a second fetch of the same hash waits on `lock` and
/// follows `progress` instead of downloading the same bytes again.
#[derive(Debug)]
pub(crate) struct InFlight {
    lock: tokio::sync::Mutex<()>,
    progress: watch::Sender<u64>,
}

/// The fetches in progress, by hash. GC protects these hashes.
pub(crate) type InFlightMap = Arc<std::sync::Mutex<HashMap<Hash, Arc<InFlight>>>>;

/// Membership of one fetch in the in-flight map; leaving removes the entry when no other
/// fetch of the hash remains.
struct FlightGuard<'a> {
    map: &'a InFlightMap,
    hash: Hash,
    entry: Arc<InFlight>,
}

impl<'a> FlightGuard<'a> {
    fn join(map: &'a InFlightMap, hash: Hash) -> Self {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = m
            .entry(hash)
            .or_insert_with(|| {
                Arc::new(InFlight {
                    lock: tokio::sync::Mutex::new(()),
                    progress: watch::channel(0).0,
                })
            })
            .clone();
        Self { map, hash, entry }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Clones are only made under this lock: 2 means the map's and ours.
        if Arc::strong_count(&self.entry) == 2 {
            m.remove(&self.hash);
        }
    }
}

/// Tells the caller (and coalesced waiters) how many verified bytes are held, never
/// going backwards (an HTTP fallback starts its own count from zero).
struct Progress<'a> {
    on_bytes: ByteSink<'a>,
    size: u64,
    best: std::sync::atomic::AtomicU64,
    watch: &'a watch::Sender<u64>,
}

impl Progress<'_> {
    fn report(&self, held: u64) {
        let held = held.min(self.size);
        let before = self
            .best
            .fetch_max(held, std::sync::atomic::Ordering::Relaxed);
        if held > before {
            (self.on_bytes)(held);
            self.watch.send_replace(held);
        }
    }
}

/// Deadlines of one attempt.
struct Limits {
    connect: Duration,
    stall: Duration,
    /// `None`: no minimum rate (the origin, or the last hope when there is no origin).
    min_rate: Option<u64>,
    /// Detour left; the attempt ends when its own detour reaches it.
    budget: Option<Duration>,
}

/// How an attempt reaches its provider.
enum Transport<'a> {
    Iroh(&'a PeerAddr),
    /// A peer already dialed (redialed if the connection has closed since).
    Dialed(&'a PeerAddr, Connection),
    /// The origin's HTTP base URL (`/v1/swarm/get`).
    Http(&'a str),
}

enum End {
    Complete,
    Failed(FallbackReason, String),
}

struct Attempt {
    end: End,
    /// Verified payload bytes received.
    bytes: u64,
    /// Time this attempt cost beyond what its bytes justify at the minimum rate.
    detour: Duration,
}

/// Time spent beyond what `bytes` justify at `min_rate` (all of it when there is no rate).
fn detour_of(elapsed: Duration, bytes: u64, min_rate: Option<u64>) -> Duration {
    match min_rate {
        Some(rate) if rate > 0 => {
            elapsed.saturating_sub(Duration::from_secs_f64(bytes as f64 / rate as f64))
        }
        _ => elapsed,
    }
}

/// The request for a whole blob of the declared size. Chunk 0 is needed even for an empty
/// blob: its proof carries the size. Only the declared chunks are asked for, so a provider
/// cannot make us store more than the verified document allows.
fn full_request(blob: &BlobRef) -> GetRequest {
    let chunks = ChunkNum::chunks(blob.size).max(ChunkNum(1));
    GetRequest::blob_ranges(blob.hash, ChunkRanges::from(ChunkNum(0)..chunks))
}

fn classify(e: &GetError) -> (FallbackReason, String) {
    let reason = match e {
        GetError::Decode {
            source: DecodeError::LeafHashMismatch { .. } | DecodeError::ParentHashMismatch { .. },
            ..
        } => FallbackReason::PeerBadData,
        GetError::Decode {
            source:
                DecodeError::ChunkNotFound { .. }
                | DecodeError::LeafNotFound { .. }
                | DecodeError::ParentNotFound { .. },
            ..
        }
        | GetError::AtBlobHeaderNext {
            source: AtBlobHeaderNextError::NotFound { .. },
            ..
        } => FallbackReason::PeerMissing,
        _ => FallbackReason::PeerError,
    };
    (reason, e.to_string())
}

impl Swarm {
    /// Fetches `blob` by the policy "origin always wins": `providers.peers` first (in
    /// order, under `policy`'s deadlines, bad data struck), then the origin over iroh for
    /// whatever is missing, then the origin's HTTP. `on_bytes` is told how many verified
    /// bytes the store holds. Concurrent fetches of one hash share one download.
    pub async fn fetch_with_policy(
        &self,
        blob: &BlobRef,
        providers: &Providers,
        policy: &FetchPolicy,
        on_bytes: ByteSink<'_>,
    ) -> Result<FetchReport> {
        let origins: Vec<PeerAddr> = providers.origin.iter().cloned().collect();
        self.fetch_inner(
            blob,
            &providers.peers,
            &origins,
            providers.origin_http.as_deref(),
            policy,
            on_bytes,
        )
        .await
    }

    /// The policy with `origins` as origin-class providers: tried in order after the peers,
    /// never struck, never dropped for being slow.
    pub(crate) async fn fetch_inner(
        &self,
        blob: &BlobRef,
        peers: &[PeerAddr],
        origins: &[PeerAddr],
        http: Option<&str>,
        policy: &FetchPolicy,
        on_bytes: ByteSink<'_>,
    ) -> Result<FetchReport> {
        if let Some(size) = self.complete_size(&blob.hash).await? {
            self.check_size(blob, size).await?;
            return Ok(FetchReport {
                already_present: true,
                ..Default::default()
            });
        }
        let flight = FlightGuard::join(&self.inflight, blob.hash);
        let mut report = FetchReport::default();
        let _turn = match flight.entry.lock.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                // Someone in this swarm is fetching it already: follow their progress.
                report.coalesced = true;
                self.metrics.coalesced();
                let mut seen = flight.entry.progress.subscribe();
                let turn = flight.entry.lock.lock();
                tokio::pin!(turn);
                loop {
                    tokio::select! {
                        turn = &mut turn => break turn,
                        Ok(()) = seen.changed() => on_bytes(*seen.borrow_and_update()),
                    }
                }
            }
        };
        if report.coalesced
            && let Some(size) = self.complete_size(&blob.hash).await?
        {
            self.check_size(blob, size).await?;
            on_bytes(size);
            return Ok(report);
        }
        let progress = Progress {
            on_bytes,
            size: blob.size,
            best: Default::default(),
            watch: &flight.entry.progress,
        };
        let result = self
            .run_policy(blob, peers, origins, http, policy, &progress, &mut report)
            .await;
        if let Err(e) = &result
            && !matches!(e, Error::SizeMismatch { .. })
        {
            // Keep what verified for the next fetch, for `partial_ttl` from now.
            match self.store.blobs().status(blob.hash).await {
                Ok(BlobStatus::Partial { .. }) => self.mark_partial(&blob.hash).await,
                _ => self.clear_partial(&blob.hash).await,
            }
        }
        result.map(|()| report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_policy(
        &self,
        blob: &BlobRef,
        peers: &[PeerAddr],
        origins: &[PeerAddr],
        http: Option<&str>,
        policy: &FetchPolicy,
        progress: &Progress<'_>,
        report: &mut FetchReport,
    ) -> Result<()> {
        let hash = blob.hash;
        let request = full_request(blob);
        // The budget protects the origin's time; without an origin, peers are all there is.
        let has_origin = !origins.is_empty() || http.is_some();
        let mut budget = policy.detour_budget;
        let me = self.endpoint_id();
        let origin_ids: HashSet<&str> = origins.iter().map(|o| o.id.as_str()).collect();
        let mut seen = HashSet::new();
        let now = Instant::now();
        let eligible: Vec<(&PeerAddr, EndpointId)> = peers
            .iter()
            .filter(|p| !origin_ids.contains(p.id.as_str()))
            .filter_map(|p| p.endpoint_id().ok().map(|id| (p, id)))
            .filter(|(_, id)| *id != me && seen.insert(*id))
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
        candidates.truncate(policy.max_peer_attempts);

        // Mark the blob partial before any byte arrives: from now on GC keeps what verifies
        // (for `partial_ttl`), across restarts, so the next fetch asks only for the rest.
        self.mark_partial(&hash).await;
        report.resumed_from = self
            .store
            .remote()
            .local_for_request(request.clone())
            .await
            .map(|l| l.local_bytes())
            .unwrap_or(0);

        // Dial every candidate at once: unreachable ones then cost one connect timeout
        // together, not one each. They are still used in order.
        let connect = if has_origin {
            policy.connect_timeout.min(budget)
        } else {
            policy.connect_timeout
        };
        let mut dials: Vec<Option<Dial>> = candidates
            .iter()
            .map(|(peer, _)| Some(self.dial(peer, connect)))
            .collect();
        let mut peers_failed = false;
        for (i, (peer, id)) in candidates.iter().enumerate() {
            if has_origin && budget.is_zero() {
                debug!(hash = %blob.hex(), "detour budget spent; leaving peers for the origin");
                break;
            }
            let Some(mut dial) = dials[i].take() else {
                continue;
            };
            let waited = Instant::now();
            let dialed = match (&mut dial.0).await {
                Ok(result) => result,
                Err(e) => Err(format!("dial task: {e}")),
            };
            let wait = waited.elapsed();
            report.detour += wait;
            self.metrics.detour(wait);
            budget = budget.saturating_sub(wait);
            let conn = match dialed {
                Ok(conn) => {
                    self.backoff_lock().succeeded(id);
                    conn
                }
                Err(detail) => {
                    peers_failed = true;
                    let rest = self.backoff_lock().failed(*id, Instant::now());
                    warn!(hash = %blob.hex(), peer = %id, %detail, backoff = ?rest, "peer unreachable; left alone for a while");
                    self.metrics.fallback(&hash, FallbackReason::PeerConnect);
                    self.report_unreachable(&hash, id);
                    report.failed(peer, FallbackReason::PeerConnect, detail);
                    continue;
                }
            };
            let last = i + 1 == candidates.len();
            let limits = Limits {
                connect,
                stall: policy.stall_timeout,
                min_rate: (has_origin || !last).then_some(policy.min_rate_bytes_per_sec),
                budget: has_origin.then_some(budget),
            };
            let attempt = self
                .attempt(
                    blob,
                    &request,
                    Transport::Dialed(peer, conn),
                    &limits,
                    progress,
                )
                .await?;
            self.metrics.received(&hash, Source::Peer, attempt.bytes);
            report.bytes_from_peers += attempt.bytes;
            report.detour += attempt.detour;
            self.metrics.detour(attempt.detour);
            budget = budget.saturating_sub(attempt.detour);
            match attempt.end {
                End::Complete => {
                    info!(hash = %blob.hex(), peer = %id, "fetched from a peer");
                    return self.finish(blob).await;
                }
                End::Failed(reason, detail) => {
                    peers_failed = true;
                    warn!(hash = %blob.hex(), peer = %id, ?reason, %detail, "peer dropped for this fetch");
                    self.metrics.fallback(&hash, reason);
                    if reason == FallbackReason::PeerBadData {
                        self.metrics.verification_failure(&hash);
                        self.metrics.strike(&hash);
                        self.strikes_lock().add(hash, *id, detail.clone());
                    }
                    report.failed(peer, reason, detail);
                }
            }
        }
        drop(dials);
        if peers_failed && has_origin && !policy.fallback_jitter.is_zero() {
            let max = policy.fallback_jitter.min(budget);
            let jitter = max.mul_f64(rand::random::<f64>());
            tokio::time::sleep(jitter).await;
            report.jitter = jitter;
            report.detour += jitter;
            self.metrics.detour(jitter);
        }

        // The origin is never dropped for being slow or costing detour, on either transport.
        let origin_limits = Limits {
            connect: policy.connect_timeout,
            stall: policy.origin_stall_timeout,
            min_rate: None,
            budget: None,
        };
        let mut iroh_errors = Vec::new();
        for origin in origins {
            let attempt = self
                .attempt(
                    blob,
                    &request,
                    Transport::Iroh(origin),
                    &origin_limits,
                    progress,
                )
                .await?;
            self.metrics
                .received(&hash, Source::OriginIroh, attempt.bytes);
            report.bytes_from_origin_iroh += attempt.bytes;
            match attempt.end {
                End::Complete => return self.finish(blob).await,
                End::Failed(reason, detail) => {
                    if reason == FallbackReason::PeerBadData {
                        self.metrics.verification_failure(&hash);
                    }
                    warn!(hash = %blob.hex(), origin = %origin.id, %detail, "origin failed over iroh");
                    iroh_errors.push(format!("{}: {detail}", origin.id));
                    report.failed(origin, FallbackReason::OriginIrohFailed, detail);
                }
            }
        }
        let iroh_error = if iroh_errors.is_empty() {
            match (origins.is_empty(), report.fallbacks.is_empty()) {
                (true, true) => "no providers".to_owned(),
                (true, false) => "every peer failed and no origin iroh address is known".to_owned(),
                (false, _) => "no origin reachable over iroh".to_owned(),
            }
        } else {
            iroh_errors.join("; ")
        };
        let Some(base) = http else {
            return Err(Error::Unavailable {
                hash: blob.hex(),
                reason: iroh_error,
            });
        };
        warn!(hash = %blob.hex(), reason = %iroh_error, "falling back to the origin's HTTP");
        self.metrics
            .fallback(&hash, FallbackReason::OriginIrohFailed);
        // Verified streaming over HTTP first: only the missing ranges, straight into the
        // store. An origin without that route still has the whole-file one.
        let attempt = self
            .attempt(
                blob,
                &request,
                Transport::Http(base),
                &origin_limits,
                progress,
            )
            .await?;
        self.metrics
            .received(&hash, Source::OriginHttp, attempt.bytes);
        report.bytes_from_origin_http += attempt.bytes;
        let streamed_error = match attempt.end {
            End::Complete => return self.finish(blob).await,
            End::Failed(reason, detail) => {
                if reason == FallbackReason::PeerBadData {
                    self.metrics.verification_failure(&hash);
                }
                warn!(hash = %blob.hex(), %detail, "verified HTTP transfer failed; trying the whole file");
                detail
            }
        };
        let sink = |n: u64| progress.report(n);
        match self.fetch_http_observed(blob, base, &sink).await {
            Ok(moved) => {
                report.bytes_from_origin_http += moved;
                self.finish(blob).await
            }
            Err(e @ Error::SizeMismatch { .. }) => Err(e),
            Err(e) => Err(Error::Unavailable {
                hash: blob.hex(),
                reason: format!(
                    "over iroh: {iroh_error}; over HTTP: {streamed_error}; whole file: {e}"
                ),
            }),
        }
    }

    /// The blob is complete: hold it under the fetch tag until the caller decides.
    async fn finish(&self, blob: &BlobRef) -> Result<()> {
        match self.complete_size(&blob.hash).await? {
            Some(size) => {
                self.check_size(blob, size).await?;
                self.pin(&blob.hash, &fetched_tag(&blob.hash)).await?;
                self.clear_partial(&blob.hash).await;
                Ok(())
            }
            None => Err(Error::Blob {
                hash: blob.hex(),
                reason: "the fetch ended but the store does not hold the whole blob".into(),
            }),
        }
    }

    /// One provider, asked only for the ranges still missing, under `limits`.
    async fn attempt(
        &self,
        blob: &BlobRef,
        request: &GetRequest,
        transport: Transport<'_>,
        limits: &Limits,
        progress: &Progress<'_>,
    ) -> Result<Attempt> {
        let started = Instant::now();
        let failed = |reason, detail: String, bytes: u64| Attempt {
            end: End::Failed(reason, detail),
            bytes,
            detour: detour_of(started.elapsed(), bytes, limits.min_rate),
        };
        let remote = self.store.remote();
        let local = remote
            .local_for_request(request.clone())
            .await
            .map_err(|e| self.blob_error(blob, format!("reading local state: {e}")))?;
        if local.is_complete() {
            return self.verdict(blob, request, 0, started, limits).await;
        }
        let held = local.local_bytes();
        let (mut stream, conn): (BoxStream<'static, GetProgressItem>, _) = match transport {
            Transport::Dialed(_, conn) if conn.close_reason().is_none() => {
                let stream = remote.execute_get(conn.clone(), local.missing()).stream();
                (stream.boxed(), Some(conn))
            }
            Transport::Iroh(peer) | Transport::Dialed(peer, _) => {
                let addr = match peer.to_endpoint_addr() {
                    Ok(addr) => addr,
                    Err(e) => return Ok(failed(FallbackReason::PeerConnect, e.to_string(), 0)),
                };
                if !peer.addrs.is_empty() {
                    self.lookup.add_endpoint_info(addr.clone());
                }
                let connecting = self.router.endpoint().connect(addr, iroh_blobs::ALPN);
                let conn = match tokio::time::timeout(limits.connect, connecting).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        return Ok(failed(FallbackReason::PeerConnect, e.to_string(), 0));
                    }
                    Err(_) => {
                        return Ok(failed(
                            FallbackReason::PeerConnect,
                            format!("no connection within {:?}", limits.connect),
                            0,
                        ));
                    }
                };
                let stream = remote.execute_get(conn.clone(), local.missing()).stream();
                (stream.boxed(), Some(conn))
            }
            Transport::Http(base) => {
                let pair = crate::http_bao::stream_pair(self.http.clone(), base);
                (
                    remote.execute_get(pair, local.missing()).stream().boxed(),
                    None,
                )
            }
        };
        let mut tick = tokio::time::interval(
            (limits.stall / 4).clamp(Duration::from_millis(10), Duration::from_millis(100)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bytes = 0u64;
        let mut last_progress = Instant::now();
        let outcome = loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(GetProgressItem::Progress(n)) => {
                        if n > bytes {
                            bytes = n;
                            last_progress = Instant::now();
                        }
                        progress.report(held + n);
                    }
                    Some(GetProgressItem::Done(_)) => break None,
                    Some(GetProgressItem::Error(e)) => break Some(classify(&e)),
                    None => break Some((FallbackReason::PeerError, "the transfer ended without a result".into())),
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now - last_progress >= limits.stall {
                        break Some((FallbackReason::PeerStall, format!("nothing received for {:?}", limits.stall)));
                    }
                    let detour = detour_of(now - started, bytes, limits.min_rate);
                    if let Some(rate) = limits.min_rate && detour >= limits.stall {
                        break Some((FallbackReason::PeerSlow, format!(
                            "{bytes} bytes in {:?}: more than {:?} behind {rate} bytes/s",
                            now - started, limits.stall
                        )));
                    }
                    if let Some(budget) = limits.budget && detour >= budget {
                        // Mostly idle at the end: it stalled; otherwise it was just slow.
                        let idle = now - last_progress;
                        let reason = if idle * 2 > now - started {
                            FallbackReason::PeerStall
                        } else {
                            FallbackReason::PeerSlow
                        };
                        break Some((reason, format!("the detour budget ran out after {:?}", now - started)));
                    }
                }
            }
        };
        // Dropping the transfer cancels it; whatever verified so far stays in the store.
        drop(stream);
        if let Some(conn) = conn {
            conn.close(0u32.into(), b"done");
        }
        match outcome {
            Some((reason, detail)) => Ok(failed(reason, detail, bytes)),
            None => self.verdict(blob, request, bytes, started, limits).await,
        }
    }

    /// What the store holds after a provider said it was done.
    async fn verdict(
        &self,
        blob: &BlobRef,
        request: &GetRequest,
        bytes: u64,
        started: Instant,
        limits: &Limits,
    ) -> Result<Attempt> {
        let detour = detour_of(started.elapsed(), bytes, limits.min_rate);
        let status = self
            .store
            .blobs()
            .status(blob.hash)
            .await
            .map_err(|e| self.blob_error(blob, e.to_string()))?;
        let end = match status {
            BlobStatus::Complete { size } => {
                // The content (verified, its length proven) is not what was declared:
                // nobody can serve the declared blob.
                self.check_size(blob, size).await?;
                End::Complete
            }
            BlobStatus::Partial { size } => {
                let local = self
                    .store
                    .remote()
                    .local_for_request(request.clone())
                    .await
                    .map_err(|e| self.blob_error(blob, e.to_string()))?;
                if local.is_complete() {
                    // Every declared chunk arrived and verified, yet the blob goes on.
                    self.metrics.verification_failure(&blob.hash);
                    self.drop_blob(&blob.hash).await;
                    return Err(Error::SizeMismatch {
                        hash: blob.hex(),
                        declared: blob.size,
                        actual: size.map_or("larger".into(), |s| format!("{s}")),
                    });
                }
                End::Failed(
                    FallbackReason::PeerMissing,
                    "the provider ended the transfer without the whole blob".into(),
                )
            }
            BlobStatus::NotFound => End::Failed(
                FallbackReason::PeerMissing,
                "the provider sent nothing of the blob".into(),
            ),
        };
        Ok(Attempt { end, bytes, detour })
    }

    fn blob_error(&self, blob: &BlobRef, reason: String) -> Error {
        Error::Blob {
            hash: blob.hex(),
            reason,
        }
    }

    /// Starts connecting to `peer` in the background, for at most `timeout`.
    fn dial(&self, peer: &PeerAddr, timeout: Duration) -> Dial {
        let endpoint = self.router.endpoint().clone();
        let addr = peer.to_endpoint_addr();
        if let Ok(addr) = &addr
            && !peer.addrs.is_empty()
        {
            self.lookup.add_endpoint_info(addr.clone());
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

    fn backoff_lock(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `peer` is still left alone after failing to connect (`None`: it is tried).
    pub fn peer_backoff(&self, peer: &EndpointId) -> Option<Duration> {
        self.backoff_lock().remaining(peer, Instant::now())
    }

    fn strikes_lock(&self) -> std::sync::MutexGuard<'_, StrikeTable> {
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
