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
//!
//! This file holds the policy's public types and its entry points; the rest, by concern:
//!
//! - `inflight`: concurrent fetches of one hash share one download, progress never goes back;
//! - `providers`: which peers are asked and in what order (strikes, backoff, dialing);
//! - `run`: the peers in order under the detour budget, then the jitter before the origin;
//! - `attempt`: one provider asked for the missing ranges under its deadlines;
//! - `fallback`: the origin over iroh, then over HTTP (verified ranges, then the whole file).

mod attempt;
mod fallback;
mod herd;
mod inflight;
mod providers;
mod run;

pub(crate) use inflight::InFlightMap;
pub(crate) use providers::{Backoff, Reach, StrikeTable};
pub use providers::{STRIKES_TO_BAN, Strike};

use std::time::Duration;

use iroh_blobs::api::blobs::BlobStatus;
use serde::Serialize;

use crate::metrics::FallbackReason;
use crate::{BlobRef, ByteSink, Error, PeerAddr, Result, Swarm};
use inflight::{FlightGuard, Progress};

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
    /// The origin's tracker (its HTTP base URL), when it runs one. With it the fetch joins
    /// the herd (`herd`): it announces itself at once, serves what it has verified so far,
    /// and asks the tracker again for peers while it runs, taking from each only the ranges
    /// it says it holds.
    pub tracker: Option<String>,
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
    /// How each peer connection of this fetch carried its bytes, in order.
    pub peer_paths: Vec<PeerPaths>,
}

/// The bytes one peer connection received, by kind of path. Counted in UDP datagram bytes
/// (payload plus QUIC overhead) on the paths still open when the attempt ended, so a path
/// closed earlier (a relay path iroh dropped after punching through) is not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerPaths {
    /// The peer's endpoint id.
    pub peer: String,
    /// Received on direct paths: a public address, or a hole punched through the NATs.
    pub direct_bytes: u64,
    /// Received through a relay server.
    pub relayed_bytes: u64,
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
            providers.tracker.as_deref(),
            policy,
            on_bytes,
        )
        .await
    }

    /// The policy with `origins` as origin-class providers: tried in order after the peers,
    /// never struck, never dropped for being slow.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch_inner(
        &self,
        blob: &BlobRef,
        peers: &[PeerAddr],
        origins: &[PeerAddr],
        http: Option<&str>,
        tracker: Option<&str>,
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
            .run_policy(
                blob,
                peers,
                origins,
                http,
                tracker,
                policy,
                &progress,
                &mut report,
            )
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
}
