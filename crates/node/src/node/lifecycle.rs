//! An app's lifecycle: install (from the catalog or a listing, with progress that never goes
//! backward), start/stop/restart, uninstall or purge; update with rollback is in
//! [`super::update`], and at start the recovery of operations a crash interrupted in
//! [`super::recover`]. Every change runs under the operation lock, and every operation is
//! recorded before it acts ([`super::operation`]); what an install or update creates is
//! recorded before it is created, so recovery undoes exactly that. Each function takes the
//! record a job queued (`queued`, see [`super::jobs`]), or `None`.
//!
//! Every wait has a bound: Podman calls have their own deadlines (the orchestrator's), and
//! each step that could otherwise wait on something slow has an outer bound below. A bound
//! that expires in the middle of creating undoes what was created (from the record).

use std::time::Duration;

use archy_orchestrator::{Progress, ProgressSink, Stage};
use archy_registry::VerifiedApp;
use tracing::warn;

use super::artifacts::FetchFrom;
use super::operation::{Exclusive, OperationGuard, OperationKind};
use super::source::{Source, app_in};
use super::{AppView, ErrorKind, Node, NodeError};
use crate::db;

/// Fetching an app's artifacts (each peer and origin attempt has its own deadlines).
pub(super) const FETCH_BOUND: Duration = Duration::from_secs(2 * 3600);
/// Creating and starting an app, health checks included.
pub(super) const CREATE_BOUND: Duration = Duration::from_secs(30 * 60);
/// Removing an app (each container's stop grace is bounded by its manifest).
const REMOVE_BOUND: Duration = Duration::from_secs(15 * 60);
/// Starting, stopping or restarting an app.
const RUN_BOUND: Duration = Duration::from_secs(30 * 60);

/// The operation-row stage a progress event means, for stages the node records.
pub(super) fn recorded_stage(stage: Stage) -> Option<&'static str> {
    match stage {
        Stage::Loading => Some("loading"),
        Stage::Creating => Some("creating"),
        Stage::Starting | Stage::WaitingForHealth => Some("starting"),
        _ => None,
    }
}

pub(super) fn bound_expired(what: &str, bound: Duration) -> NodeError {
    NodeError::new(
        ErrorKind::Unavailable,
        format!(
            "{what} did not finish within {} minutes (is Podman or the origin stuck?)",
            bound.as_secs() / 60
        ),
    )
}

impl Node {
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
        self.install_as(None, id, progress).await
    }

    /// [`Self::install_with_progress`] continuing the record `queued`, if any.
    pub(super) async fn install_as(
        &self,
        queued: Option<i64>,
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
        self.refuse_installs(&format!("install {id}"))?;
        let held = self.exclusive().await;
        let catalog = self.installable_catalog().await?;
        let app = app_in(&catalog, id)?;
        self.install_locked(&held, queued, &Source::Catalog(&catalog), &app, progress)
            .await
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
        self.install_listing_as(None, app_id, publisher, approve, progress)
            .await
    }

    /// [`Self::install_listing`] continuing the record `queued`, if any.
    pub(super) async fn install_listing_as(
        &self,
        queued: Option<i64>,
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
        self.refuse_installs(&format!("install {app_id}"))?;
        let held = self.exclusive().await;
        let listing = self.resolve_listing(app_id, publisher).await?;
        let (envelope, verified, app) = self
            .listed_app(&listing.author, &listing.app_id, approve)
            .await?;
        let source = Source::Publication {
            author: &listing.author,
            envelope: &envelope,
            verified: &verified,
        };
        self.install_locked(&held, queued, &source, &app, progress)
            .await
    }

    /// Installs `app` from `source` with the operation lock held: nothing stays on failure.
    pub(super) async fn install_locked(
        &self,
        held: &Exclusive<'_>,
        queued: Option<i64>,
        source: &Source<'_>,
        app: &VerifiedApp,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let id = app.manifest().id.as_str();
        self.refuse_installs(&format!("install {id}"))?;
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
        self.check_names_free(app).await?;
        held.run(queued, id, OperationKind::Install, async |op| {
            let result = self.install_steps(op, source, app, progress).await;
            if result.is_err() {
                // Nothing pinned it (pins come with the record): what this install fetched
                // only for itself goes now, not at the next pull, which matters on a full disk.
                if let Err(e) = self.collect_unreferenced().await {
                    warn!(app = id, error = %e, "collecting what the failed install fetched failed");
                }
            }
            result
        })
        .await
    }

    async fn install_steps(
        &self,
        op: &OperationGuard<'_>,
        source: &Source<'_>,
        app: &VerifiedApp,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let id = app.manifest().id.as_str();
        op.stage("fetching").await?;
        self.check_install_space(app)?;
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
        let images =
            tokio::time::timeout(FETCH_BOUND, self.fetch_images(app, Some(from), progress))
                .await
                .map_err(|_| bound_expired(&format!("fetching {id}"), FETCH_BOUND))??;
        op.stage("installing").await?;
        let stages = op.stage_writer();
        let staged = |p: Progress| {
            if let Some(stage) = recorded_stage(p.stage) {
                stages.set(stage);
            }
            progress(p);
        };
        let created = op.created_sink();
        let installed = tokio::time::timeout(
            CREATE_BOUND,
            self.orchestrator
                .install_tracked(app.manifest(), &images, &staged, &created),
        )
        .await;
        stages.close().await;
        let runtime = match installed {
            Ok(Err(e)) if super::artifacts::is_no_space(&e.to_string()) => {
                let graph_root = std::path::Path::new(self.orchestrator.graph_root());
                let artifacts: u64 = app.artifacts().iter().map(|a| a.size).sum();
                let needed = app
                    .manifest()
                    .resources
                    .disk_mb
                    .saturating_mul(1024 * 1024)
                    .saturating_add(artifacts.saturating_mul(3));
                warn!(app = id, error = %e, "the disk filled up while installing");
                return Err(
                    super::artifacts::no_space_in(&e.to_string(), graph_root, needed)
                        .unwrap_or_else(|| e.into()),
                );
            }
            Ok(runtime) => runtime?,
            Err(_) => {
                // The install was stopped in the middle: undo what it recorded.
                if let Some(c) = op.created()
                    && let Err(e) = self.orchestrator.undo(&c).await
                {
                    warn!(app = id, error = %e, "undoing a stuck install left objects behind");
                }
                return Err(bound_expired(&format!("installing {id}"), CREATE_BOUND));
            }
        };
        op.flush_created().await?;
        self.pin_artifacts(app).await;
        let version = app.manifest().version.to_string();
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

    pub async fn start_app(&self, id: &str) -> Result<AppView, NodeError> {
        self.start_app_as(None, id).await
    }

    /// [`Self::start_app`] continuing the record `queued`, if any. Containers an
    /// interrupted update left missing are recreated from the pinned blobs first.
    pub(super) async fn start_app_as(
        &self,
        queued: Option<i64>,
        id: &str,
    ) -> Result<AppView, NodeError> {
        self.run_installed(
            queued,
            id,
            OperationKind::Start,
            "starting",
            async |_op, row, app| {
                db::set_desired(&self.db, id, "running").await?;
                let missing = self.orchestrator.missing_containers(app.manifest()).await?;
                let runtime = if missing.is_empty() {
                    self.orchestrator.start(app.manifest()).await?
                } else {
                    let images = self.fetch_images(app, None, &|_| {}).await?;
                    self.orchestrator.repair(app.manifest(), &images).await?;
                    self.orchestrator.status(id).await?
                };
                Ok(self.view(id, &row.version, "running", runtime, Some(app)))
            },
        )
        .await
    }

    /// Stops (honouring each stop grace) and starts again, in dependency order.
    pub async fn restart_app(&self, id: &str) -> Result<AppView, NodeError> {
        self.restart_app_as(None, id).await
    }

    pub(super) async fn restart_app_as(
        &self,
        queued: Option<i64>,
        id: &str,
    ) -> Result<AppView, NodeError> {
        let kind = OperationKind::Restart;
        self.run_installed(queued, id, kind, "restarting", async |_, row, app| {
            self.orchestrator.stop(app.manifest()).await?;
            db::set_desired(&self.db, id, "running").await?;
            let runtime = self.orchestrator.start(app.manifest()).await?;
            Ok(self.view(id, &row.version, "running", runtime, Some(app)))
        })
        .await
    }

    pub async fn stop_app(&self, id: &str) -> Result<AppView, NodeError> {
        self.stop_app_as(None, id).await
    }

    pub(super) async fn stop_app_as(
        &self,
        queued: Option<i64>,
        id: &str,
    ) -> Result<AppView, NodeError> {
        self.run_installed(
            queued,
            id,
            OperationKind::Stop,
            "stopping",
            async |_, row, app| {
                // Desired state first: a reconciler must never restart what the user stopped.
                db::set_desired(&self.db, id, "stopped").await?;
                let runtime = self.orchestrator.stop(app.manifest()).await?;
                Ok(self.view(id, &row.version, "stopped", runtime, Some(app)))
            },
        )
        .await
    }

    /// The skeleton of start, stop and restart: under the operation lock, the installed app
    /// `id` recorded as `kind` while `step` runs, bounded by [`RUN_BOUND`] (`doing` names
    /// the step when the bound expires).
    async fn run_installed(
        &self,
        queued: Option<i64>,
        id: &str,
        kind: OperationKind,
        doing: &str,
        step: impl AsyncFnOnce(
            &OperationGuard<'_>,
            &db::AppRow,
            &VerifiedApp,
        ) -> Result<AppView, NodeError>,
    ) -> Result<AppView, NodeError> {
        let held = self.exclusive().await;
        let (row, app) = self.installed_app(id).await?;
        held.run(queued, id, kind, async |op| {
            tokio::time::timeout(RUN_BOUND, step(op, &row, &app))
                .await
                .unwrap_or_else(|_| Err(bound_expired(&format!("{doing} {id}"), RUN_BOUND)))
        })
        .await
    }

    pub async fn uninstall(&self, id: &str, purge: bool) -> Result<(), NodeError> {
        self.uninstall_as(None, id, purge).await
    }

    /// [`Self::uninstall`] continuing the record `queued`, if any. The app is wanted
    /// stopped before anything is removed, so that nothing (the reconciler, a restart)
    /// brings back an app that is half removed; a failed purge leaves it so.
    pub(super) async fn uninstall_as(
        &self,
        queued: Option<i64>,
        id: &str,
        purge: bool,
    ) -> Result<(), NodeError> {
        let held = self.exclusive().await;
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
        let row = db::app(&self.db, id).await?;
        if row.is_none() && !(purge && self.has_retained_data(id).await?) {
            return Err(NodeError::new(
                ErrorKind::NotFound,
                format!("app {id:?} is not installed (and this node keeps no data of it)"),
            ));
        }
        let op = held
            .begin_as(queued, id, OperationKind::removal(purge))
            .await?;
        op.stage("removing").await?;
        if row.is_some() {
            db::set_desired(&self.db, id, "stopped").await?;
        }
        let removed = tokio::time::timeout(REMOVE_BOUND, self.orchestrator.uninstall(id, purge))
            .await
            .unwrap_or_else(|_| {
                Err(archy_orchestrator::Error::Timeout {
                    what: format!("removing {id}"),
                    after: REMOVE_BOUND,
                })
            });
        let result = match removed {
            Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => Ok(()),
            Err(e) => {
                // Data kept: the app may come back as it was. Data (partly) deleted: never.
                if !purge && let Some(row) = &row {
                    db::set_desired(&self.db, id, &row.desired).await?;
                }
                Err(NodeError::from(e))
            }
        };
        if result.is_ok() {
            // A failure here returns with the operation unfinished: it stays "running"
            // until the next start finishes it.
            db::delete_app(&self.db, id).await?;
            self.unpin_app(id).await;
        }
        op.finish(result).await
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
        Ok(!self.orchestrator.volumes_of(id).await?.is_empty())
    }
}

/// Passes on progress events only when they move forward: stage by stage, and within a
/// stage never to fewer units. Starting a container and waiting for its health check are
/// steps of one sequence, so a second container's start does not count as going back.
pub(super) struct Monotonic<'a> {
    sink: ProgressSink<'a>,
    last: std::sync::Mutex<Option<(Stage, u64)>>,
}

impl<'a> Monotonic<'a> {
    pub(super) fn new(sink: ProgressSink<'a>) -> Self {
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

    pub(super) fn emit(&self, p: Progress) {
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
