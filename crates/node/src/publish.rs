//! `archy app publish`: a developer's manifest, signed by their DID, carried by a NIP-78
//! event signed by their Nostr key, with the artifacts served by their own node as origin.
//! The secret keys stay in this process; the node only receives the artifact bytes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use archy_marketplace::DeveloperIdentity;
use archy_registry::{Artifact, Manifest, Origin, Publication, Publisher};

pub struct PublishRequest<'a> {
    /// The developer's node API (it imports the artifacts and serves them).
    pub api: &'a str,
    pub manifest: Manifest,
    /// Artifact name → file.
    pub artifacts: BTreeMap<String, PathBuf>,
    pub identity: &'a DeveloperIdentity,
    pub relays: &'a [String],
    /// Where other nodes fetch the artifacts over HTTP; defaults to the node's `blobs_url`.
    pub origin_http: Option<String>,
}

pub struct Published {
    pub event_id: String,
    pub accepted_by: Vec<String>,
    /// The id the app gets on an installing node.
    pub local_id: String,
    pub artifacts: Vec<Artifact>,
}

pub async fn publish(request: PublishRequest<'_>) -> anyhow::Result<Published> {
    let manifest = request.manifest;
    manifest
        .check_sandbox_policy()
        .context("third-party apps must pass the sandbox policy")?;
    if request.relays.is_empty() {
        bail!("no relay given: pass --relay ws://… (several, for redundancy)");
    }
    for name in request.artifacts.keys() {
        if !manifest.artifacts.iter().any(|a| &a.name == name) {
            bail!(
                "--artifact {name}: the manifest declares no such artifact (it declares: {})",
                manifest
                    .artifacts
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let http = reqwest::Client::new();
    let base = request.api.trim_end_matches('/');
    let status: serde_json::Value = http
        .get(format!("{base}/v1/status"))
        .send()
        .await
        .with_context(|| {
            format!("cannot reach your node's API at {base} (is `archy node run` running?)")
        })?
        .json()
        .await
        .context("the node's status is not JSON")?;
    let iroh = status["endpoint_id"]
        .as_str()
        .context("the node's status names no endpoint id")?
        .to_owned();
    let origin_http = match request.origin_http {
        Some(url) => url,
        None => match status["blobs_url"].as_str() {
            Some(url) if url.contains("://0.0.0.0:") || url.contains("://[::]:") => bail!(
                "your node serves blobs on {url}, which is not an address others can use: \
                 pass --origin-http with the URL other nodes reach it at"
            ),
            Some(url) => {
                if url.contains("://127.") || url.contains("://[::1]") {
                    eprintln!(
                        "note: the origin {url} is loopback, reachable from this machine only; \
                         pass --origin-http to publish a reachable one"
                    );
                }
                url.to_owned()
            }
            None => bail!(
                "your node serves no blobs over HTTP: set blobs_listen in its config, or pass --origin-http"
            ),
        },
    };

    let mut artifacts = Vec::new();
    for decl in &manifest.artifacts {
        let path = request.artifacts.get(&decl.name).with_context(|| {
            format!(
                "the manifest declares artifact {:?}: pass --artifact {}=FILE",
                decl.name, decl.name
            )
        })?;
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening artifact {}", path.display()))?;
        let response = http
            .post(format!("{base}/v1/publish/{}/{}", manifest.id, decl.name))
            .body(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::new(file),
            ))
            .send()
            .await
            .with_context(|| format!("uploading {} to your node", path.display()))?;
        let ok = response.status().is_success();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !ok {
            bail!(
                "your node refused artifact {}: {}",
                decl.name,
                body["error"].as_str().unwrap_or("unknown error")
            );
        }
        let blake3 = body["blake3"]
            .as_str()
            .context("the node returned no hash")?
            .to_owned();
        // What gets signed is what is on disk here, not what the node says it stored.
        let local = hash_file(path)
            .await
            .with_context(|| format!("hashing {}", path.display()))?;
        if local != blake3 {
            bail!(
                "your node stored artifact {} as {blake3}, but {} hashes to {local}; nothing was published",
                decl.name,
                path.display()
            );
        }
        artifacts.push(Artifact {
            name: decl.name.clone(),
            blake3,
            size: body["size"].as_u64().context("the node returned no size")?,
            media_type: decl.media_type.clone(),
        });
    }

    let identity = request.identity;
    let publication = Publication::new(
        Publisher {
            did: identity.did(),
            nostr: identity.nostr_public_hex(),
        },
        manifest,
        artifacts.clone(),
        Origin {
            http: origin_http,
            iroh,
        },
        chrono::Utc::now(),
    );
    let envelope = publication.sign(identity.did_key())?;
    let app_id = publication.manifest.id.clone();
    let event = archy_marketplace::publication_event(identity, &envelope, &app_id)?;
    let accepted_by = archy_marketplace::publish(&event, request.relays).await?;
    Ok(Published {
        event_id: event.id.to_hex(),
        accepted_by,
        local_id: archy_registry::namespaced_id(&app_id, &identity.nostr_public_hex()),
        artifacts,
    })
}

async fn hash_file(path: &std::path::Path) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(&path)?)?;
        Ok(hasher.finalize().to_hex().to_string())
    })
    .await
    .map_err(std::io::Error::other)?
}
