//! The swarm: a content-addressed blob store on disk, an iroh endpoint that serves it,
//! and fetches that verify every byte against its BLAKE3 hash as it streams.
//!
//! This crate knows hashes and sizes, never apps or manifests. The caller decides what
//! a hash is worth (from a verified catalog) and who the origin is.
//!
//! - [`Swarm::fetch_with_policy`]: "origin always wins" (peers under deadlines, strikes for
//!   bad data, resume from the missing ranges, coalesced and jittered fallback to the
//!   origin over iroh, then over HTTP), see `policy/`.
//! - Finding providers: the origin's [`Tracker`] ([`tracker_routes`], [`Swarm::announce`],
//!   [`Swarm::providers`]), static peers from the caller, and opt-in mDNS
//!   ([`SwarmConfig::local_discovery`], [`Swarm::local_peers`]).
//! - Reaching them: direct addresses, and with [`SwarmConfig::relay_mode`] on, iroh relay
//!   servers (hole punching, the relay as fallback); a [`PeerAddr`] carries the relay URL
//!   its node is reachable through, checked by [`check_relay_url`] (`relay_mode.rs`).
//! - Resume: a fetch tags its blob as partial (`archy/partial/<hash>/<time>`) before the
//!   first byte, so what verified survives a restart or a crash (the store keeps the data
//!   and its bitfield, rebuilt from the outboard after a kill) and the next fetch asks only
//!   for the missing ranges ([`FetchReport::resumed_from`]).
//! - Dead peers: candidates are dialed at once (unreachable ones cost one connect timeout
//!   together), one that cannot be reached is left alone for 30 s doubling to 15 min
//!   ([`Swarm::peer_backoff`]) and reported to the tracker that listed it, which lists it
//!   last until it announces again (`POST /v1/swarm/report`, rate-limited) and, beside a
//!   swarm ([`Tracker::with_prober`]), dials it to remove it only if nobody answers. A node
//!   that leaves withdraws its entries ([`Swarm::withdraw`], signed by its endpoint key).
//! - [`Swarm::gc`]: drops blobs that nothing references, and partial downloads no fetch
//!   touched for [`SwarmConfig::partial_ttl`] (24 h) unless `keep` names them.
//! - Relayed documents (`archy/doc/0`): opaque named bytes a node passes on
//!   ([`Swarm::set_relayed_document`], [`Swarm::fetch_document`]).
//! - [`SwarmMetrics`]: bytes by source, fallbacks by reason, strikes, per hash.
//! - [`http_routes`]: `/v1/swarm/addr`, `/v1/blobs/{hash}` and `/v1/swarm/get` (the get
//!   protocol over HTTP, the verified fallback).

mod addr_book;
mod discovery;
mod gc;
mod http_bao;
mod http_fetch;
mod metrics;
mod origin;
mod peer;
mod policy;
mod relay;
mod relay_mode;
mod serve;
mod tracker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::presets;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointId, SecretKey};
use iroh_blobs::BlobsProtocol;
use iroh_blobs::api::blobs::BlobStatus;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::store::fs::options::Options as StoreOptions;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub use discovery::LOCAL_SERVICE_NAME;
pub use gc::GcReport;
pub use iroh::RelayUrl;
pub use iroh_blobs::Hash;
pub use metrics::{FallbackCounts, FallbackReason, HashMetrics, SwarmMetrics};
pub use origin::http_routes;
pub use peer::PeerAddr;
pub use policy::{
    FetchPolicy, FetchReport, PeerPaths, ProviderFailure, Providers, STRIKES_TO_BAN, Strike,
};
pub use relay::{DOC_ALPN, MAX_DOCUMENT_NAME};
pub use relay_mode::{BadRelayUrl, MAX_RELAY_URL_LEN, MAX_RELAYS, RelayMode, check_relay_url};
pub use tracker::{
    AnnounceError, AnnounceReply, Announcement, ProbeOutcome, ReportError, ReportOutcome,
    SignatureError, Tracker, TrackerConfig, UnreachableReport, WITHDRAWAL_WINDOW, WithdrawError,
    WithdrawReply, Withdrawal, tracker_routes,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not a BLAKE3 hash (64 hex characters)")]
    BadHash(String),
    #[error("swarm store at {path}: {reason}")]
    Store { path: PathBuf, reason: String },
    /// The store's actor is gone (its request channel is closed, e.g. after a write failed
    /// on a full disk) or it stopped answering: no call on it will ever succeed again.
    #[error("swarm store at {path} is dead: {reason}")]
    StoreDead { path: PathBuf, reason: String },
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
    #[error("tracker {url}: {reason}")]
    Tracker { url: String, reason: String },
    #[error("garbage collection: {0}")]
    Gc(String),
    #[error("document {name:?} from {peer}: {reason}")]
    Document {
        name: String,
        peer: String,
        reason: String,
    },
    #[error("document {name:?} from {peer}: the peer relays no such document")]
    DocumentNotFound { name: String, peer: String },
    #[error("document {name:?} from {peer}: {size} bytes is over the limit of {max}")]
    DocumentTooLarge {
        name: String,
        peer: String,
        size: u64,
        max: u64,
    },
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
    /// How long a connection attempt to one provider may take (the HTTP client, document
    /// relay and the fetches that take no [`FetchPolicy`]).
    pub connect_timeout: Duration,
    /// Caps what this node serves to others, in bytes per second (all requests together).
    pub upload_limit_bytes_per_sec: Option<u64>,
    /// Find other swarm nodes on the local network over mDNS ([`Swarm::local_peers`]).
    /// Off by default: it sends multicast on every interface.
    pub local_discovery: bool,
    /// How long a partial download is kept after the last fetch that worked on it stopped
    /// (or started, when the process died). Within it, [`Swarm::gc`] keeps the verified
    /// ranges so a later fetch asks only for the rest; after it, a partial that `keep` does
    /// not name is collected.
    pub partial_ttl: Duration,
    /// A peer that could not be reached is not tried again for this long, doubling with
    /// each further failure up to [`Self::peer_backoff_max`]; reaching it resets it.
    pub peer_backoff_min: Duration,
    pub peer_backoff_max: Duration,
    /// Which relay servers the endpoint uses ([`RelayMode::Disabled`] by default: only
    /// direct addresses, as in tests and air-gapped sites).
    pub relay_mode: RelayMode,
    /// A PEM file of CA certificates trusted for the relays' HTTPS besides the public web
    /// roots: an operator's relay with a certificate from a private CA.
    pub relay_ca_file: Option<PathBuf>,
}

impl SwarmConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            connect_timeout: Duration::from_secs(5),
            upload_limit_bytes_per_sec: None,
            local_discovery: false,
            partial_ttl: Duration::from_secs(24 * 60 * 60),
            peer_backoff_min: Duration::from_secs(30),
            peer_backoff_max: Duration::from_secs(15 * 60),
            relay_mode: RelayMode::Disabled,
            relay_ca_file: None,
        }
    }
}

/// A complete blob's bytes, opened by [`Swarm::open_complete`].
#[derive(Debug)]
pub enum BlobBytes {
    /// The store's own data file of the blob, exactly its size.
    File(std::fs::File),
    /// A reader through the store (small blobs, kept in its database).
    Reader(iroh_blobs::api::blobs::BlobReader),
}

/// Told the number of bytes of a blob held so far.
pub type ByteSink<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// The certificates of a PEM file (at least one), for [`SwarmConfig::relay_ca_file`].
fn read_ca_file(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad =
        |reason: String| Error::Endpoint(format!("relay CA file {}: {reason}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// A running swarm node: blob store, the iroh endpoint serving it (blobs and relayed
/// documents), the fetch policy's state (strikes, fetches in flight) and its metrics.
pub struct Swarm {
    store: FsStore,
    router: Router,
    /// Where peers listen, for the endpoint's address lookup.
    addrs: addr_book::AddrBook,
    data_dir: PathBuf,
    http: reqwest::Client,
    connect_timeout: Duration,
    metrics: Arc<metrics::Metrics>,
    strikes: Mutex<policy::StrikeTable>,
    inflight: policy::InFlightMap,
    documents: relay::Documents,
    gc_requests: mpsc::Sender<gc::GcRequest>,
    /// The provider's event sender for answers carried over HTTP (`/v1/swarm/get`).
    http_events: iroh_blobs::provider::events::EventSender,
    local_peers: discovery::LocalPeers,
    /// See [`SwarmConfig::partial_ttl`].
    partial_ttl: Duration,
    /// Peers that could not be reached, not tried again until their backoff ends.
    backoff: Mutex<policy::Backoff>,
    /// Which tracker listed which peer, so an unreachable one can be reported back to it.
    listed_by: Mutex<tracker::ListedBy>,
    /// Which hashes this node announced to which tracker, to withdraw them when it leaves.
    announced_to: Mutex<tracker::AnnouncedTo>,
    /// The issue time (Unix ms) of this node's last announcement: the next is later.
    last_announcement_ms: std::sync::atomic::AtomicU64,
    /// Set by [`Swarm::shutdown`]; a swarm dropped without it shuts down in the background.
    shut_down: std::sync::atomic::AtomicBool,
    /// The relay servers the endpoint uses ([`SwarmConfig::relay_mode`]; empty with relays
    /// disabled, and so for a custom mode that names none).
    relay_map: iroh::RelayMap,
}

impl Swarm {
    /// Opens (or creates) the store under `config.data_dir` and binds the endpoint with port
    /// mapping and outside discovery off (peers are found by address: direct ones and, when
    /// [`SwarmConfig::relay_mode`] enables relays, a relay URL), and relays as configured.
    /// It does not wait for a home relay: [`Swarm::online`] does.
    pub async fn start(config: SwarmConfig) -> Result<Self> {
        let blobs_dir = config.data_dir.join("blobs");
        std::fs::create_dir_all(&blobs_dir).map_err(|e| Error::Store {
            path: blobs_dir.clone(),
            reason: e.to_string(),
        })?;
        let secret_key = load_or_create_secret_key(&config.data_dir.join("iroh.key"))?;
        let inflight = policy::InFlightMap::default();
        let (gc_config, gc_requests) = gc::gc_config(inflight.clone());
        let options = StoreOptions {
            gc: Some(gc_config),
            ..StoreOptions::new(&blobs_dir)
        };
        let store = FsStore::load_with_opts(blobs_dir.join("blobs.db"), options)
            .await
            .map_err(|e| Error::Store {
                path: blobs_dir.clone(),
                reason: e.to_string(),
            })?;
        let lookup = MemoryLookup::new();
        let me = secret_key.public();
        let mdns = match config.local_discovery {
            true => Some(discovery::mdns(me)?),
            false => None,
        };
        let mut builder = Endpoint::builder(presets::Minimal)
            .secret_key(secret_key)
            .relay_mode(config.relay_mode.to_iroh())
            .portmapper_config(iroh::endpoint::PortmapperConfig::Disabled)
            .address_lookup(lookup.clone());
        if let Some(mdns) = &mdns {
            builder = builder.address_lookup(mdns.clone());
        }
        if let Some(path) = &config.relay_ca_file {
            let roots = read_ca_file(path)?;
            builder =
                builder.ca_tls_config(iroh::tls::CaTlsConfig::embedded().with_extra_roots(roots));
        }
        let endpoint = builder
            .bind_addr(config.bind)
            .map_err(|e| Error::Endpoint(e.to_string()))?
            .bind()
            .await
            .map_err(|e| Error::Endpoint(e.to_string()))?;
        let local_peers = match &mdns {
            Some(mdns) => discovery::follow(mdns, me).await,
            None => discovery::LocalPeers::default(),
        };
        let metrics = Arc::new(metrics::Metrics::default());
        let limiter = config.upload_limit_bytes_per_sec.map(serve::Limiter::new);
        let events = serve::provider_events(metrics.clone(), limiter.clone(), serve::Via::Iroh);
        let http_events = serve::provider_events(metrics.clone(), limiter, serve::Via::Http);
        let blobs = BlobsProtocol::new(&store, Some(events));
        let documents = relay::Documents::default();
        let router = Router::builder(endpoint.clone())
            .accept(iroh_blobs::ALPN, blobs)
            .accept(
                DOC_ALPN,
                relay::DocProtocol {
                    docs: documents.clone(),
                },
            )
            .spawn();
        info!(endpoint_id = %endpoint.id(), addrs = ?endpoint.bound_sockets(), relays = %config.relay_mode, "swarm endpoint up");
        let relay_map = config.relay_mode.to_iroh().relay_map();
        Ok(Self {
            store,
            router,
            addrs: addr_book::AddrBook::new(lookup),
            data_dir: config.data_dir,
            connect_timeout: config.connect_timeout,
            http: {
                // reqwest is built without a bundled TLS provider; use ring, as iroh does.
                // Installing fails only when a provider is already set, which is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
            }
            .connect_timeout(config.connect_timeout)
            // Origins and trackers answer directly; a redirect could point our requests
            // (announces are POSTs) at something else, such as a node's local API.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Endpoint(format!("http client: {e}")))?,
            metrics,
            strikes: Mutex::default(),
            inflight,
            documents,
            gc_requests,
            http_events,
            local_peers,
            partial_ttl: config.partial_ttl,
            backoff: Mutex::new(policy::Backoff::new(
                config.peer_backoff_min,
                config.peer_backoff_max,
            )),
            listed_by: Mutex::default(),
            announced_to: Mutex::default(),
            last_announcement_ms: Default::default(),
            shut_down: Default::default(),
            relay_map,
        })
    }

    pub fn endpoint_id(&self) -> EndpointId {
        self.router.endpoint().id()
    }

    /// This node's id, the addresses it listens on and its home relay (when it has one), for
    /// others to dial.
    pub fn addr(&self) -> PeerAddr {
        PeerAddr {
            id: self.endpoint_id().to_string(),
            addrs: self.router.endpoint().bound_sockets(),
            relay_url: self.home_relay().map(|u| u.to_string()),
        }
    }

    /// The relay server this node is reachable through, once it is connected to one.
    pub fn home_relay(&self) -> Option<RelayUrl> {
        if self.relay_map.is_empty() {
            return None;
        }
        self.router.endpoint().addr().relay_urls().next().cloned()
    }

    /// Waits at most `within` for the endpoint to reach a home relay; whether it did. With
    /// relays disabled there is none to wait for: `false` at once.
    pub async fn online(&self, within: Duration) -> bool {
        if self.relay_map.is_empty() {
            return false;
        }
        tokio::time::timeout(within, self.router.endpoint().online())
            .await
            .is_ok()
    }

    /// Swarm nodes found on the local network (empty unless
    /// [`SwarmConfig::local_discovery`] is on). Candidates for [`Providers::peers`].
    pub fn local_peers(&self) -> Vec<PeerAddr> {
        self.local_peers.list()
    }

    /// Teaches the endpoint where a peer listens and which relay reaches it (no outside
    /// discovery is used). A relay URL that fails [`check_relay_url`] is an error.
    pub fn add_peer(&self, peer: &PeerAddr) -> Result<EndpointId> {
        let addr = peer.to_endpoint_addr()?;
        let id = addr.id;
        self.addrs.pin(addr);
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
    /// turns out larger or smaller than declared is refused and dropped. The providers are
    /// treated as the origin: never struck, never dropped for being slow.
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
        let policy = self.default_policy();
        self.fetch_inner(blob, &[], providers, None, None, &policy, on_bytes)
            .await
    }

    /// The origin alone: iroh first (verified streaming), then the origin's HTTP when iroh
    /// cannot deliver. A size that does not match is final: the origin's bytes would not
    /// match over HTTP either.
    pub async fn fetch_from_origin(
        &self,
        blob: &BlobRef,
        iroh: Option<&PeerAddr>,
        http_base: &str,
        on_bytes: ByteSink<'_>,
    ) -> Result<FetchReport> {
        let policy = self.default_policy();
        let origins: Vec<PeerAddr> = iroh.into_iter().cloned().collect();
        self.fetch_inner(
            blob,
            &[],
            &origins,
            Some(http_base),
            None,
            &policy,
            on_bytes,
        )
        .await
    }

    /// The policy of the fetches that take none: defaults, this swarm's connect timeout.
    fn default_policy(&self) -> FetchPolicy {
        FetchPolicy {
            connect_timeout: self.connect_timeout,
            ..FetchPolicy::default()
        }
    }

    /// Hashes of every complete blob in the store.
    pub async fn complete_hashes(&self) -> Result<Vec<Hash>> {
        Ok(self
            .blob_sizes()
            .await?
            .into_iter()
            .filter_map(|(hash, size)| size.map(|_| hash))
            .collect())
    }

    /// Every blob in the store (complete or partial) with its size when complete.
    pub(crate) async fn blob_sizes(&self) -> Result<std::collections::HashMap<Hash, Option<u64>>> {
        let hashes = self
            .store
            .blobs()
            .list()
            .hashes()
            .await
            .map_err(|e| Error::Store {
                path: self.data_dir.join("blobs"),
                reason: e.to_string(),
            })?;
        let mut sizes = std::collections::HashMap::with_capacity(hashes.len());
        for hash in hashes {
            sizes.insert(hash, self.complete_size(&hash).await?);
        }
        Ok(sizes)
    }

    async fn check_size(&self, blob: &BlobRef, actual: u64) -> Result<()> {
        if actual != blob.size {
            self.metrics.verification_failure(&blob.hash);
            self.drop_blob(&blob.hash).await;
            return Err(Error::SizeMismatch {
                hash: blob.hex(),
                declared: blob.size,
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Removes our claims on a blob (fetched or partial) so the store's garbage collection
    /// drops it.
    async fn drop_blob(&self, hash: &Hash) {
        if let Err(e) = self.store.tags().delete(fetched_tag(hash)).await {
            debug!(error = %e, "no tag to delete");
        }
        self.clear_partial(hash).await;
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

    /// A complete blob of exactly `blob.size` bytes, opened for one read from start to end
    /// (e.g. an image archive for `podman load`), without copying it: the store's own
    /// data file when it keeps the blob in one ([`BlobBytes::File`]), else its reader.
    /// The bytes were verified against the hash when they entered the store; nothing is
    /// hashed again here. A blob the store does not hold complete at that size is an error.
    ///
    /// The file is only ever the data of a blob the store says is complete: iroh-blobs
    /// writes such a file before the blob completes and never again (until garbage
    /// collection deletes it; an open file outlives that).
    pub async fn open_complete(&self, blob: &BlobRef) -> Result<BlobBytes> {
        match self.complete_size(&blob.hash).await? {
            Some(size) if size == blob.size => {}
            Some(size) => {
                return Err(Error::SizeMismatch {
                    hash: blob.hex(),
                    declared: blob.size,
                    actual: size.to_string(),
                });
            }
            None => {
                return Err(Error::Blob {
                    hash: blob.hex(),
                    reason: "not complete in the store".into(),
                });
            }
        }
        let path = StoreOptions::new(&self.data_dir.join("blobs"))
            .path
            .data_path(&blob.hash);
        // Small blobs live inline in the store's database, imported ones may be elsewhere:
        // those are read through the store.
        if let Ok(file) = std::fs::File::open(&path)
            && file
                .metadata()
                .is_ok_and(|m| m.is_file() && m.len() == blob.size)
        {
            return Ok(BlobBytes::File(file));
        }
        debug!(hash = %blob.hex(), "no data file of the blob's size; reading through the store");
        Ok(BlobBytes::Reader(self.reader(&blob.hash)))
    }

    /// A seekable reader over a complete blob (the HTTP origin streams from it).
    pub(crate) fn reader(&self, hash: &Hash) -> iroh_blobs::api::blobs::BlobReader {
        self.store.blobs().reader(*hash)
    }

    /// Totals and per-hash counters since start (DESIGN "Observable").
    pub fn metrics(&self) -> SwarmMetrics {
        self.metrics.snapshot()
    }

    /// Counts bytes this node served over its HTTP route.
    pub(crate) fn count_served_http(&self, hash: &Hash, bytes: u64) {
        self.metrics.served_http(hash, bytes);
    }

    /// Whether the blob store still answers: one cheap request (a tag listing that matches
    /// nothing) within `within`. [`Error::StoreDead`] when its actor is gone (iroh-blobs'
    /// request or reply channel is closed: irpc's `SendError::ReceiverClosed` or
    /// `RecvError::SenderClosed`, both `io::ErrorKind::BrokenPipe`); any other failure (or no answer within `within`) is [`Error::Store`]:
    /// a busy store may answer late, the caller decides how long it waits.
    pub async fn store_alive(&self, within: Duration) -> Result<()> {
        let path = self.data_dir.join("blobs");
        let probe = async {
            let mut tags = self.store.tags().list_prefix(STORE_PROBE_PREFIX).await?;
            while let Some(tag) = futures::StreamExt::next(&mut tags).await {
                tag?;
            }
            Ok::<_, iroh_blobs::api::Error>(())
        };
        match tokio::time::timeout(within, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(iroh_blobs::api::Error::Io(e))) if store_gone(&e) => Err(Error::StoreDead {
                path,
                reason: format!(
                    "its actor is gone ({e}); an earlier write may have failed, e.g. on a full disk"
                ),
            }),
            Ok(Err(e)) => Err(Error::Store {
                path,
                reason: e.to_string(),
            }),
            Err(_) => Err(Error::Store {
                path,
                reason: format!("no answer within {} s", within.as_secs_f32()),
            }),
        }
    }

    /// Where the blob store lives (`<data_dir>/blobs`), for messages about it.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Closes the endpoint and flushes the store (partial downloads keep their verified
    /// ranges); a new `Swarm` may then open the same dir.
    pub async fn shutdown(&self) {
        self.shut_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.router.shutdown().await {
            warn!(error = %e, "router shutdown");
        }
        // The router's shutdown already closes the store it serves; a second close that
        // finds it closed is the normal case, not a problem worth a warning.
        if let Err(e) = self.store.shutdown().await {
            debug!(error = %e, "store shutdown");
        }
    }
}

impl Drop for Swarm {
    /// A swarm dropped without [`Swarm::shutdown`] (a caller that panicked or was cancelled)
    /// still closes its endpoint and store, in the background: the store's own garbage
    /// collector holds a handle to it, so it would otherwise keep the store (and its
    /// database lock) open for the life of the process and no new `Swarm` could open the
    /// same directory.
    fn drop(&mut self) {
        if self.shut_down.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (router, store) = (self.router.clone(), self.store.clone());
        runtime.spawn(async move {
            router.shutdown().await.ok();
            store.shutdown().await.ok();
        });
    }
}

/// A tag prefix nothing uses: [`Swarm::store_alive`] lists it.
const STORE_PROBE_PREFIX: &str = "archy/probe/";

/// Whether an error of a store call says the store's actor is gone: irpc maps a closed
/// request or reply channel to `BrokenPipe` ("Receiver closed" / "Sender closed").
fn store_gone(e: &std::io::Error) -> bool {
    let text = e.to_string();
    e.kind() == std::io::ErrorKind::BrokenPipe
        || text.contains("Receiver closed")
        || text.contains("Sender closed")
}

/// Tags of blobs held only because a fetch completed them; [`Swarm::gc`] releases them.
pub(crate) const FETCHED_TAG_PREFIX: &str = "archy/fetched/";

/// Tags of partial downloads, `archy/partial/<hash>/<unix seconds>`: the time the last
/// fetch of it started or stopped. [`Swarm::gc`] keeps them for [`SwarmConfig::partial_ttl`].
pub(crate) const PARTIAL_TAG_PREFIX: &str = "archy/partial/";

/// The tag a fetched blob is kept under until the caller decides otherwise.
fn fetched_tag(hash: &Hash) -> String {
    format!("{FETCHED_TAG_PREFIX}{}", hash.to_hex())
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
