//! `archy catalog build`: hash every app's artifacts with BLAKE3, embed its manifest,
//! and write an unsigned catalog envelope for the offline signers.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use archy_registry::{Artifact, Catalog, CatalogApp, Envelope, Manifest, Origin, PayloadType};
use chrono::{Duration, Utc};

pub struct BuildOptions {
    pub apps_dir: PathBuf,
    pub artifacts_dir: PathBuf,
    pub origin: Origin,
    pub version: u64,
    /// How long from now the catalog stays valid.
    pub expires_in: Duration,
    /// The previous signed catalog, to chain by hash.
    pub previous: Option<PathBuf>,
}

/// Where an app's artifact file lives: `<artifacts>/<app>/<name>.tar`.
pub fn artifact_path(artifacts_dir: &Path, app: &str, name: &str) -> PathBuf {
    artifacts_dir.join(app).join(format!("{name}.tar"))
}

fn hash_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), size))
}

pub fn build(options: &BuildOptions) -> anyhow::Result<Envelope> {
    let mut apps = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&options.apps_dir)
        .with_context(|| format!("reading apps dir {}", options.apps_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.yml").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "no apps/<id>/manifest.yml under {}",
            options.apps_dir.display()
        );
    }
    for dir in dirs {
        let path = dir.join("manifest.yml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let manifest = Manifest::from_yaml(&text).with_context(|| format!("{}", path.display()))?;
        let mut artifacts = Vec::new();
        for decl in &manifest.artifacts {
            let file = artifact_path(&options.artifacts_dir, &manifest.id, &decl.name);
            let (blake3, size) = hash_file(&file).with_context(|| {
                format!(
                    "artifact {:?} of app {} (build it with apps/build.sh)",
                    decl.name, manifest.id
                )
            })?;
            artifacts.push(Artifact {
                name: decl.name.clone(),
                blake3,
                size,
                media_type: decl.media_type.clone(),
            });
        }
        apps.push(CatalogApp {
            id: manifest.id.clone(),
            version: manifest.version.clone(),
            manifest,
            artifacts,
        });
    }
    let previous = match &options.previous {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading previous catalog {}", path.display()))?;
            let envelope = Envelope::from_bytes(&bytes)
                .with_context(|| format!("previous catalog {}", path.display()))?;
            Some(archy_registry::catalog_link(&envelope)?)
        }
        None => None,
    };
    let catalog = Catalog::new(
        options.version,
        Utc::now() + options.expires_in,
        previous,
        options.origin.clone(),
        apps,
    )?;
    Ok(Envelope::unsigned(PayloadType::Catalog, &catalog.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "id: demo\nname: Demo\nversion: 1.2.3\nartifacts:\n  - { name: image, media_type: application/vnd.oci.image.layout.v1.tar }\ncontainers:\n  - name: web\n    image: { artifact: image }\n";

    fn options(dir: &Path) -> BuildOptions {
        BuildOptions {
            apps_dir: dir.join("apps"),
            artifacts_dir: dir.join("artifacts"),
            origin: Origin {
                http: "http://127.0.0.1:7780".into(),
                iroh: "ab".repeat(32),
            },
            version: 3,
            expires_in: Duration::days(30),
            previous: None,
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn hashes_artifacts_and_embeds_manifests() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("apps/demo/manifest.yml"),
            MANIFEST.as_bytes(),
        );
        write(&dir.path().join("artifacts/demo/image.tar"), b"image bytes");
        let previous = dir.path().join("previous.json");
        let previous_env = Envelope::unsigned(PayloadType::Catalog, b"previous payload");
        write(&previous, &previous_env.to_bytes());
        let mut opts = options(dir.path());
        opts.previous = Some(previous);
        let env = build(&opts).unwrap();
        assert!(
            env.signatures.is_empty(),
            "catalogs leave the builder unsigned"
        );
        let catalog = Catalog::from_json(&env.payload_bytes().unwrap()).unwrap();
        assert_eq!(catalog.version, 3);
        assert_eq!(
            catalog.previous.as_deref(),
            Some(archy_registry::blake3_hex(b"previous payload").as_str())
        );
        let artifact = &catalog.apps[0].artifacts[0];
        assert_eq!(artifact.blake3, archy_registry::blake3_hex(b"image bytes"));
        assert_eq!(artifact.size, 11);
        assert_eq!(catalog.apps[0].manifest.name, "Demo");
    }

    #[test]
    fn bad_manifest_and_missing_artifact_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("apps/demo/manifest.yml");
        write(
            &manifest,
            MANIFEST.replace("name: web", "name: Web").as_bytes(),
        );
        let err = format!("{:#}", build(&options(dir.path())).unwrap_err());
        assert!(
            err.contains("manifest.yml") && err.contains("containers[0].name"),
            "{err}"
        );

        write(&manifest, MANIFEST.as_bytes());
        let err = format!("{:#}", build(&options(dir.path())).unwrap_err());
        assert!(
            err.contains("artifact \"image\" of app demo") && err.contains("apps/build.sh"),
            "{err}"
        );

        let empty = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(empty.path().join("apps")).unwrap();
        let err = format!("{:#}", build(&options(empty.path())).unwrap_err());
        assert!(err.contains("no apps/<id>/manifest.yml"), "{err}");
    }
}
