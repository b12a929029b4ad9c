//! One provider, asked only for the ranges the store still misses, under its deadlines:
//! connect, stall, a minimum rate and what is left of the detour budget. Whatever verifies
//! stays in the store whatever the outcome; the verdict reads what the store holds.

use std::time::{Duration, Instant};

use bao_tree::{ChunkNum, ChunkRanges};
use futures::StreamExt;
use futures::stream::BoxStream;
use iroh::endpoint::Connection;
use iroh_blobs::api::blobs::BlobStatus;
use iroh_blobs::api::remote::GetProgressItem;
use iroh_blobs::get::GetError;
use iroh_blobs::get::fsm::{AtBlobHeaderNextError, DecodeError};
use iroh_blobs::protocol::GetRequest;

use super::inflight::Progress;
use crate::metrics::FallbackReason;
use crate::{BlobRef, Error, PeerAddr, Result, Swarm};

/// Deadlines of one attempt.
pub(super) struct Limits {
    pub(super) connect: Duration,
    pub(super) stall: Duration,
    /// `None`: no minimum rate (the origin, or the last hope when there is no origin).
    pub(super) min_rate: Option<u64>,
    /// Detour left; the attempt ends when its own detour reaches it.
    pub(super) budget: Option<Duration>,
}

/// How an attempt reaches its provider.
pub(super) enum Transport<'a> {
    Iroh(&'a PeerAddr),
    /// A peer already dialed (redialed if the connection has closed since).
    Dialed(&'a PeerAddr, Connection),
    /// A connection the caller keeps using after the attempt: not closed at its end, and
    /// not redialed (a closed one fails the attempt).
    Shared(Connection),
    /// The origin's HTTP base URL (`/v1/swarm/get`).
    Http(&'a str),
}

pub(super) enum End {
    Complete,
    Failed(FallbackReason, String),
}

pub(super) struct Attempt {
    pub(super) end: End,
    /// Verified payload bytes received.
    pub(super) bytes: u64,
    /// Time this attempt cost beyond what its bytes justify at the minimum rate.
    pub(super) detour: Duration,
    /// Which paths the connection's bytes came in on (iroh only).
    pub(super) paths: Option<PathBytes>,
}

/// Bytes received on one connection, by kind of path: UDP datagram bytes (payload and
/// QUIC overhead) on direct paths (a public address, or a hole punched through the NATs)
/// and on relay paths. Read when the attempt ends, from the paths still open then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct PathBytes {
    pub(super) direct: u64,
    pub(super) relayed: u64,
}

pub(super) fn path_bytes(conn: &Connection) -> PathBytes {
    let mut bytes = PathBytes::default();
    for path in conn.paths().iter() {
        let rx = path.stats().udp_rx.bytes;
        if path.is_relay() {
            bytes.relayed += rx;
        } else {
            bytes.direct += rx;
        }
    }
    bytes
}

/// Time spent beyond what `bytes` justify at `min_rate` (all of it when there is no rate).
pub(super) fn detour_of(elapsed: Duration, bytes: u64, min_rate: Option<u64>) -> Duration {
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
pub(super) fn full_request(blob: &BlobRef) -> GetRequest {
    GetRequest::blob_ranges(blob.hash, ChunkRanges::from(ChunkNum(0)..chunk_end(blob)))
}

/// The chunk after the blob's last declared one (at least 1: chunk 0 carries the size).
pub(super) fn chunk_end(blob: &BlobRef) -> ChunkNum {
    ChunkNum::chunks(blob.size).max(ChunkNum(1))
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
    /// One provider, asked only for the ranges still missing, under `limits`.
    pub(super) async fn attempt(
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
            paths: None,
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
        let shared = matches!(transport, Transport::Shared(_));
        let (mut stream, conn): (BoxStream<'static, GetProgressItem>, _) = match transport {
            Transport::Shared(conn) => {
                if let Some(reason) = conn.close_reason() {
                    return Ok(failed(FallbackReason::PeerError, reason.to_string(), 0));
                }
                let stream = remote.execute_get(conn.clone(), local.missing()).stream();
                (stream.boxed(), Some(conn))
            }
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
                    self.addrs.remember(addr.clone());
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
        let paths = conn.as_ref().map(path_bytes);
        if let Some(conn) = conn
            && !shared
        {
            conn.close(0u32.into(), b"done");
        }
        let mut attempt = match outcome {
            Some((reason, detail)) => failed(reason, detail, bytes),
            None => self.verdict(blob, request, bytes, started, limits).await?,
        };
        attempt.paths = paths;
        Ok(attempt)
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
                if local.is_complete() && request.ranges != full_request(blob).ranges {
                    // Only some ranges were asked for (the herd), and they are all here.
                    End::Complete
                } else if local.is_complete() {
                    // Every declared chunk arrived and verified, yet the blob goes on.
                    self.metrics.verification_failure(&blob.hash);
                    self.drop_blob(&blob.hash).await;
                    return Err(Error::SizeMismatch {
                        hash: blob.hex(),
                        declared: blob.size,
                        actual: size.map_or("larger".into(), |s| format!("{s}")),
                    });
                } else {
                    End::Failed(
                        FallbackReason::PeerMissing,
                        "the provider ended the transfer without the whole blob".into(),
                    )
                }
            }
            BlobStatus::NotFound => End::Failed(
                FallbackReason::PeerMissing,
                "the provider sent nothing of the blob".into(),
            ),
        };
        Ok(Attempt {
            end,
            bytes,
            detour,
            paths: None,
        })
    }

    fn blob_error(&self, blob: &BlobRef, reason: String) -> Error {
        Error::Blob {
            hash: blob.hex(),
            reason,
        }
    }
}
