//! Bounded GETs from an origin (catalog, root versions, swarm address): the body is capped
//! before and while it is read, the whole exchange has one deadline, and a failure says
//! what happened (timeout, refused connection, broken body), not reqwest's outer wording.
//! [`OriginHttp`] is the origin as a [`CatalogSource`].

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;

use super::transport::{CatalogSource, Document, SourceError};
use super::{ErrorKind, Node, NodeError};

impl Node {
    /// GET with a hard cap on the body; a 404 is an error here.
    pub(super) async fn get_bounded(&self, url: &str, limit: usize) -> Result<Vec<u8>, NodeError> {
        self.get_optional(url, limit).await?.ok_or_else(|| {
            NodeError::new(
                ErrorKind::Unavailable,
                format!("{url} answered 404 Not Found"),
            )
        })
    }

    /// GET with a hard cap on the body, checked before and while reading; a 404 means
    /// "there is none". The whole exchange must finish within [`ORIGIN_TIMEOUT`].
    pub(super) async fn get_optional(
        &self,
        url: &str,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, NodeError> {
        Ok(fetch_optional(&self.http, url, limit, ORIGIN_TIMEOUT).await?)
    }
}

/// The origin's HTTP server as a catalog source: `GET /v1/root/{N}`, `GET /v1/catalog`,
/// `GET /v1/catalog/{N}`, each bounded by [`fetch_optional`].
pub(super) struct OriginHttp {
    http: reqwest::Client,
    /// The origin's base URL, without a trailing '/'.
    base: String,
}

impl OriginHttp {
    pub(super) fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }
}

impl CatalogSource for OriginHttp {
    fn locate(&self, doc: Document) -> String {
        let base = &self.base;
        match doc {
            Document::Root(v) => format!("{base}/v1/root/{v}"),
            Document::Catalog => format!("{base}/v1/catalog"),
            Document::CatalogVersion(v) => format!("{base}/v1/catalog/{v}"),
        }
    }

    fn fetch(&self, doc: Document, limit: usize) -> BoxFuture<'_, Result<Vec<u8>, SourceError>> {
        Box::pin(async move {
            let url = self.locate(doc);
            fetch_optional(&self.http, &url, limit, ORIGIN_TIMEOUT)
                .await?
                .ok_or_else(|| SourceError::NotFound(format!("{url} answered 404 Not Found")))
        })
    }
}

impl From<SourceError> for NodeError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::NotFound(m) | SourceError::Unavailable(m) => {
                NodeError::new(ErrorKind::Unavailable, m)
            }
            SourceError::Refused(m) => NodeError::new(ErrorKind::Refused, m),
        }
    }
}

/// Everything the node fetches from an origin (catalog, roots, swarm address) must have
/// arrived, body included, within this.
const ORIGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// [`Node::get_optional`] with its client and deadline. Failures say what happened: the
/// origin did not answer in time, could not be connected to, or broke off.
async fn fetch_optional(
    http: &reqwest::Client,
    url: &str,
    limit: usize,
    deadline: Duration,
) -> Result<Option<Vec<u8>>, SourceError> {
    let mut body = Vec::new();
    let fetch = async {
        let response = http
            .get(url)
            .timeout(deadline)
            .send()
            .await
            .map_err(|e| fetch_error(url, deadline, &e, None))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(SourceError::Unavailable(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(SourceError::Refused(format!(
                "{url} is larger than the {limit}-byte limit"
            )));
        }
        // Sized once when the length is known: grown by doubling, a 10 MB catalog took 16 MB.
        if let Some(len) = response.content_length() {
            body.reserve_exact(len as usize);
        }
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fetch_error(url, deadline, &e, Some(body.len())))?;
            if body.len() + chunk.len() > limit {
                return Err(SourceError::Refused(format!(
                    "{url} sent more than the {limit}-byte limit"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(()))
    };
    // reqwest's own deadline should fire first; this one holds whatever it classifies.
    match tokio::time::timeout(deadline + Duration::from_millis(100), fetch).await {
        Ok(Ok(Some(()))) => Ok(Some(body)),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(timed_out(url, deadline, Some(body.len()))),
    }
}

fn timed_out(url: &str, deadline: Duration, received: Option<usize>) -> SourceError {
    SourceError::Unavailable(format!(
        "origin did not answer within {} s: GET {url}{}",
        deadline.as_secs_f64(),
        match received {
            Some(n) => format!(" (the body stopped after {n} bytes)"),
            None => String::new(),
        }
    ))
}

/// Names a failed fetch by what happened, not by reqwest's outermost wording ("error
/// decoding response body" for a body that stopped coming).
fn fetch_error(
    url: &str,
    deadline: Duration,
    e: &reqwest::Error,
    received: Option<usize>,
) -> SourceError {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_connect() {
        let why = if e.is_timeout() {
            "the connection attempt timed out".to_owned()
        } else {
            cause.to_string()
        };
        return SourceError::Unavailable(format!("cannot connect to {url}: {why}"));
    }
    if e.is_timeout() {
        return timed_out(url, deadline, received);
    }
    let message = match received {
        Some(n) => format!("{url}: the connection broke after {n} bytes of the body: {cause}"),
        None => format!("cannot fetch {url}: {cause}"),
    };
    SourceError::Unavailable(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on loopback that accepts and then sends `reply` (if any) and nothing more.
    async fn silent_server(reply: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/catalog", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // Read the request head, then answer (or not).
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(reply).await;
                held.push(socket);
            }
        });
        url
    }

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    #[tokio::test]
    async fn a_silent_origin_is_named_as_a_timeout_with_deadline_and_url() {
        let http = client();
        let url = silent_server(b"").await;
        let err = fetch_optional(&http, &url, 1024, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SourceError::Unavailable(format!("origin did not answer within 0.3 s: GET {url}"))
        );
        // Headers, then a body that never comes: still a timeout, not a decoding error.
        let url = silent_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789").await;
        let err = fetch_optional(&http, &url, 1024, Duration::from_millis(300))
            .await
            .unwrap_err();
        let SourceError::Unavailable(message) = err else {
            panic!("{err:?}")
        };
        assert!(
            message.starts_with("origin did not answer within 0.3 s: GET ")
                && message.contains(&url)
                && message.contains("after 10 bytes")
                && !message.contains("decoding"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_named_as_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/catalog", listener.local_addr().unwrap());
        drop(listener);
        let err = fetch_optional(&client(), &url, 1024, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SourceError::Unavailable(m) if m.starts_with(&format!("cannot connect to {url}: "))),
            "{err:?}"
        );
    }
}
