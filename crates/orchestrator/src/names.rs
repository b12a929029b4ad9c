//! The Podman objects an app's manifest names, and whether two apps would name the same one.
//!
//! Objects are named `archy-<app>[-<part>]`, and both app ids and parts may contain '-', so
//! app `a-b`'s container `c` and app `a`'s container `b-c` are both `archy-a-b-c`. Podman
//! refuses the second create, which would fail an install late and obscurely; worse, a
//! volume kept from an uninstalled app could be mistaken for another's. Renaming would
//! orphan every existing install's volumes, so the node refuses the clash up front
//! instead, naming both apps ([`clash`]).

use archy_registry::Manifest;

use crate::{container_name, render, secrets};

/// A kind of Podman object; names are unique per kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKind {
    Network,
    Container,
    Volume,
    Secret,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Network => "network",
            ObjectKind::Container => "container",
            ObjectKind::Volume => "volume",
            ObjectKind::Secret => "secret",
        })
    }
}

/// One object an app would own: its kind, its Podman name, and the manifest part it is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectName {
    pub kind: ObjectKind,
    pub name: String,
    /// The manifest's name for it (`""` for the app's network).
    pub part: String,
}

/// Every object `manifest` makes, named as the renderer names them.
pub fn object_names(manifest: &Manifest) -> Vec<ObjectName> {
    let app = manifest.id.as_str();
    let mut names = vec![ObjectName {
        kind: ObjectKind::Network,
        name: render::network_name(app),
        part: String::new(),
    }];
    for c in &manifest.containers {
        names.push(ObjectName {
            kind: ObjectKind::Container,
            name: container_name(app, &c.name),
            part: c.name.clone(),
        });
        for v in &c.volumes {
            names.push(ObjectName {
                kind: ObjectKind::Volume,
                name: render::volume_name(app, &v.name),
                part: v.name.clone(),
            });
        }
    }
    for s in &manifest.secrets {
        names.push(ObjectName {
            kind: ObjectKind::Secret,
            name: secrets::podman_name(app, &s.name),
            part: s.name.clone(),
        });
    }
    names.sort();
    names.dedup();
    names
}

/// The first object that `ours` and `theirs` (two different apps) would both name, as a
/// sentence a person can act on; `None` when they can live side by side.
pub fn clash(ours: &Manifest, theirs: &Manifest) -> Option<String> {
    if ours.id == theirs.id {
        return None;
    }
    let their_names = object_names(theirs);
    object_names(ours).into_iter().find_map(|mine| {
        their_names
            .iter()
            .find(|t| t.kind == mine.kind && t.name == mine.name)
            .map(|t| {
                format!(
                    "{} {:?} of {} would be Podman's {} {:?}, which belongs to {} ({} {:?}): \
                     app ids and names joined by '-' collide; the two apps cannot be installed together",
                    mine.kind,
                    mine.part,
                    ours.id,
                    mine.kind,
                    mine.name,
                    theirs.id,
                    t.kind,
                    t.part
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, container: &str, volume: &str, secret: &str) -> Manifest {
        Manifest::from_yaml(&format!(
            "id: {id}\nname: X\nversion: 1.0.0\n\
             artifacts:\n  - {{ name: image, media_type: application/vnd.oci.image.layout.v1.tar }}\n\
             containers:\n  - name: {container}\n    image: {{ artifact: image }}\n    \
             volumes: [{{ name: {volume}, path: /data }}]\n\
             secrets: [{{ name: {secret} }}]\n"
        ))
        .unwrap()
    }

    #[test]
    fn names_joined_by_a_dash_clash_across_apps_and_say_whose() {
        let a = manifest("a", "b-c", "keep", "pw");
        let ab = manifest("a-b", "c", "store", "key");
        let why = clash(&ab, &a).expect("archy-a-b-c is both apps' container");
        assert!(why.contains("container \"c\" of a-b"), "{why}");
        assert!(why.contains("\"archy-a-b-c\""), "{why}");
        assert!(why.contains("belongs to a (container \"b-c\")"), "{why}");
        assert!(clash(&a, &ab).is_some(), "a clash is a clash both ways");

        // Volumes and secrets too, each within its own kind.
        let v = clash(
            &manifest("x-y", "web", "d", "s1"),
            &manifest("x", "app", "y-d", "s2"),
        );
        assert!(v.is_some_and(|m| m.starts_with("volume \"d\"")));
        let s = clash(
            &manifest("x-y", "web", "d1", "k"),
            &manifest("x", "app", "d2", "y-k"),
        );
        assert!(s.is_some_and(|m| m.starts_with("secret \"k\"")));
    }

    #[test]
    fn different_kinds_and_distinct_names_do_not_clash() {
        // Container archy-a-b (app a, container b) and network archy-a-b (app a-b) are
        // different kinds of object: Podman keeps them apart.
        let a = manifest("a", "b", "data", "pw");
        let ab = manifest("a-b", "web", "data", "pw");
        assert_eq!(clash(&ab, &a), None);
        assert_eq!(
            clash(&a, &a.clone()),
            None,
            "an app never clashes with itself"
        );
        let names: Vec<_> = object_names(&a).into_iter().map(|n| n.name).collect();
        assert_eq!(
            names,
            ["archy-a", "archy-a-b", "archy-a-data", "archy-a-pw"],
            "network, container, volume, secret, as the renderer names them"
        );
    }
}
