//! The node's one error type: a message for a person and the kind of failure, which the
//! API maps to an HTTP status. Every failure below the node (sqlite, the orchestrator) is
//! turned into one here, so its kind is decided in one place.

/// An error with the HTTP status it maps to; the message is for a person.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub kind: ErrorKind,
    pub message: String,
}

/// The failure kinds are the API contract's: one list, one HTTP status each.
pub use archy_api::ErrorKind;

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
        // SQLITE_FULL (13): the disk, not the node, is at fault; say so.
        if let sqlx::Error::Database(db) = &e
            && db.code().as_deref() == Some("13")
        {
            return NodeError::new(
                ErrorKind::Unavailable,
                format!("no space left for the node database: free disk space ({e})"),
            );
        }
        internal(format!("node database: {e}"))
    }
}

impl From<archy_orchestrator::Error> for NodeError {
    fn from(e: archy_orchestrator::Error) -> Self {
        use archy_orchestrator::Error as E;
        let kind = match &e {
            E::AlreadyInstalled(_) | E::PortInUse { .. } => ErrorKind::Conflict,
            E::InsufficientDisk { .. } | E::RolledBack { .. } => ErrorKind::Refused,
            E::NotInstalled(_) | E::UnknownContainer { .. } => ErrorKind::NotFound,
            E::NotRootless { .. } | E::InvalidManifest { .. } | E::UnsafeArgument { .. } => {
                ErrorKind::Refused
            }
            // Podman did not answer in time, or not at all: the node's dependency is down.
            E::Timeout { .. } | E::ServiceDown { .. } => ErrorKind::Unavailable,
            // Objects an operation created are left behind: the node's own failure.
            E::UndoIncomplete { .. } => ErrorKind::Internal,
            _ => ErrorKind::Internal,
        };
        NodeError::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn podman_down_or_slow_is_unavailable_and_an_incomplete_undo_is_internal() {
        use archy_orchestrator::Error as E;
        let kind = |e: E| NodeError::from(e).kind;
        assert_eq!(
            kind(E::Timeout {
                what: "podman ps".into(),
                after: Duration::from_secs(60)
            }),
            ErrorKind::Unavailable
        );
        assert_eq!(
            kind(E::ServiceDown {
                url: "unix:///x".into(),
                what: "podman ps".into(),
                detail: "refused".into()
            }),
            ErrorKind::Unavailable
        );
        assert_eq!(
            kind(E::UndoIncomplete {
                app: "hello".into(),
                left: vec!["network archy-hello: busy".into()]
            }),
            ErrorKind::Internal
        );
    }
}
