//! Manifest into Podman's terms: the `podman create` argv of each container
//! ([`create_args`], the one place that renders it), what an install would run for
//! developers ([`render`]), the names of the app's Podman objects, and the check every
//! argv passes before it runs ([`check_argv`], by [`crate::argv_check`]).

use std::net::IpAddr;
use std::path::Path;

use archy_registry::manifest::{Container, EnvValue, NetworkMode, PidMode};

use crate::argv_check::{self, Rendered};
use crate::limits::{self, DEFAULT_PIDS_LIMIT};
use crate::runtime::CreateSpec;
use crate::{
    Error, LABEL_APP, LABEL_CONTAINER, LABEL_VERSION, Result, TMP_TMPFS, USERNS, container_name,
    secrets,
};

/// The app's network: `archy-<app>`.
pub(crate) fn network_name(app: &str) -> String {
    format!("archy-{app}")
}

/// One of the app's named volumes: `archy-<app>-<volume>`.
pub(crate) fn volume_name(app: &str, volume: &str) -> String {
    format!("archy-{app}-{volume}")
}

/// A host address as `--publish` (and an HTTP `Host` header) needs it: IPv6 in brackets,
/// since Podman splits `--publish` at ':' (`::1:18080:8080/tcp` is refused, measured on
/// 4.3.1: "invalid port format").
pub(crate) fn publish_host(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Checks an argv [`create_args`] rendered for `c` with [`argv_check::check_create`]: read
/// the way Podman reads it, it must say exactly what the manifest says, with the hardening
/// flags unless the container is privileged. Every argv the orchestrator runs, and every
/// manifest before anything is done in Podman ([`crate::preflight`]), passes here; what
/// passes becomes the [`CreateSpec`], the only thing a [`crate::Runtime`] creates
/// containers from.
pub(crate) fn check_argv(
    manifest: &archy_registry::Manifest,
    c: &Container,
    rendered: Rendered<'_>,
    argv: Vec<String>,
) -> Result<CreateSpec> {
    match argv_check::check_create(manifest, c, rendered, &argv) {
        Ok(parsed) => Ok(CreateSpec::checked(
            container_name(&manifest.id, &c.name),
            argv,
            parsed,
        )),
        Err(e) => Err(Error::UnsafeArgument {
            container: c.name.clone(),
            reason: e.to_string(),
        }),
    }
}

/// The `podman create` arguments for one container of a manifest: the single place that
/// turns the manifest into Podman's terms (used to act, and to render for developers).
///
/// Containers are hardened the way a careful operator runs them by hand: every capability
/// dropped and only the declared ones added back, no privilege gain through setuid
/// binaries, their own user namespace ([`USERNS`]) so root inside is not the Podman user,
/// a pids limit, and a read-only root when the manifest says the app copes. A privileged
/// container (first-party only: the sandbox policy refuses it to third parties) keeps
/// Podman's meaning of privileged: all capabilities, and root inside is the Podman user,
/// since what such a container is for (managing the host as that user) needs exactly that.
/// Resource limits apply to every container.
pub fn create_args(
    manifest: &archy_registry::Manifest,
    c: &Container,
    image: &str,
    env_file: &Path,
    publish_address: IpAddr,
) -> Vec<String> {
    let app = manifest.id.as_str();
    let mut args: Vec<String> = vec![
        "create".into(),
        "--name".into(),
        container_name(app, &c.name),
        "--label".into(),
        format!("{LABEL_APP}={app}"),
        "--label".into(),
        format!("{LABEL_CONTAINER}={}", c.name),
        "--label".into(),
        format!("{LABEL_VERSION}={}", manifest.version),
        "--stop-timeout".into(),
        c.stop_grace_seconds.to_string(),
        "--env-file".into(),
        env_file.display().to_string(),
    ];
    for (key, value) in &c.env {
        if let EnvValue::Secret(r) = value {
            args.push("--secret".into());
            args.push(format!(
                "{},type=env,target={key}",
                secrets::podman_name(app, &r.secret)
            ));
        }
    }
    for p in &c.ports {
        args.push("--publish".into());
        args.push(format!(
            "{}:{}:{}/{}",
            publish_host(publish_address),
            p.host,
            p.container,
            p.protocol.as_str()
        ));
    }
    for v in &c.volumes {
        // `U`: Podman chowns the volume to the container's user, so an image running
        // as a non-root uid can write its own data in a rootless container.
        args.push("--volume".into());
        args.push(format!(
            "{}:{}:{}U",
            volume_name(app, &v.name),
            v.path,
            if v.read_only { "ro," } else { "" }
        ));
    }
    if c.privileged {
        args.push("--privileged".into());
    } else {
        args.push("--cap-drop=ALL".into());
        for cap in &c.capabilities {
            args.push("--cap-add".into());
            args.push(cap.clone());
        }
        args.push("--security-opt=no-new-privileges".into());
        args.push(USERNS.into());
    }
    if let Some(user) = &c.user {
        args.push("--user".into());
        args.push(user.clone());
    }
    match c.network {
        NetworkMode::Host => args.push("--network=host".into()),
        // The app's own network: its containers reach each other by container name.
        NetworkMode::App => {
            args.push(format!("--network={}", network_name(app)));
            args.push(format!("--network-alias={}", c.name));
        }
    }
    if c.pid == PidMode::Host {
        args.push("--pid=host".into());
    }
    if c.read_only_root {
        args.push("--read-only".into());
        args.push("--read-only-tmpfs=false".into());
        args.push("--tmpfs".into());
        args.push(TMP_TMPFS.into());
    }
    let resources = &manifest.resources;
    args.push("--pids-limit".into());
    args.push(
        resources
            .pids_limit
            .unwrap_or(DEFAULT_PIDS_LIMIT)
            .to_string(),
    );
    if let Some(mb) = resources.memory_mb {
        args.push("--memory".into());
        args.push(format!("{mb}m"));
    }
    if let Some(m) = resources.millicpus.filter(|m| *m > 0) {
        args.push("--cpus".into());
        args.push(limits::cpus(m));
    }
    // Options end here: the image and the command can never be read as options.
    args.push("--".into());
    args.push(image.to_owned());
    args.extend(c.command.iter().cloned());
    args
}

/// What installing `manifest` would run, as shell-like lines, for `archy app render`.
/// Image ids are only known after `podman load`, so images show as `<artifact:NAME>`.
pub fn render(manifest: &archy_registry::Manifest, publish_address: IpAddr) -> Vec<String> {
    let app = manifest.id.as_str();
    let mut lines = Vec::new();
    if manifest
        .containers
        .iter()
        .any(|c| c.network == NetworkMode::App)
    {
        lines.push(format!(
            "podman network create --label {LABEL_APP}={app} -- {}",
            network_name(app)
        ));
    }
    for c in &manifest.containers {
        for v in &c.volumes {
            lines.push(format!(
                "podman volume create --label {LABEL_APP}={app} -- {}",
                volume_name(app, &v.name)
            ));
        }
    }
    let order = manifest.start_order().unwrap_or_default();
    for c in &manifest.containers {
        let image = match (&c.image.artifact, &c.image.reference) {
            (Some(a), _) => format!("<artifact:{a}>"),
            (None, Some(r)) => r.clone(),
            (None, None) => "<no image>".into(),
        };
        let env_file = Path::new("<data>/apps")
            .join(app)
            .join("env")
            .join(format!("{}.env", c.name));
        let args = create_args(manifest, c, &image, &env_file, publish_address);
        lines.push(format!("podman {}", shell_words(&args)));
    }
    for c in order {
        // Names are `archy-…`, never option-like; crates/node/tests/cli.rs expects this form.
        lines.push(format!("podman start {}", container_name(app, &c.name)));
    }
    lines
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=:./<>,@".contains(c))
                && !a.is_empty()
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
