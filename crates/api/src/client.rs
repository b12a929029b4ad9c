//! A typed async client of the node's API: one method per route, answers as the types of
//! this crate, errors as [`ClientError`] (the node's own [`ApiError`] when it answered).

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind};
use crate::operations::{OPERATION_HEADER, OperationResult, OperationStreamEvent, OperationView};
use crate::routes;
use crate::token::{Token, TokenError, read_token};
use crate::types::*;

/// How long one call may take: installs wait for health checks, so give them room.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);

/// Why a call did not give its answer. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error: its message and its stable kind.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Nothing answered at the API's address (or not in time).
    #[error("cannot reach the node API at {base} (is `archy node run` running?)")]
    Unreachable {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer started and then broke off.
    #[error("the node API's answer to {what} broke off; try again")]
    Broken {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// The node answered something this contract does not describe.
    #[error(
        "the node API answered {what} with something this client does not understand \
         ({detail}); are `archy` and the node the same version?"
    )]
    Protocol { what: String, detail: String },
    /// A progress stream ended without its result line.
    #[error(
        "the node closed the {what} stream without a result; `archy app status {id}` tells what happened"
    )]
    StreamEnded { what: String, id: String },
    /// The token file cannot be used.
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot set up an HTTP client for the node API")]
    Setup(#[source] reqwest::Error),
}

impl ClientError {
    /// The node's error kind, when the node answered with an error.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Api(e) => Some(e.kind),
            _ => None,
        }
    }
}

/// A stream of an operation's events: progress, then its result or its error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<OperationEvent, ClientError>> + Send>>;

/// A client of one node's API, sending its token with every request.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:7878`) with [`DEFAULT_TIMEOUT`].
    pub fn new(base: &str, token: &Token) -> Result<Self, ClientError> {
        Self::with_timeout(base, token, DEFAULT_TIMEOUT)
    }

    /// A client whose calls may each take up to `timeout`.
    pub fn with_timeout(base: &str, token: &Token, timeout: Duration) -> Result<Self, ClientError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
            .map_err(|_| TokenError::NotAHeader)?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// A client with the token read from `path` ([`read_token`]: refused when others can
    /// read it).
    pub fn from_token_file(base: &str, path: &Path) -> Result<Self, ClientError> {
        Self::new(base, &read_token(path)?)
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                base: self.base.clone(),
                source,
            })
    }

    /// A state change: the API takes those only with a JSON body type.
    fn change(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header(CONTENT_TYPE, "application/json")
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        answer(&format!("GET {path}"), response).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(self.change(reqwest::Method::POST, path)).await?;
        answer(&format!("POST {path}"), response).await
    }

    async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self
            .send(self.change(reqwest::Method::DELETE, path))
            .await?;
        answer(&format!("DELETE {path}"), response).await
    }

    // ---- node ----

    /// `GET /v1/status`
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.get(routes::STATUS).await
    }

    /// `GET /v1/swarm`
    pub async fn swarm(&self) -> Result<SwarmStatus, ClientError> {
        self.get(routes::SWARM).await
    }

    /// `POST /v1/swarm/fetch/{hash}`
    pub async fn swarm_fetch(&self, hash: &str) -> Result<SwarmFetch, ClientError> {
        self.post(&routes::swarm_fetch(hash)).await
    }

    /// `GET /v1/openapi.json`: the node's own description of its API.
    pub async fn openapi(&self) -> Result<utoipa::openapi::OpenApi, ClientError> {
        self.get(routes::OPENAPI).await
    }

    // ---- catalog ----

    /// `GET /v1/catalog/apps`
    pub async fn catalog_apps(&self) -> Result<Vec<CatalogAppView>, ClientError> {
        self.get(routes::CATALOG_APPS).await
    }

    /// `POST /v1/catalog/pull`
    pub async fn pull_catalog(&self) -> Result<PullResponse, ClientError> {
        self.post(routes::CATALOG_PULL).await
    }

    /// `GET /v1/catalog/apps/{id}/plan`: what installing `id` with its dependencies would
    /// install first; nothing is changed.
    pub async fn install_plan(&self, id: &str) -> Result<InstallPlan, ClientError> {
        self.get(&routes::catalog_app_plan(id)).await
    }

    /// `GET /v1/store`: the store's catalog apps, listings and publishers in one answer.
    pub async fn store(&self) -> Result<StoreView, ClientError> {
        self.get(routes::STORE).await
    }

    // ---- apps ----

    /// `GET /v1/apps`
    pub async fn apps(&self) -> Result<Vec<AppView>, ClientError> {
        self.get(routes::APPS).await
    }

    /// `GET /v1/apps/{id}`
    pub async fn app(&self, id: &str) -> Result<AppView, ClientError> {
        self.get(&routes::app(id)).await
    }

    /// `POST /v1/apps/{id}/install?stream=true`: `on_progress` sees each progress event;
    /// the installed app at the end.
    pub async fn install(
        &self,
        id: &str,
        with_dependencies: bool,
        on_progress: impl FnMut(&Progress),
    ) -> Result<AppView, ClientError> {
        let events = self.install_events(id, with_dependencies).await?;
        run_operation(events, "install", id, on_progress).await
    }

    /// `POST /v1/apps/{id}/install?stream=true` as a stream of events.
    pub async fn install_events(
        &self,
        id: &str,
        with_dependencies: bool,
    ) -> Result<EventStream, ClientError> {
        self.events(&routes::app_install(id, true, with_dependencies))
            .await
    }

    /// `POST /v1/apps/{id}/start`
    pub async fn start(&self, id: &str) -> Result<AppView, ClientError> {
        self.post(&routes::app_start(id)).await
    }

    /// `POST /v1/apps/{id}/stop`
    pub async fn stop(&self, id: &str) -> Result<AppView, ClientError> {
        self.post(&routes::app_stop(id)).await
    }

    /// `POST /v1/apps/{id}/restart`
    pub async fn restart(&self, id: &str) -> Result<AppView, ClientError> {
        self.post(&routes::app_restart(id)).await
    }

    /// `POST /v1/apps/{id}/adopt`
    pub async fn adopt(&self, id: &str) -> Result<AppView, ClientError> {
        self.post(&routes::app_adopt(id)).await
    }

    /// `POST /v1/apps/{id}/update?approve=…`
    pub async fn update(&self, id: &str, approve: bool) -> Result<AppView, ClientError> {
        self.post(&routes::app_update(id, approve)).await
    }

    /// `DELETE /v1/apps/{id}?purge=…`
    pub async fn uninstall(&self, id: &str, purge: bool) -> Result<Uninstalled, ClientError> {
        self.delete(&routes::uninstall(id, purge)).await
    }

    // ---- market ----

    /// `GET /v1/market`
    pub async fn market(&self) -> Result<Vec<MarketRow>, ClientError> {
        self.get(routes::MARKET).await
    }

    /// `POST /v1/market/discover`
    pub async fn discover(&self) -> Result<DiscoverResponse, ClientError> {
        self.post(routes::MARKET_DISCOVER).await
    }

    /// `GET /v1/market/{app}`
    pub async fn market_show(&self, app: &str) -> Result<Vec<MarketDetail>, ClientError> {
        self.get(&routes::market_app(app)).await
    }

    /// `POST /v1/market/{app}/install?stream=true`: `on_progress` sees each progress
    /// event; the installed app at the end.
    pub async fn market_install(
        &self,
        app: &str,
        publisher: Option<&str>,
        approve: bool,
        on_progress: impl FnMut(&Progress),
    ) -> Result<AppView, ClientError> {
        let events = self.market_install_events(app, publisher, approve).await?;
        run_operation(events, "install", app, on_progress).await
    }

    /// `POST /v1/market/{app}/install?stream=true` as a stream of events.
    pub async fn market_install_events(
        &self,
        app: &str,
        publisher: Option<&str>,
        approve: bool,
    ) -> Result<EventStream, ClientError> {
        self.events(&routes::market_install(app, publisher, approve, true))
            .await
    }

    /// `GET /v1/trust/keys`
    pub async fn trusted_keys(&self) -> Result<Vec<TrustedKey>, ClientError> {
        self.get(routes::TRUST_KEYS).await
    }

    /// `POST /v1/trust/keys/{key}`
    pub async fn trust_key(&self, key: &str) -> Result<Trusted, ClientError> {
        self.post(&routes::trust_key(key)).await
    }

    /// `DELETE /v1/trust/keys/{key}`
    pub async fn untrust_key(&self, key: &str) -> Result<Untrusted, ClientError> {
        self.delete(&routes::trust_key(key)).await
    }

    // ---- the operator's key ----

    /// `GET /v1/operator`
    pub async fn operator(&self) -> Result<OperatorView, ClientError> {
        self.get(routes::OPERATOR).await
    }

    /// `POST /v1/operator/key`: the node takes `mnemonic` as its operator key.
    pub async fn import_operator_key(
        &self,
        request: &ImportOperatorKey,
    ) -> Result<OperatorView, ClientError> {
        self.send_json(reqwest::Method::POST, routes::OPERATOR_KEY, request)
            .await
    }

    /// `POST /v1/operator/follow`
    pub async fn follow(&self, request: &FollowRequest) -> Result<VouchResponse, ClientError> {
        self.send_json(reqwest::Method::POST, routes::OPERATOR_FOLLOW, request)
            .await
    }

    /// `POST /v1/operator/unfollow`
    pub async fn unfollow(&self, request: &FollowRequest) -> Result<VouchResponse, ClientError> {
        self.send_json(reqwest::Method::POST, routes::OPERATOR_UNFOLLOW, request)
            .await
    }

    /// `POST /v1/operator/endorse`
    pub async fn endorse(&self, request: &EndorseRequest) -> Result<VouchResponse, ClientError> {
        self.send_json(reqwest::Method::POST, routes::OPERATOR_ENDORSE, request)
            .await
    }

    /// `POST /v1/operator/report`
    pub async fn report(&self, request: &ReportRequest) -> Result<VouchResponse, ClientError> {
        self.send_json(reqwest::Method::POST, routes::OPERATOR_REPORT, request)
            .await
    }

    // ---- settings ----

    /// `GET /v1/settings`
    pub async fn settings(&self) -> Result<Settings, ClientError> {
        self.get(routes::SETTINGS).await
    }

    /// `PUT /v1/settings`: changes the fields `update` names; the settings now in effect.
    pub async fn update_settings(&self, update: &SettingsUpdate) -> Result<Settings, ClientError> {
        self.send_json(reqwest::Method::PUT, routes::SETTINGS, update)
            .await
    }

    /// A state change with a JSON body, answered with a `T`.
    async fn send_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let what = format!("{method} {path}");
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        let response = self.send(self.change(method, path).body(body)).await?;
        answer(&what, response).await
    }

    // ---- publish ----

    /// `POST /v1/publish`
    pub async fn begin_publish(
        &self,
        request: &BeginPublish,
    ) -> Result<PublishSession, ClientError> {
        self.send_json(reqwest::Method::POST, routes::PUBLISH, request)
            .await
    }

    /// `PUT /v1/publish/{session}/{artifact}`: exactly `size` bytes from `body`.
    pub async fn upload_artifact(
        &self,
        session: &str,
        artifact: &str,
        size: u64,
        body: impl Into<reqwest::Body>,
    ) -> Result<UploadedArtifact, ClientError> {
        let path = routes::publish_artifact(session, artifact);
        let response = self
            .send(
                self.http
                    .put(self.url(&path))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body),
            )
            .await?;
        answer(&format!("PUT {path}"), response).await
    }

    /// `POST /v1/publish/{session}/finish`
    pub async fn finish_publish(&self, session: &str) -> Result<PublishFinished, ClientError> {
        self.post(&routes::publish_finish(session)).await
    }

    /// `DELETE /v1/publish/{session}`
    pub async fn abort_publish(&self, session: &str) -> Result<PublishAborted, ClientError> {
        self.delete(&routes::publish_session(session)).await
    }

    /// `GET /v1/apps/{id}/logs`: the last `tail` lines of a container (only those written
    /// `since`, an RFC 3339 time or a duration such as `10m`, when given), then (with
    /// `follow`) new ones until the stream is dropped.
    pub async fn logs(
        &self,
        id: &str,
        container: &str,
        tail: u32,
        follow: bool,
        since: Option<&str>,
    ) -> Result<Pin<Box<dyn Stream<Item = Result<LogLine, ClientError>> + Send>>, ClientError> {
        let path = routes::app_logs(id, container, tail, follow, since);
        let what = format!("GET {path}");
        let mut request = self.http.get(self.url(&path));
        if follow {
            // A followed log is open for as long as the reader wants it.
            request = request.timeout(Duration::from_secs(365 * 24 * 3600));
        }
        let response = self.send(request).await?;
        let response = streaming(&what, response).await?;
        Ok(ndjson(what, response))
    }

    /// Starts a streaming operation and hands back its events, one per NDJSON line.
    async fn events(&self, path: &str) -> Result<EventStream, ClientError> {
        let what = format!("POST {path}");
        let response = self.send(self.change(reqwest::Method::POST, path)).await?;
        let response = streaming(&what, response).await?;
        Ok(ndjson(what, response))
    }

    /// Sends a request that starts an operation with `stream=true`: the operation's id (from
    /// [`OPERATION_HEADER`]) and its events.
    async fn operation_request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<StartedOperation, ClientError> {
        let what = format!("{method} {path}");
        let response = self.send(self.change(method, path)).await?;
        let response = streaming(&what, response).await?;
        let id = operation_id(&response);
        Ok(StartedOperation {
            id,
            events: ndjson(what, response),
        })
    }

    // ---- operations ----

    /// `GET /v1/operations`: running operations and the last finished ones, newest first.
    pub async fn operations(&self) -> Result<Vec<OperationView>, ClientError> {
        self.get(routes::OPERATIONS).await
    }

    /// `GET /v1/operations/{id}`
    pub async fn operation(&self, id: u64) -> Result<OperationView, ClientError> {
        self.get(&routes::operation(id)).await
    }

    /// `GET /v1/operations/{id}/events`: the operation's events so far, then each new one,
    /// up to its result or error (re-attaching to an operation another client started).
    pub async fn operation_events(&self, id: u64) -> Result<OperationStream, ClientError> {
        let path = routes::operation_events(id);
        let what = format!("GET {path}");
        let response = self.send(self.http.get(self.url(&path))).await?;
        let response = streaming(&what, response).await?;
        Ok(ndjson(what, response))
    }

    /// `POST /v1/apps/{id}/install?stream=true`, with the operation's id.
    pub async fn install_operation(
        &self,
        id: &str,
        with_dependencies: bool,
    ) -> Result<StartedOperation, ClientError> {
        self.operation_request(
            reqwest::Method::POST,
            &routes::app_install(id, true, with_dependencies),
        )
        .await
    }

    /// `POST /v1/market/{app}/install?stream=true`, with the operation's id.
    pub async fn market_install_operation(
        &self,
        app: &str,
        publisher: Option<&str>,
        approve: bool,
    ) -> Result<StartedOperation, ClientError> {
        self.operation_request(
            reqwest::Method::POST,
            &routes::market_install(app, publisher, approve, true),
        )
        .await
    }

    /// `POST /v1/apps/{id}/update?approve=…&stream=true`, with the operation's id.
    pub async fn update_operation(
        &self,
        id: &str,
        approve: bool,
    ) -> Result<StartedOperation, ClientError> {
        let path = format!("{}&stream=true", routes::app_update(id, approve));
        self.operation_request(reqwest::Method::POST, &path).await
    }

    /// `DELETE /v1/apps/{id}?purge=…&stream=true`, with the operation's id.
    pub async fn uninstall_operation(
        &self,
        id: &str,
        purge: bool,
    ) -> Result<StartedOperation, ClientError> {
        let path = format!("{}&stream=true", routes::uninstall(id, purge));
        self.operation_request(reqwest::Method::DELETE, &path).await
    }
}

/// An operation's events as a stream: progress, then its result or its error.
pub type OperationStream =
    Pin<Box<dyn Stream<Item = Result<OperationStreamEvent, ClientError>> + Send>>;

/// An operation a request started: its id (when the node named it) and its events.
pub struct StartedOperation {
    pub id: Option<u64>,
    pub events: OperationStream,
}

/// Drives an operation's events to its end: progress to `on_progress`, then the result.
/// A stream that ends without its final line is [`ClientError::StreamEnded`] (`id` names
/// the app or operation in the hint).
pub async fn follow_operation(
    mut events: OperationStream,
    what: &str,
    id: &str,
    mut on_progress: impl FnMut(&Progress),
) -> Result<OperationResult, ClientError> {
    while let Some(event) = events.next().await {
        match event? {
            OperationStreamEvent::Progress { progress } => on_progress(&progress),
            OperationStreamEvent::Result { result } => return Ok(result),
            OperationStreamEvent::Error(e) => return Err(ClientError::Api(e)),
        }
    }
    Err(ClientError::StreamEnded {
        what: what.to_owned(),
        id: id.to_owned(),
    })
}

/// The operation a response names in [`OPERATION_HEADER`].
fn operation_id(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(OPERATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The response of a streaming request, or its error.
async fn streaming(
    what: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ClientError> {
    if response.status().is_success() {
        return Ok(response);
    }
    Err(answer::<serde_json::Value>(what, response)
        .await
        .err()
        .unwrap_or_else(|| protocol(what, "an error status with a success body")))
}

/// A response body of NDJSON lines, each parsed as a `T`.
fn ndjson<T: DeserializeOwned + Send + 'static>(
    what: String,
    response: reqwest::Response,
) -> Pin<Box<dyn Stream<Item = Result<T, ClientError>> + Send>> {
    struct Lines {
        body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
        pending: Vec<u8>,
        what: String,
        done: bool,
    }
    let lines = Lines {
        body: Box::pin(response.bytes_stream()),
        pending: Vec::new(),
        what,
        done: false,
    };
    Box::pin(futures::stream::unfold(lines, |mut s| async move {
        loop {
            if let Some(end) = s.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = s.pending.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let event = serde_json::from_slice::<T>(&line)
                    .map_err(|e| protocol(&s.what, &format!("a stream line: {e}")));
                return Some((event, s));
            }
            if s.done {
                return None;
            }
            match s.body.next().await {
                Some(Ok(chunk)) => s.pending.extend_from_slice(&chunk),
                Some(Err(source)) => {
                    s.done = true;
                    let what = s.what.clone();
                    return Some((Err(ClientError::Broken { what, source }), s));
                }
                None => {
                    s.done = true;
                    if !s.pending.iter().all(u8::is_ascii_whitespace) {
                        s.pending.push(b'\n');
                    }
                }
            }
        }
    }))
}

/// Drives an operation's events to its end: progress to `on_progress`, then the result.
async fn run_operation(
    mut events: EventStream,
    what: &str,
    id: &str,
    mut on_progress: impl FnMut(&Progress),
) -> Result<AppView, ClientError> {
    while let Some(event) = events.next().await {
        match event? {
            OperationEvent::Progress { progress } => on_progress(&progress),
            OperationEvent::Result { result } => return Ok(result),
            OperationEvent::Error(e) => return Err(ClientError::Api(e)),
        }
    }
    Err(ClientError::StreamEnded {
        what: what.to_owned(),
        id: id.to_owned(),
    })
}

fn protocol(what: &str, detail: &str) -> ClientError {
    ClientError::Protocol {
        what: what.to_owned(),
        detail: detail.to_owned(),
    }
}

/// The typed answer, or the node's error.
async fn answer<T: DeserializeOwned>(
    what: &str,
    response: reqwest::Response,
) -> Result<T, ClientError> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|source| ClientError::Broken {
            what: what.to_owned(),
            source,
        })?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ApiError>(&body) {
            Ok(e) => ClientError::Api(e),
            Err(_) => protocol(
                what,
                &format!(
                    "HTTP {status} without an error body: {:?}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            ),
        });
    }
    serde_json::from_slice(&body).map_err(|e| protocol(what, &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers one request with `status`, `content_type` and `body`; returns the request.
    async fn serve_once(
        status: &'static str,
        content_type: &'static str,
        body: String,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        (base, server)
    }

    fn client(base: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(base, &Token::new(&"ab".repeat(32))).unwrap()
    }

    fn app_json() -> serde_json::Value {
        serde_json::json!({
            "id": "hello", "version": "1.0.0", "desired": "running", "state": "running",
            "containers": [{"name": "archy-hello-web", "state": "running"}],
            "url": "http://127.0.0.1:18080/", "warnings": []
        })
    }

    #[tokio::test]
    async fn a_stream_gives_progress_then_the_app() {
        let body = format!(
            "{}\n{}\n{}\n",
            serde_json::json!({"progress": {"stage": "fetching", "done": 5, "total": 10, "detail": "image"}}),
            serde_json::json!({"progress": {"stage": "waiting_for_health", "done": 0, "total": 1, "detail": "web"}}),
            serde_json::json!({ "result": app_json() }),
        );
        let (base, server) = serve_once("200 OK", "application/x-ndjson", body).await;
        let mut seen = Vec::new();
        let app = client(&base)
            .install("hello", true, |p| seen.push(p.stage))
            .await
            .unwrap();
        assert_eq!(app.state, AppState::Running);
        assert_eq!(seen, [Stage::Fetching, Stage::WaitingForHealth]);
        let request = server.await.unwrap();
        assert!(
            request.starts_with(
                "POST /v1/apps/hello/install?stream=true&with_dependencies=true HTTP/1.1"
            ),
            "{request}"
        );
        let lower = request.to_ascii_lowercase();
        assert!(lower.contains(&format!("authorization: bearer {}", "ab".repeat(32))));
        assert!(lower.contains("content-type: application/json"));
    }

    #[tokio::test]
    async fn a_failed_stream_and_an_error_answer_are_typed() {
        let body = format!(
            "{}\n{}\n",
            serde_json::json!({"progress": {"stage": "checking", "done": 0, "total": 1, "detail": ""}}),
            serde_json::json!({"error": "port 18080 is in use", "kind": "conflict"}),
        );
        let (base, _server) = serve_once("200 OK", "application/x-ndjson", body).await;
        let err = client(&base)
            .install("hello", false, |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Some(ErrorKind::Conflict));
        assert_eq!(err.to_string(), "port 18080 is in use");

        let (base, _server) = serve_once(
            "404 Not Found",
            "application/json",
            r#"{"error":"hello is not installed","kind":"not_found"}"#.to_owned(),
        )
        .await;
        let err = client(&base).app("hello").await.unwrap_err();
        assert_eq!(err.kind(), Some(ErrorKind::NotFound));

        let (base, _server) = serve_once("200 OK", "application/x-ndjson", String::new()).await;
        let err = client(&base)
            .install("hello", false, |_| {})
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("`archy app status hello`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_operation_names_its_id_and_any_result() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            let body = format!(
                "{}\n",
                serde_json::json!({"result": {"uninstalled": "hello", "purged": true}})
            );
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n{OPERATION_HEADER}: 42\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        let started = client(&base)
            .uninstall_operation("hello", true)
            .await
            .unwrap();
        assert_eq!(started.id, Some(42));
        let result = follow_operation(started.events, "uninstall", "hello", |_| {})
            .await
            .unwrap();
        assert_eq!(
            result,
            OperationResult::Uninstalled(Uninstalled {
                uninstalled: "hello".into(),
                purged: true
            })
        );
        let request = server.await.unwrap();
        assert!(
            request.starts_with("DELETE /v1/apps/hello?purge=true&stream=true HTTP/1.1"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_node_is_named_with_the_hint() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let err = client(&base).status().await.unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }));
        assert_eq!(
            err.to_string(),
            format!("cannot reach the node API at {base} (is `archy node run` running?)")
        );
    }

    #[tokio::test]
    async fn an_answer_outside_the_contract_is_a_protocol_error() {
        let (base, _server) =
            serve_once("200 OK", "application/json", r#"{"id":"hello"}"#.to_owned()).await;
        let err = client(&base).app("hello").await.unwrap_err();
        assert!(matches!(err, ClientError::Protocol { .. }), "{err}");
    }
}
