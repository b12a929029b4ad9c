//! Operations: installs, updates, removals, starts, stops and restarts run as tasks of the
//! node, not of the request that asked for them. A client that goes away cancels nothing;
//! any client can look at an operation (`GET /v1/operations/{id}`) or re-attach to its
//! events (`GET /v1/operations/{id}/events`: the history, then each new event, up to the
//! final result or error).
//!
//! Every answer of a route that starts an operation (`POST /v1/apps/{id}/install`, …,
//! `DELETE /v1/apps/{id}`) names it in the [`OPERATION_HEADER`] header, streamed or not.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::types::{AppView, Progress, Uninstalled};

/// The response header naming the operation a request started (its id, decimal).
pub const OPERATION_HEADER: &str = "x-archy-operation";

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Install,
    Update,
    /// Removes the app, keeping its data.
    Uninstall,
    /// Removes the app and its data.
    Purge,
    Start,
    Stop,
    Restart,
}

impl OperationKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Update => "update",
            Self::Uninstall => "uninstall",
            Self::Purge => "purge",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }

    /// The kind with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Install,
            Self::Update,
            Self::Uninstall,
            Self::Purge,
            Self::Start,
            Self::Stop,
            Self::Restart,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    Running,
    Succeeded,
    Failed,
    /// The node stopped (crashed, was killed) while it ran; at its next start it finished
    /// or undid it, as `error` says.
    Interrupted,
}

impl OperationState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    /// The state with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Interrupted,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for OperationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One operation (`GET /v1/operations/{id}`; `GET /v1/operations` lists them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperationView {
    pub id: u64,
    /// The app it acts on, by its id on this node.
    pub app: String,
    pub kind: OperationKind,
    pub state: OperationState,
    /// How far it got: `queued` (waiting for another operation to end), `started`,
    /// `fetching`, `installing`, `loading`, `creating`, `starting`, `replacing`,
    /// `removing`, `dependencies`.
    pub stage: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339; `null` while it runs.
    pub finished_at: Option<String>,
    /// Why it failed, or what recovery did after an interruption.
    pub error: Option<String>,
    /// The kind of the failure, so a replay answers as the live operation did (absent for
    /// operations recorded before the node kept it, and for interruptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<crate::ErrorKind>,
}

/// What an operation answers with: the app (install, update, start, stop, restart), or
/// what was removed (uninstall, purge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OperationResult {
    Uninstalled(Uninstalled),
    App(AppView),
}

/// One line of an operation's event stream (`application/x-ndjson`): progress events, then
/// exactly one `{"result": …}` or `{"error": …, "kind": …}`; the shape of the install
/// stream ([`crate::OperationEvent`]), with any operation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OperationStreamEvent {
    Progress { progress: Progress },
    Result { result: OperationResult },
    Error(ApiError),
}

/// `?stream=…` of `POST /v1/apps/{id}/update` and `DELETE /v1/apps/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Answer with the operation's events as newline-delimited JSON
    /// ([`OperationStreamEvent`]) instead of its result at the end.
    #[serde(default)]
    pub stream: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_lines_parse_with_either_result() {
        let app = serde_json::json!({
            "id": "hello", "version": "1.0.0", "desired": "running", "state": "running",
            "containers": [], "url": null, "warnings": []
        });
        let line: OperationStreamEvent =
            serde_json::from_value(serde_json::json!({ "result": app })).unwrap();
        assert!(matches!(
            line,
            OperationStreamEvent::Result {
                result: OperationResult::App(_)
            }
        ));
        let line: OperationStreamEvent = serde_json::from_value(
            serde_json::json!({"result": {"uninstalled": "hello", "purged": true}}),
        )
        .unwrap();
        assert_eq!(
            line,
            OperationStreamEvent::Result {
                result: OperationResult::Uninstalled(Uninstalled {
                    uninstalled: "hello".into(),
                    purged: true
                })
            }
        );
        let line: OperationStreamEvent =
            serde_json::from_value(serde_json::json!({"error": "no", "kind": "conflict"})).unwrap();
        assert!(matches!(line, OperationStreamEvent::Error(_)));
        for kind in ["install", "purge", "restart"] {
            assert_eq!(OperationKind::parse(kind).unwrap().as_str(), kind);
        }
        assert_eq!(
            OperationState::parse("interrupted"),
            Some(OperationState::Interrupted)
        );
    }
}
