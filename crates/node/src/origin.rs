//! `archy origin`: serves the signed catalog over HTTP and its artifacts over iroh-blobs
//! (and HTTP). It refuses to serve a catalog whose artifacts it does not hold byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use archy_registry::{Catalog, Envelope, PayloadType};
use archy_swarm::{BlobRef, Swarm, SwarmConfig};
use axum::Router;
use axum::http::header;
use axum::routing::get;
use tracing::info;

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
        }
    }
    let roots = Arc::new(load_roots(config.roots.as_deref())?);
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
        .merge(archy_swarm::tracker_routes(Arc::new(
            archy_swarm::Tracker::new(Default::default()),
        )));
    Ok(Origin { swarm, router })
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
