//! The `archy` command line: the clap definitions of every command and the dispatcher that
//! hands each to its module. Client commands talk to the node only through the typed
//! [`archy_api::Client`]; what they print is in [`print`].
//!
//! - [`node`]: `node run`, `origin id`, `origin run`, `relay run` (the daemons);
//! - [`catalog`]: `catalog build` (publisher side), `catalog list`, `catalog pull`;
//! - [`app`]: installed apps, and `validate`, `render`, `publish` (developer side);
//! - [`market`]: third-party listings and the keys the operator trusts;
//! - [`vouch`]: the node's operator key, and its follows, endorsements and reports;
//! - [`swarm`], [`status`]: the node's swarm traffic and trust state;
//! - [`dev`]: the developer identity.

// First: its `outln!` is used by the modules after it.
#[macro_use]
mod print;

mod admin;
mod app;
mod catalog;
mod dev;
mod market;
mod node;
mod progress;
mod status;
mod swarm;
mod vouch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "archy",
    version,
    about = "Archipelago node: signed app catalogs, fetched over iroh, run in rootless Podman"
)]
pub struct Cli {
    /// The node's API, for the client commands.
    #[arg(
        long,
        global = true,
        env = "ARCHY_API",
        default_value = "http://127.0.0.1:7878"
    )]
    api: String,
    /// The node's API token, for the client commands (default: api.token in the node's
    /// data dir, `$ARCHY_DATA_DIR` or the XDG data dir).
    #[arg(long, global = true, env = "ARCHY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// The node daemon.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Serve a signed catalog and its artifacts.
    Origin {
        #[command(subcommand)]
        command: OriginCommand,
    },
    /// Run an iroh relay server for nodes behind NATs (iroh-relay's own server).
    Relay {
        #[command(subcommand)]
        command: RelayCommand,
    },
    /// Build catalogs (publisher side) or look at the node's.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Install and manage apps on the node.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// The node's trust state, catalog freshness and alarms.
    Status,
    /// Third-party apps discovered through Nostr relays.
    Market {
        #[command(subcommand)]
        command: MarketCommand,
    },
    /// The swarm: bytes from the origin and from peers, fallbacks, strikes, peers.
    Swarm {
        #[command(subcommand)]
        command: SwarmCommand,
    },
    /// Third-party developer identity: one mnemonic, a did:key and a Nostr key.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// The web dashboard's admin password.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

#[derive(Subcommand)]
pub enum MarketCommand {
    /// Verified publications the node knows, newest per publisher and app.
    List,
    /// Ask the configured relays now.
    Discover,
    /// The last discovery: what each relay sent (examined, refused, forged), its errors,
    /// and how many listings are withdrawn.
    Status,
    /// Each publisher's listing of an app: its local id, sandbox verdict and trust score,
    /// with every point explained.
    Show { app: String },
    /// The Nostr keys this node trusts: the roots its publisher scores start from.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Install a third-party app: sandboxed, under its publisher's namespace.
    Install {
        app: String,
        /// The publisher's Nostr key (hex or a prefix), when several list the app.
        #[arg(long)]
        publisher: Option<String>,
        /// Accept a publisher who scores below the node's threshold.
        #[arg(long)]
        approve: bool,
    },
    #[command(flatten)]
    Vouch(vouch::VouchCommand),
}

#[derive(Subcommand)]
pub enum SwarmCommand {
    /// Traffic by source (origin iroh/HTTP, peers) in total and per blob, fallbacks by
    /// reason, verification failures, strikes, known peers.
    Status,
    /// Fetch one artifact the verified catalog names into the store, by the fetch policy
    /// (peers first, origin always wins), without installing anything; prints where its
    /// bytes came from, and for each peer whether they came directly or through a relay.
    Fetch {
        /// The artifact's BLAKE3 hash (hex), as the catalog names it.
        hash: String,
    },
}

#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trusted keys, from the config and added here.
    List,
    /// Trust a key (npub1… or hex); scores are recomputed at the next discovery.
    Add {
        key: String,
    },
    Remove {
        key: String,
    },
}

#[derive(Subcommand)]
pub enum DevCommand {
    /// Create a new developer mnemonic (written 0600 to --out) and show its identities.
    Init {
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the did:key and Nostr key of a mnemonic (from --mnemonic-file or stdin, never argv).
    Show {
        #[arg(long)]
        mnemonic_file: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        index: u32,
    },
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Run the node: pull and verify the catalog, serve the API.
    Run {
        /// TOML config; every field has a default.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        api_listen: Option<SocketAddr>,
        /// Origin base URL.
        #[arg(long)]
        origin: Option<String>,
        /// Signed root envelope to pin as the trust anchor.
        #[arg(long)]
        pinned_root: Option<PathBuf>,
        /// A developer's node: no pinned root, no catalog, installs nothing; it serves the
        /// artifacts it publishes (with --blobs-listen).
        #[arg(long)]
        publish_only: bool,
        /// Install nothing and need no Podman: pull and verify the catalog, fetch its
        /// artifacts (`archy swarm fetch`) and serve them to peers (`fetch_only`).
        #[arg(long)]
        fetch_only: bool,
        /// Serve this node's blobs over HTTP here (a developer's origin), e.g. 0.0.0.0:7880.
        #[arg(long)]
        blobs_listen: Option<SocketAddr>,
        /// A Nostr relay to discover on and send the operator's vouches to (repeat for
        /// several; replaces the config's `relays`).
        #[arg(long = "relay")]
        relays: Vec<String>,
        #[arg(long)]
        podman_url: Option<String>,
        #[arg(long)]
        publish_address: Option<std::net::IpAddr>,
        #[arg(long)]
        pull_interval_seconds: Option<u64>,
    },
    /// Write systemd units that start the Podman user's API service and this node at boot
    /// (archy-podman.service, archy-node.service).
    InstallService {
        /// The node's TOML config (the units run `archy node run --config` with it).
        #[arg(long)]
        config: PathBuf,
        /// Where the unit files go.
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: PathBuf,
        /// The unprivileged user that owns rootless Podman.
        #[arg(long, default_value = "archy-podman")]
        podman_user: String,
        /// The user the node runs as (default: the Podman user).
        #[arg(long)]
        node_user: Option<String>,
        /// Print the units instead of writing them.
        #[arg(long)]
        print: bool,
    },
}

#[derive(Subcommand)]
pub enum OriginCommand {
    /// Print the origin's iroh endpoint id (creating its key on first use).
    Id {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Serve the signed catalog over HTTP and its artifacts over iroh-blobs.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
        /// The signed catalog envelope.
        #[arg(long)]
        catalog: PathBuf,
        /// Directory of artifacts: <dir>/<app>/<artifact>.tar
        #[arg(long)]
        artifacts: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7780")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:0")]
        iroh_bind: SocketAddr,
        /// Directory of signed root envelopes after the first (rotations), served by version.
        #[arg(long)]
        roots: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum RelayCommand {
    /// Serve as a relay until SIGINT or SIGTERM. Nodes use it with
    /// `relay_mode = ["https://HOST:PORT"]` in their config. Choose --http-only or
    /// --tls-cert/--tls-key.
    #[command(group(clap::ArgGroup::new("transport").required(true).args(["http_only", "tls_cert"])))]
    Run {
        /// The plain-HTTP listener: the relay itself with --http-only, otherwise only the
        /// captive-portal probe iroh clients send.
        #[arg(long, default_value = "0.0.0.0:3340")]
        bind: SocketAddr,
        /// Serve the relay without TLS: for a LAN, tests, or behind a TLS-terminating proxy.
        #[arg(long, conflicts_with_all = ["tls_cert", "tls_key", "https_bind", "quic_bind"])]
        http_only: bool,
        /// PEM certificate chain for HTTPS (read at start).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The HTTPS listener (default: --bind's IP, port 443).
        #[arg(long, requires = "tls_cert")]
        https_bind: Option<SocketAddr>,
        /// Also answer QUIC address discovery here (nodes ask port 7842); needs TLS.
        #[arg(long, requires = "tls_cert")]
        quic_bind: Option<SocketAddr>,
        /// Read at most this many bytes per second from one client (default: unlimited).
        #[arg(long)]
        client_rate: Option<std::num::NonZeroU32>,
    },
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Hash artifacts, embed manifests, write an unsigned catalog envelope.
    Build {
        #[arg(long, default_value = "apps")]
        apps: PathBuf,
        #[arg(long, default_value = "build/artifacts")]
        artifacts: PathBuf,
        #[arg(long)]
        origin_http: String,
        /// The origin's iroh endpoint id (`archy origin id`).
        #[arg(long)]
        origin_iroh: String,
        #[arg(long)]
        version: u64,
        #[arg(long, default_value_t = 30)]
        expires_in_days: i64,
        /// The previous signed catalog, chained by its BLAKE3.
        #[arg(long)]
        previous: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Apps in the node's verified catalog.
    List,
    /// Pull the catalog from the origin now.
    Pull,
}

#[derive(Subcommand)]
pub enum AppCommand {
    /// Fetch over iroh, verify, install into rootless Podman and start.
    Install {
        id: String,
        /// Also install the apps it depends on (at the catalog's versions) when missing;
        /// what that will install is printed first.
        #[arg(long)]
        with_deps: bool,
    },
    /// Installed apps.
    List,
    Status {
        id: String,
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
    /// Record again an app whose containers run but which this node forgot (its database
    /// was lost): first-party apps at the version the verified catalog lists. Installs nothing.
    Adopt {
        id: String,
    },
    /// A container's log: the last lines, and with -f new ones as they come.
    Logs {
        id: String,
        /// The container, as the manifest names it (default: the app's first container).
        #[arg(long)]
        container: Option<String>,
        /// How many of the last lines to print first.
        #[arg(long, default_value_t = 100)]
        tail: u32,
        /// Keep printing new lines until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// Only lines written since then: an RFC 3339 time (2030-01-01T12:00:00Z) or a
        /// duration before now (90s, 10m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
    },
    /// Check a manifest file: schema, rules, and (with --third-party) the sandbox policy.
    Validate {
        manifest: PathBuf,
        #[arg(long)]
        third_party: bool,
    },
    /// Print the Podman commands installing a manifest would run.
    Render {
        manifest: PathBuf,
        #[arg(long, default_value = "0.0.0.0")]
        publish_address: std::net::IpAddr,
    },
    /// Update to the version in the current catalog (a third-party app: its publisher's
    /// newest listing); rolls back if it is not healthy.
    Update {
        id: String,
        /// Accept a third-party publisher who now scores below the node's threshold.
        #[arg(long)]
        approve: bool,
    },
    /// Publish a third-party app: your node serves the artifacts, your DID signs the
    /// manifest, your Nostr key signs the NIP-78 event sent to the relays.
    Publish {
        #[arg(long)]
        manifest: PathBuf,
        /// NAME=FILE for each artifact the manifest declares.
        #[arg(long = "artifact", value_parser = parse_artifact)]
        artifacts: Vec<(String, PathBuf)>,
        /// The developer mnemonic (`archy dev init`); never on the command line.
        #[arg(long)]
        mnemonic_file: PathBuf,
        #[arg(long, default_value_t = 0)]
        index: u32,
        /// A relay to publish to (repeat for several).
        #[arg(long = "relay", required = true)]
        relays: Vec<String>,
        /// A PEM file of CAs a `wss://` relay's certificate may chain to, beside the public
        /// roots (repeat for several), as the node's `relay_ca_certs`.
        #[arg(long = "relay-ca", value_name = "PEM")]
        relay_ca: Vec<PathBuf>,
        /// Where nodes fetch the artifacts over HTTP (default: your node's blobs_url).
        #[arg(long)]
        origin_http: Option<String>,
    },
    /// Withdraw a third-party app you published: a NIP-09 deletion of every version (the
    /// app's coordinate and each version the relays hold), signed by your Nostr key and sent
    /// to every relay. Installed copies keep running; nodes show it withdrawn and install
    /// nothing more from it. Fails when no relay accepts it.
    Unpublish {
        /// The app's id, as in its manifest.
        id: String,
        /// The developer mnemonic (`archy dev init`); never on the command line.
        #[arg(long)]
        mnemonic_file: PathBuf,
        #[arg(long, default_value_t = 0)]
        index: u32,
        /// A relay to send it to (repeat for several; default: your node's relays).
        #[arg(long = "relay")]
        relays: Vec<String>,
        /// A PEM file of CAs a `wss://` relay's certificate may chain to, beside the public
        /// roots (repeat for several), as the node's `relay_ca_certs`.
        #[arg(long = "relay-ca", value_name = "PEM")]
        relay_ca: Vec<PathBuf>,
    },
    /// Remove the app; its data stays unless --purge.
    Uninstall {
        id: String,
        #[arg(long)]
        purge: bool,
    },
    /// Re-attach to an operation (after Ctrl-C, or from another terminal): its progress so
    /// far, then each step, up to its result. ID: an operation number, or an app (its
    /// running or latest operation).
    Watch {
        operation: String,
    },
}

fn parse_artifact(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=FILE"))?;
    Ok((name.to_owned(), PathBuf::from(path)))
}

/// How client commands reach the node: its API, its token, and whether to print JSON.
pub struct Target {
    pub api: String,
    pub token_file: Option<PathBuf>,
    pub json: bool,
}

impl Target {
    /// A typed client of the node's API, with the token from `--token-file` (default:
    /// `api.token` in the node's data dir, see `ARCHY_DATA_DIR`).
    pub fn client(&self) -> anyhow::Result<archy_api::Client> {
        self.client_with_timeout(archy_api::DEFAULT_TIMEOUT)
    }

    pub fn client_with_timeout(&self, timeout: Duration) -> anyhow::Result<archy_api::Client> {
        let path = self.token_file.clone().unwrap_or_else(|| {
            archy_node::auth::token_path(&archy_node::config::default_data_dir())
        });
        let token = archy_api::read_token(&path)?;
        Ok(archy_api::Client::with_timeout(&self.api, &token, timeout)?)
    }
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let target = Target {
        api: cli.api,
        token_file: cli.token_file,
        json: cli.json,
    };
    match cli.command {
        Command::Node { command } => node::node(command).await,
        Command::Origin { command } => node::origin(command).await,
        Command::Relay { command } => node::relay(command).await,
        Command::Catalog { command } => catalog::run(command, &target).await,
        Command::App { command } => app::run(command, &target).await,
        Command::Status => status::run(&target).await,
        Command::Market { command } => market::run(command, &target).await,
        Command::Swarm {
            command: SwarmCommand::Status,
        } => swarm::run(&target).await,
        Command::Swarm {
            command: SwarmCommand::Fetch { hash },
        } => swarm::fetch(&target, &hash).await,
        Command::Dev { command } => dev::run(command),
        Command::Admin { command } => admin::run(command),
    }
}
