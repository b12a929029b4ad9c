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
    fn maps_container_states() {
        assert_eq!(ContainerState::parse("running"), ContainerState::Running);
        assert_eq!(ContainerState::parse("exited"), ContainerState::Exited);
        assert_eq!(ContainerState::parse("weird"), ContainerState::Unknown);
    }
}
