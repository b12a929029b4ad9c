//! The grammar of every manifest value that reaches Podman's argv, an env file, an HTTP
//! request line, a path or a display. [`crate::Manifest::validate`] runs each value
//! through exactly one function here; the orchestrator's argv checker reuses them.
//!
//! The rule of thumb: nothing from a manifest can start with `-` where Podman parses
//! options, contain a separator of the Podman syntax it is spliced into (`:` and `,` in
//! `--volume`), a line break where a line-based format reads it (env files, HTTP), or a
//! NUL anywhere (every value ends up in a C string). Every check names the field and says
//! what is allowed.

use crate::error::ValidationError;

/// Longest object name (app id, container, volume, secret, artifact, dependency id).
pub const MAX_NAME_LEN: usize = 63;
/// Longest repository name (domain and path) of an image reference.
pub const MAX_IMAGE_NAME_LEN: usize = 255;
/// Longest tag of an image reference (`[\w][\w.-]{0,127}`).
pub const MAX_TAG_LEN: usize = 128;
/// Longest volume mount path.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest HTTP path (with its query) of a health check or the UI.
pub const MAX_HTTP_PATH_LEN: usize = 1024;
/// Longest environment variable name.
pub const MAX_ENV_KEY_LEN: usize = 255;
/// Longest plain environment value (Podman reads env files with a 64 KiB line limit).
pub const MAX_ENV_VALUE_LEN: usize = 32 * 1024;
/// Longest single command argument (Linux allows 128 KiB per argument).
pub const MAX_ARG_LEN: usize = 64 * 1024;
/// Longest display name of an app.
pub const MAX_DISPLAY_NAME_LEN: usize = 100;
/// Longest app description.
pub const MAX_DESCRIPTION_LEN: usize = 4096;
/// Longest media type.
pub const MAX_MEDIA_TYPE_LEN: usize = 255;

/// Every capability name Linux knows (without `CAP_`), so a typo is caught at validation.
pub const LINUX_CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// Transports of containers/image (`alltransports`) other than `docker`. Podman reads an
/// image argument `dir:x`, `oci-archive:x`, `docker-daemon:x`, … as that transport and a
/// path or daemon object, not as a registry image, and `dir:x@sha256:…` is otherwise a
/// valid reference (name `dir`, tag `x`). `docker:tag` stays allowed: Podman falls back to
/// the registry for it.
pub const IMAGE_TRANSPORTS: &[&str] = &[
    "containers-storage",
    "dir",
    "docker-archive",
    "docker-daemon",
    "oci",
    "oci-archive",
    "ostree",
    "sif",
    "tarball",
];

fn err(field: &str, rule: String) -> ValidationError {
    ValidationError::new(field, rule)
}

/// Ids, container, volume, secret and artifact names share one shape so they are safe
/// inside Podman object names, labels and paths: `[a-z][a-z0-9-]{0,62}`, not ending in `-`.
pub fn check_name(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok = (1..=MAX_NAME_LEN).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(err(
            field,
            format!(
                "{value:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
            ),
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Image references
// ---------------------------------------------------------------------------------------

/// A parsed, digest-pinned image reference. `domain/path[:tag]@sha256:<hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageReference<'a> {
    /// Registry host with optional port (`registry.example:5000`, `[::1]:5000`), if the
    /// name has one.
    pub domain: Option<&'a str>,
    /// Slash-separated path components (`library/nginx`).
    pub path: &'a str,
    pub tag: Option<&'a str>,
    /// `sha256:<64 lowercase hex>`.
    pub digest: &'a str,
}

impl ImageReference<'_> {
    /// The repository name: domain and path.
    pub fn name(&self) -> String {
        match self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.to_owned(),
        }
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*` (distribution/reference `pathComponent`).
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])` (`domainNameComponent`).
fn is_domain_name_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// `host optionalPort` where host is a domain name or a bracketed IPv6 address
/// (`domainAndPort`).
fn is_domain_and_port(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return false;
        };
        let inner = &rest[..close];
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        let after = &rest[close + 1..];
        if after.is_empty() {
            return true;
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(host) = host
        && !host.split('.').all(is_domain_name_component)
    {
        return false;
    }
    port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// `[\w][\w.-]{0,127}` with ASCII `\w`.
fn is_tag(s: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = s.as_bytes();
    (1..=MAX_TAG_LEN).contains(&b.len())
        && word(b[0])
        && b.iter().all(|c| word(*c) || *c == b'.' || *c == b'-')
}

fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// Parses a reference the way distribution/reference's `ReferenceRegexp` does
/// (`name[:tag]@digest`, name = `[domainAndPort/]pathComponent(/pathComponent)*`), with
/// the digest required and restricted to `sha256:<64 lowercase hex>`, the whole name at
/// most 255 characters, and no containers/image transport prefix.
pub fn parse_image_reference(s: &str) -> Result<ImageReference<'_>, String> {
    const SHAPE: &str = "an image reference pinned by digest: [registry[:port]/]path[:tag]@sha256:<64 lowercase hex>, \
         path components of a-z, 0-9 and single '.', '_' or '__' or runs of '-' between them";
    let Some((name_tag, digest)) = s.split_once('@') else {
        return Err(format!("{s:?} is not pinned: must be {SHAPE}"));
    };
    if !is_sha256_digest(digest) {
        return Err(format!(
            "{s:?} has digest {digest:?}; must be {SHAPE} (only sha256 is accepted)"
        ));
    }
    // A ':' after the last '/' separates the tag: a domain's port is always followed by '/'.
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if !name_tag[i..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Err(format!(
            "{s:?} has tag {tag:?}; a tag is 1-128 characters of A-Z, a-z, 0-9, '_', '.' and '-', not starting with '.' or '-'"
        ));
    }
    if name.is_empty() {
        return Err(format!("{s:?} has no repository name: must be {SHAPE}"));
    }
    if name.len() > MAX_IMAGE_NAME_LEN {
        return Err(format!(
            "the repository name of {s:?} is {} characters; at most {MAX_IMAGE_NAME_LEN} are allowed",
            name.len()
        ));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if is_domain_and_port(first) && rest.split('/').all(is_path_component) =>
        {
            (Some(first), rest)
        }
        _ if name.split('/').all(is_path_component) => (None, name),
        _ => return Err(format!("{s:?} is not {SHAPE}")),
    };
    // containers/image splits an image argument at its first ':' and looks the prefix up
    // as a transport (`TransportFromImageName`).
    let prefix = s.split(':').next().unwrap_or_default();
    if IMAGE_TRANSPORTS
        .iter()
        .any(|t| t.eq_ignore_ascii_case(prefix))
    {
        return Err(format!(
            "{s:?} starts with {prefix:?}:, which Podman reads as an image transport, not a registry image"
        ));
    }
    Ok(ImageReference {
        domain,
        path,
        tag,
        digest,
    })
}

/// [`parse_image_reference`] for a manifest field.
pub fn check_image_reference(field: &str, value: &str) -> Result<(), ValidationError> {
    parse_image_reference(value)
        .map(|_| ())
        .map_err(|rule| err(field, rule))
}

// ---------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------

/// A mount path inside a container, spliced into `--volume name:path:opts`: absolute,
/// not `/`, no empty, `.` or `..` segments (no `//`, no trailing `/`), no `:` or `,`
/// (Podman's separators), no control characters, at most 1024 bytes.
pub fn check_volume_path(field: &str, path: &str) -> Result<(), ValidationError> {
    const SHAPE: &str = "must be an absolute path other than / (at most 1024 bytes), without empty, . or .. segments, \
         ':' , ',' or control characters";
    let bad_char = path
        .chars()
        .find(|c| c.is_control() || *c == ':' || *c == ',');
    if let Some(c) = bad_char {
        return Err(err(
            field,
            format!("{path:?} contains {c:?}; a volume path {SHAPE}"),
        ));
    }
    let ok = path.len() <= MAX_PATH_LEN
        && path.len() > 1
        && path.starts_with('/')
        && path[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if ok {
        Ok(())
    } else {
        Err(err(field, format!("{path:?}: a volume path {SHAPE}")))
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(c: u8) -> bool {
    matches!(
        c,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// RFC 3986 `path-absolute [ "?" query ]`: what a health check puts after `GET ` and
/// what the UI link ends with. Only `pchar`s (unreserved, sub-delims, `:`, `@`, `%HH`) and
/// `/`, plus `?` in the query; so no space, CR, LF, `#` or other control characters.
pub fn check_http_path(field: &str, value: &str) -> Result<(), ValidationError> {
    const SHAPE: &str = "must be an absolute URL path with an optional query (RFC 3986 path-absolute [\"?\" query], \
         at most 1024 bytes): starting with '/' but not '//', of A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , ; = : @ / \
         and %HH escapes, '?' only in the query";
    let fail = |why: String| Err(err(field, format!("{value:?} {why}; it {SHAPE}")));
    if value.len() > MAX_HTTP_PATH_LEN {
        return fail(format!("is {} bytes", value.len()));
    }
    if !value.starts_with('/') || value.starts_with("//") {
        return fail("does not start with a single '/'".into());
    }
    let b = value.as_bytes();
    let mut in_query = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = b.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return fail(format!(
                    "has a '%' at byte {i} not followed by two hex digits"
                ));
            }
            i += 3;
            continue;
        }
        let ok = is_unreserved(c)
            || is_sub_delim(c)
            || matches!(c, b':' | b'@' | b'/')
            || (c == b'?' && in_query);
        if c == b'?' && !in_query {
            in_query = true;
        } else if !ok {
            let ch = value[i..].chars().next().unwrap_or_default();
            return fail(format!("contains {ch:?}"));
        }
        i += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Environment, commands, users, capabilities
// ---------------------------------------------------------------------------------------

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 255 bytes.
pub fn check_env_key(field: &str, key: &str) -> Result<(), ValidationError> {
    let ok = key.len() <= MAX_ENV_KEY_LEN
        && key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(err(
            field,
            format!(
                "{key:?} is not a valid environment variable name: 1-255 characters of A-Z, a-z, 0-9 and '_', not starting with a digit"
            ),
        ))
    }
}

/// A plain env value goes on one line of a Podman env file: no NUL, CR or LF (a line break
/// would start another variable), at most 32 KiB.
pub fn check_env_value(field: &str, value: &str) -> Result<(), ValidationError> {
    if let Some(c) = value.chars().find(|c| matches!(c, '\0' | '\r' | '\n')) {
        return Err(err(
            field,
            format!(
                "contains {c:?}; an environment value is one line: any characters but NUL, CR and LF"
            ),
        ));
    }
    if value.len() > MAX_ENV_VALUE_LEN {
        return Err(err(
            field,
            format!(
                "is {} bytes; an environment value is at most {MAX_ENV_VALUE_LEN} bytes",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// One argument of a container or health command: any characters but NUL (it becomes a C
/// string), at most 64 KiB. Commands follow `--` and the image (or `exec <container>`),
/// so a leading `-` is the program's business, not Podman's.
pub fn check_command_arg(field: &str, arg: &str) -> Result<(), ValidationError> {
    if arg.contains('\0') {
        return Err(err(
            field,
            "contains a NUL byte; command arguments may hold any characters but NUL".into(),
        ));
    }
    if arg.len() > MAX_ARG_LEN {
        return Err(err(
            field,
            format!(
                "is {} bytes; a command argument is at most {MAX_ARG_LEN} bytes",
                arg.len()
            ),
        ));
    }
    Ok(())
}

fn is_numeric_id(s: &str) -> bool {
    // uid_t is 32 bits and (uid_t)-1 means "no change": 0..=4294967294.
    (1..=10).contains(&s.len())
        && s.bytes().all(|c| c.is_ascii_digit())
        && s.parse::<u64>().is_ok_and(|n| n < u64::from(u32::MAX))
}

/// POSIX portable user or group name: `[a-z_][a-z0-9_-]{0,31}`.
fn is_posix_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// `user[:group]` for `--user`, each a numeric id (0-4294967294) or a POSIX name
/// `[a-z_][a-z0-9_-]{0,31}`. Never starts with `-`.
pub fn check_user(field: &str, user: &str) -> Result<(), ValidationError> {
    let part = |s: &str| is_numeric_id(s) || is_posix_name(s);
    let ok = match user.split_once(':') {
        Some((u, g)) => part(u) && part(g),
        None => part(user),
    };
    if ok {
        Ok(())
    } else {
        Err(err(
            field,
            format!(
                "{user:?} must be user[:group], each a number (uid/gid up to 4294967294) or a name of a-z, 0-9, '_' and '-' \
                 starting with a letter or '_' (at most 32 characters)"
            ),
        ))
    }
}

/// A Linux capability name without `CAP_`, from [`LINUX_CAPABILITIES`].
pub fn check_capability(field: &str, cap: &str) -> Result<(), ValidationError> {
    if LINUX_CAPABILITIES.contains(&cap) {
        Ok(())
    } else {
        Err(err(
            field,
            format!(
                "{cap:?} is not a Linux capability (write it in capitals without CAP_, e.g. NET_BIND_SERVICE)"
            ),
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Values that only reach displays and records
// ---------------------------------------------------------------------------------------

/// An artifact's media type, which only goes to records and displays: 1-255 bytes of
/// visible ASCII (no space, no control characters), not starting with `-`. RFC 6838
/// `type/subtype` such as `application/vnd.oci.image.layout.v1.tar` is what authors write.
pub fn check_media_type(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok = (1..=MAX_MEDIA_TYPE_LEN).contains(&value.len())
        && !value.starts_with('-')
        && value.bytes().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(err(
            field,
            format!(
                "{value:?} must be a media type of 1-255 visible ASCII characters (no spaces), not starting with '-', \
                 e.g. application/vnd.oci.image.layout.v1.tar"
            ),
        ))
    }
}

/// An app's display name: 1-100 bytes, not blank, no control characters.
pub fn check_display_name(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok = !value.trim().is_empty()
        && value.len() <= MAX_DISPLAY_NAME_LEN
        && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(err(
            field,
            "must be 1-100 bytes, not blank, without control characters".into(),
        ))
    }
}

/// An app's description: at most 4096 bytes, no control characters but line feeds.
pub fn check_description(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok =
        value.len() <= MAX_DESCRIPTION_LEN && !value.chars().any(|c| c.is_control() && c != '\n');
    if ok {
        Ok(())
    } else {
        Err(err(
            field,
            "must be at most 4096 bytes, without control characters other than line feeds".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn pinned(name: &str) -> String {
        format!("{name}@sha256:{HEX}")
    }

    /// Names (with optional tag) that distribution/reference accepts: reference_test.go
    /// `TestReferenceParse` and regexp_test.go `TestFullNameRegexp`/`TestReferenceRegexp`.
    fn upstream_valid() -> Vec<String> {
        let mut v: Vec<String> = [
            "test_com",
            "test.com:tag",
            "test.com:5000",
            "test.com/repo:tag",
            "test:5000/repo",
            "test:5000/repo:tag",
            "lowercase:Uppercase",
            "sub-dom1.foo.com/bar/baz/quux",
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--7o8h.com/myimage:xn--7o8h.com",
            "foo_bar.com:8080",
            "foo/foo_bar.com:8080",
            "192.168.1.1",
            "192.168.1.1:tag",
            "192.168.1.1:5000",
            "192.168.1.1/repo",
            "192.168.1.1:5000/repo",
            "192.168.1.1:5000/repo:5050",
            "[2001:db8::1]/repo",
            "[2001:db8:1:2:3:4:5:6]/repo:tag",
            "[2001:db8::1]:5000/repo",
            "[2001:db8::1]:5000/repo:tag",
            "[2001:db8::]:5000/repo",
            "[::1]:5000/repo",
            "short",
            "simple/name",
            "library/ubuntu",
            "docker/stevvooe/app",
            "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
            "aa/aa/bb/bb/bb",
            "a/a/a/a",
            "a",
            "a/aa",
            "a/aa/a",
            "foo.com",
            "foo.com:8080/bar",
            "foo.com/bar",
            "foo.com/bar/baz",
            "localhost:8080/bar",
            "blog.foo.com/bar/baz",
            "aa-a/a",
            "foo_bar",
            "foo_bar.com",
            "foo.com/foo_bar",
            "xn--n3h.com/myimage",
            "example.com/xn--7o8h.com/myimage",
            "example.com/some_separator__underscore/myimage",
            "do__cker/docker",
            "registry.io/foo/project--id.module--name.ver---sion--name",
            "Asdf.com/foo/bar",
            "registry.com:8080/myapp:tag",
            "registry.com:8080/myapp:tag2",
            "localhost:8080",
            "localhost:8080/name",
            "localhost",
            "docker:24-dind",
        ]
        .map(String::from)
        .to_vec();
        v.push(format!("{}a:tag-puts-this-over-max", "a/".repeat(127)));
        v.push(format!("{}a", "a/".repeat(127)));
        v.push(format!("example.com/{}:tag", "a".repeat(243)));
        v.push(format!("a:{}", "t".repeat(128)));
        v
    }

    /// Inputs distribution/reference refuses (same sources).
    fn upstream_invalid() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            ":justtag",
            "Uppercase:tag",
            "test:5000/Uppercase/lowercase:tag",
            "aa/asdf$$^/aa",
            "[2001:db8::1]",
            "[2001:db8::1]:5000",
            "[2001:db8::1]:tag",
            "[fe80::1%eth0]:5000/repo",
            "[fe80::1%@invalidzone]:5000/repo",
            "a/a/a/a/",
            "a//a/a",
            "foo.com/",
            "foo.com:http/bar",
            "a^a",
            "asdf$$^/aa",
            "a-/a/a/a",
            "foo.com/a-/a/a",
            "-foo/bar",
            "foo/bar-",
            "foo-/bar",
            "foo/-bar",
            "_foo/bar",
            "foo_bar.com:8080/app",
            "____/____",
            "_docker/_docker",
            "docker_/docker_",
            "example.com/__underscore/myimage",
            "example.com/..dots/myimage",
            "example.com/.dots/myimage",
            "example.com/nodouble..dots/myimage",
            "docker./docker",
            ".docker/docker",
            "docker-/docker",
            "-docker/docker",
            "do..cker/docker",
            "do__cker:8080/docker",
            "Foo/FarB",
            "registry.com:8080/myapp:invalid~tag",
            "bad_hostname.com:8080/myapp:tag",
            "localhost:http/name",
        ]
        .map(String::from)
        .to_vec();
        v.push(format!("domain/{}:tag", "a".repeat(256)));
        v.push(format!("a:{}", "t".repeat(129)));
        v.push("a:.tag".into());
        v.push("a:-tag".into());
        v
    }

    #[test]
    fn references_distribution_accepts_are_accepted_when_pinned() {
        for name in upstream_valid() {
            let r = pinned(&name);
            assert!(
                parse_image_reference(&r).is_ok(),
                "{r}: {:?}",
                parse_image_reference(&r)
            );
        }
    }

    #[test]
    fn references_distribution_refuses_are_refused() {
        for name in upstream_invalid() {
            let r = pinned(&name);
            assert!(parse_image_reference(&r).is_err(), "{r} was accepted");
        }
    }

    #[test]
    fn references_must_be_pinned_by_a_sha256_digest() {
        for r in [
            "docker.io/library/nginx:latest".to_owned(),
            "test:5000/repo".to_owned(),
            format!("repo@sha256:{}", "f".repeat(34)),
            format!("repo@sha256:{}", "f".repeat(65)),
            format!("repo@sha256:{}", "F".repeat(64)),
            format!("validname@invaliddigest:{HEX}"),
            format!("validname@sha512:{HEX}{HEX}"),
            "registry.com:8080/myapp@sha256:badbadbadbad".to_owned(),
            "registry.com:8080/myapp@bad".to_owned(),
            format!("@sha256:{HEX}"),
            format!("repo@sha256:{HEX}@sha256:{HEX}"),
            format!("repo@sha256:{HEX}\n"),
        ] {
            assert!(parse_image_reference(&r).is_err(), "{r} was accepted");
        }
        let r = format!("registry.example:5000/team/app:1.2@sha256:{HEX}");
        assert_eq!(
            parse_image_reference(&r).unwrap(),
            ImageReference {
                domain: Some("registry.example:5000"),
                path: "team/app",
                tag: Some("1.2"),
                digest: &format!("sha256:{HEX}"),
            }
        );
        let r = format!("localhost:8080@sha256:{HEX}");
        let parsed = parse_image_reference(&r).unwrap();
        assert_eq!(
            (parsed.domain, parsed.path, parsed.tag),
            (None, "localhost", Some("8080"))
        );
        assert_eq!(parsed.name(), "localhost");
    }

    #[test]
    fn the_whole_repository_name_is_at_most_255_characters() {
        // Stricter than distribution/reference, which bounds only the path.
        let ok = format!("example.com/{}", "a".repeat(243));
        assert_eq!(ok.len(), 255);
        assert!(parse_image_reference(&pinned(&ok)).is_ok());
        let long = format!("example.com/{}", "a".repeat(244));
        let e = parse_image_reference(&pinned(&long)).unwrap_err();
        assert!(e.contains("at most 255"), "{e}");
    }

    #[test]
    fn the_flag_injection_reference_is_refused() {
        let attack = format!("--mount=type=bind,src=/,dst=/x@sha256:{HEX}");
        let e = check_image_reference("containers[0].image.reference", &attack).unwrap_err();
        assert_eq!(e.field, "containers[0].image.reference");
        assert!(e.rule.contains("pinned by digest"), "{}", e.rule);
        for r in [
            format!("-x@sha256:{HEX}"),
            format!("--privileged@sha256:{HEX}"),
            format!("-v/:/x@sha256:{HEX}"),
            format!(" nginx@sha256:{HEX}"),
            format!("nginx @sha256:{HEX}"),
        ] {
            assert!(parse_image_reference(&r).is_err(), "{r} was accepted");
        }
    }

    #[test]
    fn transport_prefixes_are_refused() {
        for t in IMAGE_TRANSPORTS {
            let r = pinned(&format!("{t}:x"));
            let e = parse_image_reference(&r).unwrap_err();
            assert!(e.contains("transport"), "{r}: {e}");
            assert!(parse_image_reference(&pinned(&format!("{t}:5000/x"))).is_err());
            // The bare name is an ordinary image name.
            assert!(parse_image_reference(&pinned(t)).is_ok(), "{t}");
        }
        assert!(parse_image_reference(&pinned("docker:latest")).is_ok());
        assert!(parse_image_reference(&pinned("Dir:x")).is_err());
    }

    #[test]
    fn domains_follow_distribution_domain_regexp() {
        for (input, ok) in [
            ("test.com", true),
            ("test.com:10304", true),
            ("test.com:http", false),
            ("localhost", true),
            ("localhost:8080", true),
            ("a", true),
            ("a.b", true),
            ("ab.cd.com", true),
            ("a-b.com", true),
            ("-ab.com", false),
            ("ab-.com", false),
            ("ab.c-om", true),
            ("ab.-com", false),
            ("ab.com-", false),
            ("0101.com", true),
            ("001a.com", true),
            ("b.gbc.io:443", true),
            ("b.gbc.io", true),
            ("xn--n3h.com", true),
            ("Asdf.com", true),
            ("192.168.1.1:75050", true),
            ("192.168.1.1:750050", true),
            ("[fd00:1:2::3]:75050", true),
            ("[fd00:1:2::3]75050", false),
            ("[fd00:1:2::3]::75050", false),
            ("[fd00:1:2::3%eth0]:75050", false),
            ("[fd00123123123]:75050", true),
            ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050", true),
            ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505", true),
            ("fd00:1:2::3:75050", false),
            ("", false),
            ("a:", false),
            ("[]", false),
        ] {
            assert_eq!(is_domain_and_port(input), ok, "{input:?}");
        }
    }

    #[test]
    fn volume_paths() {
        for ok in [
            "/data",
            "/var/lib/app",
            "/a b",
            "/x=y",
            "/ünïcode",
            "/a/.hidden",
            "/a/..b",
        ] {
            assert!(check_volume_path("v", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "/data:/host",
            "/x,ro",
            "/x:ro",
            "/x:/y:rw,z",
            "data",
            "",
            "/",
            "//",
            "/a//b",
            "/a/",
            "/a/./b",
            "/a/../b",
            "/..",
            "/a\nb",
            "/a\0b",
            "/a\tb",
            "/a\u{7f}",
            "/a\u{85}",
            "-v",
            "--volume=/:/x",
        ] {
            let e = check_volume_path("containers[0].volumes[0].path", bad).unwrap_err();
            assert_eq!(e.field, "containers[0].volumes[0].path");
            assert!(e.rule.contains("absolute path"), "{bad:?}: {}", e.rule);
        }
        assert!(check_volume_path("v", &format!("/{}", "a".repeat(1023))).is_ok());
        assert!(check_volume_path("v", &format!("/{}", "a".repeat(1024))).is_err());
    }

    #[test]
    fn http_paths() {
        for ok in [
            "/",
            "/healthz",
            "/a/b/",
            "/a%20b",
            "/api/v1/status?verbose=1&x=%2F",
            "/?",
            "/a?b?c/d",
            "/~user/@x:y;z=1,2+3!$'()*",
            "/a//b",
        ] {
            assert!(check_http_path("p", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "healthz",
            "//evil.example/x",
            "/a b",
            "/\r\nHost: evil",
            "/x\r\n",
            "/x\n",
            "/x\0",
            "/x#frag",
            "/%zz",
            "/%2",
            "/\"",
            "/<script>",
            "/é",
            "/x\\y",
            "/x?y z",
        ] {
            let e = check_http_path("containers[0].health.http.path", bad).unwrap_err();
            assert_eq!(e.field, "containers[0].health.http.path");
            assert!(e.rule.contains("RFC 3986"), "{bad:?}: {}", e.rule);
        }
        assert!(check_http_path("p", &format!("/{}", "a".repeat(1023))).is_ok());
        assert!(check_http_path("p", &format!("/{}", "a".repeat(1024))).is_err());
    }

    #[test]
    fn env_keys_and_values() {
        for ok in ["A", "_", "PATH", "a_b_1", "_1"] {
            assert!(check_env_key("k", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "1A",
            "A-B",
            "A=B",
            "A B",
            "-A",
            "#A",
            "Ä",
            &"A".repeat(256),
        ] {
            assert!(check_env_key("k", bad).is_err(), "{bad:?}");
        }
        for ok in [
            "",
            "x",
            "a=b",
            "with space",
            "tab\there",
            "ünï",
            "-flag",
            "#x",
        ] {
            assert!(check_env_value("v", ok).is_ok(), "{ok:?}");
        }
        for bad in ["a\nB=c", "a\r", "\n", "a\0b"] {
            let e = check_env_value("containers[0].env.GREETING", bad).unwrap_err();
            assert_eq!(e.field, "containers[0].env.GREETING");
            assert!(e.rule.contains("one line"), "{}", e.rule);
        }
        assert!(check_env_value("v", &"x".repeat(MAX_ENV_VALUE_LEN)).is_ok());
        assert!(check_env_value("v", &"x".repeat(MAX_ENV_VALUE_LEN + 1)).is_err());
    }

    #[test]
    fn command_arguments() {
        for ok in ["", "-", "--privileged", "a b", "a\nb", "ünï"] {
            assert!(check_command_arg("c", ok).is_ok(), "{ok:?}");
        }
        let e = check_command_arg("containers[0].command[1]", "a\0b").unwrap_err();
        assert_eq!(e.field, "containers[0].command[1]");
        assert!(check_command_arg("c", &"x".repeat(MAX_ARG_LEN + 1)).is_err());
    }

    #[test]
    fn users() {
        for ok in [
            "0",
            "1000",
            "1000:1000",
            "0:0",
            "4294967294",
            "app",
            "_app",
            "www-data",
            "app:staff",
            "app:1000",
            "1000:staff",
            "a234567890123456789012345678901",
        ] {
            assert!(check_user("u", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "--privileged",
            "-1",
            "-u0",
            "+1",
            "4294967295",
            "99999999999",
            "1000:",
            ":1000",
            "1000:1000:1000",
            "App",
            "1app",
            "app user",
            "app\n",
            "a2345678901234567890123456789012x",
            "ünï",
            "app$",
            "root:--privileged",
        ] {
            let e = check_user("containers[0].user", bad).unwrap_err();
            assert_eq!(e.field, "containers[0].user");
            assert!(e.rule.contains("user[:group]"), "{}", e.rule);
        }
    }

    #[test]
    fn capabilities_names_and_displays() {
        assert!(check_capability("c", "NET_BIND_SERVICE").is_ok());
        for bad in ["CAP_CHOWN", "chown", "ALL", "CHOWN,SYS_ADMIN", "-CHOWN", ""] {
            assert!(check_capability("c", bad).is_err(), "{bad:?}");
        }
        for ok in ["a", "a1", "hello-world", &"a".repeat(63)] {
            assert!(check_name("n", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "1a",
            "a_b",
            "a:b",
            "a,b",
            &"a".repeat(64),
        ] {
            assert!(check_name("n", bad).is_err(), "{bad:?}");
        }
        for ok in [
            "application/vnd.oci.image.layout.v1.tar",
            "image/png",
            "application/vnd.docker.image.rootfs.diff.tar+gzip",
        ] {
            assert!(check_media_type("m", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "text/plain; charset=utf-8",
            "a\n/b",
            "-a/b",
            "é/x",
            &"a".repeat(256),
        ] {
            assert!(check_media_type("m", bad).is_err(), "{bad:?}");
        }
        assert!(check_display_name("name", "Hello Wörld").is_ok());
        for bad in ["", "   ", "a\nb", "a\u{1b}[31m", &"x".repeat(101)] {
            assert!(check_display_name("name", bad).is_err(), "{bad:?}");
        }
        assert!(check_description("description", "one\ntwo").is_ok());
        for bad in ["a\rb", "a\0", "\u{1b}[2J", &"x".repeat(4097)] {
            assert!(check_description("description", bad).is_err(), "{bad:?}");
        }
    }

    /// The literal patterns of distribution/reference regexp.go, for the differential
    /// property below (Go's `\w` is ASCII, hence `(?-u:\w)`).
    mod upstream {
        pub const ALPHANUMERIC: &str = r"[a-z0-9]+";
        pub const SEPARATOR: &str = r"(?:[._]|__|[-]+)";
        pub const DOMAIN_NAME_COMPONENT: &str =
            r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        pub const OPTIONAL_PORT: &str = r"(?::[0-9]+)?";
        pub const TAG: &str = r"(?-u:\w)(?-u:[\w.-]){0,127}";
        pub const DIGEST: &str =
            r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
        pub const IPV6: &str = r"\[(?:[a-fA-F0-9:]+)\]";

        pub fn reference_pattern() -> String {
            let domain_name = format!(r"{DOMAIN_NAME_COMPONENT}(?:\.{DOMAIN_NAME_COMPONENT})*");
            let host = format!("(?:{domain_name}|{IPV6})");
            let domain_and_port = format!("{host}{OPTIONAL_PORT}");
            let path_component = format!("{ALPHANUMERIC}(?:{SEPARATOR}{ALPHANUMERIC})*");
            let remote_name = format!("{path_component}(?:/{path_component})*");
            let name = format!("(?:{domain_and_port}/)?{remote_name}");
            format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$")
        }
    }

    /// What this module should decide given the upstream regexp's verdict and captures.
    fn expected_by_upstream(re: &regex::Regex, s: &str) -> bool {
        let Some(c) = re.captures(s) else {
            return false;
        };
        let name = c.get(1).map_or("", |m| m.as_str());
        let digest = c.get(3).map(|m| m.as_str());
        let prefix = s.split(':').next().unwrap_or_default();
        name.len() <= MAX_IMAGE_NAME_LEN
            && digest.is_some_and(is_sha256_digest)
            && !IMAGE_TRANSPORTS
                .iter()
                .any(|t| t.eq_ignore_ascii_case(prefix))
    }

    mod differential {
        use super::*;
        use proptest::prelude::*;

        fn upstream_re() -> regex::Regex {
            regex::Regex::new(&upstream::reference_pattern()).unwrap()
        }

        /// Strings over the characters that matter to the grammar, often with a valid digest.
        fn near_references() -> impl Strategy<Value = String> {
            let atom = prop_oneof![
                6 => proptest::char::ranges(vec!['a'..='c', '0'..='1'].into()).prop_map(String::from),
                3 => prop::sample::select(vec!["/", ":", ".", "-"]).prop_map(String::from),
                2 => prop::sample::select(vec![
                    "_", "__", "--", "@", "[", "]", "::", "A", "Z", "~", "%", " ", "\n", "é",
                    "localhost", "example.com", ":5000", "[::1]", "dir", "oci-archive",
                ])
                .prop_map(String::from),
            ];
            let body = prop::collection::vec(atom, 0..16).prop_map(|v| v.concat());
            (
                body,
                prop::option::weighted(0.7, Just(format!("@sha256:{HEX}"))),
            )
                .prop_map(|(b, d)| format!("{b}{}", d.unwrap_or_default()))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(6000))]

            #[test]
            fn parser_agrees_with_the_upstream_regexp_on_near_misses(s in near_references()) {
                let re = upstream_re();
                prop_assert_eq!(parse_image_reference(&s).is_ok(), expected_by_upstream(&re, &s), "{:?}", s);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn parser_accepts_what_the_upstream_regexp_generates(
                s in proptest::string::string_regex(&format!(
                    "(?:{}/)?{p}(?:/{p}){{0,3}}(?::{t})?@sha256:[a-f0-9]{{64}}",
                    format_args!(
                        r"(?:{c}(?:\.{c}){{0,3}}|{ip}){port}",
                        c = upstream::DOMAIN_NAME_COMPONENT,
                        ip = upstream::IPV6,
                        port = upstream::OPTIONAL_PORT
                    ),
                    p = format_args!("{a}(?:{s}{a}){{0,3}}", a = upstream::ALPHANUMERIC, s = upstream::SEPARATOR),
                    t = upstream::TAG,
                )).unwrap()
            ) {
                let re = upstream_re();
                prop_assert!(re.is_match(&s), "generator out of the grammar: {:?}", s);
                prop_assert_eq!(parse_image_reference(&s).is_ok(), expected_by_upstream(&re, &s), "{:?}", s);
            }
        }
    }
}
