//! The running node: trust state, swarm, orchestrator and sqlite, wired together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use archy_marketplace::NostrKey;
use archy_orchestrator::{
    AppRuntime, Orchestrator, OrchestratorConfig, Progress, ProgressSink, Stage,
};
use archy_registry::{
    CatalogUpdate, TrustState, VerifiedApp, VerifiedCatalog, VerifiedPublication, VerifiedRoot,
};
use archy_swarm::{BlobRef, PeerAddr, Swarm, SwarmConfig};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{Mutex, RwLock};
use tracing::{error, info, warn};

use crate::config::NodeConfig;
use crate::db::{self, Db};

/// An error with the HTTP status it maps to; the message is for a person.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A parameter or body broke its grammar (400).
    Invalid,
    /// No or a wrong API credential (401).
    Unauthorized,
    /// A web page of another site tried to use the API (403).
    CrossSite,
    /// The request named a host that is not this node (421).
    WrongHost,
    /// A state change without a JSON (or upload) body (415).
    WrongContentType,
    /// More bytes than allowed (413).
    TooLarge,
    NotFound,
    Conflict,
    Refused,
    Unavailable,
    Internal,
}

impl NodeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::new(ErrorKind::Internal, e.to_string())
}

impl From<sqlx::Error> for NodeError {
    fn from(e: sqlx::Error) -> Self {
        internal(format!("node database: {e}"))
    }
}

impl From<archy_orchestrator::Error> for NodeError {
    fn from(e: archy_orchestrator::Error) -> Self {
        use archy_orchestrator::Error as E;
        let kind = match &e {
            E::AlreadyInstalled(_) | E::PortInUse { .. } => ErrorKind::Conflict,
            E::InsufficientDisk { .. } | E::RolledBack { .. } => ErrorKind::Refused,
            E::NotInstalled(_) => ErrorKind::NotFound,
            E::NotRootless { .. } | E::InvalidManifest { .. } | E::UnsafeArgument { .. } => {
                ErrorKind::Refused
            }
            _ => ErrorKind::Internal,
        };
        NodeError::new(kind, e.to_string())
    }
}

/// Result of the last catalog pull, for `archy status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullStatus {
    pub at: Option<DateTime<Utc>>,
    pub ok: bool,
    pub message: String,
}

pub struct Node {
    config: NodeConfig,
    db: Db,
    trust: RwLock<TrustState>,
    swarm: Arc<Swarm>,
    orchestrator: Orchestrator,
    http: reqwest::Client,
    last_pull: std::sync::Mutex<PullStatus>,
    /// One lifecycle operation at a time keeps Podman and sqlite in step.
    operation: Mutex<()>,
    /// Where this node serves blobs over HTTP (`blobs_listen`), once bound.
    blobs_url: std::sync::OnceLock<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppView {
    pub id: String,
    pub version: String,
    pub desired: String,
    pub state: String,
    pub containers: Vec<archy_orchestrator::ContainerRuntime>,
    pub url: Option<String>,
    /// Limits the manifest declares that this host does not enforce, in words: said at
    /// install and in every view, never silently dropped.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogView {
    pub version: u64,
    pub expires: DateTime<Utc>,
    pub expired: bool,
    pub days_left: i64,
    pub origin: String,
    /// Versions accepted without a checked link in the hash chain (the node was behind and
    /// the origin no longer had them); a gap the node could fetch and verify counts 0.
    pub missed_versions: u64,
    /// Set when the catalog expires within the warning window, or has expired.
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub endpoint_id: String,
    pub root_version: u64,
    pub catalog: Option<CatalogView>,
    pub last_pull: PullStatus,
    pub alarms: Vec<db::Alarm>,
    pub podman_url: String,
    pub swarm: archy_swarm::SwarmMetrics,
    /// Where this node serves its blobs over HTTP (for peers, and as a developer's origin).
    pub blobs_url: Option<String>,
    /// Which resource limits (memory, CPU, processes) this host's Podman enforces, and why
    /// not the others.
    pub resource_limits: archy_orchestrator::LimitSupport,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwarmStatus {
    pub endpoint_id: String,
    pub metrics: archy_swarm::SwarmMetrics,
    pub strikes: Vec<archy_swarm::Strike>,
    /// Static and local-network peers (tracker peers are asked per blob).
    pub peers: Vec<PeerAddr>,
    pub blobs_url: Option<String>,
}

/// One publisher's listing of an app, as `archy market show` presents it.
#[derive(Debug, Clone, Serialize)]
pub struct MarketDetail {
    pub listing: db::MarketRow,
    /// The id the app gets on this node (`<id>.<publisher key prefix>`).
    pub local_id: Option<String>,
    pub description: String,
    /// "passes", or why the sandbox policy (or verification) refuses it.
    pub sandbox: String,
    pub origin: Option<String>,
    pub installed: bool,
    pub score: Option<db::ScoreRow>,
    /// Below this score an install needs `--approve`.
    pub threshold: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogAppView {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub installed: bool,
}

/// The catalog download cap: a hostile origin cannot make us buffer more.
const MAX_CATALOG_BYTES: usize = archy_registry::MAX_DOCUMENT_BYTES;

/// The name under which nodes relay the signed catalog envelope to each other.
const CATALOG_DOCUMENT: &str = "catalog";

/// Reconciler pacing for Podman events: wait for a burst to settle, keep event-driven
/// passes apart, and back off while the event stream cannot be followed.
const EVENT_SETTLE: Duration = Duration::from_millis(500);
const EVENT_PASS_GAP: Duration = Duration::from_secs(5);
const EVENT_RETRY_MIN: Duration = Duration::from_secs(1);
const EVENT_RETRY_MAX: Duration = Duration::from_secs(60);

/// A tracker that does not answer within this is treated as absent.
const TRACKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an install or update fetches from.
#[derive(Clone, Copy)]
struct FetchFrom<'a> {
    /// The origin's iroh address, when `/v1/swarm/addr` gave one matching the signed id.
    iroh: Option<&'a PeerAddr>,
    http: &'a str,
    /// The first-party catalog origin, which runs a tracker to ask and announce to.
    first_party: bool,
}

/// At most this many peers are asked for a relayed catalog in one pull.
const MAX_RELAY_PEERS: usize = 8;

impl Node {
    /// Opens state, restores trust from sqlite (re-verified), starts the swarm and
    /// connects to rootless Podman. Operations a crash left running are rolled back.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Arc<Node>> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        crate::auth::private_data_dir(&config.data_dir)?;
        let db_path = config.data_dir.join("archy.db");
        let db = db::open(&db_path).await.with_context(|| {
            format!(
                "opening the node database {} (is it an archy database, readable by this \
                 user, on a disk with free space?)",
                db_path.display()
            )
        })?;
        let root_path = config.pinned_root.as_ref().context(
            "no pinned root: set pinned_root in the node config to the signed root envelope from your signing ceremony",
        )?;
        let anchor_bytes = std::fs::read(root_path)
            .with_context(|| format!("reading pinned root {}", root_path.display()))?;
        let anchor = VerifiedRoot::trust_anchor(&anchor_bytes)
            .with_context(|| format!("pinned root {}", root_path.display()))?;
        let last_seen = db::meta(&db, "last_seen")
            .await?
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc));
        let catalog = db::latest_catalog(&db).await?;
        let anchor_hash = archy_registry::blake3_hex(&anchor_bytes);
        let anchor_replaced = db::meta(&db, "pinned_root")
            .await?
            .is_some_and(|stored| stored != anchor_hash);
        let restored = TrustState::restore(
            anchor.clone(),
            &db::root_rotations(&db).await?,
            catalog.as_deref(),
            last_seen,
        );
        let trust = match restored {
            Ok(trust) => trust,
            // The operator pinned a new trust anchor (e.g. after the root threshold was
            // compromised): what was learned under the old one is dropped, apps keep running.
            Err(e) if anchor_replaced => {
                let message = format!(
                    "the pinned root changed and the stored trust state does not verify under it ({e}); \
                     root rotations and catalogs learned before were dropped. Installed apps keep running \
                     and are managed again once the origin serves a catalog under the new root."
                );
                warn!("{message}");
                db::reset_trust(&db).await?;
                db::raise_alarm(&db, "pinned-root-replaced", &message).await?;
                TrustState::new(anchor)
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context("stored trust state no longer verifies against the pinned root"));
            }
        };
        db::set_meta(&db, "pinned_root", &anchor_hash).await?;
        for key in &config.trusted_keys {
            archy_marketplace::parse_nostr_key(key).context("trusted_keys in the node config")?;
        }

        let mut swarm_config = SwarmConfig::new(config.data_dir.join("swarm"));
        swarm_config.bind = config.iroh_bind;
        swarm_config.local_discovery = config.local_discovery;
        let swarm = Arc::new(Swarm::start(swarm_config).await?);
        for peer in &config.static_peers {
            swarm
                .add_peer(peer)
                .with_context(|| format!("static_peers: {}", peer.id))?;
        }
        if let Some(catalog) = trust.catalog() {
            swarm.set_relayed_document(CATALOG_DOCUMENT, catalog.envelope_bytes().to_vec())?;
        }
        let orchestrator = Orchestrator::connect(OrchestratorConfig {
            podman_url: config.podman_url.clone(),
            data_dir: config.data_dir.clone(),
            publish_address: config.publish_address,
        })
        .await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        let node = Arc::new(Node {
            config,
            db,
            trust: RwLock::new(trust),
            swarm,
            orchestrator,
            http,
            last_pull: Default::default(),
            operation: Mutex::new(()),
            blobs_url: std::sync::OnceLock::new(),
        });
        node.recover_interrupted().await?;
        Ok(node)
    }

    /// Closes the swarm endpoint and store and the database, so the data dir can be reopened.
    pub async fn shutdown(&self) {
        self.swarm.shutdown().await;
        self.db.close().await;
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn swarm(&self) -> &Arc<Swarm> {
        &self.swarm
    }

    /// The swarm as `archy swarm status` shows it: traffic by source and per hash,
    /// fallbacks by reason, strikes, and the peers this node knows.
    pub fn swarm_status(&self) -> SwarmStatus {
        SwarmStatus {
            endpoint_id: self.swarm.endpoint_id().to_string(),
            metrics: self.swarm.metrics(),
            strikes: self.swarm.strikes(),
            peers: self.known_peers(),
            blobs_url: self.blobs_url.get().cloned(),
        }
    }

    /// Records where [`crate::serve_blobs`] listens, for `archy status` and publishing.
    pub fn set_blobs_url(&self, url: String) {
        let _ = self.blobs_url.set(url);
    }

    /// Imports a developer's artifact into the store and pins it, so this node serves it as
    /// the publication's origin. Returns its hash and size.
    /// An install that never finished is rolled back: no app stays "installing" forever.
    async fn recover_interrupted(&self) -> anyhow::Result<()> {
        for op in db::running_operations(&self.db).await? {
            warn!(app = %op.app_id, kind = %op.kind, stage = %op.stage, "rolling back interrupted operation");
            let note = if op.kind == "install" && db::app(&self.db, &op.app_id).await?.is_none() {
                match self.orchestrator.uninstall(&op.app_id, false).await {
                    Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => {
                        self.unpin_app(&op.app_id).await;
                        format!("interrupted at stage {}; rolled back", op.stage)
                    }
                    Err(e) => format!("interrupted at stage {}; rollback failed: {e}", op.stage),
                }
            } else if op.kind == "update" {
                // Whatever half of the update exists goes; the reconciler then rebuilds the
                // version recorded in sqlite, which is still the previous one.
                self.orchestrator.remove_app_containers(&op.app_id).await;
                format!(
                    "interrupted at stage {}; the previous version is restored by the reconciler",
                    op.stage
                )
            } else {
                format!("interrupted at stage {}", op.stage)
            };
            db::mark_interrupted(&self.db, op.id, &note).await?;
        }
        Ok(())
    }

    /// Fetches the origin's catalog (bounded), verifies it and stores it when it is newer.
    pub async fn pull_catalog(&self) -> Result<CatalogUpdate, NodeError> {
        let pulled = self.pull_catalog_inner().await;
        let notes = pulled
            .as_ref()
            .map(|(_, notes)| notes.clone())
            .unwrap_or_default();
        let result = pulled.map(|(update, _)| update);
        let mut message = match &result {
            Ok(CatalogUpdate::Unchanged { version }) => {
                format!("catalog version {version} is current")
            }
            Ok(CatalogUpdate::Updated { from, to, missed }) => format!(
                "catalog updated from {} to version {to}{}",
                from.map_or("nothing".into(), |f| format!("version {f}")),
                if *missed > 0 && notes.is_empty() {
                    format!(" ({missed} version(s) skipped)")
                } else {
                    String::new()
                }
            ),
            Err(e) => e.message.clone(),
        };
        for note in notes {
            message = format!("{message}, {note}");
        }
        let status = PullStatus {
            at: Some(Utc::now()),
            ok: result.is_ok(),
            message,
        };
        if let Ok(mut last) = self.last_pull.lock() {
            *last = status;
        }
        result
    }

    /// The update, and notes for the operator: how the catalog came when it did not come
    /// from the origin, and how the history up to it was checked when it skipped versions.
    async fn pull_catalog_inner(&self) -> Result<(CatalogUpdate, Vec<String>), NodeError> {
        let origin = self.config.origin.as_deref().ok_or_else(|| {
            NodeError::new(
                ErrorKind::Refused,
                "no origin configured: set origin in the node config",
            )
        })?;
        let origin = origin.trim_end_matches('/');
        let url = format!("{origin}/v1/catalog");
        let from_origin = async {
            self.walk_root_rotations(origin).await?;
            self.get_bounded(&url, MAX_CATALOG_BYTES).await
        }
        .await;
        match from_origin {
            Ok(bytes) => {
                let (update, note) = self.accept_catalog(&bytes, &url, Some(origin)).await?;
                Ok((update, note.into_iter().collect()))
            }
            // DESIGN swarm rule 4: while the origin is unreachable, peers may pass on the
            // signed catalog; it goes through exactly the same checks.
            Err(e) if e.kind == ErrorKind::Unavailable => {
                match self.catalog_from_peers(&e.message).await {
                    Some((update, peer, note)) => {
                        let mut notes = vec![format!(
                            "relayed by peer {peer}: the origin is unreachable ({})",
                            e.message
                        )];
                        notes.extend(note);
                        Ok((update, notes))
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Asks this node's peers (static and local) for the catalog they relay and offers each
    /// to the trust state until one is accepted (or is the one we have).
    async fn catalog_from_peers(
        &self,
        origin_error: &str,
    ) -> Option<(CatalogUpdate, String, Option<String>)> {
        for peer in self.known_peers().into_iter().take(MAX_RELAY_PEERS) {
            let bytes = match self
                .swarm
                .fetch_document(&peer, CATALOG_DOCUMENT, MAX_CATALOG_BYTES as u64)
                .await
            {
                Ok(bytes) => bytes,
                Err(e) => {
                    info!(peer = %peer.id, error = %e, "peer relays no catalog");
                    continue;
                }
            };
            let from = format!(
                "peer {} (relayed while the origin is unreachable: {origin_error})",
                peer.id
            );
            // No intermediate versions to check a gap with: the origin is the one that is down.
            match self.accept_catalog(&bytes, &from, None).await {
                Ok((update, note)) => return Some((update, peer.id, note)),
                Err(e) => warn!(peer = %peer.id, error = %e, "relayed catalog refused"),
            }
        }
        None
    }

    /// Peers from the config and, when enabled, the local network.
    fn known_peers(&self) -> Vec<PeerAddr> {
        let mut peers = self.config.static_peers.clone();
        for p in self.swarm.local_peers() {
            if !peers.iter().any(|q| q.id == p.id) {
                peers.push(p);
            }
        }
        peers
    }

    /// Offers catalog bytes (from the origin at `from`, or relayed) to the trust state.
    /// When it skips versions and `history` names its origin, the versions in between are
    /// fetched from there (`/v1/catalog/{version}`) and the hash chain is checked through
    /// them: one that is there but does not chain is refused with the chain-broken alarm.
    /// Only versions that cannot be had (404, origin unreachable) are accepted across, as an
    /// unverified gap, with an alarm. An accepted catalog is stored and relayed on to peers.
    /// Returns the update and, when the history was checked or could not be, a note saying so.
    async fn accept_catalog(
        &self,
        bytes: &[u8],
        from: &str,
        history: Option<&str>,
    ) -> Result<(CatalogUpdate, Option<String>), NodeError> {
        let url = from;
        let begun = self
            .trust
            .read()
            .await
            .begin_catalog_chain(bytes, Utc::now());
        let mut chain = match begun {
            Ok(chain) => chain,
            Err(e) => return Err(self.catalog_refused(url, e).await),
        };
        let offered = chain.offered().version();
        let missing = chain.missing();
        // Why versions could not be checked, for the operator.
        let mut unavailable: Vec<String> = Vec::new();
        if !missing.is_empty() {
            match history {
                None => unavailable.push(
                    "it was relayed by a peer while the origin is unreachable, so the versions in between could not be fetched".to_owned(),
                ),
                Some(origin) => {
                    let mut not_found = Vec::new();
                    for version in missing.clone() {
                        if version - missing.start >= MAX_CHAIN_FETCH {
                            unavailable.push(format!(
                                "the node is more than {MAX_CHAIN_FETCH} versions behind and fetched only the first {MAX_CHAIN_FETCH}"
                            ));
                            break;
                        }
                        let link_url = format!("{origin}/v1/catalog/{version}");
                        let fetched = match self.get_optional(&link_url, MAX_CATALOG_BYTES).await {
                            Ok(Some(fetched)) => fetched,
                            Ok(None) => {
                                not_found.push(version);
                                continue;
                            }
                            // Unreachable or failing: the rest would fail the same way.
                            Err(e) if e.kind == ErrorKind::Unavailable => {
                                unavailable.push(format!(
                                    "the origin did not serve them ({})",
                                    e.message
                                ));
                                break;
                            }
                            Err(e) => return Err(e),
                        };
                        let problem = match chain.add(&fetched) {
                            Ok(v) if v == version => continue,
                            Ok(v) => format!("it holds version {v}"),
                            Err(e) => e.to_string(),
                        };
                        let message = format!(
                            "catalog version {offered} from {url} refused: the chain from the current catalog breaks at version {version} ({link_url}): {problem}"
                        );
                        return Err(self.chain_refused(message).await);
                    }
                    if let (Some(first), Some(last)) = (not_found.first(), not_found.last()) {
                        unavailable.insert(
                            0,
                            format!(
                                "the origin no longer has {} ({origin}/v1/catalog/{first}{} answered 404 Not Found)",
                                if not_found.len() == 1 { "it" } else { "them" },
                                if first == last {
                                    String::new()
                                } else {
                                    format!(" … {last}")
                                }
                            ),
                        );
                    }
                }
            }
        }
        let now = Utc::now();
        let mut trust = self.trust.write().await;
        let done = match trust.finish_catalog_chain(chain, now) {
            Ok(done) => done,
            Err(e) => {
                drop(trust);
                return Err(self.catalog_refused(url, e).await);
            }
        };
        let mut note = None;
        match &done.update {
            CatalogUpdate::Updated { to, missed, .. } => {
                let catalog = trust
                    .catalog()
                    .ok_or_else(|| internal("accepted catalog missing"))?;
                db::store_catalog(
                    &self.db,
                    *to,
                    catalog.envelope_bytes(),
                    catalog.payload_hash(),
                    catalog.expires(),
                    now,
                    *missed,
                )
                .await?;
                if let Err(e) = self
                    .swarm
                    .set_relayed_document(CATALOG_DOCUMENT, catalog.envelope_bytes().to_vec())
                {
                    warn!(error = %e, "cannot relay the catalog to peers");
                }
                if *missed > 0 {
                    let gap = format!(
                        "accepted across an unverified gap of {missed} version(s) ({}): {}",
                        describe_gaps(&done.gaps),
                        if unavailable.is_empty() {
                            "they were not available".to_owned()
                        } else {
                            unavailable.join("; ")
                        }
                    );
                    warn!(version = to, missed, "catalog {gap}");
                    db::raise_alarm(
                        &self.db,
                        "unverified-gap",
                        &format!("catalog version {to} from {url} {gap}; the hash chain was not checked across those versions"),
                    )
                    .await?;
                    note = Some(gap);
                } else if !done.verified.is_empty() {
                    let chained = format!(
                        "chain verified through {} skipped version(s) fetched from the origin",
                        done.verified.len()
                    );
                    info!(version = to, "catalog accepted, {chained}");
                    note = Some(chained);
                } else {
                    info!(version = to, "catalog accepted");
                }
                let days_left = (catalog.expires() - now).num_days();
                if days_left < self.config.expiry_warning_days {
                    warn!(version = to, days_left, "catalog expires soon");
                }
            }
            CatalogUpdate::Unchanged { .. } => {
                db::set_meta(&self.db, "last_seen", &now.to_rfc3339()).await?
            }
        }
        Ok((done.update, note))
    }

    /// A refused catalog: refusals that mean someone is lying (or our clock is) raise an
    /// alarm the operator sees. Returns the error for the caller.
    async fn catalog_refused(&self, url: &str, e: archy_registry::Error) -> NodeError {
        let message = format!("catalog from {url} refused: {e}");
        let alarm = match e {
            archy_registry::Error::Equivocation { .. } => Some("equivocation"),
            archy_registry::Error::ChainBroken { .. } => Some("chain-broken"),
            archy_registry::Error::ClockBackward { .. } => Some("clock-backward"),
            _ => None,
        };
        match alarm {
            Some(kind) => {
                error!(alarm = kind, error = %e, "catalog refused");
                if let Err(e) = db::raise_alarm(&self.db, kind, &message).await {
                    return e.into();
                }
            }
            None => warn!(error = %e, "catalog refused"),
        }
        NodeError::new(ErrorKind::Refused, message)
    }

    /// A skipped version that is there but does not chain (a fork, a bad signature, the
    /// wrong version): never a gap, always refused with the chain-broken alarm.
    async fn chain_refused(&self, message: String) -> NodeError {
        error!(alarm = "chain-broken", "{message}");
        if let Err(e) = db::raise_alarm(&self.db, "chain-broken", &message).await {
            return e.into();
        }
        NodeError::new(ErrorKind::Refused, message)
    }

    /// DESIGN trust rule 3: fetch root N+1, N+2, … from the origin, each accepted only when
    /// signed by a threshold of the previous root keys and of its own; stop at the first
    /// version the origin does not have, or at the configured cap.
    async fn walk_root_rotations(&self, origin: &str) -> Result<(), NodeError> {
        for _ in 0..self.config.max_root_rotations {
            let next = self.trust.read().await.root().version() + 1;
            let url = format!("{origin}/v1/root/{next}");
            let Some(bytes) = self.get_optional(&url, MAX_CATALOG_BYTES).await? else {
                return Ok(());
            };
            let mut trust = self.trust.write().await;
            if let Err(e) = trust.rotate_root(&bytes) {
                let message = format!("root version {next} from {url} refused: {e}");
                db::raise_alarm(&self.db, "root-rotation", &message).await?;
                return Err(NodeError::new(ErrorKind::Refused, message));
            }
            db::store_root_rotation(&self.db, next, &bytes).await?;
            info!(version = next, "root rotated");
        }
        Ok(())
    }

    /// GET with a hard cap on the body; a 404 is an error here.
    async fn get_bounded(&self, url: &str, limit: usize) -> Result<Vec<u8>, NodeError> {
        self.get_optional(url, limit).await?.ok_or_else(|| {
            NodeError::new(
                ErrorKind::Unavailable,
                format!("{url} answered 404 Not Found"),
            )
        })
    }

    /// GET with a hard cap on the body, checked before and while reading; a 404 means
    /// "there is none" (e.g. no next root version). The whole exchange must finish within
    /// [`ORIGIN_TIMEOUT`].
    async fn get_optional(&self, url: &str, limit: usize) -> Result<Option<Vec<u8>>, NodeError> {
        fetch_optional(&self.http, url, limit, ORIGIN_TIMEOUT).await
    }
}

/// Everything the node fetches from an origin (catalog, roots, swarm address) must have
/// arrived, body included, within this.
const ORIGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this many skipped catalog versions are fetched in one pull to check the chain.
const MAX_CHAIN_FETCH: u64 = 128;

/// "version 2", "versions 2–4, 7".
fn describe_gaps(gaps: &[std::ops::RangeInclusive<u64>]) -> String {
    let runs: Vec<String> = gaps
        .iter()
        .map(|g| {
            if g.start() == g.end() {
                g.start().to_string()
            } else {
                format!("{}–{}", g.start(), g.end())
            }
        })
        .collect();
    let single = gaps.len() == 1 && gaps[0].start() == gaps[0].end();
    format!(
        "{} {}",
        if single { "version" } else { "versions" },
        runs.join(", ")
    )
}

/// [`Node::get_optional`] with its client and deadline. Failures say what happened: the
/// origin did not answer in time, could not be connected to, or broke off.
async fn fetch_optional(
    http: &reqwest::Client,
    url: &str,
    limit: usize,
    deadline: Duration,
) -> Result<Option<Vec<u8>>, NodeError> {
    let mut body = Vec::new();
    let fetch = async {
        let response = http
            .get(url)
            .timeout(deadline)
            .send()
            .await
            .map_err(|e| fetch_error(url, deadline, &e, None))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(NodeError::new(
                ErrorKind::Unavailable,
                format!("{url} answered {}", response.status()),
            ));
        }
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(NodeError::new(
                ErrorKind::Refused,
                format!("{url} is larger than the {limit}-byte limit"),
            ));
        }
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fetch_error(url, deadline, &e, Some(body.len())))?;
            if body.len() + chunk.len() > limit {
                return Err(NodeError::new(
                    ErrorKind::Refused,
                    format!("{url} sent more than the {limit}-byte limit"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(()))
    };
    // reqwest's own deadline should fire first; this one holds whatever it classifies.
    match tokio::time::timeout(deadline + Duration::from_millis(100), fetch).await {
        Ok(Ok(Some(()))) => Ok(Some(body)),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(timed_out(url, deadline, Some(body.len()))),
    }
}

fn timed_out(url: &str, deadline: Duration, received: Option<usize>) -> NodeError {
    NodeError::new(
        ErrorKind::Unavailable,
        format!(
            "origin did not answer within {} s: GET {url}{}",
            deadline.as_secs_f64(),
            match received {
                Some(n) => format!(" (the body stopped after {n} bytes)"),
                None => String::new(),
            }
        ),
    )
}

/// Names a failed fetch by what happened, not by reqwest's outermost wording ("error
/// decoding response body" for a body that stopped coming).
fn fetch_error(
    url: &str,
    deadline: Duration,
    e: &reqwest::Error,
    received: Option<usize>,
) -> NodeError {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        let why = if e.is_timeout() {
            "the connection attempt timed out".to_owned()
        } else {
            cause.to_string()
        };
        return NodeError::new(
            ErrorKind::Unavailable,
            format!("cannot connect to {url}: {why}"),
        );
    }
    if e.is_timeout() {
        return timed_out(url, deadline, received);
    }
    let message = match received {
        Some(n) => format!("{url}: the connection broke after {n} bytes of the body: {cause}"),
        None => format!("cannot fetch {url}: {cause}"),
    };
    NodeError::new(ErrorKind::Unavailable, message)
}

#[cfg(test)]
mod fetch_tests {
    use super::*;

    /// A server on loopback that accepts and then sends `reply` (if any) and nothing more.
    async fn silent_server(reply: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/catalog", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // Read the request head, then answer (or not).
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(reply).await;
                held.push(socket);
            }
        });
        url
    }

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    #[tokio::test]
    async fn a_silent_origin_is_named_as_a_timeout_with_deadline_and_url() {
        let http = client();
        let url = silent_server(b"").await;
        let err = fetch_optional(&http, &url, 1024, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert_eq!(
            err.message,
            format!("origin did not answer within 0.3 s: GET {url}")
        );
        // Headers, then a body that never comes: still a timeout, not a decoding error.
        let url = silent_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789").await;
        let err = fetch_optional(&http, &url, 1024, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            err.message
                .starts_with("origin did not answer within 0.3 s: GET ")
                && err.message.contains(&url)
                && err.message.contains("after 10 bytes")
                && !err.message.contains("decoding"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_named_as_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/catalog", listener.local_addr().unwrap());
        drop(listener);
        let err = fetch_optional(&client(), &url, 1024, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            err.message
                .starts_with(&format!("cannot connect to {url}: ")),
            "{}",
            err.message
        );
        assert_eq!(describe_gaps(&[2..=2]), "version 2",);
        assert_eq!(describe_gaps(&[2..=4, 7..=7]), "versions 2–4, 7");
    }
}

impl Node {
    /// Discovers third-party publications on the configured relays, stores the newest
    /// verified one per (publisher, app), then scores every listed publisher from the
    /// operator's web of trust. A relay that is down, slow or lying costs only its share;
    /// listings are forgotten only after a complete pass that no longer finds them.
    pub async fn discover_market(&self) -> Result<archy_marketplace::Discovery, NodeError> {
        if self.config.relays.is_empty() {
            return Ok(Default::default());
        }
        let timeout = Duration::from_secs(10);
        // Publishers already listed are asked for by name: a flood cannot push them out.
        let known: Vec<NostrKey> = db::market_listings(&self.db)
            .await?
            .iter()
            .filter_map(|l| archy_marketplace::parse_nostr_key(&l.author).ok())
            .collect();
        let found = archy_marketplace::discover_with(
            &self.config.relays,
            &known,
            &archy_marketplace::DiscoveryLimits::default(),
            timeout,
        )
        .await
        .map_err(|e| NodeError::new(ErrorKind::Unavailable, e.to_string()))?;
        let mut keep = Vec::new();
        for l in &found.listings {
            let p = l.publication.publication();
            let row = db::MarketRow {
                author: l.author.clone(),
                app_id: l.app_id.clone(),
                event_id: l.event_id.clone(),
                created_at: l.created_at as i64,
                version: p.manifest.version.to_string(),
                name: p.manifest.name.clone(),
                did: p.publisher.did.clone(),
            };
            db::upsert_listing(&self.db, &row, l.envelope.as_bytes()).await?;
            keep.push((l.author.clone(), l.app_id.clone()));
        }
        if found.truncated || !found.relay_errors.is_empty() {
            warn!(
                truncated = found.truncated,
                relay_errors = ?found.relay_errors,
                "incomplete discovery pass: listings it did not see are kept"
            );
        } else {
            db::retain_listings(&self.db, &keep).await?;
        }
        if found.rejected_total > 0 {
            warn!(
                total = found.rejected_total,
                by_reason = ?found.rejected_by_reason,
                "relay publications rejected"
            );
        }
        if let Err(e) = self.score_publishers(&found).await {
            warn!(error = %e, "scoring publishers failed; previous scores are kept");
        }
        Ok(found)
    }

    /// The operator's keys: the config's `trusted_keys` and those added with
    /// `archy market trust add`.
    async fn operator_keys(&self) -> Result<Vec<NostrKey>, NodeError> {
        let mut keys = Vec::new();
        for text in self
            .config
            .trusted_keys
            .iter()
            .cloned()
            .chain(db::trusted_keys(&self.db).await?)
        {
            let key = archy_marketplace::parse_nostr_key(&text)
                .map_err(|e| NodeError::new(ErrorKind::Refused, format!("trusted key: {e}")))?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Scores every listed publisher (0..100, each point explained) and stores the result.
    async fn score_publishers(
        &self,
        found: &archy_marketplace::Discovery,
    ) -> Result<(), NodeError> {
        let operator = self.operator_keys().await?;
        let mut publishers: Vec<NostrKey> = Vec::new();
        for l in db::market_listings(&self.db).await? {
            if let Ok(key) = archy_marketplace::parse_nostr_key(&l.author)
                && !publishers.contains(&key)
            {
                publishers.push(key);
            }
        }
        if operator.is_empty() {
            let explanation = serde_json::json!([{
                "points": 0,
                "reason": "this node trusts no key yet (trusted_keys in the config, or `archy market trust add`): nobody vouches for any publisher"
            }]);
            for p in &publishers {
                db::store_score(&self.db, &p.to_hex(), 0, &explanation).await?;
            }
            return Ok(());
        }
        let fetched = archy_marketplace::fetch_trust_events(
            &self.config.relays,
            &operator,
            &publishers,
            &archy_marketplace::TrustFetchLimits::default(),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| NodeError::new(ErrorKind::Unavailable, e.to_string()))?;
        // With part of the graph missing (a relay down, a bound hit), a report that was not
        // seen must not raise anyone: a score may then only go down.
        let incomplete = fetched.truncated || !fetched.relay_errors.is_empty();
        if incomplete {
            warn!(truncated = fetched.truncated, relay_errors = ?fetched.relay_errors, "trust graph incomplete; scores may only fall this pass");
        }
        let mut inputs = fetched.inputs;
        for l in &found.listings {
            inputs.add_listing(l);
        }
        let scores = inputs.scores(&operator, &archy_marketplace::ScoreConfig::default());
        for p in &publishers {
            let score = scores.score(p);
            if incomplete
                && let Some(old) = db::score(&self.db, &p.to_hex()).await?
                && old.score < score.score
            {
                continue;
            }
            let explanation = serde_json::to_value(&score.explanation).map_err(internal)?;
            db::store_score(&self.db, &p.to_hex(), score.score, &explanation).await?;
        }
        Ok(())
    }

    /// Adds a key (npub or hex) to the operator's trusted keys; returns it as hex.
    pub async fn trust_key(&self, key: &str) -> Result<String, NodeError> {
        let key = archy_marketplace::parse_nostr_key(key)
            .map_err(|e| NodeError::new(ErrorKind::Refused, e.to_string()))?
            .to_hex();
        db::add_trusted_key(&self.db, &key).await?;
        db::clear_scores(&self.db).await?;
        Ok(key)
    }

    pub async fn untrust_key(&self, key: &str) -> Result<String, NodeError> {
        let hex = archy_marketplace::parse_nostr_key(key)
            .map_err(|e| NodeError::new(ErrorKind::Refused, e.to_string()))?
            .to_hex();
        let removed = db::remove_trusted_key(&self.db, &hex).await?;
        if removed {
            // Trust that flowed from this key must not outlive it.
            db::clear_scores(&self.db).await?;
        }
        if !removed {
            let in_config =
                self.config.trusted_keys.iter().any(|k| {
                    archy_marketplace::parse_nostr_key(k).is_ok_and(|k| k.to_hex() == hex)
                });
            return Err(NodeError::new(
                ErrorKind::NotFound,
                if in_config {
                    format!("{key} is trusted by the node's config (trusted_keys); remove it there")
                } else {
                    format!("{key} is not a trusted key")
                },
            ));
        }
        Ok(hex)
    }

    /// The operator's trusted keys, hex, with where each comes from.
    pub async fn trusted_keys(&self) -> Result<Vec<(String, &'static str)>, NodeError> {
        let mut out: Vec<(String, &'static str)> = Vec::new();
        for k in &self.config.trusted_keys {
            if let Ok(key) = archy_marketplace::parse_nostr_key(k) {
                out.push((key.to_hex(), "config"));
            }
        }
        for k in db::trusted_keys(&self.db).await? {
            if !out.iter().any(|(h, _)| *h == k) {
                out.push((k, "cli"));
            }
        }
        Ok(out)
    }

    pub async fn market(&self) -> Result<Vec<db::MarketRow>, NodeError> {
        Ok(db::market_listings(&self.db).await?)
    }

    /// Everything an operator needs to decide on a third-party app: each publisher's listing
    /// re-verified, the id it would get here, its sandbox verdict and the publisher's score.
    pub async fn market_show(&self, app_id: &str) -> Result<Vec<MarketDetail>, NodeError> {
        let listings = db::listings_of(&self.db, app_id).await?;
        if listings.is_empty() {
            return Err(NodeError::new(
                ErrorKind::NotFound,
                format!("no marketplace listing of {app_id:?}"),
            ));
        }
        let mut out = Vec::new();
        for listing in listings {
            let envelope = db::listing_envelope(&self.db, &listing.author, &listing.app_id)
                .await?
                .unwrap_or_default();
            let (local_id, sandbox, origin, description) =
                match third_party_app(&envelope, &listing.author) {
                    Ok((verified, app)) => (
                        Some(app.manifest.id.clone()),
                        "passes".to_owned(),
                        Some(verified.publication().origin.http.clone()),
                        app.manifest.description.clone(),
                    ),
                    Err(e) => (None, e.message, None, String::new()),
                };
            let installed = match &local_id {
                Some(id) => db::app(&self.db, id).await?.is_some(),
                None => false,
            };
            out.push(MarketDetail {
                score: db::score(&self.db, &listing.author).await?,
                threshold: self.config.market_min_score,
                listing,
                local_id,
                description,
                sandbox,
                origin,
                installed,
            });
        }
        Ok(out)
    }

    /// The pull loop: at start, then every interval. Failures are recorded, never fatal.
    pub async fn pull_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(Duration::from_secs(
            self.config.pull_interval_seconds.max(1),
        ));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = self.pull_catalog().await {
                warn!(error = %e, "catalog pull failed");
            }
            if let Err(e) = self.swarm_upkeep().await {
                warn!(error = %e, "swarm upkeep failed");
            }
            if let Err(e) = self.discover_market().await {
                warn!(error = %e, "marketplace discovery failed");
            }
        }
    }

    /// The current catalog, refused for new installs once expired.
    async fn installable_catalog(&self) -> Result<VerifiedCatalog, NodeError> {
        let trust = self.trust.read().await;
        let catalog = trust.catalog().cloned().ok_or_else(|| {
            NodeError::new(
                ErrorKind::Unavailable,
                "no verified catalog yet: the node has not pulled one from its origin",
            )
        })?;
        catalog.check_unexpired(Utc::now()).map_err(|e| {
            NodeError::new(
                ErrorKind::Refused,
                format!("{e}; no installs from it until the origin publishes a fresh one"),
            )
        })?;
        Ok(catalog)
    }

    /// Where the catalog's origin listens on iroh; its id must be the one the catalog signs.
    async fn origin_peer(&self, origin: &archy_registry::Origin) -> Result<PeerAddr, NodeError> {
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

    /// Installs an app from the verified catalog: fetch its artifacts over iroh (hash and
    /// size checked), hand them to the orchestrator, record it. Nothing stays on failure.
    pub async fn install(&self, id: &str) -> Result<AppView, NodeError> {
        self.install_with_progress(id, &|_| {}).await
    }

    /// [`Self::install`], reporting staged progress that never goes backward.
    pub async fn install_with_progress(
        &self,
        id: &str,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let progress = Monotonic::new(progress);
        let progress: ProgressSink<'_> = &|p| progress.emit(p);
        progress(Progress::new(
            Stage::Checking,
            0,
            1,
            format!("checking {id}"),
        ));
        let _guard = self.operation.lock().await;
        let catalog = self.installable_catalog().await?;
        let app = app_in(&catalog, id)?;
        self.install_locked(&Source::Catalog(&catalog), &app, progress)
            .await
    }

    /// Installs an app and, first, every app it depends on that is not installed yet,
    /// each at the catalog's version (which must satisfy the range). Everything is checked
    /// before anything is installed; if any install fails, the dependencies this call
    /// installed are removed again, so nothing is left half-done.
    pub async fn install_with_dependencies(
        &self,
        id: &str,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let _guard = self.operation.lock().await;
        let catalog = self.installable_catalog().await?;
        let app = app_in(&catalog, id)?;
        let installed: BTreeMap<String, String> = db::apps(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.id, r.version))
            .collect();
        let plan = dependency_plan(&catalog, &installed, &app)?;
        let source = Source::Catalog(&catalog);
        let mut installed_now: Vec<String> = Vec::new();
        // A dependency uninstalled earlier kept its data: undoing our install must not purge it.
        let mut had_data = BTreeMap::new();
        for dep in &plan {
            let id = dep.manifest.id.clone();
            let volumes = self.orchestrator.engine().volumes_of(&id).await?;
            had_data.insert(id, !volumes.is_empty());
        }
        for dep in &plan {
            progress(Progress::new(
                Stage::Checking,
                0,
                1,
                format!(
                    "installing {} {} (needed by {id})",
                    dep.manifest.id, dep.manifest.version
                ),
            ));
            if let Err(e) = self.install_locked(&source, dep, &|_| {}).await {
                self.remove_installed_now(&installed_now, &had_data).await;
                return Err(NodeError::new(
                    e.kind,
                    format!(
                        "installing {}, which {id} needs: {}",
                        dep.manifest.id, e.message
                    ),
                ));
            }
            installed_now.push(dep.manifest.id.clone());
        }
        let progress = Monotonic::new(progress);
        let progress: ProgressSink<'_> = &|p| progress.emit(p);
        let result = self.install_locked(&source, &app, progress).await;
        if result.is_err() {
            self.remove_installed_now(&installed_now, &had_data).await;
        }
        result
    }

    /// Undoes dependencies installed for an app whose own install failed (newest first),
    /// each as a recorded uninstall. Data a dependency had before is kept; data its fresh
    /// install created goes with it.
    async fn remove_installed_now(&self, ids: &[String], had_data: &BTreeMap<String, bool>) {
        for dep in ids.iter().rev() {
            let purge = !had_data.get(dep).copied().unwrap_or(true);
            let removed = async {
                let op =
                    db::begin_operation(&self.db, dep, if purge { "purge" } else { "uninstall" })
                        .await?;
                let result = match self.orchestrator.uninstall(dep, purge).await {
                    Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => {
                        db::delete_app(&self.db, dep).await.map_err(NodeError::from)
                    }
                    Err(e) => Err(NodeError::from(e)),
                };
                self.unpin_app(dep).await;
                db::finish_operation(
                    &self.db,
                    op,
                    result.as_ref().err().map(|e| e.message.as_str()),
                )
                .await?;
                result
            }
            .await;
            if let Err(e) = removed {
                error!(app = %dep, error = %e, "could not remove a dependency installed for a failed install");
            }
        }
    }

    /// After an update, releases the pins of artifacts the new version no longer has.
    async fn unpin_dropped_artifacts(&self, app: &VerifiedApp) {
        let prefix = format!("archy/app/{}/", app.manifest.id);
        let Ok(pins) = self.swarm.pins(&prefix).await else {
            return;
        };
        for (tag, _) in pins {
            let name = tag.strip_prefix(&prefix).unwrap_or_default();
            if app.artifact(name).is_none()
                && let Err(e) = self.swarm.unpin(&tag).await
            {
                warn!(%tag, error = %e, "could not unpin");
            }
        }
    }

    /// Releases an app's pinned blobs; they stay only while a catalog references them.
    async fn unpin_app(&self, id: &str) {
        let prefix = format!("archy/app/{id}/");
        if let Ok(pins) = self.swarm.pins(&prefix).await {
            for (tag, _) in pins {
                if let Err(e) = self.swarm.unpin(&tag).await {
                    warn!(%tag, error = %e, "could not unpin");
                }
            }
        }
    }

    /// Installs a third-party app discovered on the relays: the newest verified listing of
    /// `app_id` (by `publisher`, a Nostr key in hex or a prefix of it, needed only when
    /// several publishers list that id). It must pass the sandbox policy, and a publisher
    /// scoring below the node's threshold needs the operator's explicit `approve`. The app
    /// lives under its publisher's namespace (`<id>.<key prefix>`).
    pub async fn install_listing(
        &self,
        app_id: &str,
        publisher: Option<&str>,
        approve: bool,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let progress = Monotonic::new(progress);
        let progress: ProgressSink<'_> = &|p| progress.emit(p);
        progress(Progress::new(
            Stage::Checking,
            0,
            1,
            format!("checking {app_id} from the marketplace"),
        ));
        let _guard = self.operation.lock().await;
        let listing = self.resolve_listing(app_id, publisher).await?;
        let (envelope, verified, app) = self
            .listed_app(&listing.author, &listing.app_id, approve)
            .await?;
        let source = Source::Publication {
            author: &listing.author,
            envelope: &envelope,
            verified: &verified,
        };
        self.install_locked(&source, &app, progress).await
    }

    /// `author`'s stored listing of `app_id`, re-verified into an installable app (sandbox
    /// policy, namespace), once the publisher clears the trust threshold or `approve`.
    async fn listed_app(
        &self,
        author: &str,
        app_id: &str,
        approve: bool,
    ) -> Result<(Vec<u8>, VerifiedPublication, VerifiedApp), NodeError> {
        let envelope = db::listing_envelope(&self.db, author, app_id)
            .await?
            .ok_or_else(|| {
                NodeError::new(
                    ErrorKind::NotFound,
                    format!("publisher {author} no longer lists {app_id}"),
                )
            })?;
        let (verified, app) = third_party_app(&envelope, author)?;
        self.check_publisher_trust(author, approve).await?;
        Ok((envelope, verified, app))
    }

    /// The one listing `app_id` (optionally narrowed to `publisher`) names.
    async fn resolve_listing(
        &self,
        app_id: &str,
        publisher: Option<&str>,
    ) -> Result<db::MarketRow, NodeError> {
        let mut found: Vec<db::MarketRow> = db::listings_of(&self.db, app_id)
            .await?
            .into_iter()
            .filter(|l| publisher.is_none_or(|p| l.author.starts_with(&p.to_ascii_lowercase())))
            .collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(NodeError::new(
                ErrorKind::NotFound,
                match publisher {
                    Some(p) => format!(
                        "no marketplace listing of {app_id:?} by publisher {p}; `archy market list` shows what was discovered"
                    ),
                    None => format!(
                        "no marketplace listing of {app_id:?}; `archy market discover` asks the relays again"
                    ),
                },
            )),
            _ => Err(NodeError::new(
                ErrorKind::Conflict,
                format!(
                    "{} publishers list {app_id:?} ({}); name one with --publisher",
                    found.len(),
                    found
                        .iter()
                        .map(|l| l.author.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Below the node's threshold, a publisher's app needs the operator's explicit approval.
    async fn check_publisher_trust(&self, author: &str, approve: bool) -> Result<(), NodeError> {
        let threshold = self.config.market_min_score;
        let (score, why) = match db::score(&self.db, author).await? {
            Some(row) => (row.score, explain(&row.explanation)),
            None => (
                0,
                "not scored yet (`archy market discover` scores publishers)".to_owned(),
            ),
        };
        if score >= threshold {
            return Ok(());
        }
        if approve {
            info!(
                publisher = author,
                score, threshold, "install approved by the operator below the trust threshold"
            );
            return Ok(());
        }
        Err(NodeError::new(
            ErrorKind::Refused,
            format!(
                "publisher {author} scores {score}/100, below this node's threshold of {threshold} \
                 (market_min_score): {why}. Review it with `archy market show`, then install with \
                 --approve to accept it"
            ),
        ))
    }

    /// Installs `app` from `source` with the operation lock held: nothing stays on failure.
    async fn install_locked(
        &self,
        source: &Source<'_>,
        app: &VerifiedApp,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let id = app.manifest.id.as_str();
        if let Some(row) = db::app(&self.db, id).await? {
            let whose = match (&row.publisher, source) {
                (Some(p), Source::Publication { author, .. }) if p != author => format!(
                    "; it belongs to publisher {p}, and a publisher never replaces another's app"
                ),
                _ => String::new(),
            };
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!("app {id:?} is already installed{whose}"),
            ));
        }
        self.check_dependencies_installed(app).await?;
        let op = db::begin_operation(&self.db, id, "install").await?;
        let workdir = self
            .config
            .data_dir
            .join("tmp")
            .join(format!("install-{op}"));
        let result = self
            .install_steps(op, source, app, &workdir, progress)
            .await;
        let _ = std::fs::remove_dir_all(&workdir);
        match &result {
            Ok(_) => db::finish_operation(&self.db, op, None).await?,
            Err(e) => db::finish_operation(&self.db, op, Some(&e.message)).await?,
        }
        result
    }

    async fn install_steps(
        &self,
        op: i64,
        source: &Source<'_>,
        app: &VerifiedApp,
        workdir: &std::path::Path,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let id = app.manifest.id.as_str();
        db::set_stage(&self.db, op, "fetching").await?;
        let artifact_bytes = app.artifacts.iter().map(|a| a.size).sum();
        self.orchestrator
            .check_disk(&app.manifest, artifact_bytes)
            .await?;
        let origin = source.origin();
        // No iroh address is not fatal: the origin's HTTP is the fallback.
        let peer = match self.origin_peer(origin).await {
            Ok(peer) => Some(peer),
            Err(e) => {
                warn!(error = %e, "origin's iroh address unknown; HTTP only");
                None
            }
        };
        let from = FetchFrom {
            iroh: peer.as_ref(),
            http: origin.http.as_str(),
            first_party: matches!(source, Source::Catalog(_)),
        };
        let images = self
            .fetch_images(app, Some(from), workdir, progress)
            .await?;
        db::set_stage(&self.db, op, "installing").await?;
        let runtime = self
            .orchestrator
            .install(&app.manifest, &images, progress)
            .await?;
        self.pin_artifacts(app).await;
        let version = app.manifest.version.to_string();
        match source {
            Source::Catalog(catalog) => {
                db::insert_app(&self.db, id, &version, catalog.version()).await?
            }
            Source::Publication {
                author, envelope, ..
            } => db::insert_third_party_app(&self.db, id, &version, author, envelope).await?,
        }
        progress(Progress::new(
            Stage::Finished,
            1,
            1,
            format!("{id} is running"),
        ));
        Ok(self.view(id, &version, "running", runtime, Some(app)))
    }

    /// Fetches (or finds in the local store) every image artifact of `app`, verified against
    /// its hash and size, and exports each to `workdir` for `podman load`.
    async fn fetch_images(
        &self,
        app: &VerifiedApp,
        origin: Option<FetchFrom<'_>>,
        workdir: &std::path::Path,
        progress: ProgressSink<'_>,
    ) -> Result<BTreeMap<String, std::path::PathBuf>, NodeError> {
        let total: u64 = app.artifacts.iter().map(|a| a.size).sum();
        let mut before = 0u64;
        let id = app.manifest.id.as_str();
        std::fs::create_dir_all(workdir).map_err(internal)?;
        let mut images = BTreeMap::new();
        for c in &app.manifest.containers {
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
            let on_bytes = |n: u64| {
                progress(Progress::new(
                    Stage::Fetching,
                    base + n,
                    total,
                    name.clone(),
                ))
            };
            on_bytes(0);
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
                    };
                    let fetched = self
                        .swarm
                        .fetch_with_policy(&blob, &providers, &self.fetch_policy(), &on_bytes)
                        .await;
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
                None => self.swarm.fetch_observed(&blob, &[], &on_bytes).await,
            };
            before += blob.size;
            fetched.map_err(|e| {
                NodeError::new(
                    ErrorKind::Unavailable,
                    format!("artifact {name} of {id}: {e}"),
                )
            })?;
            let path = workdir.join(format!("{name}.tar"));
            self.swarm.export(&blob, &path).await.map_err(internal)?;
            images.insert(name.clone(), path);
        }
        Ok(images)
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
        archy_swarm::FetchPolicy {
            detour_budget: Duration::from_secs(self.config.detour_budget_seconds),
            ..Default::default()
        }
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
        let (origin, mut keep) = {
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
            (catalog.catalog().origin.http.clone(), keep)
        };
        for row in db::apps(&self.db).await? {
            if let Ok((_, app)) = self.installed_app(&row.id).await {
                keep.extend(
                    app.artifacts
                        .iter()
                        .filter_map(|a| BlobRef::from_hex(&a.blake3, a.size).ok())
                        .map(|b| b.hash),
                );
            }
        }
        // Under the operation lock: a blob being installed is referenced only once the
        // install is recorded, so collection must not run in between.
        let report = {
            let _guard = self.operation.lock().await;
            self.swarm.gc(&keep).await.map_err(internal)?
        };
        if !report.removed.is_empty() {
            info!(
                removed = report.removed.len(),
                bytes = report.bytes_freed,
                "unreferenced blobs collected"
            );
        }
        match tokio::time::timeout(TRACKER_TIMEOUT, self.swarm.announce_held(&origin)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => info!(error = %e, "announce to the tracker failed"),
            Err(_) => info!(tracker = %origin, "announce to the tracker timed out"),
        }
        Ok(report)
    }

    /// One level-triggered pass: every app the operator wants running is compared with
    /// Podman and repaired (missing containers recreated from the pinned local blobs, dead
    /// ones restarted). Apps the operator stopped are never touched.
    pub async fn reconcile_once(
        &self,
    ) -> Result<Vec<(String, archy_orchestrator::Repair)>, NodeError> {
        let _guard = self.operation.lock().await;
        let mut repairs = Vec::new();
        // One listing of every archy container per pass; only drifted apps cost more.
        let podman = self.orchestrator.engine().containers_by_app().await?;
        for row in db::apps(&self.db).await? {
            if row.desired != "running" {
                continue;
            }
            let app = match self.installed_app(&row.id).await {
                Ok((_, app)) => app,
                Err(e) => {
                    warn!(app = %row.id, error = %e, "cannot verify the app; the reconciler leaves it alone");
                    continue;
                }
            };
            let current = podman.get(&row.id).map(Vec::as_slice).unwrap_or_default();
            if !Orchestrator::drifted(&app.manifest, current) {
                continue;
            }
            let missing = self.orchestrator.missing_containers(&app.manifest).await?;
            let workdir = self
                .config
                .data_dir
                .join("tmp")
                .join(format!("reconcile-{}", row.id));
            let result = async {
                let images = if missing.is_empty() {
                    BTreeMap::new()
                } else {
                    // Installed apps' blobs are pinned locally: no provider is needed.
                    self.fetch_images(&app, None, &workdir, &|_| {}).await?
                };
                Ok::<_, NodeError>(self.orchestrator.repair(&app.manifest, &images).await?)
            }
            .await;
            let _ = std::fs::remove_dir_all(&workdir);
            match result {
                Ok(repair) if repair.is_noop() => {}
                Ok(repair) => repairs.push((row.id.clone(), repair)),
                Err(e) => warn!(app = %row.id, error = %e, "reconcile could not repair the app"),
            }
        }
        Ok(repairs)
    }

    /// Runs [`Self::reconcile_once`] forever: at the configured interval, and as soon as
    /// Podman reports that an app's container died or was removed. The event stream only
    /// makes repairs prompt; the interval still catches whatever an event could miss.
    pub async fn reconcile_loop(self: Arc<Self>) {
        let period = Duration::from_secs(self.config.reconcile_interval_seconds.max(1));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events = None;
        // A stream that keeps ending (Podman down) is retried ever more slowly.
        let mut retry = EVENT_RETRY_MIN;
        // A container that dies right after each restart must not make the reconciler spin.
        let mut last_event_pass: Option<tokio::time::Instant> = None;
        loop {
            if events.is_none() {
                events = match self.orchestrator.engine().app_events() {
                    Ok(rx) => Some(rx),
                    Err(e) => {
                        warn!(error = %e, "cannot follow Podman events; reconciling on the interval only");
                        None
                    }
                };
            }
            let event = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = interval.tick() => {}
                received = event => match received {
                    Some(ev) => {
                        info!(app = %ev.app, container = %ev.container, status = %ev.status, "podman event");
                        retry = EVENT_RETRY_MIN;
                        // A burst (stop, died, remove…) settles into one pass, and passes
                        // driven by events are at least EVENT_PASS_GAP apart.
                        let settle = match last_event_pass {
                            Some(at) => (at + EVENT_PASS_GAP)
                                .saturating_duration_since(tokio::time::Instant::now())
                                .max(EVENT_SETTLE),
                            None => EVENT_SETTLE,
                        };
                        tokio::time::sleep(settle).await;
                        if let Some(rx) = events.as_mut() {
                            while rx.try_recv().is_ok() {}
                        }
                        last_event_pass = Some(tokio::time::Instant::now());
                    }
                    None => {
                        warn!(retry_in = ?retry, "podman event stream ended; following it again");
                        events = None;
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(EVENT_RETRY_MAX);
                        continue;
                    }
                },
            }
            match self.reconcile_once().await {
                Ok(repairs) => {
                    for (app, repair) in repairs {
                        info!(%app, ?repair, "reconciler repaired drift");
                    }
                }
                Err(e) => warn!(error = %e, "reconcile pass failed"),
            }
        }
    }

    /// Every app this one depends on must be installed at a version its range accepts.
    async fn check_dependencies_installed(&self, app: &VerifiedApp) -> Result<(), NodeError> {
        for dep in &app.manifest.dependencies {
            let problem = match db::app(&self.db, &dep.id).await? {
                None => format!("{} is not installed", dep.id),
                Some(row) => match semver::Version::parse(&row.version) {
                    Ok(v) if dep.version.matches(&v) => continue,
                    _ => format!(
                        "{} {} is installed, which is outside {}",
                        dep.id, row.version, dep.version
                    ),
                },
            };
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!(
                    "{} needs {} {}: {problem}; install it first (or install with --with-deps)",
                    app.manifest.id, dep.id, dep.version
                ),
            ));
        }
        Ok(())
    }

    /// Installed apps whose manifest depends on `id`.
    async fn dependents_of(&self, id: &str) -> Result<Vec<String>, NodeError> {
        let mut dependents = Vec::new();
        for row in db::apps(&self.db).await? {
            if row.id == id {
                continue;
            }
            match self.installed_app(&row.id).await {
                Ok((_, app)) => {
                    if app.manifest.dependencies.iter().any(|d| d.id == id) {
                        dependents.push(row.id);
                    }
                }
                // Its manifest cannot be trusted to say what it needs; it must not block
                // the operator from managing the rest.
                Err(e) => {
                    warn!(app = %row.id, error = %e, "cannot verify the app; not counted as a dependent")
                }
            }
        }
        Ok(dependents)
    }

    /// Pins an installed app's blobs under its name, so the store keeps them for repairs
    /// and rollbacks without the network.
    async fn pin_artifacts(&self, app: &VerifiedApp) {
        for artifact in &app.artifacts {
            let Ok(blob) = BlobRef::from_hex(&artifact.blake3, artifact.size) else {
                continue;
            };
            let tag = format!("archy/app/{}/{}", app.manifest.id, artifact.name);
            if let Err(e) = self.swarm.pin(&blob.hash, &tag).await {
                warn!(%tag, error = %e, "could not pin artifact");
            }
        }
    }

    /// Updates an installed app to the version the current catalog lists (a third-party app:
    /// its publisher's newest listing, which must clear the trust threshold again unless
    /// `approve`). The previous version's image (pinned locally) and manifest are kept, and
    /// the orchestrator goes back to them when the new version does not become healthy.
    pub async fn update(&self, id: &str, approve: bool) -> Result<AppView, NodeError> {
        let _guard = self.operation.lock().await;
        let (row, old) = self.installed_app(id).await?;
        match (&row.publisher, &row.publication) {
            (Some(author), Some(installed)) => {
                let app_id = VerifiedPublication::verify(installed)
                    .map_err(internal)?
                    .publication()
                    .manifest
                    .id
                    .clone();
                let (envelope, verified, new) = self.listed_app(author, &app_id, approve).await?;
                let source = Source::Publication {
                    author,
                    envelope: &envelope,
                    verified: &verified,
                };
                self.update_locked(&row, &old, &new, &source).await
            }
            _ => {
                let catalog = self.installable_catalog().await?;
                let new = catalog.app(id).ok_or_else(|| {
                    NodeError::new(
                        ErrorKind::NotFound,
                        format!("catalog version {} no longer lists {id}", catalog.version()),
                    )
                })?;
                self.update_locked(&row, &old, &new, &Source::Catalog(&catalog))
                    .await
            }
        }
    }

    async fn update_locked(
        &self,
        row: &db::AppRow,
        old: &VerifiedApp,
        new: &VerifiedApp,
        source: &Source<'_>,
    ) -> Result<AppView, NodeError> {
        let id = row.id.as_str();
        if new.manifest.id != old.manifest.id {
            return Err(internal(format!(
                "{id}: the new version is {}, another app",
                new.manifest.id
            )));
        }
        if new.manifest.version <= old.manifest.version {
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!(
                    "{id} is at {}; {} offers {}, nothing newer",
                    old.manifest.version,
                    source.describe(),
                    new.manifest.version
                ),
            ));
        }
        self.check_dependencies_installed(new).await?;
        let op = db::begin_operation(&self.db, id, "update").await?;
        let workdir = self
            .config
            .data_dir
            .join("tmp")
            .join(format!("update-{op}"));
        let result = async {
            let new_bytes = new.artifacts.iter().map(|a| a.size).sum();
            self.orchestrator
                .check_disk(&new.manifest, new_bytes)
                .await?;
            db::set_stage(&self.db, op, "fetching").await?;
            let origin = source.origin();
            let peer = self.origin_peer(origin).await.ok();
            let from = FetchFrom {
                iroh: peer.as_ref(),
                http: origin.http.as_str(),
                first_party: matches!(source, Source::Catalog(_)),
            };
            let new_images = self
                .fetch_images(new, Some(from), &workdir.join("new"), &|_| {})
                .await?;
            // The previous version's images come from the local store: rollback needs no network.
            let old_images = self
                .fetch_images(old, None, &workdir.join("old"), &|_| {})
                .await?;
            db::set_stage(&self.db, op, "replacing").await?;
            let runtime = self
                .orchestrator
                .update(
                    &old.manifest,
                    &new.manifest,
                    &old_images,
                    &new_images,
                    &|_| {},
                )
                .await?;
            self.pin_artifacts(new).await;
            self.unpin_dropped_artifacts(new).await;
            let version = new.manifest.version.to_string();
            match source {
                Source::Catalog(catalog) => {
                    db::update_app(&self.db, id, &version, catalog.version()).await?
                }
                Source::Publication { envelope, .. } => {
                    db::update_third_party_app(&self.db, id, &version, envelope).await?
                }
            }
            Ok::<_, NodeError>(self.view(id, &version, &row.desired, runtime, Some(new)))
        }
        .await;
        let _ = std::fs::remove_dir_all(&workdir);
        db::finish_operation(
            &self.db,
            op,
            result.as_ref().err().map(|e| e.message.as_str()),
        )
        .await?;
        result
    }

    /// The manifest an installed app was installed from, re-verified from stored bytes.
    async fn installed_app(&self, id: &str) -> Result<(db::AppRow, VerifiedApp), NodeError> {
        let row = db::app(&self.db, id).await?.ok_or_else(|| {
            NodeError::new(ErrorKind::NotFound, format!("app {id:?} is not installed"))
        })?;
        if let (Some(author), Some(envelope)) = (&row.publisher, &row.publication) {
            let (_, app) = third_party_app(envelope, author)?;
            if app.manifest.id != row.id {
                return Err(internal(format!(
                    "app {id}: its stored publication is for {}",
                    app.manifest.id
                )));
            }
            return Ok((row, app));
        }
        let trust = self.trust.read().await;
        let from_install = db::catalog(&self.db, row.catalog_version)
            .await?
            .and_then(|bytes| VerifiedCatalog::verify(trust.root(), &bytes).ok())
            .and_then(|catalog| catalog.app(id));
        // After a trust reset the install-time catalog is gone; the current one serves
        // when it lists the very same app version.
        let app = from_install
            .or_else(|| {
                trust
                    .catalog()
                    .and_then(|c| c.app(id))
                    .filter(|a| a.manifest.version.to_string() == row.version)
            })
            .ok_or_else(|| {
                NodeError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "app {id} {} was installed from catalog version {}, which no longer verifies, \
                         and the current catalog does not list that version",
                        row.version, row.catalog_version
                    ),
                )
            })?;
        Ok((row, app))
    }

    pub async fn start_app(&self, id: &str) -> Result<AppView, NodeError> {
        let _guard = self.operation.lock().await;
        let (row, app) = self.installed_app(id).await?;
        db::set_desired(&self.db, id, "running").await?;
        let runtime = self.orchestrator.start(&app.manifest).await?;
        Ok(self.view(id, &row.version, "running", runtime, Some(&app)))
    }

    /// Stops (honouring each stop grace) and starts again, in dependency order.
    pub async fn restart_app(&self, id: &str) -> Result<AppView, NodeError> {
        let _guard = self.operation.lock().await;
        let (row, app) = self.installed_app(id).await?;
        self.orchestrator.stop(&app.manifest).await?;
        db::set_desired(&self.db, id, "running").await?;
        let runtime = self.orchestrator.start(&app.manifest).await?;
        Ok(self.view(id, &row.version, "running", runtime, Some(&app)))
    }

    pub async fn stop_app(&self, id: &str) -> Result<AppView, NodeError> {
        let _guard = self.operation.lock().await;
        let (row, app) = self.installed_app(id).await?;
        // Desired state first: a reconciler must never restart what the user stopped.
        db::set_desired(&self.db, id, "stopped").await?;
        let runtime = self.orchestrator.stop(&app.manifest).await?;
        Ok(self.view(id, &row.version, "stopped", runtime, Some(&app)))
    }

    pub async fn uninstall(&self, id: &str, purge: bool) -> Result<(), NodeError> {
        let _guard = self.operation.lock().await;
        let dependents = self.dependents_of(id).await?;
        if !dependents.is_empty() {
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!(
                    "{id} is needed by {}; uninstall {} first",
                    dependents.join(", "),
                    if dependents.len() == 1 { "it" } else { "them" }
                ),
            ));
        }
        // Purge deletes data: only of an app this node installed, or whose data it kept
        // after an uninstall without purge; never a path a request made up.
        if db::app(&self.db, id).await?.is_none() && !(purge && self.has_retained_data(id).await?) {
            return Err(NodeError::new(
                ErrorKind::NotFound,
                format!("app {id:?} is not installed (and this node keeps no data of it)"),
            ));
        }
        let op =
            db::begin_operation(&self.db, id, if purge { "purge" } else { "uninstall" }).await?;
        let result = match self.orchestrator.uninstall(id, purge).await {
            Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => Ok(()),
            Err(e) => Err(NodeError::from(e)),
        };
        if result.is_ok() {
            db::delete_app(&self.db, id).await?;
            self.unpin_app(id).await;
        }
        db::finish_operation(
            &self.db,
            op,
            result.as_ref().err().map(|e| e.message.as_str()),
        )
        .await?;
        result
    }

    /// Whether an uninstalled app left data here: its labelled volumes, or its directory
    /// under `<data_dir>/apps`, checked to resolve inside that directory.
    async fn has_retained_data(&self, id: &str) -> Result<bool, NodeError> {
        let apps = self.config.data_dir.join("apps");
        let dir = archy_orchestrator::app_data_dir(&self.config.data_dir, id);
        let inside = match (apps.canonicalize(), dir.canonicalize()) {
            (Ok(root), Ok(dir)) => dir.parent() == Some(root.as_path()),
            _ => false,
        };
        if inside {
            return Ok(true);
        }
        Ok(!self.orchestrator.engine().volumes_of(id).await?.is_empty())
    }

    fn view(
        &self,
        id: &str,
        version: &str,
        desired: &str,
        runtime: AppRuntime,
        app: Option<&VerifiedApp>,
    ) -> AppView {
        let state = if runtime.containers.is_empty() {
            "missing"
        } else if runtime.all_running() {
            "running"
        } else if runtime
            .containers
            .iter()
            .all(|c| c.state != archy_orchestrator::ContainerState::Running)
        {
            "stopped"
        } else {
            "degraded"
        };
        let url = app.and_then(|a| {
            let ui = a.manifest.ui.as_ref()?;
            let port = a
                .manifest
                .container(&ui.container)?
                .ports
                .iter()
                .find(|p| p.container == ui.port)?
                .host;
            let host = if self.config.publish_address.is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                self.config.publish_address.to_string()
            };
            Some(format!("http://{host}:{port}{}", ui.path))
        });
        let warnings = app
            .map(|a| {
                self.orchestrator
                    .unenforced_limits(&a.manifest)
                    .into_iter()
                    .filter(|l| l.declared)
                    .map(|l| l.to_string())
                    .collect()
            })
            .unwrap_or_default();
        AppView {
            id: id.to_owned(),
            version: version.to_owned(),
            desired: desired.to_owned(),
            state: state.to_owned(),
            containers: runtime.containers,
            url,
            warnings,
        }
    }

    pub async fn app(&self, id: &str) -> Result<AppView, NodeError> {
        let (row, app) = self.installed_app(id).await?;
        let runtime = self.orchestrator.status(id).await?;
        Ok(self.view(id, &row.version, &row.desired, runtime, Some(&app)))
    }

    /// Every installed app; one that no longer verifies is listed as "unverifiable"
    /// rather than hiding the others.
    pub async fn apps(&self) -> Result<Vec<AppView>, NodeError> {
        let mut out = Vec::new();
        for row in db::apps(&self.db).await? {
            match self.app(&row.id).await {
                Ok(view) => out.push(view),
                Err(e) => {
                    warn!(app = %row.id, error = %e, "listing an app that does not verify");
                    let runtime = self.orchestrator.status(&row.id).await?;
                    let mut view = self.view(&row.id, &row.version, &row.desired, runtime, None);
                    view.state = "unverifiable".into();
                    out.push(view);
                }
            }
        }
        Ok(out)
    }

    pub async fn catalog_apps(&self) -> Result<Vec<CatalogAppView>, NodeError> {
        let installed: Vec<String> = db::apps(&self.db)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
        let trust = self.trust.read().await;
        let Some(catalog) = trust.catalog() else {
            return Ok(Vec::new());
        };
        Ok(catalog
            .catalog()
            .apps
            .iter()
            .map(|a| CatalogAppView {
                id: a.id.clone(),
                name: a.manifest.name.clone(),
                version: a.version.to_string(),
                description: a.manifest.description.clone(),
                installed: installed.contains(&a.id),
            })
            .collect())
    }

    pub async fn status(&self) -> Result<StatusView, NodeError> {
        let missed_versions = db::latest_catalog_missed(&self.db).await?;
        let trust = self.trust.read().await;
        let now = Utc::now();
        let window = self.config.expiry_warning_days;
        let catalog = trust.catalog().map(|c| {
            let days_left = (c.expires() - now).num_days();
            let expired = c.expires() <= now;
            let warning = if expired {
                Some(format!(
                    "catalog version {} expired at {}: running apps keep running, but nothing new is installed or updated until the origin publishes a fresh catalog",
                    c.version(),
                    c.expires()
                ))
            } else if days_left < window {
                Some(format!(
                    "catalog version {} expires in {days_left} day(s) ({}); the origin must publish a re-signed catalog before then",
                    c.version(),
                    c.expires()
                ))
            } else {
                None
            };
            CatalogView {
                version: c.version(),
                expires: c.expires(),
                expired,
                days_left,
                origin: c.catalog().origin.http.clone(),
                missed_versions,
                warning,
            }
        });
        Ok(StatusView {
            endpoint_id: self.swarm.endpoint_id().to_string(),
            root_version: trust.root().version(),
            catalog,
            last_pull: self.last_pull.lock().map(|l| l.clone()).unwrap_or_default(),
            alarms: db::alarms(&self.db).await?,
            podman_url: self.orchestrator.engine().url().to_owned(),
            resource_limits: self.orchestrator.limits(),
            swarm: self.swarm.metrics(),
            blobs_url: self.blobs_url.get().cloned(),
        })
    }
}

/// Where an install or update takes its app from: the first-party catalog, or a
/// third-party publication discovered on the relays.
enum Source<'a> {
    Catalog(&'a VerifiedCatalog),
    Publication {
        /// The publisher's Nostr key (hex).
        author: &'a str,
        /// The DID-signed envelope, stored with the app so it can be re-verified.
        envelope: &'a [u8],
        verified: &'a VerifiedPublication,
    },
}

impl Source<'_> {
    fn origin(&self) -> &archy_registry::Origin {
        match self {
            Source::Catalog(c) => &c.catalog().origin,
            Source::Publication { verified, .. } => &verified.publication().origin,
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Catalog(c) => format!("catalog version {}", c.version()),
            Source::Publication { author, .. } => format!("publisher {author}'s newest listing"),
        }
    }
}

/// A third-party publication, re-verified (DID signature, binding to `author`'s Nostr key)
/// and turned into an installable app: sandbox policy passed, id in the publisher's namespace.
fn third_party_app(
    envelope: &[u8],
    author: &str,
) -> Result<(VerifiedPublication, VerifiedApp), NodeError> {
    let verified = VerifiedPublication::verify(envelope).map_err(|e| {
        NodeError::new(
            ErrorKind::Refused,
            format!("publication does not verify: {e}"),
        )
    })?;
    if verified.publication().publisher.nostr != author {
        return Err(NodeError::new(
            ErrorKind::Refused,
            format!(
                "publication binds Nostr key {}, not the publisher {author}",
                verified.publication().publisher.nostr
            ),
        ));
    }
    let app = verified.sandboxed_app().map_err(|e| {
        NodeError::new(
            ErrorKind::Refused,
            format!(
                "{} by {author} fails the third-party sandbox policy: {e}",
                verified.publication().manifest.id
            ),
        )
    })?;
    Ok((verified, app))
}

/// The catalog's app `id`, or an error that says where to look instead.
fn app_in(catalog: &VerifiedCatalog, id: &str) -> Result<VerifiedApp, NodeError> {
    catalog.app(id).ok_or_else(|| {
        let third_party = if id.contains('.') {
            "; third-party apps are installed with `archy market install`"
        } else {
            ""
        };
        NodeError::new(
            ErrorKind::NotFound,
            format!(
                "no app {id:?} in catalog version {}{third_party}",
                catalog.version()
            ),
        )
    })
}

/// The apps to install, in order, before `app`: every dependency not installed yet (and
/// theirs), at the catalog's version, which must satisfy each range that asks for it.
/// An installed dependency outside a range, one the catalog lacks, or a cycle is an error
/// naming the chain that led to it.
fn dependency_plan(
    catalog: &VerifiedCatalog,
    installed: &BTreeMap<String, String>,
    app: &VerifiedApp,
) -> Result<Vec<VerifiedApp>, NodeError> {
    fn visit(
        catalog: &VerifiedCatalog,
        installed: &BTreeMap<String, String>,
        app: &VerifiedApp,
        chain: &mut Vec<String>,
        plan: &mut Vec<VerifiedApp>,
    ) -> Result<(), NodeError> {
        chain.push(app.manifest.id.clone());
        for dep in &app.manifest.dependencies {
            let path = format!("{} needs {} {}", chain.join(" → "), dep.id, dep.version);
            if chain.contains(&dep.id) {
                return Err(NodeError::new(
                    ErrorKind::Refused,
                    format!("{path}: a dependency cycle"),
                ));
            }
            if let Some(version) = installed.get(&dep.id) {
                match semver::Version::parse(version) {
                    Ok(v) if dep.version.matches(&v) => continue,
                    _ => {
                        return Err(NodeError::new(
                            ErrorKind::Conflict,
                            format!(
                                "{path}: {} {version} is installed, which is outside {}; update it first",
                                dep.id, dep.version
                            ),
                        ));
                    }
                }
            }
            if plan.iter().any(|p| p.manifest.id == dep.id) {
                if plan
                    .iter()
                    .any(|p| p.manifest.id == dep.id && dep.version.matches(&p.manifest.version))
                {
                    continue;
                }
                return Err(NodeError::new(
                    ErrorKind::Conflict,
                    format!("{path}: the catalog's {} does not satisfy it", dep.id),
                ));
            }
            let Some(found) = catalog.app(&dep.id) else {
                return Err(NodeError::new(
                    ErrorKind::NotFound,
                    format!(
                        "{path}: catalog version {} has no {}",
                        catalog.version(),
                        dep.id
                    ),
                ));
            };
            if !dep.version.matches(&found.manifest.version) {
                return Err(NodeError::new(
                    ErrorKind::Conflict,
                    format!(
                        "{path}: catalog version {} offers {} {}",
                        catalog.version(),
                        dep.id,
                        found.manifest.version
                    ),
                ));
            }
            visit(catalog, installed, &found, chain, plan)?;
            plan.push(found);
        }
        chain.pop();
        Ok(())
    }
    let mut plan = Vec::new();
    visit(catalog, installed, app, &mut Vec::new(), &mut plan)?;
    Ok(plan)
}

/// The first reasons of a score explanation, for an error message.
fn explain(explanation: &serde_json::Value) -> String {
    let reasons: Vec<String> = explanation
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let reason = t.get("reason")?.as_str()?;
            Some(match t.get("points").and_then(serde_json::Value::as_f64) {
                Some(p) => format!("{p:+} {reason}"),
                None => reason.to_owned(),
            })
        })
        .take(4)
        .collect();
    if reasons.is_empty() {
        "no path from your trusted keys".to_owned()
    } else {
        reasons.join("; ")
    }
}

/// Passes on progress events only when they move forward: stage by stage, and within a
/// stage never to fewer units. Starting a container and waiting for its health check are
/// steps of one sequence, so a second container's start does not count as going back.
struct Monotonic<'a> {
    sink: ProgressSink<'a>,
    last: std::sync::Mutex<Option<(Stage, u64)>>,
}

impl<'a> Monotonic<'a> {
    fn new(sink: ProgressSink<'a>) -> Self {
        Self {
            sink,
            last: std::sync::Mutex::new(None),
        }
    }

    fn key(p: &Progress) -> (Stage, u64) {
        match p.stage {
            Stage::Starting => (Stage::Starting, p.done * 2),
            Stage::WaitingForHealth => (Stage::Starting, p.done * 2 + 1),
            stage => (stage, p.done),
        }
    }

    fn emit(&self, p: Progress) {
        let key = Self::key(&p);
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|l| key < l) {
            return;
        }
        *last = Some(key);
        drop(last);
        (self.sink)(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_never_goes_backward() {
        let seen = std::sync::Mutex::new(Vec::new());
        let sink = |p: Progress| seen.lock().unwrap().push((p.stage, p.done));
        let m = Monotonic::new(&sink);
        for (stage, done) in [
            (Stage::Fetching, 10),
            (Stage::Fetching, 5),
            (Stage::Fetching, 20),
            (Stage::Loading, 0),
            (Stage::Fetching, 30),
            (Stage::Starting, 0),
            (Stage::WaitingForHealth, 0),
            (Stage::Starting, 1),
            (Stage::WaitingForHealth, 1),
            (Stage::Starting, 0),
            (Stage::Finished, 1),
        ] {
            m.emit(Progress::new(stage, done, 100, ""));
        }
        assert_eq!(
            seen.into_inner().unwrap(),
            vec![
                (Stage::Fetching, 10),
                (Stage::Fetching, 20),
                (Stage::Loading, 0),
                (Stage::Starting, 0),
                (Stage::WaitingForHealth, 0),
                (Stage::Starting, 1),
                (Stage::WaitingForHealth, 1),
                (Stage::Finished, 1),
            ]
        );
    }
}
