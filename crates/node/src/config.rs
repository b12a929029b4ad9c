//! Node configuration: a TOML file whose every field has an embedded default.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Where the node keeps sqlite, blobs, keys and app data.
    pub data_dir: PathBuf,
    /// HTTP API, loopback only by default: it can install software.
    pub api_listen: SocketAddr,
    /// The origin's base URL; the catalog comes from `<origin>/v1/catalog`.
    pub origin: Option<String>,
    /// The pinned trust anchor: a signed root envelope file. Never learned from the network.
    pub pinned_root: Option<PathBuf>,
    /// A developer's node: it serves the artifacts of its publications (with
    /// `blobs_listen`) and installs nothing, so it needs no pinned root and no origin
    /// (`pinned_root` must then be unset). See docs/developer.md.
    pub publish_only: bool,
    /// A node that installs nothing and needs no Podman, but pins a root, pulls and
    /// verifies the catalog, fetches the artifacts it names (`archy swarm fetch`) and
    /// serves them to peers: a seed or cache for the swarm, and the fleet harness's nodes
    /// (scripts/fleet.sh). Its data dir must hold no installed app.
    pub fetch_only: bool,
    /// Seconds between catalog pulls.
    pub pull_interval_seconds: u64,
    /// The rootless Podman service socket.
    pub podman_url: String,
    /// Address app ports are published on.
    pub publish_address: IpAddr,
    /// UDP address of the iroh endpoint (`0.0.0.0:PORT` for a node others reach from
    /// outside this machine).
    pub iroh_bind: SocketAddr,
    /// Which iroh relay servers the endpoint uses, so nodes behind home NATs reach each
    /// other (hole punched, or relayed): `"disabled"` (the default: direct addresses only,
    /// for tests and air-gapped sites), `"default"` (the public relays of iroh's
    /// maintainers), or the operator's own, `["https://relay.example:443", …]`
    /// (`archy relay run`). See DESIGN "Reaching nodes behind NATs".
    pub relay_mode: archy_swarm::RelayMode,
    /// A PEM file of CA certificates trusted for the iroh relays' HTTPS (`relay_mode`)
    /// besides the public web roots, for an own relay whose certificate comes from a private
    /// CA. (The Nostr relays' are `relay_ca_certs`.)
    pub iroh_relay_ca_file: Option<PathBuf>,
    /// Warn this many days before the catalog expires.
    pub expiry_warning_days: i64,
    /// Most root versions walked in one pull (N+1, N+2, … each double-signed).
    pub max_root_rotations: u64,
    /// Seconds between reconciler passes (desired state vs Podman).
    pub reconcile_interval_seconds: u64,
    /// Nostr relays (ws:// or wss://) to discover third-party apps on.
    pub relays: Vec<String>,
    /// PEM files of certificate authorities a `wss://` Nostr relay's certificate may chain
    /// to, beside the public web roots (a private relay, a test CA). See docs/developer.md.
    /// (The iroh relays' are `iroh_relay_ca_file`.)
    pub relay_ca_certs: Vec<PathBuf>,
    /// The operator's own Nostr keys (npub or hex): the roots of the web of trust that
    /// scores third-party publishers.
    pub trusted_keys: Vec<String>,
    /// Publishers scoring below this (0..100) need explicit approval to install.
    pub market_min_score: u8,
    /// The outbox model (NIP-65): besides `relays`, a publisher the operator key follows,
    /// or whose score reaches `market_min_score`, is also fetched from the write relays its
    /// kind-10002 list names, at most this many per publisher (0: never).
    pub outbox_relays_per_publisher: usize,
    /// At most this many such relays in one discovery pass, all publishers together.
    pub outbox_relays_total: usize,
    /// Take announced relays on loopback, private or link-local addresses (a test, a relay
    /// on the operator's LAN). Off by default: a publisher cannot point the node at them.
    pub outbox_allow_private: bool,
    /// Other nodes to fetch blobs from (and ask for the catalog while the origin is down):
    /// `[[static_peers]]` with `id` (iroh endpoint id), `addrs` (["ip:port", …]) and
    /// optionally `relay_url` (the relay the peer is reachable through).
    pub static_peers: Vec<archy_swarm::PeerAddr>,
    /// Find other nodes on the local network over mDNS. Off by default: it multicasts.
    pub local_discovery: bool,
    /// How much time peers may cost a fetch (failed attempts, stalls, slowness) before
    /// the origin takes over: a fetch finishes within the origin-only time plus this.
    pub detour_budget_seconds: u64,
    /// The pace a peer must keep (bytes per second) for its time to count as progress, not
    /// as detour: about what the origin would send this node (default 1 MiB/s). Lower it
    /// where the origin itself is slower; a peer that falls behind it by seconds rests.
    pub min_peer_rate_bytes_per_sec: u64,
    /// Caps what this node serves to other nodes, in bytes per second, all of them together
    /// (over iroh and `blobs_listen`'s verified transfers, `/v1/swarm/get`; the plain
    /// whole-file `GET /v1/blobs/{hash}` and the catalog relay are not capped). Unset: no
    /// cap. On a home link set it a little below the uplink (e.g. 90%): a full uplink
    /// queues the acknowledgements of the node's own downloads behind what it serves, and
    /// its downloads slow to a crawl.
    pub upload_limit_bytes_per_sec: Option<u64>,
    /// Where to serve this node's blobs over HTTP (read-only: blobs and the swarm address),
    /// for peers and as a developer's origin. Off unless set.
    pub blobs_listen: Option<SocketAddr>,
    /// Host names (with or without port) the API answers to besides loopback names and
    /// `api_listen`'s address, e.g. `["archy.lan"]`. Any other `Host` is refused, so a web
    /// page cannot reach the API through DNS rebinding.
    pub api_hosts: Vec<String>,
    /// Largest artifact a developer may upload for publication, in MiB.
    pub max_upload_mib: u64,
    /// On SIGTERM or SIGINT, how long running operations may take to finish before the
    /// node exits anyway (non-zero; an abandoned operation is recovered at the next start).
    /// Open streams (progress, followed logs) are cut at this bound too.
    pub shutdown_grace_seconds: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            origin: None,
            pinned_root: None,
            publish_only: false,
            fetch_only: false,
            pull_interval_seconds: 300,
            podman_url: archy_orchestrator::default_podman_url(),
            publish_address: IpAddr::from([0, 0, 0, 0]),
            iroh_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            relay_mode: archy_swarm::RelayMode::Disabled,
            iroh_relay_ca_file: None,
            expiry_warning_days: 7,
            max_root_rotations: 32,
            reconcile_interval_seconds: 30,
            relays: Vec::new(),
            relay_ca_certs: Vec::new(),
            trusted_keys: Vec::new(),
            static_peers: Vec::new(),
            local_discovery: false,
            detour_budget_seconds: 10,
            min_peer_rate_bytes_per_sec: archy_swarm::FetchPolicy::default().min_rate_bytes_per_sec,
            upload_limit_bytes_per_sec: None,
            market_min_score: 50,
            outbox_relays_per_publisher: 2,
            outbox_relays_total: 8,
            outbox_allow_private: false,
            blobs_listen: None,
            api_hosts: Vec::new(),
            max_upload_mib: 4096,
            shutdown_grace_seconds: 30,
        }
    }
}

/// `ARCHY_DATA_DIR`, else the XDG data dir: the node and the CLI (which reads the API token
/// there) agree on it without flags.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARCHY_DATA_DIR") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("XDG_DATA_HOME") {
        Some(dir) => PathBuf::from(dir).join("archy"),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".local/share/archy"),
            None => PathBuf::from("/var/lib/archy"),
        },
    }
}

impl NodeConfig {
    /// Reads a config file; relative paths in it are taken from the file's directory.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut config: NodeConfig =
            toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.data_dir = base.join(&config.data_dir);
        config.pinned_root = config.pinned_root.map(|p| base.join(p));
        config.relay_ca_certs = config.relay_ca_certs.iter().map(|p| base.join(p)).collect();
        config.iroh_relay_ca_file = config.iroh_relay_ca_file.map(|p| base.join(p));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_taken_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "data_dir = \"state\"\npinned_root = \"root.json\"\norigin = \"http://127.0.0.1:7780\"\nrelay_ca_certs = [\"ca.pem\", \"/etc/ca.pem\"]\n").unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.data_dir, dir.path().join("state"));
        assert_eq!(
            config.relay_ca_certs,
            vec![dir.path().join("ca.pem"), PathBuf::from("/etc/ca.pem")]
        );
        assert_eq!(config.pinned_root, Some(dir.path().join("root.json")));
        assert_eq!(
            config.api_listen.ip(),
            std::net::IpAddr::from([127, 0, 0, 1]),
            "API must default to loopback"
        );
    }

    /// The developer config the docs show is one the node takes, and it is publish-only.
    #[test]
    fn the_documented_developer_config_loads_publish_only() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/developer-node.toml");
        let config = NodeConfig::load(&path).unwrap();
        assert!(config.publish_only);
        assert_eq!(config.pinned_root, None);
        assert_eq!(config.origin, None);
        assert_eq!(
            config.blobs_listen,
            Some(SocketAddr::from(([0, 0, 0, 0], 7880)))
        );
        assert_eq!(config.relays, vec!["wss://relay.example.org".to_owned()]);
        assert!(config.api_listen.ip().is_loopback());
    }

    #[test]
    fn relays_are_off_unless_configured_and_static_peers_may_name_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "origin = \"http://127.0.0.1:7780\"\n").unwrap();
        assert_eq!(
            NodeConfig::load(&path).unwrap().relay_mode,
            archy_swarm::RelayMode::Disabled
        );
        std::fs::write(
            &path,
            "relay_mode = [\"https://relay.example:443\"]\n\
             [[static_peers]]\n\
             id = \"ab\"\n\
             addrs = []\n\
             relay_url = \"https://relay.example:443\"\n\
             [[static_peers]]\n\
             id = \"cd\"\n\
             addrs = [\"10.0.0.2:4433\"]\n",
        )
        .unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.relay_mode.to_string(), "https://relay.example/");
        assert_eq!(
            config.static_peers[0].relay_url.as_deref(),
            Some("https://relay.example:443")
        );
        assert_eq!(config.static_peers[1].relay_url, None);
        std::fs::write(&path, "relay_mode = [\"https://u:p@relay.example\"]\n").unwrap();
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(err.contains("userinfo"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "orgin = \"http://x\"\n").unwrap();
        let err = format!("{:#}", NodeConfig::load(&path).unwrap_err());
        assert!(err.contains("orgin"), "{err}");
    }
}
