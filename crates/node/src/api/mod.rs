//! The node's HTTP API (loopback by default). The CLI is a client of it.
//!
//! Every route sits behind [`guard`]: right host, no cross-site caller, the node's token,
//! and a JSON (or, for uploads, octet-stream) body on anything that changes state. Path and
//! query parameters are parsed by the grammar of their kind ([`params`]) before any handler
//! sees them.

pub mod guard;
pub mod params;
mod publish;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::node::{ErrorKind, Node, NodeError};
use params::{AppId, Key, KeyPrefix, ManifestId, Valid};

/// The API with its front door: `guard` decides who gets in.
pub fn routes(node: Arc<Node>, guard: Arc<guard::Guard>) -> Router {
    unguarded(node).layer(axum::middleware::from_fn_with_state(guard, guard::check))
}

fn unguarded(node: Arc<Node>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/swarm", get(swarm_status))
        .route("/v1/catalog/apps", get(catalog_apps))
        .route("/v1/catalog/pull", post(pull))
        .route("/v1/market", get(market))
        .route("/v1/market/discover", post(discover))
        .route("/v1/market/{app}", get(market_show))
        .route("/v1/market/{app}/install", post(market_install))
        .route("/v1/trust/keys", get(trusted_keys))
        .route("/v1/trust/keys/{key}", post(trust_key).delete(untrust_key))
        .route("/v1/apps", get(apps))
        .route("/v1/apps/{id}", get(app).delete(uninstall))
        .route("/v1/apps/{id}/install", post(install))
        .route("/v1/apps/{id}/start", post(start))
        .route("/v1/apps/{id}/stop", post(stop))
        .route("/v1/apps/{id}/update", post(update))
        .route("/v1/apps/{id}/restart", post(restart))
        .route(archy_api::routes::OPENAPI, get(openapi))
        .with_state(node.clone())
        .merge(publish::routes(node))
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::CrossSite => StatusCode::FORBIDDEN,
            ErrorKind::WrongHost => StatusCode::MISDIRECTED_REQUEST,
            ErrorKind::WrongContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
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

async fn openapi() -> axum::Json<archy_api::utoipa::openapi::OpenApi> {
    axum::Json(archy_api::openapi())
}

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
    Valid(AppId(id)): Valid<AppId>,
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
    Valid(ManifestId(id)): Valid<ManifestId>,
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
    Valid(Key(key)): Valid<Key>,
) -> ApiResult<serde_json::Value> {
    let hex = node.trust_key(&key).await?;
    Ok(axum::Json(serde_json::json!({ "trusted": hex })))
}

async fn untrust_key(
    State(node): State<Arc<Node>>,
    Valid(Key(key)): Valid<Key>,
) -> ApiResult<serde_json::Value> {
    let hex = node.untrust_key(&key).await?;
    Ok(axum::Json(serde_json::json!({ "untrusted": hex })))
}

async fn market_show(
    State(node): State<Arc<Node>>,
    Valid(ManifestId(app)): Valid<ManifestId>,
) -> ApiResult<Vec<crate::node::MarketDetail>> {
    node.market_show(&app).await.map(axum::Json)
}

#[derive(Deserialize)]
struct MarketInstallQuery {
    /// The publisher's Nostr key (hex, or a prefix), when several list the app.
    #[serde(default, deserialize_with = "params::deserialize_opt")]
    publisher: Option<KeyPrefix>,
    /// The operator accepts a publisher below the trust threshold.
    #[serde(default)]
    approve: bool,
    #[serde(default)]
    stream: bool,
}

async fn market_install(
    State(node): State<Arc<Node>>,
    Valid(ManifestId(app)): Valid<ManifestId>,
    Query(q): Query<MarketInstallQuery>,
) -> Response {
    let run = move |sink: Box<dyn Fn(archy_orchestrator::Progress) + Send + Sync>| async move {
        let publisher = q.publisher.map(|p| p.0);
        node.install_listing(&app, publisher.as_deref(), q.approve, &sink)
            .await
    };
    if q.stream {
        stream_progress(run)
    } else {
        run(Box::new(|_| {})).await.map(axum::Json).into_response()
    }
}

async fn start(
    State(node): State<Arc<Node>>,
    Valid(AppId(id)): Valid<AppId>,
) -> ApiResult<crate::node::AppView> {
    node.start_app(&id).await.map(axum::Json)
}

async fn restart(
    State(node): State<Arc<Node>>,
    Valid(AppId(id)): Valid<AppId>,
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
    Valid(AppId(id)): Valid<AppId>,
    Query(q): Query<UpdateQuery>,
) -> ApiResult<crate::node::AppView> {
    node.update(&id, q.approve).await.map(axum::Json)
}

async fn stop(
    State(node): State<Arc<Node>>,
    Valid(AppId(id)): Valid<AppId>,
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
    Valid(AppId(id)): Valid<AppId>,
    Query(q): Query<UninstallQuery>,
) -> ApiResult<serde_json::Value> {
    node.uninstall(&id, q.purge)
        .await
        .map(|()| axum::Json(serde_json::json!({ "uninstalled": id, "purged": q.purge })))
}
