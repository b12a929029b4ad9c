//! `archy`: the node daemon, the origin, the catalog builder, and a CLI for the node's API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use archy_node::catalog_build::{self, BuildOptions};
use archy_node::{NodeConfig, origin};
use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "archy",
    version,
    about = "Archipelago node: signed app catalogs, fetched over iroh, run in rootless Podman"
)]
struct Cli {
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
enum Command {
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
}

#[derive(Subcommand)]
enum MarketCommand {
    /// Verified publications the node knows, newest per publisher and app.
    List,
    /// Ask the configured relays now.
    Discover,
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
}

#[derive(Subcommand)]
enum SwarmCommand {
    /// Traffic by source (origin iroh/HTTP, peers) in total and per blob, fallbacks by
    /// reason, verification failures, strikes, known peers.
    Status,
}

#[derive(Subcommand)]
enum TrustCommand {
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
enum DevCommand {
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
enum NodeCommand {
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
        #[arg(long)]
        podman_url: Option<String>,
        #[arg(long)]
        publish_address: Option<std::net::IpAddr>,
        #[arg(long)]
        pull_interval_seconds: Option<u64>,
    },
}

#[derive(Subcommand)]
enum OriginCommand {
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
enum CatalogCommand {
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
enum AppCommand {
    /// Fetch over iroh, verify, install into rootless Podman and start.
    Install {
        id: String,
        /// Also install the apps it depends on (at the catalog's versions) when missing.
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
        /// Where nodes fetch the artifacts over HTTP (default: your node's blobs_url).
        #[arg(long)]
        origin_http: Option<String>,
    },
    /// Remove the app; its data stays unless --purge.
    Uninstall {
        id: String,
        #[arg(long)]
        purge: bool,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARCHY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,iroh=warn,iroh_blobs=warn,noq=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Node { command } => {
            init_tracing();
            let NodeCommand::Run {
                config,
                data_dir,
                api_listen,
                origin,
                pinned_root,
                podman_url,
                publish_address,
                pull_interval_seconds,
            } = command;
            let mut cfg = match config {
                Some(path) => NodeConfig::load(&path)?,
                None => NodeConfig::default(),
            };
            cfg.data_dir = data_dir.unwrap_or(cfg.data_dir);
            cfg.api_listen = api_listen.unwrap_or(cfg.api_listen);
            cfg.origin = origin.or(cfg.origin);
            cfg.pinned_root = pinned_root.or(cfg.pinned_root);
            cfg.podman_url = podman_url.unwrap_or(cfg.podman_url);
            cfg.publish_address = publish_address.unwrap_or(cfg.publish_address);
            cfg.pull_interval_seconds = pull_interval_seconds.unwrap_or(cfg.pull_interval_seconds);
            let listener = tokio::net::TcpListener::bind(cfg.api_listen)
                .await
                .with_context(|| format!("binding the API on {}", cfg.api_listen))?;
            let node = archy_node::Node::start(cfg).await?;
            tracing::info!(api = %listener.local_addr()?, endpoint = %node.swarm().endpoint_id(), "node running");
            archy_node::serve(node, listener).await
        }
        Command::Origin { command } => match command {
            OriginCommand::Id { data_dir } => {
                println!("{}", archy_swarm::endpoint_id_of(&data_dir.join("swarm"))?);
                Ok(())
            }
            OriginCommand::Run {
                data_dir,
                catalog,
                artifacts,
                listen,
                iroh_bind,
                roots,
            } => {
                init_tracing();
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                let origin = origin::prepare(&origin::OriginConfig {
                    data_dir,
                    catalog,
                    artifacts,
                    iroh_bind,
                    roots,
                })
                .await?;
                tracing::info!(http = %listen, endpoint = %origin.swarm.endpoint_id(), "origin serving");
                axum::serve(
                    listener,
                    origin
                        .router
                        .into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await?;
                Ok(())
            }
        },
        Command::Catalog { command } => match command {
            CatalogCommand::Build {
                apps,
                artifacts,
                origin_http,
                origin_iroh,
                version,
                expires_in_days,
                previous,
                out,
            } => {
                let envelope = catalog_build::build(&BuildOptions {
                    apps_dir: apps,
                    artifacts_dir: artifacts,
                    origin: archy_registry::Origin {
                        http: origin_http,
                        iroh: origin_iroh,
                    },
                    version,
                    expires_in: chrono::Duration::days(expires_in_days),
                    previous,
                })?;
                std::fs::write(&out, envelope.to_bytes())
                    .with_context(|| format!("writing {}", out.display()))?;
                eprintln!(
                    "wrote unsigned catalog version {version} to {}",
                    out.display()
                );
                Ok(())
            }
            CatalogCommand::List => {
                let apps = Client::new(&cli.api, cli.token_file.as_deref())
                    .get("/v1/catalog/apps")
                    .await?;
                print_or(cli.json, &apps, |v| {
                    for a in v.as_array().into_iter().flatten() {
                        println!(
                            "{:<16} {:<10} {}{}",
                            s(a, "id"),
                            s(a, "version"),
                            s(a, "name"),
                            if a["installed"].as_bool() == Some(true) {
                                "  [installed]"
                            } else {
                                ""
                            }
                        );
                    }
                });
                Ok(())
            }
            CatalogCommand::Pull => {
                let v = Client::new(&cli.api, cli.token_file.as_deref())
                    .post("/v1/catalog/pull")
                    .await?;
                print_or(cli.json, &v, |v| println!("{}", s(v, "result")));
                Ok(())
            }
        },
        Command::App {
            command:
                AppCommand::Validate {
                    manifest,
                    third_party,
                },
        } => {
            let m = read_manifest(&manifest)?;
            if third_party {
                m.check_sandbox_policy()
                    .with_context(|| format!("{}: sandbox policy", manifest.display()))?;
            }
            println!(
                "{}: {} {} is valid{}",
                manifest.display(),
                m.id,
                m.version,
                if third_party {
                    " and passes the third-party sandbox policy"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Command::App {
            command:
                AppCommand::Render {
                    manifest,
                    publish_address,
                },
        } => {
            for line in archy_orchestrator::render(&read_manifest(&manifest)?, publish_address) {
                println!("{line}");
            }
            Ok(())
        }
        Command::App {
            command:
                AppCommand::Publish {
                    manifest,
                    artifacts,
                    mnemonic_file,
                    index,
                    relays,
                    origin_http,
                },
        } => {
            let m = read_manifest(&manifest)?;
            let mnemonic = archy_node::publish::read_mnemonic_file(&mnemonic_file)?;
            let identity =
                archy_marketplace::DeveloperIdentity::from_mnemonic(&mnemonic, "", index)?;
            let http =
                archy_node::auth::api_client(cli.token_file.as_deref(), Duration::from_secs(3600))?;
            let published = archy_node::publish::publish(archy_node::publish::PublishRequest {
                api: &cli.api,
                http: &http,
                manifest: m,
                artifacts: artifacts.into_iter().collect(),
                identity: &identity,
                relays: &relays,
                origin_http,
            })
            .await?;
            for a in &published.artifacts {
                println!("artifact {:<12} {} ({} bytes)", a.name, a.blake3, a.size);
            }
            println!("event     {}", published.event_id);
            println!("relays    {}", published.accepted_by.join(", "));
            println!(
                "nodes install it as {} (`archy market install`)",
                published.local_id
            );
            Ok(())
        }
        Command::Dev { command } => dev(command),
        Command::Market { command } => {
            let client = Client::new(&cli.api, cli.token_file.as_deref());
            match command {
                MarketCommand::List => {
                    let v = client.get("/v1/market").await?;
                    print_or(cli.json, &v, |v| {
                        for l in v.as_array().into_iter().flatten() {
                            println!(
                                "{:<16} {:<10} {:<24} by {} ({}…)",
                                s(l, "app_id"),
                                s(l, "version"),
                                s(l, "name"),
                                s(l, "did"),
                                &s(l, "author")[..s(l, "author").len().min(12)]
                            );
                        }
                    });
                }
                MarketCommand::Trust { command } => {
                    let v = match &command {
                        TrustCommand::List => client.get("/v1/trust/keys").await?,
                        TrustCommand::Add { key } => {
                            client.post(&format!("/v1/trust/keys/{key}")).await?
                        }
                        TrustCommand::Remove { key } => {
                            client.delete(&format!("/v1/trust/keys/{key}")).await?
                        }
                    };
                    print_or(cli.json, &v, |v| match command {
                        TrustCommand::List => {
                            for k in v.as_array().into_iter().flatten() {
                                println!("{}  ({})", s(k, "key"), s(k, "source"));
                            }
                        }
                        TrustCommand::Add { .. } => println!(
                            "trusting {}; `archy market discover` rescores publishers",
                            s(v, "trusted")
                        ),
                        TrustCommand::Remove { .. } => {
                            println!("no longer trusting {}", s(v, "untrusted"))
                        }
                    });
                }
                MarketCommand::Show { app } => {
                    let v = client.get(&format!("/v1/market/{app}")).await?;
                    print_or(cli.json, &v, print_market_details);
                }
                MarketCommand::Install {
                    app,
                    publisher,
                    approve,
                } => {
                    let mut query = format!("approve={approve}");
                    if let Some(p) = publisher {
                        query.push_str(&format!("&publisher={p}"));
                    }
                    let url = format!("/v1/market/{app}/install?{query}&stream=true");
                    let v = client.stream_operation(&url, &app, cli.json).await?;
                    print_or(cli.json, &v, print_app);
                }
                MarketCommand::Discover => {
                    let v = client.post("/v1/market/discover").await?;
                    print_or(cli.json, &v, |v| {
                        println!("{} publication(s) listed", v["listed"]);
                        for r in v["rejected"].as_array().into_iter().flatten() {
                            println!("rejected {}: {}", s(r, "event"), s(r, "reason"));
                        }
                    });
                }
            }
            Ok(())
        }
        Command::App { command } => {
            let client = Client::new(&cli.api, cli.token_file.as_deref());
            let v = match &command {
                AppCommand::Install { id, with_deps } => {
                    let url =
                        format!("/v1/apps/{id}/install?stream=true&with_dependencies={with_deps}");
                    client.stream_operation(&url, id, cli.json).await?
                }
                AppCommand::List => client.get("/v1/apps").await?,
                AppCommand::Status { id } => client.get(&format!("/v1/apps/{id}")).await?,
                AppCommand::Start { id } => client.post(&format!("/v1/apps/{id}/start")).await?,
                AppCommand::Stop { id } => client.post(&format!("/v1/apps/{id}/stop")).await?,
                AppCommand::Restart { id } => {
                    client.post(&format!("/v1/apps/{id}/restart")).await?
                }
                AppCommand::Update { id, approve } => {
                    client
                        .post(&format!("/v1/apps/{id}/update?approve={approve}"))
                        .await?
                }
                AppCommand::Uninstall { id, purge } => {
                    client
                        .delete(&format!("/v1/apps/{id}?purge={purge}"))
                        .await?
                }
                // Local commands, handled above.
                AppCommand::Validate { .. }
                | AppCommand::Render { .. }
                | AppCommand::Publish { .. } => return Ok(()),
            };
            print_or(cli.json, &v, |v| match &command {
                AppCommand::List => {
                    for a in v.as_array().into_iter().flatten() {
                        print_app(a);
                    }
                }
                AppCommand::Uninstall { id, purge } => {
                    println!(
                        "{id} uninstalled{}",
                        if *purge {
                            " and its data purged"
                        } else {
                            "; its data is kept (use --purge to delete it)"
                        }
                    );
                }
                _ => print_app(v),
            });
            Ok(())
        }
        Command::Swarm {
            command: SwarmCommand::Status,
        } => {
            let v = Client::new(&cli.api, cli.token_file.as_deref())
                .get("/v1/swarm")
                .await?;
            print_or(cli.json, &v, print_swarm);
            Ok(())
        }
        Command::Status => {
            let v = Client::new(&cli.api, cli.token_file.as_deref())
                .get("/v1/status")
                .await?;
            print_or(cli.json, &v, print_status);
            Ok(())
        }
    }
}

fn read_manifest(path: &std::path::Path) -> anyhow::Result<archy_registry::Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    archy_registry::Manifest::from_yaml(&text).with_context(|| format!("{}", path.display()))
}

fn dev(command: DevCommand) -> anyhow::Result<()> {
    use archy_marketplace::DeveloperIdentity;
    use std::io::Read;
    let (mnemonic, index) = match command {
        DevCommand::Init { out } => {
            let mnemonic = DeveloperIdentity::new_mnemonic();
            archy_node::publish::write_mnemonic_file(&out, &mnemonic)?;
            eprintln!(
                "wrote a new mnemonic to {} (0600): back it up offline; it is your identity",
                out.display()
            );
            (mnemonic, 0)
        }
        DevCommand::Show {
            mnemonic_file,
            index,
        } => {
            let mut text = zeroize::Zeroizing::new(String::new());
            match &mnemonic_file {
                Some(path) => text = archy_node::publish::read_mnemonic_file(path)?,
                None => {
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("reading the mnemonic from stdin")?;
                }
            }
            (text, index)
        }
    };
    let id = DeveloperIdentity::from_mnemonic(&mnemonic, "", index)?;
    println!("did:   {}", id.did());
    println!("nostr: {} ({})", id.npub(), id.nostr_public_hex());
    Ok(())
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn print_or(json: bool, v: &Value, text: impl FnOnce(&Value)) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        text(v);
    }
}

fn print_app(a: &Value) {
    println!(
        "{:<16} {:<10} {:<9} (wanted: {})",
        s(a, "id"),
        s(a, "version"),
        s(a, "state"),
        s(a, "desired")
    );
    if let Some(url) = a["url"].as_str() {
        println!("  url: {url}");
    }
    for c in a["containers"].as_array().into_iter().flatten() {
        println!("  container {:<28} {}", s(c, "name"), s(c, "state"));
    }
    for w in a["warnings"].as_array().into_iter().flatten() {
        println!("  WARNING: {}", w.as_str().unwrap_or_default());
    }
}

fn parse_artifact(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=FILE"))?;
    Ok((name.to_owned(), PathBuf::from(path)))
}

fn print_market_details(v: &Value) {
    for d in v.as_array().into_iter().flatten() {
        let l = &d["listing"];
        println!(
            "{} {} ({}) by {}",
            s(l, "app_id"),
            s(l, "version"),
            s(l, "name"),
            s(l, "did")
        );
        println!("  publisher: {}", s(l, "author"));
        if let Some(id) = d["local_id"].as_str() {
            println!(
                "  installs as: {id}{}",
                if d["installed"].as_bool() == Some(true) {
                    "  [installed]"
                } else {
                    ""
                }
            );
        }
        if let Some(desc) = d["description"].as_str().filter(|d| !d.is_empty()) {
            println!("  {desc}");
        }
        println!("  sandbox policy: {}", s(d, "sandbox"));
        if let Some(origin) = d["origin"].as_str() {
            println!("  origin: {origin}");
        }
        match d["score"].as_object() {
            Some(score) => {
                println!(
                    "  trust score: {}/100 (install without --approve needs {})",
                    score["score"], d["threshold"]
                );
                for term in score["explanation"].as_array().into_iter().flatten() {
                    match term["points"].as_f64() {
                        Some(p) => println!("    {p:+6} {}", s(term, "reason")),
                        None => println!("    {}", s(term, "reason")),
                    }
                }
            }
            None => println!(
                "  trust score: not computed yet (counts as 0; needs --approve below {})",
                d["threshold"]
            ),
        }
    }
}

fn print_swarm(v: &Value) {
    let m = &v["metrics"];
    println!("endpoint:  {}", s(v, "endpoint_id"));
    if let Some(url) = v["blobs_url"].as_str() {
        println!("blobs:     {url}");
    }
    println!(
        "received:  {} B from the origin over iroh, {} B over HTTP, {} B from peers",
        m["bytes_from_origin_iroh"], m["bytes_from_http"], m["bytes_from_peers"]
    );
    println!(
        "served:    {} B over iroh, {} B over HTTP",
        m["bytes_served_iroh"], m["bytes_served_http"]
    );
    let reasons: Vec<String> = m["fallbacks"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    println!(
        "fallbacks: {} (HTTP fallbacks {}, detour {} ms, coalesced fetches {})",
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(", ")
        },
        m["http_fallbacks"],
        m["detour_ms"],
        m["coalesced_fetches"]
    );
    println!(
        "integrity: {} verification failure(s), {} strike(s)",
        m["verification_failures"], m["strikes"]
    );
    for st in v["strikes"].as_array().into_iter().flatten() {
        println!(
            "  strike: peer {} on {}: {}",
            s(st, "peer"),
            s(st, "hash"),
            s(st, "detail")
        );
    }
    for p in v["peers"].as_array().into_iter().flatten() {
        println!("peer:      {} {}", s(p, "id"), p["addrs"]);
    }
    for (hash, h) in m["per_hash"].as_object().into_iter().flatten() {
        println!(
            "blob {}…  origin {} B (HTTP {} B), peers {} B, served {} B, failures {}",
            &hash[..hash.len().min(16)],
            h["bytes_from_origin_iroh"],
            h["bytes_from_origin_http"],
            h["bytes_from_peers"],
            h["bytes_served_iroh"].as_u64().unwrap_or(0)
                + h["bytes_served_http"].as_u64().unwrap_or(0),
            h["verification_failures"]
        );
    }
}

fn print_status(v: &Value) {
    println!("endpoint:  {}", s(v, "endpoint_id"));
    println!("root:      version {}", v["root_version"]);
    match v["catalog"].as_object() {
        Some(c) => {
            println!(
                "catalog:   version {} from {}, expires {} ({} days left)",
                c["version"],
                c["origin"].as_str().unwrap_or(""),
                c["expires"].as_str().unwrap_or(""),
                c["days_left"]
            );
            if let Some(missed) = c
                .get("missed_versions")
                .and_then(Value::as_u64)
                .filter(|m| *m > 0)
            {
                println!(
                    "           accepted across {missed} version(s) whose hash chain could not be checked (the origin no longer had them)"
                );
            }
            if let Some(warning) = c.get("warning").and_then(Value::as_str) {
                println!("WARNING:   {warning}");
            }
        }
        None => println!("catalog:   none yet"),
    }
    let pull = &v["last_pull"];
    println!(
        "last pull: {} {}",
        pull["at"].as_str().unwrap_or("never"),
        pull["message"].as_str().unwrap_or("")
    );
    let swarm = &v["swarm"];
    println!(
        "swarm:     {} bytes over iroh, {} over HTTP, {} HTTP fallback(s), {} verification failure(s)",
        swarm["bytes_from_iroh"],
        swarm["bytes_from_http"],
        swarm["http_fallbacks"],
        swarm["verification_failures"]
    );
    let limits = &v["resource_limits"];
    let enforced: Vec<&str> = ["memory", "cpu", "pids"]
        .into_iter()
        .filter(|k| limits[*k].as_bool() == Some(true))
        .collect();
    if enforced.len() < 3 {
        println!(
            "limits:    enforced: {}; {}",
            if enforced.is_empty() {
                "none".to_owned()
            } else {
                enforced.join(", ")
            },
            limits["reason"].as_str().unwrap_or_default()
        );
    }
    for a in v["alarms"].as_array().into_iter().flatten() {
        println!(
            "ALARM {} at {}: {}",
            s(a, "kind"),
            s(a, "raised_at"),
            s(a, "message")
        );
    }
}

/// One progress event on the bar: bytes while fetching, steps otherwise.
fn draw(bar: &indicatif::ProgressBar, p: &Value) {
    let stage = p["stage"].as_str().unwrap_or("").replace('_', " ");
    let (done, total) = (
        p["done"].as_u64().unwrap_or(0),
        p["total"].as_u64().unwrap_or(0),
    );
    bar.set_prefix(stage.clone());
    bar.set_length(total.max(1));
    bar.set_position(done.min(total.max(1)));
    let detail = p["detail"].as_str().unwrap_or("");
    if stage == "fetching" {
        bar.set_message(format!(
            "{detail}: {} of {}",
            indicatif::HumanBytes(done),
            indicatif::HumanBytes(total)
        ));
    } else {
        bar.set_message(detail.to_owned());
    }
}

struct Client {
    base: String,
    /// Sends the node's token; an error (no readable token) is reported at the first call.
    http: anyhow::Result<reqwest::Client>,
}

impl Client {
    fn new(base: &str, token_file: Option<&std::path::Path>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            // Installs wait for health checks; give them room.
            http: archy_node::auth::api_client(token_file, Duration::from_secs(900)),
        }
    }

    fn http(&self) -> anyhow::Result<&reqwest::Client> {
        self.http.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))
    }

    /// A state-changing request: the API takes those only with a JSON body type.
    fn change(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        Ok(self
            .http()?
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json"))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http()?.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.change(reqwest::Method::POST, path)?).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.change(reqwest::Method::DELETE, path)?).await
    }

    /// Streams an operation's progress events and draws them; returns the final app.
    async fn stream_operation(&self, path: &str, id: &str, quiet: bool) -> anyhow::Result<Value> {
        use futures::StreamExt;
        let response = self
            .change(reqwest::Method::POST, path)?
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the node API at {} (is `archy node run` running?)",
                    self.base
                )
            })?;
        if !response.status().is_success() {
            let body: Value = response.json().await.unwrap_or_default();
            bail!("{}", body["error"].as_str().unwrap_or("install failed"));
        }
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(0)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix:>18} [{bar:30}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        let mut pending = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            pending.extend_from_slice(&chunk.context("the install stream broke off")?);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let event: Value =
                    serde_json::from_slice(&line).context("a progress line is not JSON")?;
                if let Some(p) = event.get("progress") {
                    draw(&bar, p);
                } else if let Some(app) = event.get("result") {
                    bar.finish_and_clear();
                    return Ok(app.clone());
                } else if let Some(error) = event.get("error") {
                    bar.abandon();
                    bail!("{}", error.as_str().unwrap_or("install failed"));
                }
            }
        }
        bar.abandon();
        bail!(
            "the node closed the install stream without a result; `archy app status {id}` tells what happened"
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the node API at {} (is `archy node run` running?)",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .context("the node API sent something that is not JSON")?;
        if !status.is_success() {
            bail!("{}", body["error"].as_str().unwrap_or("request failed"));
        }
        Ok(body)
    }
}
