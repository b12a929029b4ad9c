//! Defence in depth before anything reaches Podman: the manifest is validated again (a
//! catalog signed with stolen keys, or a validator bug, must not be enough), third-party
//! apps meet the sandbox policy again, and the `podman create` argv of every container is
//! rendered and checked by [`crate::argv_check`] (as [`crate::render::check_argv`] checks
//! it again, with the real image id and paths, right before it runs). Anything refused
//! here is refused before Podman sees anything of the app.

use std::net::IpAddr;
use std::path::Path;

use archy_registry::Manifest;

use crate::argv_check::{NAMESPACE_HEX, Rendered, is_namespace};
use crate::render::{check_argv, create_args};
use crate::{Error, Result};

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
        // The real image id and paths are known only when the container is created (and
        // checked again then); an id's shape and a plain path stand in for them here.
        let image = match &c.image.reference {
            Some(reference) => reference.clone(),
            None => "0".repeat(64),
        };
        let env_file = Path::new("/env-file");
        for publish_address in [IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16; 8])] {
            let rendered = Rendered {
                image: &image,
                env_file,
                publish_address,
            };
            let args = create_args(manifest, c, &image, env_file, publish_address);
            check_argv(manifest, c, rendered, args)?;
        }
    }
    Ok(())
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
}
