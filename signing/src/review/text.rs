//! One-line texts for manifest entries (artifacts, images, ports, volumes, env, health
//! checks…), as the review prints them.

use archy_registry::Artifact;
use archy_registry::manifest::{
    Dependency, EnvValue, HealthCheck, HttpCheck, ImageSource, NetworkMode, PidMode, Port, Probe,
    SecretSpec, TcpCheck, Ui, Volume,
};

pub(super) fn artifact_text(a: &Artifact) -> String {
    let Artifact {
        name,
        blake3,
        size,
        media_type,
    } = a;
    format!("{name}: blake3 {blake3}, {size} bytes, {media_type}")
}

pub(super) fn secret_text(s: &SecretSpec) -> String {
    let SecretSpec { name, length } = s;
    format!("{name} ({length} characters, generated on install)")
}

pub(super) fn dependency_text(d: &Dependency) -> String {
    let Dependency { id, version } = d;
    format!("{id} {version}")
}

pub(super) fn image_text(i: &ImageSource) -> String {
    let ImageSource {
        artifact,
        reference,
    } = i;
    match (artifact, reference) {
        (Some(a), None) => format!("artifact {a:?}"),
        (None, Some(r)) => format!("registry reference {r}"),
        (a, r) => format!("artifact {a:?}, reference {r:?}"),
    }
}

pub(super) fn user_text(user: &Option<String>) -> String {
    match user.as_deref() {
        None => "the image's default".to_owned(),
        Some(u) if u == "0" || u.starts_with("0:") || u == "root" || u.starts_with("root:") => {
            format!("{u} (ROOT)")
        }
        Some(u) => u.to_owned(),
    }
}

pub(super) fn port_key(p: &Port) -> (u16, &'static str) {
    (p.host, p.protocol.as_str())
}

pub(super) fn port_text(p: &Port) -> String {
    let Port {
        container,
        host,
        protocol,
    } = p;
    format!("host {host}/{} -> container {container}", protocol.as_str())
}

pub(super) fn volume_text(v: &Volume) -> String {
    let Volume {
        name,
        path,
        read_only,
    } = v;
    let mode = if *read_only {
        "read-only"
    } else {
        "read-write"
    };
    format!("{name:?} at {path}, {mode}")
}

pub(super) fn network_text(n: NetworkMode) -> &'static str {
    match n {
        NetworkMode::App => "app",
        NetworkMode::Host => "HOST",
    }
}

pub(super) fn pid_text(p: PidMode) -> &'static str {
    match p {
        PidMode::Private => "private",
        PidMode::Host => "HOST",
    }
}

pub(super) fn is_secret(v: &EnvValue) -> bool {
    matches!(v, EnvValue::Secret(_))
}

pub(super) fn env_value(v: &EnvValue) -> String {
    match v {
        EnvValue::Plain(s) => format!("{s:?}"),
        EnvValue::Secret(s) => format!("secret {}", s.secret),
    }
}

pub(super) fn env_text(key: &str, v: &EnvValue) -> String {
    format!("{key} = {}", env_value(v))
}

pub(super) fn ui_text(ui: &Option<Ui>) -> String {
    match ui {
        None => "none".to_owned(),
        Some(Ui {
            container,
            port,
            path,
        }) => format!("container {container} port {port} path {path}"),
    }
}

pub(super) fn health_text(h: &Option<HealthCheck>) -> String {
    let Some(HealthCheck {
        probe,
        interval_seconds,
        timeout_seconds,
        retries,
        start_period_seconds,
    }) = h
    else {
        return "none".to_owned();
    };
    let probe = match probe {
        Probe::Http(HttpCheck { port, path }) => format!("http GET :{port}{path}"),
        Probe::Tcp(TcpCheck { port }) => format!("tcp :{port}"),
        Probe::Command(cmd) => format!("command {cmd:?}"),
    };
    format!(
        "{probe}, every {interval_seconds}s, timeout {timeout_seconds}s, {retries} retries, \
         {start_period_seconds}s start period"
    )
}
