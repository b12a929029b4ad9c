//! Every body the API takes or gives, exactly as it is on the wire: field names, their
//! order (kept so `--json` output reads the same), `null` for absent optional values, enums
//! as snake_case strings, timestamps as RFC 3339 strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Implements `as_str` and a padding-aware `Display` (so `{:<9}` lines up) for a unit enum.
macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
        /// Compares with the wire name, so `state == "running"` reads as the JSON does.
        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

// ---- node status ------------------------------------------------------------------------

/// `GET /v1/status`: the node's trust state, catalog freshness, swarm totals and alarms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// The node's iroh endpoint id.
    pub endpoint_id: String,
    /// Version of the pinned (or rotated-to) root.
    pub root_version: u64,
    /// The verified catalog, `null` before the first accepted pull.
    pub catalog: Option<CatalogView>,
    pub last_pull: PullStatus,
    /// Newest first, at most 50.
    pub alarms: Vec<Alarm>,
    pub podman_url: String,
    pub swarm: SwarmMetrics,
    /// Where this node serves its blobs over HTTP (for peers, and as a developer's origin).
    pub blobs_url: Option<String>,
    /// Which resource limits this host's Podman enforces, and why not the others.
    pub resource_limits: LimitSupport,
}

/// The node's verified catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogView {
    pub version: u64,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub expires: String,
    pub expired: bool,
    pub days_left: i64,
    /// The origin's HTTP URL the catalog names.
    pub origin: String,
    /// Versions accepted without a checked link in the hash chain (the origin no longer had
    /// them); a gap the node could fetch and verify counts 0.
    pub missed_versions: u64,
    /// Set when the catalog expires within the warning window, or has expired.
    pub warning: Option<String>,
}

/// Result of the last catalog pull.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PullStatus {
    /// RFC 3339; `null` before the first pull.
    #[schema(format = DateTime)]
    pub at: Option<String>,
    pub ok: bool,
    pub message: String,
}

/// Something the operator must know about (equivocation, a broken chain, a rotated root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Alarm {
    /// e.g. `equivocation`, `chain-broken`, `root-rotation`, `pinned-root-replaced`.
    pub kind: String,
    pub message: String,
    pub raised_at: String,
}

/// Which resource limits the host's rootless Podman enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LimitSupport {
    pub memory: bool,
    pub cpu: bool,
    pub pids: bool,
    /// Why the unenforced ones are not; empty when all are enforced.
    pub reason: String,
}

// ---- swarm --------------------------------------------------------------------------------

/// `GET /v1/swarm`: traffic by source, fallbacks, strikes, peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SwarmStatus {
    pub endpoint_id: String,
    pub metrics: SwarmMetrics,
    pub strikes: Vec<Strike>,
    /// Static and local-network peers (tracker peers are asked per blob).
    pub peers: Vec<PeerAddr>,
    pub blobs_url: Option<String>,
    /// The relay server others reach this node through, once it is connected to one
    /// (`relay_mode` not disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
}

/// Totals since the node started, and the same per hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SwarmMetrics {
    /// Verified payload bytes received over iroh, from the origin and from peers.
    pub bytes_from_iroh: u64,
    /// Verified bytes received over HTTP (always from the origin).
    pub bytes_from_http: u64,
    /// Fetches that fell back from iroh to the origin's HTTP.
    pub http_fallbacks: u64,
    /// Downloads or ranges refused because their bytes did not match the hash or size.
    pub verification_failures: u64,
    pub bytes_from_origin_iroh: u64,
    pub bytes_from_peers: u64,
    pub bytes_served_iroh: u64,
    pub bytes_served_http: u64,
    pub fallbacks: FallbackCounts,
    /// Strikes given to peers for bad data.
    pub strikes: u64,
    /// Fetches that waited for a concurrent fetch of the same hash instead of downloading.
    pub coalesced_fetches: u64,
    /// Time charged to detour budgets (failed peer attempts and fallback jitter).
    pub detour_ms: u64,
    /// The same counters per hash (BLAKE3 hex), for the most recently active hashes.
    pub per_hash: BTreeMap<String, HashMetrics>,
}

/// The counters kept for one hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HashMetrics {
    pub bytes_from_origin_iroh: u64,
    pub bytes_from_origin_http: u64,
    pub bytes_from_peers: u64,
    pub bytes_served_iroh: u64,
    pub bytes_served_http: u64,
    pub fallbacks: FallbackCounts,
    pub verification_failures: u64,
    pub strikes: u64,
}

/// Fallbacks counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FallbackCounts {
    pub peer_connect: u64,
    pub peer_stall: u64,
    pub peer_slow: u64,
    pub peer_bad_data: u64,
    pub peer_missing: u64,
    pub peer_error: u64,
    pub origin_iroh_failed: u64,
}

impl FallbackCounts {
    /// Each reason with its count, in wire order.
    pub fn by_reason(&self) -> [(&'static str, u64); 7] {
        [
            ("peer_connect", self.peer_connect),
            ("peer_stall", self.peer_stall),
            ("peer_slow", self.peer_slow),
            ("peer_bad_data", self.peer_bad_data),
            ("peer_missing", self.peer_missing),
            ("peer_error", self.peer_error),
            ("origin_iroh_failed", self.origin_iroh_failed),
        ]
    }
}

/// A peer caught sending bytes that do not verify against a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Strike {
    /// The blob (hex) the peer lied about; it is never asked for it again.
    pub hash: String,
    /// The peer's endpoint id.
    pub peer: String,
    pub detail: String,
}

/// Where to dial a swarm node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerAddr {
    /// Its iroh endpoint id.
    pub id: String,
    /// Socket addresses (`ip:port`).
    pub addrs: Vec<String>,
    /// The relay server it is reachable through, when it uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
}

// ---- catalog ------------------------------------------------------------------------------

/// An app of the verified catalog (`GET /v1/catalog/apps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogAppView {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub installed: bool,
    /// The version installed on this node, when it is.
    #[serde(default)]
    pub installed_version: Option<String>,
    /// What the app will be allowed to do on this host, from its signed manifest.
    pub permissions: Permissions,
}

/// What an app's manifest lets it do on the host: what an operator approves by installing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Permissions {
    pub containers: Vec<ContainerPermissions>,
    /// Other apps it needs (`id` and version range).
    pub dependencies: Vec<String>,
    /// Secrets the node generates for it on install.
    pub secrets: u32,
    /// Free disk it needs, in MiB.
    pub disk_mb: u64,
    /// Memory limit of each container, in MiB.
    pub memory_mb: Option<u64>,
    /// CPU limit of each container, in thousandths of a CPU.
    pub millicpus: Option<u32>,
    /// Process limit of each container (the node's default when `null`).
    pub pids_limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContainerPermissions {
    pub name: String,
    /// Host ports it publishes.
    pub ports: Vec<PortPermission>,
    /// Volumes in its own data, by mount path.
    pub volumes: Vec<VolumePermission>,
    /// Linux capabilities beyond none.
    pub capabilities: Vec<String>,
    /// Privileged: everything the Podman user can do.
    pub privileged: bool,
    /// Shares the host's network.
    pub host_network: bool,
    /// Sees the host's processes.
    pub host_pid: bool,
    /// Its root filesystem is read-only.
    pub read_only_root: bool,
    /// `uid[:gid]` it runs as, when the manifest says.
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortPermission {
    pub host: u16,
    pub container: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VolumePermission {
    pub name: String,
    pub path: String,
    pub read_only: bool,
}

/// `POST /v1/catalog/pull`: what the pull did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PullResponse {
    /// In words, for a person.
    pub result: String,
    /// A newer catalog was accepted.
    pub updated: bool,
    /// The catalog version the node holds now.
    pub version: u64,
    /// The version it held before, when it was updated from one.
    pub from: Option<u64>,
    /// Versions accepted without a checked link in the hash chain.
    pub missed: u64,
}

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

// ---- marketplace --------------------------------------------------------------------------

/// A verified publication the node knows: newest per publisher and app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketRow {
    /// The publisher's Nostr key (hex).
    pub author: String,
    pub app_id: String,
    pub event_id: String,
    /// Unix seconds of the Nostr event.
    pub created_at: i64,
    pub version: String,
    pub name: String,
    /// The publisher's did:key.
    pub did: String,
}

/// `POST /v1/market/discover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoverResponse {
    /// Publications listed after this pass.
    pub listed: u64,
    /// Events refused, with the reason (the first few).
    pub rejected: Vec<RejectedEvent>,
    /// Every event refused in this pass.
    pub rejected_total: u64,
    /// Refused events by category.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Distinct events examined.
    pub examined: u64,
    /// A relay had more events than one pass takes: older publications may be missing.
    pub truncated: bool,
    /// Relays that could not be asked, with the reason.
    pub relay_errors: Vec<RelayError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelayError {
    pub relay: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RejectedEvent {
    /// The Nostr event id.
    pub event: String,
    pub reason: String,
}

/// One publisher's listing of an app (`GET /v1/market/{app}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketDetail {
    pub listing: MarketRow,
    /// The id the app gets on this node (`<id>.<publisher key prefix>`); `null` when the
    /// publication does not verify.
    pub local_id: Option<String>,
    pub description: String,
    /// `passes`, or why the sandbox policy (or verification) refuses it.
    pub sandbox: String,
    pub origin: Option<String>,
    pub installed: bool,
    /// `null` until the publisher has been scored.
    pub score: Option<ScoreRow>,
    /// Below this score an install needs `approve`.
    pub threshold: u8,
    /// What the app will be allowed to do; `null` when the publication does not verify.
    #[serde(default)]
    pub permissions: Option<Permissions>,
}

/// A publisher's trust score with every term explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScoreRow {
    pub author: String,
    /// 0..=100.
    pub score: u8,
    /// The terms that make the score (the node sends `null` if it cannot read them).
    #[serde(deserialize_with = "null_as_empty")]
    pub explanation: Vec<ScoreTerm>,
    pub computed_at: String,
}

/// One reason in a score, with the points it adds (or removes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScoreTerm {
    pub points: i32,
    pub reason: String,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// `?publisher=…&approve=…&stream=…` of `POST /v1/market/{app}/install`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MarketInstallQuery {
    /// The publisher's Nostr key (hex, or a prefix of 4+ digits), when several list the app.
    #[serde(default)]
    pub publisher: Option<String>,
    /// The operator accepts a publisher below the trust threshold.
    #[serde(default)]
    pub approve: bool,
    /// Stream newline-delimited JSON progress events ([`OperationEvent`]).
    #[serde(default)]
    pub stream: bool,
}

/// A key the operator trusts (`GET /v1/trust/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustedKey {
    /// Nostr public key, hex.
    pub key: String,
    pub source: KeySource,
}

/// Where a trusted key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// `trusted_keys` in the node's config (removed there only).
    Config,
    /// Added through the API (`archy market trust add`).
    Cli,
}
wire_names!(KeySource { Config => "config", Cli => "cli" });

/// `POST /v1/trust/keys/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Trusted {
    /// The key, hex.
    pub trusted: String,
}

/// `DELETE /v1/trust/keys/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Untrusted {
    /// The key, hex.
    pub untrusted: String,
}

// ---- settings ----------------------------------------------------------------------------

/// `GET /v1/settings` (and the answer of `PUT /v1/settings`): what the node runs with now.
/// Values set through the API are kept in the node's database and override its config
/// file's, at start and at once when changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// The operator's trusted Nostr keys, changed through `/v1/trust/keys/{key}`.
    pub trusted_keys: Vec<TrustedKey>,
    /// Nostr relays (`ws://` or `wss://`, at most 16) third-party apps are discovered on.
    pub relays: Vec<String>,
    /// Publishers scoring below this (0..=100) need explicit approval to install.
    pub market_min_score: u8,
    /// Seconds between catalog pulls and marketplace discoveries (30..=86400).
    pub pull_interval_seconds: u64,
    /// The fields whose value was set through the API (the others come from the config file).
    #[serde(default)]
    pub overridden: Vec<String>,
}

/// `PUT /v1/settings`: the fields to change; absent fields keep their value. A refused
/// value answers `invalid` with a message that starts with the field's name (`relays: …`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relays: Option<Vec<String>>,
    /// 0..=100 (wider integers are refused by name, not by the JSON parser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_min_score: Option<i64>,
    /// 30..=86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_interval_seconds: Option<i64>,
}

// ---- publishing ---------------------------------------------------------------------------

/// `POST /v1/publish`: declare the artifacts a publication will upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginPublish {
    /// The manifest's app id.
    pub app: String,
    /// 1 to 16 artifacts.
    pub artifacts: Vec<DeclaredArtifact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclaredArtifact {
    pub name: String,
    /// Bytes, at least 1, at most the node's `max_upload_mib`.
    pub size: u64,
    /// BLAKE3 of the bytes, lowercase hex.
    pub blake3: String,
}

/// The session the uploads of a publication go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishSession {
    /// 32 hex digits.
    pub session: String,
    /// The session and its uploads are dropped after this.
    pub expires_in_seconds: u64,
}

/// `PUT /v1/publish/{session}/{artifact}`: the artifact as the node pinned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadedArtifact {
    pub blake3: String,
    pub size: u64,
}

/// `POST /v1/publish/{session}/finish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishFinished {
    pub finished: String,
}

/// `DELETE /v1/publish/{session}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishAborted {
    pub aborted: String,
}

/// The raw bytes of an artifact upload (`application/octet-stream`).
#[derive(Debug, Clone, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ArtifactBytes(pub Vec<u8>);
