//! Creating an app's containers: images loaded, secrets and network in place, the env file
//! written, and the `podman create` argv rendered and checked by [`crate::argv_check`]
//! before it runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use archy_registry::Manifest;
use archy_registry::grammar;
use archy_registry::manifest::{Container, EnvValue, NetworkMode};
use tracing::info;

use crate::argv_check::Rendered;
use crate::undo::Tracker;
use crate::{
    Error, ImageSource, Orchestrator, Progress, ProgressSink, Result, Stage, container_name,
    preflight, render, secrets,
};

impl Orchestrator {
    /// Creates the manifest's containers that are not among `existing` (by name).
    pub(crate) async fn create_missing(
        &self,
        manifest: &Manifest,
        images: &dyn ImageSource,
        existing: &[String],
        progress: ProgressSink<'_>,
        tracker: &Tracker<'_>,
    ) -> Result<Vec<String>> {
        // Every path that creates containers (install, update, its rollback, repair) passes here.
        preflight::check_manifest(manifest)?;
        let app = manifest.id.as_str();
        let secrets = secrets::ensure(&self.app_dir(app).join("secrets"), &manifest.secrets)?;
        if !secrets.generated.is_empty() {
            tracker.add(|c| c.secret_files.extend(secrets.generated.iter().cloned()));
        }
        self.ensure_secrets(app, &secrets, tracker).await?;
        if manifest
            .containers
            .iter()
            .any(|c| c.network == NetworkMode::App)
        {
            self.ensure_network(app, tracker).await?;
        }
        let mut image_ids = BTreeMap::new();
        let mut created = Vec::new();
        // The distinct artifacts the missing containers are made from: what gets loaded.
        let to_load = manifest
            .containers
            .iter()
            .filter(|c| !existing.contains(&container_name(app, &c.name)))
            .filter_map(|c| c.image.artifact.as_deref())
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64;
        for c in &manifest.containers {
            let name = container_name(app, &c.name);
            if existing.contains(&name) {
                continue;
            }
            let image = match (&c.image.artifact, &c.image.reference) {
                (Some(artifact), _) => {
                    if let Some(id) = image_ids.get(artifact) {
                        id
                    } else {
                        let loaded = image_ids.len() as u64;
                        progress(Progress::new(
                            Stage::Loading,
                            loaded,
                            to_load,
                            artifact.clone(),
                        ));
                        let archive = images.open(artifact).await?;
                        info!(app, artifact, size = archive.size, what = %archive.what, "loading image archive");
                        let id = self.runtime.load_image(archive).await?;
                        image_ids.insert(artifact.clone(), id);
                        &image_ids[artifact]
                    }
                }
                (None, Some(reference)) => reference,
                (None, None) => unreachable!("validated manifests name an image"),
            }
            .clone();
            let total = manifest.containers.len() as u64;
            progress(Progress::new(
                Stage::Creating,
                created.len() as u64,
                total,
                c.name.clone(),
            ));
            self.create_container(manifest, c, &image, tracker).await?;
            created.push(name);
        }
        Ok(created)
    }

    /// Writes the container's env file, renders its `podman create` argv, has
    /// [`render::check_argv`] check it, creates its missing volumes and then the container.
    pub(crate) async fn create_container(
        &self,
        manifest: &Manifest,
        c: &Container,
        image: &str,
        tracker: &Tracker<'_>,
    ) -> Result<()> {
        let app = manifest.id.as_str();
        let env_file = self.write_env_file(app, c)?;
        let publish_address = self.config.publish_address;
        #[allow(unused_mut)] // mutated by the test seam only
        let mut args = render::create_args(manifest, c, image, &env_file, publish_address);
        #[cfg(test)]
        if let Some(tamper) = self.tamper_argv {
            tamper(&mut args);
        }
        // The argv that runs is the one checked, with the real image id and paths, before
        // anything of this container is done in Podman.
        let rendered = Rendered {
            image,
            env_file: &env_file,
            publish_address,
        };
        let spec = render::check_argv(manifest, c, rendered, args)?;
        let existing = self.runtime.volumes_of(app).await?;
        for v in &c.volumes {
            let vol = render::volume_name(app, &v.name);
            if !existing.contains(&vol) {
                tracker.add(|r| r.volumes.push(vol.clone()));
                self.runtime.create_volume(app, &vol).await?;
            }
        }
        tracker.add(|r| r.containers.push(spec.name().to_owned()));
        self.runtime.create_container(&spec).await?;
        Ok(())
    }

    /// The container's plain environment, in a 0600 env file (values stay out of process
    /// arguments). Secret values never go here: they are Podman secrets (`--secret`).
    ///
    /// Podman reads env files line by line (`KEY=VALUE`, the value up to the end of the
    /// line), so a line break in a value would start another variable. Validation refuses
    /// them; this refuses them again (never rewrites a value), as it refuses a key that is
    /// not an environment variable name.
    pub(crate) fn write_env_file(&self, app: &str, c: &Container) -> Result<PathBuf> {
        let mut text = String::new();
        for (key, value) in &c.env {
            let EnvValue::Plain(value) = value else {
                continue;
            };
            let field = format!("containers[{}].env.{key}", c.name);
            grammar::check_env_key(&field, key)
                .and_then(|()| grammar::check_env_value(&field, value))
                .map_err(|source| Error::InvalidManifest {
                    app: app.to_owned(),
                    source,
                })?;
            text.push_str(&format!("{key}={value}\n"));
        }
        let path = self
            .app_dir(app)
            .join("env")
            .join(format!("{}.env", c.name));
        secrets::write_private(&path, text.as_bytes())?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use archy_registry::Manifest;
    use archy_registry::manifest::{SecretRef, SecretSpec};

    use super::*;
    use crate::{Engine, Error, OrchestratorConfig};

    fn hello() -> Manifest {
        let yaml = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../apps/hello/manifest.yml"
        ))
        .unwrap();
        Manifest::from_yaml(&yaml).unwrap()
    }

    /// An orchestrator whose engine was never connected: any Podman call it made would
    /// fail with an engine error, never with the errors these tests expect.
    fn offline(data_dir: &std::path::Path) -> Orchestrator {
        Orchestrator {
            runtime: std::sync::Arc::new(Engine::unconnected()),
            config: OrchestratorConfig {
                podman_url: String::new(),
                data_dir: data_dir.to_owned(),
                publish_address: IpAddr::from([127, 0, 0, 1]),
            },
            tamper_argv: None,
        }
    }

    #[test]
    fn env_files_hold_plain_values_only() {
        let mut m = hello();
        m.secrets.push(SecretSpec {
            name: "token".into(),
            length: 32,
        });
        let env = &mut m.containers[0].env;
        env.insert(
            "TOKEN".into(),
            EnvValue::Secret(SecretRef {
                secret: "token".into(),
            }),
        );
        env.insert("GREETING".into(), EnvValue::Plain("hi --x=a,b:c".into()));
        let dir = tempfile::tempdir().unwrap();
        let path = offline(dir.path())
            .write_env_file("hello", &m.containers[0])
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            "GREETING=hi --x=a,b:c\n"
        );
    }

    /// A line break in a value would start another variable in Podman's line-based env
    /// file: it is refused (never rewritten), as is a key that is no variable name.
    #[test]
    fn env_values_with_line_breaks_are_refused_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let orchestrator = offline(dir.path());
        for (key, value) in [
            ("GREETING", "hi\nLD_PRELOAD=/x.so"),
            ("GREETING", "hi\r\nX=1"),
            ("GREETING", "a\0b"),
            ("X=1\nLD_PRELOAD", "/x.so"),
        ] {
            let mut m = hello();
            m.containers[0]
                .env
                .insert(key.into(), EnvValue::Plain(value.into()));
            let err = orchestrator
                .write_env_file("hello", &m.containers[0])
                .unwrap_err();
            assert!(
                matches!(&err, Error::InvalidManifest { source, .. } if source.field.contains("env")),
                "{key:?}={value:?}: {err}"
            );
            assert!(
                !dir.path().join("apps/hello/env/web.env").exists(),
                "{key:?}={value:?}: an env file was written"
            );
        }
    }

    /// The install path runs only argvs the checker accepts: an argv changed after
    /// rendering (here through the test seam) is refused by `create_container` before any
    /// Podman call (the engine is not connected, and nothing was recorded as created).
    #[tokio::test]
    async fn the_install_path_refuses_an_argv_the_checker_refuses() {
        let m = hello();
        let image = "f".repeat(64);
        let dir = tempfile::tempdir().unwrap();
        type Tamper = fn(&mut Vec<String>);
        let tampers: [(&str, Tamper); 4] = [
            ("--privileged sneaks in", |a| {
                a.insert(1, "--privileged".into())
            }),
            ("hardening dropped", |a| a.retain(|x| x != "--cap-drop=ALL")),
            ("bind mount", |a| {
                a.insert(1, "--volume".into());
                a.insert(2, "/:/host:U".into());
            }),
            ("image swapped", |a| {
                *a.last_mut().unwrap() = "docker.io/library/alpine:latest".into();
            }),
        ];
        for (what, tamper) in tampers {
            let mut orchestrator = offline(dir.path());
            orchestrator.tamper_argv = Some(tamper);
            let seen = std::sync::Mutex::new(Vec::new());
            let sink = |c: &crate::Created| seen.lock().unwrap().push(c.clone());
            let tracker = Tracker::new("hello", &sink);
            let err = orchestrator
                .create_container(&m, &m.containers[0], &image, &tracker)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::UnsafeArgument { container, .. } if container == "web"),
                "{what}: {err}"
            );
            assert!(
                tracker.snapshot().is_empty(),
                "{what}: something was created"
            );
            assert!(seen.into_inner().unwrap().is_empty(), "{what}");
        }
        // Untampered, the same call gets past the checker to Podman (which is not there).
        let orchestrator = offline(dir.path());
        let tracker = Tracker::unreported("hello");
        let err = orchestrator
            .create_container(&m, &m.containers[0], &image, &tracker)
            .await
            .unwrap_err();
        assert!(
            !matches!(err, Error::UnsafeArgument { .. }),
            "the honest argv was refused: {err}"
        );
    }
}
