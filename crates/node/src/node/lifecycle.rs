//! An app's lifecycle: install (from the catalog or a listing, with progress that never goes
//! backward), update with rollback, start/stop/restart, uninstall or purge, and at start the
//! recovery of operations a crash interrupted. Every change runs under the operation lock,
//! and every install, update and removal is recorded before it acts ([`super::operation`]).

use archy_orchestrator::{Progress, ProgressSink, Stage};
use archy_registry::{VerifiedApp, VerifiedPublication};
use tracing::warn;

use super::artifacts::FetchFrom;
use super::error::internal;
use super::operation::{Exclusive, OperationGuard, OperationKind};
use super::source::{Source, app_in};
use super::{AppView, ErrorKind, Node, NodeError};
use crate::db;

impl Node {
    /// At start, every operation a crash left running is recorded as interrupted: an install
    /// that never finished is rolled back (no app stays "installing" forever), a half-done
    /// update is removed for the reconciler to rebuild the recorded version.
    pub(super) async fn recover_interrupted(&self) -> anyhow::Result<()> {
        for op in db::running_operations(&self.db).await? {
            warn!(app = %op.app_id, kind = %op.kind, stage = %op.stage, "rolling back interrupted operation");
            let note = if op.kind == OperationKind::Install.as_str()
                && db::app(&self.db, &op.app_id).await?.is_none()
            {
                match self.orchestrator.uninstall(&op.app_id, false).await {
                    Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => {
                        self.unpin_app(&op.app_id).await;
                        format!("interrupted at stage {}; rolled back", op.stage)
                    }
                    Err(e) => format!("interrupted at stage {}; rollback failed: {e}", op.stage),
                }
            } else if op.kind == OperationKind::Update.as_str() {
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
        let held = self.exclusive().await;
        let catalog = self.installable_catalog().await?;
        let app = app_in(&catalog, id)?;
        self.install_locked(&held, &Source::Catalog(&catalog), &app, progress)
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
        let progress = Monotonic::new(progress);
        let progress: ProgressSink<'_> = &|p| progress.emit(p);
        progress(Progress::new(
            Stage::Checking,
            0,
            1,
            format!("checking {app_id} from the marketplace"),
        ));
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
        self.install_locked(&held, &source, &app, progress).await
    }

    /// Installs `app` from `source` with the operation lock held: nothing stays on failure.
    pub(super) async fn install_locked(
        &self,
        held: &Exclusive<'_>,
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
        let op = held.begin(id, OperationKind::Install).await?;
        let workdir = self
            .config
            .data_dir
            .join("tmp")
            .join(format!("install-{}", op.id()));
        let result = self
            .install_steps(&op, source, app, &workdir, progress)
            .await;
        let _ = std::fs::remove_dir_all(&workdir);
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
        let id = app.manifest.id.as_str();
        op.stage("fetching").await?;
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
        op.stage("installing").await?;
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

    /// Updates an installed app to the version the current catalog lists (a third-party app:
    /// its publisher's newest listing, which must clear the trust threshold again unless
    /// `approve`). The previous version's image (pinned locally) and manifest are kept, and
    /// the orchestrator goes back to them when the new version does not become healthy.
    pub async fn update(&self, id: &str, approve: bool) -> Result<AppView, NodeError> {
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
                self.update_locked(&held, &row, &old, &new, &source).await
            }
            _ => {
                let catalog = self.installable_catalog().await?;
                let new = catalog.app(id).ok_or_else(|| {
                    NodeError::new(
                        ErrorKind::NotFound,
                        format!("catalog version {} no longer lists {id}", catalog.version()),
                    )
                })?;
                self.update_locked(&held, &row, &old, &new, &Source::Catalog(&catalog))
                    .await
            }
        }
    }

    /// Replaces `old` with `new` from `source` with the operation lock held; the
    /// orchestrator goes back to `old` when `new` does not become healthy.
    async fn update_locked(
        &self,
        held: &Exclusive<'_>,
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
        let op = held.begin(id, OperationKind::Update).await?;
        let workdir = self
            .config
            .data_dir
            .join("tmp")
            .join(format!("update-{}", op.id()));
        let result = async {
            let new_bytes = new.artifacts.iter().map(|a| a.size).sum();
            self.orchestrator
                .check_disk(&new.manifest, new_bytes)
                .await?;
            op.stage("fetching").await?;
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
            op.stage("replacing").await?;
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
        op.finish(result).await
    }

    pub async fn start_app(&self, id: &str) -> Result<AppView, NodeError> {
        let _lock = self.exclusive().await;
        let (row, app) = self.installed_app(id).await?;
        db::set_desired(&self.db, id, "running").await?;
        let runtime = self.orchestrator.start(&app.manifest).await?;
        Ok(self.view(id, &row.version, "running", runtime, Some(&app)))
    }

    /// Stops (honouring each stop grace) and starts again, in dependency order.
    pub async fn restart_app(&self, id: &str) -> Result<AppView, NodeError> {
        let _lock = self.exclusive().await;
        let (row, app) = self.installed_app(id).await?;
        self.orchestrator.stop(&app.manifest).await?;
        db::set_desired(&self.db, id, "running").await?;
        let runtime = self.orchestrator.start(&app.manifest).await?;
        Ok(self.view(id, &row.version, "running", runtime, Some(&app)))
    }

    pub async fn stop_app(&self, id: &str) -> Result<AppView, NodeError> {
        let _lock = self.exclusive().await;
        let (row, app) = self.installed_app(id).await?;
        // Desired state first: a reconciler must never restart what the user stopped.
        db::set_desired(&self.db, id, "stopped").await?;
        let runtime = self.orchestrator.stop(&app.manifest).await?;
        Ok(self.view(id, &row.version, "stopped", runtime, Some(&app)))
    }

    pub async fn uninstall(&self, id: &str, purge: bool) -> Result<(), NodeError> {
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
        if db::app(&self.db, id).await?.is_none() && !(purge && self.has_retained_data(id).await?) {
            return Err(NodeError::new(
                ErrorKind::NotFound,
                format!("app {id:?} is not installed (and this node keeps no data of it)"),
            ));
        }
        let op = held.begin(id, OperationKind::removal(purge)).await?;
        let result = match self.orchestrator.uninstall(id, purge).await {
            Ok(()) | Err(archy_orchestrator::Error::NotInstalled(_)) => Ok(()),
            Err(e) => Err(NodeError::from(e)),
        };
        if result.is_ok() {
            // A failure here returns with the operation unfinished: it stays "running"
            // until the next start records it as interrupted.
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
