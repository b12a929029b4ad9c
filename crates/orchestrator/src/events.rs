//! Podman's event stream, filtered to what can leave a running app short of a container:
//! what the node's reconciler reacts to between its passes.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tracing::warn;

use crate::{Engine, Error, LABEL_APP, Result};

/// How often [`Engine::app_events`] asks the service whether it is alive, and how long
/// that question may take: a stream from a frozen service ends within their sum.
const EVENTS_PING_EVERY: Duration = Duration::from_secs(15);
const EVENTS_PING_DEADLINE: Duration = Duration::from_secs(10);

/// A change to one of an app's containers, from Podman's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    pub app: String,
    pub container: String,
    /// Podman's status word: `died`, `remove`, `oom`, …
    pub status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEvent {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
}

/// The events that can leave a running app short of a container. Podman 4.3 ignores a
/// `label` filter on `events --remote`, so the filtering happens here.
fn app_event(line: &str) -> Option<AppEvent> {
    let raw: RawEvent = serde_json::from_str(line).ok()?;
    if raw.kind != "container" || !matches!(raw.status.as_str(), "died" | "remove" | "oom") {
        return None;
    }
    Some(AppEvent {
        app: raw.attributes.get(LABEL_APP)?.clone(),
        container: raw.name,
        status: raw.status,
    })
}

impl Engine {
    /// Follows Podman's event stream and passes on what happens to archy-labelled
    /// containers. The stream ends when Podman's ends (e.g. the service restarted or died),
    /// and also when the service stops answering a ping (every 15 s, 10 s to answer): a
    /// frozen service cannot keep a caller waiting on a stream that will never speak. The
    /// caller decides when to follow it again. Dropping the receiver stops the child.
    pub fn app_events(&self) -> Result<tokio::sync::mpsc::Receiver<AppEvent>> {
        self.app_events_pinging(EVENTS_PING_EVERY, EVENTS_PING_DEADLINE)
    }

    /// [`Engine::app_events`] with its liveness ping every `every`, answered within `deadline`.
    pub fn app_events_pinging(
        &self,
        every: Duration,
        deadline: Duration,
    ) -> Result<tokio::sync::mpsc::Receiver<AppEvent>> {
        use tokio::io::AsyncBufReadExt;
        let mut child = self
            .podman("events")?
            .args(["events", "--format", "json", "--filter", "type=container"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::Engine(format!(
                    "cannot run `podman events`: {e} (is podman installed?)"
                ))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Engine("`podman events` has no stdout".into()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let engine = self.clone();
        tokio::spawn(async move {
            let _child = child;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    line = lines.next_line() => match line {
                        Ok(Some(line)) => {
                            if let Some(event) = app_event(&line)
                                && tx.send(event).await.is_err()
                            {
                                break;
                            }
                        }
                        _ => {
                            warn!("the Podman event stream ended");
                            break;
                        }
                    },
                    _ = ping.tick() => {
                        if let Err(e) = engine.ping(deadline).await {
                            warn!(error = %e, "the Podman service does not answer; ending its event stream");
                            break;
                        }
                    }
                    _ = tx.closed() => break,
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_DEADLINE;

    #[test]
    fn keeps_only_app_container_losses() {
        let died = r#"{"ContainerExitCode":137,"ID":"16","Image":"localhost/archy/hello:1.0.0","Name":"archy-hello-web","Status":"died","Time":"2026-11-23T21:58:17Z","Type":"container","Attributes":{"archy.app":"hello","podId":""}}"#;
        assert_eq!(
            app_event(died),
            Some(AppEvent {
                app: "hello".into(),
                container: "archy-hello-web".into(),
                status: "died".into()
            })
        );
        let start = died.replace("\"died\"", "\"start\"");
        assert_eq!(app_event(&start), None);
        let foreign = died.replace("\"archy.app\":\"hello\",", "");
        assert_eq!(app_event(&foreign), None);
        let image = r#"{"Name":"localhost/archy/hello:1.0.0","Status":"remove","Type":"image","Attributes":{}}"#;
        assert_eq!(app_event(image), None);
        assert_eq!(app_event("not json"), None);
    }

    #[tokio::test]
    async fn the_event_stream_of_a_frozen_service_ends() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("podman.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let engine = Engine::unchecked(format!("unix://{}", sock.display()), DEFAULT_DEADLINE);
        let mut rx = engine
            .app_events_pinging(Duration::from_millis(500), Duration::from_millis(500))
            .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert!(
            matches!(ended, Ok(None)),
            "the stream of a frozen service went on"
        );
    }
}
