//! The reconciler: level-triggered passes that compare what the operator wants with Podman
//! and repair drift from the pinned local blobs, at an interval and promptly after Podman
//! events. It holds the operation lock for a whole pass, never touches apps the operator
//! stopped, nor apps that no longer verify, nor containers without archy's label.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use archy_orchestrator::Orchestrator;
use tracing::{info, warn};

use super::{Node, NodeError};
use crate::db;

/// Reconciler pacing for Podman events: wait for a burst to settle, keep event-driven
/// passes apart, and back off while the event stream cannot be followed.
const EVENT_SETTLE: Duration = Duration::from_millis(500);
const EVENT_PASS_GAP: Duration = Duration::from_secs(5);
const EVENT_RETRY_MIN: Duration = Duration::from_secs(1);
const EVENT_RETRY_MAX: Duration = Duration::from_secs(60);

impl Node {
    /// One level-triggered pass: every app the operator wants running is compared with
    /// Podman and repaired (missing containers recreated from the pinned local blobs, dead
    /// ones restarted). Apps the operator stopped are never touched.
    pub async fn reconcile_once(
        &self,
    ) -> Result<Vec<(String, archy_orchestrator::Repair)>, NodeError> {
        let _lock = self.exclusive().await;
        let mut repairs = Vec::new();
        // One listing of every archy container per pass; only drifted apps cost more.
        let podman = self.orchestrator.engine().containers_by_app().await?;
        for row in db::apps(&self.db).await? {
            if row.desired != "running" {
                continue;
            }
            let app = match self.installed_app(&row.id).await {
                Ok((_, app)) => app,
                Err(e) => {
                    warn!(app = %row.id, error = %e, "cannot verify the app; the reconciler leaves it alone");
                    continue;
                }
            };
            let current = podman.get(&row.id).map(Vec::as_slice).unwrap_or_default();
            if !Orchestrator::drifted(&app.manifest, current) {
                continue;
            }
            let missing = self.orchestrator.missing_containers(&app.manifest).await?;
            let workdir = self
                .config
                .data_dir
                .join("tmp")
                .join(format!("reconcile-{}", row.id));
            let result = async {
                let images = if missing.is_empty() {
                    BTreeMap::new()
                } else {
                    // Installed apps' blobs are pinned locally: no provider is needed.
                    self.fetch_images(&app, None, &workdir, &|_| {}).await?
                };
                Ok::<_, NodeError>(self.orchestrator.repair(&app.manifest, &images).await?)
            }
            .await;
            let _ = std::fs::remove_dir_all(&workdir);
            match result {
                Ok(repair) if repair.is_noop() => {}
                Ok(repair) => repairs.push((row.id.clone(), repair)),
                Err(e) => warn!(app = %row.id, error = %e, "reconcile could not repair the app"),
            }
        }
        Ok(repairs)
    }

    /// Runs [`Self::reconcile_once`] forever: at the configured interval, and as soon as
    /// Podman reports that an app's container died or was removed. The event stream only
    /// makes repairs prompt; the interval still catches whatever an event could miss.
    pub async fn reconcile_loop(self: Arc<Self>) {
        let period = Duration::from_secs(self.config.reconcile_interval_seconds.max(1));
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events = None;
        // A stream that keeps ending (Podman down) is retried ever more slowly.
        let mut retry = EVENT_RETRY_MIN;
        // A container that dies right after each restart must not make the reconciler spin.
        let mut last_event_pass: Option<tokio::time::Instant> = None;
        loop {
            if events.is_none() {
                events = match self.orchestrator.engine().app_events() {
                    Ok(rx) => Some(rx),
                    Err(e) => {
                        warn!(error = %e, "cannot follow Podman events; reconciling on the interval only");
                        None
                    }
                };
            }
            let event = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = interval.tick() => {}
                received = event => match received {
                    Some(ev) => {
                        info!(app = %ev.app, container = %ev.container, status = %ev.status, "podman event");
                        retry = EVENT_RETRY_MIN;
                        // A burst (stop, died, remove…) settles into one pass, and passes
                        // driven by events are at least EVENT_PASS_GAP apart.
                        let settle = match last_event_pass {
                            Some(at) => (at + EVENT_PASS_GAP)
                                .saturating_duration_since(tokio::time::Instant::now())
                                .max(EVENT_SETTLE),
                            None => EVENT_SETTLE,
                        };
                        tokio::time::sleep(settle).await;
                        if let Some(rx) = events.as_mut() {
                            while rx.try_recv().is_ok() {}
                        }
                        last_event_pass = Some(tokio::time::Instant::now());
                    }
                    None => {
                        warn!(retry_in = ?retry, "podman event stream ended; following it again");
                        events = None;
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(EVENT_RETRY_MAX);
                        continue;
                    }
                },
            }
            match self.reconcile_once().await {
                Ok(repairs) => {
                    for (app, repair) in repairs {
                        info!(%app, ?repair, "reconciler repaired drift");
                    }
                }
                Err(e) => warn!(error = %e, "reconcile pass failed"),
            }
        }
    }
}
