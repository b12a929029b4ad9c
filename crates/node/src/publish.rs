//! `archy app publish`: a developer's manifest, signed by their DID, carried by a NIP-78
//! event signed by their Nostr key, with the artifacts served by their own node as origin.
//! `archy app unpublish`: a NIP-09 withdrawal of every version. The secret keys stay in this
//! process; the node only receives the artifact bytes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use archy_marketplace::DeveloperIdentity;
use archy_registry::{Artifact, Manifest, Origin, Publication, Publisher};
use serde::Serialize;

pub struct PublishRequest<'a> {
    /// A client of the developer's node API (it imports the artifacts and serves them).
    pub client: &'a archy_api::Client,
    pub manifest: Manifest,
    /// Artifact name → file.
    pub artifacts: BTreeMap<String, PathBuf>,
    pub identity: &'a DeveloperIdentity,
    pub relays: &'a archy_marketplace::RelaySet,
    /// Where other nodes fetch the artifacts over HTTP; defaults to the node's `blobs_url`.
    pub origin_http: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Published {
    pub event_id: String,
    /// What each relay said.
    pub relays: Vec<RelayOutcome>,
    /// The id the app gets on an installing node.
    pub local_id: String,
    pub artifacts: Vec<Artifact>,
    /// The developer's relay list (NIP-65, kind 10002) naming the relays that took the
    /// publication, so nodes find it on them.
    pub relay_list: RelayListAnnounced,
}

/// What became of the developer's relay list (NIP-65) at a publish.
#[derive(Debug, Default, Serialize)]
pub struct RelayListAnnounced {
    /// The new list's event, when one was sent.
    pub event_id: Option<String>,
    /// What each relay said to it.
    pub relays: Vec<RelayOutcome>,
    /// Why none was sent (it already named every relay, or no relay could be asked for
    /// the current one, which a new list would replace).
    pub note: Option<String>,
}

/// One relay's answer to an event sent to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayOutcome {
    pub relay: String,
    pub accepted: bool,
    /// Why not, when it did not accept.
    pub error: Option<String>,
}

fn outcomes(report: archy_marketplace::PublishReport) -> Vec<RelayOutcome> {
    let mut out: Vec<RelayOutcome> = report
        .accepted
        .into_iter()
        .map(|relay| RelayOutcome {
            relay,
            accepted: true,
            error: None,
        })
        .chain(report.failed.into_iter().map(|(relay, why)| RelayOutcome {
            relay,
            accepted: false,
            error: Some(why),
        }))
        .collect();
    out.sort_by(|a, b| a.relay.cmp(&b.relay));
    out
}

/// "ws://a: why; ws://b: why" for the relays that did not accept.
pub fn failures(relays: &[RelayOutcome]) -> String {
    relays
        .iter()
        .filter(|r| !r.accepted)
        .map(|r| format!("{}: {}", r.relay, r.error.as_deref().unwrap_or("refused")))
        .collect::<Vec<_>>()
        .join("; ")
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
    let client = request.client;
    let status = client.status().await?;
    let iroh = status.endpoint_id;
    let origin_http = match request.origin_http {
        Some(url) => url,
        None => match status.blobs_url.as_deref() {
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

    // What gets signed is what is on disk here: hash each file first, declare sizes and
    // hashes to the node, which takes exactly those bytes and nothing else.
    let mut artifacts = Vec::new();
    for decl in &manifest.artifacts {
        let path = request.artifacts.get(&decl.name).with_context(|| {
            format!(
                "the manifest declares artifact {:?}: pass --artifact {}=FILE",
                decl.name, decl.name
            )
        })?;
        let (blake3, size) = hash_file(path)
            .await
            .with_context(|| format!("hashing {}", path.display()))?;
        artifacts.push(Artifact {
            name: decl.name.clone(),
            blake3,
            size,
            media_type: decl.media_type.clone(),
        });
    }
    let session = begin_upload(client, &manifest.id, &artifacts).await?;
    let uploaded = async {
        for artifact in &artifacts {
            upload(
                client,
                &session,
                artifact,
                &request.artifacts[&artifact.name],
            )
            .await?;
        }
        client
            .finish_publish(&session)
            .await
            .context("finishing the upload")
    }
    .await;
    if let Err(e) = uploaded {
        // Best effort: an abandoned session is also released when it expires.
        let _ = client.abort_publish(&session).await;
        return Err(e);
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
    let relays = outcomes(archy_marketplace::publish_report(&event, request.relays).await);
    if !relays.iter().any(|r| r.accepted) {
        bail!(
            "no relay accepted the publication (your node keeps serving the artifacts): {}",
            failures(&relays)
        );
    }
    let accepted: Vec<String> = relays
        .iter()
        .filter(|r| r.accepted)
        .map(|r| r.relay.clone())
        .collect();
    let relay_list = announce_relays(identity, &accepted, request.relays).await;
    Ok(Published {
        event_id: event.id.to_hex(),
        relays,
        local_id: archy_registry::namespaced_id(&app_id, &identity.nostr_public_hex()),
        artifacts,
        relay_list,
    })
}

/// Adds `write` to the developer's relay list (NIP-65, kind 10002) on `relays`: the newest
/// list any relay holds is kept whole (another client of the key may have made it) and
/// only the missing write relays are added. When no relay answers the lookup, nothing is
/// sent: a new list would replace the one the relays could not show.
pub async fn announce_relays(
    identity: &DeveloperIdentity,
    write: &[String],
    relays: &archy_marketplace::RelaySet,
) -> RelayListAnnounced {
    let author = identity.nostr_keys().public_key();
    let looked_up = archy_marketplace::fetch_relay_list(relays, &author, LOOKUP_TIMEOUT).await;
    let previous = match looked_up {
        Ok((_, errors)) if errors.len() >= relays.urls.len() => {
            return RelayListAnnounced {
                note: Some(format!(
                    "relay list (NIP-65) not updated: no relay could be asked for the current one ({})",
                    errors
                        .iter()
                        .map(|(r, why)| format!("{r}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                ..RelayListAnnounced::default()
            };
        }
        Ok((previous, _)) => previous,
        Err(e) => {
            return RelayListAnnounced {
                note: Some(format!("relay list (NIP-65) not updated: {e}")),
                ..RelayListAnnounced::default()
            };
        }
    };
    match archy_marketplace::relay_list_event(identity, write, previous.as_ref()) {
        Ok(None) => RelayListAnnounced {
            note: Some("relay list (NIP-65) already names these relays".into()),
            ..RelayListAnnounced::default()
        },
        Ok(Some(list)) => RelayListAnnounced {
            event_id: Some(list.id.to_hex()),
            relays: outcomes(archy_marketplace::publish_report(&list, relays).await),
            note: None,
        },
        Err(e) => RelayListAnnounced {
            note: Some(format!("relay list (NIP-65) not updated: {e}")),
            ..RelayListAnnounced::default()
        },
    }
}

/// What `archy app unpublish` did.
#[derive(Debug, Serialize)]
pub struct Unpublished {
    pub app: String,
    /// The deletion request (NIP-09, kind 5).
    pub event_id: String,
    /// The publications of the app the relays still held, named by id (newest first); the
    /// request also names the app's coordinate, which covers every version up to now.
    pub versions: Vec<String>,
    /// Relays that could not be asked which versions they hold.
    pub lookup_errors: Vec<RelayOutcome>,
    /// What each relay said to the request.
    pub relays: Vec<RelayOutcome>,
}

impl Unpublished {
    pub fn accepted(&self) -> bool {
        self.relays.iter().any(|r| r.accepted)
    }
}

/// How long each relay has to answer the lookup of the versions it holds.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Withdraws `app_id`: one NIP-09 request, signed by the developer's Nostr key, naming the
/// app's coordinate and every version the relays hold, sent to every relay. The result says
/// per relay whether it took it; the caller decides what no acceptance means.
pub async fn unpublish(
    identity: &DeveloperIdentity,
    app_id: &str,
    relays: &archy_marketplace::RelaySet,
) -> anyhow::Result<Unpublished> {
    archy_registry::grammar::check_name("app id", app_id)?;
    if relays.is_empty() {
        bail!(
            "no relay to send the withdrawal to: pass --relay ws://… (every relay you published to)"
        );
    }
    let author = identity.nostr_keys().public_key();
    let (held, errors) =
        archy_marketplace::own_publications(relays, &author, app_id, LOOKUP_TIMEOUT).await?;
    let ids: Vec<_> = held.iter().map(|e| e.id).collect();
    let event = archy_marketplace::withdrawal_event(identity.nostr_keys(), app_id, &ids)?;
    let relays = outcomes(archy_marketplace::publish_report(&event, relays).await);
    Ok(Unpublished {
        app: app_id.to_owned(),
        event_id: event.id.to_hex(),
        versions: ids.iter().map(|id| id.to_hex()).collect(),
        lookup_errors: errors
            .into_iter()
            .map(|(relay, why)| RelayOutcome {
                relay,
                accepted: false,
                error: Some(why),
            })
            .collect(),
        relays,
    })
}

/// BLAKE3 and size of a file.
async fn hash_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(&path)?)?;
        Ok((hasher.finalize().to_hex().to_string(), hasher.count()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Declares the artifacts (name, size, hash) and gets the session the uploads go to.
async fn begin_upload(
    client: &archy_api::Client,
    app: &str,
    artifacts: &[Artifact],
) -> anyhow::Result<String> {
    let request = archy_api::BeginPublish {
        app: app.to_owned(),
        artifacts: artifacts
            .iter()
            .map(|a| archy_api::DeclaredArtifact {
                name: a.name.clone(),
                size: a.size,
                blake3: a.blake3.clone(),
            })
            .collect(),
    };
    let session = client
        .begin_publish(&request)
        .await
        .context("your node refused the publication")?;
    Ok(session.session)
}

async fn upload(
    client: &archy_api::Client,
    session: &str,
    artifact: &Artifact,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening artifact {}", path.display()))?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let stored = client
        .upload_artifact(session, &artifact.name, artifact.size, body)
        .await
        .with_context(|| format!("your node refused artifact {}", artifact.name))?;
    if stored.blake3 != artifact.blake3 {
        bail!(
            "your node stored artifact {} as {:?}, but it hashes to {}; nothing was published",
            artifact.name,
            stored.blake3,
            artifact.blake3
        );
    }
    Ok(())
}

/// Far more than any mnemonic; bounds what a mistaken path makes us read.
const MAX_MNEMONIC_BYTES: u64 = 8 * 1024;

/// Writes a new developer mnemonic to `path`, created with mode 0600 (owner only) so it
/// is never readable by anyone else, not even for a moment; an existing file is refused.
pub fn write_mnemonic_file(path: &std::path::Path, phrase: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    let text = zeroize::Zeroizing::new(format!("{phrase}\n"));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads a mnemonic file (`--mnemonic-file`), refusing one that anyone but its owner may
/// read or write: the error names the `chmod` that fixes it.
pub fn read_mnemonic_file(path: &std::path::Path) -> anyhow::Result<zeroize::Zeroizing<String>> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} holds your developer mnemonic but is readable or writable by others (mode {:04o}): \
             run `chmod 600 {}` and try again",
            path.display(),
            mode & 0o7777,
            path.display()
        );
    }
    let mut text = zeroize::Zeroizing::new(String::with_capacity(MAX_MNEMONIC_BYTES as usize + 1));
    file.take(MAX_MNEMONIC_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_MNEMONIC_BYTES {
        bail!(
            "{}: more than {MAX_MNEMONIC_BYTES} bytes; that is not a mnemonic",
            path.display()
        );
    }
    Ok(text)
}

#[cfg(test)]
mod mnemonic_file_tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const WORDS: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    #[test]
    fn mnemonic_files_are_written_and_read_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.mnemonic");
        write_mnemonic_file(&path, WORDS).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_mnemonic_file(&path).unwrap().trim(), WORDS);
        // Never over an existing file.
        let err = format!("{:#}", write_mnemonic_file(&path, WORDS).unwrap_err());
        assert!(err.contains("must not exist yet"), "{err}");

        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = format!("{:#}", read_mnemonic_file(&path).unwrap_err());
            assert!(
                err.contains(&format!("run `chmod 600 {}`", path.display()))
                    && err.contains(&format!("mode {mode:04o}"))
                    && !err.contains("abandon"),
                "{err}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_mnemonic_file(&path).unwrap().trim(), WORDS);
    }
}
