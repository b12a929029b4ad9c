//! The persisted record of every operation: begun, staged, finished or interrupted.

use serde::Serialize;
use sqlx::Row;

use super::{Db, now};

pub async fn begin_operation(db: &Db, app: &str, kind: &str) -> sqlx::Result<i64> {
    queue_operation(db, app, kind, "started").await
}

/// Records an operation as running at `stage` before it acts ("queued": a job that still
/// waits for the operation lock and has done nothing yet).
pub async fn queue_operation(db: &Db, app: &str, kind: &str, stage: &str) -> sqlx::Result<i64> {
    let row = sqlx::query("INSERT INTO operations (app_id, kind, stage, status, started_at) VALUES (?, ?, ?, 'running', ?) RETURNING id")
        .bind(app)
        .bind(kind)
        .bind(stage)
        .bind(now())
        .fetch_one(db)
        .await?;
    Ok(row.get("id"))
}

/// A queued operation begins acting on `app` (its final id: a marketplace install learns
/// the namespaced id only once the listing is resolved).
pub async fn adopt_operation(db: &Db, op: i64, app: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET app_id = ?, stage = 'started' WHERE id = ?")
        .bind(app)
        .bind(op)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn set_stage(db: &Db, op: i64, stage: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET stage = ? WHERE id = ?")
        .bind(stage)
        .bind(op)
        .execute(db)
        .await?;
    Ok(())
}

/// Records what the operation created so far (`archy_orchestrator::Created` as JSON).
pub async fn set_created(db: &Db, op: i64, created: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE operations SET created = ? WHERE id = ?")
        .bind(created)
        .bind(op)
        .execute(db)
        .await?;
    Ok(())
}

/// How an operation failed: the error kind's wire name and the message.
pub type Failure<'a> = Option<(&'a str, &'a str)>;

pub async fn finish_operation(db: &Db, op: i64, failure: Failure<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE operations SET status = ?, error_kind = ?, error = ?, finished_at = ? WHERE id = ?",
    )
    .bind(if failure.is_some() {
        "failed"
    } else {
        "succeeded"
    })
    .bind(failure.map(|f| f.0))
    .bind(failure.map(|f| f.1))
    .bind(now())
    .bind(op)
    .execute(db)
    .await?;
    Ok(())
}

/// [`finish_operation`] for an operation that never began acting (still "queued", or
/// only installing its dependencies, each recorded on its own); whether it was one. An
/// operation that began and did not record its outcome stays "running" for recovery.
pub async fn finish_unstarted_operation(
    db: &Db,
    op: i64,
    failure: Failure<'_>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE operations SET status = ?, error_kind = ?, error = ?, finished_at = ? \
         WHERE id = ? AND status = 'running' AND stage IN ('queued', 'dependencies')",
    )
    .bind(if failure.is_some() {
        "failed"
    } else {
        "succeeded"
    })
    .bind(failure.map(|f| f.0))
    .bind(failure.map(|f| f.1))
    .bind(now())
    .bind(op)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, Clone, Serialize)]
pub struct OperationRow {
    pub id: i64,
    pub app_id: String,
    pub kind: String,
    pub stage: String,
    pub status: String,
    pub error: Option<String>,
    /// The failure's `archy_api::ErrorKind` wire name, when it failed.
    pub error_kind: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// What the operation created (`archy_orchestrator::Created` as JSON), if recorded.
    pub created: Option<String>,
}

const OPERATION_COLUMNS: &str =
    "id, app_id, kind, stage, status, error, error_kind, started_at, finished_at, created";

fn operation_row(r: sqlx::sqlite::SqliteRow) -> OperationRow {
    OperationRow {
        id: r.get("id"),
        app_id: r.get("app_id"),
        kind: r.get("kind"),
        stage: r.get("stage"),
        status: r.get("status"),
        error: r.get("error"),
        error_kind: r.get("error_kind"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        created: r.get("created"),
    }
}

/// Operations a crash left behind, oldest first.
pub async fn running_operations(db: &Db) -> sqlx::Result<Vec<OperationRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {OPERATION_COLUMNS} FROM operations WHERE status = 'running' ORDER BY id"
    ))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(operation_row).collect())
}

/// Every running operation and the `finished` newest others, newest first.
pub async fn operations(db: &Db, finished: u32) -> sqlx::Result<Vec<OperationRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {OPERATION_COLUMNS} FROM operations WHERE status = 'running' \
         UNION ALL SELECT * FROM (SELECT {OPERATION_COLUMNS} FROM operations \
         WHERE status != 'running' ORDER BY id DESC LIMIT ?) ORDER BY id DESC"
    ))
    .bind(finished)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(operation_row).collect())
}

pub async fn operation(db: &Db, id: i64) -> sqlx::Result<Option<OperationRow>> {
    sqlx::query(&format!(
        "SELECT {OPERATION_COLUMNS} FROM operations WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
    .map(|r| r.map(operation_row))
}

pub async fn mark_interrupted(db: &Db, op: i64, note: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE operations SET status = 'interrupted', error = ?, finished_at = ? WHERE id = ?",
    )
    .bind(note)
    .bind(now())
    .bind(op)
    .execute(db)
    .await?;
    Ok(())
}
