//! Finding providers: the origin keeps a small tracker of which nodes say they hold which
//! hash. It never vouches for anything: a listed node is only worth trying, every byte it
//! sends is verified, and a liar gets a strike. Entries expire, and both the number of
//! providers per hash and of hashes are bounded so announcements cannot exhaust memory.
//!
//! `POST /v1/swarm/announce` takes `{"peer": PeerAddr, "hashes": ["<hex>", ...]}` and
//! answers `{"ttl_secs": n}`; `GET /v1/swarm/providers/{hash}` answers a JSON list of
//! `PeerAddr` in random order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use iroh::EndpointId;
use iroh_blobs::Hash;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::{BlobRef, Error, PeerAddr, Result, Swarm};

/// Bounds of the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// How long an announcement counts; nodes announce again before it runs out.
    pub ttl: Duration,
    /// Providers remembered per hash; a new one replaces the oldest.
    pub max_providers_per_hash: usize,
    /// Hashes remembered; announcements of new hashes past this are ignored.
    pub max_hashes: usize,
    /// Hashes accepted in one announcement.
    pub max_hashes_per_announce: usize,
    /// Socket addresses accepted per peer.
    pub max_addrs_per_peer: usize,
    /// Largest announcement body, in bytes.
    pub max_body_bytes: usize,
    /// Providers returned per query (a random sample).
    pub max_returned: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15 * 60),
            max_providers_per_hash: 64,
            max_hashes: 100_000,
            max_hashes_per_announce: 1024,
            max_addrs_per_peer: 8,
            // 1024 hex hashes with JSON quoting, plus the peer.
            max_body_bytes: 80 * 1024,
            max_returned: 16,
        }
    }
}

/// An announcement, as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub peer: PeerAddr,
    pub hashes: Vec<String>,
}

/// The tracker's answer to an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceReply {
    /// Announce again within this many seconds to stay listed.
    pub ttl_secs: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    id: EndpointId,
    addr: PeerAddr,
    expires: Instant,
}

#[derive(Debug, Default)]
struct TrackerState {
    providers: HashMap<Hash, Vec<Entry>>,
    last_sweep: Option<Instant>,
}

/// Which nodes said they hold which hash, for a while.
#[derive(Debug, Default)]
pub struct Tracker {
    config: TrackerConfig,
    state: Mutex<TrackerState>,
}

/// Why an announcement was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnounceError {
    #[error("the peer id {0:?} is not an iroh endpoint id")]
    BadPeerId(String),
    #[error("the peer gives no usable address")]
    NoAddress,
    #[error("the peer gives {given} addresses, at most {max} are accepted")]
    TooManyAddresses { given: usize, max: usize },
    #[error("{given} hashes in one announcement, at most {max} are accepted")]
    TooManyHashes { given: usize, max: usize },
    #[error("{0:?} is not a BLAKE3 hash")]
    BadHash(String),
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            state: Mutex::default(),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `peer` holds `hashes`. `source` (the announcer's IP as the HTTP server
    /// saw it) replaces unspecified addresses such as `0.0.0.0:port`.
    pub fn announce(
        &self,
        peer: &PeerAddr,
        hashes: &[String],
        source: Option<SocketAddr>,
    ) -> std::result::Result<usize, AnnounceError> {
        let c = &self.config;
        let id = peer
            .endpoint_id()
            .map_err(|_| AnnounceError::BadPeerId(peer.id.clone()))?;
        if peer.addrs.len() > c.max_addrs_per_peer {
            return Err(AnnounceError::TooManyAddresses {
                given: peer.addrs.len(),
                max: c.max_addrs_per_peer,
            });
        }
        if hashes.len() > c.max_hashes_per_announce {
            return Err(AnnounceError::TooManyHashes {
                given: hashes.len(),
                max: c.max_hashes_per_announce,
            });
        }
        let hashes = hashes
            .iter()
            .map(|h| {
                BlobRef::from_hex(h, 0)
                    .map(|b| b.hash)
                    .map_err(|_| AnnounceError::BadHash(h.chars().take(80).collect()))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut addrs: Vec<SocketAddr> = peer
            .addrs
            .iter()
            .filter(|a| a.port() != 0)
            .filter_map(|a| match (a.ip().is_unspecified(), source) {
                (false, _) => Some(*a),
                // Only within one address family: a `[::]` bind says nothing of IPv4.
                (true, Some(src)) if src.is_ipv4() == a.is_ipv4() => {
                    Some(SocketAddr::new(src.ip(), a.port()))
                }
                (true, _) => None,
            })
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(AnnounceError::NoAddress);
        }
        let addr = PeerAddr {
            id: peer.id.clone(),
            addrs,
        };
        let now = Instant::now();
        let expires = now + c.ttl;
        let mut state = self.lock();
        if state
            .last_sweep
            .is_none_or(|at| now.duration_since(at) > c.ttl / 4)
        {
            state.providers.retain(|_, entries| {
                entries.retain(|e| e.expires > now);
                !entries.is_empty()
            });
            state.last_sweep = Some(now);
        }
        let mut accepted = 0;
        for hash in hashes {
            if !state.providers.contains_key(&hash) && state.providers.len() >= c.max_hashes {
                debug!(%hash, "tracker full; announcement ignored");
                continue;
            }
            let entries = state.providers.entry(hash).or_default();
            entries.retain(|e| e.expires > now && e.id != id);
            if entries.len() >= c.max_providers_per_hash {
                // Fresh announcements win over old ones: replace the oldest.
                if let Some(oldest) = entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(i, _)| i)
                {
                    entries.swap_remove(oldest);
                }
            }
            entries.push(Entry {
                id,
                addr: addr.clone(),
                expires,
            });
            accepted += 1;
        }
        Ok(accepted)
    }

    /// Up to `max_returned` unexpired providers of `hash`, in random order.
    pub fn providers(&self, hash: &Hash) -> Vec<PeerAddr> {
        let now = Instant::now();
        let mut found: Vec<PeerAddr> = self
            .lock()
            .providers
            .get(hash)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e.expires > now)
                    .map(|e| e.addr.clone())
                    .collect()
            })
            .unwrap_or_default();
        found.shuffle(&mut rand::rng());
        found.truncate(self.config.max_returned);
        found
    }
}

/// The announcer's socket address, when the server was started with connect info.
struct Source(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Routes of the tracker: `POST /v1/swarm/announce`, `GET /v1/swarm/providers/{hash}`.
/// Serve with `into_make_service_with_connect_info::<SocketAddr>()` so announcements of
/// `0.0.0.0:port` are completed with the announcer's IP.
pub fn tracker_routes(tracker: Arc<Tracker>) -> Router {
    let limit = tracker.config.max_body_bytes;
    Router::new()
        .route(
            "/v1/swarm/announce",
            post(announce).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/v1/swarm/providers/{hash}", get(providers))
        .with_state(tracker)
}

async fn announce(
    State(tracker): State<Arc<Tracker>>,
    Source(source): Source,
    axum::Json(body): axum::Json<Announcement>,
) -> Response {
    match tracker.announce(&body.peer, &body.hashes, source) {
        Ok(_) => axum::Json(AnnounceReply {
            ttl_secs: tracker.config.ttl.as_secs(),
        })
        .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn providers(State(tracker): State<Arc<Tracker>>, Path(hash): Path<String>) -> Response {
    match BlobRef::from_hex(&hash, 0) {
        Ok(blob) => axum::Json(tracker.providers(&blob.hash)).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// Largest providers answer read (`max_returned` peers with their addresses fit easily).
const MAX_PROVIDERS_REPLY: usize = 64 * 1024;

impl Swarm {
    /// Tells the tracker at `origin_http` that this node holds `hashes` (complete blobs),
    /// in batches the tracker accepts. Returns the time-to-live it granted.
    pub async fn announce(&self, origin_http: &str, hashes: &[Hash]) -> Result<Duration> {
        let url = format!("{}/v1/swarm/announce", origin_http.trim_end_matches('/'));
        let fail = |reason: String| Error::Tracker {
            url: url.clone(),
            reason,
        };
        let peer = self.announce_addr();
        let mut ttl = Duration::MAX;
        for batch in hashes.chunks(TrackerConfig::default().max_hashes_per_announce) {
            let body = Announcement {
                peer: peer.clone(),
                hashes: batch.iter().map(|h| h.to_hex().to_string()).collect(),
            };
            let response = self
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            let bytes = read_bounded(response, 4096)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if !status.is_success() {
                return Err(fail(format!(
                    "answered {status}: {}",
                    String::from_utf8_lossy(&bytes).trim()
                )));
            }
            let reply: AnnounceReply =
                serde_json::from_slice(&bytes).map_err(|e| fail(format!("bad answer: {e}")))?;
            ttl = ttl.min(Duration::from_secs(reply.ttl_secs));
        }
        Ok(if ttl == Duration::MAX {
            Duration::ZERO
        } else {
            ttl
        })
    }

    /// Announces every complete blob this node holds; returns how many.
    pub async fn announce_held(&self, origin_http: &str) -> Result<usize> {
        let hashes = self.complete_hashes().await?;
        if !hashes.is_empty() {
            self.announce(origin_http, &hashes).await?;
        }
        Ok(hashes.len())
    }

    /// Asks the tracker at `origin_http` who holds `hash` (this node left out).
    pub async fn providers(&self, origin_http: &str, hash: &Hash) -> Result<Vec<PeerAddr>> {
        let url = format!(
            "{}/v1/swarm/providers/{}",
            origin_http.trim_end_matches('/'),
            hash.to_hex()
        );
        let fail = |reason: String| Error::Tracker {
            url: url.clone(),
            reason,
        };
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let bytes = read_bounded(response, MAX_PROVIDERS_REPLY)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("answered {status}")));
        }
        let mut peers: Vec<PeerAddr> =
            serde_json::from_slice(&bytes).map_err(|e| fail(format!("bad answer: {e}")))?;
        let me = self.endpoint_id().to_string();
        peers.retain(|p| p.id != me);
        Ok(peers)
    }

    /// The address this node announces: its bound sockets, with an unspecified IP replaced
    /// by the interface addresses the endpoint knows (the tracker fills in the rest).
    pub fn announce_addr(&self) -> PeerAddr {
        let endpoint = self.router.endpoint();
        let mut addrs: Vec<SocketAddr> = endpoint
            .bound_sockets()
            .into_iter()
            .filter(|a| !a.ip().is_unspecified())
            .collect();
        addrs.extend(endpoint.addr().ip_addrs().copied());
        // Keep unspecified binds too: the tracker knows the announcer's IP.
        addrs.extend(
            endpoint
                .bound_sockets()
                .into_iter()
                .filter(|a| a.ip().is_unspecified()),
        );
        addrs.sort();
        addrs.dedup();
        addrs.truncate(TrackerConfig::default().max_addrs_per_peer);
        PeerAddr {
            id: endpoint.id().to_string(),
            addrs,
        }
    }
}

/// Reads a response body, refusing more than `max` bytes.
async fn read_bounded(response: reqwest::Response, max: usize) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if body.len() + chunk.len() > max {
            return Err(std::io::Error::other(format!(
                "the answer is longer than {max} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
