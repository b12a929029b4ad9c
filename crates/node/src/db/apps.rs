//! Installed apps, their health samples, and apps Podman has that the node does not know.

use serde::Serialize;
use sqlx::Row;

use super::{Db, now};

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
