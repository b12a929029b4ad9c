//! Verified manifests into rootless Podman. Every Podman object an app owns is named
//! `archy-<app>[-<part>]` and labelled `archy.app=<app>`, so the orchestrator can find
//! (and only ever touches) what it created. No app-specific code lives here: the manifest
//! says everything.

/// A model of Podman's parser for `podman create`, the oracle of the argv property test.
pub mod argv_check;
mod engine;
mod health;
mod limits;
mod preflight;
mod secrets;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use archy_registry::VerifiedManifest;
use archy_registry::manifest::{Container, EnvValue, NetworkMode, PidMode};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub use engine::{AppEvent, ContainerInfo, ContainerState, DEFAULT_DEADLINE, Engine, HostInfo};
pub use limits::{DEFAULT_PIDS_LIMIT, LimitKind, LimitSupport, UnenforcedLimit};
pub use secrets::podman_name as secret_name;

pub const LABEL_APP: &str = "archy.app";
pub const LABEL_CONTAINER: &str = "archy.container";
pub const LABEL_VERSION: &str = "archy.version";

/// User namespace of every container that is not privileged. Measured on this project's
/// test host (Podman 4.3.1 rootless, cgroup v1, overlay, 65536 subuids for the Podman user):
/// - default (none): container root *is* the Podman user (uid_map `0 1001 1`), i.e. the
///   owner of the Podman socket and of every app's data;
/// - `--userns=nomap`: uid_map `0 1 65536` inside Podman's namespace, so container root
///   is host subuid 100000 and the Podman user is not mapped at all. One fixed mapping:
///   Podman copies (chowns) an image's layers once per image, containers of an app share
///   volumes with one owner, and `:U` volumes stay writable (uid 1000 in hello writes its
///   volume). Create time measured equal to the default (5 creates: 0.44 s vs 0.40 s);
/// - `--userns=auto`: 1024 ids per container (`auto:size=N` for more), so at most 64
///   containers fit in 65536 subuids (the 65th create fails: "could not find enough
///   available IDs"), an image owning files as 65534 would need a range of its own, each
///   container gets its own chowned copy of the image layers which stays in storage after
///   the container is gone (64 hello containers: overlay 9.7 MiB → 134 MiB), and two
///   containers of one app sharing a `:U` volume would chown it away from each other;
/// - `--userns=keep-id`: maps the Podman user into the container (uid 1001), the opposite
///   of what is wanted.
pub const USERNS: &str = "--userns=nomap";

/// The tmpfs a read-only root gets at `/tmp` (Podman's own `--read-only-tmpfs` would also
/// mount `/run` and `/var/tmp`; the manifest promises `/tmp`, so that is switched off and
/// `/tmp` is mounted explicitly). Exec is allowed, as with Podman's read-only tmpfs.
pub const TMP_TMPFS: &str = "/tmp:rw,nosuid,nodev,mode=1777";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("podman: {0}")]
    Engine(String),
    /// A Podman call that did not finish within its deadline (its client was killed).
    #[error("`{what}` did not answer within {}s (is the Podman service alive?)", after.as_secs())]
    Timeout { what: String, after: Duration },
    /// Nothing answers on the Podman socket: the service is not running.
    #[error(
        "the Podman service at {url} is not running (`{what}` could not connect: {detail}); \
         start it as the podman user: podman system service --time=0 {url}"
    )]
    ServiceDown {
        url: String,
        what: String,
        detail: String,
    },
    /// [`Orchestrator::undo`] could not remove everything it was given.
    #[error("undoing what an operation on {app} created left behind: {}", left.join("; "))]
    UndoIncomplete { app: String, left: Vec<String> },
    #[error(
        "podman at {url} is not rootless; Archipelago only drives rootless Podman (run it as a non-root user)"
    )]
    NotRootless { url: String },
    #[error("app {0:?} is already installed")]
    AlreadyInstalled(String),
    #[error("app {0:?} is not installed")]
    NotInstalled(String),
    #[error("host port {port}/{protocol} needed by container {container:?} is already in use")]
    PortInUse {
        port: u16,
        protocol: &'static str,
        container: String,
    },
    #[error(
        "not enough disk at {path}: the app needs {needed_mib} MiB free, only {available_mib} MiB are"
    )]
    InsufficientDisk {
        path: PathBuf,
        needed_mib: u64,
        available_mib: u64,
    },
    #[error("update of {app} to {to} failed ({cause}); rolled back to {from}, its data intact")]
    RolledBack {
        app: String,
        from: String,
        to: String,
        cause: String,
    },
    #[error("update of {app} failed ({cause}) and so did the rollback ({rollback})")]
    RollbackFailed {
        app: String,
        cause: String,
        rollback: String,
    },
    #[error("artifact {0:?} needed for an image was not provided")]
    MissingImage(String),
    #[error("container {container:?} did not become healthy: {reason}")]
    Unhealthy { container: String, reason: String },
    #[error("the manifest of {app} is invalid ({source}); nothing was done in Podman")]
    InvalidManifest {
        app: String,
        #[source]
        source: archy_registry::ValidationError,
    },
    #[error(
        "container {container:?} would get a Podman argument the orchestrator never renders ({reason}); nothing was done in Podman"
    )]
    UnsafeArgument { container: String, reason: String },
    #[error("Podman secret {name:?} exists but does not belong to app {app}; it was left alone")]
    SecretTaken { name: String, app: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// Podman API socket of the rootless user, e.g. `unix:///run/user/1000/podman.sock`.
    pub podman_url: String,
    /// Where per-app state lives (secrets, env files).
    pub data_dir: PathBuf,
    /// Host address ports are published on.
    pub publish_address: IpAddr,
}

/// Stages of an operation, in the order they happen; progress never goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Checking,
    Fetching,
    Loading,
    Creating,
    Starting,
    WaitingForHealth,
    Finished,
}

/// One progress event: `done` of `total` units (bytes while fetching, items otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
    pub detail: String,
}

impl Progress {
    pub fn new(stage: Stage, done: u64, total: u64, detail: impl Into<String>) -> Self {
        Self {
            stage,
            done,
            total,
            detail: detail.into(),
        }
    }
}

/// Where progress goes. `&|_| {}` when nobody watches.
pub type ProgressSink<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// What one repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    pub recreated: Vec<String>,
    pub restarted: Vec<String>,
}

impl Repair {
    pub fn is_noop(&self) -> bool {
        self.recreated.is_empty() && self.restarted.is_empty()
    }
}

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
struct Tracker<'a> {
    record: std::sync::Mutex<Created>,
    sink: CreatedSink<'a>,
}

impl<'a> Tracker<'a> {
    fn new(app: &str, sink: CreatedSink<'a>) -> Self {
        Self {
            record: std::sync::Mutex::new(Created::new(app)),
            sink,
        }
    }

    /// A record nobody reads (repairs and rollbacks rebuild the app's own state).
    fn unreported(app: &str) -> Tracker<'static> {
        Tracker::new(app, &|_| {})
    }

    fn add(&self, change: impl FnOnce(&mut Created)) {
        let snapshot = {
            let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut record);
            record.clone()
        };
        (self.sink)(&snapshot);
    }

    fn snapshot(&self) -> Created {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, record: Created) {
        self.add(|r| *r = record);
    }
}

/// What `status` sees of one app in Podman.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRuntime {
    pub containers: Vec<ContainerRuntime>,
    /// Set by `install` and `update`: limits the app's containers were created with that
    /// this host does not enforce (also [`Orchestrator::unenforced_limits`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unenforced_limits: Vec<UnenforcedLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRuntime {
    pub name: String,
    pub state: ContainerState,
}

impl AppRuntime {
    pub fn all_running(&self) -> bool {
        !self.containers.is_empty()
            && self
                .containers
                .iter()
                .all(|c| c.state == ContainerState::Running)
    }
}

pub struct Orchestrator {
    engine: Engine,
    config: OrchestratorConfig,
}

pub fn container_name(app: &str, container: &str) -> String {
    format!("archy-{app}-{container}")
}

fn network_name(app: &str) -> String {
    format!("archy-{app}")
}

fn volume_name(app: &str, volume: &str) -> String {
    format!("archy-{app}-{volume}")
}

impl Orchestrator {
    /// Connects to Podman and refuses an engine that is not rootless.
    pub async fn connect(config: OrchestratorConfig) -> Result<Self> {
        let engine = Engine::connect(&config.podman_url).await?;
        Ok(Self { engine, config })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Which resource limits this host's Podman enforces (from `podman info` at connect).
    pub fn limits(&self) -> LimitSupport {
        self.engine.limits()
    }

    /// The limits `manifest` asks for (plus the default pids limit) that this host does not
    /// enforce, each with the reason: for the node to say at install and in `archy status`.
    pub fn unenforced_limits(&self, manifest: &archy_registry::Manifest) -> Vec<UnenforcedLimit> {
        self.limits().unenforced(&manifest.resources)
    }

    fn with_limit_warnings(
        &self,
        manifest: &VerifiedManifest,
        mut runtime: AppRuntime,
    ) -> AppRuntime {
        runtime.unenforced_limits = self.unenforced_limits(manifest);
        for limit in &runtime.unenforced_limits {
            warn!(app = %manifest.id, "{limit}");
        }
        runtime
    }

    fn app_dir(&self, app: &str) -> PathBuf {
        self.config.data_dir.join("apps").join(app)
    }

    /// Checks free disk before anything is fetched or created: Podman's image store needs
    /// room to unpack the images next to the manifest's own requirement, and the node's
    /// data dir holds the artifacts.
    pub async fn check_disk(&self, manifest: &VerifiedManifest, artifact_bytes: u64) -> Result<()> {
        const MIB: u64 = 1024 * 1024;
        let graph_root = self.engine.graph_root().to_owned();
        let needs = [
            // Loading unpacks each layer next to the archive podman copies in, and the
            // user namespace (`USERNS`) needs one more, chowned, copy of the layers.
            (
                PathBuf::from(graph_root),
                manifest
                    .resources
                    .disk_mb
                    .saturating_mul(MIB)
                    .saturating_add(artifact_bytes.saturating_mul(3)),
            ),
            (self.config.data_dir.clone(), artifact_bytes),
        ];
        for (path, needed) in needs {
            let available = free_bytes(&path)?;
            if available < needed {
                return Err(Error::InsufficientDisk {
                    path,
                    needed_mib: needed.div_ceil(MIB),
                    available_mib: available / MIB,
                });
            }
        }
        Ok(())
    }

    /// Installs and starts an app whose image archives are at `images` (artifact name →
    /// file whose hash the caller already verified). On any failure everything this call
    /// created is removed again: nothing half-installed stays behind.
    pub async fn install(
        &self,
        manifest: &VerifiedManifest,
        images: &BTreeMap<String, PathBuf>,
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
        images: &BTreeMap<String, PathBuf>,
        progress: ProgressSink<'_>,
        created: CreatedSink<'_>,
    ) -> Result<AppRuntime> {
        preflight::check_manifest(manifest)?;
        let app = manifest.id.as_str();
        if !self.engine.containers_of(app).await?.is_empty() {
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

    /// Undoes what `tracker` recorded and reports what is left to its sink.
    async fn undo_reporting(&self, tracker: &Tracker<'_>) {
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
            match self.engine.containers_of(app).await {
                Ok(have) => {
                    for name in &created.containers {
                        if !ours(name) {
                            refuse("container", name, &mut problems);
                        } else if have.iter().any(|c| &c.name == name)
                            && let Err(e) = self.engine.remove_container(name).await
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
            let result = match self.engine.secret_owner(name).await {
                Ok(Some(owner)) if owner == app => self.engine.remove_secret(name).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                problems.push(format!("secret {name}: {e}"));
                left.secrets.push(name.clone());
            }
        }
        if !created.volumes.is_empty() {
            match self.engine.volumes_of(app).await {
                Ok(have) => {
                    for name in &created.volumes {
                        if !ours(name) {
                            refuse("volume", name, &mut problems);
                        } else if have.contains(name)
                            && let Err(e) = self
                                .engine
                                .run(&["volume", "rm", "--force", "--", name])
                                .await
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
            let result = match self.network_owner(name).await {
                Ok(Some(owner)) if owner == app => self
                    .engine
                    .run(&["network", "rm", "--", name])
                    .await
                    .map(drop),
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

    async fn create_and_start(
        &self,
        manifest: &VerifiedManifest,
        images: &BTreeMap<String, PathBuf>,
        progress: ProgressSink<'_>,
        tracker: &Tracker<'_>,
    ) -> Result<AppRuntime> {
        self.create_missing(manifest, images, &[], progress, tracker)
            .await?;
        self.start_containers(manifest, progress).await
    }

    /// Creates the manifest's containers that are not among `existing` (by name).
    async fn create_missing(
        &self,
        manifest: &VerifiedManifest,
        images: &BTreeMap<String, PathBuf>,
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
                        let path = images
                            .get(artifact)
                            .ok_or_else(|| Error::MissingImage(artifact.clone()))?;
                        info!(app, artifact, "loading image archive");
                        let loaded = image_ids.len() as u64;
                        progress(Progress::new(
                            Stage::Loading,
                            loaded,
                            images.len() as u64,
                            artifact.clone(),
                        ));
                        let id = self.engine.load_image(path).await?;
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

    /// Whether `current` (what Podman has of the app) differs from the manifest: a
    /// container missing or not running. Cheap: no Podman call.
    pub fn drifted(manifest: &VerifiedManifest, current: &[engine::ContainerInfo]) -> bool {
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
            .engine
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
    /// containers (`images` must hold their archives), starts dead or stopped ones, and
    /// leaves running containers with our name and labels alone (adopted, never recreated).
    pub async fn repair(
        &self,
        manifest: &VerifiedManifest,
        images: &BTreeMap<String, PathBuf>,
    ) -> Result<Repair> {
        preflight::check_manifest(manifest)?;
        let app = manifest.id.as_str();
        let before = self.engine.containers_of(app).await?;
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
        self.start_containers(manifest, &|_| {}).await?;
        Ok(Repair {
            recreated,
            restarted: not_running,
        })
    }

    async fn create_container(
        &self,
        manifest: &VerifiedManifest,
        c: &Container,
        image: &str,
        tracker: &Tracker<'_>,
    ) -> Result<()> {
        let app = manifest.id.as_str();
        let env_file = self.write_env_file(app, c)?;
        let args = create_args(manifest, c, image, &env_file, self.config.publish_address);
        // The argv that runs is the one checked, with the real image id and paths.
        preflight::check_create_args(&args, c.privileged).map_err(|reason| {
            Error::UnsafeArgument {
                container: c.name.clone(),
                reason,
            }
        })?;
        let existing = self.engine.volumes_of(app).await?;
        for v in &c.volumes {
            let vol = volume_name(app, &v.name);
            if !existing.contains(&vol) {
                let label = format!("{LABEL_APP}={app}");
                tracker.add(|r| r.volumes.push(vol.clone()));
                self.engine
                    .run(&["volume", "create", "--label", &label, "--", &vol])
                    .await?;
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        tracker.add(|r| r.containers.push(container_name(app, &c.name)));
        self.engine.run(&refs).await?;
        Ok(())
    }

    /// The container's plain environment, in a 0600 env file (values stay out of process
    /// arguments). Secret values never go here: they are Podman secrets (`--secret`).
    fn write_env_file(&self, app: &str, c: &Container) -> Result<PathBuf> {
        let mut text = String::new();
        for (key, value) in &c.env {
            let EnvValue::Plain(value) = value else {
                continue;
            };
            // Podman env files are line-based: a newline would smuggle in another variable.
            text.push_str(&format!("{key}={}\n", value.replace('\n', " ")));
        }
        let path = self
            .app_dir(app)
            .join("env")
            .join(format!("{}.env", c.name));
        secrets::write_private(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Starts containers in dependency order, waiting for each one's health check.
    pub async fn start_containers(
        &self,
        manifest: &VerifiedManifest,
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
            self.engine.run(&["start", "--", &name]).await?;
            if let Some(check) = &c.health {
                progress(Progress::new(
                    Stage::WaitingForHealth,
                    i as u64,
                    total,
                    c.name.clone(),
                ));
                health::wait_healthy(&self.engine, &name, c, check, self.config.publish_address)
                    .await?;
            }
        }
        self.status(app).await
    }

    /// Starts an installed app.
    pub async fn start(&self, manifest: &VerifiedManifest) -> Result<AppRuntime> {
        if self.engine.containers_of(&manifest.id).await?.is_empty() {
            return Err(Error::NotInstalled(manifest.id.clone()));
        }
        self.start_containers(manifest, &|_| {}).await
    }

    /// Stops an app's containers in reverse start order, honouring each one's stop grace.
    pub async fn stop(&self, manifest: &VerifiedManifest) -> Result<AppRuntime> {
        let app = manifest.id.as_str();
        if self.engine.containers_of(app).await?.is_empty() {
            return Err(Error::NotInstalled(app.to_owned()));
        }
        let mut order = manifest
            .start_order()
            .map_err(|e| Error::Engine(format!("start order: {e}")))?;
        order.reverse();
        for c in order {
            let name = container_name(app, &c.name);
            let grace = c.stop_grace_seconds;
            // Podman waits `grace` then kills; our own wait must outlast that.
            let outer = Duration::from_secs(u64::from(grace) + 30);
            let grace_arg = grace.to_string();
            self.engine
                .run_within(&["stop", "--time", &grace_arg, "--", &name], None, outer)
                .await?;
        }
        self.status(app).await
    }

    /// Removes an app's containers, its network and its Podman secrets. Volumes and the
    /// secret files stay unless `purge` is set. Without a container (an install that
    /// failed or was interrupted before creating one) the network and secrets still go,
    /// and the answer is [`Error::NotInstalled`] unless `purge` is set.
    pub async fn uninstall(&self, app: &str, purge: bool) -> Result<()> {
        let containers = self.engine.containers_of(app).await?;
        if containers.is_empty() && !purge {
            self.remove_network(app).await;
            self.remove_secrets(app).await;
            let _ = std::fs::remove_dir_all(self.app_dir(app).join("env"));
            return Err(Error::NotInstalled(app.to_owned()));
        }
        self.remove_containers(app).await;
        let left = self.engine.containers_of(app).await?;
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
            for v in self.engine.volumes_of(app).await? {
                self.engine.run(&["volume", "rm", "-f", "--", &v]).await?;
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
        old_images: &BTreeMap<String, PathBuf>,
        new_images: &BTreeMap<String, PathBuf>,
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
        old_images: &BTreeMap<String, PathBuf>,
        new_images: &BTreeMap<String, PathBuf>,
        progress: ProgressSink<'_>,
        created: CreatedSink<'_>,
    ) -> Result<AppRuntime> {
        // Refused before the running version is stopped.
        preflight::check_manifest(new)?;
        let app = new.id.as_str();
        if self.engine.containers_of(app).await?.is_empty() {
            return Err(Error::NotInstalled(app.to_owned()));
        }
        self.check_ports_free_except(new, &old.containers)?;
        // Stopping first honours the old version's stop grace (its data flushed cleanly).
        self.stop(old).await?;
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

    /// Makes sure every declared secret exists as the app's Podman secret, holding the
    /// value of its 0600 file. A secret generated just now replaces a leftover of ours; a
    /// secret of that name that is not ours is never touched (the install fails).
    async fn ensure_secrets(
        &self,
        app: &str,
        secrets: &secrets::Secrets,
        tracker: &Tracker<'_>,
    ) -> Result<()> {
        for (secret, value) in &secrets.values {
            let name = secrets::podman_name(app, secret);
            match self.engine.secret_owner(&name).await? {
                Some(owner) if owner != app => {
                    return Err(Error::SecretTaken {
                        name,
                        app: app.to_owned(),
                    });
                }
                Some(_) if !secrets.generated.contains(secret) => continue,
                Some(_) => {
                    tracker.add(|r| r.secrets.push(name.clone()));
                    self.engine.remove_secret(&name).await?
                }
                None => tracker.add(|r| r.secrets.push(name.clone())),
            }
            self.engine
                .create_secret(&name, app, value.as_bytes())
                .await?;
        }
        Ok(())
    }

    /// Removes the app's Podman secrets (those named for it and labelled as its).
    async fn remove_secrets(&self, app: &str) {
        let prefix = secrets::podman_name(app, "");
        for name in self.engine.secret_names().await.unwrap_or_default() {
            if !name.starts_with(&prefix) {
                continue;
            }
            if matches!(self.engine.secret_owner(&name).await, Ok(Some(owner)) if owner == app)
                && let Err(e) = self.engine.remove_secret(&name).await
            {
                warn!(secret = %name, error = %e, "could not remove the app secret");
            }
        }
    }

    async fn ensure_network(&self, app: &str, tracker: &Tracker<'_>) -> Result<()> {
        let name = network_name(app);
        if !self.engine.network_exists(&name).await? {
            tracker.add(|r| r.networks.push(name.clone()));
            self.engine
                .run(&[
                    "network",
                    "create",
                    "--label",
                    &format!("{LABEL_APP}={app}"),
                    "--",
                    &name,
                ])
                .await?;
        }
        Ok(())
    }

    /// The `archy.app` label of a network: `None` when there is no such network, `Some("")`
    /// when it has no such label (not ours).
    async fn network_owner(&self, name: &str) -> Result<Option<String>> {
        let format = format!("{{{{index .Labels \"{LABEL_APP}\"}}}}");
        match self
            .engine
            .run(&["network", "inspect", "--format", &format, "--", name])
            .await
        {
            Ok(owner) => Ok(Some(owner.trim().to_owned())),
            Err(Error::Engine(e))
                if e.contains("network not found") || e.contains("no such network") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the app's network, only if it carries our label (never someone else's).
    async fn remove_network(&self, app: &str) {
        let name = network_name(app);
        let labelled = self
            .network_owner(&name)
            .await
            .is_ok_and(|owner| owner.as_deref() == Some(app));
        if labelled && let Err(e) = self.engine.run(&["network", "rm", "--", &name]).await {
            warn!(network = %name, error = %e, "could not remove the app network");
        }
    }

    /// Removes every container of the app (e.g. a half-done update found after a crash).
    pub async fn remove_app_containers(&self, app: &str) {
        self.remove_containers(app).await;
    }

    async fn remove_containers(&self, app: &str) {
        for c in self.engine.containers_of(app).await.unwrap_or_default() {
            if let Err(e) = self.engine.remove_container(&c.name).await {
                warn!(container = %c.name, error = %e, "remove failed");
            }
        }
    }

    pub async fn status(&self, app: &str) -> Result<AppRuntime> {
        let containers = self
            .engine
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

    fn check_ports_free(&self, manifest: &VerifiedManifest) -> Result<()> {
        self.check_ports_free_except(manifest, &[])
    }

    /// Ports the new manifest publishes must be free, but for those `current` holds itself.
    fn check_ports_free_except(
        &self,
        manifest: &VerifiedManifest,
        current: &[archy_registry::manifest::Container],
    ) -> Result<()> {
        let held = |port: &archy_registry::manifest::Port| {
            current
                .iter()
                .flat_map(|c| &c.ports)
                .any(|p| p.host == port.host && p.protocol == port.protocol)
        };
        for c in &manifest.containers {
            for p in c.ports.iter().filter(|p| !held(p)) {
                let probe_ip = match self.config.publish_address {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    other => other,
                };
                let free = match p.protocol {
                    archy_registry::manifest::Protocol::Tcp => {
                        TcpListener::bind((probe_ip, p.host)).is_ok()
                    }
                    archy_registry::manifest::Protocol::Udp => {
                        std::net::UdpSocket::bind((probe_ip, p.host)).is_ok()
                    }
                };
                if !free {
                    return Err(Error::PortInUse {
                        port: p.host,
                        protocol: p.protocol.as_str(),
                        container: c.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The `podman create` arguments for one container of a manifest: the single place that
/// turns the manifest into Podman's terms (used to act, and to render for developers).
///
/// Containers are hardened the way a careful operator runs them by hand: every capability
/// dropped and only the declared ones added back, no privilege gain through setuid
/// binaries, their own user namespace ([`USERNS`]) so root inside is not the Podman user,
/// a pids limit, and a read-only root when the manifest says the app copes. A privileged
/// container (first-party only: the sandbox policy refuses it to third parties) keeps
/// Podman's meaning of privileged: all capabilities, and root inside is the Podman user,
/// since what such a container is for (managing the host as that user) needs exactly that.
/// Resource limits apply to every container.
pub fn create_args(
    manifest: &archy_registry::Manifest,
    c: &Container,
    image: &str,
    env_file: &Path,
    publish_address: IpAddr,
) -> Vec<String> {
    let app = manifest.id.as_str();
    let mut args: Vec<String> = vec![
        "create".into(),
        "--name".into(),
        container_name(app, &c.name),
        "--label".into(),
        format!("{LABEL_APP}={app}"),
        "--label".into(),
        format!("{LABEL_CONTAINER}={}", c.name),
        "--label".into(),
        format!("{LABEL_VERSION}={}", manifest.version),
        "--stop-timeout".into(),
        c.stop_grace_seconds.to_string(),
        "--env-file".into(),
        env_file.display().to_string(),
    ];
    for (key, value) in &c.env {
        if let EnvValue::Secret(r) = value {
            args.push("--secret".into());
            args.push(format!(
                "{},type=env,target={key}",
                secrets::podman_name(app, &r.secret)
            ));
        }
    }
    for p in &c.ports {
        args.push("--publish".into());
        args.push(format!(
            "{publish_address}:{}:{}/{}",
            p.host,
            p.container,
            p.protocol.as_str()
        ));
    }
    for v in &c.volumes {
        // `U`: Podman chowns the volume to the container's user, so an image running
        // as a non-root uid can write its own data in a rootless container.
        args.push("--volume".into());
        args.push(format!(
            "{}:{}:{}U",
            volume_name(app, &v.name),
            v.path,
            if v.read_only { "ro," } else { "" }
        ));
    }
    if c.privileged {
        args.push("--privileged".into());
    } else {
        args.push("--cap-drop=ALL".into());
        for cap in &c.capabilities {
            args.push("--cap-add".into());
            args.push(cap.clone());
        }
        args.push("--security-opt=no-new-privileges".into());
        args.push(USERNS.into());
    }
    if let Some(user) = &c.user {
        args.push("--user".into());
        args.push(user.clone());
    }
    match c.network {
        NetworkMode::Host => args.push("--network=host".into()),
        // The app's own network: its containers reach each other by container name.
        NetworkMode::App => {
            args.push(format!("--network={}", network_name(app)));
            args.push(format!("--network-alias={}", c.name));
        }
    }
    if c.pid == PidMode::Host {
        args.push("--pid=host".into());
    }
    if c.read_only_root {
        args.push("--read-only".into());
        args.push("--read-only-tmpfs=false".into());
        args.push("--tmpfs".into());
        args.push(TMP_TMPFS.into());
    }
    let resources = &manifest.resources;
    args.push("--pids-limit".into());
    args.push(
        resources
            .pids_limit
            .unwrap_or(DEFAULT_PIDS_LIMIT)
            .to_string(),
    );
    if let Some(mb) = resources.memory_mb {
        args.push("--memory".into());
        args.push(format!("{mb}m"));
    }
    if let Some(m) = resources.millicpus.filter(|m| *m > 0) {
        args.push("--cpus".into());
        args.push(limits::cpus(m));
    }
    // Options end here: the image and the command can never be read as options.
    args.push("--".into());
    args.push(image.to_owned());
    args.extend(c.command.iter().cloned());
    args
}

/// What installing `manifest` would run, as shell-like lines, for `archy app render`.
/// Image ids are only known after `podman load`, so images show as `<artifact:NAME>`.
pub fn render(manifest: &archy_registry::Manifest, publish_address: IpAddr) -> Vec<String> {
    let app = manifest.id.as_str();
    let mut lines = Vec::new();
    if manifest
        .containers
        .iter()
        .any(|c| c.network == NetworkMode::App)
    {
        lines.push(format!(
            "podman network create --label {LABEL_APP}={app} -- {}",
            network_name(app)
        ));
    }
    for c in &manifest.containers {
        for v in &c.volumes {
            lines.push(format!(
                "podman volume create --label {LABEL_APP}={app} -- {}",
                volume_name(app, &v.name)
            ));
        }
    }
    let order = manifest.start_order().unwrap_or_default();
    for c in &manifest.containers {
        let image = match (&c.image.artifact, &c.image.reference) {
            (Some(a), _) => format!("<artifact:{a}>"),
            (None, Some(r)) => r.clone(),
            (None, None) => "<no image>".into(),
        };
        let env_file = Path::new("<data>/apps")
            .join(app)
            .join("env")
            .join(format!("{}.env", c.name));
        let args = create_args(manifest, c, &image, &env_file, publish_address);
        lines.push(format!("podman {}", shell_words(&args)));
    }
    for c in order {
        // Names are `archy-…`, never option-like; crates/node/tests/cli.rs expects this form.
        lines.push(format!("podman start {}", container_name(app, &c.name)));
    }
    lines
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=:./<>,@".contains(c))
                && !a.is_empty()
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes an unprivileged user may still write on the filesystem holding `path`
/// (the nearest existing ancestor, as the app's own directories may not exist yet).
fn free_bytes(path: &Path) -> Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat = rustix::fs::statvfs(existing).map_err(|e| Error::Io {
        what: "checking free disk at",
        path: existing.to_owned(),
        source: e.into(),
    })?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Where `podman` puts a user's API socket by default.
pub fn default_podman_url() -> String {
    let uid = std::env::var("UID").ok().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            })
            .unwrap_or_else(|| "0".into())
    });
    format!("unix:///run/user/{uid}/podman.sock")
}

pub fn app_data_dir(data_dir: &Path, app: &str) -> PathBuf {
    data_dir.join("apps").join(app)
}

#[cfg(test)]
mod render_tests {
    use super::*;

    fn hello() -> archy_registry::Manifest {
        let yaml = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../apps/hello/manifest.yml"
        ))
        .unwrap();
        archy_registry::Manifest::from_yaml(&yaml).unwrap()
    }

    fn args_of(m: &archy_registry::Manifest, container: usize) -> Vec<String> {
        create_args(
            m,
            &m.containers[container],
            &"f".repeat(64),
            Path::new("/data/apps/x/env/web.env"),
            IpAddr::from([127, 0, 0, 1]),
        )
    }

    fn position(args: &[String], arg: &str) -> usize {
        args.iter()
            .position(|a| a == arg)
            .unwrap_or_else(|| panic!("{arg} missing from {args:?}"))
    }

    #[test]
    fn render_shows_every_podman_step_in_order() {
        let lines = render(&hello(), IpAddr::from([127, 0, 0, 1]));
        assert_eq!(
            lines[0],
            "podman network create --label archy.app=hello -- archy-hello"
        );
        let create = &lines[1];
        for part in [
            "podman create --name archy-hello-web",
            "--label archy.app=hello",
            "--stop-timeout 5",
            "--publish 127.0.0.1:18080:8080/tcp",
            "--cap-drop=ALL --security-opt=no-new-privileges --userns=nomap",
            "--network=archy-hello --network-alias=web",
            "--pids-limit 2048 --memory 32m -- <artifact:image>",
        ] {
            assert!(create.contains(part), "{part:?} missing from {create}");
        }
        assert!(create.ends_with(" -- <artifact:image>"), "{create}");
        assert_eq!(lines.last().unwrap(), "podman start archy-hello-web");
    }

    /// The whole hardened argv of the hello app, as it runs.
    #[test]
    fn hello_create_args_are_hardened() {
        let args = args_of(&hello(), 0);
        let image = "f".repeat(64);
        let expected = [
            "create",
            "--name",
            "archy-hello-web",
            "--label",
            "archy.app=hello",
            "--label",
            "archy.container=web",
            "--label",
            "archy.version=1.0.0",
            "--stop-timeout",
            "5",
            "--env-file",
            "/data/apps/x/env/web.env",
            "--publish",
            "127.0.0.1:18080:8080/tcp",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--userns=nomap",
            "--network=archy-hello",
            "--network-alias=web",
            "--pids-limit",
            "2048",
            "--memory",
            "32m",
            "--",
            image.as_str(),
        ];
        assert_eq!(args, expected);
        preflight::check_create_args(&args, false).unwrap();
    }

    #[test]
    fn options_end_right_before_the_image_and_caps_are_dropped_first() {
        let mut m = hello();
        let c = &mut m.containers[0];
        c.capabilities = vec!["NET_BIND_SERVICE".into(), "CHOWN".into()];
        c.command = vec!["--privileged".into(), "-x".into()];
        c.read_only_root = true;
        c.volumes.push(archy_registry::manifest::Volume {
            name: "data".into(),
            path: "/data".into(),
            read_only: false,
        });
        m.resources.pids_limit = Some(64);
        m.resources.millicpus = Some(1500);
        let args = args_of(&m, 0);
        let dash = position(&args, "--");
        assert_eq!(args[dash + 1], "f".repeat(64), "the image follows `--`");
        assert_eq!(
            &args[dash + 2..],
            ["--privileged", "-x"],
            "the command follows the image"
        );
        assert_eq!(
            args.iter().filter(|a| *a == "--").count(),
            1,
            "one end of options"
        );
        let drop = position(&args, "--cap-drop=ALL");
        let adds: Vec<usize> = args
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "--cap-add")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(adds.len(), 2);
        assert!(
            adds.iter().all(|i| *i > drop),
            "cap-add before cap-drop: {args:?}"
        );
        assert_eq!(args[adds[0] + 1], "NET_BIND_SERVICE");
        assert_eq!(args[adds[1] + 1], "CHOWN");
        for flag in [
            "--security-opt=no-new-privileges",
            USERNS,
            "--read-only",
            "--read-only-tmpfs=false",
        ] {
            assert!(position(&args, flag) < dash, "{flag} after the image");
        }
        assert_eq!(args[position(&args, "--tmpfs") + 1], TMP_TMPFS);
        assert_eq!(args[position(&args, "--pids-limit") + 1], "64");
        assert_eq!(args[position(&args, "--cpus") + 1], "1.5");
        assert_eq!(
            args[position(&args, "--volume") + 1],
            "archy-hello-data:/data:U"
        );
        preflight::check_create_args(&args, false).unwrap();
    }

    #[test]
    fn privileged_containers_keep_podmans_meaning() {
        let mut m = hello();
        m.containers[0].privileged = true;
        m.containers[0].capabilities = vec!["SYS_ADMIN".into()];
        let args = args_of(&m, 0);
        assert!(args.contains(&"--privileged".to_owned()));
        for absent in [
            "--cap-drop=ALL",
            "--cap-add",
            "--security-opt=no-new-privileges",
            USERNS,
        ] {
            assert!(!args.contains(&absent.to_owned()), "{absent} in {args:?}");
        }
        // Resource limits still apply.
        assert!(args.contains(&"--pids-limit".to_owned()));
        preflight::check_create_args(&args, true).unwrap();
    }

    #[test]
    fn secrets_are_podman_secrets_never_values() {
        let mut m = hello();
        m.secrets.push(archy_registry::manifest::SecretSpec {
            name: "token".into(),
            length: 32,
        });
        m.containers[0].env.insert(
            "TOKEN".into(),
            EnvValue::Secret(archy_registry::manifest::SecretRef {
                secret: "token".into(),
            }),
        );
        m.containers[0]
            .env
            .insert("GREETING".into(), EnvValue::Plain("hi".into()));
        let args = args_of(&m, 0);
        assert_eq!(
            args[position(&args, "--secret") + 1],
            "archy-hello-token,type=env,target=TOKEN"
        );
        assert!(position(&args, "--secret") < position(&args, "--"));
        preflight::check_create_args(&args, false).unwrap();

        // The env file holds the plain values only.
        let dir = tempfile::tempdir().unwrap();
        let config = OrchestratorConfig {
            podman_url: String::new(),
            data_dir: dir.path().to_owned(),
            publish_address: IpAddr::from([127, 0, 0, 1]),
        };
        let orchestrator = Orchestrator {
            engine: Engine::unconnected(),
            config,
        };
        let path = orchestrator
            .write_env_file("hello", &m.containers[0])
            .unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "GREETING=hi\n");
    }

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

    #[test]
    fn shell_words_quote_what_needs_it() {
        let args = vec!["echo".to_owned(), "two words".to_owned(), "it's".to_owned()];
        assert_eq!(shell_words(&args), r"echo 'two words' 'it'\''s'");
    }
}
