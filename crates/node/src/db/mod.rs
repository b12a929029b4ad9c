//! The node's sqlite state, through sqlx with embedded migrations: one file per kind of
//! state, all re-exported here so that callers write `db::apps`, `db::operation`, ….
//! - `trust`: root rotations, catalogs kept, alarms;
//! - `apps`: installed apps, their health, apps Podman has that the node does not know;
//! - `operations`: the persisted record of every operation;
//! - `market`: listings, publisher history and deletions, scores, trusted keys.

mod apps;
mod market;
mod operations;
mod trust;

pub use apps::*;
pub use market::*;
pub use operations::*;
pub use trust::*;

use std::path::Path;
use std::str::FromStr;

use chrono::Utc;
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
