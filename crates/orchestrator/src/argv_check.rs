//! A model of how Podman reads a `podman create` argv, to check what [`crate::create_args`]
//! renders: the oracle of the argv property test and of the `manifest_argv` fuzz target.
//!
//! Podman parses its command line with cobra/pflag, and `podman create` turns interspersed
//! flags off: options are read until `--` or the first positional argument, which is the
//! image; everything after the image is the container's command. pflag reads a long
//! option as `--name=value`, or as `--name value` where the next element is the value
//! *whatever it looks like* (even `-x`), and a boolean option as `--flag` or
//! `--flag=true|false` (never consuming the next element). `StringSlice` options
//! (`--publish`, `--cap-add`, `--cap-drop`, `--network-alias`) also split their value at
//! commas.
//!
//! [`parse_create`] walks an argv that way with an explicit allowlist ([`FLAGS`]) of the
//! options the orchestrator renders: an element before `--` that starts with `-` and is not
//! one of them, a positional argument before `--`, a single-valued option given twice
//! (pflag keeps the last, so a second one would override the first), a missing `--`, or a
//! value of the wrong shape is an error naming the element. It returns the options with
//! their values, the image, the command, and the values of `--volume`, `--publish`,
//! `--cap-add`, `--cap-drop`, `--user`, `--secret`, `--tmpfs` and `--label` parsed the way
//! Podman parses them. [`check_create`] then checks that every one of them says exactly
//! what the manifest says: a `:` or `,` smuggled into a value shows up as a different
//! volume, port, capability or option.
//!
//! A new option in `create_args` must be added to [`FLAGS`] (with its real pflag arity)
//! and to the checks in [`check_create`]; until it is, the property test fails.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use archy_registry::Manifest;
use archy_registry::grammar;
use archy_registry::manifest::{Container, EnvValue, NetworkMode, PidMode};

use crate::{LABEL_APP, LABEL_CONTAINER, LABEL_VERSION, TMP_TMPFS};

/// How pflag reads an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// A boolean: `--flag` (true) or `--flag=true|false`; never takes the next element.
    Bool,
    /// One value (`--flag VALUE` or `--flag=VALUE`); given twice, pflag keeps the last.
    Single,
    /// `StringArray`: one value per occurrence, may repeat.
    Array,
    /// `StringSlice`: may repeat, and each value is split at commas.
    Slice,
}

/// One option `podman create` knows, as the orchestrator may render it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagSpec {
    /// Long name with its dashes, e.g. `--volume`.
    pub name: &'static str,
    pub arity: Arity,
}

const fn flag(name: &'static str, arity: Arity) -> FlagSpec {
    FlagSpec { name, arity }
}

/// Every option the orchestrator renders in `podman create`, with Podman's arity for it.
/// Anything else before `--` is an error.
pub const FLAGS: &[FlagSpec] = &[
    flag("--name", Arity::Single),
    flag("--label", Arity::Array),
    flag("--stop-timeout", Arity::Single),
    flag("--env-file", Arity::Array),
    flag("--secret", Arity::Array),
    flag("--publish", Arity::Slice),
    flag("--volume", Arity::Array),
    flag("--cap-drop", Arity::Slice),
    flag("--cap-add", Arity::Slice),
    flag("--security-opt", Arity::Array),
    flag("--userns", Arity::Single),
    flag("--user", Arity::Single),
    flag("--privileged", Arity::Bool),
    flag("--network", Arity::Single),
    flag("--network-alias", Arity::Slice),
    flag("--pid", Arity::Single),
    flag("--read-only", Arity::Bool),
    flag("--read-only-tmpfs", Arity::Bool),
    flag("--tmpfs", Arity::Array),
    flag("--pids-limit", Arity::Single),
    flag("--memory", Arity::Single),
    flag("--cpus", Arity::Single),
];

/// Looks an option up in [`FLAGS`].
pub fn flag_spec(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|f| f.name == name)
}

/// Why an argv was refused: the element (and its index in the argv, if it is one) and the
/// reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgvError {
    pub index: Option<usize>,
    pub element: String,
    pub reason: String,
}

impl ArgvError {
    fn at(index: usize, element: &str, reason: impl Into<String>) -> Self {
        Self {
            index: Some(index),
            element: element.to_owned(),
            reason: reason.into(),
        }
    }

    fn about(element: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            index: None,
            element: element.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ArgvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "argv[{i}] {:?}: {}", self.element, self.reason),
            None => write!(f, "{:?}: {}", self.element, self.reason),
        }
    }
}

impl std::error::Error for ArgvError {}

/// One option as Podman reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Long name with its dashes.
    pub name: &'static str,
    /// The value (`"true"`/`"false"` for a boolean).
    pub value: String,
    /// Index in the argv of the element naming the option.
    pub index: usize,
}

/// `--volume SOURCE:DESTINATION:OPTIONS`, split the way Podman splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeArg {
    pub source: String,
    pub destination: String,
    pub options: Vec<String>,
}

/// `--publish [IP:]HOSTPORT:CONTAINERPORT[/PROTOCOL]`, split the way Podman splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishArg {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// `--user USER[:GROUP]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserArg {
    pub user: String,
    pub group: Option<String>,
}

/// `--secret NAME[,key=value...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretArg {
    pub name: String,
    pub options: BTreeMap<String, String>,
}

/// `--tmpfs PATH[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsArg {
    pub path: String,
    pub options: Vec<String>,
}

/// A `podman create` argv as Podman reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateArgs {
    /// Every option, in order.
    pub flags: Vec<Flag>,
    pub image: String,
    pub command: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub volumes: Vec<VolumeArg>,
    pub publish: Vec<PublishArg>,
    /// Each comma-separated capability of every `--cap-add`.
    pub cap_add: Vec<String>,
    /// Each comma-separated capability of every `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// Each comma-separated alias of every `--network-alias`.
    pub network_aliases: Vec<String>,
    pub user: Option<UserArg>,
    pub secrets: Vec<SecretArg>,
    pub tmpfs: Vec<TmpfsArg>,
}

impl CreateArgs {
    /// Values of every occurrence of `name`.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|f| f.name == name)
            .map(|f| f.value.as_str())
            .collect()
    }

    /// The value of a single-valued option, if given.
    pub fn single(&self, name: &str) -> Option<&str> {
        self.values(name).last().copied()
    }

    /// Whether a boolean option is on.
    pub fn is_set(&self, name: &str) -> bool {
        self.single(name) == Some("true")
    }
}

/// pflag's `strconv.ParseBool` spellings.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Splits a `StringSlice` value the way pflag does (a CSV record). Quotes are refused
/// rather than modelled: the orchestrator never renders them.
fn split_slice(v: &str) -> Result<Vec<&str>, String> {
    if v.contains('"') {
        return Err("a quote in a comma-separated value".into());
    }
    if v.contains(['\n', '\r']) {
        return Err("a line break in a comma-separated value".into());
    }
    Ok(v.split(',').collect())
}

fn no_control(v: &str) -> Result<(), String> {
    match v.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("contains the control character {c:?}")),
        None => Ok(()),
    }
}

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
/// part is a manifest name. The `archy-` prefix itself is compared by [`check_create`].
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
fn take_value(
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

/// Reads a `podman create` argv (starting with `create`) the way Podman does, against the
/// [`FLAGS`] allowlist. See the module doc for what is refused.
pub fn parse_create(argv: &[String]) -> Result<CreateArgs, ArgvError> {
    match argv.first() {
        Some(c) if c == "create" => {}
        Some(other) => return Err(ArgvError::at(0, other, "the argv must start with `create`")),
        None => return Err(ArgvError::about("", "empty argv")),
    }
    let mut out = CreateArgs::default();
    let mut i = 1;
    let end = loop {
        let Some(arg) = argv.get(i) else {
            return Err(ArgvError::about(
                argv.last().cloned().unwrap_or_default(),
                "the options never end with `--`, so there is no image",
            ));
        };
        if arg == "--" {
            break i;
        }
        let Some(long) = arg.strip_prefix("--") else {
            let reason = if arg.starts_with('-') {
                "a short option; the orchestrator renders only long options"
            } else {
                "a positional argument before `--`: Podman would take it as the image"
            };
            return Err(ArgvError::at(i, arg, reason));
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let Some(spec) = FLAGS.iter().find(|f| &f.name[2..] == name) else {
            return Err(ArgvError::at(
                i,
                arg,
                "not an option the orchestrator renders (not in argv_check::FLAGS)",
            ));
        };
        let flag_index = i;
        let value = match (spec.arity, inline) {
            (Arity::Bool, None) => "true".to_owned(),
            (Arity::Bool, Some(v)) => match parse_bool(v) {
                Some(b) => b.to_string(),
                None => return Err(ArgvError::at(i, arg, "not a boolean value")),
            },
            (_, Some(v)) => v.to_owned(),
            (_, None) => {
                i += 1;
                match argv.get(i) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(ArgvError::at(
                            flag_index,
                            arg,
                            "needs a value and the argv ends",
                        ));
                    }
                }
            }
        };
        if matches!(spec.arity, Arity::Single | Arity::Bool)
            && out.flags.iter().any(|f| f.name == spec.name)
        {
            return Err(ArgvError::at(
                flag_index,
                arg,
                "given twice: Podman keeps only the last, so one would override the other",
            ));
        }
        if value.contains('\0') {
            return Err(ArgvError::at(i, &value, "contains a NUL byte"));
        }
        take_value(&mut out, spec, &value, flag_index)
            .map_err(|reason| ArgvError::at(i, &value, format!("{}: {reason}", spec.name)))?;
        out.flags.push(Flag {
            name: spec.name,
            value,
            index: flag_index,
        });
        i += 1;
    };
    let Some(image) = argv.get(end + 1) else {
        return Err(ArgvError::at(end, "--", "no image after `--`"));
    };
    check_image(image).map_err(|reason| ArgvError::at(end + 1, image, reason))?;
    out.image = image.clone();
    out.command = argv[end + 2..].to_vec();
    for (k, a) in out.command.iter().enumerate() {
        if a.contains('\0') {
            return Err(ArgvError::at(end + 2 + k, a, "contains a NUL byte"));
        }
    }
    Ok(out)
}

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

#[cfg(test)]
mod tests;
