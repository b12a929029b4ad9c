//! [`check_create`]: a parsed argv against the manifest it was rendered from.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use archy_registry::Manifest;
use archy_registry::manifest::{Container, EnvValue, NetworkMode, PidMode};

use super::{ArgvError, CreateArgs, is_image_id, millicpus, parse_create, parse_tmpfs};
use crate::{LABEL_APP, LABEL_CONTAINER, LABEL_VERSION, TMP_TMPFS};

/// What `create_args` was called with besides the manifest and container.
#[derive(Debug, Clone, Copy)]
pub struct Rendered<'a> {
    pub image: &'a str,
    pub env_file: &'a Path,
    pub publish_address: IpAddr,
}

fn mismatch(what: &str, found: impl fmt::Debug, expected: impl fmt::Debug) -> ArgvError {
    ArgvError::about(
        what,
        format!("the argv says {found:?}, the manifest says {expected:?}"),
    )
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// [`parse_create`], then checks that everything the argv says about the container is
/// exactly what the manifest says (names, labels, env file, secrets, ports, volumes,
/// capabilities, user, network, pid, limits, read-only root and its `/tmp`, image and
/// command), that the hardening flags are there unless the container is privileged
/// (`--cap-drop=ALL`, `--security-opt=no-new-privileges`, [`crate::USERNS`]), and that
/// nothing is there that the manifest does not ask for. The orchestrator runs no
/// `podman create` argv this refuses.
pub fn check_create(
    manifest: &Manifest,
    c: &Container,
    rendered: Rendered<'_>,
    argv: &[String],
) -> Result<CreateArgs, ArgvError> {
    let parsed = parse_create(argv)?;
    let app = manifest.id.as_str();
    let single = |name: &str| parsed.single(name);

    let name = crate::container_name(app, &c.name);
    if single("--name") != Some(name.as_str()) {
        return Err(mismatch("--name", single("--name"), name));
    }

    // Labels: ours exactly once each, with the manifest's values; no other archy.* label.
    let expected_labels = [
        (LABEL_APP, app.to_owned()),
        (LABEL_CONTAINER, c.name.clone()),
        (LABEL_VERSION, manifest.version.to_string()),
    ];
    for (key, value) in &expected_labels {
        let found: Vec<&String> = parsed
            .labels
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect();
        if found != [value] {
            return Err(mismatch(&format!("--label {key}"), found, value));
        }
    }
    if let Some((k, _)) = parsed
        .labels
        .iter()
        .find(|(k, _)| k.starts_with("archy.") && !expected_labels.iter().any(|(e, _)| e == k))
    {
        return Err(ArgvError::about(
            format!("--label {k}"),
            "an archy.* label the orchestrator does not set",
        ));
    }

    let grace = c.stop_grace_seconds.to_string();
    if single("--stop-timeout") != Some(grace.as_str()) {
        return Err(mismatch("--stop-timeout", single("--stop-timeout"), grace));
    }
    let env_file = rendered.env_file.display().to_string();
    if parsed.values("--env-file") != [env_file.as_str()] {
        return Err(mismatch(
            "--env-file",
            parsed.values("--env-file"),
            env_file,
        ));
    }

    // Secrets: one `--secret` per secret-valued env var, as that variable, nothing else.
    let mut expected_secrets: Vec<(String, String)> = c
        .env
        .iter()
        .filter_map(|(key, value)| match value {
            EnvValue::Secret(r) => Some((crate::secret_name(app, &r.secret), key.clone())),
            EnvValue::Plain(_) => None,
        })
        .collect();
    expected_secrets.sort();
    let mut found_secrets = Vec::new();
    for s in &parsed.secrets {
        if s.options.get("type").map(String::as_str) != Some("env") || s.options.len() != 2 {
            return Err(ArgvError::about(
                format!("--secret {}", s.name),
                "must be exactly name,type=env,target=KEY",
            ));
        }
        found_secrets.push((s.name.clone(), s.options["target"].clone()));
    }
    found_secrets.sort();
    if found_secrets != expected_secrets {
        return Err(mismatch("--secret", found_secrets, expected_secrets));
    }

    // Ports.
    let expected_ports = sorted(
        &c.ports
            .iter()
            .map(|p| {
                (
                    Some(rendered.publish_address),
                    p.host,
                    p.container,
                    p.protocol.as_str().to_owned(),
                )
            })
            .collect::<Vec<_>>(),
    );
    let found_ports = sorted(
        &parsed
            .publish
            .iter()
            .map(|p| (p.host_ip, p.host_port, p.container_port, p.protocol.clone()))
            .collect::<Vec<_>>(),
    );
    if found_ports != expected_ports {
        return Err(mismatch("--publish", found_ports, expected_ports));
    }

    // Volumes: the app's named volume at exactly the manifest's path, ro iff read_only.
    let expected_volumes = sorted(
        &c.volumes
            .iter()
            .map(|v| {
                (
                    format!("archy-{app}-{}", v.name),
                    v.path.clone(),
                    v.read_only,
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut found_volumes = Vec::new();
    for v in &parsed.volumes {
        let ro = v.options.iter().any(|o| o == "ro");
        if ro && v.options.iter().any(|o| o == "rw") {
            return Err(ArgvError::about(
                format!("--volume {}", v.source),
                "both ro and rw",
            ));
        }
        found_volumes.push((v.source.clone(), v.destination.clone(), ro));
    }
    let found_volumes = sorted(&found_volumes);
    if found_volumes != expected_volumes {
        return Err(mismatch("--volume", found_volumes, expected_volumes));
    }

    // Privilege and capabilities.
    if parsed.is_set("--privileged") != c.privileged {
        return Err(mismatch(
            "--privileged",
            parsed.is_set("--privileged"),
            c.privileged,
        ));
    }
    let found_caps = sorted(&parsed.cap_add);
    let mut expected_caps = sorted(&c.capabilities);
    expected_caps.dedup();
    if found_caps.windows(2).any(|w| w[0] == w[1]) {
        return Err(ArgvError::about("--cap-add", "a capability is added twice"));
    }
    if !c.privileged && found_caps != expected_caps {
        return Err(mismatch("--cap-add", found_caps, expected_caps));
    }
    if c.privileged && found_caps.iter().any(|cap| !expected_caps.contains(cap)) {
        return Err(mismatch("--cap-add", found_caps, expected_caps));
    }

    // Hardening. Unless the container is privileged: every capability dropped (and only
    // the declared ones added back, above), no privilege gain through setuid binaries, and
    // the user namespace in which container root is not the Podman user. A privileged
    // container keeps Podman's meaning of privileged, so none of these.
    let security_opts = parsed.values("--security-opt");
    let userns = single("--userns");
    if c.privileged {
        if !parsed.cap_drop.is_empty() || !security_opts.is_empty() || userns.is_some() {
            return Err(ArgvError::about(
                "--privileged",
                "a privileged container has no --cap-drop, --security-opt or --userns",
            ));
        }
    } else {
        if parsed.cap_drop != ["ALL"] {
            return Err(mismatch("--cap-drop", &parsed.cap_drop, ["ALL"]));
        }
        if security_opts != ["no-new-privileges"] {
            return Err(mismatch(
                "--security-opt",
                security_opts,
                ["no-new-privileges"],
            ));
        }
        let expected = crate::USERNS.strip_prefix("--userns=");
        if userns != expected {
            return Err(mismatch("--userns", userns, expected));
        }
    }

    // User.
    let found_user = parsed.single("--user");
    if found_user != c.user.as_deref() {
        return Err(mismatch("--user", found_user, &c.user));
    }
    if let (Some(u), Some(user)) = (&parsed.user, &c.user) {
        let back = match &u.group {
            Some(g) => format!("{}:{g}", u.user),
            None => u.user.clone(),
        };
        if &back != user {
            return Err(mismatch("--user (parsed)", back, user));
        }
    }

    // Network and PID namespace.
    let (network, aliases) = match c.network {
        NetworkMode::Host => ("host".to_owned(), vec![]),
        NetworkMode::App => (format!("archy-{app}"), vec![c.name.clone()]),
    };
    if single("--network") != Some(network.as_str()) {
        return Err(mismatch("--network", single("--network"), network));
    }
    if parsed.network_aliases != aliases {
        return Err(mismatch(
            "--network-alias",
            &parsed.network_aliases,
            aliases,
        ));
    }
    let pid = (c.pid == PidMode::Host).then_some("host");
    if single("--pid") != pid {
        return Err(mismatch("--pid", single("--pid"), pid));
    }

    // Read-only root.
    if parsed.is_set("--read-only") != c.read_only_root {
        return Err(mismatch(
            "--read-only",
            parsed.is_set("--read-only"),
            c.read_only_root,
        ));
    }

    // A read-only root gets its `/tmp` (and only that) as a tmpfs.
    let (read_only_tmpfs, tmpfs) = if c.read_only_root {
        let tmp = parse_tmpfs(TMP_TMPFS).map_err(|e| ArgvError::about(TMP_TMPFS, e))?;
        (Some("false"), vec![tmp])
    } else {
        (None, vec![])
    };
    if single("--read-only-tmpfs") != read_only_tmpfs {
        return Err(mismatch(
            "--read-only-tmpfs",
            single("--read-only-tmpfs"),
            read_only_tmpfs,
        ));
    }
    if parsed.tmpfs != tmpfs {
        return Err(mismatch("--tmpfs", &parsed.tmpfs, tmpfs));
    }

    // Resource limits.
    let resources = &manifest.resources;
    let memory = resources.memory_mb.map(|mb| format!("{mb}m"));
    if single("--memory") != memory.as_deref() {
        return Err(mismatch("--memory", single("--memory"), memory));
    }
    let cpus = single("--cpus").and_then(millicpus);
    if cpus != resources.millicpus.map(u64::from) {
        return Err(mismatch("--cpus", single("--cpus"), resources.millicpus));
    }
    let pids = single("--pids-limit");
    match resources.pids_limit {
        Some(p) if pids != Some(p.to_string().as_str()) => {
            return Err(mismatch("--pids-limit", pids, p));
        }
        // The node's default applies; any positive limit is fine, none is not.
        None if pids
            .and_then(|v| v.parse::<u64>().ok())
            .is_none_or(|n| n == 0) =>
        {
            return Err(mismatch("--pids-limit", pids, "the node's default"));
        }
        _ => {}
    }

    // Image and command.
    if parsed.image != rendered.image {
        return Err(mismatch("image", &parsed.image, rendered.image));
    }
    match &c.image.reference {
        Some(reference) if &parsed.image != reference => {
            return Err(mismatch("image", &parsed.image, reference));
        }
        Some(_) => {}
        None if !is_image_id(&parsed.image) => {
            return Err(ArgvError::about(
                parsed.image.clone(),
                "the container's image is an artifact, so it must be the loaded image's id \
                 (64 lowercase hex digits)",
            ));
        }
        None => {}
    }
    if parsed.command != c.command {
        return Err(mismatch("command", &parsed.command, &c.command));
    }
    Ok(parsed)
}
