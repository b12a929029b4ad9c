//! The marketplace as this node saw it: listings, publishers' history and deletions, scores,
//! and the operator's trusted keys.

use serde::Serialize;
use sqlx::Row;

use super::{Db, now};

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
