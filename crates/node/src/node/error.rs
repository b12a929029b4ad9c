//! The node's one error type: a message for a person and the kind of failure, which the
//! API maps to an HTTP status. Every failure below the node (sqlite, the orchestrator) is
//! turned into one here, so its kind is decided in one place.

use serde::Serialize;

/// An error with the HTTP status it maps to; the message is for a person.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A parameter or body broke its grammar (400).
    Invalid,
    /// No or a wrong API credential (401).
    Unauthorized,
    /// A web page of another site tried to use the API (403).
    CrossSite,
    /// The request named a host that is not this node (421).
    WrongHost,
    /// A state change without a JSON (or upload) body (415).
    WrongContentType,
    /// More bytes than allowed (413).
    TooLarge,
    NotFound,
    Conflict,
    Refused,
    Unavailable,
    Internal,
}

impl NodeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A failure that is the node's own fault (or its host's), not the request's.
pub(super) fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::new(ErrorKind::Internal, e.to_string())
}

impl From<sqlx::Error> for NodeError {
    fn from(e: sqlx::Error) -> Self {
        internal(format!("node database: {e}"))
    }
}

impl From<archy_orchestrator::Error> for NodeError {
    fn from(e: archy_orchestrator::Error) -> Self {
        use archy_orchestrator::Error as E;
        let kind = match &e {
            E::AlreadyInstalled(_) | E::PortInUse { .. } => ErrorKind::Conflict,
            E::InsufficientDisk { .. } | E::RolledBack { .. } => ErrorKind::Refused,
            E::NotInstalled(_) => ErrorKind::NotFound,
            E::NotRootless { .. } | E::InvalidManifest { .. } | E::UnsafeArgument { .. } => {
                ErrorKind::Refused
            }
            _ => ErrorKind::Internal,
        };
        NodeError::new(kind, e.to_string())
    }
}
