//! The origin's turn: never dropped for being slow or costing detour. Over iroh first, then
//! its HTTP: verified streaming of the missing ranges, and last the whole-file route an
//! origin without the streaming route still has. A blob complete in the store is pinned.

use iroh_blobs::protocol::GetRequest;
use tracing::warn;

use super::attempt::{End, Limits, Transport};
use super::inflight::Progress;
use super::{FetchPolicy, FetchReport};
use crate::metrics::{FallbackReason, Source};
use crate::{BlobRef, Error, PeerAddr, Result, Swarm, fetched_tag};

impl Swarm {
    /// Whatever is still missing of `blob`, from `origins` over iroh, then from `http`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn origin_turn(
        &self,
        blob: &BlobRef,
        request: &GetRequest,
        origins: &[PeerAddr],
        http: Option<&str>,
        policy: &FetchPolicy,
        progress: &Progress<'_>,
        report: &mut FetchReport,
    ) -> Result<()> {
        let hash = blob.hash;
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
                    request,
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
                request,
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
    pub(super) async fn finish(&self, blob: &BlobRef) -> Result<()> {
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
}
