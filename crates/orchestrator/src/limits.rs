//! Resource limits: which ones this host's Podman enforces, and which of an app's are not.

use std::fmt;

use archy_registry::manifest::Resources;
use serde::{Deserialize, Serialize};

use crate::HostInfo;

/// Processes (and threads) a container may have when its manifest does not say: room for
/// thread-per-connection servers, not for a fork bomb.
pub const DEFAULT_PIDS_LIMIT: u32 = 2048;

/// Which resource limits Podman enforces for this (rootless) user. Podman accepts every
/// limit flag everywhere and drops what it cannot apply with only a warning on stderr, so
/// the orchestrator decides from `podman info` instead:
/// - cgroup v1, rootless: nothing (Podman: "Resource limits are not supported and ignored
///   on cgroups V1 rootless systems"; measured here on 4.3.1: `--memory 32m --cpus 0.5
///   --pids-limit 50` leave `Memory=0 NanoCpus=0 PidsLimit=0` in `podman inspect`);
/// - cgroup v2 with the `cgroupfs` manager, rootless: nothing either (only systemd can
///   hand a rootless user a cgroup; podman#21575);
/// - cgroup v2 with `systemd`: each limit whose controller (`memory`, `cpu`, `pids`) is
///   delegated to the user (`Host.CgroupControllers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitSupport {
    pub memory: bool,
    pub cpu: bool,
    pub pids: bool,
    /// Why the unenforced ones are not, for the operator; empty when all are enforced.
    pub reason: String,
}

impl LimitSupport {
    pub fn of(host: &HostInfo) -> Self {
        let none = |reason: String| Self {
            memory: false,
            cpu: false,
            pids: false,
            reason,
        };
        if host.cgroup_version != "v2" {
            return none(format!(
                "rootless Podman cannot apply resource limits on cgroup {} (needs cgroup v2 with the systemd cgroup manager)",
                if host.cgroup_version.is_empty() {
                    "of unknown version"
                } else {
                    host.cgroup_version.as_str()
                }
            ));
        }
        if host.cgroup_manager != "systemd" {
            return none(format!(
                "rootless Podman cannot apply resource limits with the {:?} cgroup manager (needs systemd)",
                host.cgroup_manager
            ));
        }
        let has = |c: &str| host.cgroup_controllers.iter().any(|h| h == c);
        let (memory, cpu, pids) = (has("memory"), has("cpu"), has("pids"));
        let missing: Vec<&str> = [("memory", memory), ("cpu", cpu), ("pids", pids)]
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(c, _)| c)
            .collect();
        let reason = if missing.is_empty() {
            String::new()
        } else {
            format!(
                "the {} cgroup controller(s) are not delegated to the Podman user (systemd Delegate=)",
                missing.join(", ")
            )
        };
        Self {
            memory,
            cpu,
            pids,
            reason,
        }
    }

    /// The limits `resources` asks for (and the default pids limit) that this host does not
    /// enforce: each one for the node to show at install and in `archy status`.
    pub fn unenforced(&self, resources: &Resources) -> Vec<UnenforcedLimit> {
        let mut out = Vec::new();
        let mut note = |kind, value: String, declared, enforced: bool| {
            if !enforced {
                out.push(UnenforcedLimit {
                    kind,
                    value,
                    declared,
                    reason: self.reason.clone(),
                });
            }
        };
        if let Some(mb) = resources.memory_mb {
            note(LimitKind::Memory, format!("{mb} MiB"), true, self.memory);
        }
        if let Some(m) = resources.millicpus {
            note(LimitKind::Cpu, format!("{} CPU", cpus(m)), true, self.cpu);
        }
        let (pids, declared) = match resources.pids_limit {
            Some(p) => (p, true),
            None => (DEFAULT_PIDS_LIMIT, false),
        };
        note(
            LimitKind::Pids,
            format!("{pids} processes"),
            declared,
            self.pids,
        );
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKind {
    Memory,
    Cpu,
    Pids,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Memory => "memory",
            LimitKind::Cpu => "cpu",
            LimitKind::Pids => "pids",
        }
    }
}

/// A limit an app's containers are created with that Podman will not enforce here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnenforcedLimit {
    pub kind: LimitKind,
    /// The limit in words: `32 MiB`, `0.5 CPU`, `2048 processes`.
    pub value: String,
    /// From the manifest (`false`: the node's default pids limit).
    pub declared: bool,
    pub reason: String,
}

impl fmt::Display for UnenforcedLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} limit of {}{} is not enforced: {}",
            self.kind.as_str(),
            self.value,
            if self.declared { "" } else { " (default)" },
            self.reason
        )
    }
}

/// `--cpus` from thousandths of a CPU: 500 → `0.5`, 1000 → `1`, 1250 → `1.25`.
pub fn cpus(millicpus: u32) -> String {
    let whole = millicpus / 1000;
    let frac = millicpus % 1000;
    if frac == 0 {
        whole.to_string()
    } else {
        let digits = format!("{frac:03}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(version: &str, manager: &str, controllers: &[&str]) -> HostInfo {
        HostInfo {
            rootless: true,
            cgroup_version: version.into(),
            cgroup_manager: manager.into(),
            cgroup_controllers: controllers.iter().map(|c| c.to_string()).collect(),
            ..HostInfo::default()
        }
    }

    #[test]
    fn cgroup_v1_rootless_enforces_nothing() {
        // What this project's test host reports (Podman 4.3.1, Debian).
        let limits = LimitSupport::of(&host("v1", "cgroupfs", &[]));
        assert!(!limits.memory && !limits.cpu && !limits.pids);
        assert!(limits.reason.contains("cgroup v1"), "{}", limits.reason);
        let resources = Resources {
            memory_mb: Some(32),
            millicpus: Some(500),
            ..Resources::default()
        };
        let warned: Vec<String> = limits
            .unenforced(&resources)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(warned.len(), 3, "{warned:?}");
        assert!(warned[0].starts_with("memory limit of 32 MiB is not enforced: "));
        assert!(warned[1].starts_with("cpu limit of 0.5 CPU is not enforced"));
        assert!(warned[2].starts_with("pids limit of 2048 processes (default) is not enforced"));
    }

    #[test]
    fn cgroup_v2_needs_systemd_and_delegated_controllers() {
        let cgroupfs = LimitSupport::of(&host("v2", "cgroupfs", &["memory", "pids"]));
        assert!(!cgroupfs.memory && !cgroupfs.pids);
        let partial = LimitSupport::of(&host("v2", "systemd", &["memory", "pids"]));
        assert!(partial.memory && partial.pids && !partial.cpu);
        assert!(partial.reason.contains("cpu"));
        let resources = Resources {
            memory_mb: Some(64),
            millicpus: Some(250),
            pids_limit: Some(100),
            ..Resources::default()
        };
        let unenforced = partial.unenforced(&resources);
        assert_eq!(unenforced.len(), 1);
        assert_eq!(unenforced[0].kind, LimitKind::Cpu);
        let full = LimitSupport::of(&host("v2", "systemd", &["cpu", "memory", "pids"]));
        assert!(full.reason.is_empty());
        assert!(full.unenforced(&resources).is_empty());
    }

    #[test]
    fn millicpus_render_as_decimal_cpus() {
        assert_eq!(cpus(500), "0.5");
        assert_eq!(cpus(1000), "1");
        assert_eq!(cpus(1250), "1.25");
        assert_eq!(cpus(1), "0.001");
        assert_eq!(cpus(2010), "2.01");
    }
}
