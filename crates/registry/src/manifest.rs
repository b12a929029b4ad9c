//! The app manifest: everything the orchestrator does for an app, declared as data.
//! Authored as YAML (`apps/<id>/manifest.yml`), embedded as JSON in catalogs.
//! Unknown fields are an error; [`Manifest::validate`] names the field and the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ValidationError};

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
    /// `uid[:gid]` to run as inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub network: NetworkMode,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pid: PidMode,
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
    /// A registry reference pinned by digest (`repo@sha256:<64 hex>`).
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
    /// Absolute mount path inside the container.
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP GET on a container port; healthy on 2xx/3xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// TCP connect on a container port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// A command run inside the container; healthy on exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Time allowed to become healthy after start before failures count.
    #[serde(default = "default_start_period")]
    pub start_period_seconds: u32,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
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

/// Every capability name Linux knows, so a typo is caught at validation.
const LINUX_CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// Ids, container, volume, secret and artifact names share one shape so they are safe
/// inside Podman object names and paths.
fn check_name(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok = (1..=63).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "{value:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
            ),
        ))
    }
}

fn check_env_key(field: &str, key: &str) -> Result<(), ValidationError> {
    let ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{key:?} is not a valid environment variable name"),
        ))
    }
}

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
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(ValidationError::new("name", "must be 1-100 characters"));
        }
        let mut artifact_names = BTreeSet::new();
        for (i, a) in self.artifacts.iter().enumerate() {
            check_name(&format!("artifacts[{i}].name"), &a.name)?;
            if !artifact_names.insert(a.name.as_str()) {
                return Err(ValidationError::new(
                    format!("artifacts[{i}].name"),
                    format!("duplicate artifact name {:?}", a.name),
                ));
            }
            if a.media_type.trim().is_empty() {
                return Err(ValidationError::new(
                    format!("artifacts[{i}].media_type"),
                    "must not be empty",
                ));
            }
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
            if !ui.path.starts_with('/') {
                return Err(ValidationError::new("ui.path", "must start with '/'"));
            }
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
                let pinned = reference
                    .split_once("@sha256:")
                    .is_some_and(|(repo, digest)| {
                        !repo.is_empty()
                            && digest.len() == 64
                            && digest
                                .chars()
                                .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
                    });
                if !pinned {
                    return Err(ValidationError::new(
                        format!("{at}.image.reference"),
                        format!(
                            "{reference:?} must be pinned by digest: repo@sha256:<64 lowercase hex>"
                        ),
                    ));
                }
            }
        }
        for (key, value) in &c.env {
            check_env_key(&format!("{at}.env.{key}"), key)?;
            if let EnvValue::Secret(r) = value
                && !secrets.contains(r.secret.as_str())
            {
                return Err(ValidationError::new(
                    format!("{at}.env.{key}.secret"),
                    format!("{:?} is not declared in secrets", r.secret),
                ));
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
            let path_ok = v.path.starts_with('/')
                && v.path != "/"
                && !v.path.split('/').any(|seg| seg == ".." || seg == ".");
            if !path_ok {
                return Err(ValidationError::new(
                    format!("{at}.volumes[{j}].path"),
                    format!(
                        "{:?} must be an absolute path other than / without . or .. segments",
                        v.path
                    ),
                ));
            }
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
            if !LINUX_CAPABILITIES.contains(&cap.as_str()) {
                return Err(ValidationError::new(
                    format!("{at}.capabilities[{j}]"),
                    format!(
                        "{cap:?} is not a Linux capability (write it without CAP_, e.g. NET_BIND_SERVICE)"
                    ),
                ));
            }
        }
        if let Some(h) = &c.health {
            let kinds = [h.http.is_some(), h.tcp.is_some(), h.command.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(ValidationError::new(
                    format!("{at}.health"),
                    "exactly one of http, tcp or command must be set",
                ));
            }
            if let Some(cmd) = &h.command
                && cmd.is_empty()
            {
                return Err(ValidationError::new(
                    format!("{at}.health.command"),
                    "must not be empty",
                ));
            }
            if let Some(http) = &h.http
                && !http.path.starts_with('/')
            {
                return Err(ValidationError::new(
                    format!("{at}.health.http.path"),
                    "must start with '/'",
                ));
            }
            if h.interval_seconds == 0 || h.timeout_seconds == 0 {
                return Err(ValidationError::new(
                    format!("{at}.health"),
                    "interval_seconds and timeout_seconds must be at least 1",
                ));
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
        if c.command.iter().any(|a| a.contains('\0')) {
            return Err(ValidationError::new(
                format!("{at}.command"),
                "must not contain NUL bytes",
            ));
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
/// constructs one; the orchestrator accepts nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest(Manifest);

impl VerifiedManifest {
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
