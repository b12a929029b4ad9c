//! An app's lifecycle: install (from the catalog or a listing, with progress that never goes
//! backward), update with rollback, start/stop/restart, uninstall or purge, and at start the
//! recovery of operations a crash interrupted. Every change runs under the operation lock,
//! and every operation is recorded before it acts ([`super::operation`]); what an install
//! or update creates is recorded before it is created, so recovery undoes exactly that.
//! Each function takes the record a job queued (`queued`, see [`super::jobs`]), or `None`.
//!
//! Every wait has a bound: Podman calls have their own deadlines (the orchestrator's), and
//! each step that could otherwise wait on something slow has an outer bound below. A bound
//! that expires in the middle of creating undoes what was created (from the record).

use std::time::Duration;

use archy_orchestrator::{Created, Progress, ProgressSink, Stage};
use archy_registry::{VerifiedApp, VerifiedPublication};
use tracing::{info, warn};

use super::artifacts::FetchFrom;
use super::error::internal;
use super::operation::{Exclusive, OperationGuard, OperationKind};
use super::source::{Source, app_in};
use super::{AppView, ErrorKind, Node, NodeError};
use crate::db;

/// Fetching an app's artifacts (each peer and origin attempt has its own deadlines).
const FETCH_BOUND: Duration = Duration::from_secs(2 * 3600);
/// Creating and starting an app, health checks included.
const CREATE_BOUND: Duration = Duration::from_secs(30 * 60);
/// Removing an app (each container's stop grace is bounded by its manifest).
const REMOVE_BOUND: Duration = Duration::from_secs(15 * 60);
/// Starting, stopping or restarting an app.
const RUN_BOUND: Duration = Duration::from_secs(30 * 60);

/// The operation-row stage a progress event means, for stages the node records.
fn recorded_stage(stage: Stage) -> Option<&'static str> {
    match stage {
        Stage::Loading => Some("loading"),
        Stage::Creating => Some("creating"),
        Stage::Starting | Stage::WaitingForHealth => Some("starting"),
        _ => None,
    }
}

fn bound_expired(what: &str, bound: Duration) -> NodeError {
    NodeError::new(
        ErrorKind::Unavailable,
        format!(
            "{what} did not finish within {} minutes (is Podman or the origin stuck?)",
            bound.as_secs() / 60
        ),
    )
}

impl Node {
    /// At start, every operation a crash left running is finished or undone, by kind:
    ///
    /// - anything still queued (it never got the lock) did nothing: recorded as interrupted;
    /// - install: the recorded app is kept when the install got as far as recording it;
    ///   otherwise exactly what it created is undone and its pins dropped;
    /// - update: what the new version created is undone, and the reconciler rebuilds the
    ///   version sqlite records (still the previous one);
    /// - uninstall and purge are finished: the operator asked for them, and an app must never
    ///   come back with its data deleted (it is wanted stopped before anything is removed);
    /// - stop is finished; start and restart are left to the reconciler.
    ///
    /// No row stays "running".
    pub(super) async fn recover_interrupted(&self) -> anyhow::Result<()> {
        for op in db::running_operations(&self.db).await? {
            warn!(app = %op.app_id, kind = %op.kind, stage = %op.stage, operation = op.id, "recovering interrupted operation");
            let note = self.recover(&op).await;
            info!(app = %op.app_id, kind = %op.kind, operation = op.id, "{note}");
            db::mark_interrupted(&self.db, op.id, &note).await?;
        }
        if self.config.publish_only {
            return Ok(());
        }
        // A node whose database was lost or emptied must say so at once, not forget
        // silently: labelled containers of apps sqlite does not know raise an alarm.
        let looked = async {
            let _lock = self.exclusive().await;
            let podman = self.orchestrator.engine().containers_by_app().await?;
            self.alarm_unknown_apps(&podman).await
        };
        if let Err(e) = looked.await {
            warn!(error = %e, "could not look for apps this node does not know");
        }
        Ok(())
    }

    /// Finishes or undoes one interrupted operation; says what it did.
    async fn recover(&self, op: &db::OperationRow) -> String {
        let at = format!("interrupted at stage {}", op.stage);
        if op.stage == "queued" {
            return "interrupted before it began; nothing was done".into();
        }
        let created: Option<Created> = op
            .created
            .as_deref()
            .and_then(|json| match serde_json::from_str(json) {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!(operation = op.id, error = %e, "unreadable record of what the operation created");
                    None
                }
            });
        let undo = |created: Option<Created>| async move {
            match created {
                Some(c) if c.app == op.app_id => match self.orchestrator.undo(&c).await {
                    Ok(()) => Ok(!c.is_empty()),
                    Err(e) => Err(e.to_string()),
                },
                Some(c) => Err(format!("the record names app {:?}; left alone", c.app)),
                None => Ok(false),
            }
        };
        match OperationKind::parse(&op.kind) {
            Some(OperationKind::Install) => {
                match db::app(&self.db, &op.app_id).await {
                    Ok(Some(_)) => {
                        return format!("{at}, after the app was installed and recorded; kept");
                    }
                    Ok(None) => {}
                    Err(e) => return format!("{at}; not recovered: node database: {e}"),
                }
                let legacy = created.is_none()
                    && matches!(
                        op.stage.as_str(),
                        "installing" | "loading" | "creating" | "starting"
                    );
                let undone = if legacy {
                    // A record from before the node kept what operations create.
                    match self.orchestrator.uninstall(&op.app_id, false).await {
                        Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => Ok(true),
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    undo(created).await
                };
                self.unpin_app(&op.app_id).await;
                match undone {
                    Ok(true) => format!("{at}; what it created was removed"),
                    Ok(false) => format!("{at}; it had created nothing"),
                    Err(e) => format!("{at}; undoing it left something behind: {e}"),
                }
            }
            Some(OperationKind::Update) => {
                let undone = undo(created).await;
                if matches!(
                    op.stage.as_str(),
                    "replacing" | "loading" | "creating" | "starting"
                ) {
                    // Whatever half of the update exists goes; the reconciler then rebuilds
                    // the version recorded in sqlite, which is still the previous one.
                    self.orchestrator.remove_app_containers(&op.app_id).await;
                }
                match undone {
                    Ok(_) => format!(
                        "{at}; the new version's objects were removed and the reconciler restores the recorded version"
                    ),
                    Err(e) => format!("{at}; undoing the new version left something behind: {e}"),
                }
            }
            Some(kind @ (OperationKind::Uninstall | OperationKind::Purge)) => {
                let purge = kind == OperationKind::Purge;
                match self.finish_removal(&op.app_id, purge).await {
                    Ok(()) => format!(
                        "{at}; finished: the app is removed{}",
                        if purge { " and its data deleted" } else { "" }
                    ),
                    Err(e) => format!(
                        "{at}; finishing it failed ({e}); the app is wanted stopped, run `archy app uninstall{} {}` again",
                        if purge { " --purge" } else { "" },
                        op.app_id
                    ),
                }
            }
            Some(OperationKind::Stop) => {
                let stopped = async {
                    let (row, app) = self.installed_app(&op.app_id).await?;
                    if row.desired == "stopped" {
                        self.orchestrator.stop(app.manifest()).await?;
                    }
                    Ok::<_, NodeError>(())
                }
                .await;
                match stopped {
                    Ok(()) => format!("{at}; finished"),
                    Err(e) => format!("{at}; not finished: {e}"),
                }
            }
            Some(OperationKind::Start | OperationKind::Restart) => {
                format!("{at}; the reconciler brings the app to its wanted state")
            }
            None => at,
        }
    }

    /// Removes an app whose removal was interrupted: wanted stopped first (the reconciler
    /// must never rebuild it, least of all without its data), then its containers and,
    /// when purging, its data; then its record and pins.
    async fn finish_removal(&self, id: &str, purge: bool) -> Result<(), NodeError> {
        if db::app(&self.db, id).await?.is_some() {
            db::set_desired(&self.db, id, "stopped").await?;
        }
        match self.orchestrator.uninstall(id, purge).await {
            Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => {}
            Err(e) => return Err(e.into()),
        }
        db::delete_app(&self.db, id).await?;
        self.unpin_app(id).await;
        Ok(())
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
        self.refuse_publish_only(&format!("install {id}"))?;
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
        self.refuse_publish_only(&format!("install {app_id}"))?;
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
        self.refuse_publish_only(&format!("install {id}"))?;
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
        let op = held.begin_as(queued, id, OperationKind::Install).await?;
        let workdir = self
            .config
            .data_dir
            .join("tmp")
            .join(format!("install-{}", op.id()));
        let result = self
            .install_steps(&op, source, app, &workdir, progress)
            .await;
        let _ = std::fs::remove_dir_all(&workdir);
        if result.is_err() {
            // Nothing pinned it (pins come with the record): what this install fetched only
            // for itself goes now, not at the next pull, which matters on a full disk.
            if let Err(e) = self.collect_unreferenced().await {
                warn!(app = id, error = %e, "collecting what the failed install fetched failed");
            }
        }
        op.finish(result).await
    }

    async fn install_steps(
        &self,
        op: &OperationGuard<'_>,
        source: &Source<'_>,
        app: &VerifiedApp,
        workdir: &std::path::Path,
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
        let images = tokio::time::timeout(
            FETCH_BOUND,
            self.fetch_images(app, Some(from), workdir, progress),
        )
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
                let graph_root = std::path::Path::new(self.orchestrator.engine().graph_root());
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

    /// Updates an installed app to the version the current catalog lists (a third-party app:
    /// its publisher's newest listing, which must clear the trust threshold again unless
    /// `approve`). The previous version's image (pinned locally) and manifest are kept, and
    /// the orchestrator goes back to them when the new version does not become healthy.
    pub async fn update(&self, id: &str, approve: bool) -> Result<AppView, NodeError> {
        self.update_as(None, id, approve, &|_| {}).await
    }

    /// [`Self::update`] continuing the record `queued`, if any, reporting progress.
    pub(super) async fn update_as(
        &self,
        queued: Option<i64>,
        id: &str,
        approve: bool,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let progress = Monotonic::new(progress);
        let progress: ProgressSink<'_> = &|p| progress.emit(p);
        progress(Progress::new(
            Stage::Checking,
            0,
            1,
            format!("checking for a newer {id}"),
        ));
        let held = self.exclusive().await;
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
                self.update_locked(&held, queued, &row, &old, &new, &source, progress)
                    .await
            }
            _ => {
                let catalog = self.installable_catalog().await?;
                let new = catalog.app(id).ok_or_else(|| {
                    NodeError::new(
                        ErrorKind::NotFound,
                        format!("catalog version {} no longer lists {id}", catalog.version()),
                    )
                })?;
                let source = Source::Catalog(&catalog);
                self.update_locked(&held, queued, &row, &old, &new, &source, progress)
                    .await
            }
        }
    }

    /// Replaces `old` with `new` from `source` with the operation lock held; the
    /// orchestrator goes back to `old` when `new` does not become healthy.
    #[allow(clippy::too_many_arguments)]
    async fn update_locked(
        &self,
        held: &Exclusive<'_>,
        queued: Option<i64>,
        row: &db::AppRow,
        old: &VerifiedApp,
        new: &VerifiedApp,
        source: &Source<'_>,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let id = row.id.as_str();
        self.refuse_publish_only(&format!("update {id}"))?;
        if new.manifest().id != old.manifest().id {
            return Err(internal(format!(
                "{id}: the new version is {}, another app",
                new.manifest().id
            )));
        }
        if new.manifest().version <= old.manifest().version {
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!(
                    "{id} is at {}; {} offers {}, nothing newer",
                    old.manifest().version,
                    source.describe(),
                    new.manifest().version
                ),
            ));
        }
        self.check_dependencies_installed(new).await?;
        let op = held.begin_as(queued, id, OperationKind::Update).await?;
        let workdir = self
            .config
            .data_dir
            .join("tmp")
            .join(format!("update-{}", op.id()));
        let result = async {
            self.check_install_space(new)?;
            op.stage("fetching").await?;
            let origin = source.origin();
            let peer = self.origin_peer(origin).await.ok();
            let from = FetchFrom {
                iroh: peer.as_ref(),
                http: origin.http.as_str(),
                first_party: matches!(source, Source::Catalog(_)),
            };
            let fetched = tokio::time::timeout(FETCH_BOUND, async {
                let new_images = self
                    .fetch_images(new, Some(from), &workdir.join("new"), progress)
                    .await?;
                // The previous version's images come from the local store: rollback needs
                // no network.
                let old_images = self
                    .fetch_images(old, None, &workdir.join("old"), &|_| {})
                    .await?;
                Ok::<_, NodeError>((new_images, old_images))
            })
            .await
            .map_err(|_| bound_expired(&format!("fetching {id}"), FETCH_BOUND))?;
            let (new_images, old_images) = fetched?;
            op.stage("replacing").await?;
            let stages = op.stage_writer();
            let staged = |p: Progress| {
                if let Some(stage) = recorded_stage(p.stage) {
                    stages.set(stage);
                }
                progress(p);
            };
            let created = op.created_sink();
            let replaced = tokio::time::timeout(
                CREATE_BOUND,
                self.orchestrator.update_tracked(
                    old.manifest(),
                    new.manifest(),
                    &old_images,
                    &new_images,
                    &staged,
                    &created,
                ),
            )
            .await;
            stages.close().await;
            let runtime = match replaced {
                Ok(runtime) => runtime?,
                Err(_) => {
                    // Stopped in the middle: undo the new version, rebuild the old one.
                    if let Some(c) = op.created()
                        && let Err(e) = self.orchestrator.undo(&c).await
                    {
                        warn!(app = id, error = %e, "undoing a stuck update left objects behind");
                    }
                    self.orchestrator.remove_app_containers(id).await;
                    let back = tokio::time::timeout(
                        CREATE_BOUND,
                        self.orchestrator.repair(old.manifest(), &old_images),
                    )
                    .await;
                    let how = match back {
                        Ok(Ok(_)) => format!("{} is back", old.manifest().version),
                        Ok(Err(e)) => {
                            format!("bringing {} back failed: {e}", old.manifest().version)
                        }
                        Err(_) => format!(
                            "bringing {} back did not finish either",
                            old.manifest().version
                        ),
                    };
                    let e = bound_expired(&format!("updating {id}"), CREATE_BOUND);
                    return Err(NodeError::new(e.kind, format!("{}; {how}", e.message)));
                }
            };
            op.flush_created().await?;
            // Pinned before the record moves, and the old pins dropped only after it did,
            // so a crash in between never leaves the recorded version without its blobs.
            self.pin_artifacts(new).await;
            let version = new.manifest().version.to_string();
            match source {
                Source::Catalog(catalog) => {
                    db::update_app(&self.db, id, &version, catalog.version()).await?
                }
                Source::Publication { envelope, .. } => {
                    db::update_third_party_app(&self.db, id, &version, envelope).await?
                }
            }
            self.unpin_dropped_artifacts(new).await;
            progress(Progress::new(
                Stage::Finished,
                1,
                1,
                format!("{id} {version} is running"),
            ));
            Ok::<_, NodeError>(self.view(id, &version, &row.desired, runtime, Some(new)))
        }
        .await;
        let _ = std::fs::remove_dir_all(&workdir);
        op.finish(result).await
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
        let held = self.exclusive().await;
        let (row, app) = self.installed_app(id).await?;
        let op = held.begin_as(queued, id, OperationKind::Start).await?;
        let result = tokio::time::timeout(RUN_BOUND, async {
            db::set_desired(&self.db, id, "running").await?;
            let missing = self.orchestrator.missing_containers(app.manifest()).await?;
            let runtime = if missing.is_empty() {
                self.orchestrator.start(app.manifest()).await?
            } else {
                let workdir = self
                    .config
                    .data_dir
                    .join("tmp")
                    .join(format!("start-{}", op.id()));
                let repaired = async {
                    let images = self.fetch_images(&app, None, &workdir, &|_| {}).await?;
                    self.orchestrator.repair(app.manifest(), &images).await?;
                    Ok::<_, NodeError>(self.orchestrator.status(id).await?)
                }
                .await;
                let _ = std::fs::remove_dir_all(&workdir);
                repaired?
            };
            Ok::<_, NodeError>(self.view(id, &row.version, "running", runtime, Some(&app)))
        })
        .await
        .unwrap_or_else(|_| Err(bound_expired(&format!("starting {id}"), RUN_BOUND)));
        op.finish(result).await
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
        let held = self.exclusive().await;
        let (row, app) = self.installed_app(id).await?;
        let op = held.begin_as(queued, id, OperationKind::Restart).await?;
        let result = tokio::time::timeout(RUN_BOUND, async {
            self.orchestrator.stop(app.manifest()).await?;
            db::set_desired(&self.db, id, "running").await?;
            let runtime = self.orchestrator.start(app.manifest()).await?;
            Ok::<_, NodeError>(self.view(id, &row.version, "running", runtime, Some(&app)))
        })
        .await
        .unwrap_or_else(|_| Err(bound_expired(&format!("restarting {id}"), RUN_BOUND)));
        op.finish(result).await
    }

    pub async fn stop_app(&self, id: &str) -> Result<AppView, NodeError> {
        self.stop_app_as(None, id).await
    }

    pub(super) async fn stop_app_as(
        &self,
        queued: Option<i64>,
        id: &str,
    ) -> Result<AppView, NodeError> {
        let held = self.exclusive().await;
        let (row, app) = self.installed_app(id).await?;
        let op = held.begin_as(queued, id, OperationKind::Stop).await?;
        let result = tokio::time::timeout(RUN_BOUND, async {
            // Desired state first: a reconciler must never restart what the user stopped.
            db::set_desired(&self.db, id, "stopped").await?;
            let runtime = self.orchestrator.stop(app.manifest()).await?;
            Ok::<_, NodeError>(self.view(id, &row.version, "stopped", runtime, Some(&app)))
        })
        .await
        .unwrap_or_else(|_| Err(bound_expired(&format!("stopping {id}"), RUN_BOUND)));
        op.finish(result).await
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
        Ok(!self.orchestrator.engine().volumes_of(id).await?.is_empty())
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
