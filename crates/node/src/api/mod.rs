//! The node's HTTP API (loopback by default). The CLI is a client of it.
//!
//! Every route sits behind [`guard`]: right host, no cross-site caller, the node's token,
//! and a JSON (or, for uploads, octet-stream) body on anything that changes state. Path and
//! query parameters are parsed by the grammar of their kind ([`params`]) before any handler
//! sees them.

pub mod guard;
pub mod operations;
mod operator;
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
use params::{AppId, Blake3Hex, Key, KeyPrefix, ManifestId, Valid};

/// The API with its front door: `guard` decides who gets in. Every error answer, axum's own
/// (unknown route, wrong method, a body or query that does not parse) included, is an
/// [`archy_api::ApiError`].
pub fn routes(node: Arc<Node>, guard: Arc<guard::Guard>) -> Router {
    unguarded(node)
        .fallback(unknown_route)
        .layer(axum::middleware::map_response(errors_as_json))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
}

async fn unknown_route(uri: axum::http::Uri) -> NodeError {
    NodeError::new(
        ErrorKind::NotFound,
        format!("no such API route: {}", uri.path()),
    )
}

/// Turns the plain-text errors axum's extractors answer with into the contract's error
/// body, keeping their status and message.
async fn errors_as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let kind = match status {
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::WrongContentType,
        s if s.is_server_error() => ErrorKind::Internal,
        _ => ErrorKind::Invalid,
    };
    let text = axum::body::to_bytes(response.into_body(), 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned()
    } else {
        text
    };
    // One status per kind, as the contract says; a wrong method keeps its 405.
    let status = if status == StatusCode::METHOD_NOT_ALLOWED {
        status
    } else {
        StatusCode::from_u16(kind.status()).unwrap_or(status)
    };
    (status, axum::Json(archy_api::ApiError::new(kind, message))).into_response()
}

/// The big read-only JSON answers, compressed (gzip or brotli) for a client that asks:
/// the store's is hundreds of KiB for a large catalog and marketplace, and repeats itself.
/// Only these: none carries a secret or a CSRF token, so a page that gets its own text into
/// one (a listing's description) learns nothing from the compressed size (BREACH).
fn compressed(node: Arc<Node>) -> Router {
    use tower_http::compression::CompressionLayer;
    use tower_http::compression::predicate::{Predicate, SizeAbove};
    // Successful JSON only: an error body stays plain for `errors_as_json` to read.
    let json_ok = |status: StatusCode,
                   _: axum::http::Version,
                   headers: &axum::http::HeaderMap,
                   _: &axum::http::Extensions| {
        status.is_success()
            && headers
                .get(axum::http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    };
    Router::new()
        .route(archy_api::routes::STORE, get(store))
        .route(archy_api::routes::CATALOG_APPS, get(catalog_apps))
        .route(archy_api::routes::MARKET, get(market))
        .route(archy_api::routes::MARKET_APP, get(market_show))
        .route(archy_api::routes::OPENAPI, get(openapi))
        .with_state(node)
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .br(true)
                .compress_when(SizeAbove::new(1024).and(json_ok)),
        )
}

fn unguarded(node: Arc<Node>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/swarm", get(swarm_status))
        .route(archy_api::routes::SWARM_FETCH, post(swarm_fetch))
        .route("/v1/catalog/pull", post(pull))
        .route(archy_api::routes::CATALOG_APP_PLAN, get(install_plan))
        .route("/v1/market/discover", post(discover))
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
        .route(archy_api::routes::APP_LOGS, get(logs))
        .route(archy_api::routes::APP_ADOPT, post(adopt))
        .route(
            archy_api::routes::SETTINGS,
            get(settings).put(update_settings),
        )
        .with_state(node.clone())
        .merge(compressed(node.clone()))
        .merge(publish::routes(node.clone()))
        .merge(operator::routes(node.clone()))
        .merge(operations::routes(node))
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        // The contract holds the one kind -> status table.
        let status =
            StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            axum::Json(archy_api::ApiError::new(self.kind, self.message)),
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

async fn swarm_fetch(
    State(node): State<Arc<Node>>,
    Valid(Blake3Hex(hash)): Valid<Blake3Hex>,
) -> ApiResult<archy_api::SwarmFetch> {
    node.fetch_catalog_blob(&hash).await.map(axum::Json)
}

async fn catalog_apps(
    State(node): State<Arc<Node>>,
) -> ApiResult<Vec<crate::node::CatalogAppView>> {
    node.catalog_apps().await.map(axum::Json)
}

async fn store(State(node): State<Arc<Node>>) -> ApiResult<archy_api::StoreView> {
    node.store().await.map(axum::Json)
}

async fn install_plan(
    State(node): State<Arc<Node>>,
    Valid(ManifestId(id)): Valid<ManifestId>,
) -> ApiResult<archy_api::InstallPlan> {
    node.install_plan(&id).await.map(axum::Json)
}

async fn pull(State(node): State<Arc<Node>>) -> ApiResult<archy_api::PullResponse> {
    use archy_registry::CatalogUpdate;
    let update = node.pull_catalog().await?;
    Ok(axum::Json(match update {
        CatalogUpdate::Unchanged { version } => archy_api::PullResponse {
            result: format!("catalog version {version} is current"),
            updated: false,
            version,
            from: None,
            missed: 0,
        },
        CatalogUpdate::Updated { from, to, missed } => archy_api::PullResponse {
            result: match from {
                Some(f) => format!("catalog updated from version {f} to {to}"),
                None => format!("catalog version {to} accepted"),
            },
            updated: true,
            version: to,
            from,
            missed,
        },
    }))
}

async fn market(State(node): State<Arc<Node>>) -> ApiResult<Vec<archy_api::MarketRow>> {
    node.market().await.map(axum::Json)
}

async fn discover(State(node): State<Arc<Node>>) -> ApiResult<archy_api::DiscoverResponse> {
    node.discover_view().await.map(axum::Json)
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
    let request = crate::node::JobRequest::Install {
        id,
        with_dependencies: q.with_dependencies,
    };
    stream_progress(&node, request, q.stream).await
}

/// Runs an operation as a job of the node ([`operations::answer`]): with `stream`,
/// newline-delimited JSON progress events, then `{"result": …}` or `{"error": …}`;
/// otherwise the result at the end. The operation runs to its end even if the client goes
/// away: operations never stop halfway, and `GET /v1/operations/{id}/events` re-attaches.
async fn stream_progress(
    node: &Arc<Node>,
    request: crate::node::JobRequest,
    stream: bool,
) -> Response {
    operations::answer(node, request, stream).await
}

async fn trusted_keys(State(node): State<Arc<Node>>) -> ApiResult<Vec<archy_api::TrustedKey>> {
    node.trusted_keys().await.map(axum::Json)
}

async fn trust_key(
    State(node): State<Arc<Node>>,
    Valid(Key(key)): Valid<Key>,
) -> ApiResult<archy_api::Trusted> {
    let trusted = node.trust_key(&key).await?;
    Ok(axum::Json(archy_api::Trusted { trusted }))
}

async fn untrust_key(
    State(node): State<Arc<Node>>,
    Valid(Key(key)): Valid<Key>,
) -> ApiResult<archy_api::Untrusted> {
    let untrusted = node.untrust_key(&key).await?;
    Ok(axum::Json(archy_api::Untrusted { untrusted }))
}

async fn settings(State(node): State<Arc<Node>>) -> ApiResult<archy_api::Settings> {
    node.settings().await.map(axum::Json)
}

/// `PUT /v1/settings`: a refused value answers `invalid`, its message led by the field.
async fn update_settings(
    State(node): State<Arc<Node>>,
    axum::Json(update): axum::Json<archy_api::SettingsUpdate>,
) -> ApiResult<archy_api::Settings> {
    node.update_settings(update).await.map(axum::Json)
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
    let request = crate::node::JobRequest::MarketInstall {
        app,
        publisher: q.publisher.map(|p| p.0),
        approve: q.approve,
    };
    stream_progress(&node, request, q.stream).await
}

async fn start(State(node): State<Arc<Node>>, Valid(AppId(id)): Valid<AppId>) -> Response {
    stream_progress(&node, crate::node::JobRequest::Start { id }, false).await
}

async fn restart(State(node): State<Arc<Node>>, Valid(AppId(id)): Valid<AppId>) -> Response {
    stream_progress(&node, crate::node::JobRequest::Restart { id }, false).await
}

/// Records again an app whose labelled containers run but which this node forgot.
async fn adopt(
    State(node): State<Arc<Node>>,
    Valid(AppId(id)): Valid<AppId>,
) -> ApiResult<crate::node::AppView> {
    node.adopt(&id).await.map(axum::Json)
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
    Query(s): Query<archy_api::StreamQuery>,
) -> Response {
    let request = crate::node::JobRequest::Update {
        id,
        approve: q.approve,
    };
    stream_progress(&node, request, s.stream).await
}

async fn stop(State(node): State<Arc<Node>>, Valid(AppId(id)): Valid<AppId>) -> Response {
    stream_progress(&node, crate::node::JobRequest::Stop { id }, false).await
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
    Query(s): Query<archy_api::StreamQuery>,
) -> Response {
    let request = crate::node::JobRequest::Uninstall { id, purge: q.purge };
    stream_progress(&node, request, s.stream).await
}

/// `GET /v1/apps/{id}/logs`: NDJSON [`archy_api::LogLine`]s; with `follow`, open until the
/// client goes (which stops `podman logs`).
async fn logs(
    State(node): State<Arc<Node>>,
    Valid(AppId(id)): Valid<AppId>,
    Query(q): Query<archy_api::LogsQuery>,
) -> Result<Response, NodeError> {
    let container = params::parse::<params::ContainerName>(&q.container)?.0;
    let since = q
        .since
        .as_deref()
        .map(params::parse::<params::Since>)
        .transpose()?
        .map(|s| s.0);
    let rx = node.logs(&id, &container, q.tail, q.follow, since).await?;
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        let wire = archy_api::LogLine {
            container: line.container,
            line: line.line,
        };
        let text = serde_json::to_string(&wire).unwrap_or_default();
        Some((Ok::<_, std::convert::Infallible>(format!("{text}\n")), rx))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}
