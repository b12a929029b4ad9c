//! A thin client for the rootless user's Podman service, driven through `podman --remote`.
//! The CLI speaks the libpod REST API over the socket for us and is what operators
//! already know, so its errors are the ones they can look up.

use std::path::Path;
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tracing::debug;

use crate::{Error, LABEL_APP, Result};

#[derive(Debug, Clone)]
pub struct Engine {
    url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Stopping,
    Exited,
    Stopped,
    Dead,
    Unknown,
}

impl ContainerState {
    fn parse(s: &str) -> Self {
        match s {
            "created" | "configured" | "initialized" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "stopping" => Self::Stopping,
            "exited" => Self::Exited,
            "stopped" => Self::Stopped,
            "dead" | "removing" => Self::Dead,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    pub state: ContainerState,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsEntry {
    names: Vec<String>,
    state: String,
    #[serde(default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

impl PsEntry {
    fn into_info(self) -> ContainerInfo {
        ContainerInfo {
            name: self.names.into_iter().next().unwrap_or_default(),
            state: ContainerState::parse(&self.state),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VolumeEntry {
    name: String,
}

impl Engine {
    /// Checks that the service answers and runs rootless.
    pub async fn connect(url: &str) -> Result<Self> {
        let engine = Self {
            url: url.to_owned(),
        };
        let rootless = engine
            .run(&["info", "--format", "{{.Host.Security.Rootless}}"])
            .await
            .map_err(|e| {
                Error::Engine(format!(
                    "cannot reach the Podman service at {url}: {e} \
                     (start it as the podman user: podman system service --time=0 {url})"
                ))
            })?;
        if rootless.trim() != "true" {
            return Err(Error::NotRootless {
                url: url.to_owned(),
            });
        }
        Ok(engine)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `podman --remote --url URL ARGS…`; returns stdout, or an error with stderr.
    pub async fn run(&self, args: &[&str]) -> Result<String> {
        debug!(args = ?args.first(), "podman");
        let output = Command::new("podman")
            .arg("--remote")
            .arg("--url")
            .arg(&self.url)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| {
                Error::Engine(format!(
                    "cannot run the podman client: {e} (is podman installed?)"
                ))
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(Error::Engine(format!(
                "`podman {}` failed: {}",
                args.first().copied().unwrap_or_default(),
                stderr.trim()
            )))
        }
    }

    /// `podman ps --all` for containers carrying `label` (`key` or `key=value`).
    async fn ps(&self, label: &str) -> Result<Vec<PsEntry>> {
        let filter = format!("label={label}");
        let out = self
            .run(&["ps", "--all", "--filter", &filter, "--format", "json"])
            .await?;
        serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
            .map_err(|e| Error::Engine(format!("unexpected `podman ps` output: {e}")))
    }

    pub async fn containers_of(&self, app: &str) -> Result<Vec<ContainerInfo>> {
        let entries = self.ps(&format!("{LABEL_APP}={app}")).await?;
        Ok(entries.into_iter().map(PsEntry::into_info).collect())
    }

    /// Every container carrying an `archy.app` label, grouped by app: one Podman call for a
    /// whole reconciler pass.
    pub async fn containers_by_app(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<ContainerInfo>>> {
        let mut by_app: std::collections::BTreeMap<String, Vec<ContainerInfo>> = Default::default();
        for e in self.ps(LABEL_APP).await? {
            if let Some(app) = e.labels.as_ref().and_then(|l| l.get(LABEL_APP)).cloned() {
                by_app.entry(app).or_default().push(e.into_info());
            }
        }
        Ok(by_app)
    }

    pub async fn volumes_of(&self, app: &str) -> Result<Vec<String>> {
        let out = self
            .run(&[
                "volume",
                "ls",
                "--filter",
                &format!("label={LABEL_APP}={app}"),
                "--format",
                "json",
            ])
            .await?;
        let entries: Vec<VolumeEntry> =
            serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
                .map_err(|e| Error::Engine(format!("unexpected `podman volume ls` output: {e}")))?;
        Ok(entries.into_iter().map(|v| v.name).collect())
    }

    /// Loads an OCI archive and returns the image id to create containers from.
    /// Referring to images by id means an archive cannot retarget another app's tag.
    pub async fn load_image(&self, archive: &Path) -> Result<String> {
        let path = archive.display().to_string();
        let out = self.run(&["load", "--quiet", "--input", &path]).await?;
        let loaded = parse_loaded(&out).ok_or_else(|| {
            Error::Engine(format!(
                "`podman load` of {path} named no image: {}",
                out.trim()
            ))
        })?;
        let id = self
            .run(&["image", "inspect", "--format", "{{.Id}}", &loaded])
            .await?;
        let id = id.trim().to_owned();
        if id.is_empty() {
            return Err(Error::Engine(format!("loaded image {loaded} has no id")));
        }
        Ok(id)
    }
}

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
    /// containers. The stream ends when Podman's ends (e.g. the service restarted); the
    /// caller decides when to follow it again. Dropping the receiver stops the child.
    pub fn app_events(&self) -> Result<tokio::sync::mpsc::Receiver<AppEvent>> {
        use tokio::io::AsyncBufReadExt;
        let mut child = Command::new("podman")
            .arg("--remote")
            .arg("--url")
            .arg(&self.url)
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
        tokio::spawn(async move {
            let _child = child;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(event) = app_event(&line)
                    && tx.send(event).await.is_err()
                {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

/// `podman load` prints `Loaded image: NAME` (or `Loaded image(s): A,B`).
fn parse_loaded(out: &str) -> Option<String> {
    out.lines()
        .filter_map(|l| {
            l.split_once(':')
                .filter(|(head, _)| head.starts_with("Loaded image"))
        })
        .flat_map(|(_, rest)| rest.split(','))
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_podman_load_output() {
        assert_eq!(
            parse_loaded("Loaded image: localhost/archy/hello:1.0.0\n").as_deref(),
            Some("localhost/archy/hello:1.0.0")
        );
        assert_eq!(
            parse_loaded("Loaded image(s): sha256:abc,localhost/x:1\n").as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(parse_loaded("Getting image source signatures\n"), None);
    }

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

    #[test]
    fn maps_container_states() {
        assert_eq!(ContainerState::parse("running"), ContainerState::Running);
        assert_eq!(ContainerState::parse("exited"), ContainerState::Exited);
        assert_eq!(ContainerState::parse("weird"), ContainerState::Unknown);
    }
}
