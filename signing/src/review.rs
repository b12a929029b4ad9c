//! `review`: what a catalog changes, for the keyholder to read before signing it.
//!
//! Every line that changes what an app may do on a node (image source, user, privileged,
//! host network or PID namespace, ports, volumes, capabilities, secrets and the env that
//! uses them, dependencies on other apps) starts with `!!`, and so does anything wrong
//! with the catalog itself (broken hash chain, version not increasing, origin moved,
//! already expired). Other changes are shown without the mark.
//!
//! The manifest types are destructured field by field below, so a field added to the
//! schema does not compile here until the review says something about it.
//!
//! Nothing here checks signatures (`verify` does). The output depends only on the two
//! files and the clock (for "in N days"): apps, containers and entries are in key order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use archy_registry::manifest::{
    Container, Dependency, EnvValue, HealthCheck, HttpCheck, ImageSource, NetworkMode, PidMode,
    Port, Resources, SecretSpec, TcpCheck, Ui, Volume,
};
use archy_registry::{
    Artifact, Catalog, CatalogApp, Envelope, Manifest, PayloadType, blake3_hex, catalog_link,
};
use chrono::{DateTime, Utc};
use clap::Args;

use crate::document::{
    Document, envelope_or_bare_document, expiry, payload_type, read_file, timestamp,
};

#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// The catalog to review: an envelope (signed or not) or a bare catalog document.
    catalog: PathBuf,
    /// The catalog it replaces: the signed envelope nodes hold now. Without it, every app
    /// is shown as new, with all of its permissions.
    #[arg(long, value_name = "OLD_CATALOG")]
    previous: Option<PathBuf>,
}

pub fn run(args: &ReviewArgs) -> Result<()> {
    let load = |path: &PathBuf| -> Result<CatalogFile> {
        CatalogFile::parse(path.display().to_string(), read_file(path)?)
    };
    let new = load(&args.catalog)?;
    let old = args.previous.as_ref().map(load).transpose()?;
    print!("{}", review(&new, old.as_ref(), Utc::now()));
    Ok(())
}

/// One catalog file, read and parsed (its signatures are counted, not checked).
pub struct CatalogFile {
    name: String,
    bytes: Vec<u8>,
    envelope: Envelope,
    /// A bare catalog document rather than an envelope.
    bare: bool,
    catalog: Catalog,
}

impl CatalogFile {
    pub fn parse(name: String, bytes: Vec<u8>) -> Result<Self> {
        let (envelope, bare) = envelope_or_bare_document(&bytes).with_context(|| name.clone())?;
        let kind = payload_type(&envelope).with_context(|| name.clone())?;
        if kind != PayloadType::Catalog {
            bail!(
                "{name}: a {} envelope, not a catalog",
                envelope.payload_type
            );
        }
        let catalog =
            Catalog::from_json(&envelope.payload_bytes()?).with_context(|| name.clone())?;
        Ok(Self {
            name,
            bytes,
            envelope,
            bare,
            catalog,
        })
    }
}

/// The review: lines, each either plain or marked `!!` (needs the signer's attention).
#[derive(Default)]
pub struct Report {
    lines: Vec<Line>,
}

struct Line {
    attention: bool,
    depth: usize,
    text: String,
}

impl Report {
    fn say(&mut self, depth: usize, text: impl Into<String>) {
        self.push(false, depth, text.into());
    }

    fn flag(&mut self, depth: usize, text: impl Into<String>) {
        self.push(true, depth, text.into());
    }

    fn blank(&mut self) {
        self.push(false, 0, String::new());
    }

    fn push(&mut self, attention: bool, depth: usize, text: String) {
        self.lines.push(Line {
            attention,
            depth,
            text,
        });
    }

    /// How many lines are marked `!!`.
    pub fn flagged(&self) -> usize {
        self.lines.iter().filter(|l| l.attention).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            if line.text.is_empty() {
                writeln!(f)?;
                continue;
            }
            let mark = if line.attention { "!!" } else { "  " };
            writeln!(f, "{mark} {}{}", "  ".repeat(line.depth), line.text)?;
        }
        Ok(())
    }
}

/// Reviews `new` against `old` (the catalog nodes hold now), or on its own.
pub fn review(new: &CatalogFile, old: Option<&CatalogFile>, now: DateTime<Utc>) -> Report {
    let mut r = Report::default();
    files(&mut r, new, old, now);
    r.blank();
    catalog_fields(&mut r, new, old, now);
    r.blank();
    apps(&mut r, &new.catalog, old.map(|o| &o.catalog));
    r.blank();
    let flagged = r.flagged();
    if flagged == 0 {
        r.say(
            0,
            "no line marked !!: no permission changes and nothing wrong with the catalog itself",
        );
    } else {
        r.say(
            0,
            format!("{flagged} line(s) marked !!: read each one before you sign"),
        );
    }
    let payload = new.envelope.payload_bytes().unwrap_or_default();
    r.say(
        0,
        format!(
            "to sign: `archy-sign sign {} --role catalog`; it must show payload blake3 {}",
            new.name,
            blake3_hex(&payload)
        ),
    );
    r
}

fn files(r: &mut Report, new: &CatalogFile, old: Option<&CatalogFile>, now: DateTime<Utc>) {
    let summary = |f: &CatalogFile| Document::Catalog(Box::new(f.catalog.clone())).summary(now);
    r.say(0, format!("{}: {}", new.name, summary(new)));
    let payload = new.envelope.payload_bytes().unwrap_or_default();
    r.say(
        1,
        format!(
            "payload blake3 {} (signatures do not change it)",
            blake3_hex(&payload)
        ),
    );
    if new.bare {
        r.say(1, "a bare document: `sign` wraps it in an envelope");
    } else {
        r.say(
            1,
            format!(
                "{} signature(s) already present (not checked here: `verify` does that)",
                new.envelope.signatures.len()
            ),
        );
    }
    match old {
        Some(old) => {
            r.say(0, format!("replaces {}: {}", old.name, summary(old)));
            r.say(
                1,
                format!(
                    "payload blake3 {}, {} signature(s)",
                    catalog_link(&old.envelope).unwrap_or_default(),
                    old.envelope.signatures.len()
                ),
            );
        }
        None => r.say(
            0,
            "no --previous catalog: every app is listed as new, with all of its permissions",
        ),
    }
}

fn catalog_fields(
    r: &mut Report,
    new: &CatalogFile,
    old: Option<&CatalogFile>,
    now: DateTime<Utc>,
) {
    let Catalog {
        doc_type: _,
        spec_version: _,
        version,
        expires,
        previous,
        origin,
        apps: _,
    } = &new.catalog;
    r.say(0, "catalog");

    match old {
        None => r.say(1, format!("version {version}")),
        Some(o) => {
            let was = o.catalog.version;
            if *version == was + 1 {
                r.say(1, format!("version {was} -> {version}"));
            } else if *version > was {
                r.say(
                    1,
                    format!(
                        "version {was} -> {version} (skips {}: a node holding {was} cannot check \
                         the `previous` link)",
                        *version - was - 1
                    ),
                );
            } else if *version == was && new.bytes == o.bytes {
                r.flag(
                    1,
                    format!(
                        "version {version}: the very same envelope as {} (nodes see no update)",
                        o.name
                    ),
                );
            } else if *version == was && new.envelope.payload == o.envelope.payload {
                r.flag(
                    1,
                    format!(
                        "version {version}: the same payload as {}, other signatures; once \
                         nodes hold one envelope of a version, any other is equivocation",
                        o.name
                    ),
                );
            } else if *version == was {
                r.flag(
                    1,
                    format!(
                        "version {was} -> {version}: same version, different contents; nodes \
                         holding the old one call this equivocation and refuse both"
                    ),
                );
            } else {
                r.flag(
                    1,
                    format!("version {was} -> {version}: goes DOWN; nodes refuse a rollback"),
                );
            }
        }
    }

    let was = match old {
        Some(o) if o.catalog.expires == *expires => " (unchanged)".to_owned(),
        Some(o) => format!(" (was {})", timestamp(o.catalog.expires)),
        None => String::new(),
    };
    if *expires <= now {
        r.flag(
            1,
            format!("{}{was}: nodes will refuse it", expiry(*expires, now)),
        );
    } else {
        r.say(1, format!("{}{was}", expiry(*expires, now)));
    }

    match (old, previous) {
        (None, None) => r.say(1, "previous: none (the first catalog of a chain)"),
        (None, Some(p)) => r.say(
            1,
            format!("previous {p} (not checked: give --previous OLD_CATALOG)"),
        ),
        (Some(o), p) => {
            let expected = catalog_link(&o.envelope).unwrap_or_default();
            match p {
                Some(p) if *p == expected => r.say(
                    1,
                    format!(
                        "previous {p} = payload blake3 of {}: the hash chain holds",
                        o.name
                    ),
                ),
                Some(p) => r.flag(
                    1,
                    format!(
                        "previous {p} does NOT name {} (its payload blake3 is {expected})",
                        o.name
                    ),
                ),
                None => r.flag(
                    1,
                    format!(
                        "previous: none, but {} came before: the hash chain is broken",
                        o.name
                    ),
                ),
            }
            if o.bare {
                r.flag(
                    1,
                    format!(
                        "{} is a bare document, not the signed envelope nodes hold",
                        o.name
                    ),
                );
            } else if o.envelope.signatures.is_empty() {
                r.flag(
                    1,
                    format!(
                        "{} carries no signatures, so nodes never accepted it: `previous` \
                         must name the signed envelope they hold",
                        o.name
                    ),
                );
            }
        }
    }

    let iroh_was = old.map(|o| &o.catalog.origin.iroh);
    let http_was = old.map(|o| &o.catalog.origin.http);
    match http_was {
        Some(was) if *was != origin.http => r.flag(
            1,
            format!(
                "origin http: {was} -> {} (nodes will fetch from there)",
                origin.http
            ),
        ),
        Some(_) => r.say(1, format!("origin http: {} (unchanged)", origin.http)),
        None => r.say(1, format!("origin http: {}", origin.http)),
    }
    match iroh_was {
        Some(was) if *was != origin.iroh => {
            r.flag(1, format!("origin iroh: {was} -> {}", origin.iroh))
        }
        Some(_) => r.say(1, format!("origin iroh: {} (unchanged)", origin.iroh)),
        None => r.say(1, format!("origin iroh: {}", origin.iroh)),
    }
}

fn apps(r: &mut Report, new: &Catalog, old: Option<&Catalog>) {
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

fn artifact_text(a: &Artifact) -> String {
    let Artifact {
        name,
        blake3,
        size,
        media_type,
    } = a;
    format!("{name}: blake3 {blake3}, {size} bytes, {media_type}")
}

fn secret_text(s: &SecretSpec) -> String {
    let SecretSpec { name, length } = s;
    format!("{name} ({length} characters, generated on install)")
}

fn dependency_text(d: &Dependency) -> String {
    let Dependency { id, version } = d;
    format!("{id} {version}")
}

fn image_text(i: &ImageSource) -> String {
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

fn user_text(user: &Option<String>) -> String {
    match user.as_deref() {
        None => "the image's default".to_owned(),
        Some(u) if u == "0" || u.starts_with("0:") || u == "root" || u.starts_with("root:") => {
            format!("{u} (ROOT)")
        }
        Some(u) => u.to_owned(),
    }
}

fn port_key(p: &Port) -> (u16, &'static str) {
    (p.host, p.protocol.as_str())
}

fn port_text(p: &Port) -> String {
    let Port {
        container,
        host,
        protocol,
    } = p;
    format!("host {host}/{} -> container {container}", protocol.as_str())
}

fn volume_text(v: &Volume) -> String {
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

fn network_text(n: NetworkMode) -> &'static str {
    match n {
        NetworkMode::App => "app",
        NetworkMode::Host => "HOST",
    }
}

fn pid_text(p: PidMode) -> &'static str {
    match p {
        PidMode::Private => "private",
        PidMode::Host => "HOST",
    }
}

fn is_secret(v: &EnvValue) -> bool {
    matches!(v, EnvValue::Secret(_))
}

fn env_value(v: &EnvValue) -> String {
    match v {
        EnvValue::Plain(s) => format!("{s:?}"),
        EnvValue::Secret(s) => format!("secret {}", s.secret),
    }
}

fn env_text(key: &str, v: &EnvValue) -> String {
    format!("{key} = {}", env_value(v))
}

fn ui_text(ui: &Option<Ui>) -> String {
    match ui {
        None => "none".to_owned(),
        Some(Ui {
            container,
            port,
            path,
        }) => format!("container {container} port {port} path {path}"),
    }
}

fn health_text(h: &Option<HealthCheck>) -> String {
    let Some(HealthCheck {
        http,
        tcp,
        command,
        interval_seconds,
        timeout_seconds,
        retries,
        start_period_seconds,
    }) = h
    else {
        return "none".to_owned();
    };
    let mut probes = Vec::new();
    if let Some(HttpCheck { port, path }) = http {
        probes.push(format!("http GET :{port}{path}"));
    }
    if let Some(TcpCheck { port }) = tcp {
        probes.push(format!("tcp :{port}"));
    }
    if let Some(cmd) = command {
        probes.push(format!("command {cmd:?}"));
    }
    format!(
        "{}, every {interval_seconds}s, timeout {timeout_seconds}s, {retries} retries, \
         {start_period_seconds}s start period",
        probes.join(" + ")
    )
}

#[cfg(test)]
mod tests {
    use archy_registry::{Origin, SecretKey};
    use chrono::Duration;

    use super::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    const HELLO: &str = r#"
id: hello
name: Hello
version: 1.0.0
artifacts:
  - name: image
    media_type: application/vnd.oci.image.layout.v1.tar
containers:
  - name: web
    image: { artifact: image }
    env:
      GREETING: hi
      PASSWORD: { secret: admin }
    ports: [{ container: 8080, host: 18080 }]
    volumes: [{ name: data, path: /data }]
secrets: [{ name: admin }]
ui: { container: web, port: 8080 }
"#;

    /// HELLO with every kind of permission changed, and a few plain changes.
    fn hello_v2() -> String {
        format!(
            r#"
id: hello
name: Hello
version: 1.1.0
artifacts:
  - name: image
    media_type: application/vnd.oci.image.layout.v1.tar
containers:
  - name: web
    image: {{ reference: "docker.io/library/nginx@sha256:{DIGEST}" }}
    command: ["nginx", "-g", "daemon off;"]
    env:
      GREETING: hello
      PASSWORD: {{ secret: admin }}
      API_KEY: {{ secret: token }}
    ports: [{{ container: 53, host: 18053, protocol: udp }}, {{ container: 8080, host: 18080 }}]
    volumes: [{{ name: data, path: /data, read_only: true }}]
    capabilities: [NET_ADMIN]
    user: "0:0"
    privileged: true
    network: host
    pid: host
    stop_grace_seconds: 30
secrets: [{{ name: admin }}, {{ name: token, length: 64 }}]
dependencies: [{{ id: bitcoin, version: "^1.2" }}]
ui: {{ container: web, port: 8080 }}
"#
        )
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn origin(http: &str) -> Origin {
        Origin {
            http: http.into(),
            iroh: "ab".repeat(32),
        }
    }

    /// A catalog app whose artifacts all hash to `hash` repeated.
    fn app(yaml: &str, hash: &str, size: u64) -> CatalogApp {
        let manifest = Manifest::from_yaml(yaml).unwrap();
        let artifacts = manifest
            .artifacts
            .iter()
            .map(|d| Artifact {
                name: d.name.clone(),
                blake3: hash.repeat(64 / hash.len()),
                size,
                media_type: d.media_type.clone(),
            })
            .collect();
        CatalogApp {
            id: manifest.id.clone(),
            version: manifest.version.clone(),
            manifest,
            artifacts,
        }
    }

    fn named(yaml: &str, id: &str) -> CatalogApp {
        app(&yaml.replace("id: hello", &format!("id: {id}")), "a", 1000)
    }

    struct Build {
        version: u64,
        previous: Option<String>,
        http: &'static str,
        expires: DateTime<Utc>,
        signed: bool,
    }

    impl Default for Build {
        fn default() -> Self {
            Build {
                version: 2,
                previous: None,
                http: "https://origin.example",
                expires: now() + Duration::days(30),
                signed: true,
            }
        }
    }

    fn file(name: &str, apps: Vec<CatalogApp>, b: Build) -> CatalogFile {
        let catalog = Catalog::new(b.version, b.expires, b.previous, origin(b.http), apps).unwrap();
        let mut envelope = Envelope::unsigned(PayloadType::Catalog, &catalog.to_json());
        if b.signed {
            envelope.sign(&SecretKey::from_bytes(&[7; 32])).unwrap();
        }
        CatalogFile::parse(name.into(), envelope.to_bytes()).unwrap()
    }

    fn old_file(apps: Vec<CatalogApp>) -> CatalogFile {
        file(
            "old.json",
            apps,
            Build {
                version: 1,
                ..Build::default()
            },
        )
    }

    /// The new catalog, correctly chained to `old`.
    fn chained(old: &CatalogFile, apps: Vec<CatalogApp>) -> CatalogFile {
        file(
            "new.json",
            apps,
            Build {
                previous: Some(catalog_link(&old.envelope).unwrap()),
                ..Build::default()
            },
        )
    }

    /// The text of each line marked `!!`, without the mark and indentation.
    fn flagged(report: &Report) -> Vec<String> {
        lines(report, true)
    }

    fn plain(report: &Report) -> Vec<String> {
        lines(report, false)
    }

    fn lines(report: &Report, attention: bool) -> Vec<String> {
        report
            .lines
            .iter()
            .filter(|l| l.attention == attention)
            .map(|l| l.text.clone())
            .collect()
    }

    #[test]
    fn every_permission_change_is_flagged_and_nothing_else() {
        let old = old_file(vec![app(HELLO, "a", 1000)]);
        let new = chained(&old, vec![app(&hello_v2(), "a", 1000)]);
        let report = review(&new, Some(&old), now());
        assert_eq!(
            flagged(&report),
            [
                "secret added: token (64 characters, generated on install)".to_owned(),
                "dependency added: bitcoin ^1.2".into(),
                format!(
                    "container web: image: artifact \"image\" -> registry reference \
                     docker.io/library/nginx@sha256:{DIGEST}"
                ),
                "container web: user: the image's default -> 0:0 (ROOT)".into(),
                "container web: privileged: no -> YES".into(),
                "container web: network: app -> HOST".into(),
                "container web: pid namespace: private -> HOST".into(),
                "container web: port added: host 18053/udp -> container 53".into(),
                "container web: volume \"data\" at /data, read-write -> \"data\" at /data, read-only"
                    .into(),
                "container web: capability added: NET_ADMIN".into(),
                "container web: env added: API_KEY = secret token".into(),
            ],
            "{report}"
        );
        let plain = plain(&report);
        for line in [
            "~ app hello 1.0.0 -> 1.1.0",
            "container web: env GREETING: \"hi\" -> \"hello\"",
            "container web: command: [] -> [\"nginx\", \"-g\", \"daemon off;\"]",
            "container web: stop grace: 10s -> 30s",
            "apps: 0 added, 0 removed, 1 changed, 0 unchanged",
            "version 1 -> 2",
        ] {
            assert!(
                plain.iter().any(|l| l == line),
                "{line:?} missing:\n{report}"
            );
        }
        assert!(
            report
                .to_string()
                .contains("11 line(s) marked !!: read each one before you sign"),
            "{report}"
        );

        // And back: every permission removed is flagged as well.
        let back = chained(&new, vec![app(HELLO, "a", 1000)]);
        let report = review(&back, Some(&new), now());
        let flagged = flagged(&report);
        for line in [
            "secret removed: token",
            "dependency removed: bitcoin ^1.2",
            "container web: privileged: YES -> no",
            "container web: port removed: host 18053/udp -> container 53",
            "container web: capability removed: NET_ADMIN",
            "container web: env removed: API_KEY = secret token",
        ] {
            assert!(flagged.iter().any(|l| l == line), "{line:?}:\n{report}");
        }
        // Version 1.1.0 -> 1.0.0 goes down.
        assert!(flagged.iter().any(|l| l == "version goes DOWN"), "{report}");
    }

    #[test]
    fn env_that_touches_a_secret_is_flagged_plain_env_is_not() {
        let old = old_file(vec![app(HELLO, "a", 1000)]);
        let yaml = HELLO
            .replace("version: 1.0.0", "version: 1.0.1")
            .replace("GREETING: hi", "GREETING: { secret: admin }")
            .replace("PASSWORD: { secret: admin }", "PASSWORD: plain");
        let new = chained(&old, vec![app(&yaml, "a", 1000)]);
        let report = review(&new, Some(&old), now());
        assert_eq!(
            flagged(&report),
            [
                "container web: env GREETING: \"hi\" -> secret admin",
                "container web: env PASSWORD: secret admin -> \"plain\"",
            ],
            "{report}"
        );
    }

    #[test]
    fn a_new_app_lists_all_its_permissions() {
        let new = file("new.json", vec![app(&hello_v2(), "b", 5)], Build::default());
        let report = review(&new, None, now());
        let text = report.to_string();
        assert!(
            text.contains("no --previous catalog: every app is listed as new"),
            "{text}"
        );
        assert!(text.contains("   + app hello 1.1.0 (new)\n"), "{text}");
        assert!(
            text.contains(&format!(
                "       artifact image: blake3 {}, 5 bytes, application/vnd.oci.image.layout.v1.tar\n",
                "b".repeat(64)
            )),
            "{text}"
        );
        assert!(
            text.contains("previous: none (the first catalog of a chain)"),
            "{text}"
        );
        assert_eq!(
            flagged(&report),
            [
                "secret admin (32 characters, generated on install)".to_owned(),
                "secret token (64 characters, generated on install)".into(),
                "dependency on bitcoin ^1.2".into(),
                format!("image: registry reference docker.io/library/nginx@sha256:{DIGEST}"),
                "user: 0:0 (ROOT)".into(),
                "port host 18053/udp -> container 53".into(),
                "port host 18080/tcp -> container 8080".into(),
                "volume \"data\" at /data, read-only".into(),
                "capability NET_ADMIN".into(),
                "env API_KEY = secret token".into(),
                "env PASSWORD = secret admin".into(),
                "PRIVILEGED".into(),
                "network: HOST".into(),
                "pid namespace: HOST".into(),
            ],
            "{text}"
        );
        // The gutter carries the mark; indentation shows the nesting.
        assert!(text.contains("\n!!       capability NET_ADMIN\n"), "{text}");

        // A plain app still shows its baseline, and says it has no extra privileges.
        let new = file("new.json", vec![app(HELLO, "b", 5)], Build::default());
        let report = review(&new, None, now());
        assert!(
            flagged(&report).contains(&"user: the image's default".to_owned()),
            "{report}"
        );
        assert!(
            plain(&report)
                .contains(&"not privileged; its app's own network and PID namespace".to_owned()),
            "{report}"
        );
    }

    #[test]
    fn apps_added_removed_and_unchanged_in_id_order() {
        let old = old_file(vec![named(HELLO, "zeta"), named(HELLO, "hello")]);
        let new = chained(&old, vec![named(HELLO, "hello"), named(HELLO, "alpha")]);
        let report = review(&new, Some(&old), now());
        let apps: Vec<String> = plain(&report)
            .into_iter()
            .filter(|l| l.contains(" app "))
            .collect();
        assert_eq!(
            apps,
            [
                "+ app alpha 1.0.0 (new)",
                "= app hello 1.0.0 (unchanged)",
                "- app zeta 1.0.0 (removed)",
            ],
            "{report}"
        );
        assert!(
            plain(&report).contains(&"apps: 1 added, 1 removed, 0 changed, 1 unchanged".into()),
            "{report}"
        );
        // Only alpha's permissions are flagged: removing and keeping apps grant nothing.
        assert!(flagged(&report).iter().all(|l| !l.contains("zeta")));

        // Deterministic: the same inputs in another order give the same text.
        let shuffled = chained(&old, vec![named(HELLO, "alpha"), named(HELLO, "hello")]);
        let a = review(&new, Some(&old), now()).to_string();
        let b = review(&shuffled, Some(&old), now()).to_string();
        let strip = |s: &str| {
            s.lines()
                .filter(|l| !l.contains("blake3"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&a), strip(&b));
        assert_eq!(a, review(&new, Some(&old), now()).to_string());
    }

    #[test]
    fn artifact_changes_are_shown_and_a_missing_version_bump_is_flagged() {
        let old = old_file(vec![app(HELLO, "a", 1000)]);
        let new = chained(&old, vec![app(HELLO, "b", 2000)]);
        let report = review(&new, Some(&old), now());
        let plain = plain(&report);
        for line in [
            "~ app hello 1.0.0".to_owned(),
            format!(
                "artifact image: blake3 {} -> {}",
                "a".repeat(64),
                "b".repeat(64)
            ),
            "artifact image: size 1000 -> 2000 bytes".into(),
            "no permission changes".into(),
        ] {
            assert!(plain.contains(&line), "{line:?}:\n{report}");
        }
        assert_eq!(
            flagged(&report),
            ["changed without a version bump: the same version now means something else"],
            "{report}"
        );
    }

    #[test]
    fn the_hash_chain_is_checked_against_the_old_payload() {
        let old = old_file(vec![app(HELLO, "a", 1000)]);
        let hash = catalog_link(&old.envelope).unwrap();
        let good = chained(&old, vec![app(HELLO, "a", 1000)]);
        let report = review(&good, Some(&old), now());
        assert!(
            plain(&report).contains(&format!(
                "previous {hash} = payload blake3 of old.json: the hash chain holds"
            )),
            "{report}"
        );
        assert!(flagged(&report).is_empty(), "{report}");
        assert!(report.to_string().contains("no line marked !!"), "{report}");

        let wrong = file(
            "new.json",
            vec![],
            Build {
                previous: Some("c".repeat(64)),
                ..Build::default()
            },
        );
        let report = review(&wrong, Some(&old), now());
        assert!(
            flagged(&report).contains(&format!(
                "previous {} does NOT name old.json (its payload blake3 is {hash})",
                "c".repeat(64)
            )),
            "{report}"
        );

        let unchained = file("new.json", vec![], Build::default());
        let report = review(&unchained, Some(&old), now());
        assert!(
            flagged(&report).contains(
                &"previous: none, but old.json came before: the hash chain is broken".into()
            ),
            "{report}"
        );
        // Not checked without --previous, and said so.
        let report = review(&wrong, None, now());
        assert!(
            plain(&report).contains(&format!(
                "previous {} (not checked: give --previous OLD_CATALOG)",
                "c".repeat(64)
            )),
            "{report}"
        );

        // An unsigned old catalog is not what nodes hold.
        let unsigned = file(
            "old.json",
            vec![],
            Build {
                version: 1,
                signed: false,
                ..Build::default()
            },
        );
        let report = review(&chained(&unsigned, vec![]), Some(&unsigned), now());
        assert!(
            flagged(&report)
                .iter()
                .any(|l| l.starts_with("old.json carries no signatures")),
            "{report}"
        );
    }

    #[test]
    fn version_origin_and_expiry_problems_are_flagged() {
        let old = old_file(vec![]);
        let moved = file(
            "new.json",
            vec![],
            Build {
                version: 1,
                http: "https://elsewhere.example",
                previous: Some(catalog_link(&old.envelope).unwrap()),
                expires: now() - Duration::hours(1),
                ..Build::default()
            },
        );
        let report = review(&moved, Some(&old), now());
        let marked = flagged(&report);
        for line in [
            "version 1 -> 1: same version, different contents; nodes holding the old one call \
             this equivocation and refuse both",
            "origin http: https://origin.example -> https://elsewhere.example (nodes will fetch \
             from there)",
            "EXPIRED at 2025-12-31T23:00:00Z (1 hours ago) (was 2026-01-31T00:00:00Z): nodes \
             will refuse it",
        ] {
            assert!(marked.iter().any(|l| l == line), "{line:?}:\n{report}");
        }

        let older = file(
            "new.json",
            vec![],
            Build {
                version: 3,
                ..Build::default()
            },
        );
        let report = review(&old_file(vec![]), Some(&older), now());
        assert!(
            flagged(&report)
                .iter()
                .any(|l| l == "version 3 -> 1: goes DOWN; nodes refuse a rollback"),
            "{report}"
        );
    }

    #[test]
    fn same_version_and_skipped_versions_are_explained() {
        let old = old_file(vec![]);
        let report = review(&old, Some(&old), now());
        assert!(
            flagged(&report).contains(
                &"version 1: the very same envelope as old.json (nodes see no update)".into()
            ),
            "{report}"
        );
        // Same payload, other signatures: a second envelope of version 1.
        let resigned = file(
            "new.json",
            vec![],
            Build {
                version: 1,
                signed: false,
                ..Build::default()
            },
        );
        let report = review(&resigned, Some(&old), now());
        assert!(
            flagged(&report).iter().any(|l| l.starts_with(
                "version 1: the same payload as old.json, other signatures; once nodes hold one \
                 envelope of a version, any other is equivocation"
            )),
            "{report}"
        );
        let skip = file(
            "new.json",
            vec![],
            Build {
                version: 4,
                previous: Some(catalog_link(&old.envelope).unwrap()),
                ..Build::default()
            },
        );
        let report = review(&skip, Some(&old), now());
        assert!(
            plain(&report).contains(
                &"version 1 -> 4 (skips 2: a node holding 1 cannot check the `previous` link)"
                    .into()
            ),
            "{report}"
        );
    }

    #[test]
    fn a_root_envelope_is_not_reviewed() {
        let key = SecretKey::from_bytes(&[1; 32]).public();
        let root = archy_registry::Root::new(1, now(), &[key], 1, &[key], 1).unwrap();
        let envelope = Envelope::unsigned(PayloadType::Root, &root.to_json());
        let err = CatalogFile::parse("root.json".into(), envelope.to_bytes())
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a catalog"), "{err}");
    }
}
