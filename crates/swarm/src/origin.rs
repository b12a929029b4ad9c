//! The origin's HTTP side for the swarm: where its iroh endpoint listens, and blobs by hash.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::{BlobRef, Swarm};

/// Routes: `GET /v1/swarm/addr` (this node's [`crate::PeerAddr`] as JSON) and
/// `GET /v1/blobs/{blake3}` (the blob's bytes). Merge them into the origin's HTTP server.
pub fn http_routes(swarm: Arc<Swarm>) -> Router {
    Router::new()
        .route("/v1/swarm/addr", get(addr))
        .route("/v1/blobs/{hash}", get(blob))
        .with_state(swarm)
}

async fn addr(State(swarm): State<Arc<Swarm>>) -> impl IntoResponse {
    axum::Json(swarm.addr())
}

async fn blob(State(swarm): State<Arc<Swarm>>, Path(hash): Path<String>) -> Response {
    let Ok(blob) = BlobRef::from_hex(&hash, 0) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("{hash:?} is not a BLAKE3 hash\n"),
        )
            .into_response();
    };
    match swarm.complete_size(&blob.hash).await {
        Ok(Some(_)) => match swarm.read_to_bytes(&blob.hash).await {
            Ok(bytes) => {
                ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
            }
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        },
        Ok(None) => (StatusCode::NOT_FOUND, format!("no complete blob {hash}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
