//! The app lifecycle: install, update (with rollback), repair, start, stop, uninstall and
//! status. Every path that creates containers goes through [`crate::create`]; every
//! operation that creates Podman objects records them first ([`crate::undo`]).

use std::path::PathBuf;

use archy_registry::{Manifest, VerifiedManifest};
use tracing::{info, warn};

use crate::undo::Tracker;
use crate::{
    AppRuntime, ContainerInfo, ContainerRuntime, ContainerState, CreatedSink, Error, ImageSource,
    LimitSupport, Orchestrator, Progress, ProgressSink, Repair, Result, Stage, UnenforcedLimit,
    container_name, health, preflight,
};

impl Orchestrator {
    /// Which resource limits this host's Podman enforces (from `podman info` at connect).
    pub fn limits(&self) -> LimitSupport {
        LimitSupport::of(self.runtime.host())
    }

    /// The limits `manifest` asks for (plus the default pids limit) that this host does not
    /// enforce, each with the reason: for the node to say at install and in `archy status`.
    pub fn unenforced_limits(&self, manifest: &archy_registry::Manifest) -> Vec<UnenforcedLimit> {
        self.limits().unenforced(&manifest.resources)
    }

    pub(crate) fn with_limit_warnings(
        &self,
        manifest: &Manifest,
        mut runtime: AppRuntime,
    ) -> AppRuntime {
        runtime.unenforced_limits = self.unenforced_limits(manifest);
        for limit in &runtime.unenforced_limits {
            warn!(app = %manifest.id, "{limit}");
        }
        runtime
    }

    pub(crate) fn app_dir(&self, app: &str) -> PathBuf {
        self.config.data_dir.join("apps").join(app)
    }

    /// Installs and starts an app whose image archives `images` opens (by artifact name,
    /// bytes the caller already verified). On any failure everything this call
    /// created is removed again: nothing half-installed stays behind.
    pub async fn install(
        &self,
        manifest: &VerifiedManifest,
        images: &dyn ImageSource,
        progress: ProgressSink<'_>,
    ) -> Result<AppRuntime> {
        self.install_tracked(manifest, images, progress, &|_| {})
            .await
    }

    /// [`Orchestrator::install`], reporting what it creates to `created` as it goes (for
    /// the caller to persist, and to [`Orchestrator::undo`] after a crash). After a failure
    /// the sink gets what the install's own undo could not remove (nothing, normally).
    pub async fn install_tracked(
        &self,
        manifest: &VerifiedManifest,
        images: &dyn ImageSource,
        progress: ProgressSink<'_>,
        created: CreatedSink<'_>,
    ) -> Result<AppRuntime> {
        self.install_manifest(manifest, images, progress, created)
            .await
    }

    /// [`Orchestrator::install_tracked`] for any manifest (the tests build theirs).
    pub(crate) async fn install_manifest(
        &self,
        manifest: &Manifest,
        images: &dyn ImageSource,
        progress: ProgressSink<'_>,
        created: CreatedSink<'_>,
    ) -> Result<AppRuntime> {
        preflight::check_manifest(manifest)?;
        let app = manifest.id.as_str();
        if !self.runtime.containers_of(app).await?.is_empty() {
            return Err(Error::AlreadyInstalled(app.to_owned()));
        }
        self.check_ports_free(manifest)?;
        let tracker = Tracker::new(app, created);
        let dir = self.app_dir(app);
        tracker.add(|c| {
            c.app_dir = !dir.exists();
            c.env_dir = !dir.join("env").exists();
        });
        match self
            .create_and_start(manifest, images, progress, &tracker)
            .await
        {
            Ok(runtime) => Ok(self.with_limit_warnings(manifest, runtime)),
            Err(e) => {
                warn!(app, error = %e, "install failed; removing what it created");
                self.undo_reporting(&tracker).await;
                Err(e)
            }
        }
    }

    pub(crate) async fn create_and_start(
        &self,
        manifest: &Manifest,
        images: &dyn ImageSource,
        progress: ProgressSink<'_>,
        tracker: &Tracker<'_>,
    ) -> Result<AppRuntime> {
        self.create_missing(manifest, images, &[], progress, tracker)
            .await?;
        self.start_in_order(manifest, progress).await
    }

    /// Whether `current` (what Podman has of the app) differs from the manifest: a
    /// container missing or not running. Cheap: no Podman call.
    pub fn drifted(manifest: &VerifiedManifest, current: &[ContainerInfo]) -> bool {
        manifest.containers.iter().any(|c| {
            let name = container_name(&manifest.id, &c.name);
            !current
                .iter()
                .any(|have| have.name == name && have.state == ContainerState::Running)
        })
    }

    /// Containers of the manifest that Podman does not have (removed behind our back).
    pub async fn missing_containers(&self, manifest: &VerifiedManifest) -> Result<Vec<String>> {
        let existing: Vec<String> = self
            .runtime
            .containers_of(&manifest.id)
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        Ok(manifest
            .containers
            .iter()
            .map(|c| container_name(&manifest.id, &c.name))
            .filter(|n| !existing.contains(n))
            .collect())
    }

    /// One level-triggered repair of an app that should be running: recreates missing
    /// containers (`images` must open their archives), starts dead or stopped ones, and
    /// leaves running containers with our name and labels alone (adopted, never recreated).
    pub async fn repair(
        &self,
        manifest: &VerifiedManifest,
        images: &dyn ImageSource,
    ) -> Result<Repair> {
        self.repair_manifest(manifest, images).await
    }

    pub(crate) async fn repair_manifest(
        &self,
        manifest: &Manifest,
        images: &dyn ImageSource,
    ) -> Result<Repair> {
        preflight::check_manifest(manifest)?;
        let app = manifest.id.as_str();
        let before = self.runtime.containers_of(app).await?;
        let existing: Vec<String> = before.iter().map(|c| c.name.clone()).collect();
        let not_running: Vec<String> = before
            .iter()
            .filter(|c| c.state != ContainerState::Running)
            .map(|c| c.name.clone())
            .collect();
        let recreated = self
            .create_missing(
                manifest,
                images,
                &existing,
                &|_| {},
                &Tracker::unreported(app),
            )
            .await?;
        if recreated.is_empty() && not_running.is_empty() {
            return Ok(Repair::default());
        }
        warn!(app, ?recreated, ?not_running, "repairing drift");
        self.start_in_order(manifest, &|_| {}).await?;
        Ok(Repair {
            recreated,
            restarted: not_running,
        })
    }

    /// Starts containers in dependency order, waiting for each one's health check.
    pub async fn start_containers(
        &self,
        manifest: &VerifiedManifest,
        progress: ProgressSink<'_>,
    ) -> Result<AppRuntime> {
        self.start_in_order(manifest, progress).await
    }

    pub(crate) async fn start_in_order(
        &self,
        manifest: &Manifest,
        progress: ProgressSink<'_>,
    ) -> Result<AppRuntime> {
        let app = manifest.id.as_str();
        let order = manifest
            .start_order()
            .map_err(|e| Error::Engine(format!("start order: {e}")))?;
        let total = order.len() as u64;
        for (i, c) in order.into_iter().enumerate() {
            let name = container_name(app, &c.name);
            info!(app, container = %c.name, "starting");
            progress(Progress::new(
                Stage::Starting,
                i as u64,
                total,
                c.name.clone(),
            ));
            self.runtime.start_container(&name).await?;
            if let Some(check) = &c.health {
                progress(Progress::new(
                    Stage::WaitingForHealth,
                    i as u64,
                    total,
                    c.name.clone(),
                ));
                health::wait_healthy(
                    self.runtime.as_ref(),
                    &name,
                    c,
                    check,
                    self.config.publish_address,
                )
                .await?;
            }
        }
        self.status(app).await
    }

    /// Starts an installed app.
    pub async fn start(&self, manifest: &VerifiedManifest) -> Result<AppRuntime> {
        if self.runtime.containers_of(&manifest.id).await?.is_empty() {
            return Err(Error::NotInstalled(manifest.id.clone()));
        }
        self.start_in_order(manifest, &|_| {}).await
    }

    /// Stops an app's containers in reverse start order, honouring each one's stop grace.
    pub async fn stop(&self, manifest: &VerifiedManifest) -> Result<AppRuntime> {
        self.stop_in_order(manifest).await
    }

    pub(crate) async fn stop_in_order(&self, manifest: &Manifest) -> Result<AppRuntime> {
        let app = manifest.id.as_str();
        if self.runtime.containers_of(app).await?.is_empty() {
            return Err(Error::NotInstalled(app.to_owned()));
        }
        let mut order = manifest
            .start_order()
            .map_err(|e| Error::Engine(format!("start order: {e}")))?;
        order.reverse();
        for c in order {
            let name = container_name(app, &c.name);
            // The runtime waits out the grace, then kills; its own deadline outlasts that.
            self.runtime
                .stop_container(&name, c.stop_grace_seconds)
                .await?;
        }
        self.status(app).await
    }

    /// Removes an app's containers, its network and its Podman secrets. Volumes and the
    /// secret files stay unless `purge` is set. Without a container (an install that
    /// failed or was interrupted before creating one) the network and secrets still go,
    /// and the answer is [`Error::NotInstalled`] unless `purge` is set.
    pub async fn uninstall(&self, app: &str, purge: bool) -> Result<()> {
        let containers = self.runtime.containers_of(app).await?;
        if containers.is_empty() && !purge {
            self.remove_network(app).await;
            self.remove_secrets(app).await;
            let _ = std::fs::remove_dir_all(self.app_dir(app).join("env"));
            return Err(Error::NotInstalled(app.to_owned()));
        }
        self.remove_containers(app).await;
        let left = self.runtime.containers_of(app).await?;
        if !left.is_empty() {
            return Err(Error::Engine(format!(
                "containers of {app} are still present after removal: {}",
                left.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.remove_network(app).await;
        // No container uses them any more; reinstalling recreates them from the 0600 files.
        self.remove_secrets(app).await;
        let dir = self.app_dir(app);
        let _ = std::fs::remove_dir_all(dir.join("env"));
        if purge {
            for v in self.runtime.volumes_of(app).await? {
                self.runtime.remove_volume(&v).await?;
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|source| Error::Io {
                    what: "removing app data",
                    path: dir.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Replaces a running app with a newer version. Volumes, secrets, container names and
    /// ports carry over (they are derived from the app id and the manifest). When the new
    /// version does not come up healthy, what it created is undone and the previous
    /// version is recreated from `old_images`, so the app runs as before.
    pub async fn update(
        &self,
        old: &VerifiedManifest,
        new: &VerifiedManifest,
        old_images: &dyn ImageSource,
        new_images: &dyn ImageSource,
        progress: ProgressSink<'_>,
    ) -> Result<AppRuntime> {
        self.update_tracked(old, new, old_images, new_images, progress, &|_| {})
            .await
    }

    /// [`Orchestrator::update`], reporting what the new version creates to `created` as it
    /// goes. Undoing that record after a crash removes the new version's containers (and
    /// any volume, network or secret only it declared); the previous version's objects are
    /// never in it, so recreating the recorded version afterwards brings the app back.
    pub async fn update_tracked(
        &self,
        old: &VerifiedManifest,
        new: &VerifiedManifest,
        old_images: &dyn ImageSource,
        new_images: &dyn ImageSource,
        progress: ProgressSink<'_>,
        created: CreatedSink<'_>,
    ) -> Result<AppRuntime> {
        self.update_manifest(old, new, old_images, new_images, progress, created)
            .await
    }

    /// [`Orchestrator::update_tracked`] for any manifests (the tests build theirs).
    pub(crate) async fn update_manifest(
        &self,
        old: &Manifest,
        new: &Manifest,
        old_images: &dyn ImageSource,
        new_images: &dyn ImageSource,
        progress: ProgressSink<'_>,
        created: CreatedSink<'_>,
    ) -> Result<AppRuntime> {
        // Refused before the running version is stopped.
        preflight::check_manifest(new)?;
        let app = new.id.as_str();
        if self.runtime.containers_of(app).await?.is_empty() {
            return Err(Error::NotInstalled(app.to_owned()));
        }
        self.check_ports_free_except(new, &old.containers)?;
        // Stopping first honours the old version's stop grace (its data flushed cleanly).
        self.stop_in_order(old).await?;
        self.remove_containers(app).await;
        let tracker = Tracker::new(app, created);
        let env_dir = self.app_dir(app).join("env");
        tracker.add(|c| c.env_dir = !env_dir.exists());
        match self
            .create_and_start(new, new_images, progress, &tracker)
            .await
        {
            Ok(runtime) => Ok(self.with_limit_warnings(new, runtime)),
            Err(cause) => {
                warn!(app, error = %cause, "update failed; rolling back");
                self.undo_reporting(&tracker).await;
                self.remove_containers(app).await;
                let rollback = self
                    .create_and_start(old, old_images, &|_| {}, &Tracker::unreported(app))
                    .await;
                match rollback {
                    Ok(_) => Err(Error::RolledBack {
                        app: app.to_owned(),
                        from: old.version.to_string(),
                        to: new.version.to_string(),
                        cause: cause.to_string(),
                    }),
                    Err(rollback) => Err(Error::RollbackFailed {
                        app: app.to_owned(),
                        cause: cause.to_string(),
                        rollback: rollback.to_string(),
                    }),
                }
            }
        }
    }

    /// Removes every container of the app (e.g. a half-done update found after a crash).
    pub async fn remove_app_containers(&self, app: &str) {
        self.remove_containers(app).await;
    }

    pub(crate) async fn remove_containers(&self, app: &str) {
        for c in self.runtime.containers_of(app).await.unwrap_or_default() {
            if let Err(e) = self.runtime.remove_container(&c.name).await {
                warn!(container = %c.name, error = %e, "remove failed");
            }
        }
    }

    pub async fn status(&self, app: &str) -> Result<AppRuntime> {
        let containers = self
            .runtime
            .containers_of(app)
            .await?
            .into_iter()
            .map(|c| ContainerRuntime {
                name: c.name,
                state: c.state,
            })
            .collect();
        Ok(AppRuntime {
            containers,
            unenforced_limits: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests;
