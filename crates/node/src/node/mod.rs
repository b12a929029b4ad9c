//! The running node: trust state, swarm, orchestrator and sqlite, wired together.
//!
//! This file holds the [`Node`] itself, its start (restore trust, start the swarm, connect
//! to Podman, recover interrupted operations) and shutdown. Each concern lives in its own
//! file as further `impl Node` blocks, layered from where a verified app comes from up to
//! what the operator sees:
//!
//! - `transport`: where catalog metadata comes from (`CatalogSource`: the origin over HTTP,
//!   a peer's relay over iroh), bounded in size and time;
//! - `http`: bounded GETs from an origin, with deadlines and named failures;
//! - `catalog`: the catalog pull (`CatalogSync`, no Podman needed), its hash chain and
//!   gaps, root rotation, peer relay;
//! - `market`: third-party discovery, scores, trusted keys and the publisher trust gate;
//! - `operator`: the operator's own Nostr key and its follows, endorsements and reports;
//! - `source`: the catalog or publication an app comes from, and re-verifying installed apps;
//! - `artifacts`: fetching images (policy, providers, tracker), pins, swarm upkeep;
//! - `operation`: the operation lock and the operation record, in one guard;
//! - `lifecycle`, `update` and `deps`: install, update, uninstall, start/stop;
//! - `recover`: operations a crash interrupted, finished or undone at start;
//! - `reconcile` and `daemon`: the reconciler and the pull loop;
//! - `settings`: relays, trust threshold and pull interval, changed while the node runs;
//! - `views`: what the API returns; `store`: the store's one-answer view of catalog and
//!   marketplace.

mod adopt;
mod artifacts;
mod catalog;
mod daemon;
mod deps;
mod error;
mod http;
mod jobs;
mod lifecycle;
mod market;
mod operation;
mod operator;
mod publish_only;
mod reconcile;
mod recover;
mod settings;
mod source;
mod store;
mod transport;
mod update;
mod views;
mod wire;

pub use error::{ErrorKind, NodeError};
pub use jobs::{Job, JobEvent, JobOutcome, JobRequest, JobState};
pub use operator::OPERATOR_KEY_FILE;
pub use views::{
    AppState, AppView, CatalogAppView, CatalogView, DesiredState, MarketDetail, PullStatus,
    StatusView, SwarmStatus,
};

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use archy_orchestrator::{Orchestrator, OrchestratorConfig};
use archy_registry::{TrustState, VerifiedRoot};
use archy_swarm::{PeerAddr, Swarm, SwarmConfig};
use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, RwLock};
use tracing::{debug, warn};

use crate::config::NodeConfig;
use crate::db::{self, Db};

pub struct Node {
    config: NodeConfig,
    db: Db,
    trust: RwLock<TrustState>,
    swarm: Arc<Swarm>,
    orchestrator: Orchestrator,
    http: reqwest::Client,
    last_pull: std::sync::Mutex<PullStatus>,
    /// The last marketplace discovery pass, per relay.
    market_status: std::sync::Mutex<Option<archy_api::MarketStatus>>,
    /// One lifecycle operation at a time keeps Podman and sqlite in step; taken only
    /// through [`Node::exclusive`] (see [`operation`]).
    operation: Mutex<()>,
    /// Where this node serves blobs over HTTP (`blobs_listen`), once bound.
    blobs_url: std::sync::OnceLock<String>,
    /// What Podman last said about the apps' containers: listings share it (one `podman
    /// ps` serves every concurrent listing) and fall back on it while Podman is down.
    runtimes: views::RuntimeCache,
    /// What the store shows of each listing, verified once per publication.
    store_cache: store::ListingCache,
    /// Operations running as tasks of the node, and the last ones finished.
    jobs: jobs::Jobs,
    /// Relays, trust threshold and pull interval now: the config's, or the operator's
    /// through `PUT /v1/settings` ([`settings`]).
    settings: settings::Settings,
    /// Why the node must stop (a dead blob store), once known: [`crate::serve`] exits
    /// non-zero with it, so the service manager restarts the node.
    fatal: tokio::sync::watch::Sender<Option<String>>,
    /// The operator's own Nostr key and the one-vouch-at-a-time lock ([`operator`]).
    operator: operator::OperatorSlot,
    /// The CAs `wss://` relays may chain to (`relay_ca_certs`), read at start.
    relay_tls: archy_marketplace::RelayTls,
    /// How fetches treat peers and the origin (`detour_budget_seconds`,
    /// `min_peer_rate_bytes_per_sec`), checked at start.
    fetch_policy: archy_swarm::FetchPolicy,
}

/// How often the store's liveness is probed (idle, and during a long store call).
const STORE_PROBE_EVERY: Duration = Duration::from_secs(10);
/// How long one probe may wait for the store's answer.
const STORE_PROBE_WITHIN: Duration = Duration::from_secs(10);
/// Probes in a row without an answer after which a wedged store counts as dead.
const STORE_UNANSWERED: u32 = 3;

/// How long each step of [`Node::shutdown`] (swarm, database) may take.
const SHUTDOWN_STEP: Duration = Duration::from_secs(5);

/// How long a shutdown waits for the trackers to take this node off their lists.
const WITHDRAW_WITHIN: Duration = Duration::from_secs(3);

/// The name under which nodes relay the signed catalog envelope to each other.
const CATALOG_DOCUMENT: &str = "catalog";

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
        if config.fetch_only {
            fetch_only_check(&config, &db).await?;
        }
        let trust = if config.publish_only {
            publish_only_trust(&config, &db).await?
        } else {
            restore_trust(&config, &db).await?
        };
        // Restoring re-verified the stored catalog (and its predecessors' links).
        catalog::return_freed_memory();
        let settings = settings::Settings::load(&db, &config).await?;
        for key in &config.trusted_keys {
            archy_marketplace::parse_nostr_key(key).context("trusted_keys in the node config")?;
        }
        let relay_tls = archy_marketplace::RelayTls::with_ca_files(&config.relay_ca_certs)
            .context("relay_ca_certs in the node config")?;

        let fetch_policy = fetch_policy(&config)?;
        let swarm = Arc::new(Swarm::start(swarm_config(&config)?).await?);
        for peer in &config.static_peers {
            swarm
                .add_peer(peer)
                .with_context(|| format!("static_peers: {}", peer.id))?;
        }
        if let Some(catalog) = trust.catalog() {
            swarm.set_relayed_document(CATALOG_DOCUMENT, catalog.envelope())?;
        }
        let orchestrator_config = OrchestratorConfig {
            podman_url: config.podman_url.clone(),
            data_dir: config.data_dir.clone(),
            publish_address: config.publish_address,
        };
        // A publish-only or fetch-only node installs nothing: it needs no Podman, and runs none.
        let orchestrator = if config.publish_only || config.fetch_only {
            Orchestrator::offline(orchestrator_config)
        } else {
            Orchestrator::connect(orchestrator_config).await?
        };
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
            market_status: Default::default(),
            operation: Mutex::new(()),
            blobs_url: std::sync::OnceLock::new(),
            runtimes: Default::default(),
            store_cache: Default::default(),
            jobs: jobs::Jobs::default(),
            settings,
            fatal: tokio::sync::watch::channel(None).0,
            operator: Default::default(),
            relay_tls,
            fetch_policy,
        });
        node.recover_interrupted().await?;
        Ok(node)
    }

    /// Takes the node off the trackers it announced to, then closes the swarm endpoint and
    /// store and the database, so the data dir can be reopened.
    /// Bounded: a dead or wedged store, or a database connection an abandoned operation
    /// still holds, is left to the process's exit. Says whether everything closed.
    pub async fn shutdown(&self) -> bool {
        // First off the trackers, so fetchers stop dialing a node that is gone (each would
        // lose a connect timeout until the entries expire).
        let withdrawn = self.swarm.withdraw(WITHDRAW_WITHIN).await;
        debug!(withdrawn, "tracker entries withdrawn");
        let swarm = tokio::time::timeout(SHUTDOWN_STEP, self.swarm.shutdown())
            .await
            .is_ok();
        if !swarm {
            warn!(store = %self.swarm.store_dir().display(), "the swarm did not shut down in time");
        }
        let db = tokio::time::timeout(SHUTDOWN_STEP, self.db.close())
            .await
            .is_ok();
        if !db {
            warn!("the node database did not close in time");
        }
        swarm && db
    }

    /// Waits until the node must stop, and says why (e.g. its blob store died).
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.subscribe();
        let reason = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| r.clone());
        match reason {
            Some(reason) => reason,
            // The sender lives as long as the node: never.
            None => std::future::pending().await,
        }
    }

    /// Records that the node cannot go on (the first reason wins) and logs it.
    fn fail(&self, reason: String) {
        self.fatal.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            tracing::error!("{reason}");
            *slot = Some(reason);
            true
        });
    }

    /// The message a dead store gets: where it is, why, and what happens next.
    fn store_dead_message(&self, cause: &archy_swarm::Error) -> String {
        format!(
            "the blob store at {} is unusable ({cause}); the node exits so that its service \
             manager restarts it (free disk space there if it is full)",
            self.swarm.store_dir().display()
        )
    }

    /// Probes the store once; a store whose actor is gone makes the node stop.
    pub(super) async fn check_store(&self) -> Result<(), archy_swarm::Error> {
        let probed = self.swarm.store_alive(STORE_PROBE_WITHIN).await;
        if let Err(e @ archy_swarm::Error::StoreDead { .. }) = &probed {
            self.fail(self.store_dead_message(e));
        }
        probed
    }

    /// Watches the blob store while the node runs: a store whose actor died (or that did
    /// not answer [`STORE_UNANSWERED`] probes in a row) makes the node stop, non-zero.
    pub async fn watch_store(self: Arc<Self>) {
        let mut unanswered = 0;
        loop {
            tokio::time::sleep(STORE_PROBE_EVERY).await;
            match self.check_store().await {
                Ok(()) => unanswered = 0,
                Err(archy_swarm::Error::StoreDead { .. }) => return,
                Err(e) => {
                    unanswered += 1;
                    warn!(error = %e, unanswered, "the blob store did not answer a probe");
                    if unanswered >= STORE_UNANSWERED {
                        self.fail(self.store_dead_message(&e));
                        return;
                    }
                }
            }
        }
    }

    /// Runs one call on the blob store with a deadline, probing the store meanwhile: the
    /// outer error is the store's (no answer within `within`, or its actor died, which
    /// also makes the node stop); the inner result is the call's own.
    pub(super) async fn store_call<T, E>(
        &self,
        what: &str,
        within: Duration,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<Result<T, E>, NodeError> {
        let died = async {
            loop {
                tokio::time::sleep(STORE_PROBE_EVERY).await;
                if let Err(e @ archy_swarm::Error::StoreDead { .. }) = self.check_store().await {
                    return e;
                }
            }
        };
        let unavailable =
            |why: String| NodeError::new(ErrorKind::Unavailable, format!("{what}: {why}"));
        tokio::select! {
            done = tokio::time::timeout(within, call) => match done {
                Ok(Ok(value)) => Ok(Ok(value)),
                Ok(Err(e)) => {
                    // A failed call may be the first sign of a dead store.
                    if let Err(dead @ archy_swarm::Error::StoreDead { .. }) = self.check_store().await {
                        return Err(unavailable(dead.to_string()));
                    }
                    Ok(Err(e))
                }
                Err(_) => {
                    let _ = self.check_store().await;
                    Err(unavailable(format!(
                        "the blob store at {} gave no answer within {} s",
                        self.swarm.store_dir().display(),
                        within.as_secs()
                    )))
                }
            },
            dead = died => Err(unavailable(dead.to_string())),
        }
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn swarm(&self) -> &Arc<Swarm> {
        &self.swarm
    }

    /// Records where [`crate::serve_blobs`] listens, for `archy status` and publishing.
    pub fn set_blobs_url(&self, url: String) {
        let _ = self.blobs_url.set(url);
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
}

/// A fetch-only node runs no apps: it must not be publish-only too (it pulls a catalog),
/// and its data dir must hold no installed app (nothing would manage it).
async fn fetch_only_check(config: &NodeConfig, db: &Db) -> anyhow::Result<()> {
    if config.publish_only {
        anyhow::bail!(
            "fetch_only and publish_only are both set: a fetch-only node pulls the catalog a \
             pinned root vouches for, a publish-only node trusts none; unset one of them"
        );
    }
    let apps = db::apps(db).await?;
    if !apps.is_empty() {
        anyhow::bail!(
            "fetch_only is set, but this data dir has apps installed ({}): a fetch-only node \
             would leave them unmanaged; use another data_dir, or unset fetch_only",
            apps.iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// A publish-only node's trust: an anchor nobody holds a key of ([`publish_only`]). Its
/// config must not name a root, and its data dir must hold no installed app.
async fn publish_only_trust(config: &NodeConfig, db: &Db) -> anyhow::Result<TrustState> {
    if let Some(root) = &config.pinned_root {
        anyhow::bail!(
            "publish_only and pinned_root ({}) are both set: a publish-only node trusts no \
             catalog and installs nothing; unset one of them",
            root.display()
        );
    }
    let apps = db::apps(db).await?;
    if !apps.is_empty() {
        anyhow::bail!(
            "publish_only is set, but this data dir has apps installed ({}): a publish-only \
             node would leave them unmanaged; use another data_dir for publishing, or unset \
             publish_only",
            apps.iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(TrustState::new(publish_only::unusable_anchor()?))
}

/// Restores trust from sqlite under the pinned root (DESIGN trust rule 1), re-verified;
/// a replaced root drops what was learned under the old one, with an alarm.
async fn restore_trust(config: &NodeConfig, db: &Db) -> anyhow::Result<TrustState> {
    let root_path = config.pinned_root.as_ref().context(
        "no pinned root: set pinned_root in the node config to the signed root envelope from your \
         signing ceremony (or, for a developer's node that only publishes, publish_only = true: \
         see docs/developer.md)",
    )?;
    let anchor_bytes = std::fs::read(root_path)
        .with_context(|| format!("reading pinned root {}", root_path.display()))?;
    let anchor = VerifiedRoot::trust_anchor(&anchor_bytes)
        .with_context(|| format!("pinned root {}", root_path.display()))?;
    let last_seen = db::meta(db, "last_seen")
        .await?
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc));
    let catalog = db::latest_catalog(db).await?;
    let anchor_hash = archy_registry::blake3_hex(&anchor_bytes);
    let anchor_replaced = db::meta(db, "pinned_root")
        .await?
        .is_some_and(|stored| stored != anchor_hash);
    let restored = TrustState::restore(
        anchor.clone(),
        &db::root_rotations(db).await?,
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
            db::reset_trust(db).await?;
            db::raise_alarm(db, "pinned-root-replaced", &message).await?;
            TrustState::new(anchor)
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context("stored trust state no longer verifies against the pinned root"));
        }
    };
    db::set_meta(db, "pinned_root", &anchor_hash).await?;
    Ok(trust)
}

/// How the node's fetches treat peers and the origin (checked at start).
pub(crate) fn fetch_policy(config: &NodeConfig) -> anyhow::Result<archy_swarm::FetchPolicy> {
    if config.min_peer_rate_bytes_per_sec == 0 {
        anyhow::bail!(
            "min_peer_rate_bytes_per_sec = 0 in the node config would count all time with peers as detour: leave it out for the default (1 MiB/s)"
        );
    }
    Ok(archy_swarm::FetchPolicy {
        detour_budget: std::time::Duration::from_secs(config.detour_budget_seconds),
        min_rate_bytes_per_sec: config.min_peer_rate_bytes_per_sec,
        ..Default::default()
    })
}

/// The swarm's part of the node config.
fn swarm_config(config: &NodeConfig) -> anyhow::Result<SwarmConfig> {
    if config.upload_limit_bytes_per_sec == Some(0) {
        anyhow::bail!(
            "upload_limit_bytes_per_sec = 0 in the node config would serve nothing: leave it out for no limit"
        );
    }
    let mut swarm_config = SwarmConfig::new(config.data_dir.join("swarm"));
    swarm_config.bind = config.iroh_bind;
    swarm_config.upload_limit_bytes_per_sec = config.upload_limit_bytes_per_sec;
    swarm_config.local_discovery = config.local_discovery;
    swarm_config.relay_mode = config.relay_mode.clone();
    swarm_config.relay_ca_file = config.iroh_relay_ca_file.clone();
    Ok(swarm_config)
}
