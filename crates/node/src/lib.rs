//! The `archy` node: the only crate that wires registry, swarm and orchestrator together.
//! `archy node run` is the daemon; the rest of the CLI talks to its HTTP API.

pub mod api;
pub mod auth;
pub mod catalog_build;
pub mod config;
pub mod db;
pub mod node;
pub mod origin;
pub mod publish;
pub mod service;

use std::sync::Arc;

use anyhow::Context;

pub use config::NodeConfig;
pub use node::Node;

/// Runs a started node: the API on `listener`, the catalog pull loop and the reconciler,
/// and the read-only blob server when `blobs_listen` is configured.
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
    let app = api_router(node.clone())?;
    // The peer's address: the dashboard's first-run page answers only to loopback, and its
    // login rate limit counts per client address.
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    pull.abort();
    reconcile.abort();
    if let Some(blobs) = blobs {
        blobs.abort();
    }
    node.shutdown().await;
    Ok(result?)
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
    axum::serve(listener, archy_swarm::http_routes(node.swarm().clone())).await?;
    Ok(())
}

/// SIGINT or SIGTERM (what a service manager sends).
async fn shutdown_signal() {
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
