//! The values of `podman create` options, read the way Podman reads them and held to the
//! registry's grammar.

use std::collections::BTreeMap;
use std::net::IpAddr;

use archy_registry::grammar;

use super::{
    CreateArgs, FlagSpec, PublishArg, SecretArg, TmpfsArg, UserArg, VolumeArg, no_control,
    split_slice,
};

/// Podman's `SplitVolumeString` (`src:dst[:opts]`, at most three parts) and its
/// options at commas. The orchestrator renders named volumes with options, so three parts.
pub fn parse_volume(v: &str) -> Result<VolumeArg, String> {
    no_control(v)?;
    let parts: Vec<&str> = v.split(':').collect();
    let [source, destination, options] = parts[..] else {
        return Err(format!(
            "has {} ':'-separated parts; Podman reads source:destination:options (more than 3 is an error, \
             fewer means a path was split)",
            parts.len()
        ));
    };
    if source.is_empty() || source.starts_with(['/', '.']) {
        return Err(format!(
            "source {source:?} is not a named volume (a host path would be a bind mount)"
        ));
    }
    check_object_name("volume name", source)?;
    grammar::check_volume_path("volume destination", destination).map_err(|e| e.rule)?;
    let options: Vec<String> = options.split(',').map(str::to_owned).collect();
    for o in &options {
        if !matches!(
            o.as_str(),
            "ro" | "rw" | "U" | "z" | "Z" | "nosuid" | "nodev" | "noexec"
        ) {
            return Err(format!(
                "volume option {o:?} is not one the orchestrator renders"
            ));
        }
    }
    Ok(VolumeArg {
        source: source.to_owned(),
        destination: destination.to_owned(),
        options,
    })
}

/// Podman's `CreatePortBindings`: `[IP:][HOSTPORT:]CONTAINERPORT[/PROTOCOL]`, an IPv6
/// address in brackets. The orchestrator always renders an IP, both ports and a protocol.
pub fn parse_publish(v: &str) -> Result<PublishArg, String> {
    no_control(v)?;
    let (rest, protocol) = match v.split('/').collect::<Vec<_>>()[..] {
        [rest, proto] => (rest, proto),
        [_] => return Err("has no /protocol".into()),
        _ => return Err("names the protocol more than once".into()),
    };
    if !matches!(protocol, "tcp" | "udp") {
        return Err(format!("protocol {protocol:?} is not tcp or udp"));
    }
    let (ip, ports) = match rest.split(']').collect::<Vec<_>>()[..] {
        [plain] => match plain.split(':').collect::<Vec<_>>()[..] {
            [ip, host, container] => (ip, [host, container]),
            _ => {
                return Err(
                    "must be ip:hostport:containerport (an IPv6 address needs brackets)".into(),
                );
            }
        },
        [v6, after] => {
            let ip = v6
                .strip_prefix('[')
                .ok_or("an IPv6 address must be enclosed in []")?;
            let after = after
                .strip_prefix(':')
                .ok_or("an IPv6 address must be followed by ':'")?;
            match after.split(':').collect::<Vec<_>>()[..] {
                [host, container] => (ip, [host, container]),
                _ => return Err("must be [ipv6]:hostport:containerport".into()),
            }
        }
        _ => return Err("more than one IPv6 address".into()),
    };
    let host_ip = ip
        .parse::<IpAddr>()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0 && n.to_string() == p)
            .ok_or_else(|| format!("{p:?} is not a port (a range or a name is never rendered)"))
    };
    Ok(PublishArg {
        host_ip: Some(host_ip),
        host_port: port(ports[0])?,
        container_port: port(ports[1])?,
        protocol: protocol.to_owned(),
    })
}

/// `USER[:GROUP]` with the registry's grammar for each part.
pub fn parse_user(v: &str) -> Result<UserArg, String> {
    grammar::check_user("--user", v).map_err(|e| e.rule)?;
    let (user, group) = match v.split_once(':') {
        Some((u, g)) => (u, Some(g.to_owned())),
        None => (v, None),
    };
    Ok(UserArg {
        user: user.to_owned(),
        group,
    })
}

/// Podman's `--secret` parser: the source name, then comma-separated `key=value` options
/// of which `type`, `target`, `uid`, `gid` and `mode` exist.
pub fn parse_secret(v: &str) -> Result<SecretArg, String> {
    no_control(v)?;
    let mut parts = v.split(',');
    let name = parts.next().unwrap_or_default();
    check_object_name("secret", name)?;
    let mut options = BTreeMap::new();
    for part in parts {
        let (k, val) = part
            .split_once('=')
            .ok_or_else(|| format!("secret option {part:?} is not key=value"))?;
        if !matches!(k, "type" | "target" | "uid" | "gid" | "mode") {
            return Err(format!("{k:?} is not a secret option"));
        }
        if options.insert(k.to_owned(), val.to_owned()).is_some() {
            return Err(format!("secret option {k:?} is given twice"));
        }
    }
    Ok(SecretArg {
        name: name.to_owned(),
        options,
    })
}

/// `--tmpfs PATH[:OPTIONS]`, options from a small allowlist (never `exec`/`suid`/`dev`).
pub fn parse_tmpfs(v: &str) -> Result<TmpfsArg, String> {
    no_control(v)?;
    let (path, options) = match v.split_once(':') {
        Some((p, o)) => (p, o.split(',').map(str::to_owned).collect()),
        None => (v, Vec::new()),
    };
    grammar::check_volume_path("tmpfs path", path).map_err(|e| e.rule)?;
    for o in &options {
        let ok = matches!(o.as_str(), "rw" | "ro" | "nosuid" | "nodev" | "noexec")
            || o.strip_prefix("mode=")
                .is_some_and(|m| !m.is_empty() && m.bytes().all(|c| (b'0'..=b'7').contains(&c)))
            || o.strip_prefix("size=").is_some_and(|s| {
                let digits = s.trim_end_matches(['k', 'm', 'g']);
                !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
            });
        if !ok {
            return Err(format!(
                "tmpfs option {o:?} is not one the orchestrator renders"
            ));
        }
    }
    Ok(TmpfsArg {
        path: path.to_owned(),
        options,
    })
}

/// Hex digits of a publisher's key in a third-party app's id (`<id>.<hex>`, see
/// `archy_registry::publication::namespaced_id`).
pub const NAMESPACE_HEX: usize = 16;

/// The namespace of a third-party app's id: [`NAMESPACE_HEX`] lowercase hex digits.
pub fn is_namespace(v: &str) -> bool {
    v.len() == NAMESPACE_HEX
        && v.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The name of a Podman object the orchestrator creates: `archy-<app>[-<part>]`, where
/// the app id is a manifest name or, for a third-party app, `<name>.<namespace>`; the
/// part is a manifest name. The `archy-` prefix itself is compared by [`check_create`](super::check_create).
pub fn check_object_name(field: &str, v: &str) -> Result<(), String> {
    let rest = v.strip_prefix("archy-").unwrap_or(v);
    let name = |s: &str| grammar::check_name(field, s).map_err(|e| e.rule);
    match rest.split_once('.') {
        None => name(rest),
        Some((id, after)) => {
            name(id)?;
            let (namespace, part) = after.split_at_checked(NAMESPACE_HEX).unwrap_or((after, ""));
            if !is_namespace(namespace) {
                return Err(format!(
                    "{v:?}: after '.' a third-party app id has {NAMESPACE_HEX} lowercase hex digits"
                ));
            }
            match part {
                "" => Ok(()),
                part => name(part.strip_prefix('-').ok_or_else(|| {
                    format!("{v:?}: the app id must be followed by '-' and a name")
                })?),
            }
        }
    }
}

fn capability(v: &str, allow_all: bool) -> Result<(), String> {
    if allow_all && v.eq_ignore_ascii_case("ALL") {
        return Ok(());
    }
    grammar::check_capability("capability", v).map_err(|e| e.rule)
}

fn digits(v: &str) -> Result<(), String> {
    if !v.is_empty() && v.len() <= 19 && v.bytes().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err("must be a non-negative decimal number".into())
    }
}

/// A `sha256` image id as `podman image inspect --format {{.Id}}` prints it: 64 lowercase
/// hex digits. What the orchestrator creates an artifact's containers from.
pub fn is_image_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// A loaded image's id (64 lowercase hex, optionally `sha256:`-prefixed) or a pinned
/// reference in the registry's grammar.
pub fn check_image(v: &str) -> Result<(), String> {
    if is_image_id(v.strip_prefix("sha256:").unwrap_or(v)) {
        return Ok(());
    }
    grammar::parse_image_reference(v).map(|_| ())
}

/// Checks the shape of one option's value and records what it means.
pub(super) fn take_value(
    out: &mut CreateArgs,
    spec: &FlagSpec,
    value: &str,
    index: usize,
) -> Result<(), String> {
    match spec.name {
        "--name" | "--network" => {
            if spec.name == "--network" && matches!(value, "host") {
                return Ok(());
            }
            check_object_name(spec.name, value)?;
        }
        "--label" => {
            let (k, v) = value.split_once('=').ok_or("a label must be key=value")?;
            no_control(value)?;
            if k.is_empty() {
                return Err("empty label key".into());
            }
            out.labels.push((k.to_owned(), v.to_owned()));
        }
        "--stop-timeout" | "--pids-limit" => digits(value)?,
        "--memory" => digits(
            value
                .strip_suffix('m')
                .ok_or("a memory limit is rendered as <MiB>m")?,
        )?,
        "--cpus" => {
            millicpus(value)
                .ok_or("a CPU limit is a decimal number of CPUs, at most 3 decimals")?;
        }
        "--env-file" => {
            no_control(value)?;
            if !value.starts_with('/') {
                return Err("an env file is an absolute path".into());
            }
        }
        "--secret" => out.secrets.push(parse_secret(value)?),
        "--publish" => {
            for one in split_slice(value)? {
                out.publish.push(parse_publish(one)?);
            }
        }
        "--volume" => out.volumes.push(parse_volume(value)?),
        "--cap-drop" | "--cap-add" => {
            for cap in split_slice(value)? {
                capability(cap, spec.name == "--cap-drop")?;
                if spec.name == "--cap-add" {
                    out.cap_add.push(cap.to_owned());
                } else {
                    out.cap_drop.push(cap.to_owned());
                }
            }
        }
        "--network-alias" => {
            for alias in split_slice(value)? {
                grammar::check_name("alias", alias).map_err(|e| e.rule)?;
                out.network_aliases.push(alias.to_owned());
            }
        }
        "--security-opt" => {
            if !matches!(
                value,
                "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true"
            ) {
                return Err(format!(
                    "security option {value:?} is not one the orchestrator renders"
                ));
            }
        }
        "--userns" => {
            let ok = matches!(value, "nomap" | "auto")
                || value
                    .strip_prefix("auto:size=")
                    .is_some_and(|n| digits(n).is_ok());
            if !ok {
                return Err(format!(
                    "user namespace {value:?} is not one the orchestrator renders"
                ));
            }
        }
        "--user" => out.user = Some(parse_user(value)?),
        "--pid" => {
            if value != "host" {
                return Err("--pid is only rendered as host".into());
            }
        }
        "--tmpfs" => out.tmpfs.push(parse_tmpfs(value)?),
        "--privileged" | "--read-only" | "--read-only-tmpfs" => {}
        other => {
            return Err(format!(
                "{other} is in FLAGS but has no value check (argv[{index}])"
            ));
        }
    }
    Ok(())
}

/// A `--cpus` value in thousandths of a CPU: digits, optionally `.` and 1-3 digits.
pub fn millicpus(v: &str) -> Option<u64> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if whole.is_empty()
        || whole.len() > 9
        || !whole.bytes().all(|c| c.is_ascii_digit())
        || (v.contains('.') && frac.is_empty())
        || frac.len() > 3
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = format!("{frac:0<3}").parse().ok()?;
    Some(whole * 1000 + frac)
}
