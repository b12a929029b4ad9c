//! The wire contract of the archy node's HTTP API, in one place: what the node serves, what
//! the `archy` CLI and the web dashboard read.
//!
//! - [`types`]: every request and response body, exactly as on the wire;
//! - [`ApiError`] / [`ErrorKind`]: the error body and its stable, machine-readable kind;
//! - [`operations`]: operations the node runs as its own tasks, and their event streams;
//! - [`routes`]: the paths (templates and builders);
//! - [`openapi()`]: the OpenAPI document generated from the types (served by the node at
//!   `GET /v1/openapi.json`);
//! - [`Client`] (feature `client`, on by default): a typed async client with one method
//!   per route, and [`read_token`] for the node's token file.
//!
//! This crate depends on no other archy crate: it is the leaf every consumer shares.

mod error;
mod openapi;
pub mod operations;
pub mod routes;
pub mod types;

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod token;

pub use error::{ApiError, ErrorKind};
pub use openapi::{ApiDoc, openapi};
pub use operations::{
    OPERATION_HEADER, OperationKind, OperationResult, OperationState, OperationStreamEvent,
    OperationView, StreamQuery,
};
pub use types::*;
/// The utoipa this crate builds its document with (for `openapi()`'s type).
pub use utoipa;

#[cfg(feature = "client")]
pub use client::{
    Client, ClientError, DEFAULT_TIMEOUT, OperationStream, StartedOperation, follow_operation,
};
#[cfg(feature = "client")]
pub use token::{Token, TokenError, read_token};
