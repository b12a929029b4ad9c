//! App secrets: generated once, stored 0600 under the app's dir, never logged, kept until
//! purge (so they survive updates and reinstalls). Containers get them as Podman secrets
//! (`archy-<app>-<secret>`, labelled `archy.app=<app>`, value written to podman's stdin)
//! delivered as environment variables (`--secret NAME,type=env,target=KEY`), so no value is
//! ever in an argv or in the node's env files.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use archy_registry::manifest::SecretSpec;
use rand::distr::{Alphanumeric, SampleString};

use tracing::warn;

use crate::undo::Tracker;
use crate::{Error, Orchestrator, Result};

/// The app's secrets: every declared one by name, and which of them this call generated.
#[derive(Debug, Default)]
pub struct Secrets {
    pub values: BTreeMap<String, String>,
    /// Generated just now: a Podman secret of the same name holds an older value.
    pub generated: Vec<String>,
}

/// The Podman secret holding an app's secret.
pub fn podman_name(app: &str, secret: &str) -> String {
    format!("archy-{app}-{secret}")
}

/// Returns every declared secret, generating (and storing) the ones that do not exist yet.
pub fn ensure(dir: &Path, specs: &[SecretSpec]) -> Result<Secrets> {
    let mut out = Secrets::default();
    for spec in specs {
        let path = dir.join(&spec.name);
        let value = match std::fs::read_to_string(&path) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let v = Alphanumeric.sample_string(&mut rand::rng(), spec.length as usize);
                write_private(&path, v.as_bytes())?;
                out.generated.push(spec.name.clone());
                v
            }
            Err(source) => {
                return Err(Error::Io {
                    what: "reading secret",
                    path,
                    source,
                });
            }
        };
        out.values.insert(spec.name.clone(), value);
    }
    Ok(out)
}

/// Writes a file readable by its owner only, replacing it atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        what: "writing",
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Orchestrator {
    /// Makes sure every declared secret exists as the app's Podman secret, holding the
    /// value of its 0600 file. A secret generated just now replaces a leftover of ours; a
    /// secret of that name that is not ours is never touched (the install fails).
    pub(crate) async fn ensure_secrets(
        &self,
        app: &str,
        secrets: &Secrets,
        tracker: &Tracker<'_>,
    ) -> Result<()> {
        for (secret, value) in &secrets.values {
            let name = podman_name(app, secret);
            match self.runtime.secret_owner(&name).await? {
                Some(owner) if owner != app => {
                    return Err(Error::SecretTaken {
                        name,
                        app: app.to_owned(),
                    });
                }
                Some(_) if !secrets.generated.contains(secret) => continue,
                Some(_) => {
                    tracker.add(|r| r.secrets.push(name.clone()));
                    self.runtime.remove_secret(&name).await?
                }
                None => tracker.add(|r| r.secrets.push(name.clone())),
            }
            self.runtime
                .create_secret(&name, app, value.as_bytes())
                .await?;
        }
        Ok(())
    }

    /// Removes the app's Podman secrets (those named for it and labelled as its).
    pub(crate) async fn remove_secrets(&self, app: &str) {
        let prefix = podman_name(app, "");
        for name in self.runtime.secret_names().await.unwrap_or_default() {
            if !name.starts_with(&prefix) {
                continue;
            }
            if matches!(self.runtime.secret_owner(&name).await, Ok(Some(owner)) if owner == app)
                && let Err(e) = self.runtime.remove_secret(&name).await
            {
                warn!(secret = %name, error = %e, "could not remove the app secret");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secrets_are_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let specs = [SecretSpec {
            name: "db".into(),
            length: 24,
        }];
        let first = ensure(dir.path(), &specs).unwrap();
        assert_eq!(first.values["db"].len(), 24);
        assert_eq!(first.generated, ["db"]);
        let again = ensure(dir.path(), &specs).unwrap();
        assert_eq!(first.values, again.values);
        assert!(again.generated.is_empty());
        let mode = std::fs::metadata(dir.path().join("db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
