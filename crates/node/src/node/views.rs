//! What the API returns: the view structs, serialized as the node's JSON (field names and
//! shapes are a contract with the CLI and `crates/api`), and the functions that build them.
//! Building a view only reads: sqlite, the trust state, Podman and the swarm's counters.

use archy_orchestrator::AppRuntime;
use archy_registry::VerifiedApp;
use archy_swarm::PeerAddr;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::warn;

use super::market::third_party_app;
use super::{ErrorKind, Node, NodeError};
use crate::db;

/// Result of the last catalog pull, for `archy status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullStatus {
    pub at: Option<DateTime<Utc>>,
    pub ok: bool,
    pub message: String,
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

impl Node {
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

    pub(super) fn view(
        &self,
        id: &str,
        version: &str,
        desired: &str,
        runtime: AppRuntime,
        app: Option<&VerifiedApp>,
    ) -> AppView {
        let state = runtime_state(&runtime);
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
            catalog_view(
                c.version(),
                c.expires(),
                c.catalog().origin.http.clone(),
                missed_versions,
                now,
                window,
            )
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
}

/// An app's state from its containers: "missing" (none), "running" (all), "stopped" (none
/// running) or "degraded" (some running).
fn runtime_state(runtime: &AppRuntime) -> &'static str {
    if runtime.containers.is_empty() {
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
    }
}

/// The catalog as `archy status` shows it at `now`: expired, or warned about when it
/// expires within `window` days.
fn catalog_view(
    version: u64,
    expires: DateTime<Utc>,
    origin: String,
    missed_versions: u64,
    now: DateTime<Utc>,
    window: i64,
) -> CatalogView {
    let days_left = (expires - now).num_days();
    let expired = expires <= now;
    let warning = if expired {
        Some(format!(
            "catalog version {version} expired at {expires}: running apps keep running, but nothing new is installed or updated until the origin publishes a fresh catalog",
        ))
    } else if days_left < window {
        Some(format!(
            "catalog version {version} expires in {days_left} day(s) ({expires}); the origin must publish a re-signed catalog before then",
        ))
    } else {
        None
    };
    CatalogView {
        version,
        expires,
        expired,
        days_left,
        origin,
        missed_versions,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use archy_orchestrator::{ContainerRuntime, ContainerState};

    fn runtime(states: &[ContainerState]) -> AppRuntime {
        AppRuntime {
            containers: states
                .iter()
                .enumerate()
                .map(|(i, state)| ContainerRuntime {
                    name: format!("archy-app-{i}"),
                    state: *state,
                })
                .collect(),
            unenforced_limits: Vec::new(),
        }
    }

    #[test]
    fn app_state_follows_its_containers() {
        use ContainerState::*;
        assert_eq!(runtime_state(&runtime(&[])), "missing");
        assert_eq!(runtime_state(&runtime(&[Running, Running])), "running");
        assert_eq!(runtime_state(&runtime(&[Exited, Created])), "stopped");
        assert_eq!(runtime_state(&runtime(&[Running, Exited])), "degraded");
        assert_eq!(runtime_state(&runtime(&[Running, Dead])), "degraded");
    }

    #[test]
    fn catalog_warns_within_the_window_and_once_expired() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let view = |days: i64| {
            catalog_view(
                7,
                now + chrono::Duration::days(days),
                "http://o".into(),
                2,
                now,
                14,
            )
        };
        let fresh = view(30);
        assert_eq!(
            (fresh.expired, fresh.days_left, fresh.warning),
            (false, 30, None)
        );
        let soon = view(3);
        assert!(!soon.expired);
        assert_eq!(
            soon.warning.as_deref(),
            Some(
                "catalog version 7 expires in 3 day(s) (2030-01-04 00:00:00 UTC); the origin must publish a re-signed catalog before then"
            )
        );
        let expired = view(0);
        assert!(expired.expired);
        assert_eq!(
            expired.warning.as_deref(),
            Some(
                "catalog version 7 expired at 2030-01-01 00:00:00 UTC: running apps keep running, but nothing new is installed or updated until the origin publishes a fresh catalog"
            )
        );
        assert_eq!((expired.version, expired.missed_versions), (7, 2));
    }
}
