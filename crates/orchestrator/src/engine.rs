//! A thin client for the rootless user's Podman service, driven through `podman --remote`.
//! The CLI speaks the libpod REST API over the socket for us and is what operators
//! already know, so its errors are the ones they can look up.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;
use tokio::sync::mpsc;
use tracing::debug;

use crate::argv_check::is_image_id;
use crate::runtime::{
    ArchiveSource, BoxFuture, ContainerDetails, ContainerInfo, ContainerState, CreateSpec,
    HostInfo, ImageArchive, Runtime,
};
use crate::{AppEvent, Error, LABEL_APP, LimitSupport, Result};

/// How long one Podman call may take unless it says otherwise: far more than any
/// healthy service needs for a listing, a create or a start, and a bound on a stuck one.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Engine {
    url: String,
    host: HostInfo,
    deadline: Duration,
    /// Never runs podman ([`Engine::offline`]).
    offline: bool,
}

impl HostInfo {
    pub(crate) fn parse(json: &str) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Info {
            host: Host,
            #[serde(default)]
            store: Store,
            #[serde(default)]
            version: Version,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Host {
            #[serde(default)]
            cgroup_version: String,
            #[serde(default)]
            cgroup_manager: String,
            #[serde(default)]
            cgroup_controllers: Option<Vec<String>>,
            security: Security,
        }
        #[derive(Deserialize)]
        struct Security {
            rootless: bool,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Store {
            #[serde(default)]
            graph_root: String,
        }
        #[derive(Deserialize, Default)]
        struct Version {
            #[serde(rename = "Version", default)]
            version: String,
        }
        let info: Info = serde_json::from_str(json)
            .map_err(|e| Error::Engine(format!("unexpected `podman info` output: {e}")))?;
        Ok(Self {
            rootless: info.host.security.rootless,
            cgroup_version: info.host.cgroup_version,
            cgroup_manager: info.host.cgroup_manager,
            cgroup_controllers: info.host.cgroup_controllers.unwrap_or_default(),
            graph_root: info.store.graph_root,
            version: info.version.version,
        })
    }
}

/// One container of a listing (`podman ps --format json` and libpod's `/containers/json`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PsEntry {
    names: Vec<String>,
    state: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

impl PsEntry {
    /// Its `archy.app` label.
    pub(crate) fn app(&self) -> Option<String> {
        self.labels.as_ref()?.get(LABEL_APP).cloned()
    }

    pub(crate) fn into_info(self) -> ContainerInfo {
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
    /// Checks that the service answers and runs rootless, and records what the host can
    /// enforce (one `podman info` call).
    pub async fn connect(url: &str) -> Result<Self> {
        let mut engine = Self {
            url: url.to_owned(),
            host: HostInfo::default(),
            deadline: DEFAULT_DEADLINE,
            offline: false,
        };
        let info = engine
            .run(&["info", "--format", "json"])
            .await
            .map_err(|e| match e {
                e @ (Error::Timeout { .. } | Error::ServiceDown { .. }) => e,
                e => Error::Engine(format!(
                    "cannot reach the Podman service at {url}: {e} \
                     (start it as the podman user: podman system service --time=0 {url})"
                )),
            })?;
        let host = HostInfo::parse(&info)?;
        if !host.rootless {
            return Err(Error::NotRootless {
                url: url.to_owned(),
            });
        }
        engine.host = host;
        Ok(engine)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same engine with another default deadline for each Podman call (the default is
    /// [`DEFAULT_DEADLINE`]; calls with their own bound, such as `load` and `stop`, keep it).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The default deadline of one Podman call.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A CLI client of the service at `url` whose host facts were learnt otherwise (the
    /// REST runtime's `GET /info`): for what still goes through the CLI.
    pub(crate) fn with_host(url: &str, host: HostInfo, deadline: Duration) -> Self {
        Self {
            url: url.to_owned(),
            host,
            deadline,
            offline: false,
        }
    }

    /// An engine that was never connected, for unit tests: its socket does not exist, so a
    /// call that reaches Podman fails at once ([`Error::ServiceDown`]).
    #[cfg(test)]
    pub(crate) fn unconnected() -> Self {
        Self {
            url: "unix:///nonexistent/archy-orchestrator-test/podman.sock".into(),
            host: HostInfo::default(),
            deadline: DEFAULT_DEADLINE,
            offline: false,
        }
    }

    /// An engine for the Podman service at `url`, without asking it anything (for tests
    /// of services that do not answer).
    #[cfg(test)]
    pub(crate) fn unchecked(url: String, deadline: Duration) -> Self {
        Self {
            url,
            host: HostInfo::default(),
            deadline,
            offline: false,
        }
    }

    /// An engine that never runs podman: every call fails at once, saying so. For a node
    /// that installs nothing (a publish-only node), which needs no Podman service.
    pub fn offline(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            host: HostInfo::default(),
            deadline: DEFAULT_DEADLINE,
            offline: true,
        }
    }

    /// Whether this engine never runs podman ([`Engine::offline`]).
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// `podman --remote --url URL`, the start of every podman command; an offline engine
    /// refuses here, the one place all of them pass.
    pub(crate) fn podman(&self, what: &str) -> Result<Command> {
        if self.offline {
            return Err(Error::Engine(format!(
                "`podman {what}` refused: this node runs without Podman (publish-only)"
            )));
        }
        let mut command = Command::new("podman");
        command.arg("--remote").arg("--url").arg(&self.url);
        Ok(command)
    }

    /// What `podman info` said about the host at connect.
    pub fn host(&self) -> &HostInfo {
        &self.host
    }

    /// Which resource limits Podman can enforce on this host.
    pub fn limits(&self) -> LimitSupport {
        LimitSupport::of(&self.host)
    }

    /// Runs `podman --remote --url URL ARGS…` within the default deadline; returns stdout,
    /// or an error with stderr ([`Error::Timeout`] when podman did not answer in time,
    /// [`Error::ServiceDown`] when nothing listens on the socket).
    /// Crate-private: every caller passes positional values after `--`, and outside code
    /// gets named operations instead of a raw argv.
    pub(crate) async fn run(&self, args: &[&str]) -> Result<String> {
        self.run_within(args, None, self.deadline).await
    }

    /// Like [`Engine::run`], writing `input` to podman's stdin (secret values: never argv).
    pub(crate) async fn run_with_input(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<String> {
        self.run_within(args, input, self.deadline).await
    }

    /// Like [`Engine::run_with_input`] with its own deadline. When it passes, the podman
    /// client is killed (`kill_on_drop`) and the error names the command and the bound.
    pub(crate) async fn run_within(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
        deadline: Duration,
    ) -> Result<String> {
        match tokio::time::timeout(deadline, self.run_unbounded(args, input)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: describe(args),
                after: deadline,
            }),
        }
    }

    async fn run_unbounded(&self, args: &[&str], input: Option<&[u8]>) -> Result<String> {
        use tokio::io::AsyncWriteExt;
        debug!(args = ?args.first(), "podman");
        let mut child = self
            .podman(args.first().copied().unwrap_or_default())?
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::Engine(format!(
                    "cannot run the podman client: {e} (is podman installed?)"
                ))
            })?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(input)
                .await
                .map_err(|e| Error::Engine(format!("cannot write to `podman {}`: {e}", args[0])))?;
            drop(stdin);
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| Error::Engine(format!("waiting for `podman {}`: {e}", args[0])))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(self.failure(args, &String::from_utf8_lossy(&output.stderr)))
        }
    }

    /// The error of a podman command that exited non-zero, from its stderr.
    fn failure(&self, args: &[&str], stderr: &str) -> Error {
        let stderr = stderr.trim();
        if is_unreachable(stderr) {
            return Error::ServiceDown {
                url: self.url.clone(),
                what: describe(args),
                // Podman's last line says why ("dial unix …: connection refused").
                detail: stderr.lines().last().unwrap_or_default().trim().to_owned(),
            };
        }
        Error::Engine(format!(
            "`podman {}` failed: {}",
            args.first().copied().unwrap_or_default(),
            stderr
        ))
    }

    /// Whether the service answers, within `deadline` (`podman version`).
    pub async fn ping(&self, deadline: Duration) -> Result<()> {
        self.run_within(
            &["version", "--format", "{{.Server.Version}}"],
            None,
            deadline,
        )
        .await
        .map(drop)
    }

    /// `podman ps --all` for containers carrying `label` (`key` or `key=value`).
    async fn ps(&self, label: &str) -> Result<Vec<PsEntry>> {
        let filter = format!("--filter=label={label}");
        let out = self
            .run(&["ps", "--all", &filter, "--format", "json"])
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
    pub async fn containers_by_app(&self) -> Result<BTreeMap<String, Vec<ContainerInfo>>> {
        let mut by_app: BTreeMap<String, Vec<ContainerInfo>> = Default::default();
        for e in self.ps(LABEL_APP).await? {
            if let Some(app) = e.app() {
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
                &format!("--filter=label={LABEL_APP}={app}"),
                "--format",
                "json",
            ])
            .await?;
        let entries: Vec<VolumeEntry> =
            serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
                .map_err(|e| Error::Engine(format!("unexpected `podman volume ls` output: {e}")))?;
        Ok(entries.into_iter().map(|v| v.name).collect())
    }

    /// Loads the OCI archive at `path` (a file the caller trusts: tests, benchmarks).
    pub async fn load_image_file(&self, path: &Path) -> Result<String> {
        self.load_image(ImageArchive::open_file(path)?).await
    }

    /// Loads an OCI archive and returns the image id to create containers from.
    /// Referring to images by id means an archive cannot retarget another app's tag.
    ///
    /// The archive goes to `podman load --input=/dev/stdin` as its standard input: a file
    /// is handed over as it is (podman reads it and uploads it to the service), a stream is
    /// copied into a pipe as podman reads it. Either way nothing is copied to disk on this
    /// side (without `--input`, the remote client first copies stdin to a file of its
    /// own). The whole load, upload included, has one deadline ([`load_deadline`]); when it
    /// passes, or the archive is not exactly its declared size, podman is killed before
    /// it could see the end of its input, so nothing is loaded.
    pub async fn load_image(&self, archive: ImageArchive) -> Result<String> {
        let what = archive.what.clone();
        let deadline = load_deadline(self.deadline, archive.size);
        let out = match tokio::time::timeout(deadline, self.load_unbounded(archive)).await {
            Ok(out) => out?,
            Err(_) => {
                return Err(Error::Timeout {
                    what: describe(LOAD_ARGS),
                    after: deadline,
                });
            }
        };
        let loaded = parse_loaded(&out).ok_or_else(|| {
            Error::Engine(format!(
                "`podman load` of {what} named no image: {}",
                out.trim()
            ))
        })?;
        let id = self
            .run(&["image", "inspect", "--format", "{{.Id}}", "--", &loaded])
            .await?;
        let id = id.trim().to_owned();
        if !is_image_id(&id) {
            return Err(Error::Engine(format!(
                "loaded image {loaded} has no usable id: {id:?}"
            )));
        }
        Ok(id)
    }

    /// `podman load` of `archive` on its stdin, without a deadline (the caller's).
    async fn load_unbounded(&self, archive: ImageArchive) -> Result<String> {
        use tokio::io::AsyncReadExt;
        let ImageArchive { what, size, source } = archive;
        debug!(%what, size, "podman load");
        let (stdin, mut stream) = match source {
            ArchiveSource::File(file) => {
                let len = file
                    .metadata()
                    .map_err(|e| Error::Engine(format!("image archive {what}: {e}")))?
                    .len();
                if len != size {
                    return Err(Error::Engine(format!(
                        "image archive {what} holds {len} bytes, not the {size} expected; not loaded"
                    )));
                }
                (Stdio::from(file), None)
            }
            ArchiveSource::Stream(stream) => (Stdio::piped(), Some(stream)),
        };
        let mut child = self
            .podman("load")?
            .args(LOAD_ARGS)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::Engine(format!(
                    "cannot run the podman client: {e} (is podman installed?)"
                ))
            })?;
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(out) = stdout.as_mut() {
                let _ = out.read_to_end(&mut buf).await;
            }
            buf
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(err) = stderr.as_mut() {
                let _ = err.read_to_end(&mut buf).await;
            }
            buf
        };
        let mut pipe = child.stdin.take();
        let feed = async {
            let fed = match (stream.as_mut(), pipe.as_mut()) {
                (Some(stream), Some(pipe)) => feed_exactly(stream, pipe, size, &what).await,
                _ => Ok(true),
            };
            if fed.is_err() {
                // Podman has not seen the end of its input: it must never load a short or
                // long archive, so it dies before the pipe closes.
                let _ = child.start_kill();
            }
            drop(pipe);
            fed
        };
        let (fed, out, err) = tokio::join!(feed, read_out, read_err);
        let status = child
            .wait()
            .await
            .map_err(|e| Error::Engine(format!("waiting for `podman load`: {e}")))?;
        let whole = fed?;
        if !status.success() {
            return Err(self.failure(LOAD_ARGS, &String::from_utf8_lossy(&err)));
        }
        if !whole {
            return Err(Error::Engine(format!(
                "`podman load` stopped reading {what} before its end; not used"
            )));
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Where Podman keeps images and containers (`podman info` at connect).
    pub fn graph_root(&self) -> &str {
        &self.host.graph_root
    }

    /// `podman inspect` of one container, as JSON; `None` when there is no such container.
    pub async fn inspect_container(&self, name: &str) -> Result<Option<serde_json::Value>> {
        match self
            .run(&["container", "inspect", "--format", "json", "--", name])
            .await
        {
            Ok(out) => {
                let mut all: Vec<serde_json::Value> = serde_json::from_str(&out).map_err(|e| {
                    Error::Engine(format!("unexpected `podman inspect` output: {e}"))
                })?;
                Ok(if all.is_empty() {
                    None
                } else {
                    Some(all.swap_remove(0))
                })
            }
            Err(Error::Engine(e)) if e.contains("no such container") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs `command` inside a running container (`podman exec`), returning its stdout.
    pub async fn exec(&self, container: &str, command: &[&str]) -> Result<String> {
        self.run(&exec_args(container, command)).await
    }

    /// Sends SIGKILL to a container's main process and returns once it has exited.
    pub async fn kill_container(&self, name: &str) -> Result<()> {
        self.run(&["kill", "--", name]).await?;
        // `podman kill` answers once the signal is sent; the caller's next look (a repair
        // right after) must find the container dead, not still stopping, as with the REST
        // runtime.
        self.run(&["wait", "--interval", "20ms", "--", name])
            .await
            .map(drop)
    }

    /// Removes one container by name, stopping it first (10 s grace).
    pub async fn remove_container(&self, name: &str) -> Result<()> {
        self.run(&["rm", "--force", "--time", "10", "--", name])
            .await
            .map(drop)
    }

    pub async fn network_exists(&self, name: &str) -> Result<bool> {
        // `network exists` answers with its exit code only; a service that does not
        // answer is an error, not a "no".
        match self.run(&["network", "exists", "--", name]).await {
            Ok(_) => Ok(true),
            Err(e @ (Error::Timeout { .. } | Error::ServiceDown { .. })) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// The `archy.app` label of a Podman secret: `None` when there is no such secret,
    /// `Some("")` when it exists without the label (not ours).
    pub async fn secret_owner(&self, name: &str) -> Result<Option<String>> {
        let format = format!("{{{{index .Spec.Labels \"{LABEL_APP}\"}}}}");
        match self
            .run(&["secret", "inspect", "--format", &format, "--", name])
            .await
        {
            Ok(owner) => Ok(Some(owner.trim().to_owned())),
            Err(Error::Engine(e)) if e.contains("no such secret") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a Podman secret labelled for `app`; the value goes through stdin, never argv.
    pub(crate) async fn create_secret(&self, name: &str, app: &str, value: &[u8]) -> Result<()> {
        let label = format!("{LABEL_APP}={app}");
        self.run_with_input(
            &["secret", "create", "--label", &label, "--", name, "-"],
            Some(value),
        )
        .await
        .map(drop)
    }

    pub(crate) async fn remove_secret(&self, name: &str) -> Result<()> {
        self.run(&["secret", "rm", "--", name]).await.map(drop)
    }

    /// Names of every Podman secret (`secret ls` cannot filter by label in 4.3).
    pub(crate) async fn secret_names(&self) -> Result<Vec<String>> {
        let out = self
            .run(&["secret", "ls", "--noheading", "--format", "{{.Name}}"])
            .await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Runs a checked `podman create` ([`CreateSpec`]): the argv that was checked, as it is.
    pub async fn create_container(&self, spec: &CreateSpec) -> Result<()> {
        let argv: Vec<&str> = spec.argv().iter().map(String::as_str).collect();
        self.run(&argv).await.map(drop)
    }

    pub async fn start_container(&self, name: &str) -> Result<()> {
        self.run(&["start", "--", name]).await.map(drop)
    }

    /// `podman stop --time GRACE`: Podman waits `grace_seconds` then kills, so this call's
    /// own deadline is the grace plus 30 s.
    pub async fn stop_container(&self, name: &str, grace_seconds: u32) -> Result<()> {
        let outer = Duration::from_secs(u64::from(grace_seconds) + 30);
        let grace = grace_seconds.to_string();
        self.run_within(&["stop", "--time", &grace, "--", name], None, outer)
            .await
            .map(drop)
    }

    pub async fn create_volume(&self, app: &str, name: &str) -> Result<()> {
        let label = format!("{LABEL_APP}={app}");
        self.run(&["volume", "create", "--label", &label, "--", name])
            .await
            .map(drop)
    }

    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        self.run(&["volume", "rm", "--force", "--", name])
            .await
            .map(drop)
    }

    /// The `archy.app` label of a network: `None` when there is no such network, `Some("")`
    /// when it has no such label (not ours).
    pub async fn network_owner(&self, name: &str) -> Result<Option<String>> {
        let format = format!("{{{{index .Labels \"{LABEL_APP}\"}}}}");
        match self
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

    pub async fn create_network(&self, app: &str, name: &str) -> Result<()> {
        let label = format!("{LABEL_APP}={app}");
        self.run(&["network", "create", "--label", &label, "--", name])
            .await
            .map(drop)
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        self.run(&["network", "rm", "--", name]).await.map(drop)
    }
}

/// The Podman CLI as the orchestrator's [`Runtime`]: each operation is the inherent method
/// of the same name (one `podman --remote` call each, with its deadline).
impl Runtime for Engine {
    fn host(&self) -> &HostInfo {
        &self.host
    }

    fn location(&self) -> &str {
        &self.url
    }

    fn ping(&self, deadline: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(Engine::ping(self, deadline))
    }

    fn load_image(&self, archive: ImageArchive) -> BoxFuture<'_, Result<String>> {
        Box::pin(Engine::load_image(self, archive))
    }

    fn containers_of<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<ContainerInfo>>> {
        Box::pin(Engine::containers_of(self, app))
    }

    fn containers_by_app(&self) -> BoxFuture<'_, Result<BTreeMap<String, Vec<ContainerInfo>>>> {
        Box::pin(Engine::containers_by_app(self))
    }

    fn inspect<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ContainerDetails>>> {
        Box::pin(async move {
            Ok(self
                .inspect_container(name)
                .await?
                .map(|info| ContainerDetails::from_inspect(&info)))
        })
    }

    fn create_container<'a>(&'a self, spec: &'a CreateSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::create_container(self, spec))
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::start_container(self, name))
    }

    fn stop_container<'a>(
        &'a self,
        name: &'a str,
        grace_seconds: u32,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::stop_container(self, name, grace_seconds))
    }

    fn kill_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::kill_container(self, name))
    }

    fn remove_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::remove_container(self, name))
    }

    fn exec<'a>(&'a self, name: &'a str, command: &'a [String]) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let command: Vec<&str> = command.iter().map(String::as_str).collect();
            Engine::exec(self, name, &command).await
        })
    }

    fn logs<'a>(
        &'a self,
        name: &'a str,
        tail: u32,
        follow: bool,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<String>>> {
        Box::pin(self.container_logs(name, tail, follow, since))
    }

    fn events(&self) -> Result<mpsc::Receiver<AppEvent>> {
        self.app_events()
    }

    fn volumes_of<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(Engine::volumes_of(self, app))
    }

    fn create_volume<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::create_volume(self, app, name))
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::remove_volume(self, name))
    }

    fn network_owner<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(Engine::network_owner(self, name))
    }

    fn create_network<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::create_network(self, app, name))
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::remove_network(self, name))
    }

    fn secret_names(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(Engine::secret_names(self))
    }

    fn secret_owner<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(Engine::secret_owner(self, name))
    }

    fn create_secret<'a>(
        &'a self,
        name: &'a str,
        app: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::create_secret(self, name, app, value))
    }

    fn remove_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::remove_secret(self, name))
    }
}

/// `podman exec -- CONTAINER COMMAND…`. `exec` stops reading options at its first
/// positional argument (the container), so `--` goes *before* the container: it ends the
/// options whatever the name looks like, and everything after the name is the command,
/// passed on as it is (a health command may start with `-`). A `--` after the name is not
/// an end of options but the command itself: measured on Podman 4.3.1, `podman exec NAME
/// -- /bin/busybox echo hi` runs a program called `--` ("executable file not found"),
/// while `podman exec -- NAME /bin/busybox echo --privileged -x` prints
/// `--privileged -x`.
pub(crate) fn exec_args<'a>(container: &'a str, command: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["exec", "--", container];
    args.extend_from_slice(command);
    args
}

/// `podman load`, its archive on stdin. `--input=/dev/stdin` rather than no `--input`:
/// without it the remote client copies all of stdin to a temporary file before
/// uploading it (a full extra copy on disk); with it, it opens the descriptor it was given
/// (a pipe, or the store's own file reopened) and uploads while it reads. The `=` form keeps
/// the value bound to its flag.
pub(crate) const LOAD_ARGS: &[&str] = &["load", "--quiet", "--input=/dev/stdin"];

/// Copies exactly `size` bytes of `stream` into podman's stdin and flushes it; the caller
/// closes it. A stream that ends early or goes on is an error, returned while the pipe is
/// still open so the caller can kill podman before it sees an end of input. `Ok(false)`:
/// podman closed the pipe early (it failed, and says why on stderr).
async fn feed_exactly(
    stream: &mut std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    pipe: &mut tokio::process::ChildStdin,
    size: u64,
    what: &str,
) -> Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; FEED_CHUNK];
    let mut sent = 0u64;
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| Error::Engine(format!("reading image archive {what}: {e}")))?;
        if n == 0 {
            break;
        }
        sent += n as u64;
        if sent > size {
            return Err(Error::Engine(format!(
                "image archive {what} is longer than its {size} bytes; not loaded"
            )));
        }
        match pipe.write_all(&buf[..n]).await {
            Ok(()) => {}
            // Podman stopped reading: its exit status and stderr tell why.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            Err(e) => return Err(Error::Engine(format!("writing to `podman load`: {e}"))),
        }
    }
    if sent != size {
        return Err(Error::Engine(format!(
            "image archive {what} ended after {sent} of its {size} bytes; not loaded"
        )));
    }
    match pipe.flush().await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::Engine(format!("writing to `podman load`: {e}"))),
    }
}

/// How much of a streamed archive is read and written at a time.
const FEED_CHUNK: usize = 256 * 1024;

/// How long `podman load` of an archive of `bytes` may take: the default deadline plus a
/// second per 4 MiB (a slow disk writes the layers and their user-namespace copy).
pub(crate) fn load_deadline(base: Duration, bytes: u64) -> Duration {
    base + Duration::from_secs(bytes / (4 * 1024 * 1024))
}

/// A podman command as an operator would name it: its subcommand words and the object
/// after `--` (e.g. `podman volume create archy-hello-data`), never option values.
pub(crate) fn describe(args: &[&str]) -> String {
    let mut words: Vec<&str> = args
        .iter()
        .take_while(|a| !a.starts_with('-'))
        .copied()
        .collect();
    if let Some(pos) = args.iter().position(|a| *a == "--")
        && let Some(object) = args.get(pos + 1)
        && *object != "-"
    {
        words.push(object);
    }
    format!("podman {}", words.join(" "))
}

/// What the podman client says when nothing answers on the socket (the service is dead).
pub(crate) fn is_unreachable(stderr: &str) -> bool {
    stderr.contains("Cannot connect to Podman")
        || stderr.contains("connection refused")
        || stderr.contains("no such file or directory") && stderr.contains(".sock")
        || stderr.contains("unexpected EOF")
        || stderr.contains("connection reset by peer")
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
    fn reads_host_facts_from_podman_info() {
        // Trimmed `podman info --format json` of this project's test host (Podman 4.3.1).
        let info = r#"{"host":{"cgroupManager":"cgroupfs","cgroupVersion":"v1","cgroupControllers":[],
            "security":{"rootless":true,"capabilities":"CAP_CHOWN"}},
            "store":{"graphRoot":"/home/archy-podman/.local/share/containers/storage"},
            "version":{"APIVersion":"4.3.1","Version":"4.3.1"}}"#;
        let host = HostInfo::parse(info).unwrap();
        assert!(host.rootless);
        assert_eq!(
            (host.cgroup_version.as_str(), host.cgroup_manager.as_str()),
            ("v1", "cgroupfs")
        );
        assert!(host.cgroup_controllers.is_empty());
        assert_eq!(
            host.graph_root,
            "/home/archy-podman/.local/share/containers/storage"
        );
        assert_eq!(host.version, "4.3.1");
        let limits = LimitSupport::of(&host);
        assert!(!limits.memory && !limits.cpu && !limits.pids);
        let rootful = info.replace("\"rootless\":true", "\"rootless\":false");
        assert!(!HostInfo::parse(&rootful).unwrap().rootless);
        assert!(HostInfo::parse("not json").is_err());
    }

    #[test]
    fn timeouts_name_the_command_not_its_values() {
        assert_eq!(
            describe(&[
                "volume",
                "create",
                "--label",
                "archy.app=x",
                "--",
                "archy-x-data"
            ]),
            "podman volume create archy-x-data"
        );
        assert_eq!(
            describe(&["secret", "create", "--label", "l", "--", "archy-x-db", "-"]),
            "podman secret create archy-x-db"
        );
        assert_eq!(describe(LOAD_ARGS), "podman load");
        assert_eq!(describe(&["ps", "--all"]), "podman ps");
        let e = Error::Timeout {
            what: describe(&["start", "--", "archy-x-web"]),
            after: Duration::from_secs(60),
        };
        assert_eq!(
            e.to_string(),
            "`podman start archy-x-web` did not answer within 60s (is the Podman service alive?)"
        );
    }

    #[test]
    fn load_deadline_grows_with_the_archive() {
        let base = Duration::from_secs(60);
        assert_eq!(load_deadline(base, 0), base);
        assert_eq!(
            load_deadline(base, 400 * 1024 * 1024),
            Duration::from_secs(160)
        );
    }

    #[test]
    fn a_dead_service_is_told_apart_from_a_failed_command() {
        assert!(is_unreachable(
            "Error: unable to connect to Podman socket: Get \"http://d/v4.3.1/libpod/_ping\": dial unix /run/user/1001/podman.sock: connect: connection refused"
        ));
        assert!(is_unreachable(
            "Cannot connect to Podman. Please verify your connection to the Linux system"
        ));
        assert!(!is_unreachable("Error: no such container archy-x-web"));
    }

    #[tokio::test]
    async fn an_offline_engine_runs_no_podman_at_all() {
        let engine = Engine::offline("unix:///run/user/1/podman.sock");
        assert!(engine.is_offline());
        let err = engine.containers_of("x").await.unwrap_err().to_string();
        assert!(
            err.contains("`podman ps` refused") && err.contains("publish-only"),
            "{err}"
        );
        let err = engine.app_events().unwrap_err().to_string();
        assert!(err.contains("`podman events` refused"), "{err}");
        assert!(engine.ping(Duration::from_secs(1)).await.is_err());
        // A connected engine to the same (absent) socket does try podman.
        let tried = Engine::unchecked("unix:///nonexistent/podman.sock".into(), DEFAULT_DEADLINE)
            .containers_of("x")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            !tried.contains("refused: this node runs without Podman"),
            "{tried}"
        );
    }

    #[tokio::test]
    async fn a_podman_call_that_never_answers_times_out_with_its_name() {
        // A socket that accepts and never answers: a frozen service.
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("podman.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let engine = Engine {
            url: format!("unix://{}", sock.display()),
            host: HostInfo::default(),
            deadline: Duration::from_millis(1500),
            offline: false,
        };
        let started = std::time::Instant::now();
        let err = engine.containers_of("x").await.unwrap_err();
        assert!(
            matches!(&err, Error::Timeout { what, after } if what == "podman ps" && *after == Duration::from_millis(1500)),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        // Nothing listens any more: a named error at once, not a hang.
        drop(_listener);
        std::fs::remove_file(&sock).unwrap();
        let started = std::time::Instant::now();
        let err = engine.containers_of("x").await.unwrap_err();
        assert!(matches!(err, Error::ServiceDown { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn exec_ends_options_before_the_container_and_passes_the_command_as_is() {
        assert_eq!(
            exec_args("archy-x-db", &["pg_isready", "-U", "--privileged"]),
            [
                "exec",
                "--",
                "archy-x-db",
                "pg_isready",
                "-U",
                "--privileged"
            ]
        );
        assert_eq!(exec_args("archy-x-db", &[]), ["exec", "--", "archy-x-db"]);
    }

    /// A child that writes its stdin to `out` (and is still reading while we look).
    fn cat_into(out: &Path) -> tokio::process::Child {
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg("cat > \"$0\"")
            .arg(out)
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    fn stream(bytes: &[u8]) -> std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> {
        Box::pin(std::io::Cursor::new(bytes.to_vec()))
    }

    #[tokio::test]
    async fn a_streamed_archive_goes_in_whole_or_podman_never_sees_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        // Exactly its size: all of it, in order.
        let out = dir.path().join("whole");
        let mut child = cat_into(&out);
        let mut pipe = child.stdin.take().unwrap();
        let fed = feed_exactly(&mut stream(&data), &mut pipe, data.len() as u64, "a").await;
        assert!(fed.unwrap());
        drop(pipe);
        assert!(child.wait().await.unwrap().success());
        assert!(std::fs::read(&out).unwrap() == data);
        // Shorter or longer than declared: an error while the pipe is still open, so the
        // reader has not seen an end of input and can be killed first.
        for (declared, says) in [(data.len() + 1, "ended after"), (data.len() - 1, "longer")] {
            let mut child = cat_into(&dir.path().join("cut"));
            let mut pipe = child.stdin.take().unwrap();
            let err = feed_exactly(&mut stream(&data), &mut pipe, declared as u64, "a")
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(says) && err.contains("not loaded"), "{err}");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the reader is still waiting for more"
            );
            child.kill().await.unwrap();
        }
        // A reader that quits: no error of the copy's own (podman's stderr says why).
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("exit 3")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        let _ = child.wait().await;
        let fed = feed_exactly(&mut stream(&data), &mut pipe, data.len() as u64, "a").await;
        assert!(!fed.unwrap(), "the copy stopped when the reader went away");
    }

    /// An archive stream that never yields a byte: the load has a deadline all the same,
    /// and says which command did not answer.
    #[tokio::test]
    async fn a_stalled_archive_stream_times_out_the_load() {
        struct Stalled;
        impl tokio::io::AsyncRead for Stalled {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Pending
            }
        }
        // A socket that accepts and never answers, so podman waits as long as we do.
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("podman.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let engine = Engine::unchecked(
            format!("unix://{}", sock.display()),
            Duration::from_millis(1500),
        );
        let started = std::time::Instant::now();
        let err = engine
            .load_image(ImageArchive {
                what: "stalled".into(),
                size: 1000,
                source: ArchiveSource::Stream(Box::pin(Stalled)),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Timeout { what, .. } if what == "podman load"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
