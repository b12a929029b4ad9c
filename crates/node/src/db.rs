//! The node's sqlite state, through sqlx with embedded migrations.

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub type Db = SqlitePool;

pub async fn open(path: &Path) -> anyhow::Result<Db> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    private_files(path)?;
    Ok(pool)
}

/// The database and its WAL files hold trust state and operations: owner-only (0600).
fn private_files(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut names = vec![path.as_os_str().to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(name);
    }
    for name in names {
        let file = Path::new(&name);
        if file.exists() {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| anyhow::anyhow!("making {} private (0600): {e}", file.display()))?;
        }
    }
    Ok(())
}

fn now() -> String {
    Utc::now().to_rfc3339()
}

pub async fn root_rotations(db: &Db) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query("SELECT envelope FROM root_rotations ORDER BY version")
        .fetch_all(db)
        .await
        .map(|rows| rows.into_iter().map(|r| r.get("envelope")).collect())
}

/// Forgets every root rotation and catalog (the pinned root was replaced).
pub async fn reset_trust(db: &Db) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM root_rotations")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM catalogs")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM meta WHERE key = 'last_seen'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Stores a verified root rotation step (the chain is replayed from the pinned root at start).
pub async fn store_root_rotation(db: &Db, version: u64, envelope: &[u8]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO root_rotations (version, envelope, accepted_at) VALUES (?, ?, ?)",
    )
    .bind(version as i64)
    .bind(envelope)
    .bind(now())
    .execute(db)
    .await?;
    Ok(())
}

/// Versions skipped when the latest catalog was accepted.
pub async fn latest_catalog_missed(db: &Db) -> sqlx::Result<u64> {
    sqlx::query("SELECT missed FROM catalogs ORDER BY version DESC LIMIT 1")
        .fetch_optional(db)
        .await
        .map(|r| r.map_or(0, |r| r.get::<i64, _>("missed") as u64))
}

pub async fn latest_catalog(db: &Db) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query("SELECT envelope FROM catalogs ORDER BY version DESC LIMIT 1")
        .fetch_optional(db)
        .await
        .map(|r| r.map(|r| r.get("envelope")))
}

pub async fn catalog(db: &Db, version: i64) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query("SELECT envelope FROM catalogs WHERE version = ?")
        .bind(version)
        .fetch_optional(db)
        .await
        .map(|r| r.map(|r| r.get("envelope")))
}

/// Stores an accepted catalog and the time it was accepted at, in one transaction.
pub async fn store_catalog(
    db: &Db,
    version: u64,
    envelope: &[u8],
    blake3: &str,
    expires: DateTime<Utc>,
    seen: DateTime<Utc>,
    missed: u64,
) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("INSERT OR IGNORE INTO catalogs (version, envelope, blake3, expires, accepted_at, missed) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(version as i64)
        .bind(envelope)
        .bind(blake3)
        .bind(expires.to_rfc3339())
        .bind(now())
        .bind(missed as i64)
        .execute(&mut *tx)
        .await?;
    set_meta_in(&mut tx, "last_seen", &seen.to_rfc3339()).await?;
    tx.commit().await
}

async fn set_meta_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key: &str,
    value: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn set_meta(db: &Db, key: &str, value: &str) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    set_meta_in(&mut tx, key, value).await?;
    tx.commit().await
}

pub async fn meta(db: &Db, key: &str) -> sqlx::Result<Option<String>> {
    sqlx::query("SELECT value FROM meta WHERE key = ?")
        .bind(key)
        .fetch_optional(db)
        .await
        .map(|r| r.map(|r| r.get("value")))
}

#[derive(Debug, Clone, Serialize)]
pub struct AppRow {
    pub id: String,
    pub version: String,
    pub catalog_version: i64,
    pub desired: String,
    pub installed_at: String,
    /// Set for third-party apps: the publisher's Nostr key (hex).
    pub publisher: Option<String>,
    /// Set for third-party apps: the DID-signed publication they were installed from.
    #[serde(skip)]
    pub publication: Option<Vec<u8>>,
}

pub async fn apps(db: &Db) -> sqlx::Result<Vec<AppRow>> {
    let rows = sqlx::query(
        "SELECT id, version, catalog_version, desired, installed_at, publisher, publication FROM apps ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(app_row).collect())
}

pub async fn app(db: &Db, id: &str) -> sqlx::Result<Option<AppRow>> {
    sqlx::query("SELECT id, version, catalog_version, desired, installed_at, publisher, publication FROM apps WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await
        .map(|r| r.map(app_row))
}

fn app_row(r: sqlx::sqlite::SqliteRow) -> AppRow {
    AppRow {
        id: r.get("id"),
        version: r.get("version"),
        catalog_version: r.get("catalog_version"),
        desired: r.get("desired"),
        installed_at: r.get("installed_at"),
        publisher: r.get("publisher"),
        publication: r.get("publication"),
    }
}

pub async fn insert_app(
    db: &Db,
    id: &str,
    version: &str,
    catalog_version: u64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO apps (id, version, catalog_version, desired, installed_at, updated_at) VALUES (?, ?, ?, 'running', ?, ?)")
        .bind(id)
        .bind(version)
        .bind(catalog_version as i64)
        .bind(now())
        .bind(now())
        .execute(db)
        .await?;
    Ok(())
}

/// Records a third-party app installed from `publication` (catalog version 0: none).
pub async fn insert_third_party_app(
    db: &Db,
    id: &str,
    version: &str,
    publisher: &str,
    publication: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO apps (id, version, catalog_version, desired, installed_at, updated_at, publisher, publication) VALUES (?, ?, 0, 'running', ?, ?, ?, ?)")
        .bind(id)
        .bind(version)
        .bind(now())
        .bind(now())
        .bind(publisher)
        .bind(publication)
        .execute(db)
        .await?;
    Ok(())
}

/// Records a finished update of a third-party app to the version `publication` carries.
pub async fn update_third_party_app(
    db: &Db,
    id: &str,
    version: &str,
    publication: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("UPDATE apps SET version = ?, publication = ?, updated_at = ? WHERE id = ?")
        .bind(version)
        .bind(publication)
        .bind(now())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Records a finished update: the app now runs `version` from `catalog_version`.
pub async fn update_app(
    db: &Db,
    id: &str,
    version: &str,
    catalog_version: u64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE apps SET version = ?, catalog_version = ?, updated_at = ? WHERE id = ?")
        .bind(version)
        .bind(catalog_version as i64)
        .bind(now())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn set_desired(db: &Db, id: &str, desired: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE apps SET desired = ?, updated_at = ? WHERE id = ?")
        .bind(desired)
        .bind(now())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn delete_app(db: &Db, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM apps WHERE id = ?")
        .bind(id)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM container_health WHERE app = ?")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// One health-check result, as kept in a container's recent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HealthSample {
    pub at: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What the health loop last saw of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRow {
    pub app: String,
    pub container: String,
    /// `healthy`, `unhealthy` or `starting`.
    pub status: String,
    pub last_checked: Option<String>,
    /// When and why the check last failed: `<RFC 3339>: <reason>`.
    pub last_failure: Option<String>,
    pub restarts: u32,
    /// The last [`HEALTH_HISTORY`] results, oldest first.
    pub history: Vec<HealthSample>,
}

/// How many results a container's health history keeps.
pub const HEALTH_HISTORY: usize = 10;

/// Records one health-check result of `app`'s `container` (`ok`, or the failure's reason),
/// with the status it leaves, keeping the last [`HEALTH_HISTORY`] results.
pub async fn record_health(
    db: &Db,
    app: &str,
    container: &str,
    status: &str,
    result: Result<(), &str>,
) -> sqlx::Result<()> {
    let at = now();
    let mut tx = db.begin().await?;
    let history: Option<String> =
        sqlx::query("SELECT history FROM container_health WHERE app = ? AND container = ?")
            .bind(app)
            .bind(container)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get("history"));
    let mut history: Vec<HealthSample> = history
        .and_then(|h| serde_json::from_str(&h).ok())
        .unwrap_or_default();
    history.push(HealthSample {
        at: at.clone(),
        ok: result.is_ok(),
        detail: result.err().unwrap_or_default().to_owned(),
    });
    let excess = history.len().saturating_sub(HEALTH_HISTORY);
    history.drain(..excess);
    let history = serde_json::to_string(&history).unwrap_or_else(|_| "[]".into());
    let failure = result.err().map(|why| format!("{at}: {why}"));
    sqlx::query(
        "INSERT INTO container_health (app, container, status, last_checked, last_failure, history) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (app, container) DO UPDATE SET status = excluded.status, \
         last_checked = excluded.last_checked, \
         last_failure = COALESCE(excluded.last_failure, container_health.last_failure), \
         history = excluded.history",
    )
    .bind(app)
    .bind(container)
    .bind(status)
    .bind(&at)
    .bind(failure)
    .bind(history)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Counts one restart of `app`'s `container` by the health loop.
pub async fn count_health_restart(db: &Db, app: &str, container: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO container_health (app, container, status, restarts) VALUES (?, ?, 'starting', 1) \
         ON CONFLICT (app, container) DO UPDATE SET restarts = container_health.restarts + 1, \
         status = 'starting'",
    )
    .bind(app)
    .bind(container)
    .execute(db)
    .await?;
    Ok(())
}

/// What the health loop last saw of `app`'s containers (every app's when `None`).
pub async fn health(db: &Db, app: Option<&str>) -> sqlx::Result<Vec<HealthRow>> {
    let rows = sqlx::query(
        "SELECT app, container, status, last_checked, last_failure, restarts, history \
         FROM container_health WHERE ?1 IS NULL OR app = ?1 ORDER BY app, container",
    )
    .bind(app)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| HealthRow {
            app: r.get("app"),
            container: r.get("container"),
            status: r.get("status"),
            last_checked: r.get("last_checked"),
            last_failure: r.get("last_failure"),
            restarts: u32::try_from(r.get::<i64, _>("restarts")).unwrap_or(u32::MAX),
            history: serde_json::from_str(r.get::<String, _>("history").as_str())
                .unwrap_or_default(),
        })
        .collect())
}

/// Marks `app` as running in Podman while unknown to sqlite; `true` when it was not
/// marked yet (the alarm is raised once per app).
pub async fn mark_unknown_app(db: &Db, app: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("INSERT OR IGNORE INTO unknown_apps (app, raised_at) VALUES (?, ?)")
        .bind(app)
        .bind(now())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Apps marked unknown, and when.
pub async fn unknown_apps(db: &Db) -> sqlx::Result<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT app, raised_at FROM unknown_apps ORDER BY app")
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get("app"), r.get("raised_at")))
        .collect())
}

/// Forgets the unknown mark of `app` (adopted, or its containers are gone).
pub async fn clear_unknown_app(db: &Db, app: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM unknown_apps WHERE app = ?")
        .bind(app)
        .execute(db)
        .await?;
    Ok(())
}

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

pub async fn raise_alarm(db: &Db, kind: &str, message: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO alarms (kind, message, raised_at) VALUES (?, ?, ?)")
        .bind(kind)
        .bind(message)
        .bind(now())
        .execute(db)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Alarm {
    pub kind: String,
    pub message: String,
    pub raised_at: String,
}

pub async fn alarms(db: &Db) -> sqlx::Result<Vec<Alarm>> {
    let rows = sqlx::query("SELECT kind, message, raised_at FROM alarms ORDER BY id DESC LIMIT 50")
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Alarm {
            kind: r.get("kind"),
            message: r.get("message"),
            raised_at: r.get("raised_at"),
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct MarketRow {
    pub author: String,
    pub app_id: String,
    pub event_id: String,
    pub created_at: i64,
    pub version: String,
    pub name: String,
    pub did: String,
    /// Set when its publisher withdrew it (NIP-09): the deletion request's id and time.
    pub withdrawn: Option<(String, i64)>,
}

/// Keeps the newest listing per (author, app): an older event never replaces a newer one,
/// except a withdrawn listing, which any listing discovery still returns replaces (the
/// deletions discovery honours are the ones that withdrew it).
pub async fn upsert_listing(db: &Db, row: &MarketRow, envelope: &[u8]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO market_listings (author, app_id, event_id, created_at, version, name, did, envelope, discovered_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT(author, app_id) DO UPDATE SET event_id = excluded.event_id, created_at = excluded.created_at, \
         version = excluded.version, name = excluded.name, did = excluded.did, envelope = excluded.envelope, \
         discovered_at = excluded.discovered_at, withdrawn_by = NULL, withdrawn_at = NULL \
         WHERE excluded.created_at > market_listings.created_at OR market_listings.withdrawn_by IS NOT NULL",
    )
    .bind(&row.author)
    .bind(&row.app_id)
    .bind(&row.event_id)
    .bind(row.created_at)
    .bind(&row.version)
    .bind(&row.name)
    .bind(&row.did)
    .bind(envelope)
    .bind(now())
    .execute(db)
    .await?;
    Ok(())
}

/// Drops listings the relays no longer serve; withdrawn ones stay, marked.
pub async fn retain_listings(db: &Db, keep: &[(String, String)]) -> sqlx::Result<()> {
    let rows = market_listings(db).await?;
    for r in rows {
        if !keep.iter().any(|(a, id)| *a == r.author && *id == r.app_id) {
            sqlx::query(
                "DELETE FROM market_listings WHERE author = ? AND app_id = ? AND withdrawn_by IS NULL",
            )
                .bind(&r.author)
                .bind(&r.app_id)
                .execute(db)
                .await?;
        }
    }
    Ok(())
}

/// Every listing, withdrawn ones included.
pub async fn market_listings(db: &Db) -> sqlx::Result<Vec<MarketRow>> {
    let rows = sqlx::query(
        "SELECT author, app_id, event_id, created_at, version, name, did, withdrawn_by, withdrawn_at \
         FROM market_listings ORDER BY app_id, author",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| MarketRow {
            author: r.get("author"),
            app_id: r.get("app_id"),
            event_id: r.get("event_id"),
            created_at: r.get("created_at"),
            version: r.get("version"),
            name: r.get("name"),
            did: r.get("did"),
            withdrawn: r
                .get::<Option<String>, _>("withdrawn_by")
                .map(|by| (by, r.get::<Option<i64>, _>("withdrawn_at").unwrap_or(0))),
        })
        .collect())
}

/// Marks a listing withdrawn by the deletion request `by`, made at `at`.
pub async fn mark_withdrawn(
    db: &Db,
    author: &str,
    app_id: &str,
    by: &str,
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE market_listings SET withdrawn_by = ?, withdrawn_at = ? WHERE author = ? AND app_id = ?",
    )
    .bind(by)
    .bind(at)
    .bind(author)
    .bind(app_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Publications kept per publisher in [`record_seen`]: the oldest (it dates the history)
/// and the newest others.
const HISTORY_PER_AUTHOR: i64 = 1000;
/// Deletion requests kept per publisher, the newest.
const DELETIONS_PER_AUTHOR: i64 = 200;

/// A publication the node saw on a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub event_id: String,
    pub author: String,
    pub app_id: String,
    pub version: String,
    pub created_at: i64,
}

/// Records publications seen at `now` (unix seconds), and when each publisher was first seen.
pub async fn record_seen(db: &Db, seen: &[HistoryRow], now: i64) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    let mut authors: Vec<&str> = Vec::new();
    for row in seen {
        sqlx::query(
            "INSERT INTO market_history (event_id, author, app_id, version, created_at, seen_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING",
        )
        .bind(&row.event_id)
        .bind(&row.author)
        .bind(&row.app_id)
        .bind(&row.version)
        .bind(row.created_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO market_publishers (author, first_seen) VALUES (?, ?) ON CONFLICT(author) DO NOTHING",
        )
        .bind(&row.author)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if !authors.contains(&row.author.as_str()) {
            authors.push(&row.author);
        }
    }
    for author in authors {
        sqlx::query(
            "DELETE FROM market_history WHERE author = ?1 \
             AND event_id NOT IN (SELECT event_id FROM market_history WHERE author = ?1 ORDER BY created_at DESC, event_id LIMIT ?2) \
             AND event_id NOT IN (SELECT event_id FROM market_history WHERE author = ?1 ORDER BY created_at, event_id LIMIT 1)",
        )
        .bind(author)
        .bind(HISTORY_PER_AUTHOR - 1)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The publications recorded of `author`, oldest first.
pub async fn history_of(db: &Db, author: &str) -> sqlx::Result<Vec<HistoryRow>> {
    let rows = sqlx::query(
        "SELECT event_id, author, app_id, version, created_at FROM market_history \
         WHERE author = ? ORDER BY created_at, event_id",
    )
    .bind(author)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| HistoryRow {
            event_id: r.get("event_id"),
            author: r.get("author"),
            app_id: r.get("app_id"),
            version: r.get("version"),
            created_at: r.get("created_at"),
        })
        .collect())
}

/// When the node first saw `author` publish (unix seconds).
pub async fn first_seen(db: &Db, author: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query("SELECT first_seen FROM market_publishers WHERE author = ?")
        .bind(author)
        .fetch_optional(db)
        .await
        .map(|r| r.map(|r| r.get("first_seen")))
}

/// Keeps a publisher's deletion request (its JSON as received).
pub async fn remember_deletion(
    db: &Db,
    event_id: &str,
    author: &str,
    created_at: i64,
    event: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO market_deletions (event_id, author, created_at, event) VALUES (?, ?, ?, ?) \
         ON CONFLICT(event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(author)
    .bind(created_at)
    .bind(event)
    .execute(db)
    .await?;
    sqlx::query(
        "DELETE FROM market_deletions WHERE author = ?1 AND event_id NOT IN \
         (SELECT event_id FROM market_deletions WHERE author = ?1 ORDER BY created_at DESC, event_id LIMIT ?2)",
    )
    .bind(author)
    .bind(DELETIONS_PER_AUTHOR)
    .execute(db)
    .await?;
    Ok(())
}

/// Every deletion request kept (JSON), oldest first.
pub async fn market_deletions(db: &Db) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query("SELECT event FROM market_deletions ORDER BY created_at, event_id")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.get("event")).collect())
}

/// The stored publication envelope of a listing.
pub async fn listing_envelope(
    db: &Db,
    author: &str,
    app_id: &str,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query("SELECT envelope FROM market_listings WHERE author = ? AND app_id = ?")
        .bind(author)
        .bind(app_id)
        .fetch_optional(db)
        .await
        .map(|r| r.map(|r| r.get("envelope")))
}

/// Listings of `app_id` (by any publisher).
pub async fn listings_of(db: &Db, app_id: &str) -> sqlx::Result<Vec<MarketRow>> {
    Ok(market_listings(db)
        .await?
        .into_iter()
        .filter(|r| r.app_id == app_id)
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow {
    pub author: String,
    pub score: u8,
    /// The explanation, as the marketplace produced it (JSON).
    pub explanation: serde_json::Value,
    pub computed_at: String,
}

pub async fn store_score(
    db: &Db,
    author: &str,
    score: u8,
    explanation: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO market_scores (author, score, explanation, computed_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT(author) DO UPDATE SET score = excluded.score, explanation = excluded.explanation, \
         computed_at = excluded.computed_at",
    )
    .bind(author)
    .bind(score as i64)
    .bind(explanation.to_string())
    .bind(now())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn score(db: &Db, author: &str) -> sqlx::Result<Option<ScoreRow>> {
    let row = sqlx::query(
        "SELECT author, score, explanation, computed_at FROM market_scores WHERE author = ?",
    )
    .bind(author)
    .fetch_optional(db)
    .await?;
    Ok(row.map(score_row))
}

/// Every stored score.
pub async fn scores(db: &Db) -> sqlx::Result<Vec<ScoreRow>> {
    let rows = sqlx::query("SELECT author, score, explanation, computed_at FROM market_scores")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(score_row).collect())
}

fn score_row(r: sqlx::sqlite::SqliteRow) -> ScoreRow {
    ScoreRow {
        author: r.get("author"),
        score: r.get::<i64, _>("score").clamp(0, 100) as u8,
        explanation: serde_json::from_str(r.get::<&str, _>("explanation"))
            .unwrap_or(serde_json::Value::Null),
        computed_at: r.get("computed_at"),
    }
}

/// Every stored listing's publication envelope: `(author, app_id, envelope)`.
pub async fn listing_envelopes(db: &Db) -> sqlx::Result<Vec<(String, String, Vec<u8>)>> {
    let rows = sqlx::query("SELECT author, app_id, envelope FROM market_listings")
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get("author"), r.get("app_id"), r.get("envelope")))
        .collect())
}

/// Operator keys added through the API (hex).
pub async fn trusted_keys(db: &Db) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query("SELECT key FROM trusted_keys ORDER BY added_at, key")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.get("key")).collect())
}

pub async fn add_trusted_key(db: &Db, key: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO trusted_keys (key, added_at) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
    )
    .bind(key)
    .bind(now())
    .execute(db)
    .await?;
    Ok(())
}

/// Whether a key was there to remove.
pub async fn remove_trusted_key(db: &Db, key: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM trusted_keys WHERE key = ?")
        .bind(key)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Forgets every publisher score: after the operator's trusted keys change, old scores
/// mean nothing (a missing score counts as 0 until the next discovery rescores).
pub async fn clear_scores(db: &Db) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM market_scores").execute(db).await?;
    Ok(())
}
