//! The record of what one install or update created ([`Created`], kept by the node in the
//! operation's row) and undoing exactly that, whatever failed, even after a crash.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::{Error, Orchestrator, Result};

/// Everything one install or update created, so that exactly that can be undone
/// ([`Orchestrator::undo`]) whatever failed, even after a crash: every Podman object is
/// recorded *before* it is created (an entry for an object that never came is harmless:
/// undo skips what does not exist), files right after they are written. Objects that
/// existed before the operation (the app's volumes and data, secrets it kept) are never
/// in it. Serializable, so the node keeps it in the operation's row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub app: String,
    /// The app's data dir (`<data>/apps/<app>`) did not exist before: undo removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub app_dir: bool,
    /// The app's env dir did not exist before: undo removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env_dir: bool,
    /// Secret files (names under `<app dir>/secrets`) the operation generated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
}

impl Created {
    pub fn new(app: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            ..Self::default()
        }
    }

    /// Nothing to undo.
    pub fn is_empty(&self) -> bool {
        !self.app_dir
            && !self.env_dir
            && self.secret_files.is_empty()
            && self.secrets.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
            && self.containers.is_empty()
    }
}

/// Where the growing [`Created`] record goes: called with the whole record each time an
/// object is about to be created, and once more after a failed operation undid itself,
/// with what is still left (empty when everything went). `&|_| {}` when nobody keeps it.
pub type CreatedSink<'a> = &'a (dyn Fn(&Created) + Send + Sync);

/// The record of one operation in progress, reported to its sink at each change.
pub(crate) struct Tracker<'a> {
    record: std::sync::Mutex<Created>,
    sink: CreatedSink<'a>,
}

impl<'a> Tracker<'a> {
    pub(crate) fn new(app: &str, sink: CreatedSink<'a>) -> Self {
        Self {
            record: std::sync::Mutex::new(Created::new(app)),
            sink,
        }
    }

    /// A record nobody reads (repairs and rollbacks rebuild the app's own state).
    pub(crate) fn unreported(app: &str) -> Tracker<'static> {
        Tracker::new(app, &|_| {})
    }

    pub(crate) fn add(&self, change: impl FnOnce(&mut Created)) {
        let snapshot = {
            let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut record);
            record.clone()
        };
        (self.sink)(&snapshot);
    }

    pub(crate) fn snapshot(&self) -> Created {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn replace(&self, record: Created) {
        self.add(|r| *r = record);
    }
}

impl Orchestrator {
    /// Undoes what `tracker` recorded and reports what is left to its sink.
    pub(crate) async fn undo_reporting(&self, tracker: &Tracker<'_>) {
        let (left, problems) = self.undo_inner(&tracker.snapshot()).await;
        if !problems.is_empty() {
            warn!(app = %left.app, ?problems, "undo left objects behind");
        }
        tracker.replace(left);
    }

    /// Removes exactly what an operation created (`created`, as reported by
    /// [`Orchestrator::install_tracked`] or [`Orchestrator::update_tracked`]), whether or
    /// not any container of the app exists: containers, Podman secrets, volumes, networks,
    /// then the files. Only objects named for the app and carrying its label are touched;
    /// what no longer exists is skipped, so undoing twice is harmless.
    pub async fn undo(&self, created: &Created) -> Result<()> {
        let (_, problems) = self.undo_inner(created).await;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::UndoIncomplete {
                app: created.app.clone(),
                left: problems,
            })
        }
    }

    /// Undoes `created`; returns what is still there and why.
    async fn undo_inner(&self, created: &Created) -> (Created, Vec<String>) {
        let app = created.app.as_str();
        let mut left = Created::new(app);
        let mut problems = Vec::new();
        // Every name an operation of `app` creates is `archy-<app>[-<part>]`.
        let prefix = format!("archy-{app}");
        let ours = |name: &str| {
            name == prefix
                || name
                    .strip_prefix(&prefix)
                    .is_some_and(|r| r.starts_with('-'))
        };
        let refuse = |kind: &str, name: &str, problems: &mut Vec<String>| {
            problems.push(format!(
                "{kind} {name:?} is not named for {app}; left alone"
            ));
        };
        if !created.containers.is_empty() {
            match self.runtime.containers_of(app).await {
                Ok(have) => {
                    for name in &created.containers {
                        if !ours(name) {
                            refuse("container", name, &mut problems);
                        } else if have.iter().any(|c| &c.name == name)
                            && let Err(e) = self.runtime.remove_container(name).await
                        {
                            problems.push(format!("container {name}: {e}"));
                            left.containers.push(name.clone());
                        }
                    }
                }
                Err(e) => {
                    problems.push(format!("containers: {e}"));
                    left.containers = created.containers.clone();
                }
            }
        }
        for name in &created.secrets {
            if !ours(name) {
                refuse("secret", name, &mut problems);
                continue;
            }
            let result = match self.runtime.secret_owner(name).await {
                Ok(Some(owner)) if owner == app => self.runtime.remove_secret(name).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                problems.push(format!("secret {name}: {e}"));
                left.secrets.push(name.clone());
            }
        }
        if !created.volumes.is_empty() {
            match self.runtime.volumes_of(app).await {
                Ok(have) => {
                    for name in &created.volumes {
                        if !ours(name) {
                            refuse("volume", name, &mut problems);
                        } else if have.contains(name)
                            && let Err(e) = self.runtime.remove_volume(name).await
                        {
                            problems.push(format!("volume {name}: {e}"));
                            left.volumes.push(name.clone());
                        }
                    }
                }
                Err(e) => {
                    problems.push(format!("volumes: {e}"));
                    left.volumes = created.volumes.clone();
                }
            }
        }
        for name in &created.networks {
            if !ours(name) {
                refuse("network", name, &mut problems);
                continue;
            }
            let result = match self.runtime.network_owner(name).await {
                Ok(Some(owner)) if owner == app => self.runtime.remove_network(name).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                problems.push(format!("network {name}: {e}"));
                left.networks.push(name.clone());
            }
        }
        let dir = self.app_dir(app);
        let remove = |path: PathBuf, is_dir: bool, problems: &mut Vec<String>| {
            let result = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match result {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    problems.push(format!("{}: {e}", path.display()));
                    false
                }
                _ => true,
            }
        };
        if created.app_dir {
            left.app_dir = !remove(dir.clone(), true, &mut problems);
        } else {
            for file in &created.secret_files {
                if file.is_empty() || file.contains('/') || file == "." || file == ".." {
                    refuse("secret file", file, &mut problems);
                } else if !remove(dir.join("secrets").join(file), false, &mut problems) {
                    left.secret_files.push(file.clone());
                }
            }
            if created.env_dir {
                left.env_dir = !remove(dir.join("env"), true, &mut problems);
            }
        }
        (left, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_records_round_trip_and_grow_in_order() {
        let seen = std::sync::Mutex::new(Vec::new());
        let sink = |c: &Created| seen.lock().unwrap().push(c.clone());
        let tracker = Tracker::new("hello", &sink);
        assert!(tracker.snapshot().is_empty());
        tracker.add(|c| c.networks.push("archy-hello".into()));
        tracker.add(|c| c.containers.push("archy-hello-web".into()));
        let snapshot = tracker.snapshot();
        drop(tracker);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 2, "the sink sees every step");
        assert_eq!(seen[0].containers.len(), 0);
        assert_eq!(seen[1], snapshot);
        let json = serde_json::to_string(&seen[1]).unwrap();
        assert_eq!(
            json,
            r#"{"app":"hello","networks":["archy-hello"],"containers":["archy-hello-web"]}"#
        );
        assert_eq!(serde_json::from_str::<Created>(&json).unwrap(), seen[1]);
        assert!(Created::new("hello").is_empty());
    }
}
