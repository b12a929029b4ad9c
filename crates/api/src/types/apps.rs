//! Installed apps, their containers, health and logs, and operations with their progress.

use super::*;

// ---- apps ---------------------------------------------------------------------------------

/// An installed app (`GET /v1/apps/{id}`, and the result of every lifecycle operation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    /// The id on this node: a catalog id, or `<id>.<16 hex of the publisher's key>`.
    pub id: String,
    pub version: String,
    /// What the operator wants.
    pub desired: DesiredState,
    /// What Podman says, summarised.
    pub state: AppState,
    pub containers: Vec<ContainerRuntime>,
    /// The app's web UI, when it has one.
    pub url: Option<String>,
    /// Limits the manifest declares that this host does not enforce, in words.
    pub warnings: Vec<String>,
    /// Set when Podman did not answer: `containers` and `state` are as last seen, at this
    /// time (RFC 3339), or `unknown` when nothing was seen since the node started.
    #[serde(default)]
    pub stale_since: Option<String>,
    /// What the node's health loop last saw of each container with a health check.
    #[serde(default)]
    pub health: Vec<ContainerHealth>,
    /// Set for a third-party app: its publisher and what the publisher lists now (boxed:
    /// first-party apps, most of them, carry none).
    #[serde(default)]
    pub market: Option<Box<AppMarket>>,
}

/// A third-party app's publisher, and what its listings say now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppMarket {
    /// The publisher's Nostr key (hex).
    pub publisher: String,
    /// The publisher's did:key.
    pub did: String,
    /// The app's id in its publisher's listings.
    pub app_id: String,
    /// Set when the publisher withdrew the publication this app runs (NIP-09). The app
    /// keeps running; nothing new is installed from it.
    pub withdrawn: Option<Withdrawal>,
    /// A newer version its publisher lists: `archy app update` installs it.
    pub newer_version: Option<String>,
}

/// A publisher's NIP-09 deletion request that withdrew a publication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Withdrawal {
    /// The deletion request's Nostr event id.
    pub deletion: String,
    /// Unix seconds of the request.
    pub at: i64,
}

/// The health loop's view of one container: its manifest's check run at its interval
/// while the app runs; after `retries` failures in a row the node restarts it (backing off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContainerHealth {
    /// The container's name in the manifest.
    pub container: String,
    pub status: HealthStatus,
    /// When the check last ran (RFC 3339).
    pub last_checked: Option<String>,
    /// The last failed check: when (RFC 3339) and why.
    pub last_failure: Option<String>,
    /// How often the node restarted it for failing its check.
    pub restarts: u32,
}

/// The last health-check result of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
    /// Inside its start period, or not checked yet.
    Starting,
    /// Not checked: the manifest declares no health check, or the container does not run.
    None,
}
wire_names!(HealthStatus { Healthy => "healthy", Unhealthy => "unhealthy", Starting => "starting", None => "none" });

/// What the operator wants of an installed app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Stopped,
}
wire_names!(DesiredState { Running => "running", Stopped => "stopped" });

/// An installed app's state, from its containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// Every container runs.
    Running,
    /// No container runs.
    Stopped,
    /// Some run, some do not.
    Degraded,
    /// No container exists (the reconciler recreates them when the app is wanted running).
    Missing,
    /// The app's recorded manifest or publication no longer verifies.
    Unverifiable,
    /// Podman has not answered since the node started: nothing is known.
    Unknown,
}
wire_names!(AppState {
    Running => "running",
    Stopped => "stopped",
    Degraded => "degraded",
    Missing => "missing",
    Unverifiable => "unverifiable",
    Unknown => "unknown",
});

/// One of an app's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContainerRuntime {
    /// `archy-<app>-<container>`.
    pub name: String,
    pub state: ContainerState,
}

/// A container's state as Podman reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Stopping,
    Exited,
    Stopped,
    Dead,
    Unknown,
}
wire_names!(ContainerState {
    Created => "created",
    Running => "running",
    Paused => "paused",
    Stopping => "stopping",
    Exited => "exited",
    Stopped => "stopped",
    Dead => "dead",
    Unknown => "unknown",
});

/// `?container=…&tail=…&follow=…` of `GET /v1/apps/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The container's name in the manifest (`web`, not `archy-<app>-web`).
    pub container: String,
    /// How many of the last lines to send first (at most 10,000).
    #[serde(default = "default_tail")]
    pub tail: u32,
    /// Keep the stream open and send new lines as they come.
    #[serde(default)]
    pub follow: bool,
    /// Only lines written since then, to the second: an RFC 3339 time
    /// (`2030-01-01T12:00:00Z`) or a duration before now (`90s`, `10m`, `2h`, `7d`; at most
    /// 3650 days).
    #[serde(default)]
    pub since: Option<String>,
}

fn default_tail() -> u32 {
    200
}

/// One line of a container's log (`GET /v1/apps/{id}/logs`, NDJSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    pub container: String,
    /// The line, without its line break; cut (and marked) past 16 KiB.
    pub line: String,
}

/// `DELETE /v1/apps/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Uninstalled {
    pub uninstalled: String,
    /// Whether its volumes and secrets were deleted too.
    pub purged: bool,
}

/// Stages of an operation, in the order they happen; progress never goes back.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Checking,
    Fetching,
    Loading,
    Creating,
    Starting,
    WaitingForHealth,
    Finished,
}
wire_names!(Stage {
    Checking => "checking",
    Fetching => "fetching",
    Loading => "loading",
    Creating => "creating",
    Starting => "starting",
    WaitingForHealth => "waiting_for_health",
    Finished => "finished",
});

/// One progress event: `done` of `total` units (bytes while fetching, items otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
    /// The artifact, container or check the event is about.
    pub detail: String,
}

/// One line of a progress stream (`?stream=true`, `application/x-ndjson`): progress
/// events, then exactly one `{"result": app}` or `{"error": …, "kind": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OperationEvent {
    Progress { progress: Progress },
    Result { result: AppView },
    Error(ApiError),
}

/// `?stream=…&with_dependencies=…` of `POST /v1/apps/{id}/install`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstallQuery {
    /// Stream newline-delimited JSON progress events ([`OperationEvent`]) instead of
    /// answering with the app at the end.
    #[serde(default)]
    pub stream: bool,
    /// Also install the apps it depends on that are not installed yet.
    #[serde(default)]
    pub with_dependencies: bool,
}

/// `?approve=…` of `POST /v1/apps/{id}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateQuery {
    /// The operator accepts a third-party publisher below the trust threshold.
    #[serde(default)]
    pub approve: bool,
}

/// `?purge=…` of `DELETE /v1/apps/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UninstallQuery {
    /// Also delete the app's volumes and secrets.
    #[serde(default)]
    pub purge: bool,
}
