//! The node's HTTP API (loopback by default). The CLI is a client of it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::node::{ErrorKind, Node, NodeError};

pub fn routes(node: Arc<Node>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/catalog/apps", get(catalog_apps))
        .route("/v1/catalog/pull", post(pull))
        .route("/v1/market", get(market))
        .route("/v1/market/discover", post(discover))
        .route("/v1/apps", get(apps))
        .route("/v1/apps/{id}", get(app).delete(uninstall))
        .route("/v1/apps/{id}/install", post(install))
        .route("/v1/apps/{id}/start", post(start))
        .route("/v1/apps/{id}/stop", post(stop))
        .route("/v1/apps/{id}/update", post(update))
        .route("/v1/apps/{id}/restart", post(restart))
        .with_state(node)
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unavailable => StatusCode::BAD_GATEWAY,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            axum::Json(serde_json::json!({ "error": self.message, "kind": self.kind })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<axum::Json<T>, NodeError>;

async fn status(State(node): State<Arc<Node>>) -> ApiResult<crate::node::StatusView> {
    node.status().await.map(axum::Json)
}

async fn catalog_apps(
    State(node): State<Arc<Node>>,
) -> ApiResult<Vec<crate::node::CatalogAppView>> {
    node.catalog_apps().await.map(axum::Json)
}

async fn pull(State(node): State<Arc<Node>>) -> ApiResult<serde_json::Value> {
    node.pull_catalog()
        .await
        .map(|u| axum::Json(serde_json::json!({ "result": format!("{u:?}") })))
}

async fn market(State(node): State<Arc<Node>>) -> ApiResult<Vec<crate::db::MarketRow>> {
    node.market().await.map(axum::Json)
}

async fn discover(State(node): State<Arc<Node>>) -> ApiResult<serde_json::Value> {
    let found = node.discover_market().await?;
    Ok(axum::Json(serde_json::json!({
        "listed": found.listings.len(),
        "rejected": found.rejected.iter().map(|(id, why)| serde_json::json!({"event": id, "reason": why})).collect::<Vec<_>>(),
    })))
}

async fn apps(State(node): State<Arc<Node>>) -> ApiResult<Vec<crate::node::AppView>> {
    node.apps().await.map(axum::Json)
}

async fn app(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<crate::node::AppView> {
    node.app(&id).await.map(axum::Json)
}

#[derive(Deserialize)]
struct InstallQuery {
    /// Stream newline-delimited JSON progress events, then `{"result": app}` or `{"error": …}`.
    #[serde(default)]
    stream: bool,
}

async fn install(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<InstallQuery>,
) -> Response {
    if !q.stream {
        return node.install(&id).await.map(axum::Json).into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    // The install runs to its end even if the client goes away: operations never stop halfway.
    tokio::spawn(async move {
        let events = tx.clone();
        let sink = move |p: archy_orchestrator::Progress| {
            let _ = events.send(serde_json::json!({ "progress": p }));
        };
        let last = match node.install_with_progress(&id, &sink).await {
            Ok(app) => serde_json::json!({ "result": app }),
            Err(e) => serde_json::json!({ "error": e.message, "kind": e.kind }),
        };
        let _ = tx.send(last);
    });
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|v| (Ok::<_, std::convert::Infallible>(format!("{v}\n")), rx))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

async fn start(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<crate::node::AppView> {
    node.start_app(&id).await.map(axum::Json)
}

async fn restart(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<crate::node::AppView> {
    node.restart_app(&id).await.map(axum::Json)
}

async fn update(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<crate::node::AppView> {
    node.update(&id).await.map(axum::Json)
}

async fn stop(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<crate::node::AppView> {
    node.stop_app(&id).await.map(axum::Json)
}

#[derive(Deserialize)]
struct UninstallQuery {
    #[serde(default)]
    purge: bool,
}

async fn uninstall(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<UninstallQuery>,
) -> ApiResult<serde_json::Value> {
    node.uninstall(&id, q.purge)
        .await
        .map(|()| axum::Json(serde_json::json!({ "uninstalled": id, "purged": q.purge })))
}
