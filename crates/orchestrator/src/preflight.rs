//! Defence in depth before anything reaches Podman: the manifest is validated again (a
//! catalog signed with stolen keys, or a validator bug, must not be enough), and the
//! `podman create` argv rendered from it is checked against the orchestrator's own rules.
//! Every flag must be one the orchestrator renders, with a value of the shape it renders;
//! the image comes right after `--`; hardening flags are present unless the container is
//! privileged. Anything else is refused before Podman sees it.

use std::net::IpAddr;

use archy_registry::Manifest;

use crate::{Error, Result, TMP_TMPFS, create_args};

/// Hex digits of a publisher's key in a third-party app's id (`<id>.<hex>`, see
/// `archy_registry::publication::namespaced_id`).
const NAMESPACE_HEX: usize = 16;

/// Everything install, update and repair check before touching Podman.
pub(crate) fn check_manifest(manifest: &Manifest) -> Result<()> {
    let invalid = |source| Error::InvalidManifest {
        app: manifest.id.clone(),
        source,
    };
    // A third-party app lives under its publisher's namespace, `<id>.<key prefix>`: the
    // manifest's own id is validated, and the sandbox policy is applied once more.
    let mut own = manifest.clone();
    let third_party = match manifest.id.split_once('.') {
        Some((id, namespace)) => {
            if !is_namespace(namespace) {
                return Err(invalid(archy_registry::ValidationError::new(
                    "id",
                    format!(
                        "{:?}: a namespaced id ends in {NAMESPACE_HEX} lowercase hex digits",
                        manifest.id
                    ),
                )));
            }
            own.id = id.to_owned();
            true
        }
        None => false,
    };
    own.validate().map_err(invalid)?;
    if third_party {
        own.check_sandbox_policy().map_err(invalid)?;
    }
    for c in &manifest.containers {
        // The real image id is known only after loading; the shape is what matters here.
        let image = match &c.image.reference {
            Some(reference) => reference.clone(),
            None => "0".repeat(64),
        };
        let args = create_args(
            manifest,
            c,
            &image,
            std::path::Path::new("/env-file"),
            IpAddr::from([127, 0, 0, 1]),
        );
        check_create_args(&args, c.privileged).map_err(|reason| Error::UnsafeArgument {
            container: c.name.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// The rules for one rendered `podman create` argv (see the module doc).
pub(crate) fn check_create_args(args: &[String], privileged: bool) -> Result<(), String> {
    if args.first().map(String::as_str) != Some("create") {
        return Err("the argv does not start with `create`".into());
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut i = 1;
    loop {
        let Some(arg) = args.get(i) else {
            return Err("no `--` before the image".into());
        };
        let arg = arg.as_str();
        if arg == "--" {
            break;
        }
        if let Some(check) = value_rule(arg) {
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("{arg} has no value"))?;
            check(value).map_err(|why| format!("{arg} {value:?}: {why}"))?;
            i += 2;
        } else if single_token_ok(arg) {
            i += 1;
        } else {
            return Err(format!("{arg:?} is not an option the orchestrator renders"));
        }
        if arg == "--cap-add" && !seen.contains(&"--cap-drop=ALL") {
            return Err("--cap-add before --cap-drop=ALL".into());
        }
        seen.push(arg);
    }
    let image = args
        .get(i + 1)
        .ok_or_else(|| "no image after `--`".to_owned())?;
    check_image(image).map_err(|why| format!("image {image:?}: {why}"))?;
    if args[i + 2..].iter().any(|a| a.contains('\0')) {
        return Err("the command contains a NUL byte".into());
    }
    if args[..i].iter().filter(|a| *a == "--name").count() != 1 {
        return Err("exactly one --name is needed".into());
    }
    if !privileged {
        for needed in [
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            crate::USERNS,
        ] {
            if !seen.contains(&needed) {
                return Err(format!("{needed} is missing"));
            }
        }
        if seen.contains(&"--privileged") {
            return Err("--privileged on a container that is not declared privileged".into());
        }
    }
    if !seen.contains(&"--pids-limit") {
        return Err("--pids-limit is missing".into());
    }
    Ok(())
}

type Rule = fn(&str) -> Result<(), String>;

/// Options rendered as `--flag VALUE` (two tokens), with the shape their value must have.
fn value_rule(flag: &str) -> Option<Rule> {
    Some(match flag {
        "--name" => |v| object_name(v),
        "--label" => check_label,
        "--stop-timeout" | "--pids-limit" => digits,
        "--env-file" => |v| {
            if v.starts_with('/') && !v.contains(['\0', '\n']) {
                Ok(())
            } else {
                Err("must be an absolute path".into())
            }
        },
        "--secret" => check_secret,
        "--publish" => check_publish,
        "--volume" => check_volume,
        "--cap-add" => |v| {
            if !v.is_empty() && v.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                Ok(())
            } else {
                Err("must be a capability name".into())
            }
        },
        "--user" => check_user,
        "--memory" => |v| {
            v.strip_suffix('m')
                .ok_or_else(|| "must be MiB (`<n>m`)".to_owned())
                .and_then(digits)
        },
        "--cpus" => |v| {
            let (whole, frac) = v.split_once('.').unwrap_or((v, "0"));
            digits(whole).and_then(|_| digits(frac))
        },
        "--tmpfs" => |v| {
            if v == TMP_TMPFS {
                Ok(())
            } else {
                Err(format!("only {TMP_TMPFS} is rendered"))
            }
        },
        _ => return None,
    })
}

/// Options rendered as one `--flag[=value]` token.
fn single_token_ok(arg: &str) -> bool {
    match arg {
        "--cap-drop=ALL"
        | "--security-opt=no-new-privileges"
        | "--privileged"
        | "--network=host"
        | "--pid=host"
        | "--read-only"
        | "--read-only-tmpfs=false" => true,
        a if a == crate::USERNS => true,
        a => {
            if let Some(net) = a.strip_prefix("--network=") {
                object_name(net).is_ok()
            } else if let Some(alias) = a.strip_prefix("--network-alias=") {
                plain_name(alias).is_ok()
            } else {
                false
            }
        }
    }
}

fn is_namespace(v: &str) -> bool {
    v.len() == NAMESPACE_HEX
        && v.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// An app id: a manifest name, or `<name>.<namespace>` for a third-party app.
fn app_id(v: &str) -> Result<(), String> {
    match v.split_once('.') {
        Some((id, namespace)) if is_namespace(namespace) => plain_name(id),
        Some(_) => Err(format!("{v:?} is not an app id")),
        None => plain_name(v),
    }
}

fn digits(v: &str) -> Result<(), String> {
    if !v.is_empty() && v.len() <= 20 && v.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err("must be a number".into())
    }
}

/// A manifest name: a-z, 0-9 and '-', starting with a letter (the registry's rule).
fn plain_name(v: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err("must be a-z, 0-9 and '-', starting with a letter".into())
    }
}

/// A Podman object the orchestrator names: `archy-<app>[-<part>]`.
fn object_name(v: &str) -> Result<(), String> {
    let ok = v.strip_prefix("archy-").is_some_and(|rest| {
        rest.len() < 200
            && rest.starts_with(|c: char| c.is_ascii_lowercase())
            && rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    });
    if ok {
        Ok(())
    } else {
        Err("must be archy-<a-z0-9.->".into())
    }
}

fn env_key(v: &str) -> Result<(), String> {
    if v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(format!("{v:?} is not an environment variable name"))
    }
}

fn check_label(v: &str) -> Result<(), String> {
    let (key, value) = v.split_once('=').ok_or("must be key=value")?;
    match key {
        crate::LABEL_APP => app_id(value),
        crate::LABEL_CONTAINER => plain_name(value),
        crate::LABEL_VERSION => {
            if !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c))
            {
                Ok(())
            } else {
                Err("must be a version".into())
            }
        }
        _ => Err(format!("{key:?} is not a label the orchestrator sets")),
    }
}

/// `archy-<app>-<secret>,type=env,target=KEY`: nothing else may ride along.
fn check_secret(v: &str) -> Result<(), String> {
    let mut parts = v.split(',');
    let name = parts.next().unwrap_or_default();
    object_name(name)?;
    if parts.next() != Some("type=env") {
        return Err("must be type=env".into());
    }
    let target = parts
        .next()
        .and_then(|t| t.strip_prefix("target="))
        .ok_or("must name its target")?;
    env_key(target)?;
    if parts.next().is_some() {
        return Err("carries extra options".into());
    }
    Ok(())
}

/// `IP:HOSTPORT:CONTAINERPORT/PROTO`.
fn check_publish(v: &str) -> Result<(), String> {
    let mut parts = v.rsplitn(3, ':');
    let (Some(inner), Some(host), Some(ip)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("must be ip:host:container/protocol".into());
    };
    let (port, proto) = inner.split_once('/').ok_or("must name the protocol")?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip.parse::<IpAddr>().is_err() {
        return Err(format!("{ip:?} is not an IP address"));
    }
    for p in [host, port] {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port"))?;
    }
    if !matches!(proto, "tcp" | "udp") {
        return Err(format!("{proto:?} is not tcp or udp"));
    }
    Ok(())
}

/// `archy-<app>-<volume>:/abs/path:[ro,]U`: a named volume only (never a host path), a
/// path that cannot carry mount options, and only the options the orchestrator sets.
fn check_volume(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split(':').collect();
    let [name, path, options] = parts[..] else {
        return Err("must be volume:path:options with no ':' in the path".into());
    };
    object_name(name)?;
    if !path.starts_with('/')
        || path == "/"
        || path.contains([',', '\0', '\n'])
        || path.split('/').any(|seg| seg == ".." || seg == ".")
    {
        return Err(format!("{path:?} is not a plain absolute path"));
    }
    if !matches!(options, "U" | "ro,U") {
        return Err(format!(
            "options {options:?} are not ones the orchestrator sets"
        ));
    }
    Ok(())
}

/// `uid[:gid]` or `name[:group]`.
fn check_user(v: &str) -> Result<(), String> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && !s.starts_with('-')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let (user, group) = v.split_once(':').unwrap_or((v, "0"));
    if ok(user) && ok(group) {
        Ok(())
    } else {
        Err("must be uid[:gid]".into())
    }
}

/// A loaded image's id, or a registry reference pinned by digest.
fn check_image(v: &str) -> Result<(), String> {
    if crate::engine::is_image_id(v) {
        return Ok(());
    }
    let Some((repo, digest)) = v.split_once("@sha256:") else {
        return Err("must be an image id or repo@sha256:<digest>".into());
    };
    let repo_ok = !repo.is_empty()
        && repo.starts_with(|c: char| c.is_ascii_alphanumeric())
        && repo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
    if repo_ok && crate::engine::is_image_id(digest) {
        Ok(())
    } else {
        Err("must be an image id or repo@sha256:<digest>".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Manifest {
        let yaml = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../apps/hello/manifest.yml"
        ))
        .unwrap();
        Manifest::from_yaml(&yaml).unwrap()
    }

    #[test]
    fn hello_passes() {
        check_manifest(&hello()).unwrap();
    }

    /// Third-party apps run under `<id>.<publisher key prefix>` and must still meet the
    /// sandbox policy.
    #[test]
    fn namespaced_ids_pass_and_keep_the_sandbox_policy() {
        let mut m = hello();
        m.id = "hello.d99fe0fa4c0b5354".into();
        check_manifest(&m).unwrap();
        for bad in [
            "hello.",
            "hello.D99FE0FA4C0B5354",
            "hello.d99f",
            "hello.d99fe0fa4c0b5354.x",
        ] {
            m.id = bad.into();
            assert!(check_manifest(&m).is_err(), "{bad} passed");
        }
        m.id = "hello.d99fe0fa4c0b5354".into();
        m.containers[0].privileged = true;
        let err = check_manifest(&m).unwrap_err().to_string();
        assert!(err.contains("privileged"), "{err}");
    }

    /// Manifests built in code skip the registry's parser: what a validator bug (or a
    /// signed-but-hostile catalog) could hand over. Each is refused before any argv runs.
    #[test]
    fn hostile_values_never_reach_argv() {
        type Edit = fn(&mut Manifest);
        let cases: &[(&str, Edit)] = &[
            ("option as image reference", |m| {
                m.containers[0].image.artifact = None;
                m.containers[0].image.reference = Some("--privileged".into());
            }),
            ("volume path carrying mount options", |m| {
                m.containers[0]
                    .volumes
                    .push(archy_registry::manifest::Volume {
                        name: "data".into(),
                        path: "/data:rw,exec,suid".into(),
                        read_only: false,
                    });
            }),
            ("volume path with a comma", |m| {
                m.containers[0]
                    .volumes
                    .push(archy_registry::manifest::Volume {
                        name: "data".into(),
                        path: "/data,suid".into(),
                        read_only: false,
                    });
            }),
            ("capability smuggling an option", |m| {
                m.containers[0].capabilities.push("ALL --privileged".into());
            }),
            ("user that is an option", |m| {
                m.containers[0].user = Some("--privileged".into());
            }),
            ("container name with a comma", |m| {
                m.containers[0].name = "web,x".into();
            }),
        ];
        for (what, edit) in cases {
            let mut m = hello();
            edit(&mut m);
            let err = check_manifest(&m).expect_err(what);
            assert!(
                matches!(
                    err,
                    Error::InvalidManifest { .. } | Error::UnsafeArgument { .. }
                ),
                "{what}: {err}"
            );
        }
    }

    /// The argv rules on their own, for what `validate` may (still) let through.
    #[test]
    fn argv_rules_refuse_what_the_orchestrator_never_renders() {
        let m = hello();
        let image = "a".repeat(64);
        let good = create_args(
            &m,
            &m.containers[0],
            &image,
            std::path::Path::new("/d/env"),
            IpAddr::from([127, 0, 0, 1]),
        );
        check_create_args(&good, false).unwrap();
        let with = |f: &dyn Fn(&mut Vec<String>)| {
            let mut a = good.clone();
            f(&mut a);
            check_create_args(&a, false)
        };
        let dash = good.iter().position(|a| a == "--").unwrap();
        let bad: Vec<(&str, Result<(), String>)> = vec![
            (
                "no --",
                with(&|a| {
                    a.retain(|x| x != "--");
                }),
            ),
            (
                "unknown flag",
                with(&|a| a.insert(1, "--privileged=true".into())),
            ),
            (
                "hardening dropped",
                with(&|a| a.retain(|x| x != "--cap-drop=ALL")),
            ),
            (
                "no-new-privileges dropped",
                with(&|a| a.retain(|x| x != "--security-opt=no-new-privileges")),
            ),
            (
                "userns dropped",
                with(&|a| a.retain(|x| x != crate::USERNS)),
            ),
            ("image as option", with(&|a| a[dash + 1] = "--rm".into())),
            (
                "tag instead of id",
                with(&|a| a[dash + 1] = "alpine:latest".into()),
            ),
            (
                "bind mount",
                with(&|a| {
                    a.insert(1, "--volume".into());
                    a.insert(2, "/:/host:U".into());
                }),
            ),
            (
                "extra secret option",
                with(&|a| {
                    a.insert(1, "--secret".into());
                    a.insert(2, "archy-x-y,type=env,target=K,uid=0".into());
                }),
            ),
            (
                "cap-add before cap-drop",
                with(&|a| {
                    a.insert(1, "--cap-add".into());
                    a.insert(2, "CHOWN".into());
                }),
            ),
            (
                "privileged sneaks in",
                with(&|a| a.insert(1, "--privileged".into())),
            ),
        ];
        for (what, result) in bad {
            assert!(result.is_err(), "{what} passed");
        }
    }
}
