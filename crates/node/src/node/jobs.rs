//! Operations belong to the node, not to the request that asked for them. A [`Job`] is an
//! install, update, removal, start, stop or restart running as a task of its own
//! ([`Node::start_job`]): it finishes whether or not anyone watches, and whoever watches
//! (the request that started it, `GET /v1/operations/{id}/events`) gets the same events:
//! the history so far, then each new one, up to the final result or error.
//!
//! A job is recorded in sqlite (`operations`) before it waits for the operation lock, with
//! stage "queued"; its id is that row's. The row then follows the operation (see
//! [`super::operation`]), and a crash leaves it for [`Node::recover_interrupted`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use archy_orchestrator::Progress;
use futures::{FutureExt, Stream};
use serde_json::json;
use tokio::sync::broadcast;
use tracing::{error, warn};

use super::operation::OperationKind;
use super::{ErrorKind, Node, NodeError};
use crate::db;

/// Events a job keeps for late watchers (the final one is always kept).
pub const HISTORY: usize = 256;
/// Finished jobs kept in memory with their events (sqlite keeps every record).
pub const KEEP_FINISHED: usize = 64;
/// Events buffered for a watcher that reads slowly; one further behind skips progress.
const BROADCAST: usize = 1024;

/// What a job is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRequest {
    /// Install a catalog app, and with `with_dependencies` the apps it needs first.
    Install {
        id: String,
        with_dependencies: bool,
    },
    /// Install a third-party app from its listing.
    MarketInstall {
        app: String,
        publisher: Option<String>,
        approve: bool,
    },
    Update {
        id: String,
        approve: bool,
    },
    Uninstall {
        id: String,
        purge: bool,
    },
    Start {
        id: String,
    },
    Stop {
        id: String,
    },
    Restart {
        id: String,
    },
}

impl JobRequest {
    /// The app it acts on (a marketplace install: the listing's id until it is resolved).
    pub fn app(&self) -> &str {
        match self {
            JobRequest::Install { id, .. }
            | JobRequest::Update { id, .. }
            | JobRequest::Uninstall { id, .. }
            | JobRequest::Start { id }
            | JobRequest::Stop { id }
            | JobRequest::Restart { id } => id,
            JobRequest::MarketInstall { app, .. } => app,
        }
    }

    fn kind(&self) -> OperationKind {
        match self {
            JobRequest::Install { .. } | JobRequest::MarketInstall { .. } => OperationKind::Install,
            JobRequest::Update { .. } => OperationKind::Update,
            JobRequest::Uninstall { purge, .. } => OperationKind::removal(*purge),
            JobRequest::Start { .. } => OperationKind::Start,
            JobRequest::Stop { .. } => OperationKind::Stop,
            JobRequest::Restart { .. } => OperationKind::Restart,
        }
    }
}

/// How a job ended: its answer as JSON (an app, or what was uninstalled), or the error.
pub type JobOutcome = Result<serde_json::Value, (ErrorKind, String)>;

/// One event of a job, as streamed: progress, then exactly one final outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    Progress(Progress),
    Finished(JobOutcome),
}

impl JobEvent {
    /// The NDJSON line's value: `{"progress": …}`, `{"result": …}` or `{"error", "kind"}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            JobEvent::Progress(p) => json!({ "progress": p }),
            JobEvent::Finished(Ok(result)) => json!({ "result": result }),
            JobEvent::Finished(Err((kind, message))) => json!({ "error": message, "kind": kind }),
        }
    }

    fn is_final(&self) -> bool {
        matches!(self, JobEvent::Finished(_))
    }
}

/// Whether a job still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// One node-owned operation: its identity, state and events.
pub struct Job {
    id: i64,
    kind: &'static str,
    app: String,
    inner: Mutex<JobInner>,
    events: broadcast::Sender<JobEvent>,
}

struct JobInner {
    state: JobState,
    history: VecDeque<JobEvent>,
    /// Events dropped from the front of the history.
    dropped: u64,
}

impl Job {
    fn new(id: i64, kind: &'static str, app: &str) -> Arc<Job> {
        Arc::new(Job {
            id,
            kind,
            app: app.to_owned(),
            inner: Mutex::new(JobInner {
                state: JobState::Running,
                history: VecDeque::new(),
                dropped: 0,
            }),
            events: broadcast::channel(BROADCAST).0,
        })
    }

    /// The operation's id (its sqlite row).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// `install`, `update`, `uninstall`, `purge`, `start`, `stop` or `restart`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn state(&self) -> JobState {
        self.lock().state
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn progress(&self, p: Progress) {
        self.push(JobEvent::Progress(p));
    }

    fn finish(&self, outcome: JobOutcome) {
        self.push(JobEvent::Finished(outcome));
    }

    /// Appends an event (nothing after the final one) and tells every watcher; under the
    /// lock, so a watcher's replay and its subscription never miss or repeat an event.
    fn push(&self, event: JobEvent) {
        let mut inner = self.lock();
        if inner.state != JobState::Running {
            return;
        }
        if let JobEvent::Finished(outcome) = &event {
            inner.state = if outcome.is_ok() {
                JobState::Succeeded
            } else {
                JobState::Failed
            };
        }
        inner.history.push_back(event.clone());
        while inner.history.len() > HISTORY {
            inner.history.pop_front();
            inner.dropped += 1;
        }
        let _ = self.events.send(event);
    }

    /// The events so far (at most [`HISTORY`], the final one always among them) and how
    /// many older ones were dropped.
    pub fn history(&self) -> (Vec<JobEvent>, u64) {
        let inner = self.lock();
        (inner.history.iter().cloned().collect(), inner.dropped)
    }

    /// The job's events: its history, then each new event, ending with the final one.
    pub fn events(self: &Arc<Self>) -> impl Stream<Item = JobEvent> + Send + 'static + use<> {
        let (replay, rx) = {
            let inner = self.lock();
            (inner.history.clone(), self.events.subscribe())
        };
        struct Follow {
            replay: VecDeque<JobEvent>,
            rx: broadcast::Receiver<JobEvent>,
            job: Arc<Job>,
        }
        let start = Follow {
            replay,
            rx,
            job: self.clone(),
        };
        futures::stream::unfold(Some(start), |state| async move {
            let mut s = state?;
            let event = match s.replay.pop_front() {
                Some(event) => event,
                None => loop {
                    match s.rx.recv().await {
                        Ok(event) => break event,
                        // A watcher that fell behind misses progress, never the end.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => {
                            let last = s.job.lock().history.back().cloned();
                            return last.filter(JobEvent::is_final).map(|e| (e, None));
                        }
                    }
                },
            };
            let next = if event.is_final() { None } else { Some(s) };
            Some((event, next))
        })
    }

    /// Waits for the job's outcome.
    pub async fn outcome(self: &Arc<Self>) -> JobOutcome {
        use futures::StreamExt;
        let events = self.events();
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            if let JobEvent::Finished(outcome) = event {
                return outcome;
            }
        }
        Err((
            ErrorKind::Internal,
            format!("operation {} ended without an outcome", self.id),
        ))
    }
}

/// The node's jobs: every running one and the last [`KEEP_FINISHED`] finished.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<BTreeMap<i64, Arc<Job>>>,
}

impl Jobs {
    fn insert(&self, job: Arc<Job>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.insert(job.id, job);
        let finished: Vec<i64> = jobs
            .values()
            .filter(|j| j.state() != JobState::Running)
            .map(|j| j.id)
            .collect();
        for id in finished
            .iter()
            .take(finished.len().saturating_sub(KEEP_FINISHED))
        {
            jobs.remove(id);
        }
    }

    pub fn get(&self, id: i64) -> Option<Arc<Job>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(&id).cloned()
    }

    fn running(&self) -> Vec<Arc<Job>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.values()
            .filter(|j| j.state() == JobState::Running)
            .cloned()
            .collect()
    }
}

impl Node {
    /// Records `request` as a queued operation and runs it as a task of the node: it
    /// finishes whether or not the caller stays. Fails only when it cannot be recorded.
    pub async fn start_job(self: &Arc<Self>, request: JobRequest) -> Result<Arc<Job>, NodeError> {
        let kind = request.kind();
        let id = db::queue_operation(&self.db, request.app(), kind.as_str(), "queued").await?;
        let job = Job::new(id, kind.as_str(), request.app());
        self.jobs.insert(job.clone());
        let node = self.clone();
        let running = job.clone();
        tokio::spawn(async move {
            let sink = |p: Progress| running.progress(p);
            let run = std::panic::AssertUnwindSafe(node.run_job(&request, id, &sink));
            let outcome = match run.catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => {
                    error!(operation = id, "operation panicked");
                    Err(NodeError::new(
                        ErrorKind::Internal,
                        format!("operation {id} failed unexpectedly; the node's log has more"),
                    ))
                }
            };
            // An operation that never began has no guard to record its outcome.
            let failure = outcome
                .as_ref()
                .err()
                .map(|e| (e.kind.as_str(), e.message.as_str()));
            if let Err(e) = db::finish_unstarted_operation(&node.db, id, failure).await {
                warn!(operation = id, error = %e, "cannot record the operation's outcome");
            }
            running.finish(outcome.map_err(|e| (e.kind, e.message)));
        });
        Ok(job)
    }

    /// A job of this node, running or recently finished.
    pub fn job(&self, id: i64) -> Option<Arc<Job>> {
        self.jobs.get(id)
    }

    /// The jobs still running.
    pub fn running_jobs(&self) -> Vec<Arc<Job>> {
        self.jobs.running()
    }

    /// Waits until no job runs (at shutdown: each finishes or records its outcome).
    pub async fn jobs_finished(&self) {
        loop {
            let running = self.running_jobs();
            if running.is_empty() {
                return;
            }
            futures::future::join_all(running.iter().map(|j| j.outcome())).await;
        }
    }

    async fn run_job(
        &self,
        request: &JobRequest,
        queued: i64,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<serde_json::Value, NodeError> {
        let q = Some(queued);
        let app = |view: super::AppView| {
            serde_json::to_value(view)
                .map_err(|e| NodeError::new(ErrorKind::Internal, e.to_string()))
        };
        match request {
            JobRequest::Install {
                id,
                with_dependencies: false,
            } => app(self.install_as(q, id, progress).await?),
            JobRequest::Install {
                id,
                with_dependencies: true,
            } => app(self.install_with_dependencies_as(q, id, progress).await?),
            JobRequest::MarketInstall {
                app: listed,
                publisher,
                approve,
            } => app(self
                .install_listing_as(q, listed, publisher.as_deref(), *approve, progress)
                .await?),
            JobRequest::Update { id, approve } => {
                app(self.update_as(q, id, *approve, progress).await?)
            }
            JobRequest::Uninstall { id, purge } => {
                self.uninstall_as(q, id, *purge).await?;
                Ok(json!({ "uninstalled": id, "purged": purge }))
            }
            JobRequest::Start { id } => app(self.start_app_as(q, id).await?),
            JobRequest::Stop { id } => app(self.stop_app_as(q, id).await?),
            JobRequest::Restart { id } => app(self.restart_app_as(q, id).await?),
        }
    }
}

/// How many finished operations `GET /v1/operations` lists beside the running ones.
pub const LIST_FINISHED: u32 = 50;

/// How often re-attaching to an operation without events in memory looks at its record.
const POLL_RECORD: std::time::Duration = std::time::Duration::from_millis(500);

fn view(row: db::OperationRow) -> Option<archy_api::OperationView> {
    Some(archy_api::OperationView {
        id: u64::try_from(row.id).ok()?,
        app: row.app_id,
        kind: archy_api::OperationKind::parse(&row.kind)?,
        state: archy_api::OperationState::parse(&row.status)?,
        stage: row.stage,
        started_at: row.started_at,
        finished_at: row.finished_at,
        error: row.error,
        error_kind: row.error_kind.as_deref().and_then(ErrorKind::parse),
    })
}

impl Node {
    /// Running operations and the last [`LIST_FINISHED`] finished, newest first.
    pub async fn operations(&self) -> Result<Vec<archy_api::OperationView>, NodeError> {
        Ok(db::operations(&self.db, LIST_FINISHED)
            .await?
            .into_iter()
            .filter_map(view)
            .collect())
    }

    /// One operation's record.
    pub async fn operation(&self, id: i64) -> Result<archy_api::OperationView, NodeError> {
        let row = db::operation(&self.db, id).await?.ok_or_else(|| {
            NodeError::new(
                ErrorKind::NotFound,
                format!("no operation {id} on this node"),
            )
        })?;
        view(row).ok_or_else(|| {
            NodeError::new(
                ErrorKind::Internal,
                format!("operation {id}'s record has a kind or state this node does not know"),
            )
        })
    }

    /// An operation's events: a job's history and what follows; for an operation whose
    /// events this node no longer holds (finished before a restart, or long ago), its
    /// outcome once its record has one.
    pub async fn operation_events(
        self: &Arc<Self>,
        id: i64,
    ) -> Result<futures::stream::BoxStream<'static, JobEvent>, NodeError> {
        use futures::StreamExt;
        if let Some(job) = self.job(id) {
            return Ok(job.events().boxed());
        }
        self.operation(id).await?;
        let node = self.clone();
        let last = async move {
            loop {
                let view = match node.operation(id).await {
                    Ok(view) => view,
                    Err(e) => return JobEvent::Finished(Err((e.kind, e.message))),
                };
                if view.state != archy_api::OperationState::Running {
                    return JobEvent::Finished(node.recorded_outcome(&view).await);
                }
                tokio::time::sleep(POLL_RECORD).await;
            }
        };
        Ok(futures::stream::once(last).boxed())
    }

    /// The outcome of a finished operation, from its record.
    async fn recorded_outcome(&self, view: &archy_api::OperationView) -> JobOutcome {
        use archy_api::{OperationKind as K, OperationState as S};
        let id = view.id;
        match view.state {
            S::Succeeded => match view.kind {
                K::Uninstall | K::Purge => Ok(json!({
                    "uninstalled": view.app,
                    "purged": view.kind == K::Purge,
                })),
                _ => match self.app(&view.app).await {
                    Ok(app) => {
                        serde_json::to_value(app).map_err(|e| (ErrorKind::Internal, e.to_string()))
                    }
                    Err(e) => Err((
                        e.kind,
                        format!("operation {id} succeeded; the app now: {}", e.message),
                    )),
                },
            },
            S::Interrupted => Err((
                ErrorKind::Unavailable,
                format!(
                    "operation {id} was interrupted: {}",
                    view.error.as_deref().unwrap_or("the node stopped")
                ),
            )),
            S::Failed | S::Running => Err((
                view.error_kind.unwrap_or(ErrorKind::Internal),
                view.error
                    .clone()
                    .unwrap_or_else(|| format!("operation {id} failed")),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use archy_orchestrator::Stage;
    use futures::StreamExt;

    use super::*;

    fn step(n: u64) -> JobEvent {
        JobEvent::Progress(Progress::new(Stage::Fetching, n, 1000, "image"))
    }

    #[test]
    fn the_history_is_bounded_and_always_ends_with_the_outcome() {
        let job = Job::new(7, "install", "hello");
        for n in 0..1000 {
            job.push(step(n));
        }
        job.finish(Ok(json!({"id": "hello"})));
        // Nothing after the end.
        job.push(step(5000));
        job.finish(Err((ErrorKind::Internal, "late".into())));
        let (history, dropped) = job.history();
        assert_eq!(history.len(), HISTORY);
        assert_eq!(dropped, 1000 + 1 - HISTORY as u64);
        assert_eq!(history[HISTORY - 2], step(999));
        assert_eq!(
            history.last(),
            Some(&JobEvent::Finished(Ok(json!({"id": "hello"}))))
        );
        assert_eq!(job.state(), JobState::Succeeded);
        assert_eq!(
            history.last().unwrap().to_json(),
            json!({"result": {"id": "hello"}})
        );
        assert_eq!(
            JobEvent::Finished(Err((ErrorKind::Conflict, "taken".into()))).to_json(),
            json!({"error": "taken", "kind": "conflict"})
        );
    }

    #[tokio::test]
    async fn a_watcher_gets_the_replay_then_follows_to_the_end() {
        let job = Job::new(1, "install", "hello");
        job.push(step(1));
        job.push(step(2));
        let early = job.events();
        job.push(step(3));
        let late_job = job.clone();
        let producer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            late_job.push(step(4));
            late_job.finish(Err((ErrorKind::Refused, "unhealthy".into())));
        });
        let seen: Vec<JobEvent> = early.collect().await;
        producer.await.unwrap();
        let want = vec![
            step(1),
            step(2),
            step(3),
            step(4),
            JobEvent::Finished(Err((ErrorKind::Refused, "unhealthy".into()))),
        ];
        assert_eq!(seen, want, "the early watcher missed or repeated an event");
        // A watcher that comes after the end gets the whole history and stops.
        let after: Vec<JobEvent> = job.events().collect().await;
        assert_eq!(after, want);
        assert_eq!(
            job.outcome().await,
            Err((ErrorKind::Refused, "unhealthy".into()))
        );
        assert_eq!(job.state(), JobState::Failed);
    }

    #[tokio::test]
    async fn a_slow_watcher_skips_progress_but_never_the_outcome() {
        let job = Job::new(2, "update", "hello");
        let slow = job.events();
        for n in 0..(BROADCAST as u64 * 3) {
            job.push(step(n));
        }
        job.finish(Ok(json!(null)));
        let seen: Vec<JobEvent> = slow.collect().await;
        assert!(seen.len() < BROADCAST * 3, "nothing was skipped");
        assert_eq!(seen.last(), Some(&JobEvent::Finished(Ok(json!(null)))));
    }

    #[test]
    fn the_registry_keeps_running_jobs_and_the_newest_finished() {
        let jobs = Jobs::default();
        let running = Job::new(1, "install", "a");
        jobs.insert(running.clone());
        for id in 2..(KEEP_FINISHED as i64 + 12) {
            let job = Job::new(id, "start", "b");
            job.finish(Ok(json!(null)));
            jobs.insert(job);
        }
        let kept = jobs.jobs.lock().unwrap().len();
        assert_eq!(kept, KEEP_FINISHED + 1);
        assert!(jobs.get(1).is_some(), "a running job was dropped");
        assert!(jobs.get(2).is_none(), "the oldest finished job was kept");
        assert!(jobs.get(KEEP_FINISHED as i64 + 11).is_some());
    }
}
