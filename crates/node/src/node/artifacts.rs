//! An app's artifacts in the swarm: fetch each image (verified against its hash and size)
//! by the fetch policy from peers, tracker peers and the origin; pin what an installed app
//! uses, release pins it no longer uses, announce what this node holds, and collect blobs
//! nothing references, under the operation lock so nothing being installed is collected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use archy_orchestrator::{ArchiveSource, ImageArchive, Progress, ProgressSink, Stage};
use archy_registry::VerifiedApp;
use archy_swarm::{BlobBytes, BlobRef, PeerAddr};
use tracing::{info, warn};

use super::error::internal;
use super::{ErrorKind, Node, NodeError};
use crate::db;

/// A tracker that does not answer within this is treated as absent.
const TRACKER_TIMEOUT: Duration = Duration::from_secs(10);
/// One small call on the blob store (a pin, a tag listing).
const STORE_CALL_WITHIN: Duration = Duration::from_secs(30);
/// A garbage collection of the blob store.
const GC_WITHIN: Duration = Duration::from_secs(120);
/// A fetch (its peers and origin attempts have deadlines of their own; this is the cap).
const FETCH_WITHIN: Duration = Duration::from_secs(2 * 3600);

/// An app's image archives in the swarm store, for the orchestrator to load: each blob is
/// opened when it is loaded ([`archy_swarm::Swarm::open_complete`]: the store's own file,
/// not a copy) and read once, straight into Podman. The bytes were verified against the
/// catalog's hash when they entered the store, and are not hashed again.
pub(super) struct StoreImages {
    swarm: std::sync::Arc<archy_swarm::Swarm>,
    blobs: BTreeMap<String, BlobRef>,
}

impl StoreImages {
    /// No images (an app whose containers are all there: nothing to load).
    pub(super) fn none(swarm: std::sync::Arc<archy_swarm::Swarm>) -> Self {
        Self {
            swarm,
            blobs: BTreeMap::new(),
        }
    }
}

impl archy_orchestrator::ImageSource for StoreImages {
    fn open<'a>(
        &'a self,
        artifact: &'a str,
    ) -> archy_orchestrator::BoxFuture<'a, archy_orchestrator::Result<ImageArchive>> {
        Box::pin(async move {
            let blob = self
                .blobs
                .get(artifact)
                .ok_or_else(|| archy_orchestrator::Error::MissingImage(artifact.to_owned()))?;
            let unavailable = |reason: String| archy_orchestrator::Error::ImageUnavailable {
                artifact: artifact.to_owned(),
                reason,
            };
            let bytes = tokio::time::timeout(STORE_CALL_WITHIN, self.swarm.open_complete(blob))
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "the swarm store did not answer within {} s",
                        STORE_CALL_WITHIN.as_secs()
                    ))
                })?
                .map_err(|e| unavailable(e.to_string()))?;
            let source = match bytes {
                BlobBytes::File(file) => ArchiveSource::File(file),
                BlobBytes::Reader(reader) => ArchiveSource::Stream(Box::pin(reader)),
            };
            Ok(ImageArchive {
                what: format!("artifact {artifact} (blake3 {})", blob.hex()),
                size: blob.size,
                source,
            })
        })
    }
}

/// Where an install or update fetches from.
#[derive(Clone, Copy)]
pub(super) struct FetchFrom<'a> {
    /// The origin's iroh address, when `/v1/swarm/addr` gave one matching the signed id.
    pub(super) iroh: Option<&'a PeerAddr>,
    pub(super) http: &'a str,
    /// The first-party catalog origin, which runs a tracker to ask and announce to.
    pub(super) first_party: bool,
}

impl Node {
    /// Where the catalog's origin listens on iroh; its id must be the one the catalog signs.
    pub(super) async fn origin_peer(
        &self,
        origin: &archy_registry::Origin,
    ) -> Result<PeerAddr, NodeError> {
        let url = format!("{}/v1/swarm/addr", origin.http.trim_end_matches('/'));
        let bytes = self.get_bounded(&url, 64 * 1024).await?;
        let peer: PeerAddr = serde_json::from_slice(&bytes).map_err(|e| {
            NodeError::new(
                ErrorKind::Unavailable,
                format!("{url}: not a swarm address: {e}"),
            )
        })?;
        if peer.id != origin.iroh {
            return Err(NodeError::new(
                ErrorKind::Refused,
                format!(
                    "{url} names endpoint {} but the signed document names the origin {}",
                    peer.id, origin.iroh
                ),
            ));
        }
        Ok(peer)
    }

    /// Fetches (or finds in the local store) every image artifact of `app`, verified against
    /// its hash and size; the orchestrator loads them from the store ([`StoreImages`]).
    pub(super) async fn fetch_images(
        &self,
        app: &VerifiedApp,
        origin: Option<FetchFrom<'_>>,
        progress: ProgressSink<'_>,
    ) -> Result<StoreImages, NodeError> {
        let total: u64 = app.artifacts().iter().map(|a| a.size).sum();
        let mut before = 0u64;
        let id = app.manifest().id.as_str();
        let mut images = BTreeMap::new();
        for c in &app.manifest().containers {
            let Some(name) = &c.image.artifact else {
                continue;
            };
            if images.contains_key(name) {
                continue;
            }
            let artifact = app
                .artifact(name)
                .ok_or_else(|| internal(format!("catalog lacks artifact {name}")))?;
            let blob = BlobRef::from_hex(&artifact.blake3, artifact.size).map_err(internal)?;
            info!(app = id, artifact = name, hash = %artifact.blake3, size = artifact.size, "fetching over iroh");
            let base = before;
            // The fetch tells every verified leaf (16 KiB): tens of thousands of calls for a
            // big image. Each progress event goes through the job's history and broadcast
            // and out as one NDJSON line to every watcher, so only steps of
            // [`PROGRESS_STEP`] (and the end) are passed on.
            let told = std::sync::atomic::AtomicU64::new(0);
            let blob_size = blob.size;
            let on_bytes = |n: u64| {
                if !progress_due(&told, n, blob_size) {
                    return;
                }
                progress(Progress::new(
                    Stage::Fetching,
                    base + n,
                    total,
                    name.clone(),
                ))
            };
            progress(Progress::new(Stage::Fetching, base, total, name.clone()));
            let fetched = match &origin {
                Some(from) => {
                    let http = from.http;
                    // Only the first-party origin runs a tracker; a developer's node does not.
                    let peers = if from.first_party {
                        self.peers_for(&blob, http).await
                    } else {
                        self.known_peers()
                    };
                    let providers = archy_swarm::Providers {
                        origin: from.iroh.cloned(),
                        origin_http: Some(http.to_owned()),
                        peers,
                        tracker: from.first_party.then(|| http.to_owned()),
                    };
                    // The fetch has its own deadlines; the store is watched meanwhile.
                    let fetched = self
                        .store_call(
                            &format!("artifact {name} of {id}"),
                            FETCH_WITHIN,
                            self.swarm.fetch_with_policy(
                                &blob,
                                &providers,
                                &self.fetch_policy(),
                                &on_bytes,
                            ),
                        )
                        .await?;
                    if let Ok(report) = &fetched {
                        info!(
                            app = id,
                            artifact = name,
                            from_peers = report.bytes_from_peers,
                            from_origin_iroh = report.bytes_from_origin_iroh,
                            from_origin_http = report.bytes_from_origin_http,
                            fallbacks = report.fallbacks.len(),
                            "artifact fetched"
                        );
                        if from.first_party {
                            self.announce(http, &[blob.hash]);
                        }
                    }
                    fetched
                }
                None => {
                    self.store_call(
                        &format!("artifact {name} of {id}"),
                        FETCH_WITHIN,
                        self.swarm.fetch_observed(&blob, &[], &on_bytes),
                    )
                    .await?
                }
            };
            before += blob.size;
            if let Err(e) = fetched {
                let store = self.config.data_dir.join("swarm");
                let Some(full) = no_space_in(&e.to_string(), &store, blob.size) else {
                    return Err(NodeError::new(
                        ErrorKind::Unavailable,
                        format!("artifact {name} of {id}: {e}"),
                    ));
                };
                // A full disk: the stopped fetch is not kept for resuming (it is fetched
                // again when there is room). Collecting it at once, on the full disk, can
                // kill the store's actor, so the next upkeep does it.
                self.swarm.forget_partial(&blob.hash).await;
                return Err(full);
            }
            images.insert(name.clone(), blob);
        }
        Ok(StoreImages {
            swarm: self.swarm.clone(),
            blobs: images,
        })
    }

    /// Fetches one artifact of the verified, unexpired catalog into the store by the fetch
    /// policy (peers first, origin always wins), installs nothing, and announces it to the
    /// tracker. Only a hash the catalog names is fetched, at the size it declares: the API
    /// cannot make the node download anything the signed catalog does not vouch for.
    pub async fn fetch_catalog_blob(&self, hash: &str) -> Result<archy_api::SwarmFetch, NodeError> {
        self.refuse_publish_only(&format!("fetch {hash}"))?;
        let catalog = self.installable_catalog().await?;
        let named: Vec<(String, u64)> = catalog
            .catalog()
            .apps
            .iter()
            .flat_map(|a| {
                a.artifacts
                    .iter()
                    .filter(|x| x.blake3 == hash)
                    .map(move |x| (format!("{}/{}", a.id, x.name), x.size))
            })
            .collect();
        let Some(&(_, size)) = named.first() else {
            return Err(NodeError::new(
                ErrorKind::NotFound,
                format!(
                    "no artifact of catalog version {} has hash {hash}",
                    catalog.version()
                ),
            ));
        };
        if named.iter().any(|(_, s)| *s != size) {
            return Err(NodeError::new(
                ErrorKind::Refused,
                format!("the catalog declares hash {hash} with different sizes"),
            ));
        }
        let blob = BlobRef::from_hex(hash, size).map_err(internal)?;
        let store = self.config.data_dir.join("swarm");
        if let Some(free) = free_bytes(&store)
            && free < size
        {
            return Err(no_space(&store, size, free));
        }
        let origin = &catalog.catalog().origin;
        let peer = match self.origin_peer(origin).await {
            Ok(peer) => Some(peer),
            Err(e) => {
                warn!(error = %e, "origin's iroh address unknown; HTTP only");
                None
            }
        };
        let providers = archy_swarm::Providers {
            origin: peer,
            origin_http: Some(origin.http.clone()),
            peers: self.peers_for(&blob, &origin.http).await,
            tracker: Some(origin.http.clone()),
        };
        let started = std::time::Instant::now();
        let report = self
            .store_call(
                &format!("blob {hash}"),
                FETCH_WITHIN,
                self.swarm
                    .fetch_with_policy(&blob, &providers, &self.fetch_policy(), &|_| {}),
            )
            .await?
            .map_err(|e| NodeError::new(ErrorKind::Unavailable, format!("blob {hash}: {e}")))?;
        let elapsed = started.elapsed();
        info!(
            hash,
            from_peers = report.bytes_from_peers,
            from_origin_iroh = report.bytes_from_origin_iroh,
            from_origin_http = report.bytes_from_origin_http,
            ms = elapsed.as_millis() as u64,
            "blob fetched"
        );
        self.announce(&origin.http, &[blob.hash]);
        Ok(archy_api::SwarmFetch {
            hash: hash.to_owned(),
            size,
            named_by: named.into_iter().map(|(n, _)| n).collect(),
            already_present: report.already_present,
            coalesced: report.coalesced,
            bytes_from_peers: report.bytes_from_peers,
            bytes_from_origin_iroh: report.bytes_from_origin_iroh,
            bytes_from_origin_http: report.bytes_from_origin_http,
            peer_paths: report
                .peer_paths
                .into_iter()
                .map(|p| archy_api::PeerPathBytes {
                    peer: p.peer,
                    direct_bytes: p.direct_bytes,
                    relayed_bytes: p.relayed_bytes,
                })
                .collect(),
            fallbacks: report
                .fallbacks
                .into_iter()
                .map(|f| archy_api::FetchFallback {
                    provider: f.provider,
                    reason: serde_json::to_value(f.reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("{:?}", f.reason)),
                    detail: f.detail,
                })
                .collect(),
            detour_ms: report.detour.as_millis() as u64,
            elapsed_ms: elapsed.as_millis() as u64,
        })
    }

    /// Who else may hold `blob`: static peers, local-network peers, and whoever the origin's
    /// tracker says announced it. None of them is trusted: every byte is verified.
    async fn peers_for(&self, blob: &BlobRef, origin_http: &str) -> Vec<PeerAddr> {
        let mut peers = self.known_peers();
        let asked = tokio::time::timeout(
            TRACKER_TIMEOUT,
            self.swarm.providers(origin_http, &blob.hash),
        )
        .await
        .unwrap_or_else(|_| {
            Err(archy_swarm::Error::Tracker {
                url: origin_http.to_owned(),
                reason: "no answer in time".into(),
            })
        });
        match asked {
            Ok(found) => {
                for p in found {
                    if !peers.iter().any(|q| q.id == p.id) {
                        peers.push(p);
                    }
                }
            }
            // An origin without a tracker (e.g. a developer's node) is normal.
            Err(e) => info!(error = %e, "no tracker answer; peers from config only"),
        }
        peers
    }

    fn fetch_policy(&self) -> archy_swarm::FetchPolicy {
        self.fetch_policy.clone()
    }

    /// Tells the origin's tracker, in the background, that this node now holds `hashes`.
    fn announce(&self, origin_http: &str, hashes: &[archy_swarm::Hash]) {
        let swarm = self.swarm.clone();
        let origin = origin_http.to_owned();
        let hashes = hashes.to_vec();
        tokio::spawn(async move {
            match tokio::time::timeout(TRACKER_TIMEOUT, swarm.announce(&origin, &hashes)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => info!(error = %e, "announce to the tracker failed"),
                Err(_) => info!(tracker = %origin, "announce to the tracker timed out"),
            }
        });
    }

    /// Swarm upkeep after a pull: re-announce what this node holds to the catalog origin's
    /// tracker (within its time-to-live), and drop blobs that neither the current catalog
    /// nor an installed app references. Pinned blobs (installed apps, publications) stay.
    pub async fn swarm_upkeep(&self) -> Result<archy_swarm::GcReport, NodeError> {
        let Some(origin) = self
            .trust
            .read()
            .await
            .catalog()
            .map(|c| c.catalog().origin.http.clone())
        else {
            return Ok(Default::default());
        };
        // A dead or wedged store is not worth the operation lock: stop, start and restart
        // wait for that lock and need no store.
        self.check_store().await.map_err(internal)?;
        // Under the operation lock: a blob being installed is referenced only once the
        // install is recorded, so collection must not run in between.
        let report = {
            let _lock = self.exclusive().await;
            self.collect_unreferenced().await?
        };
        match tokio::time::timeout(TRACKER_TIMEOUT, self.swarm.announce_held(&origin)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => info!(error = %e, "announce to the tracker failed"),
            Err(_) => info!(tracker = %origin, "announce to the tracker timed out"),
        }
        Ok(report)
    }

    /// Drops blobs that neither the current catalog nor an installed app references (after
    /// a failed install, what it fetched only for itself). Call with the operation lock held.
    pub(super) async fn collect_unreferenced(&self) -> Result<archy_swarm::GcReport, NodeError> {
        self.collect_unreferenced_except(&[]).await
    }

    /// [`Self::collect_unreferenced`], also dropping `give_up` (blobs referenced but not
    /// wanted now, such as a partial fetch a full disk stopped).
    pub(super) async fn collect_unreferenced_except(
        &self,
        give_up: &[archy_swarm::Hash],
    ) -> Result<archy_swarm::GcReport, NodeError> {
        let mut keep = {
            let trust = self.trust.read().await;
            let Some(catalog) = trust.catalog() else {
                return Ok(Default::default());
            };
            let keep: std::collections::HashSet<archy_swarm::Hash> = catalog
                .catalog()
                .apps
                .iter()
                .flat_map(|a| a.artifacts.iter())
                .filter_map(|a| BlobRef::from_hex(&a.blake3, a.size).ok())
                .map(|b| b.hash)
                .collect();
            keep
        };
        for row in db::apps(&self.db).await? {
            if let Ok((_, app)) = self.installed_app(&row.id).await {
                keep.extend(
                    app.artifacts()
                        .iter()
                        .filter_map(|a| BlobRef::from_hex(&a.blake3, a.size).ok())
                        .map(|b| b.hash),
                );
            }
        }
        for hash in give_up {
            keep.remove(hash);
        }
        let report = self
            .store_call(
                "collecting unreferenced blobs",
                GC_WITHIN,
                self.swarm.gc(&keep),
            )
            .await?
            .map_err(internal)?;
        if !report.removed.is_empty() {
            info!(
                removed = report.removed.len(),
                bytes = report.bytes_freed,
                "unreferenced blobs collected"
            );
        }
        Ok(report)
    }

    /// Everything an install of `app` writes, checked against the free space of each
    /// filesystem before anything is fetched: the blobs in the swarm store, and in Podman's
    /// graph root what loading unpacks (the archive the service receives, the layers, and
    /// the user namespace's chowned copy) plus the manifest's `disk_mb`. Nothing else: the
    /// archive goes from the store to Podman without a copy of its own. Places on one
    /// filesystem add up.
    pub(super) fn check_install_space(&self, app: &VerifiedApp) -> Result<(), NodeError> {
        let artifacts: u64 = app.artifacts().iter().map(|a| a.size).sum();
        let needs = install_needs(
            &self.config.data_dir,
            std::path::Path::new(self.orchestrator.graph_root()),
            artifacts,
            app.manifest().resources.disk_mb,
        );
        for (path, needed) in needs {
            if let Some(free) = free_bytes(&path)
                && free < needed
            {
                return Err(no_space(&path, needed, free));
            }
        }
        Ok(())
    }

    /// Pins an installed app's blobs under its name, so the store keeps them for repairs
    /// and rollbacks without the network.
    pub(super) async fn pin_artifacts(&self, app: &VerifiedApp) {
        for artifact in app.artifacts() {
            let Ok(blob) = BlobRef::from_hex(&artifact.blake3, artifact.size) else {
                continue;
            };
            let tag = format!("archy/app/{}/{}", app.manifest().id, artifact.name);
            match self
                .store_call(
                    "pinning",
                    STORE_CALL_WITHIN,
                    self.swarm.pin(&blob.hash, &tag),
                )
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(%tag, error = %e, "could not pin artifact"),
                Err(e) => warn!(%tag, error = %e, "could not pin artifact"),
            }
        }
    }

    /// After an update, releases the pins of artifacts the new version no longer has.
    pub(super) async fn unpin_dropped_artifacts(&self, app: &VerifiedApp) {
        let prefix = format!("archy/app/{}/", app.manifest().id);
        let Ok(Ok(pins)) = self
            .store_call("listing pins", STORE_CALL_WITHIN, self.swarm.pins(&prefix))
            .await
        else {
            return;
        };
        for (tag, _) in pins {
            let name = tag.strip_prefix(&prefix).unwrap_or_default();
            if app.artifact(name).is_none() {
                self.unpin(&tag).await;
            }
        }
    }

    /// Releases an app's pinned blobs; they stay only while a catalog references them.
    pub(super) async fn unpin_app(&self, id: &str) {
        let prefix = format!("archy/app/{id}/");
        if let Ok(Ok(pins)) = self
            .store_call("listing pins", STORE_CALL_WITHIN, self.swarm.pins(&prefix))
            .await
        {
            for (tag, _) in pins {
                self.unpin(&tag).await;
            }
        }
    }

    /// Releases one pin, within [`STORE_CALL_WITHIN`]; a failure is only logged.
    async fn unpin(&self, tag: &str) {
        match self
            .store_call("unpinning", STORE_CALL_WITHIN, self.swarm.unpin(tag))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(%tag, error = %e, "could not unpin"),
            Err(e) => warn!(%tag, error = %e, "could not unpin"),
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// Fetch progress is passed on in steps of this many bytes (and at the end).
const PROGRESS_STEP: u64 = MIB;

/// Whether `n` bytes of a blob of `size` is worth an event, after the last one `told`:
/// a step further on, or the end (once).
fn progress_due(told: &std::sync::atomic::AtomicU64, n: u64, size: u64) -> bool {
    use std::sync::atomic::Ordering;
    let last = told.load(Ordering::Relaxed);
    let due = n > last && (n >= size || n - last >= PROGRESS_STEP);
    due && told
        .compare_exchange(last, n, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
}

/// Where an install writes and how much, one entry per filesystem (places on one
/// filesystem add up; the entry names the first of them).
fn install_needs(
    data_dir: &Path,
    graph_root: &Path,
    artifact_bytes: u64,
    disk_mb: u64,
) -> Vec<(PathBuf, u64)> {
    let places = [
        (data_dir.join("swarm"), artifact_bytes),
        (
            graph_root.to_owned(),
            disk_mb
                .saturating_mul(MIB)
                .saturating_add(artifact_bytes.saturating_mul(3)),
        ),
    ];
    let mut needs: Vec<(Option<u64>, PathBuf, u64)> = Vec::new();
    for (path, bytes) in places {
        let device = device_of(&path);
        match needs
            .iter_mut()
            .find(|(d, _, _)| device.is_some() && *d == device)
        {
            Some(entry) => entry.2 = entry.2.saturating_add(bytes),
            None => needs.push((device, path, bytes)),
        }
    }
    needs.into_iter().map(|(_, p, b)| (p, b)).collect()
}

/// The filesystem holding `path` (its nearest existing ancestor).
fn device_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let existing = path.ancestors().find(|p| p.exists())?;
    std::fs::metadata(existing).ok().map(|m| m.dev())
}

/// Bytes an unprivileged user may still write on the filesystem holding `path`, from
/// POSIX `df -P -k` (the nearest existing ancestor); `None` when it cannot be told.
fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let out = std::process::Command::new("df")
        .args(["-P", "-k", "--"])
        .arg(existing)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// Whether an error's text says a disk was full (ENOSPC, `io::ErrorKind::StorageFull`).
pub(super) fn is_no_space(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("no space left on device") || m.contains("os error 28") || m.contains("enospc")
}

/// The one message for a full disk: where, what was needed and what is left.
pub(super) fn no_space(path: &Path, needed: u64, free: u64) -> NodeError {
    NodeError::new(
        ErrorKind::Refused,
        format!(
            "no space left on {}: need {} MiB, have {} MiB",
            path.display(),
            needed.div_ceil(MIB),
            free / MIB
        ),
    )
}

/// [`no_space`] when `message` says a disk was full while writing `needed` bytes at `path`.
pub(super) fn no_space_in(message: &str, path: &Path, needed: u64) -> Option<NodeError> {
    is_no_space(message).then(|| no_space(path, needed, free_bytes(path).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_with_what_is_needed_and_left() {
        let e = no_space(
            Path::new("/var/lib/archy/swarm"),
            100 * MIB + 1,
            12 * MIB + 5,
        );
        assert_eq!(e.kind, ErrorKind::Refused);
        assert_eq!(
            e.message,
            "no space left on /var/lib/archy/swarm: need 101 MiB, have 12 MiB"
        );
        let io = std::io::Error::from_raw_os_error(28);
        assert!(is_no_space(&format!("writing blob: {io}")), "{io}");
        assert!(is_no_space(
            "`podman load` failed: Error: writing blob: storing blob to file: write /var/tmp/x: no space left on device"
        ));
        assert!(!is_no_space("connection refused"));
        let dir = tempfile::tempdir().unwrap();
        let e = no_space_in("No space left on device (os error 28)", dir.path(), MIB).unwrap();
        assert!(
            e.message.starts_with(&format!(
                "no space left on {}: need 1 MiB, have ",
                dir.path().display()
            )),
            "{}",
            e.message
        );
    }

    #[test]
    fn fetch_progress_is_passed_on_in_steps_and_at_the_end() {
        let told = std::sync::atomic::AtomicU64::new(0);
        let size = 256 * MIB;
        // What the fetch tells: every 16 KiB leaf.
        let events = (1..=size / (16 * 1024))
            .map(|leaf| leaf * 16 * 1024)
            .filter(|&n| progress_due(&told, n, size))
            .collect::<Vec<_>>();
        assert_eq!(events.len(), 256, "one per MiB");
        assert_eq!(events.last(), Some(&size), "the end is always told");
        assert!(!progress_due(&told, size, size), "once");
        // A small blob: its end only.
        let told = std::sync::atomic::AtomicU64::new(0);
        assert!(!progress_due(&told, 1000, 5000));
        assert!(progress_due(&told, 5000, 5000));
    }

    #[test]
    fn places_on_one_filesystem_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let needs = install_needs(dir.path(), &dir.path().join("graph"), 10 * MIB, 5);
        assert_eq!(needs.len(), 1, "{needs:?}");
        // The blobs once in the store, three times their size in the graph root, disk_mb:
        // no export copy any more.
        assert_eq!(needs[0].1, 10 * MIB + 5 * MIB + 30 * MIB);
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
    }
}
