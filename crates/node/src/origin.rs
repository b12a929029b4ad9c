//! `archy origin`: serves the signed catalog over HTTP and its artifacts over iroh-blobs
//! (and HTTP). It refuses to serve a catalog whose artifacts it does not hold byte for byte.
//!
//! Every catalog it serves is kept in `<data-dir>/catalogs/` and served again by version
//! (`GET /v1/catalog/{version}`), across restarts and catalog replacements: a node that
//! was offline checks the hash chain through the versions it skipped. Older signed
//! catalogs the origin never served can be copied into that directory (any `*.json` name).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use archy_registry::{Catalog, Envelope, PayloadType};
use archy_swarm::{BlobRef, Swarm, SwarmConfig};
use axum::Router;
use axum::http::header;
use axum::routing::get;
use tracing::{info, warn};

pub struct OriginConfig {
    pub data_dir: PathBuf,
    pub catalog: PathBuf,
    pub artifacts: PathBuf,
    pub iroh_bind: std::net::SocketAddr,
    /// Signed root envelopes after the first (rotations), any file names; served by version.
    pub roots: Option<PathBuf>,
}

pub struct Origin {
    pub swarm: Arc<Swarm>,
    /// Serve with `into_make_service_with_connect_info::<SocketAddr>()`: the tracker fills
    /// in announcers' addresses from the connection.
    pub router: Router,
}

/// Imports every artifact the catalog names from `artifacts/<app>/<name>.tar`-style files
/// (see [`crate::catalog_build::artifact_path`]) and checks each hash and size.
pub async fn prepare(config: &OriginConfig) -> anyhow::Result<Origin> {
    let envelope_bytes = std::fs::read(&config.catalog)
        .with_context(|| format!("reading signed catalog {}", config.catalog.display()))?;
    let envelope = Envelope::from_bytes(&envelope_bytes)
        .with_context(|| format!("{}", config.catalog.display()))?;
    envelope.expect_type(PayloadType::Catalog)?;
    if envelope.signatures.is_empty() {
        bail!(
            "{} carries no signature: sign it with archy-sign first",
            config.catalog.display()
        );
    }
    let catalog = Catalog::from_json(&envelope.payload_bytes()?)?;
    let mut swarm_config = SwarmConfig::new(config.data_dir.join("swarm"));
    swarm_config.bind = config.iroh_bind;
    let swarm = Arc::new(Swarm::start(swarm_config).await?);
    if swarm.endpoint_id().to_string() != catalog.origin.iroh {
        bail!(
            "the catalog names origin endpoint {} but this origin's key ({}) is {}; \
             rebuild the catalog with --origin-iroh from `archy origin id`",
            catalog.origin.iroh,
            config.data_dir.display(),
            swarm.endpoint_id()
        );
    }
    let mut served = Vec::new();
    for app in &catalog.apps {
        for artifact in &app.artifacts {
            let path =
                crate::catalog_build::artifact_path(&config.artifacts, &app.id, &artifact.name);
            let imported = swarm
                .import_file(&path, &format!("origin/{}/{}", app.id, artifact.name))
                .await
                .with_context(|| format!("importing {}", path.display()))?;
            let expected = BlobRef::from_hex(&artifact.blake3, artifact.size)?;
            if imported != expected {
                bail!(
                    "{} does not match the catalog: it has blake3 {} and {} bytes, the catalog says {} and {} bytes",
                    path.display(),
                    imported.hex(),
                    imported.size,
                    artifact.blake3,
                    artifact.size
                );
            }
            info!(app = %app.id, artifact = %artifact.name, hash = %artifact.blake3, "serving artifact");
            served.push(expected.hash);
        }
    }
    let roots = Arc::new(load_roots(config.roots.as_deref())?);
    let History {
        files: history,
        older_artifacts,
    } = record_history(
        &config.data_dir.join(HISTORY_DIR),
        &envelope_bytes,
        &catalog,
    )?;
    let history = Arc::new(history);
    let catalog_body = envelope_bytes.clone();
    let router = Router::new()
        .route(
            "/v1/catalog",
            get(move || {
                let body = catalog_body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .route(
            "/v1/catalog/{version}",
            get(
                move |axum::extract::Path(version): axum::extract::Path<u64>| {
                    let history = history.clone();
                    async move {
                        let path = history
                            .get(&version)
                            .ok_or(axum::http::StatusCode::NOT_FOUND)?;
                        match tokio::fs::read(path).await {
                            Ok(bytes) => Ok(([(header::CONTENT_TYPE, "application/json")], bytes)),
                            Err(e) => {
                                warn!(path = %path.display(), error = %e, "cannot read a served catalog");
                                Err(axum::http::StatusCode::NOT_FOUND)
                            }
                        }
                    }
                },
            ),
        )
        .route(
            "/v1/root/{version}",
            get(
                move |axum::extract::Path(version): axum::extract::Path<u64>| {
                    let roots = roots.clone();
                    async move {
                        match roots.get(&version) {
                            Some(bytes) => {
                                Ok(([(header::CONTENT_TYPE, "application/json")], bytes.clone()))
                            }
                            None => Err(axum::http::StatusCode::NOT_FOUND),
                        }
                    }
                },
            ),
        )
        .merge(archy_swarm::http_routes(swarm.clone()))
        // Nodes announce the blobs they hold; others ask who holds one (peers offload us).
        // A peer reported unreachable is dialed by our own swarm before anything changes.
        // Only the artifacts of the catalogs it serves are listed (the older ones' too: a
        // node that has not pulled the new catalog yet still fetches and announces them):
        // other hashes, made up for free, would fill the tracker's table.
        .merge(archy_swarm::tracker_routes(Arc::new(
            archy_swarm::Tracker::with_prober(Default::default(), swarm.clone())
                .only(served.into_iter().chain(older_artifacts)),
        )));
    Ok(Origin { swarm, router })
}

/// Where, under the data dir, the origin keeps every catalog it has served.
pub const HISTORY_DIR: &str = "catalogs";

/// One kept catalog: its file and what the chain needs of it.
struct Kept {
    path: PathBuf,
    link: String,
    previous: Option<String>,
    /// The hashes of the artifacts it names.
    artifacts: Vec<archy_swarm::Hash>,
}

/// The catalogs an origin serves, by version, and the artifacts the older ones name.
struct History {
    files: BTreeMap<u64, PathBuf>,
    older_artifacts: Vec<archy_swarm::Hash>,
}

/// Loads the catalogs this origin served before (and any older ones copied in), refuses a
/// served catalog that nodes would refuse against them (same version with other content,
/// an older version, not naming the version before it), and keeps the served one.
/// Returns version → file, for `GET /v1/catalog/{version}`, and the artifacts of the
/// older versions.
fn record_history(dir: &Path, envelope_bytes: &[u8], catalog: &Catalog) -> anyhow::Result<History> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut kept: BTreeMap<u64, Kept> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let envelope =
            Envelope::from_bytes(&bytes).with_context(|| format!("{}", path.display()))?;
        envelope
            .expect_type(PayloadType::Catalog)
            .with_context(|| format!("{}", path.display()))?;
        let old = Catalog::from_json(&envelope.payload_bytes()?)
            .with_context(|| format!("{}", path.display()))?;
        let link = archy_registry::catalog_link(&envelope)?;
        let artifacts = old
            .apps
            .iter()
            .flat_map(|app| &app.artifacts)
            .filter_map(|a| BlobRef::from_hex(&a.blake3, a.size).ok())
            .map(|blob| blob.hash)
            .collect();
        if let Some(other) = kept.insert(
            old.version,
            Kept {
                path: path.clone(),
                link,
                previous: old.previous,
                artifacts,
            },
        ) {
            bail!(
                "{} and {} both hold catalog version {}: keep one",
                other.path.display(),
                path.display(),
                old.version
            );
        }
    }
    let envelope = Envelope::from_bytes(envelope_bytes)?;
    let link = archy_registry::catalog_link(&envelope)?;
    let version = catalog.version;
    if let Some((&newest, newer)) = kept.iter().next_back()
        && newest > version
    {
        bail!(
            "this origin already served catalog version {newest} ({}); serving version {version} \
             is a rollback every node that saw it refuses",
            newer.path.display()
        );
    }
    if let Some(same) = kept.get(&version)
        && same.link != link
    {
        bail!(
            "this origin already served catalog version {version} ({}) with different content \
             (blake3 {}, this one {link}); nodes that saw it would raise an equivocation alarm: \
             publish the change as version {}",
            same.path.display(),
            same.link,
            kept.keys().next_back().map_or(version, |v| v + 1)
        );
    }
    if let Some(before) = version.checked_sub(1).and_then(|v| kept.get(&v))
        && catalog.previous.as_deref() != Some(before.link.as_str())
    {
        bail!(
            "catalog version {version} does not chain to version {} this origin served ({}): \
             its previous is {}, that catalog's blake3 is {}; nodes refuse it as chain-broken. \
             Rebuild it with --previous {}",
            version - 1,
            before.path.display(),
            catalog.previous.as_deref().unwrap_or("none"),
            before.link,
            before.path.display()
        );
    }
    // What was copied in by hand is served as is; say when it does not chain.
    for (v, k) in &kept {
        if let Some(before) = v.checked_sub(1).and_then(|p| kept.get(&p))
            && k.previous.as_deref() != Some(before.link.as_str())
        {
            warn!(
                version = v,
                file = %k.path.display(),
                "kept catalog does not name the version before it: nodes checking the chain refuse it"
            );
        }
    }
    // Replace the kept file of this version (signatures may have been added), atomically.
    let path = kept
        .remove(&version)
        .map_or_else(|| dir.join(format!("{version}.json")), |k| k.path);
    let tmp = dir.join(format!(".{version}.json.tmp"));
    std::fs::write(&tmp, envelope_bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    let older_artifacts = kept.values().flat_map(|k| k.artifacts.clone()).collect();
    let mut files: BTreeMap<u64, PathBuf> = kept.into_iter().map(|(v, k)| (v, k.path)).collect();
    files.insert(version, path);
    info!(versions = files.len(), dir = %dir.display(), "serving catalog history");
    Ok(History {
        files,
        older_artifacts,
    })
}

/// Reads every `*.json` root envelope in `dir`, keyed by the version its payload names.
/// The node verifies each rotation; the origin only refuses what is not a root at all.
fn load_roots(dir: Option<&Path>) -> anyhow::Result<BTreeMap<u64, Vec<u8>>> {
    let mut roots = BTreeMap::new();
    let Some(dir) = dir else { return Ok(roots) };
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading roots dir {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let envelope =
            Envelope::from_bytes(&bytes).with_context(|| format!("{}", path.display()))?;
        envelope
            .expect_type(PayloadType::Root)
            .with_context(|| format!("{}", path.display()))?;
        let root = archy_registry::Root::from_json(&envelope.payload_bytes()?)
            .with_context(|| format!("{}", path.display()))?;
        if roots.insert(root.version, bytes).is_some() {
            bail!(
                "two files in {} hold root version {}",
                dir.display(),
                root.version
            );
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use archy_registry::SecretKey;

    fn signed(version: u64, marker: &str, previous: Option<&[u8]>) -> (Vec<u8>, Catalog) {
        let previous = previous
            .map(|b| archy_registry::catalog_link(&Envelope::from_bytes(b).unwrap()).unwrap());
        let catalog = Catalog::new(
            version,
            chrono::Utc::now() + chrono::Duration::days(1),
            previous,
            archy_registry::Origin {
                http: format!("http://127.0.0.1:1/{marker}"),
                iroh: "ab".repeat(32),
            },
            vec![],
        )
        .unwrap();
        let mut env = Envelope::unsigned(PayloadType::Catalog, &catalog.to_json());
        env.sign(&SecretKey::from_bytes(&[2; 32])).unwrap();
        (env.to_bytes(), catalog)
    }

    /// Catalog `version`, naming one artifact of hello with the hash of `content`.
    fn with_artifact(version: u64, previous: Option<&[u8]>, content: &[u8]) -> (Vec<u8>, Catalog) {
        let manifest_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../apps/hello/manifest.yml");
        let manifest =
            archy_registry::Manifest::from_yaml(&std::fs::read_to_string(manifest_path).unwrap())
                .unwrap();
        let (_, mut catalog) = signed(version, "a", previous);
        catalog.apps = vec![archy_registry::CatalogApp {
            id: manifest.id.clone(),
            version: manifest.version.clone(),
            manifest,
            artifacts: vec![archy_registry::Artifact {
                name: "image".into(),
                blake3: blake3::hash(content).to_hex().to_string(),
                size: content.len() as u64,
                media_type: "application/vnd.oci.image.layout.v1.tar".into(),
            }],
        }];
        let mut env = Envelope::unsigned(PayloadType::Catalog, &catalog.to_json());
        env.sign(&SecretKey::from_bytes(&[2; 32])).unwrap();
        (env.to_bytes(), catalog)
    }

    /// The tracker lists the artifacts of the older catalogs an origin keeps besides the
    /// served one's: a node that has not pulled the new catalog yet still announces them.
    #[test]
    fn the_older_catalogs_artifacts_are_returned() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(HISTORY_DIR);
        let v1 = with_artifact(1, None, b"image one");
        assert!(
            record_history(&dir, &v1.0, &v1.1)
                .unwrap()
                .older_artifacts
                .is_empty()
        );
        let v2 = with_artifact(2, Some(&v1.0), b"image two");
        let older = record_history(&dir, &v2.0, &v2.1).unwrap().older_artifacts;
        assert_eq!(older, vec![archy_swarm::Hash::new(b"image one")]);
    }

    fn record(dir: &Path, (bytes, catalog): &(Vec<u8>, Catalog)) -> anyhow::Result<Vec<u64>> {
        record_history(dir, bytes, catalog).map(|h| h.files.into_keys().collect())
    }

    #[test]
    fn served_catalogs_are_kept_across_replacements_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(HISTORY_DIR);
        let v1 = signed(1, "a", None);
        assert_eq!(record(&dir, &v1).unwrap(), vec![1]);
        // Serving the same again (say with one more signature) keeps one file.
        assert_eq!(record(&dir, &v1).unwrap(), vec![1]);
        let v2 = signed(2, "a", Some(&v1.0));
        assert_eq!(record(&dir, &v2).unwrap(), vec![1, 2]);
        assert_eq!(std::fs::read(dir.join("1.json")).unwrap(), v1.0);

        let err = record(&dir, &signed(2, "b", Some(&v1.0)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("already served catalog version 2"), "{err}");
        let err = record(&dir, &signed(1, "b", None)).unwrap_err().to_string();
        assert!(err.contains("rollback"), "{err}");
        let err = record(&dir, &signed(3, "a", Some(&v1.0)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not chain to version 2") && err.contains("--previous"),
            "{err}"
        );
        // A skip is served (the node decides), and older catalogs copied in are served too.
        let v4 = signed(4, "a", None);
        let v5 = signed(5, "a", Some(&v4.0));
        std::fs::write(dir.join("older.json"), &v4.0).unwrap();
        let history = record_history(&dir, &v5.0, &v5.1).unwrap().files;
        assert_eq!(
            history.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 4, 5]
        );
        assert_eq!(history[&4], dir.join("older.json"));
        std::fs::write(dir.join("dup.json"), &v4.0).unwrap();
        let err = record(&dir, &v5).unwrap_err().to_string();
        assert!(err.contains("both hold catalog version 4"), "{err}");
    }
}
