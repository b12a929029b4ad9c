//! An in-memory [`Runtime`] for unit tests of the orchestrator's logic (and, with the
//! `test-support` feature, of other crates'): it keeps containers, volumes, networks and
//! secrets with their labels, answers the way Podman does where the orchestrator depends
//! on it (a name in use, a missing network or secret, a volume created unlabelled when a
//! container names one that does not exist), and can be told to fail or hang on the n-th
//! call of any operation, so every step of an install, update or undo can be broken.
//!
//! It is a unit-test double only: the real-parts layer is the e2e tests against rootless
//! Podman (tests/e2e).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::argv_check::is_image_id;
use crate::runtime::{
    ArchiveSource, BoxFuture, ContainerDetails, ContainerInfo, ContainerState, CreateSpec,
    HostInfo, ImageArchive, Runtime,
};
use crate::{AppEvent, Error, LABEL_APP, Result};

/// The operations of [`Runtime`], to count calls and inject faults by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Ping,
    LoadImage,
    ContainersOf,
    ContainersByApp,
    Inspect,
    CreateContainer,
    StartContainer,
    StopContainer,
    KillContainer,
    RemoveContainer,
    Exec,
    Logs,
    VolumesOf,
    CreateVolume,
    RemoveVolume,
    NetworkOwner,
    CreateNetwork,
    RemoveNetwork,
    SecretNames,
    SecretOwner,
    CreateSecret,
    RemoveSecret,
}

impl Op {
    pub const ALL: [Op; 22] = [
        Op::Ping,
        Op::LoadImage,
        Op::ContainersOf,
        Op::ContainersByApp,
        Op::Inspect,
        Op::CreateContainer,
        Op::StartContainer,
        Op::StopContainer,
        Op::KillContainer,
        Op::RemoveContainer,
        Op::Exec,
        Op::Logs,
        Op::VolumesOf,
        Op::CreateVolume,
        Op::RemoveVolume,
        Op::NetworkOwner,
        Op::CreateNetwork,
        Op::RemoveNetwork,
        Op::SecretNames,
        Op::SecretOwner,
        Op::CreateSecret,
        Op::RemoveSecret,
    ];
}

/// One container the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeContainer {
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    pub image: String,
    /// `--network`, when it names a network (not `host`).
    pub network: Option<String>,
    pub volumes: Vec<String>,
    pub secrets: Vec<String>,
    /// The checked argv it was created from.
    pub argv: Vec<String>,
}

/// Everything the fake holds, by name; each object's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objects {
    pub images: BTreeSet<String>,
    pub containers: BTreeMap<String, FakeContainer>,
    pub volumes: BTreeMap<String, BTreeMap<String, String>>,
    pub networks: BTreeMap<String, BTreeMap<String, String>>,
    /// Labels and value.
    pub secrets: BTreeMap<String, (BTreeMap<String, String>, Vec<u8>)>,
}

impl Objects {
    /// Every container, volume, network and secret named for `app` (`archy-<app>` or
    /// `archy-<app>-…`) or labelled `archy.app=<app>`, as `kind name`.
    pub fn of_app(&self, app: &str) -> Vec<String> {
        let prefix = format!("archy-{app}");
        let named = |name: &str| {
            name == prefix
                || name
                    .strip_prefix(&prefix)
                    .is_some_and(|r| r.starts_with('-'))
        };
        let ours = |name: &str, labels: &BTreeMap<String, String>| {
            named(name) || labels.get(LABEL_APP).is_some_and(|a| a == app)
        };
        let mut out = Vec::new();
        for (name, c) in &self.containers {
            if ours(name, &c.labels) {
                out.push(format!("container {name}"));
            }
        }
        for (name, labels) in &self.volumes {
            if ours(name, labels) {
                out.push(format!("volume {name}"));
            }
        }
        for (name, labels) in &self.networks {
            if ours(name, labels) {
                out.push(format!("network {name}"));
            }
        }
        for (name, (labels, _)) in &self.secrets {
            if ours(name, labels) {
                out.push(format!("secret {name}"));
            }
        }
        out
    }
}

struct Fault {
    op: Op,
    /// Fails (or hangs) the call of `op` with this running count.
    at: usize,
    /// Hangs instead of failing, notifying this when reached.
    hang: Option<Arc<Notify>>,
}

#[derive(Default)]
struct State {
    objects: Objects,
    counts: BTreeMap<Op, usize>,
    calls: Vec<(Op, String)>,
    faults: Vec<Fault>,
    logs: BTreeMap<String, Vec<String>>,
    events: Vec<mpsc::Sender<AppEvent>>,
}

/// An in-memory container engine; see the module doc.
pub struct FakeRuntime {
    host: HostInfo,
    state: Mutex<State>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// A rootless host with cgroup v2 and every controller delegated.
    pub fn new() -> Self {
        Self::with_host(HostInfo {
            rootless: true,
            cgroup_version: "v2".into(),
            cgroup_manager: "systemd".into(),
            cgroup_controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
            graph_root: "/nonexistent/archy-fake/storage".into(),
            version: "fake".into(),
        })
    }

    pub fn with_host(host: HostInfo) -> Self {
        Self {
            host,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `n`-th call of `op` from now on (1 = the next one) fails with an engine error.
    pub fn fail_nth(&self, op: Op, n: usize) {
        self.fault(op, n, None);
    }

    /// The `n`-th call of `op` from now on never answers (a frozen service): what a crash
    /// in the middle of an operation looks like to whoever drops the future. The answer is
    /// notified when that call is reached.
    pub fn hang_nth(&self, op: Op, n: usize) -> Arc<Notify> {
        let reached = Arc::new(Notify::new());
        self.fault(op, n, Some(reached.clone()));
        reached
    }

    fn fault(&self, op: Op, n: usize, hang: Option<Arc<Notify>>) {
        let mut state = self.state();
        let at = state.counts.get(&op).copied().unwrap_or(0) + n.max(1);
        state.faults.push(Fault { op, at, hang });
    }

    /// Forgets every fault not yet reached.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// How many times `op` was called.
    pub fn count(&self, op: Op) -> usize {
        self.state().counts.get(&op).copied().unwrap_or(0)
    }

    /// How many times each operation was called.
    pub fn counts(&self) -> BTreeMap<Op, usize> {
        self.state().counts.clone()
    }

    /// Every call so far, in order, with the name it was about.
    pub fn calls(&self) -> Vec<(Op, String)> {
        self.state().calls.clone()
    }

    /// What the fake holds now.
    pub fn objects(&self) -> Objects {
        self.state().objects.clone()
    }

    /// Adds an object as if someone else had created it (e.g. a foreign secret).
    pub fn put(&self, change: impl FnOnce(&mut Objects)) {
        change(&mut self.state().objects);
    }

    /// A line container `name` wrote, for `logs` to answer (the fake does not follow: its
    /// follow form ends after the lines written so far).
    pub fn write_log(&self, name: &str, line: &str) {
        self.state()
            .logs
            .entry(name.to_owned())
            .or_default()
            .push(line.to_owned());
    }

    /// Sends `event` to every event stream, as the engine would.
    pub fn emit(&self, event: AppEvent) {
        self.state()
            .events
            .retain(|tx| tx.try_send(event.clone()).is_ok() || !tx.is_closed());
    }

    /// Counts the call, then fails or hangs it if a fault says so.
    async fn enter(&self, op: Op, about: &str) -> Result<()> {
        let fault = {
            let mut state = self.state();
            let count = state.counts.entry(op).or_default();
            *count += 1;
            let now = *count;
            state.calls.push((op, about.to_owned()));
            let fault = state.faults.iter().position(|f| f.op == op && f.at == now);
            fault.map(|i| state.faults.remove(i))
        };
        match fault {
            Some(Fault {
                hang: Some(reached),
                ..
            }) => {
                reached.notify_one();
                std::future::pending().await
            }
            Some(_) => Err(Error::Engine(format!("injected failure of {op:?} {about}"))),
            None => Ok(()),
        }
    }

    /// Performs `change` on the state after [`FakeRuntime::enter`].
    fn call<'a, T: Send + 'a>(
        &'a self,
        op: Op,
        about: &'a str,
        change: impl FnOnce(&mut State) -> Result<T> + Send + 'a,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            self.enter(op, about).await?;
            change(&mut self.state())
        })
    }
}

fn refused(what: String) -> Error {
    Error::Engine(what)
}

fn label_of(labels: &BTreeMap<String, String>) -> Option<String> {
    Some(labels.get(LABEL_APP).cloned().unwrap_or_default())
}

fn app_label(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_APP.to_owned(), app.to_owned())])
}

fn info(name: &str, c: &FakeContainer) -> ContainerInfo {
    ContainerInfo {
        name: name.to_owned(),
        state: c.state,
    }
}

impl State {
    fn container(&mut self, name: &str) -> Result<&mut FakeContainer> {
        self.objects
            .containers
            .get_mut(name)
            .ok_or_else(|| refused(format!("no such container {name}")))
    }

    fn event(&mut self, name: &str, status: &str) {
        let Some(app) = self
            .objects
            .containers
            .get(name)
            .and_then(|c| c.labels.get(LABEL_APP).cloned())
        else {
            return;
        };
        let event = AppEvent {
            app,
            container: name.to_owned(),
            status: status.to_owned(),
        };
        self.events
            .retain(|tx| tx.try_send(event.clone()).is_ok() || !tx.is_closed());
    }
}

impl Runtime for FakeRuntime {
    fn host(&self) -> &HostInfo {
        &self.host
    }

    fn location(&self) -> &str {
        "fake://"
    }

    fn ping(&self, _deadline: Duration) -> BoxFuture<'_, Result<()>> {
        self.call(Op::Ping, "", |_| Ok(()))
    }

    fn load_image(&self, archive: ImageArchive) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            self.enter(Op::LoadImage, &archive.what).await?;
            let ImageArchive { what, size, source } = archive;
            // Read as the engine does: the whole archive, exactly its declared size.
            let bytes = match source {
                ArchiveSource::File(mut file) => {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut file, &mut bytes)
                        .map_err(|e| refused(format!("load of {what}: {e}")))?;
                    bytes
                }
                ArchiveSource::Stream(mut stream) => {
                    let mut bytes = Vec::new();
                    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut bytes)
                        .await
                        .map_err(|e| refused(format!("load of {what}: {e}")))?;
                    bytes
                }
            };
            if bytes.len() as u64 != size {
                return Err(refused(format!(
                    "load of {what}: {} bytes, not {size}; not loaded",
                    bytes.len()
                )));
            }
            let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
            let id = format!("{hash:016x}").repeat(4);
            self.state().objects.images.insert(id.clone());
            Ok(id)
        })
    }

    fn containers_of<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<ContainerInfo>>> {
        self.call(Op::ContainersOf, app, move |s| {
            Ok(s.objects
                .containers
                .iter()
                .filter(|(_, c)| c.labels.get(LABEL_APP).is_some_and(|a| a == app))
                .map(|(name, c)| info(name, c))
                .collect())
        })
    }

    fn containers_by_app(&self) -> BoxFuture<'_, Result<BTreeMap<String, Vec<ContainerInfo>>>> {
        self.call(Op::ContainersByApp, "", |s| {
            let mut by_app: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
            for (name, c) in &s.objects.containers {
                if let Some(app) = c.labels.get(LABEL_APP) {
                    by_app.entry(app.clone()).or_default().push(info(name, c));
                }
            }
            Ok(by_app)
        })
    }

    fn inspect<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ContainerDetails>>> {
        self.call(Op::Inspect, name, move |s| {
            Ok(s.objects.containers.get(name).map(|c| ContainerDetails {
                status: format!("{:?}", c.state).to_lowercase(),
                exit_code: 0,
                labels: c.labels.clone(),
            }))
        })
    }

    fn create_container<'a>(&'a self, spec: &'a CreateSpec) -> BoxFuture<'a, Result<()>> {
        self.call(Op::CreateContainer, spec.name(), move |s| {
            let name = spec.name();
            let parsed = spec.parsed();
            if s.objects.containers.contains_key(name) {
                return Err(refused(format!(
                    "the container name {name:?} is already in use"
                )));
            }
            let image = parsed.image.clone();
            if is_image_id(image.strip_prefix("sha256:").unwrap_or(&image))
                && !s.objects.images.contains(&image)
            {
                return Err(refused(format!("{image}: image not known")));
            }
            let network = parsed
                .single("--network")
                .filter(|n| *n != "host")
                .map(str::to_owned);
            if let Some(n) = &network
                && !s.objects.networks.contains_key(n)
            {
                return Err(refused(format!(
                    "unable to find network with name or ID {n}: network not found"
                )));
            }
            let secrets: Vec<String> = parsed.secrets.iter().map(|x| x.name.clone()).collect();
            if let Some(missing) = secrets.iter().find(|x| !s.objects.secrets.contains_key(*x)) {
                return Err(refused(format!("{missing}: no such secret")));
            }
            let volumes: Vec<String> = parsed.volumes.iter().map(|v| v.source.clone()).collect();
            for v in &volumes {
                // Podman creates a named volume a container needs, without any label.
                s.objects.volumes.entry(v.clone()).or_default();
            }
            let labels = parsed.labels.iter().cloned().collect();
            s.objects.containers.insert(
                name.to_owned(),
                FakeContainer {
                    labels,
                    state: ContainerState::Created,
                    image,
                    network,
                    volumes,
                    secrets,
                    argv: spec.argv().to_vec(),
                },
            );
            Ok(())
        })
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.call(Op::StartContainer, name, move |s| {
            s.container(name)?.state = ContainerState::Running;
            Ok(())
        })
    }

    fn stop_container<'a>(
        &'a self,
        name: &'a str,
        _grace_seconds: u32,
    ) -> BoxFuture<'a, Result<()>> {
        self.call(Op::StopContainer, name, move |s| {
            let c = s.container(name)?;
            let was_running = c.state == ContainerState::Running;
            c.state = ContainerState::Exited;
            if was_running {
                s.event(name, "died");
            }
            Ok(())
        })
    }

    fn kill_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.call(Op::KillContainer, name, move |s| {
            let c = s.container(name)?;
            if c.state != ContainerState::Running {
                return Err(refused(format!("can only kill running containers: {name}")));
            }
            c.state = ContainerState::Exited;
            s.event(name, "died");
            Ok(())
        })
    }

    fn remove_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.call(Op::RemoveContainer, name, move |s| {
            // `rm --force` of a missing container succeeds.
            s.event(name, "remove");
            s.objects.containers.remove(name);
            Ok(())
        })
    }

    fn exec<'a>(&'a self, name: &'a str, command: &'a [String]) -> BoxFuture<'a, Result<String>> {
        self.call(Op::Exec, name, move |s| {
            if s.container(name)?.state != ContainerState::Running {
                return Err(refused(format!(
                    "can only exec in running containers: {name}"
                )));
            }
            Ok(command.join(" "))
        })
    }

    fn logs<'a>(
        &'a self,
        name: &'a str,
        tail: u32,
        _follow: bool,
        _since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<String>>> {
        self.call(Op::Logs, name, move |s| {
            s.container(name)?;
            let lines = s.logs.get(name).cloned().unwrap_or_default();
            let skip = lines.len().saturating_sub(tail as usize);
            let (tx, rx) = mpsc::channel(lines.len().max(1));
            for line in lines.into_iter().skip(skip) {
                let _ = tx.try_send(line);
            }
            Ok(rx)
        })
    }

    fn events(&self) -> Result<mpsc::Receiver<AppEvent>> {
        let (tx, rx) = mpsc::channel(256);
        self.state().events.push(tx);
        Ok(rx)
    }

    fn volumes_of<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        self.call(Op::VolumesOf, app, move |s| {
            Ok(s.objects
                .volumes
                .iter()
                .filter(|(_, labels)| labels.get(LABEL_APP).is_some_and(|a| a == app))
                .map(|(name, _)| name.clone())
                .collect())
        })
    }

    fn create_volume<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.call(Op::CreateVolume, name, move |s| {
            if s.objects.volumes.contains_key(name) {
                return Err(refused(format!("volume with name {name} already exists")));
            }
            s.objects.volumes.insert(name.to_owned(), app_label(app));
            Ok(())
        })
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.call(Op::RemoveVolume, name, move |s| {
            if s.objects.volumes.remove(name).is_none() {
                return Err(refused(format!("no volume with name {name:?} found")));
            }
            // `volume rm --force` removes the containers using it too.
            s.objects
                .containers
                .retain(|_, c| !c.volumes.iter().any(|v| v == name));
            Ok(())
        })
    }

    fn network_owner<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        self.call(Op::NetworkOwner, name, move |s| {
            Ok(s.objects.networks.get(name).and_then(label_of))
        })
    }

    fn create_network<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.call(Op::CreateNetwork, name, move |s| {
            if s.objects.networks.contains_key(name) {
                return Err(refused(format!("network name {name} already used")));
            }
            s.objects.networks.insert(name.to_owned(), app_label(app));
            Ok(())
        })
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.call(Op::RemoveNetwork, name, move |s| {
            if !s.objects.networks.contains_key(name) {
                return Err(refused(format!(
                    "unable to find network {name}: network not found"
                )));
            }
            if let Some((user, _)) = s
                .objects
                .containers
                .iter()
                .find(|(_, c)| c.network.as_deref() == Some(name))
            {
                return Err(refused(format!("network {name} is being used by {user}")));
            }
            s.objects.networks.remove(name);
            Ok(())
        })
    }

    fn secret_names(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        self.call(Op::SecretNames, "", |s| {
            Ok(s.objects.secrets.keys().cloned().collect())
        })
    }

    fn secret_owner<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        self.call(Op::SecretOwner, name, move |s| {
            Ok(s.objects.secrets.get(name).and_then(|(l, _)| label_of(l)))
        })
    }

    fn create_secret<'a>(
        &'a self,
        name: &'a str,
        app: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<()>> {
        self.call(Op::CreateSecret, name, move |s| {
            if s.objects.secrets.contains_key(name) {
                return Err(refused(format!("{name}: secret name in use")));
            }
            s.objects
                .secrets
                .insert(name.to_owned(), (app_label(app), value.to_vec()));
            Ok(())
        })
    }

    fn remove_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        self.call(Op::RemoveSecret, name, move |s| {
            if s.objects.secrets.remove(name).is_none() {
                return Err(refused(format!("{name}: no such secret")));
            }
            Ok(())
        })
    }
}
