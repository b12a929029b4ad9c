//! The daemons: `archy node run`, `archy origin run` and `archy relay run`, and `archy
//! origin id`. They log to stderr and keep ignoring SIGPIPE (a closed peer socket is not
//! their end).

use std::net::SocketAddr;

use anyhow::Context;
use archy_node::{NodeConfig, origin};

use super::{NodeCommand, OriginCommand, RelayCommand};

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARCHY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,iroh=warn,iroh_blobs=warn,noq=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// `archy node run`: pull and verify the catalog, serve the API; `archy node
/// install-service`: the systemd units that bring it back after a reboot.
pub async fn node(command: NodeCommand) -> anyhow::Result<()> {
    if let NodeCommand::InstallService {
        config,
        unit_dir,
        podman_user,
        node_user,
        print,
    } = command
    {
        return install_service(&config, &unit_dir, &podman_user, node_user, print);
    }
    init_tracing();
    let NodeCommand::Run {
        config,
        data_dir,
        api_listen,
        origin,
        pinned_root,
        publish_only,
        fetch_only,
        blobs_listen,
        relays,
        podman_url,
        publish_address,
        pull_interval_seconds,
    } = command
    else {
        unreachable!("install-service returned above");
    };
    let mut cfg = match config {
        Some(path) => NodeConfig::load(&path)?,
        None => NodeConfig::default(),
    };
    cfg.data_dir = data_dir.unwrap_or(cfg.data_dir);
    cfg.api_listen = api_listen.unwrap_or(cfg.api_listen);
    cfg.origin = origin.or(cfg.origin);
    cfg.pinned_root = pinned_root.or(cfg.pinned_root);
    cfg.publish_only |= publish_only;
    cfg.fetch_only |= fetch_only;
    cfg.blobs_listen = blobs_listen.or(cfg.blobs_listen);
    if !relays.is_empty() {
        cfg.relays = relays;
    }
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

/// `archy origin id` and `archy origin run`.
pub async fn origin(command: OriginCommand) -> anyhow::Result<()> {
    match command {
        OriginCommand::Id { data_dir } => {
            outln!("{}", archy_swarm::endpoint_id_of(&data_dir.join("swarm"))?);
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
            archy_node::public_http::serve(listener, origin.router, Default::default()).await?;
            Ok(())
        }
    }
}

/// `archy relay run`: iroh-relay's server, configured from the flags.
pub async fn relay(command: RelayCommand) -> anyhow::Result<()> {
    let RelayCommand::Run {
        bind,
        http_only,
        tls_cert,
        tls_key,
        https_bind,
        quic_bind,
        client_rate,
    } = command;
    let tls = match (http_only, tls_cert, tls_key) {
        (true, None, None) => None,
        (false, Some(cert), Some(key)) => Some(archy_node::relay_server::RelayTls {
            https_bind: https_bind.unwrap_or_else(|| SocketAddr::new(bind.ip(), 443)),
            cert,
            key,
            quic_bind,
        }),
        // clap's groups make this unreachable; say so rather than guess.
        _ => anyhow::bail!("choose --http-only, or --tls-cert with --tls-key"),
    };
    init_tracing();
    archy_node::relay_server::run(&archy_node::relay_server::RelayServerConfig {
        http_bind: bind,
        tls,
        client_rate_bytes_per_sec: client_rate,
    })
    .await
}

fn install_service(
    config: &std::path::Path,
    unit_dir: &std::path::Path,
    podman_user: &str,
    node_user: Option<String>,
    print: bool,
) -> anyhow::Result<()> {
    use archy_node::service;
    let config = std::fs::canonicalize(config)
        .with_context(|| format!("the node config {}", config.display()))?;
    let node_config = NodeConfig::load(&config)?;
    let data_dir = std::path::absolute(&node_config.data_dir)
        .with_context(|| format!("data dir {}", node_config.data_dir.display()))?;
    let archy = std::env::current_exe().context("locating the archy binary")?;
    let mut units = service::UnitConfig::for_podman_user(podman_user, archy, config, data_dir)
        .with_context(|| {
            format!(
                "no user {podman_user:?} on this machine: create it first (scripts/setup-podman.sh does)"
            )
        })?;
    if let Some(user) = node_user {
        units.node_user = user;
    }
    if node_config.podman_url != units.podman_url() {
        eprintln!(
            "warning: the node config names podman_url {:?}, but the unit starts Podman's service at {:?}",
            node_config.podman_url,
            units.podman_url()
        );
    }
    let files = service::units(&units);
    if print {
        for (name, text) in &files {
            println!("# {name}\n{text}");
        }
        return Ok(());
    }
    let written = service::write_units(unit_dir, &files)
        .with_context(|| format!("writing the units to {}", unit_dir.display()))?;
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    eprintln!(
        "enable them: systemctl daemon-reload && systemctl enable --now archy-podman.service archy-node.service"
    );
    Ok(())
}
