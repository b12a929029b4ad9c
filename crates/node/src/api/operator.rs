//! `/v1/operator`: the node's own Nostr key, and the follows, endorsements and reports it
//! signs (see `node/operator.rs`). Bodies are JSON; the publisher prefix is parsed by its
//! grammar here, the rest by the node, which names what is wrong.

use std::sync::Arc;

use archy_api::routes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::ApiResult;
use super::params::{self, KeyPrefix};
use crate::node::{Node, NodeError};

pub fn routes(node: Arc<Node>) -> Router {
    Router::new()
        .route(routes::OPERATOR, get(operator))
        .route(routes::OPERATOR_KEY, post(import_key))
        .route(routes::OPERATOR_FOLLOW, post(follow))
        .route(routes::OPERATOR_UNFOLLOW, post(unfollow))
        .route(routes::OPERATOR_ENDORSE, post(endorse))
        .route(routes::OPERATOR_REPORT, post(report))
        .with_state(node)
}

async fn operator(State(node): State<Arc<Node>>) -> ApiResult<archy_api::OperatorView> {
    node.operator().await.map(Json)
}

async fn import_key(
    State(node): State<Arc<Node>>,
    Json(request): Json<archy_api::ImportOperatorKey>,
) -> ApiResult<archy_api::OperatorView> {
    let words = zeroize::Zeroizing::new(request.mnemonic);
    node.import_operator_key(&words, request.replace)
        .await
        .map(Json)
}

async fn follow(
    State(node): State<Arc<Node>>,
    Json(request): Json<archy_api::FollowRequest>,
) -> ApiResult<archy_api::VouchResponse> {
    node.vouch_follow(&request.target, true, request.force)
        .await
        .map(Json)
}

async fn unfollow(
    State(node): State<Arc<Node>>,
    Json(request): Json<archy_api::FollowRequest>,
) -> ApiResult<archy_api::VouchResponse> {
    node.vouch_follow(&request.target, false, request.force)
        .await
        .map(Json)
}

/// The publisher prefix, when given, by its grammar (as `?publisher=` of an install).
fn check_publisher(publisher: &Option<String>) -> Result<(), NodeError> {
    if let Some(p) = publisher {
        params::parse::<KeyPrefix>(p)?;
    }
    Ok(())
}

async fn endorse(
    State(node): State<Arc<Node>>,
    Json(request): Json<archy_api::EndorseRequest>,
) -> ApiResult<archy_api::VouchResponse> {
    check_publisher(&request.publisher)?;
    node.vouch_endorse(&request).await.map(Json)
}

async fn report(
    State(node): State<Arc<Node>>,
    Json(request): Json<archy_api::ReportRequest>,
) -> ApiResult<archy_api::VouchResponse> {
    check_publisher(&request.publisher)?;
    node.vouch_report(&request).await.map(Json)
}
