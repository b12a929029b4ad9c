//! Updating an installed app with rollback: the new version (from the catalog, or its
//! publisher's newest listing) is fetched, the previous version's images come from the local
//! store, and the orchestrator goes back to the previous version when the new one does not
//! become healthy. A bound that expires mid-update undoes the new version and rebuilds the
//! old one; pins move only after the record does.

use archy_orchestrator::{Progress, ProgressSink, Stage};
use archy_registry::{VerifiedApp, VerifiedPublication};
use tracing::warn;

use super::artifacts::FetchFrom;
use super::error::internal;
use super::lifecycle::{CREATE_BOUND, FETCH_BOUND, Monotonic, bound_expired, recorded_stage};
use super::operation::{Exclusive, OperationGuard, OperationKind};
use super::source::Source;
use super::{AppView, ErrorKind, Node, NodeError};
use crate::db;

impl Node {
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
        self.refuse_installs(&format!("update {id}"))?;
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
        self.check_names_free(new).await?;
        held.run(queued, id, OperationKind::Update, async |op| {
            self.update_steps(op, row, old, new, source, progress).await
        })
        .await
    }

    /// The update itself, recorded in `op`: fetch both versions' images (the old one's from
    /// the local store), replace under [`CREATE_BOUND`], then move the record and the pins.
    #[allow(clippy::too_many_arguments)]
    async fn update_steps(
        &self,
        op: &OperationGuard<'_>,
        row: &db::AppRow,
        old: &VerifiedApp,
        new: &VerifiedApp,
        source: &Source<'_>,
        progress: ProgressSink<'_>,
    ) -> Result<AppView, NodeError> {
        let id = row.id.as_str();
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
            let new_images = self.fetch_images(new, Some(from), progress).await?;
            // The previous version's images come from the local store: rollback needs
            // no network.
            let old_images = self.fetch_images(old, None, &|_| {}).await?;
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
                    Ok(Err(e)) => format!("bringing {} back failed: {e}", old.manifest().version),
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
        let recorded = match source {
            Source::Catalog(catalog) => {
                db::update_app(&self.db, id, &version, catalog.version()).await
            }
            Source::Publication { envelope, .. } => {
                db::update_third_party_app(&self.db, id, &version, envelope).await
            }
        };
        if let Err(e) = recorded {
            // The record still names the old version: its blobs stay pinned.
            self.pin_artifacts(old).await;
            return Err(e.into());
        }
        self.unpin_dropped_artifacts(new).await;
        progress(Progress::new(
            Stage::Finished,
            1,
            1,
            format!("{id} {version} is running"),
        ));
        Ok(self.view(id, &version, &row.desired, runtime, Some(new)))
    }
}
