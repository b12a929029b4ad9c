//! The serving side of iroh-blobs, observed: bytes served per hash (so the origin can tell
//! how much the swarm spared it) and an optional upload rate limit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh_blobs::provider::events::{
    EventMask, EventSender, ProviderMessage, RequestMode, RequestUpdate, ThrottleMode,
};
use tracing::debug;

use crate::metrics::Metrics;

/// Spaces chunk sends so all requests together stay under `rate` bytes per second.
#[derive(Debug)]
pub(crate) struct Limiter {
    rate: u64,
    next: Mutex<Instant>,
}

/// Credit an idle link may bank: small enough to keep the rate, large enough that timer
/// granularity (about a millisecond) does not cap it.
const BURST: Duration = Duration::from_millis(20);

impl Limiter {
    /// When a chunk of `bytes` may go out (`None`: now); reserves its share of the link.
    fn reserve(&self, bytes: u64) -> Option<Instant> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let start = (*next).max(now.checked_sub(BURST).unwrap_or(now));
        *next = start + Duration::from_secs_f64(bytes as f64 / self.rate.max(1) as f64);
        (start > now).then_some(start)
    }
}

impl Limiter {
    pub(crate) fn new(rate: u64) -> Arc<Self> {
        Arc::new(Self {
            rate,
            next: Mutex::new(Instant::now()),
        })
    }
}

/// Which way the provider's answers travel, for the served-bytes counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Iroh,
    Http,
}

/// An event sender for the iroh-blobs provider that counts served payload bytes into
/// `metrics` and, with a `limiter` (shared by every way this node serves), throttles it.
pub(crate) fn provider_events(
    metrics: Arc<Metrics>,
    limiter: Option<Arc<Limiter>>,
    via: Via,
) -> EventSender {
    let mask = EventMask {
        get: RequestMode::NotifyLog,
        throttle: if limiter.is_some() {
            ThrottleMode::Intercept
        } else {
            ThrottleMode::None
        },
        ..EventMask::DEFAULT
    };
    let (sender, mut rx) = EventSender::channel(256, mask);
    let served = move |metrics: &Metrics, hash: &iroh_blobs::Hash, bytes: u64| match via {
        Via::Iroh => metrics.served_iroh(hash, bytes),
        Via::Http => metrics.served_http(hash, bytes),
    };
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            match message {
                ProviderMessage::GetRequestReceivedNotify(mut msg) => {
                    let metrics = metrics.clone();
                    let mut hash = msg.inner.request.hash;
                    tokio::spawn(async move {
                        while let Ok(Some(update)) = msg.rx.recv().await {
                            match update {
                                RequestUpdate::Started(s) => hash = s.hash,
                                RequestUpdate::Completed(c) => {
                                    served(&metrics, &hash, c.stats.payload_bytes_sent)
                                }
                                RequestUpdate::Aborted(a) => {
                                    served(&metrics, &hash, a.stats.payload_bytes_sent)
                                }
                                RequestUpdate::Progress(_) => {}
                            }
                        }
                    });
                }
                ProviderMessage::Throttle(msg) => match &limiter {
                    Some(limiter) => match limiter.reserve(msg.inner.size) {
                        Some(at) => {
                            tokio::spawn(async move {
                                tokio::time::sleep_until(at.into()).await;
                                msg.tx.send(Ok(())).await.ok();
                            });
                        }
                        None => {
                            msg.tx.send(Ok(())).await.ok();
                        }
                    },
                    None => {
                        msg.tx.send(Ok(())).await.ok();
                    }
                },
                // Only the events asked for in the mask arrive; answer any interceptor
                // anyway so a request is never left hanging.
                ProviderMessage::ClientConnected(msg) => {
                    msg.tx.send(Ok(())).await.ok();
                }
                ProviderMessage::GetRequestReceived(msg) => {
                    msg.tx.send(Ok(())).await.ok();
                }
                ProviderMessage::GetManyRequestReceived(msg) => {
                    msg.tx.send(Ok(())).await.ok();
                }
                ProviderMessage::ObserveRequestReceived(msg) => {
                    msg.tx.send(Ok(())).await.ok();
                }
                other => debug!(?other, "provider event"),
            }
        }
    });
    sender
}
