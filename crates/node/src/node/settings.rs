//! Settings the operator changes while the node runs (`GET`/`PUT /v1/settings`): the relays
//! third-party apps are discovered on, the trust threshold of the install gate and the pull
//! interval. A value set through the API is kept in sqlite (`settings`, one JSON value per
//! key) and overrides the config file's, at start and at once: readers take the live value
//! ([`Node::relays`], [`Node::market_min_score`], [`Node::pull_interval`]) and the pull loop
//! is woken to take the new interval. Trusted keys keep their own routes
//! (`/v1/trust/keys/{key}`); the settings only show them.

use std::time::Duration;

use chrono::Utc;
use sqlx::Row;
use tokio::sync::watch;
use tracing::warn;

use super::error::internal;
use super::{ErrorKind, Node, NodeError};
use crate::config::NodeConfig;
use crate::db::Db;

/// Most relays a node discovers on.
pub const MAX_RELAYS: usize = 16;
/// The pull interval's bounds when set through the API, in seconds.
pub const PULL_INTERVAL_RANGE: std::ops::RangeInclusive<i64> = 30..=86_400;
/// Longest relay URL taken.
const MAX_RELAY_URL: usize = 512;

const RELAYS: &str = "relays";
const MARKET_MIN_SCORE: &str = "market_min_score";
const PULL_INTERVAL_SECONDS: &str = "pull_interval_seconds";

/// The values in effect now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Live {
    pub relays: Vec<String>,
    pub market_min_score: u8,
    pub pull_interval_seconds: u64,
    /// The fields set through the API (the others come from the config file).
    pub overridden: Vec<String>,
}

/// The live settings: read by anyone, changed one update at a time.
pub(crate) struct Settings {
    live: watch::Sender<Live>,
    update: tokio::sync::Mutex<()>,
}

impl Settings {
    /// The config file's values, overridden by those stored through the API. A stored value
    /// that no longer validates is ignored (with a warning) rather than stopping the node.
    pub async fn load(db: &Db, config: &NodeConfig) -> anyhow::Result<Self> {
        let mut live = Live {
            relays: config.relays.clone(),
            market_min_score: config.market_min_score,
            pull_interval_seconds: config.pull_interval_seconds,
            overridden: Vec::new(),
        };
        let rows = sqlx::query("SELECT key, value FROM settings ORDER BY key")
            .fetch_all(db)
            .await?;
        for row in rows {
            let key: String = row.get("key");
            let value: String = row.get("value");
            let applied = serde_json::from_str::<serde_json::Value>(&value)
                .map_err(|e| e.to_string())
                .and_then(|v| apply(&mut live, &key, &v).map_err(|e| e.message));
            match applied {
                Ok(()) => live.overridden.push(key),
                Err(e) => warn!(setting = %key, error = %e, "ignoring a stored setting"),
            }
        }
        Ok(Self {
            live: watch::Sender::new(live),
            update: tokio::sync::Mutex::new(()),
        })
    }

    pub fn now(&self) -> Live {
        self.live.borrow().clone()
    }

    /// Sees every change (the pull loop).
    pub fn subscribe(&self) -> watch::Receiver<Live> {
        self.live.subscribe()
    }
}

/// Sets `key` in `live` from its JSON value, validated; the error names the field.
fn apply(live: &mut Live, key: &str, value: &serde_json::Value) -> Result<(), NodeError> {
    match key {
        RELAYS => {
            let list: Vec<String> = serde_json::from_value(value.clone())
                .map_err(|_| invalid(RELAYS, "must be a list of URLs".to_owned()))?;
            live.relays = check_relays(&list)?;
        }
        MARKET_MIN_SCORE => {
            let n = value
                .as_i64()
                .ok_or_else(|| invalid(MARKET_MIN_SCORE, "must be a whole number".to_owned()))?;
            live.market_min_score = check_score(n)?;
        }
        PULL_INTERVAL_SECONDS => {
            let n = value.as_i64().ok_or_else(|| {
                invalid(PULL_INTERVAL_SECONDS, "must be a whole number".to_owned())
            })?;
            live.pull_interval_seconds = check_interval(n)?;
        }
        other => {
            return Err(NodeError::new(
                ErrorKind::Invalid,
                format!("{other}: no such setting"),
            ));
        }
    }
    Ok(())
}

fn invalid(field: &str, why: String) -> NodeError {
    NodeError::new(ErrorKind::Invalid, format!("{field}: {why}"))
}

/// At most [`MAX_RELAYS`] distinct `ws://` or `wss://` URLs with a host and no credentials.
fn check_relays(list: &[String]) -> Result<Vec<String>, NodeError> {
    if list.len() > MAX_RELAYS {
        return Err(invalid(
            RELAYS,
            format!(
                "{} relays given, at most {MAX_RELAYS} are taken",
                list.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for text in list {
        let text = text.trim();
        if text.len() > MAX_RELAY_URL || text.chars().any(char::is_control) {
            return Err(invalid(
                RELAYS,
                format!("a relay URL is at most {MAX_RELAY_URL} printable characters"),
            ));
        }
        let url = reqwest::Url::parse(text).map_err(|e| {
            invalid(
                RELAYS,
                format!("{text:?} is not a URL ({e}); write ws://host:port or wss://host"),
            )
        })?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(invalid(
                RELAYS,
                format!("{text:?} is not a ws:// or wss:// URL"),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(RELAYS, format!("{text:?} names no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                RELAYS,
                format!("{text:?} carries credentials; relays are public"),
            ));
        }
        if out.iter().any(|r| r == text) {
            return Err(invalid(RELAYS, format!("{text:?} is listed twice")));
        }
        out.push(text.to_owned());
    }
    Ok(out)
}

fn check_score(n: i64) -> Result<u8, NodeError> {
    u8::try_from(n).ok().filter(|s| *s <= 100).ok_or_else(|| {
        invalid(
            MARKET_MIN_SCORE,
            format!("{n} is not a score from 0 to 100"),
        )
    })
}

fn check_interval(n: i64) -> Result<u64, NodeError> {
    if !PULL_INTERVAL_RANGE.contains(&n) {
        return Err(invalid(
            PULL_INTERVAL_SECONDS,
            format!(
                "{n} is out of range: from {} seconds to {} (a day)",
                PULL_INTERVAL_RANGE.start(),
                PULL_INTERVAL_RANGE.end()
            ),
        ));
    }
    Ok(n as u64)
}

impl Node {
    /// The relays discovery asks now.
    pub fn relays(&self) -> Vec<String> {
        self.settings.live.borrow().relays.clone()
    }

    /// The relays now, with the CAs their certificates may chain to (`relay_ca_certs`).
    pub fn relay_set(&self) -> archy_marketplace::RelaySet {
        archy_marketplace::RelaySet::new(self.relays(), self.relay_tls.clone())
    }

    /// The trust threshold of the install gate now.
    pub fn market_min_score(&self) -> u8 {
        self.settings.live.borrow().market_min_score
    }

    /// Time between pulls now.
    pub fn pull_interval(&self) -> Duration {
        Duration::from_secs(self.settings.live.borrow().pull_interval_seconds.max(1))
    }

    /// `GET /v1/settings`.
    pub async fn settings(&self) -> Result<archy_api::Settings, NodeError> {
        let live = self.settings.now();
        let trusted_keys = self.trusted_keys().await?;
        Ok(archy_api::Settings {
            trusted_keys,
            relays: live.relays,
            relay_ca_certs: self
                .config
                .relay_ca_certs
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            market_min_score: live.market_min_score,
            pull_interval_seconds: live.pull_interval_seconds,
            overridden: live.overridden,
        })
    }

    /// `PUT /v1/settings`: every field named is validated first (nothing changes if one is
    /// refused), then stored and put in effect at once.
    pub async fn update_settings(
        &self,
        update: archy_api::SettingsUpdate,
    ) -> Result<archy_api::Settings, NodeError> {
        let _one_at_a_time = self.settings.update.lock().await;
        let mut changes: Vec<(&str, serde_json::Value)> = Vec::new();
        if let Some(relays) = update.relays {
            changes.push((
                RELAYS,
                serde_json::to_value(check_relays(&relays)?).map_err(internal)?,
            ));
        }
        if let Some(score) = update.market_min_score {
            changes.push((MARKET_MIN_SCORE, check_score(score)?.into()));
        }
        if let Some(interval) = update.pull_interval_seconds {
            changes.push((PULL_INTERVAL_SECONDS, check_interval(interval)?.into()));
        }
        if !changes.is_empty() {
            let mut live = self.settings.now();
            for (key, value) in &changes {
                apply(&mut live, key, value)?;
                if !live.overridden.iter().any(|k| k == key) {
                    live.overridden.push((*key).to_owned());
                }
            }
            let now = Utc::now().to_rfc3339();
            let mut tx = self.db.begin().await?;
            for (key, value) in &changes {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(value.to_string())
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            let relays_changed = self.settings.live.borrow().relays != live.relays;
            self.settings.live.send_replace(live);
            if relays_changed {
                tracing::info!("relays changed: discovery asks the new ones from its next pass");
            }
        }
        self.settings().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: NodeError) -> String {
        assert_eq!(e.kind, ErrorKind::Invalid);
        e.message
    }

    #[test]
    fn relays_are_ws_urls_with_a_host_at_most_sixteen() {
        assert_eq!(
            check_relays(&[" wss://relay.example ".into(), "ws://127.0.0.1:7777".into()]).unwrap(),
            ["wss://relay.example", "ws://127.0.0.1:7777"]
        );
        for bad in [
            "http://relay.example",
            "relay.example",
            "wss://u:p@relay.example",
            "ws://",
        ] {
            let m = message(check_relays(&[bad.into()]).unwrap_err());
            assert!(m.starts_with("relays: "), "{bad}: {m}");
        }
        let twice = message(check_relays(&["ws://a".into(), "ws://a".into()]).unwrap_err());
        assert!(twice.contains("twice"), "{twice}");
        let many: Vec<String> = (0..17).map(|i| format!("wss://r{i}.example")).collect();
        assert!(message(check_relays(&many).unwrap_err()).contains("at most 16"));
    }

    #[test]
    fn score_and_interval_are_bounded_and_named() {
        assert_eq!(check_score(0).unwrap(), 0);
        assert_eq!(check_score(100).unwrap(), 100);
        for bad in [-1, 101, 300] {
            assert!(message(check_score(bad).unwrap_err()).starts_with("market_min_score: "));
        }
        assert_eq!(check_interval(30).unwrap(), 30);
        assert_eq!(check_interval(86_400).unwrap(), 86_400);
        for bad in [0, 29, 86_401] {
            assert!(
                message(check_interval(bad).unwrap_err()).starts_with("pull_interval_seconds: ")
            );
        }
    }

    #[tokio::test]
    async fn stored_values_override_the_config_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(&dir.path().join("archy.db")).await.unwrap();
        for (key, value) in [
            (MARKET_MIN_SCORE, "20"),
            (RELAYS, r#"["wss://r.example"]"#),
            // Edited by hand into something the API would refuse: the config's value stays.
            (PULL_INTERVAL_SECONDS, "1"),
        ] {
            sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 'now')")
                .bind(key)
                .bind(value)
                .execute(&db)
                .await
                .unwrap();
        }
        let config = NodeConfig {
            relays: vec!["wss://config.example".into()],
            market_min_score: 50,
            pull_interval_seconds: 300,
            ..NodeConfig::default()
        };
        let live = Settings::load(&db, &config).await.unwrap().now();
        assert_eq!(live.market_min_score, 20);
        assert_eq!(live.relays, ["wss://r.example"]);
        assert_eq!(live.pull_interval_seconds, 300);
        assert_eq!(live.overridden, [MARKET_MIN_SCORE, RELAYS]);
        db.close().await;
    }

    #[test]
    fn stored_values_override_and_bad_ones_are_refused_by_name() {
        let mut live = Live {
            relays: vec![],
            market_min_score: 50,
            pull_interval_seconds: 300,
            overridden: vec![],
        };
        apply(&mut live, RELAYS, &serde_json::json!(["wss://r.example"])).unwrap();
        apply(&mut live, MARKET_MIN_SCORE, &serde_json::json!(20)).unwrap();
        apply(&mut live, PULL_INTERVAL_SECONDS, &serde_json::json!(60)).unwrap();
        assert_eq!(live.relays, ["wss://r.example"]);
        assert_eq!(live.market_min_score, 20);
        assert_eq!(live.pull_interval_seconds, 60);
        assert!(apply(&mut live, "colour", &serde_json::json!(1)).is_err());
        assert!(apply(&mut live, MARKET_MIN_SCORE, &serde_json::json!("x")).is_err());
        assert_eq!(live.market_min_score, 20);
    }
}
