//! What the API returns: the view structs, serialized as the node's JSON (field names and
//! shapes are a contract with the CLI and `crates/api`), and the functions that build them.
//! Building a view only reads: sqlite, the trust state, Podman and the swarm's counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use archy_orchestrator::AppRuntime;
use archy_registry::VerifiedApp;
use chrono::{DateTime, SecondsFormat, Utc};
use tracing::warn;

use super::market::third_party_app;
use super::{ErrorKind, Node, NodeError, wire};
use crate::db;

pub use archy_api::{
    AppState, AppView, CatalogAppView, CatalogView, DesiredState, MarketDetail, PullStatus,
    StatusView, SwarmStatus,
};

/// How long a listing waits for Podman before it shows the last known state.
const LISTING_DEADLINE: Duration = Duration::from_secs(5);

/// What Podman last said of the apps' containers (see [`Node::runtimes`]), from a listing's
/// question or the reconciler's.
#[derive(Default)]
pub(crate) struct RuntimeCache {
    /// Bumped by every answer, so a listing that waited knows one came in meanwhile.
    generation: AtomicU64,
    /// Held while a listing asks Podman: one question answers every listing waiting.
    asking: tokio::sync::Mutex<()>,
    /// The last answer; read without waiting for a question in flight.
    last: std::sync::Mutex<Option<Arc<Seen>>>,
}

pub(crate) struct Seen {
    pub(crate) at: DateTime<Utc>,
    pub(crate) by_app: BTreeMap<String, AppRuntime>,
}

impl RuntimeCache {
    /// The last answer, if Podman answered since the node started.
    pub(crate) fn peek(&self) -> Option<Arc<Seen>> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Keeps what Podman just answered (`containers_by_app`).
    pub(crate) fn record(
        &self,
        podman: &BTreeMap<String, Vec<archy_orchestrator::ContainerInfo>>,
    ) -> BTreeMap<String, AppRuntime> {
        let by_app: BTreeMap<String, AppRuntime> = podman
            .iter()
            .map(|(app, containers)| {
                let runtime = AppRuntime {
                    containers: containers
                        .iter()
                        .map(|c| archy_orchestrator::ContainerRuntime {
                            name: c.name.clone(),
                            state: c.state,
                        })
                        .collect(),
                    unenforced_limits: Vec::new(),
                };
                (app.clone(), runtime)
            })
            .collect();
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Arc::new(Seen {
                at: Utc::now(),
                by_app: by_app.clone(),
            }));
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        by_app
    }
}

impl Node {
    /// The swarm as `archy swarm status` shows it: traffic by source and per hash,
    /// fallbacks by reason, strikes, and the peers this node knows.
    pub fn swarm_status(&self) -> SwarmStatus {
        SwarmStatus {
            endpoint_id: self.swarm.endpoint_id().to_string(),
            metrics: wire::swarm_metrics(self.swarm.metrics()),
            strikes: self.swarm.strikes().into_iter().map(wire::strike).collect(),
            peers: self.known_peers().into_iter().map(wire::peer).collect(),
            blobs_url: self.blobs_url.get().cloned(),
            relay_url: self.swarm.home_relay().map(|u| u.to_string()),
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
            let ui = a.manifest().ui.as_ref()?;
            let port = a
                .manifest()
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
                    .unenforced_limits(a.manifest())
                    .into_iter()
                    .filter(|l| l.declared)
                    .map(|l| l.to_string())
                    .collect()
            })
            .unwrap_or_default();
        AppView {
            id: id.to_owned(),
            version: version.to_owned(),
            desired: if desired == DesiredState::Stopped.as_str() {
                DesiredState::Stopped
            } else {
                DesiredState::Running
            },
            state,
            containers: runtime
                .containers
                .into_iter()
                .map(wire::container)
                .collect(),
            url,
            warnings,
            stale_since: None,
            health: Vec::new(),
            market: None,
        }
        .with_health(app, &[])
    }

    /// What Podman says of every app's containers: one `podman ps` answers every listing
    /// that was waiting for it. While Podman does not answer, the last answer, with when it
    /// was seen ("unknown" when never).
    async fn runtimes(&self) -> (BTreeMap<String, AppRuntime>, Option<String>) {
        let cache = &self.runtimes;
        let asked = cache.generation.load(Ordering::Acquire);
        let _asking = cache.asking.lock().await;
        if cache.generation.load(Ordering::Acquire) != asked
            && let Some(fresh) = cache.peek()
        {
            // Another listing (or the reconciler) asked Podman while this one waited: its
            // answer is as new.
            return (fresh.by_app.clone(), None);
        }
        let asked_podman =
            tokio::time::timeout(LISTING_DEADLINE, self.orchestrator.containers_by_app()).await;
        match asked_podman {
            Ok(Ok(by_app)) => (cache.record(&by_app), None),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {}s", LISTING_DEADLINE.as_secs()),
                };
                warn!(error = %why, "Podman did not answer a listing; showing the last known state");
                match cache.peek() {
                    Some(last) => (
                        last.by_app.clone(),
                        Some(last.at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                    ),
                    None => (BTreeMap::new(), Some("unknown".to_owned())),
                }
            }
        }
    }

    /// An installed app's view from a listing's runtimes.
    fn listed(
        &self,
        row: &db::AppRow,
        app: Option<&VerifiedApp>,
        runtimes: &BTreeMap<String, AppRuntime>,
        stale_since: &Option<String>,
    ) -> AppView {
        let runtime = runtimes.get(&row.id).cloned().unwrap_or(AppRuntime {
            containers: Vec::new(),
            unenforced_limits: Vec::new(),
        });
        let mut view = self.view(&row.id, &row.version, &row.desired, runtime, app);
        if app.is_none() {
            view.state = AppState::Unverifiable;
        }
        if let Some(since) = stale_since {
            view.stale_since = Some(since.clone());
            if since == "unknown" {
                view.state = AppState::Unknown;
            }
        }
        view
    }

    pub async fn app(&self, id: &str) -> Result<AppView, NodeError> {
        let (row, app) = self.installed_app(id).await?;
        let (runtimes, stale_since) = self.runtimes().await;
        let health = db::health(&self.db, Some(id)).await?;
        let mut view = self
            .listed(&row, Some(&app), &runtimes, &stale_since)
            .with_health(Some(&app), &health);
        view.market = self.app_market(&row).await?.map(Box::new);
        Ok(view)
    }

    /// Every installed app; one that no longer verifies is listed as "unverifiable"
    /// rather than hiding the others. Podman down: the last known state, marked stale.
    pub async fn apps(&self) -> Result<Vec<AppView>, NodeError> {
        let (runtimes, stale_since) = self.runtimes().await;
        let health = db::health(&self.db, None).await?;
        let mut out = Vec::new();
        for row in db::apps(&self.db).await? {
            let verified = match self.installed_app(&row.id).await {
                Ok((_, app)) => Some(app),
                Err(e) => {
                    warn!(app = %row.id, error = %e, "listing an app that does not verify");
                    None
                }
            };
            let rows: Vec<db::HealthRow> =
                health.iter().filter(|h| h.app == row.id).cloned().collect();
            let mut view = self
                .listed(&row, verified.as_ref(), &runtimes, &stale_since)
                .with_health(verified.as_ref(), &rows);
            view.market = self.app_market(&row).await?.map(Box::new);
            out.push(view);
        }
        Ok(out)
    }

    /// The last `tail` lines of one of an installed app's containers (written `since`, when
    /// given), then, with `follow`, new ones as they come (until the receiver is dropped).
    pub async fn logs(
        &self,
        id: &str,
        container: &str,
        tail: u32,
        follow: bool,
        since: Option<DateTime<Utc>>,
    ) -> Result<tokio::sync::mpsc::Receiver<archy_orchestrator::LogLine>, NodeError> {
        let (_, app) = self.installed_app(id).await?;
        Ok(self
            .orchestrator
            .logs(app.manifest(), container, tail, follow, since)
            .await?)
    }

    pub async fn catalog_apps(&self) -> Result<Vec<CatalogAppView>, NodeError> {
        let installed: BTreeMap<String, String> = db::apps(&self.db)
            .await?
            .into_iter()
            .map(|a| (a.id, a.version))
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
                installed: installed.contains_key(&a.id),
                installed_version: installed.get(&a.id).cloned(),
                permissions: wire::permissions(&a.manifest),
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
            alarms: db::alarms(&self.db)
                .await?
                .into_iter()
                .map(wire::alarm)
                .collect(),
            podman_url: self.orchestrator.runtime_location().to_owned(),
            resource_limits: wire::limits(self.orchestrator.limits()),
            swarm: wire::swarm_metrics(self.swarm.metrics()),
            blobs_url: self.blobs_url.get().cloned(),
            market: self.last_discovery(),
            publish_only: self.config.publish_only,
        })
    }

    /// A discovery pass now, as `POST /v1/market/discover` answers it.
    pub async fn discover_view(&self) -> Result<archy_api::DiscoverResponse, NodeError> {
        let found = self.discover_market().await?;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let (outbox, outbox_refused) = (wire::outbox_relays(&found), wire::outbox_refused(&found));
        Ok(archy_api::DiscoverResponse {
            listed: count(found.listings.len()),
            rejected: found
                .rejected
                .into_iter()
                .map(|(event, reason)| archy_api::RejectedEvent { event, reason })
                .collect(),
            rejected_total: count(found.rejected_total),
            rejected_by_reason: found
                .rejected_by_reason
                .into_iter()
                .map(|(reason, n)| (reason, count(n)))
                .collect(),
            examined: count(found.examined),
            truncated: found.truncated,
            relay_errors: found
                .relay_errors
                .into_iter()
                .map(|(relay, reason)| archy_api::RelayError { relay, reason })
                .collect(),
            withdrawn: count(found.withdrawn.len()),
            outbox,
            outbox_refused,
            relays: found
                .relays
                .into_iter()
                .map(|(relay, r)| wire::relay_report(relay, r))
                .collect(),
        })
    }

    /// Listings that can be installed (their publisher did not withdraw them).
    pub async fn market(&self) -> Result<Vec<archy_api::MarketRow>, NodeError> {
        Ok(db::market_listings(&self.db)
            .await?
            .into_iter()
            .filter(|l| l.withdrawn.is_none())
            .map(wire::market_row)
            .collect())
    }

    /// Everything an operator needs to decide on a third-party app: each publisher's listing
    /// re-verified (withdrawn ones too, marked), the id it would get here and the version
    /// installed, its sandbox verdict and the publisher's score.
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
            let (local_id, sandbox, origin, description, permissions) =
                match third_party_app(&envelope, &listing.author) {
                    Ok((verified, app)) => (
                        Some(app.manifest().id.clone()),
                        "passes".to_owned(),
                        Some(verified.publication().origin.http.clone()),
                        app.manifest().description.clone(),
                        Some(wire::permissions(app.manifest())),
                    ),
                    Err(e) => (None, e.message, None, String::new(), None),
                };
            let installed_version = match &local_id {
                Some(id) => db::app(&self.db, id).await?.map(|a| a.version),
                None => None,
            };
            out.push(MarketDetail {
                score: db::score(&self.db, &listing.author).await?.map(wire::score),
                threshold: self.market_min_score(),
                listing: wire::market_row(listing),
                local_id,
                description,
                sandbox,
                origin,
                installed: installed_version.is_some(),
                permissions,
                installed_version,
            });
        }
        Ok(out)
    }
}

/// An app's state from its containers: missing (none), running (all), stopped (none
/// running) or degraded (some running).
pub(super) fn runtime_state(runtime: &AppRuntime) -> AppState {
    if runtime.containers.is_empty() {
        AppState::Missing
    } else if runtime.all_running() {
        AppState::Running
    } else if runtime
        .containers
        .iter()
        .all(|c| c.state != archy_orchestrator::ContainerState::Running)
    {
        AppState::Stopped
    } else {
        AppState::Degraded
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
        expires: expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        expired,
        days_left,
        origin,
        missed_versions,
        warning,
    }
}

/// Fills an app view's `health`, one entry per container of the manifest, from what the
/// health loop recorded (`rows`, of this app).
trait WithHealth {
    fn with_health(self, app: Option<&VerifiedApp>, rows: &[db::HealthRow]) -> Self;
}

impl WithHealth for AppView {
    fn with_health(mut self, app: Option<&VerifiedApp>, rows: &[db::HealthRow]) -> Self {
        use archy_api::{ContainerHealth, HealthStatus};
        let Some(app) = app else {
            return self;
        };
        self.health = app
            .manifest()
            .containers
            .iter()
            .map(|c| {
                let name = archy_orchestrator::container_name(&app.manifest().id, &c.name);
                let running = self
                    .containers
                    .iter()
                    .any(|r| r.name == name && r.state == archy_api::ContainerState::Running);
                let row = rows.iter().find(|r| r.container == c.name);
                let status = match (&c.health, row) {
                    (None, _) => HealthStatus::None,
                    _ if !running => HealthStatus::None,
                    (Some(_), None) => HealthStatus::Starting,
                    (Some(_), Some(r)) => match r.status.as_str() {
                        "healthy" => HealthStatus::Healthy,
                        "unhealthy" => HealthStatus::Unhealthy,
                        _ => HealthStatus::Starting,
                    },
                };
                ContainerHealth {
                    container: c.name.clone(),
                    status,
                    last_checked: row.and_then(|r| r.last_checked.clone()),
                    last_failure: row.and_then(|r| r.last_failure.clone()),
                    restarts: row.map_or(0, |r| r.restarts),
                }
            })
            .collect();
        self
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
