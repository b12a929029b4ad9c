//! Tests of the review: each kind of change, flagged or not, against sample catalogs.

use archy_registry::{Artifact, CatalogApp, Manifest, Origin, SecretKey, catalog_link};
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
        flagged(&report)
            .contains(&"previous: none, but old.json came before: the hash chain is broken".into()),
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
            &"version 1 -> 4 (skips 2: a node holding 1 cannot check the `previous` link)".into()
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
