//! Recovery at start: every operation a crash left running is finished or undone from its
//! record (what it was, the stage it reached, what it created), so no row stays "running"
//! and no half-made app stays behind. A node whose database was lost says so at once.

use archy_orchestrator::Created;
use tracing::{info, warn};

use super::operation::OperationKind;
use super::{Node, NodeError};
use crate::db;

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
        if self.config.publish_only || self.config.fetch_only {
            return Ok(());
        }
        // A node whose database was lost or emptied must say so at once, not forget
        // silently: labelled containers of apps sqlite does not know raise an alarm.
        let looked = async {
            let _lock = self.exclusive().await;
            let podman = self.orchestrator.containers_by_app().await?;
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
                // The update re-points the app's pins to the new version's blobs just
                // before it moves the record: killed in between, the recorded version's
                // blobs would be left unpinned (and collectable). The pins follow the
                // record again, whatever point the update reached.
                match self.installed_app(&op.app_id).await {
                    Ok((_, recorded)) => {
                        self.pin_artifacts(&recorded).await;
                        self.unpin_dropped_artifacts(&recorded).await;
                    }
                    Err(e) => {
                        warn!(app = %op.app_id, error = %e, "could not re-pin the recorded version's blobs")
                    }
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
}
