//! The apps of a catalog: new apps with all of their permissions, and what changed in
//! an app's artifacts, manifest and containers (permission changes flagged `!!`).

use std::collections::{BTreeMap, BTreeSet};

use archy_registry::manifest::{Container, Dependency, EnvValue, NetworkMode, PidMode, Resources};
use archy_registry::{Catalog, CatalogApp, Manifest};

use super::Report;
use super::text::{
    artifact_text, dependency_text, env_text, env_value, health_text, image_text, is_secret,
    network_text, pid_text, port_key, port_text, secret_text, ui_text, user_text, volume_text,
};

pub(super) fn apps(r: &mut Report, new: &Catalog, old: Option<&Catalog>) {
    type Pair<'a> = (Option<&'a CatalogApp>, Option<&'a CatalogApp>);
    let mut both: BTreeMap<&str, Pair<'_>> = BTreeMap::new();
    for app in old.map_or(&[][..], |c| &c.apps) {
        both.entry(&app.id).or_default().0 = Some(app);
    }
    for app in &new.apps {
        both.entry(&app.id).or_default().1 = Some(app);
    }
    let count = |f: fn(&Pair<'_>) -> bool| both.values().filter(|p| f(p)).count();
    let added = count(|p| matches!(p, (None, Some(_))));
    let removed = count(|p| matches!(p, (Some(_), None)));
    let changed = count(|p| matches!(p, (Some(o), Some(n)) if o != n));
    let unchanged = count(|p| matches!(p, (Some(o), Some(n)) if o == n));
    r.say(
        0,
        format!("apps: {added} added, {removed} removed, {changed} changed, {unchanged} unchanged"),
    );
    for (id, pair) in both {
        match pair {
            (None, Some(app)) => new_app(r, app),
            (Some(app), None) => r.say(1, format!("- app {id} {} (removed)", app.version)),
            (Some(o), Some(n)) if o == n => {
                r.say(1, format!("= app {id} {} (unchanged)", n.version))
            }
            (Some(o), Some(n)) => changed_app(r, o, n),
            (None, None) => {}
        }
    }
}

fn new_app(r: &mut Report, app: &CatalogApp) {
    r.say(1, format!("+ app {} {} (new)", app.id, app.version));
    let CatalogApp {
        id: _,
        version: _,
        manifest,
        artifacts,
    } = app;
    for a in sorted(artifacts, |a| a.name.clone()) {
        r.say(2, format!("artifact {}", artifact_text(a)));
    }
    for s in sorted(&manifest.secrets, |s| s.name.clone()) {
        r.flag(2, format!("secret {}", secret_text(s)));
    }
    for d in sorted(&manifest.dependencies, dependency_text) {
        r.flag(2, format!("dependency on {}", dependency_text(d)));
    }
    for c in sorted(&manifest.containers, |c| c.name.clone()) {
        r.say(2, format!("container {}:", c.name));
        list_permissions(r, 3, c);
    }
}

/// Every permission of a container, each flagged: used for new apps and new containers.
fn list_permissions(r: &mut Report, depth: usize, c: &Container) {
    r.flag(depth, format!("image: {}", image_text(&c.image)));
    r.flag(depth, format!("user: {}", user_text(&c.user)));
    for p in sorted(&c.ports, port_key) {
        r.flag(depth, format!("port {}", port_text(p)));
    }
    for v in sorted(&c.volumes, |v| v.path.clone()) {
        r.flag(depth, format!("volume {}", volume_text(v)));
    }
    for cap in c.capabilities.iter().collect::<BTreeSet<_>>() {
        r.flag(depth, format!("capability {cap}"));
    }
    for (key, value) in &c.env {
        if let EnvValue::Secret(_) = value {
            r.flag(depth, format!("env {}", env_text(key, value)));
        }
    }
    if c.privileged {
        r.flag(depth, "PRIVILEGED");
    }
    if c.network == NetworkMode::Host {
        r.flag(depth, "network: HOST");
    }
    if c.pid == PidMode::Host {
        r.flag(depth, "pid namespace: HOST");
    }
    if !c.privileged && c.network == NetworkMode::App && c.pid == PidMode::Private {
        r.say(
            depth,
            "not privileged; its app's own network and PID namespace",
        );
    }
}

fn changed_app(r: &mut Report, old: &CatalogApp, new: &CatalogApp) {
    let CatalogApp {
        id,
        version,
        manifest,
        artifacts,
    } = new;
    if *version > old.version {
        r.say(1, format!("~ app {id} {} -> {version}", old.version));
    } else if *version == old.version {
        r.say(1, format!("~ app {id} {version}"));
        r.flag(
            2,
            "changed without a version bump: the same version now means something else",
        );
    } else {
        r.say(1, format!("~ app {id} {} -> {version}", old.version));
        r.flag(2, "version goes DOWN");
    }
    let before = r.lines.len();
    for (name, change) in changes(
        old.artifacts.iter().map(|a| (a.name.as_str(), a)),
        artifacts.iter().map(|a| (a.name.as_str(), a)),
    ) {
        match change {
            Change::Added(a) => r.say(2, format!("artifact added: {}", artifact_text(a))),
            Change::Removed(_) => r.say(2, format!("artifact removed: {name}")),
            Change::Changed(o, n) => {
                if o.blake3 != n.blake3 {
                    r.say(
                        2,
                        format!("artifact {name}: blake3 {} -> {}", o.blake3, n.blake3),
                    );
                }
                if o.size != n.size {
                    r.say(
                        2,
                        format!("artifact {name}: size {} -> {} bytes", o.size, n.size),
                    );
                }
                if o.media_type != n.media_type {
                    r.say(
                        2,
                        format!(
                            "artifact {name}: media type {} -> {}",
                            o.media_type, n.media_type
                        ),
                    );
                }
            }
        }
    }
    let flagged = r.flagged();
    manifest_diff(r, 2, &old.manifest, manifest);
    if r.flagged() == flagged {
        r.say(2, "no permission changes");
    }
    if r.lines.len() == before + 1 && *version == old.version {
        // Every field is compared above; what is left is the order of list entries.
        r.say(
            2,
            "only the order of entries changed (no change in meaning)",
        );
    }
}

fn manifest_diff(r: &mut Report, depth: usize, old: &Manifest, new: &Manifest) {
    let Manifest {
        // The app id is the key; the version is shown with the app.
        id: _,
        version: _,
        name,
        description,
        // Declarations only: the catalog validates that its artifacts (compared above)
        // have exactly these names and media types.
        artifacts: _,
        containers,
        secrets,
        dependencies,
        resources,
        ui,
    } = new;
    if *name != old.name {
        r.say(depth, format!("name: {:?} -> {name:?}", old.name));
    }
    if *description != old.description {
        r.say(
            depth,
            format!("description: {:?} -> {description:?}", old.description),
        );
    }
    for (name, change) in changes(
        old.secrets.iter().map(|s| (s.name.as_str(), s)),
        secrets.iter().map(|s| (s.name.as_str(), s)),
    ) {
        match change {
            Change::Added(s) => r.flag(depth, format!("secret added: {}", secret_text(s))),
            Change::Removed(_) => r.flag(depth, format!("secret removed: {name}")),
            Change::Changed(o, n) => r.flag(
                depth,
                format!(
                    "secret {name}: length {} -> {} (a secret is generated once, at install)",
                    o.length, n.length
                ),
            ),
        }
    }
    // Keyed by the whole entry: a manifest may name one app twice with two ranges.
    let deps = |ds: &[Dependency]| -> BTreeSet<String> { ds.iter().map(dependency_text).collect() };
    let (old_deps, new_deps) = (deps(&old.dependencies), deps(dependencies));
    for d in old_deps.difference(&new_deps) {
        r.flag(depth, format!("dependency removed: {d}"));
    }
    for d in new_deps.difference(&old_deps) {
        r.flag(depth, format!("dependency added: {d}"));
    }
    let Resources {
        disk_mb,
        memory_mb,
        millicpus,
        pids_limit,
    } = resources;
    if *disk_mb != old.resources.disk_mb {
        r.say(
            depth,
            format!("disk needed: {} -> {disk_mb} MiB", old.resources.disk_mb),
        );
    }
    if *memory_mb != old.resources.memory_mb {
        let mib = |m: &Option<u64>| m.map_or("none".to_owned(), |m| format!("{m} MiB"));
        r.say(
            depth,
            format!(
                "memory: {} -> {}",
                mib(&old.resources.memory_mb),
                mib(memory_mb)
            ),
        );
    }
    if *millicpus != old.resources.millicpus {
        let cpus = |m: &Option<u32>| m.map_or("none".to_owned(), |m| format!("{m} millicpus"));
        r.say(
            depth,
            format!(
                "cpu: {} -> {}",
                cpus(&old.resources.millicpus),
                cpus(millicpus)
            ),
        );
    }
    if *pids_limit != old.resources.pids_limit {
        let pids = |m: &Option<u32>| m.map_or("default".to_owned(), |m| m.to_string());
        r.say(
            depth,
            format!(
                "process limit: {} -> {}",
                pids(&old.resources.pids_limit),
                pids(pids_limit)
            ),
        );
    }
    if *ui != old.ui {
        r.say(
            depth,
            format!("ui: {} -> {}", ui_text(&old.ui), ui_text(ui)),
        );
    }
    for (name, change) in changes(
        old.containers.iter().map(|c| (c.name.as_str(), c)),
        containers.iter().map(|c| (c.name.as_str(), c)),
    ) {
        match change {
            Change::Added(c) => {
                r.flag(depth, format!("container {name}: added"));
                list_permissions(r, depth + 1, c);
            }
            Change::Removed(_) => r.flag(depth, format!("container {name}: removed")),
            Change::Changed(o, n) => container_diff(r, depth, o, n),
        }
    }
}

fn container_diff(r: &mut Report, depth: usize, old: &Container, new: &Container) {
    let Container {
        name,
        image,
        command,
        env,
        ports,
        volumes,
        capabilities,
        health,
        stop_grace_seconds,
        depends_on,
        user,
        privileged,
        network,
        pid,
        read_only_root,
    } = new;
    let flag = |r: &mut Report, text: String| r.flag(depth, format!("container {name}: {text}"));
    if *image != old.image {
        flag(
            r,
            format!("image: {} -> {}", image_text(&old.image), image_text(image)),
        );
    }
    if *user != old.user {
        flag(
            r,
            format!("user: {} -> {}", user_text(&old.user), user_text(user)),
        );
    }
    if *privileged != old.privileged {
        let text = |p: bool| if p { "YES" } else { "no" };
        flag(
            r,
            format!(
                "privileged: {} -> {}",
                text(old.privileged),
                text(*privileged)
            ),
        );
    }
    if *network != old.network {
        flag(
            r,
            format!(
                "network: {} -> {}",
                network_text(old.network),
                network_text(*network)
            ),
        );
    }
    if *pid != old.pid {
        flag(
            r,
            format!("pid namespace: {} -> {}", pid_text(old.pid), pid_text(*pid)),
        );
    }
    if *read_only_root != old.read_only_root {
        let text = |ro: bool| if ro { "read-only" } else { "writable" };
        flag(
            r,
            format!(
                "root filesystem: {} -> {}",
                text(old.read_only_root),
                text(*read_only_root)
            ),
        );
    }
    for (_, change) in changes(
        old.ports.iter().map(|p| (port_key(p), p)),
        ports.iter().map(|p| (port_key(p), p)),
    ) {
        let text = match change {
            Change::Added(p) => format!("port added: {}", port_text(p)),
            Change::Removed(p) => format!("port removed: {}", port_text(p)),
            Change::Changed(o, n) => format!("port {} -> container {}", port_text(o), n.container),
        };
        flag(r, text);
    }
    for (_, change) in changes(
        old.volumes.iter().map(|v| (v.path.as_str(), v)),
        volumes.iter().map(|v| (v.path.as_str(), v)),
    ) {
        let text = match change {
            Change::Added(v) => format!("volume added: {}", volume_text(v)),
            Change::Removed(v) => format!("volume removed: {}", volume_text(v)),
            Change::Changed(o, n) => {
                format!("volume {} -> {}", volume_text(o), volume_text(n))
            }
        };
        flag(r, text);
    }
    let caps = |c: &[String]| -> BTreeSet<String> { c.iter().cloned().collect() };
    let (old_caps, new_caps) = (caps(&old.capabilities), caps(capabilities));
    for cap in old_caps.difference(&new_caps) {
        flag(r, format!("capability removed: {cap}"));
    }
    for cap in new_caps.difference(&old_caps) {
        flag(r, format!("capability added: {cap}"));
    }
    for (key, change) in changes(old.env.iter(), env.iter()) {
        let (text, secret) = match change {
            Change::Added(v) => (format!("env added: {}", env_text(key, v)), is_secret(v)),
            Change::Removed(v) => (format!("env removed: {}", env_text(key, v)), is_secret(v)),
            Change::Changed(o, n) => (
                format!("env {key}: {} -> {}", env_value(o), env_value(n)),
                is_secret(o) || is_secret(n),
            ),
        };
        if secret {
            flag(r, text);
        } else {
            r.say(depth, format!("container {name}: {text}"));
        }
    }
    let mut say = |text: String| r.say(depth, format!("container {name}: {text}"));
    if *command != old.command {
        say(format!("command: {:?} -> {command:?}", old.command));
    }
    if *health != old.health {
        say(format!(
            "health check: {} -> {}",
            health_text(&old.health),
            health_text(health)
        ));
    }
    if *stop_grace_seconds != old.stop_grace_seconds {
        say(format!(
            "stop grace: {}s -> {stop_grace_seconds}s",
            old.stop_grace_seconds
        ));
    }
    if *depends_on != old.depends_on {
        say(format!(
            "starts after: {:?} -> {depends_on:?}",
            old.depends_on
        ));
    }
}

/// One entry's change between two keyed collections.
enum Change<'a, V> {
    Added(&'a V),
    Removed(&'a V),
    Changed(&'a V, &'a V),
}

/// What differs between two keyed collections, in key order.
fn changes<'a, K: Ord, V: PartialEq>(
    old: impl IntoIterator<Item = (K, &'a V)>,
    new: impl IntoIterator<Item = (K, &'a V)>,
) -> Vec<(K, Change<'a, V>)> {
    let mut both: BTreeMap<K, (Option<&'a V>, Option<&'a V>)> = BTreeMap::new();
    for (k, v) in old {
        both.entry(k).or_default().0 = Some(v);
    }
    for (k, v) in new {
        both.entry(k).or_default().1 = Some(v);
    }
    both.into_iter()
        .filter_map(|(k, pair)| {
            let change = match pair {
                (Some(o), Some(n)) if o == n => return None,
                (Some(o), Some(n)) => Change::Changed(o, n),
                (None, Some(n)) => Change::Added(n),
                (Some(o), None) => Change::Removed(o),
                (None, None) => return None,
            };
            Some((k, change))
        })
        .collect()
}

fn sorted<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by_key(|t| key(t));
    v
}
