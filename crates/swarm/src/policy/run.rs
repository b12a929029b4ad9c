//! One fetch's run: the candidate peers in order, each on a connection dialed up front,
//! with every failed attempt and every moment behind the minimum rate charged to the
//! detour budget; once peers fail, a random jitter (from the budget) before the origin.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::attempt::{End, Limits, Transport, full_request};
use super::inflight::Progress;
use super::providers::Dial;
use super::{FetchPolicy, FetchReport};
use crate::metrics::{FallbackReason, Source};
use crate::{BlobRef, PeerAddr, Result, Swarm};

impl Swarm {
    /// The peers in order under the detour budget, then the origin for what is missing.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_policy(
        &self,
        blob: &BlobRef,
        peers: &[PeerAddr],
        origins: &[PeerAddr],
        http: Option<&str>,
        tracker: Option<&str>,
        policy: &FetchPolicy,
        progress: &Progress<'_>,
        report: &mut FetchReport,
    ) -> Result<()> {
        if let (Some(tracker), Some(origin)) = (tracker, origins.first()) {
            return self
                .run_herd(
                    blob, peers, origin, origins, http, tracker, policy, progress, report,
                )
                .await;
        }
        let hash = blob.hash;
        let request = full_request(blob);
        // The budget protects the origin's time; without an origin, peers are all there is.
        let has_origin = !origins.is_empty() || http.is_some();
        let mut budget = policy.detour_budget;
        let candidates = self.candidates(
            hash,
            peers,
            origins,
            has_origin,
            policy.max_peer_attempts,
            report,
        );

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
            if let Some(paths) = attempt.paths {
                report.peer_paths.push(super::PeerPaths {
                    peer: peer.id.clone(),
                    direct_bytes: paths.direct,
                    relayed_bytes: paths.relayed,
                });
            }
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

        self.origin_turn(blob, &request, origins, http, policy, progress, report)
            .await
    }
}
