//! The origin's HTTP side for the swarm: where its iroh endpoint listens, and blobs by
//! hash with single-range `Range` support (so an interrupted download can resume).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{BlobRef, Swarm};

/// Routes: `GET /v1/swarm/addr` (this node's [`crate::PeerAddr`] as JSON),
/// `GET /v1/blobs/{blake3}` (the blob's bytes, `Range: bytes=a-b` honoured) and
/// `POST /v1/swarm/get` (iroh-blobs' verified get protocol over HTTP, the fetch policy's
/// HTTP fallback).
pub fn http_routes(swarm: Arc<Swarm>) -> Router {
    Router::new()
        .route("/v1/swarm/addr", get(addr))
        .route("/v1/blobs/{hash}", get(blob))
        .route(
            "/v1/swarm/get",
            post(crate::http_bao::serve_get)
                .layer(DefaultBodyLimit::max(crate::http_bao::MAX_REQUEST_BYTES)),
        )
        .with_state(swarm)
}

async fn addr(State(swarm): State<Arc<Swarm>>) -> impl IntoResponse {
    axum::Json(swarm.addr())
}

fn text(status: StatusCode, message: String) -> Response {
    (status, message + "\n").into_response()
}

/// Parses `bytes=START-END` or `bytes=START-` against a blob of `size` bytes.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (s, "") => (s.parse().ok()?, size.checked_sub(1)?),
        (s, e) => (
            s.parse().ok()?,
            e.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

async fn blob(
    State(swarm): State<Arc<Swarm>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(blob) = BlobRef::from_hex(&hash, 0) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("{hash:?} is not a BLAKE3 hash"),
        );
    };
    let size = match swarm.complete_size(&blob.hash).await {
        Ok(Some(size)) => size,
        Ok(None) => return text(StatusCode::NOT_FOUND, format!("no complete blob {hash}")),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(value) => match parse_range(value, size) {
            Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
            None => {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                )
                    .into_response();
            }
        },
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut reader = swarm.reader(&blob.hash);
    if let Err(e) = reader.seek(std::io::SeekFrom::Start(start)).await {
        return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    // Large reads: the default 4 KiB makes serving CPU-bound on small chunks.
    let stream = tokio_util::io::ReaderStream::with_capacity(reader.take(len), 256 * 1024);
    let body = Body::from_stream(Counted {
        inner: stream,
        swarm: swarm.clone(),
        hash: blob.hash,
        sent: 0,
    });
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    response
        .body(body)
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A body stream that counts what it sent into the swarm's metrics when it ends (or the
/// client goes away), so the origin can tell how much the swarm spared it.
struct Counted<S> {
    inner: S,
    swarm: Arc<Swarm>,
    hash: iroh_blobs::Hash,
    sent: u64,
}

impl<S> futures::Stream for Counted<S>
where
    S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let item = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &item {
            self.sent += chunk.len() as u64;
        }
        item
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.swarm.count_served_http(&self.hash, self.sent);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
