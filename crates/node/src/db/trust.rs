//! Root rotations, the catalogs kept (verified bytes, re-verified at start), and alarms.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::set_meta_in;
use super::{Db, now};

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

/// The payload hash of the stored catalog `version`, which tells two catalogs of one
/// version apart (before and after a trust reset).
pub async fn catalog_hash(db: &Db, version: i64) -> sqlx::Result<Option<String>> {
    sqlx::query("SELECT blake3 FROM catalogs WHERE version = ?")
        .bind(version)
        .fetch_optional(db)
        .await
        .map(|r| r.map(|r| r.get("blake3")))
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
