//! The swarm: a content-addressed blob store on disk, an iroh endpoint that serves it,
//! and fetches that verify every byte against its BLAKE3 hash as it streams.
//!
//! This crate knows hashes and sizes, never apps or manifests. The caller decides what
//! a hash is worth (from a verified catalog) and who the origin is.

mod origin;
mod peer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bao_tree::{ChunkNum, ChunkRanges};
use futures::StreamExt;
use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::presets;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointId, RelayMode, SecretKey};
use iroh_blobs::api::blobs::BlobStatus;
use iroh_blobs::api::downloader::{DownloadProgressItem, Downloader};
use iroh_blobs::protocol::GetRequest;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::{BlobsProtocol, Hash};
use tracing::{debug, info, warn};

pub use origin::http_routes;
pub use peer::PeerAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not a BLAKE3 hash (64 hex characters)")]
    BadHash(String),
    #[error("swarm store at {path}: {reason}")]
    Store { path: PathBuf, reason: String },
    #[error("iroh endpoint: {0}")]
    Endpoint(String),
    #[error("secret key file {path}: {reason}")]
    SecretKey { path: PathBuf, reason: String },
    #[error("blob {hash}: no provider could serve it ({reason})")]
    Unavailable { hash: String, reason: String },
    #[error("blob {hash}: declared size is {declared} bytes but the content is {actual} bytes")]
    SizeMismatch {
        hash: String,
        declared: u64,
        actual: String,
    },
    #[error("blob {hash}: {reason}")]
    Blob { hash: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A blob as a verified document names it: hash and exact size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    pub hash: Hash,
    pub size: u64,
}

impl BlobRef {
    pub fn from_hex(hash: &str, size: u64) -> Result<Self> {
        if hash.len() != 64 {
            return Err(Error::BadHash(hash.to_owned()));
        }
        let hash = Hash::from_str(hash).map_err(|_| Error::BadHash(hash.to_owned()))?;
        Ok(Self { hash, size })
    }

    pub fn hex(&self) -> String {
        self.hash.to_hex().to_string()
    }
}

/// How the swarm node is set up. All fields have offline-friendly defaults via [`SwarmConfig::new`].
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Directory of the blob store and the endpoint's secret key.
    pub data_dir: PathBuf,
    /// UDP address the iroh endpoint binds. Loopback by default.
    pub bind: SocketAddr,
    /// How long a connection attempt to one provider may take.
    pub connect_timeout: Duration,
}

impl SwarmConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Told the number of bytes of a blob held so far.
pub type ByteSink<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// What one fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// The blob was complete in the store already; nothing moved.
    pub already_present: bool,
    /// Providers tried that failed, in order.
    pub failed_providers: Vec<String>,
}

/// Totals since start, for the node's status (DESIGN "Observable").
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SwarmMetrics {
    /// Bytes of blobs completed over iroh.
    pub bytes_from_iroh: u64,
    /// Bytes of blobs completed over HTTP from the origin.
    pub bytes_from_http: u64,
    /// Fetches that fell back from iroh to HTTP.
    pub http_fallbacks: u64,
    /// Downloads refused because their bytes did not match the hash or size.
    pub verification_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    bytes_from_iroh: AtomicU64,
    bytes_from_http: AtomicU64,
    http_fallbacks: AtomicU64,
    verification_failures: AtomicU64,
}

/// A running swarm node: blob store + iroh endpoint serving it + downloader.
pub struct Swarm {
    store: FsStore,
    router: Router,
    lookup: MemoryLookup,
    downloader: Downloader,
    data_dir: PathBuf,
    http: reqwest::Client,
    counters: Counters,
}

impl Swarm {
    /// Opens (or creates) the store under `config.data_dir` and binds the endpoint with
    /// relays, port mapping and outside discovery off: peers are found only by address.
    pub async fn start(config: SwarmConfig) -> Result<Self> {
        let blobs_dir = config.data_dir.join("blobs");
        std::fs::create_dir_all(&blobs_dir).map_err(|e| Error::Store {
            path: blobs_dir.clone(),
            reason: e.to_string(),
        })?;
        let secret_key = load_or_create_secret_key(&config.data_dir.join("iroh.key"))?;
        let store = FsStore::load(&blobs_dir).await.map_err(|e| Error::Store {
            path: blobs_dir.clone(),
            reason: e.to_string(),
        })?;
        let lookup = MemoryLookup::new();
        let endpoint = Endpoint::builder(presets::Minimal)
            .secret_key(secret_key)
            .relay_mode(RelayMode::Disabled)
            .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled)
            .address_lookup(lookup.clone())
            .bind_addr(config.bind)
            .map_err(|e| Error::Endpoint(e.to_string()))?
            .bind()
            .await
            .map_err(|e| Error::Endpoint(e.to_string()))?;
        let blobs = BlobsProtocol::new(&store, None);
        let router = Router::builder(endpoint.clone())
            .accept(iroh_blobs::ALPN, blobs)
            .spawn();
        let mut pool = iroh_blobs::util::connection_pool::Options::default();
        pool.connect_timeout = config.connect_timeout;
        let downloader = Downloader::builder(&store, &endpoint)
            .pool_options(pool)
            .build();
        info!(endpoint_id = %endpoint.id(), addrs = ?endpoint.bound_sockets(), "swarm endpoint up");
        Ok(Self {
            store,
            router,
            lookup,
            downloader,
            data_dir: config.data_dir,
            http: {
                // reqwest is built without a bundled TLS provider; use ring, as iroh does.
                // Installing fails only when a provider is already set, which is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
            }
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| Error::Endpoint(format!("http client: {e}")))?,
            counters: Counters::default(),
        })
    }

    pub fn endpoint_id(&self) -> EndpointId {
        self.router.endpoint().id()
    }

    /// This node's id and the addresses it listens on, for others to dial.
    pub fn addr(&self) -> PeerAddr {
        PeerAddr {
            id: self.endpoint_id().to_string(),
            addrs: self.router.endpoint().bound_sockets(),
        }
    }

    /// Teaches the endpoint where a peer listens (no outside discovery is used).
    pub fn add_peer(&self, peer: &PeerAddr) -> Result<EndpointId> {
        let addr = peer.to_endpoint_addr()?;
        let id = addr.id;
        self.lookup.add_endpoint_info(addr);
        Ok(id)
    }

    /// Imports a local file (the origin's artifacts) and returns its hash and size.
    /// The blob is pinned under `tag` so garbage collection keeps it.
    pub async fn import_file(&self, path: &Path, tag: &str) -> Result<BlobRef> {
        let absolute = std::path::absolute(path).map_err(|e| Error::Store {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let info = self
            .store
            .blobs()
            .add_path(absolute)
            .with_named_tag(tag)
            .await
            .map_err(|e| Error::Store {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let size = self.complete_size(&info.hash).await?.unwrap_or_default();
        Ok(BlobRef {
            hash: info.hash,
            size,
        })
    }

    /// Size of the blob when it is complete in the store.
    pub async fn complete_size(&self, hash: &Hash) -> Result<Option<u64>> {
        match self.store.blobs().status(*hash).await {
            Ok(BlobStatus::Complete { size }) => Ok(Some(size)),
            Ok(_) => Ok(None),
            Err(e) => Err(Error::Blob {
                hash: hash.to_hex().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Fetches `blob` from `providers` (tried in order), verifying every chunk against the
    /// hash as it streams. Only the chunks the declared size covers are requested, so a
    /// provider cannot make us store more than the verified document allows; a blob that
    /// turns out larger or smaller than declared is refused and dropped.
    pub async fn fetch(&self, blob: &BlobRef, providers: &[PeerAddr]) -> Result<FetchReport> {
        self.fetch_observed(blob, providers, &|_| {}).await
    }

    /// [`Self::fetch`], telling `on_bytes` how many verified bytes the store holds so far.
    pub async fn fetch_observed(
        &self,
        blob: &BlobRef,
        providers: &[PeerAddr],
        on_bytes: ByteSink<'_>,
    ) -> Result<FetchReport> {
        let hash_hex = blob.hex();
        if let Some(size) = self.complete_size(&blob.hash).await? {
            self.check_size(blob, size).await?;
            return Ok(FetchReport {
                already_present: true,
                ..Default::default()
            });
        }
        let mut ids = Vec::with_capacity(providers.len());
        for p in providers {
            ids.push(self.add_peer(p)?);
        }
        // Chunk 0 is needed even for an empty blob: its proof carries the size.
        let chunks = ChunkNum::chunks(blob.size).max(ChunkNum(1));
        let request = GetRequest::blob_ranges(blob.hash, ChunkRanges::from(ChunkNum(0)..chunks));
        let mut report = FetchReport::default();
        let mut last_error = String::from("no providers");
        let mut progress = self
            .downloader
            .download(request, ids)
            .stream()
            .await
            .map_err(|e| Error::Unavailable {
                hash: hash_hex.clone(),
                reason: e.to_string(),
            })?;
        while let Some(item) = progress.next().await {
            match item {
                DownloadProgressItem::TryProvider { id, .. } => {
                    debug!(%id, hash = %hash_hex, "trying provider")
                }
                DownloadProgressItem::ProviderFailed { id, .. } => {
                    warn!(%id, hash = %hash_hex, "provider failed");
                    report.failed_providers.push(id.to_string());
                    last_error = format!("provider {id} failed");
                }
                DownloadProgressItem::Error(e) => last_error = e.to_string(),
                DownloadProgressItem::DownloadError => {}
                DownloadProgressItem::Progress(bytes) => on_bytes(bytes.min(blob.size)),
                DownloadProgressItem::PartComplete { .. } => {}
            }
        }
        match self.store.blobs().status(blob.hash).await {
            Ok(BlobStatus::Complete { size }) => {
                self.check_size(blob, size).await?;
                self.pin(&blob.hash, &fetched_tag(&blob.hash)).await?;
                self.counters
                    .bytes_from_iroh
                    .fetch_add(size, Ordering::Relaxed);
                Ok(report)
            }
            Ok(BlobStatus::Partial { size }) if report.failed_providers.len() < providers.len() => {
                // Every declared chunk arrived and verified, yet the blob is not complete:
                // the content is longer than the catalog says.
                self.drop_blob(&blob.hash).await;
                Err(Error::SizeMismatch {
                    hash: hash_hex,
                    declared: blob.size,
                    actual: size.map_or("larger".into(), |s| format!("{s}")),
                })
            }
            _ => Err(Error::Unavailable {
                hash: hash_hex,
                reason: last_error,
            }),
        }
    }

    async fn check_size(&self, blob: &BlobRef, actual: u64) -> Result<()> {
        if actual != blob.size {
            self.counters
                .verification_failures
                .fetch_add(1, Ordering::Relaxed);
            self.drop_blob(&blob.hash).await;
            return Err(Error::SizeMismatch {
                hash: blob.hex(),
                declared: blob.size,
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Removes our claim on a blob so the store's garbage collection drops it.
    async fn drop_blob(&self, hash: &Hash) {
        if let Err(e) = self.store.tags().delete(fetched_tag(hash)).await {
            debug!(error = %e, "no tag to delete");
        }
    }

    /// Pins a complete blob under a name (an installed app's artifact).
    pub async fn pin(&self, hash: &Hash, tag: &str) -> Result<()> {
        self.store
            .tags()
            .set(tag, *hash)
            .await
            .map_err(|e| Error::Blob {
                hash: hash.to_hex().to_string(),
                reason: e.to_string(),
            })
    }

    /// Writes a complete blob to a file (e.g. an image archive for `podman load`).
    pub async fn export(&self, blob: &BlobRef, target: &Path) -> Result<()> {
        let absolute = std::path::absolute(target).map_err(|e| Error::Store {
            path: target.to_owned(),
            reason: e.to_string(),
        })?;
        self.store
            .blobs()
            .export(blob.hash, absolute)
            .finish()
            .await
            .map_err(|e| Error::Blob {
                hash: blob.hex(),
                reason: format!("export to {}: {e}", target.display()),
            })?;
        Ok(())
    }

    /// A seekable reader over a complete blob (the HTTP origin streams from it).
    pub(crate) fn reader(&self, hash: &Hash) -> iroh_blobs::api::blobs::BlobReader {
        self.store.blobs().reader(*hash)
    }

    pub fn metrics(&self) -> SwarmMetrics {
        let c = &self.counters;
        SwarmMetrics {
            bytes_from_iroh: c.bytes_from_iroh.load(Ordering::Relaxed),
            bytes_from_http: c.bytes_from_http.load(Ordering::Relaxed),
            http_fallbacks: c.http_fallbacks.load(Ordering::Relaxed),
            verification_failures: c.verification_failures.load(Ordering::Relaxed),
        }
    }

    /// The origin policy: iroh first (verified streaming), then the origin's HTTP when iroh
    /// cannot deliver. A size that does not match is final: the origin's bytes would not
    /// match over HTTP either.
    pub async fn fetch_from_origin(
        &self,
        blob: &BlobRef,
        iroh: Option<&PeerAddr>,
        http_base: &str,
        on_bytes: ByteSink<'_>,
    ) -> Result<FetchReport> {
        let first = match iroh {
            Some(peer) => match self
                .fetch_observed(blob, std::slice::from_ref(peer), on_bytes)
                .await
            {
                Ok(report) => return Ok(report),
                Err(e @ Error::SizeMismatch { .. }) => return Err(e),
                Err(e) => e.to_string(),
            },
            None => "origin has no reachable iroh address".to_owned(),
        };
        warn!(hash = %blob.hex(), reason = %first, "falling back to HTTP");
        self.counters.http_fallbacks.fetch_add(1, Ordering::Relaxed);
        self.fetch_http_observed(blob, http_base, on_bytes)
            .await
            .map_err(|e| Error::Unavailable {
                hash: blob.hex(),
                reason: format!("over iroh: {first}; over HTTP: {e}"),
            })?;
        Ok(FetchReport {
            already_present: false,
            failed_providers: iroh.map(|p| vec![p.id.clone()]).unwrap_or_default(),
        })
    }

    /// Downloads `{http_base}/v1/blobs/{hash}` to a part file (resuming one left by an
    /// interrupted run with `Range`), never past the declared size, hashing as it goes; the
    /// store takes the file only when hash and size match. iroh-blobs' `import_bao*` would
    /// trust the bytes, so this path verifies them itself.
    pub async fn fetch_http(&self, blob: &BlobRef, http_base: &str) -> Result<()> {
        self.fetch_http_observed(blob, http_base, &|_| {}).await
    }

    async fn fetch_http_observed(
        &self,
        blob: &BlobRef,
        http_base: &str,
        on_bytes: ByteSink<'_>,
    ) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let hex = blob.hex();
        if let Some(size) = self.complete_size(&blob.hash).await? {
            return self.check_size(blob, size).await;
        }
        let fail = |reason: String| Error::Blob {
            hash: hex.clone(),
            reason,
        };
        let part = self.data_dir.join("partial").join(format!("{hex}.part"));
        std::fs::create_dir_all(part.parent().unwrap_or(Path::new(".")))
            .map_err(|e| fail(e.to_string()))?;
        let mut hasher = blake3::Hasher::new();
        let mut have = match std::fs::read(&part) {
            Ok(bytes) if (bytes.len() as u64) <= blob.size => {
                hasher.update(&bytes);
                bytes.len() as u64
            }
            _ => 0,
        };
        let url = format!("{}/v1/blobs/{hex}", http_base.trim_end_matches('/'));
        // A part file already holding every byte (a crash before import) needs no request.
        if have < blob.size || blob.size == 0 {
            let mut request = self.http.get(&url);
            if have > 0 {
                request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
            }
            let response = request
                .send()
                .await
                .map_err(|e| fail(format!("GET {url}: {e}")))?;
            match response.status() {
                reqwest::StatusCode::PARTIAL_CONTENT if have > 0 => {}
                reqwest::StatusCode::OK => {
                    // A full answer (no resume asked, or the range ignored): start over.
                    hasher = blake3::Hasher::new();
                    have = 0;
                }
                status => return Err(fail(format!("GET {url} answered {status}"))),
            }
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(have == 0)
                .append(have > 0)
                .open(&part)
                .await
                .map_err(|e| fail(format!("{}: {e}", part.display())))?;
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| fail(format!("GET {url}: {e}")))?;
                if have + chunk.len() as u64 > blob.size {
                    self.counters
                        .verification_failures
                        .fetch_add(1, Ordering::Relaxed);
                    let _ = std::fs::remove_file(&part);
                    return Err(Error::SizeMismatch {
                        hash: hex.clone(),
                        declared: blob.size,
                        actual: "larger".into(),
                    });
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                have += chunk.len() as u64;
                on_bytes(have);
            }
            file.flush().await.map_err(|e| fail(e.to_string()))?;
        }
        let actual = hasher.finalize();
        if have != blob.size || actual != blake3::Hash::from_bytes(*blob.hash.as_bytes()) {
            self.counters
                .verification_failures
                .fetch_add(1, Ordering::Relaxed);
            let _ = std::fs::remove_file(&part);
            return Err(fail(format!(
                "HTTP download does not verify: got {have} bytes with blake3 {}, expected {} bytes",
                actual.to_hex(),
                blob.size
            )));
        }
        let imported = self.import_file(&part, &fetched_tag(&blob.hash)).await?;
        let _ = std::fs::remove_file(&part);
        if imported != *blob {
            return Err(fail(
                "the store hashed the verified file differently".into(),
            ));
        }
        self.counters
            .bytes_from_http
            .fetch_add(blob.size, Ordering::Relaxed);
        Ok(())
    }

    /// Closes the endpoint and flushes the store; a new `Swarm` may then open the same dir.
    pub async fn shutdown(&self) {
        if let Err(e) = self.router.shutdown().await {
            warn!(error = %e, "router shutdown");
        }
        if let Err(e) = self.store.shutdown().await {
            warn!(error = %e, "store shutdown");
        }
    }
}

/// The tag a fetched blob is kept under until the caller decides otherwise.
fn fetched_tag(hash: &Hash) -> String {
    format!("archy/fetched/{}", hash.to_hex())
}

/// The endpoint's identity must survive restarts: a catalog names the origin by it.
fn load_or_create_secret_key(path: &Path) -> Result<SecretKey> {
    let err = |reason: String| Error::SecretKey {
        path: path.to_owned(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| err("not 32 bytes of hex".into()))?;
            Ok(SecretKey::from_bytes(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            let key = SecretKey::from_bytes(&bytes);
            write_private_file(path, hex::encode(bytes).as_bytes())
                .map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests;

/// The endpoint id a swarm under `data_dir` has (creating its key on first use), without
/// binding anything: `archy catalog build` needs the origin's id to name it.
pub fn endpoint_id_of(data_dir: &Path) -> Result<EndpointId> {
    Ok(load_or_create_secret_key(&data_dir.join("iroh.key"))?.public())
}
