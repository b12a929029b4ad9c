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

/// What one fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// The blob was complete in the store already; nothing moved.
    pub already_present: bool,
    /// Providers tried that failed, in order.
    pub failed_providers: Vec<String>,
}

/// A running swarm node: blob store + iroh endpoint serving it + downloader.
pub struct Swarm {
    store: FsStore,
    router: Router,
    lookup: MemoryLookup,
    downloader: Downloader,
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
                DownloadProgressItem::Progress(_) | DownloadProgressItem::PartComplete { .. } => {}
            }
        }
        match self.store.blobs().status(blob.hash).await {
            Ok(BlobStatus::Complete { size }) => {
                self.check_size(blob, size).await?;
                self.pin(&blob.hash, &fetched_tag(&blob.hash)).await?;
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

    /// Reads a complete blob into memory (small blobs only; the HTTP origin streams larger ones).
    pub async fn read_to_bytes(&self, hash: &Hash) -> Result<bytes::Bytes> {
        self.store
            .blobs()
            .get_bytes(*hash)
            .await
            .map_err(|e| Error::Blob {
                hash: hash.to_hex().to_string(),
                reason: e.to_string(),
            })
    }

    pub async fn shutdown(self) {
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
