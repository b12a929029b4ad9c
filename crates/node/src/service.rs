//! systemd units that bring a node back after a reboot: the Podman user's API service
//! (`archy-podman.service`) and the node (`archy-node.service`), which starts after it.
//! Rendered here, written by `archy node install-service`. Only std: the rendering is plain
//! text and its tests need no system.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Name of the pod that keeps the rootless network namespace up (see
/// `scripts/setup-podman.sh`, step 8: without it every teardown of that namespace leaves a
/// zombie slirp4netns under the API service).
pub const NETNS_KEEPER: &str = "archy-netns-keeper";

/// What the units need to know about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitConfig {
    /// The `archy` binary, absolute.
    pub archy: PathBuf,
    /// The node's config file (`archy node run --config <path>`), absolute.
    pub config: PathBuf,
    /// The node's data dir (the one writable path the node gets), absolute.
    pub data_dir: PathBuf,
    /// The user the node runs as. It must be able to open the Podman socket, which lives
    /// in the Podman user's 0700 runtime dir: the Podman user itself (the default) or root.
    pub node_user: String,
    /// The unprivileged user owning rootless Podman (`scripts/setup-podman.sh` makes it).
    pub podman_user: String,
    pub podman_uid: u32,
    /// The Podman user's home (its container storage is under it).
    pub podman_home: PathBuf,
    /// The `podman` binary, absolute.
    pub podman: PathBuf,
}

impl UnitConfig {
    /// The defaults of this project's hosts for `podman_user`, looked up in /etc/passwd:
    /// the node runs as that user, podman is /usr/bin/podman. `None` when there is no such user.
    pub fn for_podman_user(
        podman_user: &str,
        archy: PathBuf,
        config: PathBuf,
        data_dir: PathBuf,
    ) -> Option<Self> {
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        let (uid, home) = passwd_entry(&passwd, podman_user)?;
        Some(Self {
            archy,
            config,
            data_dir,
            node_user: podman_user.to_owned(),
            podman_user: podman_user.to_owned(),
            podman_uid: uid,
            podman_home: home,
            podman: PathBuf::from("/usr/bin/podman"),
        })
    }

    /// `/run/user/<uid>`: what logind would make, made by systemd here.
    pub fn runtime_dir(&self) -> String {
        format!("/run/user/{}", self.podman_uid)
    }

    /// The URL the node's `podman_url` must name.
    pub fn podman_url(&self) -> String {
        format!("unix://{}/podman.sock", self.runtime_dir())
    }
}

/// The uid and home of `user` in an /etc/passwd text.
fn passwd_entry(passwd: &str, user: &str) -> Option<(u32, PathBuf)> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[0] == user)
            .then(|| Some((fields[2].parse().ok()?, PathBuf::from(fields[5]))))
            .flatten()
    })
}

/// The unit files, `(file name, contents)`: `archy-podman.service`, `archy-node.service`.
pub fn units(config: &UnitConfig) -> Vec<(String, String)> {
    vec![
        ("archy-podman.service".to_owned(), podman_unit(config)),
        ("archy-node.service".to_owned(), node_unit(config)),
    ]
}

/// Writes `units` into `dir` (e.g. /etc/systemd/system), 0644 each; returns the paths.
/// Then: `systemctl daemon-reload && systemctl enable --now archy-node.service`.
pub fn write_units(dir: &Path, units: &[(String, String)]) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, contents) in units {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, &path)?;
        written.push(path);
    }
    Ok(written)
}

/// systemd quotes: a word with anything but plain path characters goes in double quotes.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@,".contains(c))
    {
        word.to_owned()
    } else {
        let escaped = word
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "$$")
            .replace('%', "%%");
        format!("\"{escaped}\"")
    }
}

fn path(p: &Path) -> String {
    quote(&p.display().to_string())
}

fn podman_unit(c: &UnitConfig) -> String {
    let run = c.runtime_dir();
    let url = c.podman_url();
    let podman = path(&c.podman);
    let remote = format!("{podman} --remote --url {url}");
    let mut u = String::new();
    let _ = writeln!(
        u,
        "# Written by `archy node install-service`.\n\
         [Unit]\n\
         Description=Archipelago: rootless Podman API service of {user}\n\
         Documentation=man:podman-system-service(1)\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         User={user}\n\
         Group={user}\n\
         # /run/user/<uid>, 0700, owned by the user, as logind would make it (no login here).\n\
         # Kept across restarts of this unit: the socket and Podman's runtime state live there.\n\
         RuntimeDirectory=user/{uid}\n\
         RuntimeDirectoryMode=0700\n\
         RuntimeDirectoryPreserve=yes\n\
         Environment=XDG_RUNTIME_DIR={run}\n\
         Environment=HOME={home}\n\
         WorkingDirectory={home}\n\
         # A socket left by a service that died would make the new one fail to bind.\n\
         ExecStartPre=/bin/rm -f {run}/podman.sock\n\
         ExecStart={podman} system service --time=0 {url}\n\
         # Keep the rootless network namespace up (no zombie slirp4netns per teardown).\n\
         ExecStartPost=-/bin/sh -c 'for i in $$(seq 60); do {remote} info >/dev/null 2>&1 && break; sleep 0.5; done; \
         {remote} pod exists {keeper} || {remote} pod create --name {keeper} --label archy.infra=netns --network podman; \
         {remote} pod start {keeper}'\n\
         # As Podman's own unit: containers (under conmon) outlive a restart of the API service.\n\
         KillMode=process\n\
         Delegate=yes\n\
         Restart=on-failure\n\
         RestartSec=2s\n\
         TimeoutStopSec=30s\n\
         # Hardening that rootless Podman tolerates. Not set, and why: NoNewPrivileges (the\n\
         # setuid newuidmap/newgidmap map the user namespace), ProtectKernelTunables (Podman\n\
         # sets sysctls inside the rootless network namespace), ProtectHome (storage is in the\n\
         # user's home), PrivateDevices (/dev/net/tun, /dev/fuse).\n\
         ProtectSystem=full\n\
         ProtectKernelModules=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         RestrictRealtime=yes\n\
         LockPersonality=yes\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target",
        user = c.podman_user,
        uid = c.podman_uid,
        home = path(&c.podman_home),
        keeper = NETNS_KEEPER,
    );
    u
}

fn node_unit(c: &UnitConfig) -> String {
    let run = c.runtime_dir();
    let same_user = c.node_user == c.podman_user;
    let mut u = String::new();
    let _ = writeln!(
        u,
        "# Written by `archy node install-service`.\n\
         [Unit]\n\
         Description=Archipelago node (archy)\n\
         Requires=archy-podman.service\n\
         After=archy-podman.service network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         User={user}\n\
         ExecStart={archy} node run --config {config}\n\
         Restart=on-failure\n\
         RestartSec=5s\n\
         # The node stops apps' event streams and closes sqlite on SIGTERM; apps keep running.\n\
         KillMode=mixed\n\
         TimeoutStopSec=30s\n\
         UMask=0077",
        user = c.node_user,
        archy = path(&c.archy),
        config = path(&c.config),
    );
    if same_user {
        let _ = writeln!(u, "Environment=XDG_RUNTIME_DIR={run}");
    }
    let _ = writeln!(
        u,
        "# Hardening: the node talks to the Podman socket, serves HTTP and iroh (UDP), and\n\
         # writes its data dir only; its podman clients need no privilege.\n\
         NoNewPrivileges=yes\n\
         CapabilityBoundingSet=\n\
         ProtectSystem=strict\n\
         ReadWritePaths={data}\n\
         ReadWritePaths=-{run}\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
         RestrictNamespaces=yes\n\
         RestrictRealtime=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         MemoryDenyWriteExecute=yes\n\
         SystemCallArchitectures=native\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target",
        data = path(&c.data_dir),
    );
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> UnitConfig {
        UnitConfig {
            archy: "/usr/local/bin/archy".into(),
            config: "/etc/archy/node.toml".into(),
            data_dir: "/var/lib/archy".into(),
            node_user: "archy-podman".into(),
            podman_user: "archy-podman".into(),
            podman_uid: 1001,
            podman_home: "/home/archy-podman".into(),
            podman: "/usr/bin/podman".into(),
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    fn unit<'a>(units: &'a [(String, String)], name: &str) -> &'a str {
        &units.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn two_units_the_node_after_podman() {
        let units = units(&config());
        let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["archy-podman.service", "archy-node.service"]);
        let node = lines(unit(&units, "archy-node.service"));
        for line in [
            "Requires=archy-podman.service",
            "After=archy-podman.service network-online.target",
            "ExecStart=/usr/local/bin/archy node run --config /etc/archy/node.toml",
            "Restart=on-failure",
            "User=archy-podman",
            "Environment=XDG_RUNTIME_DIR=/run/user/1001",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/archy",
            "WantedBy=multi-user.target",
        ] {
            assert!(
                node.contains(&line),
                "{line:?} missing from archy-node.service"
            );
        }
    }

    #[test]
    fn podman_runs_as_its_user_with_a_private_runtime_dir() {
        let units = units(&config());
        let podman = lines(unit(&units, "archy-podman.service"));
        for line in [
            "User=archy-podman",
            "Group=archy-podman",
            "RuntimeDirectory=user/1001",
            "RuntimeDirectoryMode=0700",
            "Environment=XDG_RUNTIME_DIR=/run/user/1001",
            "ExecStart=/usr/bin/podman system service --time=0 unix:///run/user/1001/podman.sock",
            "Restart=on-failure",
            "KillMode=process",
            "WantedBy=multi-user.target",
        ] {
            assert!(
                podman.contains(&line),
                "{line:?} missing from archy-podman.service"
            );
        }
        // Rootless Podman needs the setuid uid mappers: no NoNewPrivileges for it.
        assert!(!podman.iter().any(|l| l.starts_with("NoNewPrivileges")));
        let keeper = podman
            .iter()
            .find(|l| l.starts_with("ExecStartPost=-"))
            .unwrap();
        assert!(keeper.contains("pod start archy-netns-keeper"), "{keeper}");
        assert!(
            keeper.contains("$$(seq 60)"),
            "shell $ escaped for systemd: {keeper}"
        );
    }

    #[test]
    fn every_line_is_a_section_a_comment_or_a_setting() {
        for (name, text) in units(&config()) {
            for line in text.lines() {
                assert!(
                    line.is_empty()
                        || line.starts_with('#')
                        || (line.starts_with('[') && line.ends_with(']'))
                        || line.split_once('=').is_some_and(|(k, _)| {
                            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric())
                        }),
                    "{name}: {line:?}"
                );
            }
        }
    }

    #[test]
    fn odd_paths_are_quoted_and_another_node_user_gets_no_podman_env() {
        let mut c = config();
        c.config = "/etc/my archy/node $1.toml".into();
        c.node_user = "root".into();
        let units = units(&c);
        let node = unit(&units, "archy-node.service");
        assert!(
            node.contains(r#"--config "/etc/my archy/node $$1.toml""#),
            "{node}"
        );
        assert!(!node.contains("XDG_RUNTIME_DIR"));
        assert!(node.contains("User=root"));
    }

    #[test]
    fn users_come_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      archy-podman:x:1001:1001::/home/archy-podman:/usr/sbin/nologin\n";
        assert_eq!(
            passwd_entry(passwd, "archy-podman"),
            Some((1001, PathBuf::from("/home/archy-podman")))
        );
        assert_eq!(passwd_entry(passwd, "nobody"), None);
    }

    #[test]
    fn units_are_written_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("archy-units-{}", std::process::id()));
        let written = write_units(&dir, &units(&config())).unwrap();
        assert_eq!(written.len(), 2);
        for p in &written {
            let mode = std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
