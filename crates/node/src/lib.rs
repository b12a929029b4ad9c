//! The `archy` node: the only crate that wires registry, swarm and orchestrator together.
//! `archy node run` is the daemon; the rest of the CLI talks to its HTTP API.

pub mod api;
pub mod catalog_build;
pub mod config;
pub mod db;
pub mod node;
pub mod origin;

use std::sync::Arc;

pub use config::NodeConfig;
pub use node::Node;

/// Runs a started node: the API on `listener`, the catalog pull loop and the reconciler.
pub async fn serve(node: Arc<Node>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let pull = tokio::spawn(node.clone().pull_loop());
    let reconcile = tokio::spawn(node.clone().reconcile_loop());
    let app = api::routes(node.clone());
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    pull.abort();
    reconcile.abort();
    node.shutdown().await;
    Ok(result?)
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
