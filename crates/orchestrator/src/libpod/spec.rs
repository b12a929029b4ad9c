//! A checked [`CreateSpec`] as libpod's `SpecGenerator` (the JSON body of `POST
//! /libpod/containers/create`), field for field what the Podman 4.3 CLI sends for the same
//! argv (`pkg/specgenutil` of v4.3.1). It is built from [`CreateSpec::parsed`], the argv as
//! the checker read it, and every option is translated or the create is refused: nothing the
//! argv says is dropped on the way, and nothing is added that it does not say.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::argv_check::millicpus;
use crate::runtime::CreateSpec;
use crate::{Error, Result};

/// The most an env file may hold (the orchestrator writes them; a few KiB).
const ENV_FILE_MAX: u64 = 1024 * 1024;

/// The `SpecGenerator` of `spec`; `env_file` reads the file `--env-file` names.
pub(crate) fn spec_generator(
    spec: &CreateSpec,
    env_file: impl Fn(&Path) -> Result<BTreeMap<String, String>>,
) -> Result<Value> {
    let parsed = spec.parsed();
    let refuse = |reason: String| Error::UnsafeArgument {
        container: spec.name().to_owned(),
        reason: format!("{reason} (cannot be said to Podman's REST API)"),
    };
    let mut g = serde_json::Map::new();
    let mut env = BTreeMap::new();
    let mut secret_env = BTreeMap::new();
    let mut limits = serde_json::Map::new();
    let mut no_new_privileges = false;
    let mut userns: Option<&str> = None;
    let mut network: Option<&str> = None;
    for flag in &parsed.flags {
        let value = flag.value.as_str();
        match flag.name {
            // Read from the parsed form below (each also a flag here).
            "--name" | "--label" | "--publish" | "--volume" | "--cap-drop" | "--cap-add"
            | "--network-alias" | "--user" | "--secret" | "--tmpfs" => {}
            "--stop-timeout" => {
                let t: u32 = value
                    .parse()
                    .map_err(|_| refuse(format!("--stop-timeout {value:?}")))?;
                g.insert("stop_timeout".into(), json!(t));
            }
            "--env-file" => env.extend(env_file(Path::new(value))?),
            "--security-opt" => match value {
                "no-new-privileges" | "no-new-privileges=true" => no_new_privileges = true,
                other => return Err(refuse(format!("--security-opt {other:?}"))),
            },
            "--userns" => userns = Some(value),
            "--privileged" => {
                g.insert("privileged".into(), json!(value == "true"));
            }
            "--network" => network = Some(value),
            "--pid" => match value {
                "host" => {
                    g.insert("pidns".into(), json!({ "nsmode": "host" }));
                }
                other => return Err(refuse(format!("--pid {other:?}"))),
            },
            "--read-only" => {
                g.insert("read_only_filesystem".into(), json!(value == "true"));
            }
            // Podman's extra tmpfs mounts of a read-only root, added by the CLI itself
            // (`parseVolumes(…, ReadOnlyTmpFS && ReadOnly)`): only `false` is rendered.
            "--read-only-tmpfs" if value == "false" => {}
            "--pids-limit" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| refuse(format!("--pids-limit {value:?}")))?;
                limits.insert("pids".into(), json!({ "limit": n }));
            }
            "--memory" => {
                let mb: i64 = value
                    .strip_suffix('m')
                    .and_then(|mb| mb.parse().ok())
                    .ok_or_else(|| refuse(format!("--memory {value:?}")))?;
                let bytes = mb * 1024 * 1024;
                // The CLI: without --memory-swap, swap is twice the memory.
                limits.insert(
                    "memory".into(),
                    json!({ "limit": bytes, "swap": 2 * bytes }),
                );
            }
            "--cpus" => {
                let m = millicpus(value).ok_or_else(|| refuse(format!("--cpus {value:?}")))?;
                // The CLI: a 100 ms period, the quota that many CPUs of it.
                limits.insert(
                    "cpu".into(),
                    json!({ "period": 100_000u64, "quota": m * 100 }),
                );
            }
            other => return Err(refuse(format!("option {other}={value:?}"))),
        }
    }
    g.insert("name".into(), json!(spec.name()));
    g.insert("image".into(), json!(parsed.image));
    if !parsed.command.is_empty() {
        g.insert("command".into(), json!(parsed.command));
    }
    let labels: BTreeMap<&str, &str> = parsed
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    g.insert("labels".into(), json!(labels));
    for s in &parsed.secrets {
        let target = match (
            s.options.get("type").map(String::as_str),
            s.options.get("target"),
        ) {
            (Some("env"), Some(target)) if s.options.len() == 2 => target,
            _ => return Err(refuse(format!("--secret {} {:?}", s.name, s.options))),
        };
        secret_env.insert(target.clone(), s.name.clone());
    }
    if !env.is_empty() {
        g.insert("env".into(), json!(env));
    }
    if !secret_env.is_empty() {
        g.insert("secret_env".into(), json!(secret_env));
    }
    let ports: Vec<Value> = parsed
        .publish
        .iter()
        .map(|p| {
            json!({
                "host_ip": p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                "host_port": p.host_port,
                "container_port": p.container_port,
                "protocol": p.protocol,
                "range": 1,
            })
        })
        .collect();
    if !ports.is_empty() {
        g.insert("portmappings".into(), json!(ports));
    }
    let volumes: Vec<Value> = parsed
        .volumes
        .iter()
        .map(|v| json!({ "Name": v.source, "Dest": v.destination, "Options": v.options }))
        .collect();
    if !volumes.is_empty() {
        g.insert("volumes".into(), json!(volumes));
    }
    let mounts: Vec<Value> = parsed
        .tmpfs
        .iter()
        .map(|t| {
            json!({ "destination": t.path, "type": "tmpfs", "source": "tmpfs", "options": t.options })
        })
        .collect();
    if !mounts.is_empty() {
        g.insert("mounts".into(), json!(mounts));
    }
    if !parsed.cap_drop.is_empty() {
        g.insert("cap_drop".into(), json!(parsed.cap_drop));
    }
    if !parsed.cap_add.is_empty() {
        g.insert("cap_add".into(), json!(parsed.cap_add));
    }
    if no_new_privileges {
        g.insert("no_new_privileges".into(), json!(true));
    }
    // The CLI's `ParseUserNamespace` and `ParseIDMapping`: `nomap` is the mode `no-map`
    // (the `nomap` spelling is refused by the API: "invalid namespace type") and maps
    // neither the host's uid nor its gid; no --userns keeps Podman's default namespace.
    match userns {
        Some("nomap") => {
            g.insert("userns".into(), json!({ "nsmode": "no-map" }));
            g.insert(
                "idmappings".into(),
                json!({ "HostUIDMapping": false, "HostGIDMapping": false }),
            );
        }
        None => {
            g.insert(
                "idmappings".into(),
                json!({ "HostUIDMapping": true, "HostGIDMapping": true }),
            );
        }
        Some(other) => return Err(refuse(format!("--userns {other:?}"))),
    }
    if let Some(user) = &parsed.user {
        let user = match &user.group {
            Some(group) => format!("{}:{group}", user.user),
            None => user.user.clone(),
        };
        g.insert("user".into(), json!(user));
    }
    match network {
        Some("host") => {
            if !parsed.network_aliases.is_empty() {
                return Err(refuse("--network-alias with --network=host".into()));
            }
            g.insert("netns".into(), json!({ "nsmode": "host" }));
        }
        Some(name) if !name.is_empty() && !name.contains([':', '/', ',']) => {
            g.insert("netns".into(), json!({ "nsmode": "bridge" }));
            g.insert(
                "Networks".into(),
                json!({ name: { "aliases": parsed.network_aliases } }),
            );
        }
        Some(other) => return Err(refuse(format!("--network {other:?}"))),
        None => {
            if !parsed.network_aliases.is_empty() {
                return Err(refuse("--network-alias without --network".into()));
            }
        }
    }
    if !limits.is_empty() {
        g.insert("resource_limits".into(), Value::Object(limits));
    }
    // The CLI's default `--sdnotify=container` (the container's own sd_notify, if any,
    // goes nowhere the node does not expect).
    g.insert("sdnotifyMode".into(), json!("container"));
    // The CLI's annotation of a container without a terminal.
    g.insert(
        "annotations".into(),
        json!({ "io.kubernetes.cri-o.TTY": "false" }),
    );
    // What `podman inspect` shows as the create command: the argv that was checked.
    let mut command = vec!["podman".to_owned()];
    command.extend(spec.argv().iter().cloned());
    g.insert("containerCreateCommand".into(), json!(command));
    Ok(Value::Object(g))
}

/// An env file the orchestrator wrote (`KEY=VALUE` lines), read as Podman's `ParseFile`
/// reads it, except that a line without `=` (which Podman fills from its own process
/// environment) is refused.
pub(crate) fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>> {
    use std::io::Read;
    let io = |source| Error::Io {
        what: "reading env file",
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(ENV_FILE_MAX + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > ENV_FILE_MAX {
        return Err(Error::Engine(format!(
            "env file {} is larger than {ENV_FILE_MAX} bytes",
            path.display()
        )));
    }
    let mut env = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            Error::Engine(format!(
                "env file {}: a line without '=' (would be taken from Podman's environment)",
                path.display()
            ))
        })?;
        let key = key.trim_start_matches([' ', '\t', '\n']);
        if key.is_empty() || key.contains([' ', '\t']) {
            return Err(Error::Engine(format!(
                "env file {}: the key {key:?} is not a variable name",
                path.display()
            )));
        }
        env.insert(key.to_owned(), value.to_owned());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use archy_registry::manifest::{EnvValue, SecretRef, SecretSpec, Volume};

    use super::*;
    use crate::argv_check::Rendered;
    use crate::render::{check_argv, create_args};

    fn hello() -> archy_registry::Manifest {
        let yaml = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../apps/hello/manifest.yml"
        ))
        .unwrap();
        archy_registry::Manifest::from_yaml(&yaml).unwrap()
    }

    fn spec_of(m: &archy_registry::Manifest) -> CreateSpec {
        let c = &m.containers[0];
        let image = "f".repeat(64);
        let env_file = Path::new("/data/apps/hello/env/web.env");
        let address = IpAddr::from([127, 0, 0, 1]);
        let args = create_args(m, c, &image, env_file, address);
        let rendered = Rendered {
            image: &image,
            env_file,
            publish_address: address,
        };
        check_argv(m, c, rendered, args).unwrap()
    }

    fn env(_: &Path) -> Result<BTreeMap<String, String>> {
        Ok([("GREETING".to_owned(), "hi there".to_owned())].into())
    }

    /// Every security-relevant field of the argv, in the request: caps, no new privileges,
    /// the user namespace, read-only root and its one tmpfs, volumes by name only, ports on
    /// the rendered address, limits, secrets by reference, the image by id, the labels.
    #[test]
    fn the_spec_generator_says_what_the_checked_argv_says() {
        let mut m = hello();
        m.secrets.push(SecretSpec {
            name: "token".into(),
            length: 32,
        });
        let c = &mut m.containers[0];
        c.env.insert(
            "TOKEN".into(),
            EnvValue::Secret(SecretRef {
                secret: "token".into(),
            }),
        );
        c.capabilities = vec!["NET_BIND_SERVICE".into()];
        c.read_only_root = true;
        c.user = Some("1000:1000".into());
        c.volumes.push(Volume {
            name: "data".into(),
            path: "/data".into(),
            read_only: false,
        });
        m.resources.millicpus = Some(500);
        let g = spec_generator(&spec_of(&m), env).unwrap();
        let expect = json!({
            "name": "archy-hello-web",
            "image": "f".repeat(64),
            "labels": {"archy.app": "hello", "archy.container": "web", "archy.version": "1.0.0"},
            "stop_timeout": 5,
            "env": {"GREETING": "hi there"},
            "secret_env": {"TOKEN": "archy-hello-token"},
            "portmappings": [{"host_ip": "127.0.0.1", "host_port": 18080, "container_port": 8080, "protocol": "tcp", "range": 1}],
            "volumes": [{"Name": "archy-hello-data", "Dest": "/data", "Options": ["U"]}],
            "mounts": [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "nosuid", "nodev", "mode=1777"]}],
            "cap_drop": ["ALL"],
            "cap_add": ["NET_BIND_SERVICE"],
            "no_new_privileges": true,
            "userns": {"nsmode": "no-map"},
            "idmappings": {"HostUIDMapping": false, "HostGIDMapping": false},
            "user": "1000:1000",
            "read_only_filesystem": true,
            "sdnotifyMode": "container",
            "annotations": {"io.kubernetes.cri-o.TTY": "false"},
            "netns": {"nsmode": "bridge"},
            "Networks": {"archy-hello": {"aliases": ["web"]}},
            "resource_limits": {
                "pids": {"limit": crate::DEFAULT_PIDS_LIMIT},
                "memory": {"limit": 32 * 1024 * 1024, "swap": 64 * 1024 * 1024},
                "cpu": {"period": 100_000, "quota": 50_000}
            },
        });
        let mut without_command = g.clone();
        let command = without_command
            .as_object_mut()
            .unwrap()
            .remove("containerCreateCommand")
            .unwrap();
        assert_eq!(without_command, expect, "{g:#}");
        assert_eq!(command[0], "podman");
        assert_eq!(command[1], "create");
    }

    #[test]
    fn a_privileged_container_keeps_podmans_default_namespace() {
        let mut m = hello();
        m.containers[0].privileged = true;
        let g = spec_generator(&spec_of(&m), env).unwrap();
        assert_eq!(g["privileged"], true);
        assert_eq!(
            g["idmappings"],
            json!({"HostUIDMapping": true, "HostGIDMapping": true})
        );
        for absent in ["userns", "cap_drop", "no_new_privileges"] {
            assert!(g.get(absent).is_none(), "{absent}: {g:#}");
        }
    }

    #[test]
    fn env_files_are_read_as_podman_reads_them_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.env");
        std::fs::write(&file, "# c\nA=1\n\nB=x=y\nC=\n").unwrap();
        let env = read_env_file(&file).unwrap();
        assert_eq!(
            env,
            [("A", "1"), ("B", "x=y"), ("C", "")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into()
        );
        // A bare name would be filled from Podman's own environment: refused.
        std::fs::write(&file, "A=1\nHOME\n").unwrap();
        assert!(read_env_file(&file).is_err());
        std::fs::write(&file, vec![b'A'; ENV_FILE_MAX as usize + 2]).unwrap();
        assert!(read_env_file(&file).is_err());
    }
}
