//! The `archy` node: the only crate that wires registry, swarm and orchestrator together.
//! `archy node run` is the daemon; the rest of the CLI talks to its HTTP API.

pub mod api;
pub mod auth;
pub mod catalog_build;
pub mod config;
pub mod db;
pub mod node;
pub mod origin;
pub mod public_http;
pub mod publish;
pub mod relay_server;
pub mod service;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use config::NodeConfig;
pub use node::Node;

/// Runs a started node: the API on `listener`, the catalog pull loop and the reconciler,
/// the blob store's watch, and the read-only blob server when `blobs_listen` is configured.
///
/// Ends on SIGTERM or SIGINT, or when the node cannot go on (its blob store died), within
/// a bound: the API stops taking requests, running operations get `shutdown_grace_seconds`
/// to finish (one still running then is abandoned: its record stays "running" at its stage
/// and the next start recovers it), open streams (progress, followed logs) are cut, and
/// the swarm and database close. `Ok` only when all of that was clean; an error names what
/// was abandoned, or why the node had to stop, so the process exits non-zero.
pub async fn serve(node: Arc<Node>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let blobs = match node.config().blobs_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding blobs_listen {addr}"))?;
            // Known before the API answers, so a publish right after start sees it.
            node.set_blobs_url(format!("http://{}", listener.local_addr()?));
            Some(tokio::spawn(serve_blobs(node.clone(), listener)))
        }
        None => None,
    };
    let pull = tokio::spawn(node.clone().pull_loop());
    let reconcile = tokio::spawn(node.clone().reconcile_loop());
    let store_watch = tokio::spawn(node.clone().watch_store());
    // The dashboard's store verifies each stored listing once: now, not on its first view.
    let warm = {
        let node = node.clone();
        tokio::spawn(async move { node.warm_store_view().await })
    };
    let app = api_router(node.clone())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut stopped_rx = stopped.clone();
    // The peer's address: the dashboard's first-run page answers only to loopback, and its
    // login rate limit counts per client address.
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stopped_rx.wait_for(|s| *s).await;
    })
    .into_future();
    let mut server = std::pin::pin!(server);
    let why = tokio::select! {
        result = &mut server => Stop::Server(result),
        () = shutdown_signal() => Stop::Signal,
        reason = node.fatal() => Stop::Fatal(reason),
    };
    drop(stopped);
    // No new requests from here; nothing new starts in the background either.
    let _ = stop.send(true);
    pull.abort();
    reconcile.abort();
    store_watch.abort();
    warm.abort();
    if let Some(blobs) = &blobs {
        blobs.abort();
    }
    let grace = Duration::from_secs(node.config().shutdown_grace_seconds);
    if !matches!(why, Stop::Server(_)) {
        exit_anyway_after(grace + DRAIN + LAST_RESORT);
    }
    let deadline = tokio::time::Instant::now() + grace;
    // Running operations finish (or record their failure) within the grace.
    let abandoned: Vec<String> = match tokio::time::timeout_at(deadline, node.jobs_finished()).await
    {
        Ok(()) => Vec::new(),
        Err(_) => node
            .running_jobs()
            .iter()
            .map(|j| format!("operation {} ({} of {})", j.id(), j.kind(), j.app()))
            .collect(),
    };
    // Streams of finished operations end by themselves; any other (a followed log) is cut.
    let drain = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .min(DRAIN);
    let (served, fatal) = match why {
        Stop::Server(result) => (Some(result), None),
        Stop::Signal => (tokio::time::timeout(drain, &mut server).await.ok(), None),
        Stop::Fatal(reason) => (
            tokio::time::timeout(drain, &mut server).await.ok(),
            Some(reason),
        ),
    };
    let closed = node.shutdown().await;
    if let Some(Err(e)) = served {
        return Err(anyhow::Error::new(e).context("serving the API"));
    }
    if let Some(reason) = fatal {
        anyhow::bail!("{reason}");
    }
    if !abandoned.is_empty() {
        tracing::warn!(
            ?abandoned,
            "shut down with operations still running; the next start recovers them"
        );
        anyhow::bail!(
            "shut down after {} s with {} still running; the next start recovers {}",
            grace.as_secs(),
            abandoned.join(", "),
            if abandoned.len() == 1 { "it" } else { "them" }
        );
    }
    if !closed {
        anyhow::bail!("shut down, but the swarm or the database did not close in time");
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Why [`serve`] stops.
enum Stop {
    /// The server ended by itself (an error accepting connections).
    Server(std::io::Result<()>),
    Signal,
    /// The node cannot go on: [`Node::fatal`]'s reason.
    Fatal(String),
}

/// How long open connections get to end by themselves once operations are done.
const DRAIN: Duration = Duration::from_secs(2);
/// Beyond the grace: what shutting down itself may take (each of its steps is bounded)
/// before the process exits without it.
const LAST_RESORT: Duration = Duration::from_secs(20);

/// A last resort against a shutdown that hangs where no deadline reaches (a blocking
/// thread the runtime waits for at exit): the process exits, non-zero, after `after`.
fn exit_anyway_after(after: Duration) {
    let _ = std::thread::Builder::new()
        .name("archy-exit-watchdog".into())
        .spawn(move || {
            std::thread::sleep(after);
            eprintln!(
                "archy: shutdown did not finish within {} s; exiting anyway",
                after.as_secs()
            );
            std::process::exit(70);
        });
}

/// The node's API and its web dashboard behind their front door, with the token from the
/// data dir (created on first use) and the dashboard's sessions: what [`serve`] answers with.
/// Serve it with connect info (`into_make_service_with_connect_info::<SocketAddr>()`), or the
/// dashboard's first-run page refuses everyone.
pub fn api_router(node: Arc<Node>) -> anyhow::Result<axum::Router> {
    let token = auth::load_or_create_token(&node.config().data_dir)?;
    let dashboard = archy_dashboard::Dashboard::new(node.config().data_dir.clone());
    let guard = Arc::new(
        api::guard::Guard::new(token, node.config().api_listen, &node.config().api_hosts)
            .with_dashboard(dashboard.clone()),
    );
    let pages = dashboard
        .routes()
        .layer(axum::middleware::from_fn_with_state(
            guard.clone(),
            api::guard::check,
        ));
    Ok(api::routes(node, guard).merge(pages))
}

/// Serves the node's blobs (and its swarm address) over HTTP on `listener`: read-only, safe
/// to expose beyond loopback, unlike the API.
pub async fn serve_blobs(node: Arc<Node>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    node.set_blobs_url(format!("http://{addr}"));
    tracing::info!(%addr, "serving blobs over HTTP");
    let routes = archy_swarm::http_routes(node.swarm().clone());
    public_http::serve(listener, routes, Default::default()).await?;
    Ok(())
}

/// SIGINT or SIGTERM (what a service manager sends).
pub(crate) async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
