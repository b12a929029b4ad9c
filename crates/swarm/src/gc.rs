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
use tracing::{debug, info};

use crate::policy::InFlightMap;
use crate::tracker::unix_now;
use crate::{Error, FETCHED_TAG_PREFIX, PARTIAL_TAG_PREFIX, Result, Swarm};

fn partial_prefix(hash: &Hash) -> String {
    format!("{PARTIAL_TAG_PREFIX}{}/", hash.to_hex())
}

/// The hash and time of a partial tag's name.
fn parse_partial(name: &[u8]) -> Option<(Hash, u64)> {
    let rest = std::str::from_utf8(name)
        .ok()?
        .strip_prefix(PARTIAL_TAG_PREFIX)?;
    let (hex, secs) = rest.split_once('/')?;
    let hash = crate::BlobRef::from_hex(hex, 0).ok()?.hash;
    Some((hash, secs.parse().ok()?))
}

/// What one garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs removed (complete or partial).
    pub removed: Vec<String>,
    /// Bytes of the complete blobs removed.
    pub bytes_freed: u64,
    /// Blobs the store still holds.
    pub kept: usize,
    /// Partial downloads kept for a later fetch to resume (younger than the partial TTL,
    /// named in `keep`, or being fetched).
    pub partials_kept: usize,
    /// Partial downloads released because no fetch touched them within the partial TTL.
    pub partials_expired: usize,
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
    ///
    /// A partial download (what verified of an interrupted fetch) is kept for
    /// [`crate::SwarmConfig::partial_ttl`] after the last fetch of it started or stopped, so
    /// a fetch after a crash or restart resumes from it; after that it goes unless `keep`
    /// names it. The HTTP fallback's part files follow the same rule.
    pub async fn gc(&self, keep: &HashSet<Hash>) -> Result<GcReport> {
        let fail = |reason: String| Error::Gc(reason);
        let (partials_kept, partials_expired) = self.expire_partials(keep).await?;
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
            partials_kept,
            partials_expired,
            ..Default::default()
        };
        for (hash, size) in before {
            if !after.contains_key(&hash) {
                report.removed.push(hash.to_hex().to_string());
                report.bytes_freed += size.unwrap_or(0);
            }
        }
        report.removed.sort();
        if report.removed.is_empty() {
            debug!(released, "swarm gc: nothing to remove");
        } else {
            info!(
                released,
                removed = report.removed.len(),
                bytes = report.bytes_freed,
                "swarm gc"
            );
        }
        Ok(report)
    }

    /// Releases partial tags (and part files) older than the partial TTL whose hash is
    /// neither in `keep` nor being fetched, and tags of partials that are complete by now.
    /// Returns (kept, expired).
    async fn expire_partials(&self, keep: &HashSet<Hash>) -> Result<(usize, usize)> {
        let fail = |reason: String| Error::Gc(reason);
        let now = unix_now();
        let ttl = self.partial_ttl.as_secs();
        let fetching: HashSet<Hash> = self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        let wanted = |hash: &Hash, at: u64| {
            keep.contains(hash) || fetching.contains(hash) || now.saturating_sub(at) <= ttl
        };
        let tags: Vec<_> = self
            .store
            .tags()
            .list_prefix(PARTIAL_TAG_PREFIX)
            .await
            .map_err(|e| fail(format!("listing tags: {e}")))?
            .collect()
            .await;
        // Complete (`Some(Some(size))`), partial (`Some(None)`) or absent (`None`).
        let held = self.blob_sizes().await?;
        let (mut kept, mut expired) = (HashSet::new(), HashSet::new());
        for tag in tags {
            let tag = tag.map_err(|e| fail(format!("listing tags: {e}")))?;
            let keep_it = match parse_partial(&tag.name.0) {
                Some((hash, at)) => match held.get(&hash) {
                    Some(None) => wanted(&hash, at),
                    // Nothing arrived yet: only a fetch still running needs the tag.
                    None => fetching.contains(&hash),
                    // Complete: the fetch's own tag (or `keep`) decides now.
                    Some(Some(_)) => false,
                },
                None => false,
            };
            let partial = held.get(&tag.hash) == Some(&None);
            if keep_it {
                if partial {
                    kept.insert(tag.hash);
                }
            } else {
                self.store
                    .tags()
                    .delete(&tag.name)
                    .await
                    .map_err(|e| fail(format!("deleting tag {}: {e}", tag.name)))?;
                if partial {
                    expired.insert(tag.hash);
                }
            }
        }
        // The HTTP fallback's part files: by their modification time.
        if let Ok(dir) = std::fs::read_dir(self.data_dir.join("partial")) {
            for entry in dir.flatten() {
                let path = entry.path();
                let Some(hash) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|hex| crate::BlobRef::from_hex(hex, 0).ok())
                    .map(|b| b.hash)
                else {
                    continue;
                };
                let at = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                if wanted(&hash, at) {
                    kept.insert(hash);
                } else if std::fs::remove_file(&path).is_ok() {
                    expired.insert(hash);
                }
            }
        }
        let expired = expired.difference(&kept).count();
        Ok((kept.len(), expired))
    }

    /// Marks `hash` as a partial download as of now (see [`Swarm::gc`]).
    pub(crate) async fn mark_partial(&self, hash: &Hash) {
        let prefix = partial_prefix(hash);
        let name = format!("{prefix}{}", unix_now());
        // The new tag first: the blob is never without one.
        if let Err(e) = self.store.tags().set(&name, *hash).await {
            tracing::warn!(error = %e, %hash, "could not tag a partial download");
            return;
        }
        let Ok(tags) = self.store.tags().list_prefix(&prefix).await else {
            return;
        };
        let tags: Vec<_> = tags.collect().await;
        for tag in tags.into_iter().flatten() {
            if tag.name.0 != name.as_bytes() {
                let _ = self.store.tags().delete(&tag.name).await;
            }
        }
    }

    /// Gives up a partial download of `hash` (e.g. its disk is full): the next [`Swarm::gc`]
    /// collects it unless `keep` names it.
    pub async fn forget_partial(&self, hash: &Hash) {
        self.clear_partial(hash).await;
    }

    /// `hash` is no longer a partial download (complete, or refused).
    pub(crate) async fn clear_partial(&self, hash: &Hash) {
        if let Err(e) = self.store.tags().delete_prefix(partial_prefix(hash)).await {
            tracing::debug!(error = %e, "no partial tag to delete");
        }
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
