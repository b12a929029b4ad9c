//! Artifact uploads for `archy app publish`, bounded in every direction: an upload is only
//! taken for a publication in progress that declared each artifact's size and BLAKE3 hash
//! first, never beyond the declared size (nor `max_upload_mib`), and whatever a publication
//! that fails, is aborted or expires left behind (temporary files, pins) is removed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{post, put};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use super::params::{self, ArtifactName, Blake3Hex, ManifestId, SessionId};
use crate::node::{ErrorKind, Node, NodeError};

/// A publication not finished within this time is abandoned and its uploads unpinned.
const SESSION_TTL: Duration = Duration::from_secs(3600);
/// Publications in progress at once.
const MAX_SESSIONS: usize = 4;
/// Artifacts one publication may declare.
const MAX_ARTIFACTS: usize = 16;
/// A client that sends nothing for this long has walked away; its upload is dropped.
const IDLE_BOUND: Duration = Duration::from_secs(60);
/// Tag reads and writes in the store answer in milliseconds; this long means it is wedged.
const TAG_BOUND: Duration = Duration::from_secs(60);
/// Importing a received file (hashing it into the store) of at most `max_upload_mib`.
const IMPORT_BOUND: Duration = Duration::from_secs(15 * 60);
/// After a body overruns its declared size, this much more of it is read (and dropped)
/// before answering 413, within `DRAIN_BOUND`: a client still sending then reads the
/// answer instead of a connection reset. Anything longer is cut off.
const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;
const DRAIN_BOUND: Duration = Duration::from_secs(5);

use archy_api::{
    BeginPublish, PublishAborted, PublishFinished, PublishSession, UploadedArtifact as Uploaded,
};

struct Session {
    app: String,
    declared: BTreeMap<String, (u64, String)>,
    /// Artifact name → the pin this session created for it (None: the pin already existed).
    uploaded: BTreeMap<String, Option<String>>,
    receiving: Vec<String>,
    started: Instant,
}

pub struct Uploads {
    node: Arc<Node>,
    sessions: Mutex<HashMap<String, Session>>,
}

pub fn routes(node: Arc<Node>) -> Router {
    let uploads = Arc::new(Uploads {
        node,
        sessions: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/v1/publish", post(begin))
        .route("/v1/publish/{session}", axum::routing::delete(abort))
        .route("/v1/publish/{session}/finish", post(finish))
        .route("/v1/publish/{session}/{artifact}", put(upload))
        .with_state(uploads)
}

fn tag(app: &str, artifact: &str, blake3: &str) -> String {
    format!("archy/publish/{app}/{artifact}/{blake3}")
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes what sessions left behind, for those `which` selects.
    async fn drop_sessions(&self, which: impl Fn(&str, &Session) -> bool) {
        let dropped: Vec<(String, Session)> = {
            let mut sessions = self.lock();
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(id, s)| which(id, s))
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| sessions.remove(&id).map(|s| (id, s)))
                .collect()
        };
        for (id, session) in dropped {
            for pin in session.uploaded.values().flatten() {
                if let Err(e) = self.node.swarm().unpin(pin).await {
                    warn!(session = %id, pin, error = %e, "cannot unpin an abandoned upload");
                }
            }
            info!(session = %id, app = %session.app, "publication abandoned; its uploads were released");
        }
    }

    async fn sweep_expired(&self) {
        self.drop_sessions(|_, s| s.started.elapsed() > SESSION_TTL)
            .await;
    }
}

fn invalid(message: impl Into<String>) -> NodeError {
    NodeError::new(ErrorKind::Invalid, message)
}

async fn begin(
    State(uploads): State<Arc<Uploads>>,
    Json(request): Json<BeginPublish>,
) -> Result<Json<PublishSession>, NodeError> {
    let app = params::parse::<ManifestId>(&request.app)?;
    uploads.sweep_expired().await;
    let cap = uploads
        .node
        .config()
        .max_upload_mib
        .saturating_mul(1024 * 1024);
    if request.artifacts.is_empty() || request.artifacts.len() > MAX_ARTIFACTS {
        return Err(invalid(format!(
            "a publication declares 1 to {MAX_ARTIFACTS} artifacts"
        )));
    }
    let mut declared = BTreeMap::new();
    for a in request.artifacts {
        let name = params::parse::<ArtifactName>(&a.name)?;
        let blake3 = params::parse::<Blake3Hex>(&a.blake3)?;
        if a.size == 0 || a.size > cap {
            return Err(NodeError::new(
                ErrorKind::TooLarge,
                format!(
                    "artifact {} declares {} bytes; this node takes 1 byte to {} MiB (max_upload_mib)",
                    name.0,
                    a.size,
                    uploads.node.config().max_upload_mib
                ),
            ));
        }
        if declared
            .insert(name.0.clone(), (a.size, blake3.0))
            .is_some()
        {
            return Err(invalid(format!("artifact {} is declared twice", name.0)));
        }
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    {
        let mut sessions = uploads.lock();
        if sessions.len() >= MAX_SESSIONS {
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!(
                    "{MAX_SESSIONS} publications are already in progress; finish or abort one first"
                ),
            ));
        }
        sessions.insert(
            id.clone(),
            Session {
                app: app.0,
                declared,
                uploaded: BTreeMap::new(),
                receiving: Vec::new(),
                started: Instant::now(),
            },
        );
    }
    Ok(Json(PublishSession {
        session: id,
        expires_in_seconds: SESSION_TTL.as_secs(),
    }))
}

fn unknown_session() -> NodeError {
    NodeError::new(
        ErrorKind::NotFound,
        "no such publication in progress (it finished, was aborted or expired); start again",
    )
}

async fn upload(
    State(uploads): State<Arc<Uploads>>,
    Path((session, artifact)): Path<(String, String)>,
    body: axum::body::Body,
) -> Result<Json<Uploaded>, NodeError> {
    let session = params::parse::<SessionId>(&session)?.0;
    let artifact = params::parse::<ArtifactName>(&artifact)?.0;
    let (app, size, blake3) = {
        let mut sessions = uploads.lock();
        let s = sessions.get_mut(&session).ok_or_else(unknown_session)?;
        let &(size, ref blake3) = s.declared.get(&artifact).ok_or_else(|| {
            invalid(format!(
                "artifact {artifact} was not declared when the publication began"
            ))
        })?;
        if s.uploaded.contains_key(&artifact) || s.receiving.contains(&artifact) {
            return Err(NodeError::new(
                ErrorKind::Conflict,
                format!("artifact {artifact} is already uploaded for this publication"),
            ));
        }
        s.receiving.push(artifact.clone());
        (s.app.clone(), size, blake3.clone())
    };
    let result = receive(
        &uploads.node,
        &session,
        &app,
        &artifact,
        size,
        &blake3,
        body,
    )
    .await;
    let mut sessions = uploads.lock();
    let Some(s) = sessions.get_mut(&session) else {
        // Aborted while receiving: release what this upload pinned.
        if let Ok((_, Some(pin))) = &result {
            let node = uploads.node.clone();
            let pin = pin.clone();
            tokio::spawn(async move { node.swarm().unpin(&pin).await });
        }
        return Err(unknown_session());
    };
    s.receiving.retain(|a| a != &artifact);
    let (uploaded, pin) = result?;
    s.uploaded.insert(artifact, pin);
    Ok(Json(uploaded))
}

/// Streams the body to a temporary file, at most `size` bytes, then imports and pins it
/// when its BLAKE3 hash is the declared one. The temporary file goes on every path.
async fn receive(
    node: &Node,
    session: &str,
    app: &str,
    artifact: &str,
    size: u64,
    blake3: &str,
    body: axum::body::Body,
) -> Result<(Uploaded, Option<String>), NodeError> {
    let dir = node.config().data_dir.join("tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| NodeError::new(ErrorKind::Internal, format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("publish-{session}-{artifact}"));
    struct RemoveOnDrop(std::path::PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = RemoveOnDrop(path.clone());
    let io = |e: std::io::Error| {
        NodeError::new(
            ErrorKind::Internal,
            format!("receiving artifact {artifact}: {e}"),
        )
    };
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    loop {
        let next = tokio::time::timeout(IDLE_BOUND, stream.next())
            .await
            .map_err(|_| {
                invalid(format!(
                    "the upload of {artifact} sent nothing for {} s after {received} bytes; dropped",
                    IDLE_BOUND.as_secs()
                ))
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            invalid(format!(
                "the upload of {artifact} broke off after {received} bytes: {e}"
            ))
        })?;
        received = received.saturating_add(chunk.len() as u64);
        if received > size {
            drain(&mut stream).await;
            return Err(NodeError::new(
                ErrorKind::TooLarge,
                format!("artifact {artifact} is larger than the {size} bytes declared for it"),
            ));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    drop(file);
    if received != size {
        return Err(invalid(format!(
            "artifact {artifact} is {received} bytes, {size} were declared"
        )));
    }
    let tag = tag(app, artifact, blake3);
    let existed = bounded("listing pins", TAG_BOUND, node.swarm().pins(&tag))
        .await?
        .iter()
        .any(|(t, _)| t == &tag);
    let staging = format!("archy/publish-staging/{session}/{artifact}");
    let blob = bounded(
        "importing the upload",
        IMPORT_BOUND,
        node.swarm().import_file(&path, &staging),
    )
    .await?;
    let result = if blob.hex() != blake3 {
        Err(NodeError::new(
            ErrorKind::Refused,
            format!(
                "artifact {artifact} hashes to {}, the publication declared {blake3}; nothing was kept",
                blob.hex()
            ),
        ))
    } else {
        bounded(
            "pinning the upload",
            TAG_BOUND,
            node.swarm().pin(&blob.hash, &tag),
        )
        .await
    };
    // The staging pin only bridged import and check; the blob is held by `tag` or nothing.
    if let Err(e) = bounded(
        "releasing a staging pin",
        TAG_BOUND,
        node.swarm().unpin(&staging),
    )
    .await
    {
        warn!(tag = %staging, error = %e.message, "cannot release a staging pin");
    }
    result?;
    Ok((
        Uploaded {
            blake3: blob.hex(),
            size: blob.size,
        },
        (!existed).then_some(tag),
    ))
}

/// Reads and drops at most `DRAIN_LIMIT` more bytes of an overrunning body, for at most
/// `DRAIN_BOUND`, so that the 413 that follows reaches a client that is still sending.
async fn drain<S, E>(stream: &mut S)
where
    S: futures::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
{
    let _ = tokio::time::timeout(DRAIN_BOUND, async {
        let mut dropped: u64 = 0;
        while dropped < DRAIN_LIMIT {
            match stream.next().await {
                Some(Ok(chunk)) => dropped = dropped.saturating_add(chunk.len() as u64),
                _ => break,
            }
        }
    })
    .await;
}

/// A store call with a deadline: a wedged store answers the client with an error naming
/// the step instead of holding the request (and its session) forever.
async fn bounded<T>(
    what: &str,
    within: Duration,
    call: impl std::future::Future<Output = archy_swarm::Result<T>>,
) -> Result<T, NodeError> {
    match tokio::time::timeout(within, call).await {
        Ok(result) => {
            result.map_err(|e| NodeError::new(ErrorKind::Internal, format!("{what}: {e}")))
        }
        Err(_) => Err(NodeError::new(
            ErrorKind::Unavailable,
            format!(
                "{what}: the blob store did not answer within {} s",
                within.as_secs()
            ),
        )),
    }
}

async fn finish(
    State(uploads): State<Arc<Uploads>>,
    Path(session): Path<String>,
) -> Result<Json<PublishFinished>, NodeError> {
    let session = params::parse::<SessionId>(&session)?.0;
    let mut sessions = uploads.lock();
    let s = sessions.get(&session).ok_or_else(unknown_session)?;
    let missing: Vec<&String> = s
        .declared
        .keys()
        .filter(|name| !s.uploaded.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "artifacts not uploaded yet: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let s = sessions.remove(&session).ok_or_else(unknown_session)?;
    info!(app = %s.app, artifacts = s.uploaded.len(), "publication's artifacts kept");
    Ok(Json(PublishFinished { finished: session }))
}

async fn abort(
    State(uploads): State<Arc<Uploads>>,
    Path(session): Path<String>,
) -> Result<Json<PublishAborted>, NodeError> {
    let session = params::parse::<SessionId>(&session)?.0;
    if !uploads.lock().contains_key(&session) {
        return Err(unknown_session());
    }
    uploads.drop_sessions(|id, _| id == session).await;
    Ok(Json(PublishAborted { aborted: session }))
}
