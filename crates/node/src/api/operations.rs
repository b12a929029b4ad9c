//! Operations as the API shows them: the routes that start one answer through a node-owned
//! job ([`answer`]), so a client that goes away cancels nothing; `GET /v1/operations`,
//! `GET /v1/operations/{id}` and `GET /v1/operations/{id}/events` (replay, then follow)
//! look at them. Every answer of a route that started an operation names it in
//! [`archy_api::OPERATION_HEADER`].

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;

use super::params::{Param, Valid};
use crate::node::{JobEvent, JobRequest, Node, NodeError};

/// The operation routes (behind the same guard as the rest of the API).
pub fn routes(node: Arc<Node>) -> Router {
    Router::new()
        .route(archy_api::routes::OPERATIONS, get(list))
        .route(archy_api::routes::OPERATION, get(one))
        .route(archy_api::routes::OPERATION_EVENTS, get(events))
        .with_state(node)
}

/// An operation's id: a positive decimal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationId(pub i64);

impl Param for OperationId {
    const WHAT: &'static str = "operation id";
    fn parse(raw: &str) -> Result<Self, String> {
        let digits = !raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit());
        match raw.parse::<i64>() {
            Ok(id) if digits && id > 0 => Ok(Self(id)),
            _ => Err("must be a positive decimal number".into()),
        }
    }
}

async fn list(
    State(node): State<Arc<Node>>,
) -> Result<axum::Json<Vec<archy_api::OperationView>>, NodeError> {
    node.operations().await.map(axum::Json)
}

async fn one(
    State(node): State<Arc<Node>>,
    Valid(OperationId(id)): Valid<OperationId>,
) -> Result<axum::Json<archy_api::OperationView>, NodeError> {
    node.operation(id).await.map(axum::Json)
}

async fn events(
    State(node): State<Arc<Node>>,
    Valid(OperationId(id)): Valid<OperationId>,
) -> Response {
    match node.operation_events(id).await {
        Ok(events) => ndjson(id, events),
        Err(e) => e.into_response(),
    }
}

/// Starts `request` as a job of the node and answers for it: with `stream`, its events as
/// NDJSON (progress, then `{"result": …}` or `{"error": …, "kind": …}`); otherwise its
/// result (or error) once it ends. Either way the job runs to its end if the client goes.
pub async fn answer(node: &Arc<Node>, request: JobRequest, stream: bool) -> Response {
    let job = match node.start_job(request).await {
        Ok(job) => job,
        Err(e) => return e.into_response(),
    };
    let id = job.id();
    if stream {
        return ndjson(id, job.events().boxed());
    }
    let mut response = match job.outcome().await {
        Ok(result) => (StatusCode::OK, axum::Json(result)).into_response(),
        Err((kind, message)) => NodeError::new(kind, message).into_response(),
    };
    name_operation(&mut response, id);
    response
}

/// An operation's events as an NDJSON response naming the operation.
fn ndjson(id: i64, events: futures::stream::BoxStream<'static, JobEvent>) -> Response {
    let lines =
        events.map(|event| Ok::<_, std::convert::Infallible>(format!("{}\n", event.to_json())));
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response();
    name_operation(&mut response, id);
    response
}

fn name_operation(response: &mut Response, id: i64) {
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(archy_api::OPERATION_HEADER), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_positive_decimal_numbers() {
        assert_eq!(OperationId::parse("42"), Ok(OperationId(42)));
        for bad in [
            "0",
            "-1",
            "+1",
            "1e3",
            "",
            "abc",
            "99999999999999999999",
            " 1",
            "0x10",
        ] {
            assert!(OperationId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
