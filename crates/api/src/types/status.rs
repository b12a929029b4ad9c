//! The node's status and the swarm's figures.

use super::*;

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
