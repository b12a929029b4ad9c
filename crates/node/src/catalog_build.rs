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
    pub expires_in_days: i64,
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
            Some(archy_registry::blake3_hex(&bytes))
        }
        None => None,
    };
    let catalog = Catalog::new(
        options.version,
        Utc::now() + Duration::days(options.expires_in_days),
        previous,
        options.origin.clone(),
        apps,
    )?;
    Ok(Envelope::unsigned(PayloadType::Catalog, &catalog.to_json()))
}
