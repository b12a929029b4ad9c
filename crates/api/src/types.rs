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
    /// A publish-only node (`publish_only` in its config): it pins no root, pulls no
    /// catalog and installs nothing; it serves a developer's artifacts as their origin.
    #[serde(default)]
    pub publish_only: bool,
    /// Which resource limits this host's Podman enforces, and why not the others.
    pub resource_limits: LimitSupport,
    /// The last marketplace discovery, `null` before the first.
    #[serde(default)]
    pub market: Option<MarketStatus>,
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

/// `POST /v1/swarm/fetch/{hash}`: one artifact of the verified catalog fetched into the
/// store by the node's fetch policy (peers first, origin always wins), nothing installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SwarmFetch {
    pub hash: String,
    /// The size the catalog declares (and the store now holds).
    pub size: u64,
    /// Which catalog artifacts name this hash: `app/artifact`.
    pub named_by: Vec<String>,
    /// The store held it already; nothing moved.
    pub already_present: bool,
    /// Another fetch of the same hash on this node did the work.
    pub coalesced: bool,
    pub bytes_from_peers: u64,
    pub bytes_from_origin_iroh: u64,
    pub bytes_from_origin_http: u64,
    /// Each peer connection: UDP bytes received on direct paths (a public address or a
    /// punched hole) and through a relay.
    pub peer_paths: Vec<PeerPathBytes>,
    /// Providers left, in order, and why (`reason` as in `FallbackCounts`).
    pub fallbacks: Vec<FetchFallback>,
    /// Time charged to the detour budget.
    pub detour_ms: u64,
    /// Wall time of the fetch on the node.
    pub elapsed_ms: u64,
}

/// One peer connection of a fetch, by kind of path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerPathBytes {
    pub peer: String,
    pub direct_bytes: u64,
    pub relayed_bytes: u64,
}

/// A provider a fetch left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FetchFallback {
    pub provider: String,
    pub reason: String,
    pub detail: String,
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

impl Permissions {
    /// What the app may do on this host, one sentence each, for a person deciding to
    /// install it: the words the dashboard's store shows (`GET /v1/store`).
    pub fn in_words(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.containers {
            let name = &c.name;
            for p in &c.ports {
                let udp = if p.protocol == "udp" { "UDP " } else { "" };
                out.push(format!(
                    "opens {udp}port {} on this host (to its {name} container's {})",
                    p.host, p.container
                ));
            }
            for v in &c.volumes {
                let ro = if v.read_only { " (read-only)" } else { "" };
                out.push(format!("keeps data in a volume at {}{ro}", v.path));
            }
            for cap in &c.capabilities {
                out.push(format!("{name} has the Linux capability {cap}"));
            }
            if c.privileged {
                out.push(format!(
                    "runs {name} PRIVILEGED: it can do anything on this host"
                ));
            }
            if c.host_network {
                out.push(format!("{name} shares this host's network"));
            }
            if c.host_pid {
                out.push(format!("{name} sees every process on this host"));
            }
            if c.read_only_root {
                out.push(format!("{name} runs on a read-only root filesystem"));
            }
            if let Some(user) = &c.user {
                out.push(format!("{name} runs as user {user} inside its container"));
            }
        }
        for d in &self.dependencies {
            out.push(format!("needs the app {d}"));
        }
        if self.secrets > 0 {
            out.push(format!(
                "gets {} generated secret{}, kept on this node",
                self.secrets,
                if self.secrets == 1 { "" } else { "s" }
            ));
        }
        if let Some(mb) = self.memory_mb {
            out.push(format!("is limited to {mb} MiB of memory per container"));
        }
        if let Some(m) = self.millicpus {
            out.push(format!(
                "is limited to {} CPU per container",
                f64::from(m) / 1000.0
            ));
        }
        if let Some(n) = self.pids_limit {
            out.push(format!("is limited to {n} processes per container"));
        }
        if self.disk_mb > 0 {
            out.push(format!("needs {} MiB of free disk", self.disk_mb));
        }
        out
    }
}

/// `GET /v1/catalog/apps/{id}/plan`: what `POST /v1/apps/{id}/install?with_dependencies=true`
/// would install, in order, computed without doing anything (the install computes it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstallPlan {
    /// The app asked for, at the catalog's version.
    pub app: PlannedApp,
    /// The apps it needs that are not installed yet, each before the apps that need it;
    /// empty when everything it needs is installed (or it needs nothing).
    pub install_first: Vec<PlannedApp>,
    /// The catalog version the plan comes from.
    pub catalog_version: u64,
}

impl InstallPlan {
    /// The plan in one sentence: "installing X 1.0.0 will also install A 2.0.0, B 1.1.0".
    pub fn in_words(&self) -> String {
        let app = format!("{} {}", self.app.id, self.app.version);
        if self.install_first.is_empty() {
            return format!("installing {app} installs nothing else: what it needs is installed");
        }
        let others: Vec<String> = self
            .install_first
            .iter()
            .map(|a| format!("{} {}", a.id, a.version))
            .collect();
        format!("installing {app} will also install {}", others.join(", "))
    }
}

/// One app of an [`InstallPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlannedApp {
    pub id: String,
    pub name: String,
    pub version: String,
}

// ---- store ------------------------------------------------------------------------------

/// `GET /v1/store`: everything the dashboard's store shows, first-party catalog apps and
/// third-party listings, in one answer and with no further request per app. Built from
/// what the node holds (its verified catalog, its stored listings and scores, what Podman
/// last said), never by asking Podman or the relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreView {
    /// Publishers scoring below this (0..=100) need the operator's approval to install.
    pub threshold: u8,
    /// The verified catalog's version; `null` before the first accepted pull.
    pub catalog_version: Option<u64>,
    /// The verified catalog's apps, in catalog order.
    pub catalog: Vec<StoreApp>,
    /// Third-party publishers (a Nostr key and the DID it is bound to) with their listings,
    /// by key.
    pub publishers: Vec<StorePublisher>,
}

/// A first-party app of the verified catalog, as its store card shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreApp {
    pub id: String,
    pub name: String,
    pub version: String,
    /// The manifest's description, its first paragraph cut at 240 characters.
    pub summary: String,
    /// What it may do on this host, in words ([`Permissions::in_words`]).
    pub may: Vec<String>,
    /// The apps it needs (`id range`): installing it may install them first (see
    /// `GET /v1/catalog/apps/{id}/plan`).
    pub needs: Vec<String>,
    /// `null` when not installed.
    pub installed: Option<StoreInstalled>,
}

/// What is installed of a store entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreInstalled {
    pub version: String,
    /// What Podman last said of its containers (`unknown` when it has not listed them
    /// since the node started): the store never waits for Podman.
    pub state: AppState,
    /// The version an update would bring; `null` when it is current.
    pub update_to: Option<String>,
}

/// A third-party publisher and what it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StorePublisher {
    /// The Nostr key (hex): `publisher` of `POST /v1/market/{app}/install`.
    pub author: String,
    /// The did:key its publications are signed with.
    pub did: String,
    /// Its trust score, 0..=100; `null` until scored.
    pub score: Option<u8>,
    /// Every term of the score, with its points.
    pub terms: Vec<ScoreTerm>,
    /// When it was scored (RFC 3339).
    pub scored_at: Option<String>,
    /// Its listings, by app id.
    pub listings: Vec<StoreListing>,
}

/// One publisher's listing of an app, as its store card shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreListing {
    /// The app id its manifest names.
    pub app_id: String,
    /// The id it gets on this node (`<id>.<16 hex of the publisher's key>`); `null` when
    /// the publication does not verify.
    pub local_id: Option<String>,
    pub name: String,
    pub version: String,
    /// Unix seconds of the Nostr event.
    pub published_at: i64,
    /// The first paragraph of its description, cut at 240 characters; empty when the
    /// publication does not verify.
    pub summary: String,
    /// `passes`, or why the sandbox policy (or verification) refuses it.
    pub sandbox: String,
    /// Where its files come from (the publisher's origin).
    pub origin: Option<String>,
    /// What it may do on this host, in words; empty when it does not verify.
    pub may: Vec<String>,
    /// `null` when not installed.
    pub installed: Option<StoreInstalled>,
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
    /// Set when the publisher withdrew it (NIP-09): it cannot be installed. `GET
    /// /v1/market` lists only what is not withdrawn; `GET /v1/market/{app}` shows both.
    #[serde(default)]
    pub withdrawn: Option<Withdrawal>,
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
    /// Publications their publisher withdrew, found in this pass.
    #[serde(default)]
    pub withdrawn: u64,
    /// What each relay sent.
    #[serde(default)]
    pub relays: Vec<RelayReport>,
}

/// What one relay sent in a discovery pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelayReport {
    pub relay: String,
    /// Events new to the pass that this relay sent, examined.
    pub examined: u64,
    /// Of those, refused by the publication checks (DID signature, key binding, manifest).
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Events with a bad id or signature (forged), or unreadable: dropped unread.
    pub forged: u64,
    /// Requests that failed, or why the relay could not be asked.
    pub errors: Vec<String>,
}

/// The last marketplace discovery (`archy market status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketStatus {
    /// When the pass ended (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// Publications listed after it.
    pub listed: u64,
    /// Listings their publisher withdrew, kept to show.
    pub withdrawn: u64,
    /// A relay had more than one pass takes, or could not be asked: listings it did not
    /// see are kept.
    pub incomplete: bool,
    pub relays: Vec<RelayReport>,
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
    /// The version installed here from this publisher, when it is.
    #[serde(default)]
    pub installed_version: Option<String>,
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
    /// This node's own operator key (`GET /v1/operator`), trusted while it exists.
    Operator,
}
wire_names!(KeySource { Config => "config", Cli => "cli", Operator => "operator" });

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

// ---- the operator's own key: follows, endorsements, reports ---------------------------

/// `GET /v1/operator`: this node's own Nostr key (NIP-06), which signs the operator's
/// follows (kind 3), endorsements (NIP-32) and reports (NIP-56), and is always trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// `null` until the first follow, endorse or report creates it (or one is imported).
    pub key: Option<OperatorKeyView>,
    /// The keys this node's last published contact list follows, hex.
    pub follows: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperatorKeyView {
    pub npub: String,
    /// The public key, hex.
    pub hex: String,
    /// Where the node keeps the key's mnemonic (mode 0600): back it up to use the key in
    /// other Nostr clients.
    pub file: String,
}

/// `POST /v1/operator/key`: the operator's own mnemonic for this node's key (NIP-06,
/// account 0, no passphrase). Never logged; not shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportOperatorKey {
    /// 12 to 24 BIP39 words (English).
    pub mnemonic: String,
    /// Replace a key the node already holds (its follows, endorsements and reports stay
    /// with the old key on the relays; this node stops counting them).
    #[serde(default)]
    pub replace: bool,
}

impl std::fmt::Debug for ImportOperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOperatorKey")
            .field("mnemonic", &"<redacted>")
            .field("replace", &self.replace)
            .finish()
    }
}

/// `POST /v1/operator/follow` and `/v1/operator/unfollow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    /// A publisher: `npub1…`, 64 hex digits, or a did:key a listing binds to its Nostr key.
    pub target: String,
    /// Publish even when no relay answered for the current contact list (built on this
    /// node's own last copy, which may miss follows made elsewhere with the same key).
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/operator/endorse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndorseRequest {
    /// A publisher (`npub1…`, hex, did:key) or an app id a listing names (`notes`, or the
    /// local `notes.<16 hex>`).
    pub target: String,
    /// The publisher's key (hex or a prefix), when several list the app.
    #[serde(default)]
    pub publisher: Option<String>,
    /// Labels beside `endorse` in the `archy` namespace (1 to 32 of `a-z0-9-`, at most 8).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Why, in words (at most 1024 bytes).
    #[serde(default)]
    pub comment: String,
}

/// `POST /v1/operator/report`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// A publisher (`npub1…`, hex, did:key), a listing's event id (hex or `note1…`), or an
    /// app id (its listing is reported).
    pub target: String,
    /// The publisher's key (hex or a prefix), when several list the app.
    #[serde(default)]
    pub publisher: Option<String>,
    /// NIP-56 type: `malware`, `impersonation`, `illegal`, `spam`, `nudity`, `profanity`
    /// or `other`.
    pub reason: String,
    /// Why, in words (at most 1024 bytes).
    #[serde(default)]
    pub comment: String,
}

/// What a follow, unfollow, endorsement or report did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VouchResponse {
    pub action: VouchAction,
    /// The operator key that signed, `npub1…`.
    pub operator: String,
    /// The publisher it is about, hex.
    pub subject: String,
    /// The app it is about, if one.
    pub app: Option<String>,
    /// The event signed and sent; `null` when nothing had to change.
    pub event_id: Option<String>,
    /// 3 (contact list), 1984 (report) or 1985 (label).
    pub kind: u16,
    /// Follow and unfollow: each relay's answer to the request for the current contact list.
    pub fetched: Vec<RelayResult>,
    /// Each relay's answer to the event.
    pub published: Vec<RelayResult>,
    /// Follow and unfollow: the keys the contact list follows now.
    pub follows: Option<u64>,
    /// What happened, in words.
    pub note: String,
    /// The publisher's score after this, when it lists apps here.
    pub score: Option<ScoreRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VouchAction {
    Follow,
    Unfollow,
    Endorse,
    Report,
}
wire_names!(VouchAction { Follow => "follow", Unfollow => "unfollow", Endorse => "endorse", Report => "report" });

/// One relay's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelayResult {
    pub relay: String,
    pub ok: bool,
    /// The relay's message, or why it could not be asked.
    pub message: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body may be logged with `{:?}`; the operator's mnemonic must not be.
    #[test]
    fn an_imported_mnemonic_never_shows_in_debug() {
        let request = ImportOperatorKey {
            mnemonic: "leader monkey parrot ring".into(),
            replace: true,
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("monkey"), "{shown}");
        assert!(shown.contains("replace: true"), "{shown}");
        // On the wire it is what the node needs, and nothing else is accepted.
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["mnemonic"], "leader monkey parrot ring");
        assert!(
            serde_json::from_value::<ImportOperatorKey>(serde_json::json!({
                "mnemonic": "x", "passphrase": "y"
            }))
            .is_err()
        );
        assert_eq!(KeySource::Operator.as_str(), "operator");
        assert_eq!(
            serde_json::to_value(VouchAction::Unfollow).unwrap(),
            serde_json::json!("unfollow")
        );
    }

    #[test]
    fn permissions_in_words() {
        let p = Permissions {
            containers: vec![ContainerPermissions {
                name: "web".into(),
                ports: vec![
                    PortPermission {
                        host: 18080,
                        container: 8080,
                        protocol: "tcp".into(),
                    },
                    PortPermission {
                        host: 5353,
                        container: 53,
                        protocol: "udp".into(),
                    },
                ],
                volumes: vec![VolumePermission {
                    name: "data".into(),
                    path: "/data".into(),
                    read_only: true,
                }],
                capabilities: vec!["NET_BIND_SERVICE".into()],
                privileged: true,
                host_network: true,
                host_pid: true,
                read_only_root: true,
                user: Some("1000:1000".into()),
            }],
            dependencies: vec!["db ^2".into()],
            secrets: 1,
            disk_mb: 10,
            memory_mb: Some(32),
            millicpus: Some(500),
            pids_limit: Some(64),
        };
        assert_eq!(
            p.in_words(),
            [
                "opens port 18080 on this host (to its web container's 8080)",
                "opens UDP port 5353 on this host (to its web container's 53)",
                "keeps data in a volume at /data (read-only)",
                "web has the Linux capability NET_BIND_SERVICE",
                "runs web PRIVILEGED: it can do anything on this host",
                "web shares this host's network",
                "web sees every process on this host",
                "web runs on a read-only root filesystem",
                "web runs as user 1000:1000 inside its container",
                "needs the app db ^2",
                "gets 1 generated secret, kept on this node",
                "is limited to 32 MiB of memory per container",
                "is limited to 0.5 CPU per container",
                "is limited to 64 processes per container",
                "needs 10 MiB of free disk",
            ]
        );
        assert!(Permissions::default().in_words().is_empty());
    }

    #[test]
    fn a_plan_in_words() {
        let app = |id: &str, version: &str| PlannedApp {
            id: id.into(),
            name: id.into(),
            version: version.into(),
        };
        let mut plan = InstallPlan {
            app: app("web", "1.0.0"),
            install_first: vec![app("db", "2.3.0"), app("api", "1.2.0")],
            catalog_version: 4,
        };
        assert_eq!(
            plan.in_words(),
            "installing web 1.0.0 will also install db 2.3.0, api 1.2.0"
        );
        plan.install_first.clear();
        assert_eq!(
            plan.in_words(),
            "installing web 1.0.0 installs nothing else: what it needs is installed"
        );
    }
}
