//! The error every route answers with: a message for a person and a stable kind for a program.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What went wrong, machine-readable and stable: a client decides on the kind, never on the
/// message. Each kind has one HTTP status ([`ErrorKind::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
    /// Too many attempts (failed logins); retry after the `Retry-After` header (429).
    RateLimited,
    /// No such app, listing, key or publication (404).
    NotFound,
    /// The request contradicts the node's state, e.g. already installed (409).
    Conflict,
    /// The node will not do it: verification, policy or health said no (422).
    Refused,
    /// Something the node depends on (origin, relays, Podman) did not answer (502).
    Unavailable,
    /// A fault in the node itself (500).
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        Self::Invalid,
        Self::Unauthorized,
        Self::CrossSite,
        Self::WrongHost,
        Self::WrongContentType,
        Self::TooLarge,
        Self::RateLimited,
        Self::NotFound,
        Self::Conflict,
        Self::Refused,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The HTTP status the node answers this kind with.
    pub fn status(self) -> u16 {
        match self {
            Self::Invalid => 400,
            Self::Unauthorized => 401,
            Self::CrossSite => 403,
            Self::WrongHost => 421,
            Self::WrongContentType => 415,
            Self::TooLarge => 413,
            Self::RateLimited => 429,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Refused => 422,
            Self::Unavailable => 502,
            Self::Internal => 500,
        }
    }

    /// The kind with this wire name, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind's wire name (`cross_site`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Unauthorized => "unauthorized",
            Self::CrossSite => "cross_site",
            Self::WrongHost => "wrong_host",
            Self::WrongContentType => "wrong_content_type",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Refused => "refused",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The body of every error answer (and the last line of a failed progress stream):
/// `{"error": "…", "kind": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    /// What went wrong and what to do about it, for a person.
    pub error: String,
    pub kind: ErrorKind,
}

impl ApiError {
    pub fn new(kind: ErrorKind, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_their_wire_names() {
        for kind in ErrorKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().to_owned())
            );
        }
        let e: ApiError =
            serde_json::from_str(r#"{"error":"no such app","kind":"not_found"}"#).unwrap();
        assert_eq!(e, ApiError::new(ErrorKind::NotFound, "no such app"));
        assert_eq!(e.kind.status(), 404);
        assert_eq!(format!("[{:<12}]", ErrorKind::CrossSite), "[cross_site  ]");
    }
}
