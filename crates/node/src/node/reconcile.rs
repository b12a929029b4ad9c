//! The reconciler: level-triggered passes that compare what the operator wants with Podman
//! and repair drift from the pinned local blobs, at an interval and promptly after Podman
//! events. It holds the operation lock for a whole pass, never touches apps the operator
//! stopped, nor apps that no longer verify, nor containers without archy's label.
//!
//! Each pass (and the start, after recovery) also looks for labelled containers of apps
//! sqlite does not know (a lost or emptied database): never touched, but an `unknown-app`
//! alarm, once per app, says how to adopt them. Next to the passes, the health loop runs
//! each running container's health check at its interval and restarts a container that
//! fails it `retries` times in a row, backing off from 10 s to 5 min.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use archy_orchestrator::{ContainerInfo, Orchestrator};
use archy_registry::VerifiedApp;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::artifacts::StoreImages;
use super::{Node, NodeError};
use crate::db;

/// Reconciler pacing for Podman events: wait for a burst to settle, keep event-driven
/// passes apart, and back off while the event stream cannot be followed.
const EVENT_SETTLE: Duration = Duration::from_millis(500);
const EVENT_PASS_GAP: Duration = Duration::from_secs(5);
const EVENT_RETRY_MIN: Duration = Duration::from_secs(1);
const EVENT_RETRY_MAX: Duration = Duration::from_secs(60);

/// How often the health loop looks for checks that are due.
const HEALTH_TICK: Duration = Duration::from_secs(1);
/// How long the health loop trusts its list of apps to watch (and their verified manifests).
const HEALTH_PLAN_TTL: Duration = Duration::from_secs(15);
/// Restarts of a container failing its health check back off from the first to the last.
const RESTART_BACKOFF_MIN: Duration = Duration::from_secs(10);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
/// A restart (stop, start, the wait for health) that takes longer is given up.
const RESTART_BOUND: Duration = Duration::from_secs(5 * 60);
/// Healthy for this long after a restart resets the backoff.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10 * 60);

/// What the health loop keeps of one running container between checks.
struct Watch {
    /// When it was first seen running, or restarted: failures within the start period
    /// after that do not count.
    since: Instant,
    next_check: Instant,
    /// Failed checks in a row, past the start period.
    failures: u32,
    /// The wait before the next restart may happen, doubling up to the maximum.
    backoff: Duration,
    /// No restart before this.
    next_restart: Instant,
    last_restart: Option<Instant>,
}

impl Watch {
    fn new(now: Instant) -> Self {
        Watch {
            since: now,
            next_check: now,
            failures: 0,
            backoff: RESTART_BACKOFF_MIN,
            next_restart: now,
            last_restart: None,
        }
    }
}

/// What one check leads to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Record the status, nothing else.
    Record(&'static str),
    /// Record "unhealthy" and restart the container.
    Restart,
}

/// Folds one result into `watch`: the status to record, and whether to restart now.
fn judge(
    watch: &mut Watch,
    ok: bool,
    start_period: Duration,
    retries: u32,
    now: Instant,
) -> Verdict {
    if ok {
        watch.failures = 0;
        if watch
            .last_restart
            .is_some_and(|at| now.duration_since(at) >= BACKOFF_RESET_AFTER)
        {
            watch.backoff = RESTART_BACKOFF_MIN;
            watch.last_restart = None;
        }
        return Verdict::Record("healthy");
    }
    if now.duration_since(watch.since) < start_period {
        return Verdict::Record("starting");
    }
    watch.failures += 1;
    if watch.failures >= retries.max(1) && now >= watch.next_restart {
        Verdict::Restart
    } else {
        Verdict::Record("unhealthy")
    }
}

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
        let podman = self.orchestrator.containers_by_app().await?;
        // What the store shows of installed apps stays as fresh as the reconciler's pass.
        self.runtimes.record(&podman);
        if let Err(e) = self.alarm_unknown_apps(&podman).await {
            warn!(error = %e, "could not look for apps this node does not know");
        }
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
            if !Orchestrator::drifted(app.manifest(), current) {
                continue;
            }
            let missing = self.orchestrator.missing_containers(app.manifest()).await?;
            let result = async {
                let images = if missing.is_empty() {
                    StoreImages::none(self.swarm.clone())
                } else {
                    // Installed apps' blobs are pinned locally; should the store have lost
                    // one, a first-party app's comes again from the catalog's origin.
                    match self.fetch_images(&app, None, &|_| {}).await {
                        Ok(images) => images,
                        Err(local) => self.refetch_from_origin(&app).await.map_err(|e| {
                            NodeError::new(
                                local.kind,
                                format!("{}; from the origin: {}", local.message, e.message),
                            )
                        })?,
                    }
                };
                Ok::<_, NodeError>(self.orchestrator.repair(app.manifest(), &images).await?)
            }
            .await;
            match result {
                Ok(repair) if repair.is_noop() => {}
                Ok(repair) => repairs.push((row.id.clone(), repair)),
                Err(e) => warn!(app = %row.id, error = %e, "reconcile could not repair the app"),
            }
        }
        Ok(repairs)
    }

    /// The app's images fetched again from the verified catalog's origin (iroh, then HTTP).
    async fn refetch_from_origin(&self, app: &VerifiedApp) -> Result<StoreImages, NodeError> {
        let origin = {
            let trust = self.trust.read().await;
            trust.catalog().map(|c| c.catalog().origin.clone())
        };
        let Some(origin) = origin else {
            return Err(NodeError::new(
                super::ErrorKind::Unavailable,
                "no verified catalog names an origin",
            ));
        };
        let peer = self.origin_peer(&origin).await.ok();
        let from = super::artifacts::FetchFrom {
            iroh: peer.as_ref(),
            http: origin.http.as_str(),
            first_party: true,
        };
        self.fetch_images(app, Some(from), &|_| {}).await
    }

    /// Runs [`Self::reconcile_once`] forever: at the configured interval, and as soon as
    /// Podman reports that an app's container died or was removed. The event stream only
    /// makes repairs prompt; the interval still catches whatever an event could miss.
    pub async fn reconcile_loop(self: Arc<Self>) {
        // A publish-only node runs no apps and no Podman: nothing to reconcile.
        if self.config.publish_only || self.config.fetch_only {
            return;
        }
        // One task: aborting the reconciler (at shutdown) ends the health loop too.
        tokio::join!(self.clone().drift_loop(), self.health_loop());
    }

    async fn drift_loop(self: Arc<Self>) {
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
                events = match self.orchestrator.app_events() {
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
                        // A stream that ends once is normal (Podman restarted, or the
                        // node is shutting down and its `podman events` got the signal);
                        // one that keeps ending is worth a warning.
                        if retry == EVENT_RETRY_MIN {
                            debug!(retry_in = ?retry, "podman event stream ended; following it again");
                        } else {
                            warn!(retry_in = ?retry, "podman event stream keeps ending; following it again");
                        }
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

    /// Looks for labelled containers whose app sqlite does not know (a lost or emptied
    /// database) and raises an `unknown-app` alarm once per app; forgets apps that are
    /// known again or whose containers are gone. Takes what Podman listed; call it with
    /// the operation lock held, so an install in progress is never mistaken for one.
    pub(super) async fn alarm_unknown_apps(
        &self,
        podman: &BTreeMap<String, Vec<ContainerInfo>>,
    ) -> Result<(), NodeError> {
        let known: Vec<String> = db::apps(&self.db)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        for (app, _) in db::unknown_apps(&self.db).await? {
            if known.contains(&app) || !podman.contains_key(&app) {
                db::clear_unknown_app(&self.db, &app).await?;
            }
        }
        for (app, containers) in podman {
            if known.contains(app) || !db::mark_unknown_app(&self.db, app).await? {
                continue;
            }
            let volumes = self.orchestrator.volumes_of(app).await.unwrap_or_default();
            let message = unknown_app_message(app, containers, &volumes);
            warn!(%app, "{message}");
            db::raise_alarm(&self.db, "unknown-app", &message).await?;
        }
        Ok(())
    }

    /// Runs each running container's health check at its manifest's interval (each check
    /// bounded by its timeout) and restarts, under the operation lock, a container that
    /// failed `retries` checks in a row past its start period, unless the operator stopped
    /// the app; restarts back off from 10 s to 5 min. Results go to sqlite, for the views.
    pub async fn health_loop(self: Arc<Self>) {
        let mut watches: HashMap<String, Watch> = HashMap::new();
        let mut plan: Vec<VerifiedApp> = Vec::new();
        let mut planned_at: Option<Instant> = None;
        let mut tick = tokio::time::interval(HEALTH_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if planned_at.is_none_or(|at| at.elapsed() >= HEALTH_PLAN_TTL) {
                match self.health_plan().await {
                    Ok(p) => plan = p,
                    Err(e) => debug!(error = %e, "health loop: cannot list the apps"),
                }
                planned_at = Some(Instant::now());
            }
            let now = Instant::now();
            let due = plan.iter().any(|app| {
                app.manifest().containers.iter().any(|c| {
                    c.health.is_some()
                        && watches
                            .get(&archy_orchestrator::container_name(
                                &app.manifest().id,
                                &c.name,
                            ))
                            .is_none_or(|w| w.next_check <= now)
                })
            });
            if !due {
                continue;
            }
            let podman = match self.orchestrator.containers_by_app().await {
                Ok(p) => p,
                Err(e) => {
                    debug!(error = %e, "health loop: Podman did not answer");
                    continue;
                }
            };
            let mut seen = Vec::new();
            for app in &plan {
                let id = app.manifest().id.as_str();
                let running = podman.get(id).map(Vec::as_slice).unwrap_or_default();
                for c in &app.manifest().containers {
                    let Some(check) = &c.health else { continue };
                    let name = archy_orchestrator::container_name(id, &c.name);
                    if !running.iter().any(|r| {
                        r.name == name && r.state == archy_orchestrator::ContainerState::Running
                    }) {
                        // Not running: the reconciler's business; watched afresh once back.
                        continue;
                    }
                    seen.push(name.clone());
                    let now = Instant::now();
                    let watch = watches
                        .entry(name.clone())
                        .or_insert_with(|| Watch::new(now));
                    if watch.next_check > now {
                        continue;
                    }
                    let interval = Duration::from_secs(check.interval_seconds.max(1).into());
                    let bound = Duration::from_secs(u64::from(check.timeout_seconds) + 5);
                    let result = tokio::time::timeout(
                        bound,
                        self.orchestrator.check_once(app.manifest(), &c.name),
                    )
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {}s", bound.as_secs())));
                    let now = Instant::now();
                    watch.next_check = now + interval;
                    let start_period = Duration::from_secs(check.start_period_seconds.into());
                    let verdict = judge(watch, result.is_ok(), start_period, check.retries, now);
                    let status = match verdict {
                        Verdict::Record(status) => status,
                        Verdict::Restart => "unhealthy",
                    };
                    if let Err(e) = db::record_health(
                        &self.db,
                        id,
                        &c.name,
                        status,
                        result.as_ref().map(|_| ()).map_err(String::as_str),
                    )
                    .await
                    {
                        debug!(error = %e, "health loop: cannot record a result");
                    }
                    if let Err(why) = &result {
                        if status == "unhealthy" {
                            warn!(app = id, container = %c.name, failures = watch.failures, reason = %why, "health check failed");
                        } else {
                            debug!(app = id, container = %c.name, reason = %why, "health check failed while starting");
                        }
                    }
                    if verdict == Verdict::Restart {
                        let reason = result.err().unwrap_or_default();
                        match self.restart_unhealthy(app, &c.name, &reason).await {
                            Ok(true) => {
                                let now = Instant::now();
                                watch.since = now;
                                watch.failures = 0;
                                watch.next_check = now + interval;
                                watch.next_restart = now + watch.backoff;
                                watch.last_restart = Some(now);
                                watch.backoff = (watch.backoff * 2).min(RESTART_BACKOFF_MAX);
                            }
                            Ok(false) => {}
                            Err(e) => {
                                warn!(app = id, container = %c.name, error = %e, "restarting an unhealthy container failed");
                                let now = Instant::now();
                                watch.next_restart = now + watch.backoff;
                                watch.backoff = (watch.backoff * 2).min(RESTART_BACKOFF_MAX);
                            }
                        }
                    }
                }
            }
            watches.retain(|name, _| seen.contains(name));
        }
    }

    /// The apps whose health the loop watches: wanted running, verifying, with a check.
    async fn health_plan(&self) -> Result<Vec<VerifiedApp>, NodeError> {
        let mut plan = Vec::new();
        for row in db::apps(&self.db).await? {
            if row.desired != "running" {
                continue;
            }
            if let Ok((_, app)) = self.installed_app(&row.id).await
                && app.manifest().containers.iter().any(|c| c.health.is_some())
            {
                plan.push(app);
            }
        }
        Ok(plan)
    }

    /// Restarts `app`'s `container` that keeps failing its health check, under the
    /// operation lock, unless the app is no longer wanted running (`Ok(false)`).
    async fn restart_unhealthy(
        &self,
        app: &VerifiedApp,
        container: &str,
        reason: &str,
    ) -> Result<bool, NodeError> {
        let id = app.manifest().id.as_str();
        let _lock = self.exclusive().await;
        match db::app(&self.db, id).await? {
            Some(row)
                if row.desired == "running"
                    && row.version == app.manifest().version.to_string() => {}
            _ => return Ok(false),
        }
        // An operation may have held the lock meanwhile (a restart, an update): only a
        // container that still fails is restarted.
        if self
            .orchestrator
            .check_once(app.manifest(), container)
            .await
            .is_ok()
        {
            return Ok(false);
        }
        let name = archy_orchestrator::container_name(id, container);
        warn!(
            app = id,
            container, reason, "restarting a container that keeps failing its health check"
        );
        db::count_health_restart(&self.db, id, container).await?;
        let restarted = tokio::time::timeout(RESTART_BOUND, async {
            self.orchestrator.kill_container(id, container).await?;
            self.orchestrator
                .repair(app.manifest(), &StoreImages::none(self.swarm.clone()))
                .await
        })
        .await
        .map_err(|_| {
            NodeError::new(
                super::ErrorKind::Unavailable,
                format!(
                    "restarting {name} did not finish within {} s",
                    RESTART_BOUND.as_secs()
                ),
            )
        })?;
        restarted?;
        info!(app = id, container, "restarted an unhealthy container");
        Ok(true)
    }
}

/// The `unknown-app` alarm: what runs, what it keeps, and how to bring it back.
fn unknown_app_message(app: &str, containers: &[ContainerInfo], volumes: &[String]) -> String {
    let containers = containers
        .iter()
        .map(|c| format!("{} ({:?})", c.name, c.state).to_lowercase())
        .collect::<Vec<_>>()
        .join(", ");
    let volumes = if volumes.is_empty() {
        "no volumes".to_owned()
    } else {
        format!("volumes {}", volumes.join(", "))
    };
    let fix = if app.contains('.') {
        format!(
            "it is a third-party app, which the node cannot vouch for without its publication: \
             remove its containers (`podman rm -f` them; the volumes stay) and reinstall it from \
             the marketplace (`archy market install {}`)",
            app.split('.').next().unwrap_or(app)
        )
    } else {
        format!(
            "`archy app adopt {app}` records it again when the verified catalog lists the version \
             it runs; otherwise remove its containers (the volumes stay) and `archy app install {app}`"
        )
    };
    format!(
        "app {app} runs in Podman (containers {containers}; {volumes}) but this node has no \
         record of it (was its database lost or emptied?): nothing repairs, watches or updates \
         it. Fix: {fix}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_restarts_after_retries_and_backs_off() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0);
        let sp = Duration::from_secs(20);
        // Inside the start period failures do not count.
        assert_eq!(
            judge(&mut w, false, sp, 3, t0 + Duration::from_secs(5)),
            Verdict::Record("starting")
        );
        assert_eq!(w.failures, 0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            judge(&mut w, false, sp, 3, at(21)),
            Verdict::Record("unhealthy")
        );
        assert_eq!(
            judge(&mut w, true, sp, 3, at(22)),
            Verdict::Record("healthy")
        );
        assert_eq!(
            judge(&mut w, false, sp, 3, at(23)),
            Verdict::Record("unhealthy")
        );
        assert_eq!(
            judge(&mut w, false, sp, 3, at(24)),
            Verdict::Record("unhealthy")
        );
        assert_eq!(judge(&mut w, false, sp, 3, at(25)), Verdict::Restart);
        // What the loop does after a restart: the next one waits for the backoff.
        w.next_restart = at(25) + w.backoff;
        w.backoff = (w.backoff * 2).min(RESTART_BACKOFF_MAX);
        w.failures = 0;
        w.since = at(25);
        for s in 46..48 {
            assert_eq!(
                judge(&mut w, false, sp, 3, at(s)),
                Verdict::Record("unhealthy")
            );
        }
        assert_eq!(judge(&mut w, false, sp, 3, at(48)), Verdict::Restart);
        assert_eq!(w.backoff, Duration::from_secs(20));
        let mut w = Watch::new(t0);
        w.next_restart = at(100);
        for s in 30..33 {
            assert_eq!(
                judge(&mut w, false, sp, 3, at(s)),
                Verdict::Record("unhealthy")
            );
        }
        assert_eq!(judge(&mut w, false, sp, 3, at(100)), Verdict::Restart);
    }

    #[test]
    fn the_unknown_app_alarm_names_what_runs_and_the_fix() {
        let containers = [ContainerInfo {
            name: "archy-hello-web".into(),
            state: archy_orchestrator::ContainerState::Running,
        }];
        let m = unknown_app_message("hello", &containers, &["archy-hello-data".into()]);
        assert!(m.contains("archy-hello-web (running)"), "{m}");
        assert!(m.contains("volumes archy-hello-data"), "{m}");
        assert!(m.contains("archy app adopt hello"), "{m}");
        let m = unknown_app_message("notes.0123456789abcdef", &containers, &[]);
        assert!(m.contains("archy market install notes"), "{m}");
    }
}
