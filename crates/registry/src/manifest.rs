//! The app manifest: everything the orchestrator does for an app, declared as data.
//! Authored as YAML (`apps/<id>/manifest.yml`), embedded as JSON in catalogs.
//! Unknown fields are an error; [`Manifest::validate`] names the field and the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ValidationError};
use crate::grammar::{
    check_capability, check_command_arg, check_description, check_display_name, check_env_key,
    check_env_value, check_http_path, check_image_reference, check_media_type, check_name,
    check_user, check_volume_path,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stable app id: lowercase letters, digits and '-', starting with a letter.
    pub id: String,
    /// Display name.
    pub name: String,
    pub version: semver::Version,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Files the app needs that travel through the swarm (image archives, icons).
    /// The catalog binds each name to a BLAKE3 hash and size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactDecl>,
    pub containers: Vec<Container>,
    /// Secrets generated once on install, kept across updates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSpec>,
    /// Other apps this one needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub resources: Resources,
    /// How a person opens the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<Ui>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactDecl {
    pub name: String,
    pub media_type: String,
}

/// Media type of an OCI image archive (`podman save --format oci-archive`).
pub const OCI_ARCHIVE_MEDIA_TYPE: &str = "application/vnd.oci.image.layout.v1.tar";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub name: String,
    pub image: ImageSource,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Linux capabilities added to the container (all others are dropped by Podman's default set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    /// Seconds Podman waits after SIGTERM before SIGKILL.
    #[serde(default = "default_stop_grace")]
    pub stop_grace_seconds: u32,
    /// Containers of this app that must be started (and healthy, if they have a check) first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// `user[:group]` to run as inside the container: numeric ids or POSIX names
    /// (see [`crate::grammar::check_user`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub network: NetworkMode,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pid: PidMode,
    /// The app works with a read-only root filesystem: the node then mounts it read-only,
    /// with a tmpfs at `/tmp`; volumes stay writable unless they say otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_root: bool,
}

impl Manifest {
    /// Gives back the room its lists were grown with while parsing.
    pub fn shrink_to_fit(&mut self) {
        self.artifacts.shrink_to_fit();
        self.containers.shrink_to_fit();
        self.secrets.shrink_to_fit();
        self.dependencies.shrink_to_fit();
        for c in &mut self.containers {
            c.command.shrink_to_fit();
            c.ports.shrink_to_fit();
            c.volumes.shrink_to_fit();
            c.capabilities.shrink_to_fit();
            c.depends_on.shrink_to_fit();
        }
    }
}

fn default_stop_grace() -> u32 {
    10
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Where a container's image comes from: exactly one of the two fields is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    /// An OCI archive shipped as one of this manifest's artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// A registry reference pinned by digest (`[registry/]repo[:tag]@sha256:<64 hex>`, the
    /// distribution/reference grammar: see [`crate::grammar::parse_image_reference`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    Plain(String),
    Secret(SecretRef),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub container: u16,
    /// Published on the node's loopback-or-LAN address; rootless Podman cannot bind below 1024.
    pub host: u16,
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// App-scoped volume name; containers of one app share a volume by naming it.
    pub name: String,
    /// Absolute mount path inside the container (no `:`, `,`, `.`/`..` or empty segments:
    /// see [`crate::grammar::check_volume_path`]).
    pub path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The app's own network.
    #[default]
    App,
    Host,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PidMode {
    #[default]
    Private,
    Host,
}

/// A container's health check: one probe and its timing. Authored as
/// `{http: {port, path}} | {tcp: {port}} | {command: [...]}` plus the timing fields; a value
/// of this type always holds exactly one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HealthCheckFields", into = "HealthCheckFields")]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub retries: u32,
    /// Time allowed to become healthy after start before failures count.
    pub start_period_seconds: u32,
}

/// How a container is probed. A new kind is a new variant: the compiler then points at
/// every place that must handle it (validation, the orchestrator's probe, the review text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// HTTP GET on a container port; healthy on 2xx/3xx.
    Http(HttpCheck),
    /// TCP connect on a container port.
    Tcp(TcpCheck),
    /// A command run inside the container; healthy on exit 0.
    Command(Vec<String>),
}

/// The authored shape of [`HealthCheck`]: one optional field per probe kind.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(default = "default_interval")]
    interval_seconds: u32,
    #[serde(default = "default_timeout")]
    timeout_seconds: u32,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_start_period")]
    start_period_seconds: u32,
}

impl TryFrom<HealthCheckFields> for HealthCheck {
    type Error = String;
    fn try_from(f: HealthCheckFields) -> Result<Self, String> {
        let probe = match (f.http, f.tcp, f.command) {
            (Some(http), None, None) => Probe::Http(http),
            (None, Some(tcp), None) => Probe::Tcp(tcp),
            (None, None, Some(command)) => Probe::Command(command),
            _ => return Err("health: exactly one of http, tcp or command must be set".into()),
        };
        Ok(Self {
            probe,
            interval_seconds: f.interval_seconds,
            timeout_seconds: f.timeout_seconds,
            retries: f.retries,
            start_period_seconds: f.start_period_seconds,
        })
    }
}

impl From<HealthCheck> for HealthCheckFields {
    fn from(h: HealthCheck) -> Self {
        let (http, tcp, command) = match h.probe {
            Probe::Http(http) => (Some(http), None, None),
            Probe::Tcp(tcp) => (None, Some(tcp), None),
            Probe::Command(command) => (None, None, Some(command)),
        };
        Self {
            http,
            tcp,
            command,
            interval_seconds: h.interval_seconds,
            timeout_seconds: h.timeout_seconds,
            retries: h.retries,
            start_period_seconds: h.start_period_seconds,
        }
    }
}

fn default_interval() -> u32 {
    2
}
fn default_timeout() -> u32 {
    2
}
fn default_retries() -> u32 {
    3
}
fn default_start_period() -> u32 {
    30
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub port: u16,
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    "/".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    pub name: String,
    /// Length in characters of the generated secret (alphanumeric).
    #[serde(default = "default_secret_length")]
    pub length: u32,
}

fn default_secret_length() -> u32 {
    32
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub id: String,
    pub version: semver::VersionReq,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Free disk the node must have before installing, in MiB (on top of the artifacts).
    #[serde(default)]
    pub disk_mb: u64,
    /// Memory limit of each container, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// CPU limit of each container, in thousandths of a CPU (1000 = one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millicpus: Option<u32>,
    /// Most processes (and threads) each container may have; the node applies a default
    /// when the manifest does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u32>,
}

impl Resources {
    /// Smallest memory limit Podman accepts, in MiB.
    pub const MIN_MEMORY_MB: u64 = 6;
    /// Largest memory limit, in MiB (16 TiB; keeps `mb * 2^20` far from overflowing).
    pub const MAX_MEMORY_MB: u64 = 16 * 1024 * 1024;
    /// CPU limit range in thousandths of a CPU: 1/1000 of a CPU to 1000 CPUs.
    pub const MILLICPUS: std::ops::RangeInclusive<u32> = 1..=1_000_000;
    /// Process limit range (a handful of processes is the least any container starts with).
    pub const PIDS_LIMIT: std::ops::RangeInclusive<u32> = 16..=1_000_000;

    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(mb) = self.memory_mb
            && !(Self::MIN_MEMORY_MB..=Self::MAX_MEMORY_MB).contains(&mb)
        {
            return Err(ValidationError::new(
                "resources.memory_mb",
                format!(
                    "{mb} is out of range: must be {}-{} MiB (Podman needs at least 6 MiB)",
                    Self::MIN_MEMORY_MB,
                    Self::MAX_MEMORY_MB
                ),
            ));
        }
        if let Some(m) = self.millicpus
            && !Self::MILLICPUS.contains(&m)
        {
            return Err(ValidationError::new(
                "resources.millicpus",
                format!(
                    "{m} is out of range: must be {}-{} thousandths of a CPU",
                    Self::MILLICPUS.start(),
                    Self::MILLICPUS.end()
                ),
            ));
        }
        if let Some(p) = self.pids_limit
            && !Self::PIDS_LIMIT.contains(&p)
        {
            return Err(ValidationError::new(
                "resources.pids_limit",
                format!(
                    "{p} is out of range: must be {}-{} processes",
                    Self::PIDS_LIMIT.start(),
                    Self::PIDS_LIMIT.end()
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ui {
    /// Container whose port serves the UI.
    pub container: String,
    /// Container port of the UI; must be published in that container's `ports`.
    pub port: u16,
    #[serde(default = "default_path")]
    pub path: String,
}

/// Capabilities a third-party app may ask for (DESIGN trust rule 9). Anything beyond needs first-party review.
pub const THIRD_PARTY_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETGID",
    "SETUID",
    "SETPCAP",
];

impl Manifest {
    /// Parses authored YAML (unknown fields rejected) and validates it.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let manifest: Manifest = serde_yaml_ng::from_str(text).map_err(|e| Error::Malformed {
            what: "manifest",
            reason: e.to_string(),
        })?;
        manifest.validate().map_err(|source| Error::Invalid {
            what: "manifest",
            source,
        })?;
        Ok(manifest)
    }

    /// Parses embedded JSON (unknown fields rejected) and validates it.
    pub fn from_json_value(value: serde_json::Value) -> Result<Self> {
        let manifest: Manifest = serde_json::from_value(value).map_err(|e| Error::Malformed {
            what: "manifest",
            reason: e.to_string(),
        })?;
        manifest.validate().map_err(|source| Error::Invalid {
            what: "manifest",
            source,
        })?;
        Ok(manifest)
    }

    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Every rule a manifest must meet, first-party or not. Returns the first broken rule.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("id", &self.id)?;
        check_display_name("name", &self.name)?;
        check_description("description", &self.description)?;
        let mut artifact_names = BTreeSet::new();
        for (i, a) in self.artifacts.iter().enumerate() {
            check_name(&format!("artifacts[{i}].name"), &a.name)?;
            if !artifact_names.insert(a.name.as_str()) {
                return Err(ValidationError::new(
                    format!("artifacts[{i}].name"),
                    format!("duplicate artifact name {:?}", a.name),
                ));
            }
            check_media_type(&format!("artifacts[{i}].media_type"), &a.media_type)?;
        }
        let mut secret_names = BTreeSet::new();
        for (i, s) in self.secrets.iter().enumerate() {
            check_name(&format!("secrets[{i}].name"), &s.name)?;
            if !secret_names.insert(s.name.as_str()) {
                return Err(ValidationError::new(
                    format!("secrets[{i}].name"),
                    format!("duplicate secret {:?}", s.name),
                ));
            }
            if !(16..=1024).contains(&s.length) {
                return Err(ValidationError::new(
                    format!("secrets[{i}].length"),
                    "must be between 16 and 1024",
                ));
            }
        }
        if self.containers.is_empty() {
            return Err(ValidationError::new(
                "containers",
                "an app needs at least one container",
            ));
        }
        let container_names: BTreeSet<&str> =
            self.containers.iter().map(|c| c.name.as_str()).collect();
        if container_names.len() != self.containers.len() {
            return Err(ValidationError::new(
                "containers",
                "container names must be unique",
            ));
        }
        let mut host_ports = BTreeSet::new();
        for (i, c) in self.containers.iter().enumerate() {
            let at = format!("containers[{i}]");
            self.validate_container(&at, c, &artifact_names, &secret_names, &container_names)?;
            for (j, p) in c.ports.iter().enumerate() {
                if !host_ports.insert((p.host, p.protocol)) {
                    return Err(ValidationError::new(
                        format!("{at}.ports[{j}].host"),
                        format!(
                            "host port {}/{} is published twice",
                            p.host,
                            p.protocol.as_str()
                        ),
                    ));
                }
            }
        }
        self.check_start_order_is_acyclic()?;
        self.resources.validate()?;
        for (i, d) in self.dependencies.iter().enumerate() {
            check_name(&format!("dependencies[{i}].id"), &d.id)?;
            if self.dependencies[..i].iter().any(|other| other.id == d.id) {
                return Err(ValidationError::new(
                    format!("dependencies[{i}].id"),
                    format!("{:?} is listed twice; give one version range", d.id),
                ));
            }
            if d.id == self.id {
                return Err(ValidationError::new(
                    format!("dependencies[{i}].id"),
                    "an app cannot depend on itself",
                ));
            }
        }
        if let Some(ui) = &self.ui {
            let Some(c) = self.container(&ui.container) else {
                return Err(ValidationError::new(
                    "ui.container",
                    format!("no container named {:?}", ui.container),
                ));
            };
            if !c
                .ports
                .iter()
                .any(|p| p.container == ui.port && p.protocol == Protocol::Tcp)
            {
                return Err(ValidationError::new(
                    "ui.port",
                    format!(
                        "container port {} is not published by container {:?}",
                        ui.port, ui.container
                    ),
                ));
            }
            check_http_path("ui.path", &ui.path)?;
        }
        Ok(())
    }

    fn validate_container(
        &self,
        at: &str,
        c: &Container,
        artifacts: &BTreeSet<&str>,
        secrets: &BTreeSet<&str>,
        containers: &BTreeSet<&str>,
    ) -> Result<(), ValidationError> {
        check_name(&format!("{at}.name"), &c.name)?;
        match (&c.image.artifact, &c.image.reference) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ValidationError::new(
                    format!("{at}.image"),
                    "exactly one of artifact or reference must be set",
                ));
            }
            (Some(name), None) => {
                if !artifacts.contains(name.as_str()) {
                    return Err(ValidationError::new(
                        format!("{at}.image.artifact"),
                        format!("{name:?} is not declared in artifacts"),
                    ));
                }
            }
            (None, Some(reference)) => {
                check_image_reference(&format!("{at}.image.reference"), reference)?;
            }
        }
        for (key, value) in &c.env {
            check_env_key(&format!("{at}.env"), key)?;
            match value {
                EnvValue::Plain(v) => check_env_value(&format!("{at}.env.{key}"), v)?,
                EnvValue::Secret(r) => {
                    if !secrets.contains(r.secret.as_str()) {
                        return Err(ValidationError::new(
                            format!("{at}.env.{key}.secret"),
                            format!("{:?} is not declared in secrets", r.secret),
                        ));
                    }
                }
            }
        }
        for (j, p) in c.ports.iter().enumerate() {
            if p.container == 0 {
                return Err(ValidationError::new(
                    format!("{at}.ports[{j}].container"),
                    "must be 1-65535",
                ));
            }
            if p.host < 1024 {
                return Err(ValidationError::new(
                    format!("{at}.ports[{j}].host"),
                    format!(
                        "{} is below 1024; rootless Podman cannot publish privileged ports",
                        p.host
                    ),
                ));
            }
        }
        let mut paths = BTreeSet::new();
        for (j, v) in c.volumes.iter().enumerate() {
            check_name(&format!("{at}.volumes[{j}].name"), &v.name)?;
            check_volume_path(&format!("{at}.volumes[{j}].path"), &v.path)?;
            if !paths.insert(v.path.as_str()) {
                return Err(ValidationError::new(
                    format!("{at}.volumes[{j}].path"),
                    format!("{:?} is mounted twice", v.path),
                ));
            }
        }
        for (j, cap) in c.capabilities.iter().enumerate() {
            if c.capabilities[..j].contains(cap) {
                return Err(ValidationError::new(
                    format!("{at}.capabilities[{j}]"),
                    format!("{cap} is listed twice"),
                ));
            }
            check_capability(&format!("{at}.capabilities[{j}]"), cap)?;
        }
        if let Some(h) = &c.health {
            match &h.probe {
                Probe::Command(cmd) => {
                    if cmd.is_empty() {
                        return Err(ValidationError::new(
                            format!("{at}.health.command"),
                            "must not be empty",
                        ));
                    }
                    for (k, arg) in cmd.iter().enumerate() {
                        check_command_arg(&format!("{at}.health.command[{k}]"), arg)?;
                    }
                }
                Probe::Http(http) => {
                    if http.port == 0 {
                        return Err(ValidationError::new(
                            format!("{at}.health.http.port"),
                            "must be 1-65535",
                        ));
                    }
                    check_http_path(&format!("{at}.health.http.path"), &http.path)?;
                }
                Probe::Tcp(tcp) => {
                    if tcp.port == 0 {
                        return Err(ValidationError::new(
                            format!("{at}.health.tcp.port"),
                            "must be 1-65535",
                        ));
                    }
                }
            }
            for (what, value, range) in [
                ("interval_seconds", h.interval_seconds, 1..=3600),
                ("timeout_seconds", h.timeout_seconds, 1..=3600),
                ("retries", h.retries, 0..=1000),
                ("start_period_seconds", h.start_period_seconds, 0..=86_400),
            ] {
                if !range.contains(&value) {
                    return Err(ValidationError::new(
                        format!("{at}.health.{what}"),
                        format!(
                            "{value} is out of range: must be {}-{}",
                            range.start(),
                            range.end()
                        ),
                    ));
                }
            }
        }
        if c.stop_grace_seconds > 3600 {
            return Err(ValidationError::new(
                format!("{at}.stop_grace_seconds"),
                "must be at most 3600",
            ));
        }
        for (j, dep) in c.depends_on.iter().enumerate() {
            if dep == &c.name || !containers.contains(dep.as_str()) {
                return Err(ValidationError::new(
                    format!("{at}.depends_on[{j}]"),
                    format!("{dep:?} is not another container of this app"),
                ));
            }
        }
        for (k, arg) in c.command.iter().enumerate() {
            check_command_arg(&format!("{at}.command[{k}]"), arg)?;
        }
        if let Some(user) = &c.user {
            check_user(&format!("{at}.user"), user)?;
        }
        Ok(())
    }

    /// Containers in an order that respects `depends_on`; errors on a cycle.
    pub fn start_order(&self) -> Result<Vec<&Container>, ValidationError> {
        let mut done: Vec<&Container> = Vec::with_capacity(self.containers.len());
        while done.len() < self.containers.len() {
            let next = self.containers.iter().find(|c| {
                !done.iter().any(|d| d.name == c.name)
                    && c.depends_on
                        .iter()
                        .all(|dep| done.iter().any(|d| &d.name == dep))
            });
            match next {
                Some(c) => done.push(c),
                None => {
                    return Err(ValidationError::new(
                        "containers.depends_on",
                        "containers depend on each other in a cycle",
                    ));
                }
            }
        }
        Ok(done)
    }

    fn check_start_order_is_acyclic(&self) -> Result<(), ValidationError> {
        self.start_order().map(|_| ())
    }

    /// DESIGN trust rule 9, for third-party manifests: no privileged containers, no host
    /// network or PID namespace, capabilities only from [`THIRD_PARTY_CAPABILITIES`].
    /// (Manifests cannot express bind mounts at all: volumes always live in the app's own data.)
    pub fn check_sandbox_policy(&self) -> Result<(), ValidationError> {
        for (i, c) in self.containers.iter().enumerate() {
            let at = format!("containers[{i}]");
            if c.privileged {
                return Err(ValidationError::new(
                    format!("{at}.privileged"),
                    "third-party apps may not run privileged containers",
                ));
            }
            if c.network == NetworkMode::Host {
                return Err(ValidationError::new(
                    format!("{at}.network"),
                    "third-party apps may not use the host network",
                ));
            }
            if c.pid == PidMode::Host {
                return Err(ValidationError::new(
                    format!("{at}.pid"),
                    "third-party apps may not use the host PID namespace",
                ));
            }
            for (j, cap) in c.capabilities.iter().enumerate() {
                if !THIRD_PARTY_CAPABILITIES.contains(&cap.as_str()) {
                    return Err(ValidationError::new(
                        format!("{at}.capabilities[{j}]"),
                        format!(
                            "{cap} is not allowed for third-party apps (allowed: {})",
                            THIRD_PARTY_CAPABILITIES.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A manifest that came out of a verified, unexpired signed document. Only this crate
/// constructs one (inside a [`crate::VerifiedApp`], from a verified catalog or a verified,
/// sandbox-checked publication); the orchestrator accepts nothing else. Its field is
/// private, so a parsed but unsigned [`Manifest`] cannot be wrapped by hand:
///
/// ```compile_fail,E0423
/// # fn forge(m: archy_registry::Manifest) -> archy_registry::VerifiedManifest {
/// // A tuple struct with a private field cannot be built outside archy-registry (E0423).
/// archy_registry::VerifiedManifest(m)
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest(Manifest);

impl VerifiedManifest {
    /// Only for [`crate::VerifiedApp`]'s two verifications.
    pub(crate) fn new(manifest: Manifest) -> Self {
        Self(manifest)
    }
}

impl Deref for VerifiedManifest {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id: hello
name: Hello
version: 1.0.0
artifacts:
  - name: image
    media_type: application/vnd.oci.image.layout.v1.tar
containers:
  - name: web
    image: { artifact: image }
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
    env:
      GREETING: hi
      PASSWORD: { secret: admin }
    ports: [{ container: 8080, host: 18080 }]
    volumes: [{ name: data, path: /data }]
    health: { http: { port: 8080, path: / } }
secrets: [{ name: admin }]
ui: { container: web, port: 8080 }
"#;

    fn invalid(yaml: &str) -> String {
        Manifest::from_yaml(yaml).unwrap_err().to_string()
    }

    #[test]
    fn good_manifest_parses_and_round_trips_through_json() {
        let m = Manifest::from_yaml(GOOD).unwrap();
        assert_eq!(m.containers[0].stop_grace_seconds, 10);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(Manifest::from_json_value(json).unwrap(), m);
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let err = invalid(&GOOD.replace("name: Hello", "name: Hello\ncolour: red"));
        assert!(err.contains("colour"), "{err}");
        let err = invalid(&GOOD.replace("stop", "x").replace("command:", "comand:"));
        assert!(err.contains("comand"), "{err}");
    }

    #[test]
    fn rules_name_the_field() {
        let cases = [
            (GOOD.replace("id: hello", "id: Hello"), "id:"),
            (
                GOOD.replace("host: 18080", "host: 80"),
                "containers[0].ports[0].host",
            ),
            (
                GOOD.replace("{ artifact: image }", "{ artifact: other }"),
                "containers[0].image.artifact",
            ),
            (
                GOOD.replace("{ secret: admin }", "{ secret: nope }"),
                "containers[0].env.PASSWORD.secret",
            ),
            (
                GOOD.replace("path: /data", "path: ../etc"),
                "containers[0].volumes[0].path",
            ),
            (GOOD.replace("port: 8080 }\n", "port: 9999 }\n"), "ui.port"),
            (
                GOOD.replace("    health:", "    capabilities: [CHOWN, CHOWN]\n    health:"),
                "containers[0].capabilities[1]",
            ),
            (
                GOOD.replace("secrets: [", "dependencies: [{ id: db, version: \"^1\" }, { id: db, version: \"^2\" }]\nsecrets: ["),
                "dependencies[1].id",
            ),
            (
                GOOD.replace(
                    "{ artifact: image }",
                    "{ reference: \"docker.io/library/nginx:latest\" }",
                ),
                "containers[0].image.reference",
            ),
        ];
        for (yaml, field) in cases {
            let err = invalid(&yaml);
            assert!(err.contains(field), "expected {field} in: {err}");
        }
    }

    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// The manifest that mounted the host's `/`: the reference starts with `--mount=…`.
    #[test]
    fn the_flag_injection_image_reference_is_refused() {
        let attack = format!("--mount=type=bind,src=/,dst=/x@sha256:{HEX64}");
        let mut m = Manifest::from_yaml(GOOD).unwrap();
        m.containers[0].image = ImageSource {
            artifact: None,
            reference: Some(attack),
        };
        m.containers[0].command = vec!["docker.io/library/busybox".into(), "sh".into()];
        let e = m.validate().unwrap_err();
        assert_eq!(e.field, "containers[0].image.reference");
        assert!(e.rule.contains("pinned by digest"), "{}", e.rule);
        // Through the catalog path too.
        let json = serde_json::to_value(&m).unwrap();
        let err = Manifest::from_json_value(json).unwrap_err().to_string();
        assert!(err.contains("containers[0].image.reference"), "{err}");
        // A real pinned reference is fine.
        m.containers[0].image.reference =
            Some(format!("registry.example:5000/team/app:1.2@sha256:{HEX64}"));
        m.validate().unwrap();
    }

    #[test]
    fn every_value_that_reaches_podman_has_a_grammar() {
        let with = |f: &dyn Fn(&mut Manifest)| {
            let mut m = Manifest::from_yaml(GOOD).unwrap();
            f(&mut m);
            m.validate().unwrap_err()
        };
        let cases: Vec<(ValidationError, &str, &str)> = vec![
            (
                with(&|m| m.containers[0].volumes[0].path = "/data:/host".into()),
                "containers[0].volumes[0].path",
                "':'",
            ),
            (
                with(&|m| m.containers[0].volumes[0].path = "/x,ro".into()),
                "containers[0].volumes[0].path",
                "','",
            ),
            (
                with(&|m| m.containers[0].volumes[0].path = "/data/".into()),
                "containers[0].volumes[0].path",
                "absolute path",
            ),
            (
                with(&|m| {
                    if let Some(HealthCheck {
                        probe: Probe::Http(http),
                        ..
                    }) = m.containers[0].health.as_mut()
                    {
                        http.path = "/\r\nHost: evil".into();
                    }
                }),
                "containers[0].health.http.path",
                "RFC 3986",
            ),
            (
                with(&|m| m.ui.as_mut().unwrap().path = "/ui\r\n".into()),
                "ui.path",
                "RFC 3986",
            ),
            (
                with(&|m| {
                    m.containers[0].env.insert(
                        "GREETING".into(),
                        EnvValue::Plain("hi\nLD_PRELOAD=/x".into()),
                    );
                }),
                "containers[0].env.GREETING",
                "one line",
            ),
            (
                with(&|m| {
                    m.containers[0]
                        .env
                        .insert("BAD-KEY".into(), EnvValue::Plain("x".into()));
                }),
                "containers[0].env",
                "environment variable name",
            ),
            (
                with(&|m| m.containers[0].user = Some("--privileged".into())),
                "containers[0].user",
                "user[:group]",
            ),
            (
                with(&|m| m.containers[0].command[1] = "a\0b".into()),
                "containers[0].command[1]",
                "NUL",
            ),
            (
                with(&|m| {
                    m.containers[0].health = Some(HealthCheck {
                        probe: Probe::Command(vec!["true".into(), "\0".into()]),
                        interval_seconds: 2,
                        timeout_seconds: 2,
                        retries: 3,
                        start_period_seconds: 30,
                    })
                }),
                "containers[0].health.command[1]",
                "NUL",
            ),
            (
                with(&|m| m.containers[0].capabilities = vec!["CHOWN,SYS_ADMIN".into()]),
                "containers[0].capabilities[0]",
                "not a Linux capability",
            ),
            (
                with(&|m| m.artifacts[0].media_type = "text/plain\n".into()),
                "artifacts[0].media_type",
                "media type",
            ),
            (
                with(&|m| m.name = "Hello\u{1b}[2J".into()),
                "name",
                "control",
            ),
            (
                with(&|m| m.description = "a\rb".into()),
                "description",
                "control",
            ),
            (
                with(&|m| m.resources.memory_mb = Some(5)),
                "resources.memory_mb",
                "at least 6 MiB",
            ),
            (
                with(&|m| m.resources.millicpus = Some(0)),
                "resources.millicpus",
                "1-1000000",
            ),
            (
                with(&|m| m.resources.millicpus = Some(1_000_001)),
                "resources.millicpus",
                "1-1000000",
            ),
            (
                with(&|m| m.resources.pids_limit = Some(15)),
                "resources.pids_limit",
                "16-1000000",
            ),
            (
                with(&|m| m.resources.pids_limit = Some(1_000_001)),
                "resources.pids_limit",
                "16-1000000",
            ),
            (
                with(&|m| m.containers[0].health.as_mut().unwrap().retries = 1001),
                "containers[0].health.retries",
                "0-1000",
            ),
        ];
        for (e, field, rule) in cases {
            assert_eq!(e.field, field, "{e}");
            assert!(e.rule.contains(rule), "expected {rule:?} in {e}");
        }
    }

    #[test]
    fn resource_limits_at_their_bounds_are_accepted() {
        let mut m = Manifest::from_yaml(GOOD).unwrap();
        m.resources.memory_mb = Some(6);
        m.resources.millicpus = Some(1);
        m.resources.pids_limit = Some(16);
        m.containers[0].read_only_root = true;
        m.validate().unwrap();
        m.resources.millicpus = Some(1_000_000);
        m.resources.pids_limit = Some(1_000_000);
        m.validate().unwrap();
        let yaml = GOOD.replace(
            "secrets: [",
            "resources: { millicpus: 500, pids_limit: 256, memory_mb: 64 }\nsecrets: [",
        );
        let m = Manifest::from_yaml(&yaml).unwrap();
        assert_eq!(m.resources.millicpus, Some(500));
        assert_eq!(m.resources.pids_limit, Some(256));
    }

    #[test]
    fn the_first_party_hello_manifest_still_validates() {
        let yaml = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../apps/hello/manifest.yml"
        ))
        .unwrap();
        Manifest::from_yaml(&yaml).unwrap();
    }

    #[test]
    fn a_health_check_has_exactly_one_probe_and_keeps_its_authored_shape() {
        for two_or_none in [
            "health: { http: { port: 8080 }, tcp: { port: 8080 } }",
            "health: { interval_seconds: 2 }",
        ] {
            let err =
                invalid(&GOOD.replace("health: { http: { port: 8080, path: / } }", two_or_none));
            assert!(err.contains("exactly one of http, tcp or command"), "{err}");
        }
        let m = Manifest::from_yaml(GOOD).unwrap();
        let health = m.containers[0].health.clone().unwrap();
        assert!(matches!(&health.probe, Probe::Http(h) if h.port == 8080 && h.path == "/"));
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(json["http"]["port"], 8080);
        assert!(
            json.get("tcp").is_none() && json.get("probe").is_none(),
            "{json}"
        );
    }

    #[test]
    fn cycles_in_depends_on_are_refused() {
        let mut m = Manifest::from_yaml(GOOD).unwrap();
        let mut b = m.containers[0].clone();
        b.name = "b".into();
        b.ports.clear();
        b.depends_on = vec!["web".into()];
        m.containers[0].depends_on = vec!["b".into()];
        m.containers.push(b);
        assert!(m.validate().unwrap_err().rule.contains("cycle"));
    }

    #[test]
    fn sandbox_policy_refuses_privileged_and_host_access() {
        let m = Manifest::from_yaml(GOOD).unwrap();
        assert!(m.check_sandbox_policy().is_ok());
        let mut p = m.clone();
        p.containers[0].privileged = true;
        assert!(
            p.check_sandbox_policy()
                .unwrap_err()
                .field
                .ends_with("privileged")
        );
        let mut n = m.clone();
        n.containers[0].network = NetworkMode::Host;
        assert!(n.check_sandbox_policy().is_err());
        let mut c = m;
        c.containers[0].capabilities = vec!["SYS_ADMIN".into()];
        assert!(c.validate().is_ok());
        assert!(
            c.check_sandbox_policy()
                .unwrap_err()
                .rule
                .contains("SYS_ADMIN")
        );
    }
}
