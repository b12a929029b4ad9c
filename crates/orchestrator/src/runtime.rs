//! The seam between the orchestrator and a container engine: [`Runtime`], the only
//! operations the orchestrator asks of one. Every operation is named, takes names the
//! orchestrator derived (`archy-<app>[-<part>]`) and puts every object it creates under the
//! `archy.app` label; a container is created only from a [`CreateSpec`], which only the
//! orchestrator's renderer and checker can make. There is no "run these arguments" method:
//! a runtime cannot be asked for anything the orchestrator does not render or check.
//!
//! [`crate::Libpod`] (Podman's REST API over the user's socket) is the implementation the
//! node uses; [`crate::Engine`] (the `podman --remote` client) is another, which `Libpod`
//! holds for logs and events (DESIGN "Running apps"). The fake in
//! `crate::fake` (tests and the `test-support` feature) runs the orchestrator's logic
//! without Podman.
//!
//! Object-safe (boxed futures), so the orchestrator holds an `Arc<dyn Runtime>`: the
//! node stays free of a type parameter, and the one allocation per call is nothing next
//! to a Podman round trip.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::argv_check::CreateArgs;
use crate::{AppEvent, Result};

/// A boxed, sendable future: what every asynchronous [`Runtime`] operation returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The container operations the orchestrator needs, and nothing else. Implementations
/// bound every call with a deadline ([`crate::Error::Timeout`] naming the operation) and
/// tell a service that is not there ([`crate::Error::ServiceDown`]) apart from one that
/// refused ([`crate::Error::Engine`]).
///
/// Contract, relied on by the orchestrator's undo and reconciler:
/// - `create_*` label what they create with `archy.app=<app>`; listings (`containers_of`,
///   `containers_by_app`, `volumes_of`) see only objects with that label;
/// - `*_owner` answer `None` when the object does not exist and `Some("")` when it exists
///   without the label (not ours, never touched);
/// - `remove_container` of a container that is not there succeeds (removal is idempotent);
///   other removals of missing objects fail;
/// - `inspect` and `*_owner` answer `None` for a missing object, not an error.
pub trait Runtime: Send + Sync {
    /// What the engine said about its host when connected (rootless, cgroups, storage).
    fn host(&self) -> &HostInfo;

    /// Where the engine is, as the operator configured it (e.g. the Podman socket URL):
    /// shown in `archy status`.
    fn location(&self) -> &str;

    /// Whether the service answers within `deadline`.
    fn ping(&self, deadline: Duration) -> BoxFuture<'_, Result<()>>;

    /// Loads an OCI archive, read once from `archive` (exactly [`ImageArchive::size`]
    /// bytes, or the load fails and nothing is loaded); answers the image id containers are
    /// created from (an id, never a tag, so one app's archive cannot retarget another's
    /// image).
    fn load_image(&self, archive: ImageArchive) -> BoxFuture<'_, Result<String>>;

    /// Containers labelled `archy.app=<app>`, in any state.
    fn containers_of<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<ContainerInfo>>>;

    /// Every container carrying an `archy.app` label, by app: one call per reconciler pass.
    fn containers_by_app(&self) -> BoxFuture<'_, Result<BTreeMap<String, Vec<ContainerInfo>>>>;

    /// One container's state, exit code and labels; `None` when there is no such container.
    fn inspect<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ContainerDetails>>>;

    /// Creates one container from a rendered and checked spec (labelled by the spec itself).
    fn create_container<'a>(&'a self, spec: &'a CreateSpec) -> BoxFuture<'a, Result<()>>;

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Stops a container: SIGTERM, then SIGKILL after `grace_seconds`; the call's own
    /// deadline outlasts the grace.
    fn stop_container<'a>(&'a self, name: &'a str, grace_seconds: u32)
    -> BoxFuture<'a, Result<()>>;

    /// SIGKILL to a running container's main process; answers once it has exited (a
    /// listing right after sees it dead).
    fn kill_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Removes a container, stopping it first; a missing one is not an error.
    fn remove_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Runs `command` inside a running container (a manifest's health command), passed on
    /// as it is; answers its stdout, or an error when it exits non-zero.
    fn exec<'a>(&'a self, name: &'a str, command: &'a [String]) -> BoxFuture<'a, Result<String>>;

    /// The last `tail` lines a container wrote (stdout and stderr), each already capped
    /// ([`crate::LOG_LINE_MAX`]), then with `follow` every new line until the container
    /// stops or the receiver is dropped (which ends the follower). Without `follow` every
    /// line is in the receiver when this answers, within the runtime's deadline. With
    /// `since`, only lines written from then on (to the second).
    fn logs<'a>(
        &'a self,
        name: &'a str,
        tail: u32,
        follow: bool,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<String>>>;

    /// The engine's event stream, reduced to what can leave an app short of a container
    /// ([`AppEvent`]). It ends when the engine's does or the engine stops answering.
    fn events(&self) -> Result<mpsc::Receiver<AppEvent>>;

    /// Volume names labelled `archy.app=<app>`.
    fn volumes_of<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>>>;

    fn create_volume<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<()>>;

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The `archy.app` label of a network (see the trait's contract for `None`/`Some("")`).
    fn network_owner<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    fn create_network<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<()>>;

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Names of every secret (Podman 4.3 cannot list them by label; the caller filters).
    fn secret_names(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    /// The `archy.app` label of a secret (see the trait's contract for `None`/`Some("")`).
    fn secret_owner<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    /// Creates a secret labelled for `app`; the value never goes into a process argument.
    fn create_secret<'a>(
        &'a self,
        name: &'a str,
        app: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<()>>;

    fn remove_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// One image archive, opened for one load: whoever opened it vouches for its bytes (the
/// node opens only blobs its store verified against the catalog's hash as they arrived),
/// and the runtime reads it once, straight into the engine, with no copy of its own.
pub struct ImageArchive {
    /// What it is, for messages (`artifact image (blake3 1a2b…)`, a path).
    pub what: String,
    /// Its exact length: a source that ends early or runs long is refused, never loaded.
    pub size: u64,
    pub source: ArchiveSource,
}

/// Where an [`ImageArchive`]'s bytes come from.
pub enum ArchiveSource {
    /// An open file holding exactly the archive (e.g. the verified store's own file of a
    /// complete blob). The engine reads it itself: the bytes do not pass through us.
    File(std::fs::File),
    /// A stream of the archive (e.g. the store's reader), copied into the engine.
    Stream(Pin<Box<dyn tokio::io::AsyncRead + Send>>),
}

impl std::fmt::Debug for ImageArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.source {
            ArchiveSource::File(_) => "file",
            ArchiveSource::Stream(_) => "stream",
        };
        f.debug_struct("ImageArchive")
            .field("what", &self.what)
            .field("size", &self.size)
            .field("source", &kind)
            .finish()
    }
}

impl ImageArchive {
    /// An archive file on disk whose bytes the caller trusts (tests, benchmarks, a
    /// path an operator named).
    pub fn open_file(path: &Path) -> Result<Self> {
        let io = |source| crate::Error::Io {
            what: "opening image archive",
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok(Self {
            what: path.display().to_string(),
            size,
            source: ArchiveSource::File(file),
        })
    }
}

/// Where an install, update or repair gets each artifact's image archive: opened when it
/// is loaded (once per artifact and operation), from wherever the caller verified it.
/// The node's is its swarm store; a map of artifact names to files is one for tests.
pub trait ImageSource: Send + Sync {
    /// The archive of `artifact`, ready to read; [`crate::Error::MissingImage`] when the
    /// source has none.
    fn open<'a>(&'a self, artifact: &'a str) -> BoxFuture<'a, Result<ImageArchive>>;
}

/// Archive files by artifact name (tests and tools whose files need no verification).
impl ImageSource for BTreeMap<String, std::path::PathBuf> {
    fn open<'a>(&'a self, artifact: &'a str) -> BoxFuture<'a, Result<ImageArchive>> {
        Box::pin(async move {
            let path = self
                .get(artifact)
                .ok_or_else(|| crate::Error::MissingImage(artifact.to_owned()))?;
            ImageArchive::open_file(path)
        })
    }
}

/// A `podman create` argv that [`crate::create_args`] rendered for one container of a
/// manifest and [`crate::argv_check::check_create`] accepted, with the real image id and
/// paths. Only the orchestrator makes one (the fields are private), so a runtime is never
/// handed an argv nobody checked. A CLI runtime runs [`CreateSpec::argv`] as it is; another
/// runtime builds its request from [`CreateSpec::parsed`], the same argv as Podman reads
/// it, so both say exactly what was checked.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    name: String,
    argv: Vec<String>,
    parsed: CreateArgs,
}

impl CreateSpec {
    /// Crate-private: made by [`crate::render::check_argv`] only, after the check passed.
    pub(crate) fn checked(name: String, argv: Vec<String>, parsed: CreateArgs) -> Self {
        Self { name, argv, parsed }
    }

    /// The container's name (`archy-<app>-<part>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The argv, starting with `create`, exactly as it was checked.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The argv as Podman reads it: options, labels, volumes, image, command.
    pub fn parsed(&self) -> &CreateArgs {
        &self.parsed
    }
}

/// The parts of `podman info` the orchestrator acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub rootless: bool,
    /// `v1` or `v2`.
    pub cgroup_version: String,
    /// `systemd` or `cgroupfs`.
    pub cgroup_manager: String,
    /// Controllers delegated to the Podman user (empty on cgroup v1 rootless).
    pub cgroup_controllers: Vec<String>,
    pub graph_root: String,
    pub version: String,
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
    /// Podman's status word (the same in `ps`, `inspect` and the REST API).
    pub(crate) fn parse(s: &str) -> Self {
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

/// What `inspect` tells of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerDetails {
    /// Podman's status word as it said it (`running`, `exited`, …; empty if it said none).
    pub status: String,
    pub exit_code: i64,
    pub labels: BTreeMap<String, String>,
}

impl ContainerDetails {
    /// From the JSON of `podman container inspect` (and of libpod's `/containers/{name}/json`).
    pub(crate) fn from_inspect(info: &serde_json::Value) -> Self {
        let labels = info["Config"]["Labels"]
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            status: info["State"]["Status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            exit_code: info["State"]["ExitCode"].as_i64().unwrap_or_default(),
            labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_container_states() {
        assert_eq!(ContainerState::parse("running"), ContainerState::Running);
        assert_eq!(ContainerState::parse("exited"), ContainerState::Exited);
        assert_eq!(ContainerState::parse("weird"), ContainerState::Unknown);
    }

    #[test]
    fn reads_state_and_labels_from_inspect() {
        let info = serde_json::json!({
            "State": {"Status": "exited", "ExitCode": 137},
            "Config": {"Labels": {"archy.app": "hello", "archy.version": "1.0.0", "n": 1}}
        });
        let d = ContainerDetails::from_inspect(&info);
        assert_eq!((d.status.as_str(), d.exit_code), ("exited", 137));
        assert_eq!(d.labels.len(), 2, "non-string labels are not labels");
        assert_eq!(d.labels["archy.app"], "hello");
        assert_eq!(
            ContainerDetails::from_inspect(&serde_json::json!({})),
            ContainerDetails::default()
        );
    }
}
