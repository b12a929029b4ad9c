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
        .route("/v1/swarm", get(swarm_status))
        .route("/v1/catalog/apps", get(catalog_apps))
        .route("/v1/catalog/pull", post(pull))
        .route("/v1/market", get(market))
        .route("/v1/market/discover", post(discover))
        .route("/v1/market/{app}", get(market_show))
        .route("/v1/market/{app}/install", post(market_install))
        .route("/v1/publish/{app}/{artifact}", post(publish_artifact))
        .route("/v1/trust/keys", get(trusted_keys))
        .route("/v1/trust/keys/{key}", post(trust_key).delete(untrust_key))
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

async fn swarm_status(State(node): State<Arc<Node>>) -> axum::Json<crate::node::SwarmStatus> {
    axum::Json(node.swarm_status())
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
    /// Also install the apps it depends on that are not installed yet.
    #[serde(default)]
    with_dependencies: bool,
}

async fn install(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<InstallQuery>,
) -> Response {
    let run = move |sink: Box<dyn Fn(archy_orchestrator::Progress) + Send + Sync>| async move {
        if q.with_dependencies {
            node.install_with_dependencies(&id, &sink).await
        } else {
            node.install_with_progress(&id, &sink).await
        }
    };
    if q.stream {
        stream_progress(run)
    } else {
        run(Box::new(|_| {})).await.map(axum::Json).into_response()
    }
}

/// Runs an operation that reports progress, streaming newline-delimited JSON: progress
/// events, then `{"result": …}` or `{"error": …}`. The operation runs to its end even if the
/// client goes away: operations never stop halfway.
fn stream_progress<F, Fut>(operation: F) -> Response
where
    F: FnOnce(Box<dyn Fn(archy_orchestrator::Progress) + Send + Sync>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<crate::node::AppView, NodeError>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    tokio::spawn(async move {
        let events = tx.clone();
        let sink = Box::new(move |p: archy_orchestrator::Progress| {
            let _ = events.send(serde_json::json!({ "progress": p }));
        });
        let last = match operation(sink).await {
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

async fn trusted_keys(State(node): State<Arc<Node>>) -> ApiResult<serde_json::Value> {
    let keys = node.trusted_keys().await?;
    Ok(axum::Json(serde_json::json!(
        keys.iter()
            .map(|(key, source)| serde_json::json!({ "key": key, "source": source }))
            .collect::<Vec<_>>()
    )))
}

async fn trust_key(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
) -> ApiResult<serde_json::Value> {
    let hex = node.trust_key(&key).await?;
    Ok(axum::Json(serde_json::json!({ "trusted": hex })))
}

async fn untrust_key(
    State(node): State<Arc<Node>>,
    Path(key): Path<String>,
) -> ApiResult<serde_json::Value> {
    let hex = node.untrust_key(&key).await?;
    Ok(axum::Json(serde_json::json!({ "untrusted": hex })))
}

async fn market_show(
    State(node): State<Arc<Node>>,
    Path(app): Path<String>,
) -> ApiResult<Vec<crate::node::MarketDetail>> {
    node.market_show(&app).await.map(axum::Json)
}

#[derive(Deserialize)]
struct MarketInstallQuery {
    /// The publisher's Nostr key (hex, or a prefix), when several list the app.
    publisher: Option<String>,
    /// The operator accepts a publisher below the trust threshold.
    #[serde(default)]
    approve: bool,
    #[serde(default)]
    stream: bool,
}

async fn market_install(
    State(node): State<Arc<Node>>,
    Path(app): Path<String>,
    Query(q): Query<MarketInstallQuery>,
) -> Response {
    let run = move |sink: Box<dyn Fn(archy_orchestrator::Progress) + Send + Sync>| async move {
        node.install_listing(&app, q.publisher.as_deref(), q.approve, &sink)
            .await
    };
    if q.stream {
        stream_progress(run)
    } else {
        run(Box::new(|_| {})).await.map(axum::Json).into_response()
    }
}

/// A developer's artifact, uploaded by `archy app publish` from the same machine: imported
/// and pinned so this node serves it as the publication's origin.
async fn publish_artifact(
    State(node): State<Arc<Node>>,
    Path((app, artifact)): Path<(String, String)>,
    body: axum::body::Body,
) -> ApiResult<serde_json::Value> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !valid(&app) || !valid(&artifact) {
        return Err(NodeError::new(
            ErrorKind::Refused,
            "app and artifact names are letters, digits, '-' and '_' (at most 64)",
        ));
    }
    let dir = node.config().data_dir.join("tmp");
    std::fs::create_dir_all(&dir)
        .map_err(|e| NodeError::new(ErrorKind::Internal, e.to_string()))?;
    // One file per upload, removed on every path (also when the client goes away).
    static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(
        "publish-{app}-{artifact}-{}-{n}",
        std::process::id()
    ));
    struct RemoveOnDrop(std::path::PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = RemoveOnDrop(path.clone());
    let written = async {
        let mut file = tokio::fs::File::create(&path).await?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.map_err(std::io::Error::other)?)
                .await?;
        }
        file.flush().await
    }
    .await;
    let result = match written {
        Ok(()) => node.import_artifact(&app, &artifact, &path).await,
        Err(e) => Err(NodeError::new(
            ErrorKind::Internal,
            format!("receiving artifact {artifact}: {e}"),
        )),
    };
    let blob = result?;
    Ok(axum::Json(
        serde_json::json!({ "blake3": blob.hex(), "size": blob.size }),
    ))
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

#[derive(Deserialize)]
struct UpdateQuery {
    /// The operator accepts a third-party publisher below the trust threshold.
    #[serde(default)]
    approve: bool,
}

async fn update(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<UpdateQuery>,
) -> ApiResult<crate::node::AppView> {
    node.update(&id, q.approve).await.map(axum::Json)
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
