//! The operation lock and the operation record, in one place. One lifecycle operation runs
//! at a time ([`Exclusive`]: Podman and sqlite stay in step); an install, update or removal
//! is recorded as running before it acts and gets its outcome after ([`OperationGuard`]),
//! so a crash leaves a running record that the next start recovers.

use tokio::sync::{Mutex, MutexGuard};
use tracing::warn;

use super::{Node, NodeError};
use crate::db::{self, Db};

/// What an operation does to an app, as recorded in sqlite (`operations.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OperationKind {
    Install,
    Update,
    /// Removes the app, keeping its data.
    Uninstall,
    /// Removes the app and its data.
    Purge,
}

impl OperationKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            OperationKind::Install => "install",
            OperationKind::Update => "update",
            OperationKind::Uninstall => "uninstall",
            OperationKind::Purge => "purge",
        }
    }

    /// A removal: a purge when the app's data goes too.
    pub(super) fn removal(purge: bool) -> Self {
        if purge {
            OperationKind::Purge
        } else {
            OperationKind::Uninstall
        }
    }
}

/// The operation lock, held: one lifecycle operation, reconcile pass or collection at a
/// time. Released when dropped. Whatever must run under the lock takes `&Exclusive`.
pub(super) struct Exclusive<'a> {
    db: &'a Db,
    _lock: MutexGuard<'a, ()>,
}

impl Node {
    /// Waits for the operation lock.
    pub(super) async fn exclusive(&self) -> Exclusive<'_> {
        Exclusive::acquire(&self.operation, &self.db).await
    }
}

impl<'a> Exclusive<'a> {
    async fn acquire(lock: &'a Mutex<()>, db: &'a Db) -> Self {
        Exclusive {
            db,
            _lock: lock.lock().await,
        }
    }

    /// Records that `kind` of `app` begins (status "running", stage "started"). The guard
    /// lives no longer than the lock; it must be ended with [`OperationGuard::finish`].
    pub(super) async fn begin(
        &self,
        app: &str,
        kind: OperationKind,
    ) -> Result<OperationGuard<'_>, NodeError> {
        let id = db::begin_operation(self.db, app, kind.as_str()).await?;
        Ok(OperationGuard {
            db: self.db,
            id,
            app: app.to_owned(),
            kind,
            finished: false,
        })
    }
}

/// A recorded operation in progress, under the lock it borrows. Dropped without
/// [`Self::finish`] (an early return, a failure to record), it stays "running" in sqlite and
/// the next start records it as interrupted, as after a crash.
#[must_use = "an operation is ended with finish(result)"]
pub(super) struct OperationGuard<'a> {
    db: &'a Db,
    id: i64,
    app: String,
    kind: OperationKind,
    finished: bool,
}

impl OperationGuard<'_> {
    /// The operation's row id (names its scratch directory).
    pub(super) fn id(&self) -> i64 {
        self.id
    }

    /// Records the stage the operation has reached ("fetching", "installing", …).
    pub(super) async fn stage(&self, stage: &str) -> Result<(), NodeError> {
        db::set_stage(self.db, self.id, stage).await?;
        Ok(())
    }

    /// Records the outcome (succeeded, or failed with the error's message) and hands the
    /// result back; when the outcome cannot be recorded, that error is returned instead.
    pub(super) async fn finish<T>(mut self, result: Result<T, NodeError>) -> Result<T, NodeError> {
        db::finish_operation(
            self.db,
            self.id,
            result.as_ref().err().map(|e| e.message.as_str()),
        )
        .await?;
        self.finished = true;
        result
    }
}

impl Drop for OperationGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            warn!(
                app = %self.app,
                kind = self.kind.as_str(),
                operation = self.id,
                "operation ended without a recorded outcome; the next start records it as interrupted"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Row;

    use super::*;
    use crate::node::ErrorKind;

    async fn status(db: &Db, id: i64) -> (String, String, Option<String>) {
        let row = sqlx::query("SELECT status, stage, error FROM operations WHERE id = ?")
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap();
        (row.get("status"), row.get("stage"), row.get("error"))
    }

    #[tokio::test]
    async fn an_operation_is_recorded_before_and_its_outcome_after() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("archy.db")).await.unwrap();
        let lock = Mutex::new(());
        let held = Exclusive::acquire(&lock, &db).await;

        let op = held.begin("a", OperationKind::Install).await.unwrap();
        let id = op.id();
        assert_eq!(
            status(&db, id).await,
            ("running".into(), "started".into(), None)
        );
        op.stage("fetching").await.unwrap();
        assert_eq!(status(&db, id).await.1, "fetching");
        assert_eq!(op.finish(Ok::<_, NodeError>(7)).await.unwrap(), 7);
        assert_eq!(
            status(&db, id).await,
            ("succeeded".into(), "fetching".into(), None)
        );

        let op = held.begin("a", OperationKind::removal(true)).await.unwrap();
        let id = op.id();
        let err = op
            .finish(Err::<(), _>(NodeError::new(ErrorKind::Conflict, "no")))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            status(&db, id).await,
            ("failed".into(), "started".into(), Some("no".into()))
        );

        // Not finished: left running, for recovery at the next start.
        let op = held.begin("b", OperationKind::Update).await.unwrap();
        let id = op.id();
        drop(op);
        let running = db::running_operations(&db).await.unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!((running[0].id, running[0].kind.as_str()), (id, "update"));
        db.close().await;
    }

    #[tokio::test]
    async fn the_lock_admits_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("archy.db")).await.unwrap();
        let lock = Mutex::new(());
        let held = Exclusive::acquire(&lock, &db).await;
        let second =
            tokio::time::timeout(Duration::from_millis(50), Exclusive::acquire(&lock, &db)).await;
        assert!(second.is_err(), "a second holder got the lock");
        drop(held);
        let _again = Exclusive::acquire(&lock, &db).await;
        db.close().await;
    }
}
