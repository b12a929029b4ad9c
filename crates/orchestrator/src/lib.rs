//! Verified manifests into rootless Podman. Every Podman object an app owns is named
//! `archy-<app>[-<part>]` and labelled `archy.app=<app>`, so the orchestrator can find
//! (and only ever touches) what it created. No app-specific code lives here: the manifest
//! says everything.
//!
//! Where things are:
//! - `lifecycle.rs`: install, update with rollback, repair, start, stop, uninstall, status;
//! - `create.rs`: creating containers (images, env files, the checked `podman create`);
//! - `render.rs`: [`create_args`] and [`render`], the manifest in Podman's terms, and the
//!   names of the app's Podman objects;
//! - [`argv_check`]: a model of Podman's option parser that checks every rendered argv
//!   against the manifest; `preflight.rs` re-validates the manifest before anything is
//!   done in Podman;
//! - `undo.rs`: [`Created`], the record of what an operation created, and undoing it;
//! - `network.rs`, `secrets.rs`: the app's network and its secrets; `health.rs`: health
//!   checks; `logs.rs`: container logs ([`LogLine`]); `host.rs`: disk and port checks;
//!   `limits.rs`: the resource limits the host enforces;
//! - `runtime.rs`: [`Runtime`], the seam: the only operations the orchestrator asks of a
//!   container engine (labelled, named, containers only from a checked [`CreateSpec`]);
//! - `libpod.rs`: [`Libpod`], the implementation the node uses: Podman's REST API over the
//!   user's socket (`libpod/spec.rs`: a checked argv as the API's create request);
//!   `engine.rs`: [`Engine`], the `podman --remote` client that implements it too (and that
//!   `Libpod` keeps for logs and `events.rs`' event stream); `fake.rs` (tests,
//!   `test-support`): an in-memory one.

pub mod argv_check;
mod create;
mod engine;
mod events;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
mod health;
mod host;
mod libpod;
mod lifecycle;
mod limits;
mod logs;
mod names;
mod network;
mod preflight;
mod render;
mod runtime;
mod secrets;
mod undo;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use engine::{DEFAULT_DEADLINE, Engine};
pub use events::AppEvent;
pub use libpod::Libpod;
pub use limits::{DEFAULT_PIDS_LIMIT, LimitKind, LimitSupport, UnenforcedLimit};
pub use logs::{CUT_MARK, LOG_LINE_MAX, LOG_TAIL_MAX, LogLine};
pub use names::{ObjectKind, ObjectName, clash as name_clash, object_names};
pub use render::{create_args, render};
pub use runtime::{
    ArchiveSource, BoxFuture, ContainerDetails, ContainerInfo, ContainerState, CreateSpec,
    HostInfo, ImageArchive, ImageSource, Runtime,
};
pub use secrets::podman_name as secret_name;
pub use undo::{Created, CreatedSink};

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
    /// A container name that is not one of the app's manifest (e.g. asked for its logs).
    #[error("app {app} has no container {container:?}")]
    UnknownContainer { app: String, container: String },
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
    #[error("the image archive of artifact {artifact:?} cannot be read: {reason}")]
    ImageUnavailable { artifact: String, reason: String },
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

/// Verified manifests into a container [`Runtime`]. It holds the runtime as a trait
/// object: the node names no runtime type, and the runtime is chosen once, at connect.
pub struct Orchestrator {
    runtime: Arc<dyn Runtime>,
    config: OrchestratorConfig,
    /// Test seam: changes each rendered `podman create` argv before it is checked, to show
    /// that what the checker refuses never runs.
    #[cfg(test)]
    tamper_argv: Option<fn(&mut Vec<String>)>,
}

impl Orchestrator {
    /// Connects to the Podman service at `config.podman_url` through its REST API
    /// ([`Libpod`]), refusing one that is not rootless.
    pub async fn connect(config: OrchestratorConfig) -> Result<Self> {
        let libpod = Libpod::connect(&config.podman_url).await?;
        Self::with_runtime(Arc::new(libpod), config)
    }

    /// An orchestrator that never touches Podman: every operation fails at once
    /// ([`Engine::offline`]). For a node that installs nothing (publish-only).
    pub fn offline(config: OrchestratorConfig) -> Self {
        Self {
            runtime: Arc::new(Engine::offline(&config.podman_url)),
            config,
            #[cfg(test)]
            tamper_argv: None,
        }
    }

    /// An orchestrator over any [`Runtime`] (another Podman client, or a fake in tests).
    /// A runtime whose host is not rootless is refused here, whatever the runtime checked.
    pub fn with_runtime(runtime: Arc<dyn Runtime>, config: OrchestratorConfig) -> Result<Self> {
        if !runtime.host().rootless {
            return Err(Error::NotRootless {
                url: runtime.location().to_owned(),
            });
        }
        Ok(Self {
            runtime,
            config,
            #[cfg(test)]
            tamper_argv: None,
        })
    }

    /// Where the container engine is (the Podman URL), for the operator.
    pub fn runtime_location(&self) -> &str {
        self.runtime.location()
    }

    /// Where the engine keeps images and containers (from `podman info` at connect).
    pub fn graph_root(&self) -> &str {
        &self.runtime.host().graph_root
    }

    /// The containers labelled as `app`'s, in any state.
    pub async fn containers_of(&self, app: &str) -> Result<Vec<ContainerInfo>> {
        self.runtime.containers_of(app).await
    }

    /// Every labelled container, by app: one engine call for a whole reconciler pass.
    pub async fn containers_by_app(&self) -> Result<BTreeMap<String, Vec<ContainerInfo>>> {
        self.runtime.containers_by_app().await
    }

    /// The volumes labelled as `app`'s (its data, kept until purge).
    pub async fn volumes_of(&self, app: &str) -> Result<Vec<String>> {
        self.runtime.volumes_of(app).await
    }

    /// State and labels of one container (`archy-<app>-<part>`); `None` if there is none.
    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerDetails>> {
        self.runtime.inspect(name).await
    }

    /// SIGKILL to container `container` (its name in the manifest) of `app`, e.g. one that
    /// keeps failing its health check, for the next repair to start it again.
    pub async fn kill_container(&self, app: &str, container: &str) -> Result<()> {
        self.runtime
            .kill_container(&container_name(app, container))
            .await
    }

    /// What happens to labelled containers (died, removed, out of memory), as the engine
    /// reports it; see [`Runtime::events`].
    pub fn app_events(&self) -> Result<tokio::sync::mpsc::Receiver<AppEvent>> {
        self.runtime.events()
    }
}

pub fn container_name(app: &str, container: &str) -> String {
    format!("archy-{app}-{container}")
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
