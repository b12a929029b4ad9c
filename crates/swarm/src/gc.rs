//! Garbage collection on demand. iroh-blobs runs its GC from a loop inside the store that
//! asks a "protect" callback for extra live hashes before each run; the callback here waits
//! for a request from [`Swarm::gc`], so a run happens exactly when asked, and the next call
//! of the callback tells that the previous run is over.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use iroh_blobs::Hash;
use iroh_blobs::store::{GcConfig, ProtectCb, ProtectOutcome};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::policy::InFlightMap;
use crate::{Error, FETCHED_TAG_PREFIX, Result, Swarm};

/// What one garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs removed (complete or partial).
    pub removed: Vec<String>,
    /// Bytes of the complete blobs removed.
    pub bytes_freed: u64,
    /// Blobs the store still holds.
    pub kept: usize,
}

pub(crate) struct GcRequest {
    keep: HashSet<Hash>,
    done: oneshot::Sender<()>,
}

struct GcState {
    requests: tokio::sync::Mutex<mpsc::Receiver<GcRequest>>,
    /// Answered when the store asks again, i.e. when the run it started is over.
    running: Mutex<Option<oneshot::Sender<()>>>,
    inflight: InFlightMap,
}

/// The store's GC configuration and the handle that triggers a run.
pub(crate) fn gc_config(inflight: InFlightMap) -> (GcConfig, mpsc::Sender<GcRequest>) {
    let (tx, rx) = mpsc::channel(4);
    let state = Arc::new(GcState {
        requests: tokio::sync::Mutex::new(rx),
        running: Mutex::new(None),
        inflight,
    });
    let protect: ProtectCb = Arc::new(move |live: &mut HashSet<Hash>| {
        let state = state.clone();
        Box::pin(async move {
            let finished = state
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(done) = finished {
                done.send(()).ok();
            }
            let request = state.requests.lock().await.recv().await;
            let Some(request) = request else {
                // The swarm is gone: never run again.
                std::future::pending::<()>().await;
                return ProtectOutcome::Abort;
            };
            live.extend(request.keep);
            // A fetch in progress has no tag yet; its partial blob must survive.
            live.extend(
                state
                    .inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .copied(),
            );
            *state.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(request.done);
            ProtectOutcome::Continue
        })
    });
    let config = GcConfig {
        // The callback itself waits for a request, so this only spaces runs a little.
        interval: Duration::from_millis(10),
        add_protected: Some(protect),
    };
    (config, tx)
}

impl Swarm {
    /// Removes every blob that is not in `keep`, not pinned under a tag of its own (an
    /// origin's imports, [`Swarm::pin`]) and not being fetched right now. Blobs only held
    /// because a fetch completed them are released unless `keep` names them: the node
    /// passes the hashes its catalogs and installed apps reference.
    pub async fn gc(&self, keep: &HashSet<Hash>) -> Result<GcReport> {
        let fail = |reason: String| Error::Gc(reason);
        let mut released = 0;
        let tags = self
            .store
            .tags()
            .list_prefix(FETCHED_TAG_PREFIX)
            .await
            .map_err(|e| fail(format!("listing tags: {e}")))?;
        let tags: Vec<_> = tags.collect().await;
        for tag in tags {
            let tag = tag.map_err(|e| fail(format!("listing tags: {e}")))?;
            if !keep.contains(&tag.hash) {
                self.store
                    .tags()
                    .delete(&tag.name)
                    .await
                    .map_err(|e| fail(format!("deleting tag {}: {e}", tag.name)))?;
                released += 1;
            }
        }
        let before = self.blob_sizes().await?;
        let (done, finished) = oneshot::channel();
        self.gc_requests
            .send(GcRequest {
                keep: keep.clone(),
                done,
            })
            .await
            .map_err(|_| fail("the store's garbage collector is not running".into()))?;
        finished
            .await
            .map_err(|_| fail("the store's garbage collector stopped (see its log)".into()))?;
        let after = self.blob_sizes().await?;
        let mut report = GcReport {
            kept: after.len(),
            ..Default::default()
        };
        for (hash, size) in before {
            if !after.contains_key(&hash) {
                report.removed.push(hash.to_hex().to_string());
                report.bytes_freed += size.unwrap_or(0);
            }
        }
        report.removed.sort();
        info!(
            released,
            removed = report.removed.len(),
            bytes = report.bytes_freed,
            "swarm gc"
        );
        Ok(report)
    }

    /// Removes a pin made by [`Swarm::pin`] (or an import's tag); the blob goes at the
    /// next [`Swarm::gc`] unless something else holds it.
    pub async fn unpin(&self, tag: &str) -> Result<()> {
        self.store
            .tags()
            .delete(tag)
            .await
            .map(|_| ())
            .map_err(|e| Error::Gc(format!("deleting tag {tag}: {e}")))
    }

    /// The pins (tag name, hash) whose names start with `prefix`.
    pub async fn pins(&self, prefix: &str) -> Result<Vec<(String, Hash)>> {
        let tags = self
            .store
            .tags()
            .list_prefix(prefix)
            .await
            .map_err(|e| Error::Gc(format!("listing tags: {e}")))?;
        let tags: Vec<_> = tags.collect().await;
        tags.into_iter()
            .map(|t| {
                t.map(|t| (String::from_utf8_lossy(&t.name.0).into_owned(), t.hash))
                    .map_err(|e| Error::Gc(format!("listing tags: {e}")))
            })
            .collect()
    }
}
