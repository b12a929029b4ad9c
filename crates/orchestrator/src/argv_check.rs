//! A model of how Podman reads a `podman create` argv, to check what [`crate::create_args`]
//! renders: the checker of every argv the orchestrator runs, and the oracle of the argv
//! property test and of the `manifest_argv` fuzz target.
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

mod compare;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

pub use compare::{Rendered, check_create};
use values::take_value;
pub use values::{
    NAMESPACE_HEX, check_image, check_object_name, is_image_id, is_namespace, millicpus,
    parse_publish, parse_secret, parse_tmpfs, parse_user, parse_volume,
};

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

#[cfg(test)]
mod tests;
