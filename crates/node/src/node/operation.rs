//! The operation lock and the operation record, in one place. One lifecycle operation runs
//! at a time ([`Exclusive`]: Podman and sqlite stay in step); an install, update or removal
//! is recorded as running before it acts and gets its outcome after ([`OperationGuard`]),
//! so a crash leaves a running record that the next start recovers. What an install or
//! update creates is written into that record before each object is created
//! ([`OperationGuard::created_sink`]), so recovery undoes exactly that.

use std::sync::Arc;

use archy_orchestrator::Created;
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
    Start,
    Stop,
    Restart,
}

impl OperationKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            OperationKind::Install => "install",
            OperationKind::Update => "update",
            OperationKind::Uninstall => "uninstall",
            OperationKind::Purge => "purge",
            OperationKind::Start => "start",
            OperationKind::Stop => "stop",
            OperationKind::Restart => "restart",
        }
    }

    pub(super) fn parse(kind: &str) -> Option<Self> {
        [
            OperationKind::Install,
            OperationKind::Update,
            OperationKind::Uninstall,
            OperationKind::Purge,
            OperationKind::Start,
            OperationKind::Stop,
            OperationKind::Restart,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
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

    /// Records that `kind` of `app` begins (status "running", stage "started"), continuing
    /// the record `queued` when a job recorded its operation before it waited for the lock
    /// (`None`: a new record). The guard lives no longer than the lock; it must be ended
    /// with [`OperationGuard::finish`]. [`Self::run`] does both around a step.
    pub(super) async fn begin_as(
        &self,
        queued: Option<i64>,
        app: &str,
        kind: OperationKind,
    ) -> Result<OperationGuard<'_>, NodeError> {
        let id = match queued {
            Some(id) => {
                db::adopt_operation(self.db, id, app).await?;
                id
            }
            None => db::begin_operation(self.db, app, kind.as_str()).await?,
        };
        Ok(OperationGuard {
            db: self.db,
            id,
            app: app.to_owned(),
            kind,
            finished: false,
            created: Arc::new(CreatedRecord::default()),
        })
    }

    /// The skeleton of every recorded operation: records that `kind` of `app` begins
    /// (continuing `queued`, see [`Self::begin_as`]), runs `step` with the record, and records
    /// the step's outcome ([`OperationGuard::finish`]).
    pub(super) async fn run<T>(
        &self,
        queued: Option<i64>,
        app: &str,
        kind: OperationKind,
        step: impl AsyncFnOnce(&OperationGuard<'_>) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        let op = self.begin_as(queued, app, kind).await?;
        let result = step(&op).await;
        op.finish(result).await
    }
}

/// The latest [`Created`] record of an operation, and whether sqlite has it.
#[derive(Default)]
struct CreatedRecord {
    latest: std::sync::Mutex<Option<(Created, bool)>>,
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
    created: Arc<CreatedRecord>,
}

impl OperationGuard<'_> {
    /// The operation's row id.
    #[cfg(test)]
    pub(super) fn id(&self) -> i64 {
        self.id
    }

    /// Records the stage the operation has reached ("fetching", "installing", …).
    pub(super) async fn stage(&self, stage: &str) -> Result<(), NodeError> {
        db::set_stage(self.db, self.id, stage).await?;
        Ok(())
    }

    /// Records stages reported from a synchronous progress sink ([`StageWriter::set`]),
    /// in order, by a writer task; [`StageWriter::close`] waits for the last one.
    pub(super) fn stage_writer(&self) -> StageWriter {
        let (tx, mut rx) = tokio::sync::watch::channel(String::new());
        let db = self.db.clone();
        let id = self.id;
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let stage = rx.borrow_and_update().clone();
                if let Err(e) = db::set_stage(&db, id, &stage).await {
                    warn!(operation = id, error = %e, "cannot record the operation's stage");
                }
            }
        });
        StageWriter { tx, task }
    }

    /// Where the orchestrator reports what the operation creates
    /// ([`archy_orchestrator::CreatedSink`]). Each report is written to the operation's row
    /// before the sink returns, and the orchestrator reports an object before it creates
    /// it, so after a crash the row names every object the operation may have created.
    /// That holds on a multi-threaded runtime (the daemon's); on a current-thread runtime
    /// (some tests) a report is kept in memory and written by [`Self::flush_created`].
    pub(super) fn created_sink(&self) -> impl Fn(&Created) + Send + Sync + use<> {
        let db = self.db.clone();
        let id = self.id;
        let record = self.created.clone();
        move |created: &Created| {
            let mut latest = record.latest.lock().unwrap_or_else(|e| e.into_inner());
            let json = match serde_json::to_string(created) {
                Ok(json) => json,
                Err(e) => {
                    warn!(operation = id, error = %e, "cannot serialize what the operation created");
                    return;
                }
            };
            let mut stored = false;
            if let Ok(handle) = tokio::runtime::Handle::try_current()
                && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            {
                // Holding `latest` keeps concurrent reports in order.
                let write = tokio::task::block_in_place(|| {
                    handle.block_on(db::set_created(&db, id, &json))
                });
                match write {
                    Ok(()) => stored = true,
                    Err(e) => warn!(
                        operation = id,
                        error = %e,
                        "cannot record what the operation creates; recovery after a crash may miss it"
                    ),
                }
            }
            *latest = Some((created.clone(), stored));
        }
    }

    /// What the operation reported it created, as last reported.
    pub(super) fn created(&self) -> Option<Created> {
        let latest = self
            .created
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        latest.as_ref().map(|(c, _)| c.clone())
    }

    /// Writes the last report of [`Self::created_sink`] if the sink could not.
    pub(super) async fn flush_created(&self) -> Result<(), NodeError> {
        let pending = {
            let latest = self
                .created
                .latest
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match latest.as_ref() {
                Some((c, false)) => Some(c.clone()),
                _ => None,
            }
        };
        if let Some(created) = pending {
            let json = serde_json::to_string(&created).map_err(super::error::internal)?;
            db::set_created(self.db, self.id, &json).await?;
            let mut latest = self
                .created
                .latest
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((c, stored)) = latest.as_mut()
                && *c == created
            {
                *stored = true;
            }
        }
        Ok(())
    }

    /// Records the outcome (succeeded, or failed with the error's message) and hands the
    /// result back; when the outcome cannot be recorded, that error is returned instead.
    pub(super) async fn finish<T>(mut self, result: Result<T, NodeError>) -> Result<T, NodeError> {
        if let Err(e) = self.flush_created().await {
            warn!(operation = self.id, error = %e, "cannot record what the operation created");
        }
        let recorded = db::finish_operation(
            self.db,
            self.id,
            result
                .as_ref()
                .err()
                .map(|e| (e.kind.as_str(), e.message.as_str())),
        )
        .await;
        match (recorded, result) {
            (Ok(()), result) => {
                self.finished = true;
                result
            }
            // The operation's own failure says what went wrong (often the same full disk
            // that kept the record from being written); the row stays "running" and the
            // next start's recovery finishes it.
            (Err(e), Err(failure)) => {
                warn!(operation = self.id, error = %e, "cannot record the operation's failure");
                Err(failure)
            }
            (Err(e), Ok(_)) => Err(e.into()),
        }
    }
}

/// See [`OperationGuard::stage_writer`].
pub(super) struct StageWriter {
    tx: tokio::sync::watch::Sender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl StageWriter {
    pub(super) fn set(&self, stage: &str) {
        self.tx.send_if_modified(|s| {
            if s == stage {
                false
            } else {
                stage.clone_into(s);
                true
            }
        });
    }

    pub(super) async fn close(self) {
        drop(self.tx);
        let _ = self.task.await;
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

        let op = held
            .begin_as(None, "a", OperationKind::Install)
            .await
            .unwrap();
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

        let op = held
            .begin_as(None, "a", OperationKind::removal(true))
            .await
            .unwrap();
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
        // The kind is kept, so a replay of the finished operation answers "conflict" as
        // the live one did, not "internal".
        let row = db::operation(&db, id).await.unwrap().unwrap();
        assert_eq!(row.error_kind.as_deref(), Some("conflict"));
        assert_eq!(ErrorKind::parse("conflict"), Some(ErrorKind::Conflict));

        // Not finished: left running, for recovery at the next start.
        let op = held
            .begin_as(None, "b", OperationKind::Update)
            .await
            .unwrap();
        let id = op.id();
        drop(op);
        let running = db::running_operations(&db).await.unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!((running[0].id, running[0].kind.as_str()), (id, "update"));
        db.close().await;
    }

    #[tokio::test]
    async fn run_records_the_operation_around_its_step() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("archy.db")).await.unwrap();
        let lock = Mutex::new(());
        let held = Exclusive::acquire(&lock, &db).await;
        let (id, during) = held
            .run(None, "a", OperationKind::Start, async |op| {
                Ok((op.id(), status(&db, op.id()).await))
            })
            .await
            .unwrap();
        assert_eq!(during, ("running".into(), "started".into(), None));
        assert_eq!(status(&db, id).await.0, "succeeded");

        let mut seen = None;
        let err = held
            .run(None, "a", OperationKind::Stop, async |op| {
                seen = Some(op.id());
                Err::<(), _>(NodeError::new(ErrorKind::Unavailable, "stuck"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.message, "stuck");
        assert_eq!(
            status(&db, seen.unwrap()).await,
            ("failed".into(), "started".into(), Some("stuck".into()))
        );
        db.close().await;
    }

    async fn created_of(db: &Db, id: i64) -> Option<Created> {
        let row = db::operation(db, id).await.unwrap().unwrap();
        row.created.map(|json| serde_json::from_str(&json).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_an_operation_creates_is_in_sqlite_before_the_sink_returns() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("archy.db")).await.unwrap();
        let lock = Mutex::new(());
        let held = Exclusive::acquire(&lock, &db).await;
        let queued = db::queue_operation(&db, "a", "install", "queued")
            .await
            .unwrap();
        let op = held
            .begin_as(Some(queued), "a", OperationKind::Install)
            .await
            .unwrap();
        assert_eq!(op.id(), queued, "the queued record is continued");
        assert_eq!(status(&db, queued).await.1, "started");
        assert_eq!(created_of(&db, queued).await, None);
        let sink = op.created_sink();
        let mut created = Created::new("a");
        created.networks.push("archy-a".into());
        sink(&created);
        assert_eq!(created_of(&db, queued).await.as_ref(), Some(&created));
        created.containers.push("archy-a-web".into());
        sink(&created);
        assert_eq!(created_of(&db, queued).await.as_ref(), Some(&created));
        assert_eq!(op.created().as_ref(), Some(&created));
        op.finish(Ok::<_, NodeError>(())).await.unwrap();
        db.close().await;
    }

    #[tokio::test]
    async fn on_one_thread_the_record_is_written_when_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("archy.db")).await.unwrap();
        let lock = Mutex::new(());
        let held = Exclusive::acquire(&lock, &db).await;
        let op = held
            .begin_as(None, "a", OperationKind::Update)
            .await
            .unwrap();
        let id = op.id();
        let sink = op.created_sink();
        let mut created = Created::new("a");
        created.env_dir = true;
        sink(&created);
        op.flush_created().await.unwrap();
        assert_eq!(created_of(&db, id).await, Some(created));
        let stages = op.stage_writer();
        stages.set("creating");
        stages.set("starting");
        stages.close().await;
        assert_eq!(status(&db, id).await.1, "starting");
        op.finish(Ok::<_, NodeError>(())).await.unwrap();
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
