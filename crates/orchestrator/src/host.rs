//! What the host must offer before an install: free disk and free ports.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use archy_registry::{Manifest, VerifiedManifest};

use crate::{Error, Orchestrator, Result};

impl Orchestrator {
    /// Checks free disk before anything is fetched or created: Podman's image store needs
    /// room to unpack the images next to the manifest's own requirement, and the node's
    /// data dir holds the artifacts.
    pub async fn check_disk(&self, manifest: &VerifiedManifest, artifact_bytes: u64) -> Result<()> {
        const MIB: u64 = 1024 * 1024;
        let graph_root = self.graph_root().to_owned();
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

    pub(crate) fn check_ports_free(&self, manifest: &Manifest) -> Result<()> {
        self.check_ports_free_except(manifest, &[])
    }

    /// Ports the new manifest publishes must be free, but for those `current` holds itself.
    pub(crate) fn check_ports_free_except(
        &self,
        manifest: &Manifest,
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
