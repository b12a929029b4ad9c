//! Catalog apps with what they may do in words, install plans, and the store's one answer.

use super::*;

// ---- catalog ------------------------------------------------------------------------------

/// An app of the verified catalog (`GET /v1/catalog/apps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogAppView {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub installed: bool,
    /// The version installed on this node, when it is.
    #[serde(default)]
    pub installed_version: Option<String>,
    /// What the app will be allowed to do on this host, from its signed manifest.
    pub permissions: Permissions,
}

/// What an app's manifest lets it do on the host: what an operator approves by installing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Permissions {
    pub containers: Vec<ContainerPermissions>,
    /// Other apps it needs (`id` and version range).
    pub dependencies: Vec<String>,
    /// Secrets the node generates for it on install.
    pub secrets: u32,
    /// Free disk it needs, in MiB.
    pub disk_mb: u64,
    /// Memory limit of each container, in MiB.
    pub memory_mb: Option<u64>,
    /// CPU limit of each container, in thousandths of a CPU.
    pub millicpus: Option<u32>,
    /// Process limit of each container (the node's default when `null`).
    pub pids_limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContainerPermissions {
    pub name: String,
    /// Host ports it publishes.
    pub ports: Vec<PortPermission>,
    /// Volumes in its own data, by mount path.
    pub volumes: Vec<VolumePermission>,
    /// Linux capabilities beyond none.
    pub capabilities: Vec<String>,
    /// Privileged: everything the Podman user can do.
    pub privileged: bool,
    /// Shares the host's network.
    pub host_network: bool,
    /// Sees the host's processes.
    pub host_pid: bool,
    /// Its root filesystem is read-only.
    pub read_only_root: bool,
    /// `uid[:gid]` it runs as, when the manifest says.
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortPermission {
    pub host: u16,
    pub container: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VolumePermission {
    pub name: String,
    pub path: String,
    pub read_only: bool,
}

impl Permissions {
    /// What the app may do on this host, one sentence each, for a person deciding to
    /// install it: the words the dashboard's store shows (`GET /v1/store`).
    pub fn in_words(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.containers {
            let name = &c.name;
            for p in &c.ports {
                let udp = if p.protocol == "udp" { "UDP " } else { "" };
                out.push(format!(
                    "opens {udp}port {} on this host (to its {name} container's {})",
                    p.host, p.container
                ));
            }
            for v in &c.volumes {
                let ro = if v.read_only { " (read-only)" } else { "" };
                out.push(format!("keeps data in a volume at {}{ro}", v.path));
            }
            for cap in &c.capabilities {
                out.push(format!("{name} has the Linux capability {cap}"));
            }
            if c.privileged {
                out.push(format!(
                    "runs {name} PRIVILEGED: it can do anything on this host"
                ));
            }
            if c.host_network {
                out.push(format!("{name} shares this host's network"));
            }
            if c.host_pid {
                out.push(format!("{name} sees every process on this host"));
            }
            if c.read_only_root {
                out.push(format!("{name} runs on a read-only root filesystem"));
            }
            if let Some(user) = &c.user {
                out.push(format!("{name} runs as user {user} inside its container"));
            }
        }
        for d in &self.dependencies {
            out.push(format!("needs the app {d}"));
        }
        if self.secrets > 0 {
            out.push(format!(
                "gets {} generated secret{}, kept on this node",
                self.secrets,
                if self.secrets == 1 { "" } else { "s" }
            ));
        }
        if let Some(mb) = self.memory_mb {
            out.push(format!("is limited to {mb} MiB of memory per container"));
        }
        if let Some(m) = self.millicpus {
            out.push(format!(
                "is limited to {} CPU per container",
                f64::from(m) / 1000.0
            ));
        }
        if let Some(n) = self.pids_limit {
            out.push(format!("is limited to {n} processes per container"));
        }
        if self.disk_mb > 0 {
            out.push(format!("needs {} MiB of free disk", self.disk_mb));
        }
        out
    }
}

/// `GET /v1/catalog/apps/{id}/plan`: what `POST /v1/apps/{id}/install?with_dependencies=true`
/// would install, in order, computed without doing anything (the install computes it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstallPlan {
    /// The app asked for, at the catalog's version.
    pub app: PlannedApp,
    /// The apps it needs that are not installed yet, each before the apps that need it;
    /// empty when everything it needs is installed (or it needs nothing).
    pub install_first: Vec<PlannedApp>,
    /// The catalog version the plan comes from.
    pub catalog_version: u64,
}

impl InstallPlan {
    /// The plan in one sentence: "installing X 1.0.0 will also install A 2.0.0, B 1.1.0".
    pub fn in_words(&self) -> String {
        let app = format!("{} {}", self.app.id, self.app.version);
        if self.install_first.is_empty() {
            return format!("installing {app} installs nothing else: what it needs is installed");
        }
        let others: Vec<String> = self
            .install_first
            .iter()
            .map(|a| format!("{} {}", a.id, a.version))
            .collect();
        format!("installing {app} will also install {}", others.join(", "))
    }
}

/// One app of an [`InstallPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlannedApp {
    pub id: String,
    pub name: String,
    pub version: String,
}

// ---- store ------------------------------------------------------------------------------

/// `GET /v1/store`: everything the dashboard's store shows, first-party catalog apps and
/// third-party listings, in one answer and with no further request per app. Built from
/// what the node holds (its verified catalog, its stored listings and scores, what Podman
/// last said), never by asking Podman or the relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreView {
    /// Publishers scoring below this (0..=100) need the operator's approval to install.
    pub threshold: u8,
    /// The verified catalog's version; `null` before the first accepted pull.
    pub catalog_version: Option<u64>,
    /// The verified catalog's apps, in catalog order.
    pub catalog: Vec<StoreApp>,
    /// Third-party publishers (a Nostr key and the DID it is bound to) with their listings,
    /// by key.
    pub publishers: Vec<StorePublisher>,
}

/// A first-party app of the verified catalog, as its store card shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreApp {
    pub id: String,
    pub name: String,
    pub version: String,
    /// The manifest's description, its first paragraph cut at 240 characters.
    pub summary: String,
    /// What it may do on this host, in words ([`Permissions::in_words`]).
    pub may: Vec<String>,
    /// The apps it needs (`id range`): installing it may install them first (see
    /// `GET /v1/catalog/apps/{id}/plan`).
    pub needs: Vec<String>,
    /// `null` when not installed.
    pub installed: Option<StoreInstalled>,
}

/// What is installed of a store entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreInstalled {
    pub version: String,
    /// What Podman last said of its containers (`unknown` when it has not listed them
    /// since the node started): the store never waits for Podman.
    pub state: AppState,
    /// The version an update would bring; `null` when it is current.
    pub update_to: Option<String>,
}

/// A third-party publisher and what it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StorePublisher {
    /// The Nostr key (hex): `publisher` of `POST /v1/market/{app}/install`.
    pub author: String,
    /// The did:key its publications are signed with.
    pub did: String,
    /// Its trust score, 0..=100; `null` until scored.
    pub score: Option<u8>,
    /// Every term of the score, with its points.
    pub terms: Vec<ScoreTerm>,
    /// When it was scored (RFC 3339).
    pub scored_at: Option<String>,
    /// Its listings, by app id.
    pub listings: Vec<StoreListing>,
}

/// One publisher's listing of an app, as its store card shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreListing {
    /// The app id its manifest names.
    pub app_id: String,
    /// The id it gets on this node (`<id>.<16 hex of the publisher's key>`); `null` when
    /// the publication does not verify.
    pub local_id: Option<String>,
    pub name: String,
    pub version: String,
    /// Unix seconds of the Nostr event.
    pub published_at: i64,
    /// The first paragraph of its description, cut at 240 characters; empty when the
    /// publication does not verify.
    pub summary: String,
    /// `passes`, or why the sandbox policy (or verification) refuses it.
    pub sandbox: String,
    /// Where its files come from (the publisher's origin).
    pub origin: Option<String>,
    /// What it may do on this host, in words; empty when it does not verify.
    pub may: Vec<String>,
    /// `null` when not installed.
    pub installed: Option<StoreInstalled>,
}

/// `POST /v1/catalog/pull`: what the pull did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PullResponse {
    /// In words, for a person.
    pub result: String,
    /// A newer catalog was accepted.
    pub updated: bool,
    /// The catalog version the node holds now.
    pub version: u64,
    /// The version it held before, when it was updated from one.
    pub from: Option<u64>,
    /// Versions accepted without a checked link in the hash chain.
    pub missed: u64,
}
