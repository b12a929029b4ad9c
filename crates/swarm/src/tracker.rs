//! Finding providers: the origin keeps a small tracker of which nodes say they hold which
//! hash. It never vouches for anything: a listed node is only worth trying, every byte it
//! sends is verified, and a liar gets a strike. Entries expire, and both the number of
//! providers per hash and of hashes are bounded so announcements cannot exhaust memory;
//! an origin's tracker lists only its catalog's hashes ([`Tracker::only`]).
//!
//! `POST /v1/swarm/announce` takes an [`Announcement`] (`{"peer": PeerAddr, "hashes":
//! ["<hex>", ...], "issued_at_ms": n, "signature": "<hex>"}`, signed by the peer's
//! endpoint key: module `announce`) and answers `{"ttl_secs": n, "recorded": n}`;
//! `GET /v1/swarm/providers/{hash}` answers a JSON list of `PeerAddr` in random order,
//! unexpired entries only (the TTL is checked on every read, not only by the sweep), peers
//! nobody reported first.
//!
//! A `PeerAddr` is a full endpoint address: direct addresses and, for a node behind a NAT,
//! the relay URL it is reachable through (`relay_url`, absent when it uses no relay). A node
//! with a relay URL needs no usable direct address. The relay URL is hostile input (a
//! fetcher opens a connection to that host): the tracker keeps only one that passes
//! [`crate::check_relay_url`], in its normalised form, and a fetcher checks the tracker's
//! answer the same way.
//!
//! Dead peers: `POST /v1/swarm/report` takes `{"hash": "<hex>", "peer": "<endpoint id>"}`
//! from a node that could not reach `peer`. A report alone never removes anyone (anybody
//! can send one, so it would let a hostile node delist honest peers): it moves the peer
//! behind the unreported ones until the peer announces again, which a live peer does on
//! every pull. Reports and announcements are rate-limited per source (an IPv4 address,
//! an IPv6 /56; an IPv6 address that carries an IPv4 one counts as it). A tracker served
//! beside a swarm ([`Tracker::with_prober`], as the origin does) then checks for itself:
//! it dials the peer, and removes the entry when nobody answers, or lifts the demotion
//! when the peer answers, so a crashed node costs fetchers one failed dial instead of one
//! per fetch until its TTL runs out, and a false report costs an honest peer nothing. A
//! peer the tracker cannot judge (it names a relay and the prober uses none) stays
//! demoted, as without a prober; each fetcher also leaves a peer it could not reach alone
//! for a while (`Swarm`'s local backoff).
//!
//! Leaving: `POST /v1/swarm/withdraw` takes a [`Withdrawal`] signed by the peer's own
//! endpoint key and removes its entries for the hashes it names at once.
//! A node withdraws from every tracker it announced to when it shuts down
//! ([`Swarm::withdraw`]); one that crashes leaves entries that a report lists last and the
//! TTL ends.

mod announce;
mod signed;
mod withdraw;

pub use announce::Announcement;
pub use signed::SignatureError;
pub use withdraw::{WITHDRAWAL_WINDOW, WithdrawError, WithdrawReply, Withdrawal};
pub(crate) use withdraw::{unix_now, unix_now_ms};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::Ordering;
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
use tracing::{debug, info};

use crate::policy::Reach;
use crate::{BlobRef, Error, PeerAddr, Result, Swarm};

/// Bounds of the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// How long an announcement counts; nodes announce again before it runs out.
    pub ttl: Duration,
    /// Providers remembered per hash; when full, a new one replaces the oldest of the
    /// network (an IPv4 address, an IPv6 /48) with the most.
    pub max_providers_per_hash: usize,
    /// Providers remembered per hash from one source (the announcer's IP as the tracker
    /// sees it: an IPv4 address, or an IPv6 /56, a home's prefix); a new one replaces that
    /// source's oldest. Ids are free to make, so without it one address could fill a hash's
    /// list with ids that serve nothing, push out every honest provider and take most of a
    /// herd's charges (DESIGN Swarm 8). A tracker behind a reverse proxy sees the proxy's
    /// address for everyone, and one behind a NAT64 with a prefix other than the
    /// well-known `64:ff9b::/96` sees every IPv4 client in one /56: serve it directly.
    pub max_providers_per_source: usize,
    /// Providers remembered per hash from one network (an IPv6 /48, a site; an IPv4
    /// address is its own): sources are cheap inside a site (a /48 holds 256 homes' /56s),
    /// so this bounds what one site can take of a herd's list, and a full list gives up a
    /// network's entries, not a source's: many sources of one site cannot push others out.
    pub max_providers_per_network: usize,
    /// Hashes remembered; announcements of new hashes past this are ignored.
    pub max_hashes: usize,
    /// Hashes accepted in one announcement.
    pub max_hashes_per_announce: usize,
    /// Socket addresses accepted per peer.
    pub max_addrs_per_peer: usize,
    /// Largest announcement body, in bytes.
    pub max_body_bytes: usize,
    /// Providers returned per query (a random sample, unreported peers first). As many as
    /// are kept by default: a herd's nodes split the blob's origin pieces by the herd they
    /// know (DESIGN Swarm 8), and with a sample each knew a different part (at 40 nodes
    /// and 16 returned, a first answer made each node think itself in charge of 1/17 of
    /// the blob instead of 1/40).
    pub max_returned: usize,
    /// Reports of unreachable peers accepted per source (an IPv4 address, an IPv6 /56) per
    /// minute.
    pub max_reports_per_minute: u32,
    /// Announcements naming a tracked hash accepted per source per minute, counted before
    /// their signature is checked, from any address but loopback (a request with no known
    /// source is not counted either: serve the tracker directly). A node announces as a
    /// fetch starts, as it ends and after each pull, so a home of ten nodes installing an
    /// app of three artifacts sends about 60, and an office or a carrier's NAT more. Each
    /// costs a signature check and a pass over the entries of each hash, under the
    /// tracker's lock. Past 10,000 sources in a minute, new ones share 1,000 a minute.
    pub max_announcements_per_minute: u32,
    /// How long the tracker's own dial of a reported peer may take to connect (a relayed
    /// dial included) before the peer counts as gone ([`Tracker::with_prober`]).
    pub probe_timeout: Duration,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15 * 60),
            max_providers_per_hash: 64,
            max_providers_per_source: 16,
            max_providers_per_network: 32,
            max_hashes: 100_000,
            max_hashes_per_announce: 1024,
            max_addrs_per_peer: 8,
            // 1024 hex hashes with JSON quoting, plus the peer.
            max_body_bytes: 80 * 1024,
            max_returned: 64,
            max_reports_per_minute: 30,
            max_announcements_per_minute: 600,
            probe_timeout: Duration::from_secs(10),
        }
    }
}

/// The tracker's answer to an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceReply {
    /// Announce again within this many seconds to stay listed.
    pub ttl_secs: u64,
    /// Hashes recorded (not: a tracker full of hashes, an announcement older than the one
    /// the tracker keeps for this peer, or a hash it withdrew since); absent from trackers
    /// that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<usize>,
}

/// A node's report that it could not reach a listed provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableReport {
    pub hash: String,
    /// The provider's endpoint id.
    pub peer: String,
}

impl UnreachableReport {
    /// The hash and the peer id it names, or which of them is malformed.
    fn parse(&self) -> std::result::Result<(Hash, EndpointId), ReportError> {
        let hash = BlobRef::from_hex(&self.hash, 0)
            .map_err(|_| ReportError::BadHash(self.hash.chars().take(80).collect()))?
            .hash;
        let peer = EndpointId::from_str(&self.peer)
            .map_err(|_| ReportError::BadPeerId(self.peer.chars().take(80).collect()))?;
        Ok((hash, peer))
    }
}

/// What the tracker did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportOutcome {
    /// The peer is now listed after the unreported ones.
    Demoted,
    /// The tracker does not list that peer for that hash (or the entry expired).
    NotListed,
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("{0:?} is not a BLAKE3 hash")]
    BadHash(String),
    #[error("the peer id {0:?} is not an iroh endpoint id")]
    BadPeerId(String),
    #[error("too many reports from this address; try again in a minute")]
    RateLimited,
}

#[derive(Debug, Clone)]
struct Entry {
    id: EndpointId,
    addr: PeerAddr,
    expires: Instant,
    /// When its announcement was issued, in Unix milliseconds, by the peer's clock (the
    /// tracker's for one recorded in process): an older announcement does not replace it,
    /// and a withdrawal issued before it does not remove it.
    issued_ms: u64,
    /// The announcer's IP as the tracker saw it: the only address a probe dials.
    source: Option<std::net::IpAddr>,
    /// Someone could not reach it since it last announced: listed after the others.
    reported: bool,
}

#[derive(Debug, Default)]
struct TrackerState {
    providers: HashMap<Hash, Vec<Entry>>,
    last_sweep: Option<Instant>,
    /// Reports per source in the current minute.
    reporters: PerMinute,
    /// Signed announcements per source in the current minute.
    announcers: PerMinute,
    /// Peers whose probe is running.
    probing: std::collections::HashSet<EndpointId>,
    /// Withdrawn (hash, peer) pairs, with the withdrawal's issue time (Unix ms, the end of
    /// its second): an announcement issued no later, replayed within its window, does not
    /// list the peer again. Kept for [`WITHDRAWAL_WINDOW`], at most [`MAX_TOMBSTONES`].
    withdrawn: HashMap<(Hash, EndpointId), u64>,
    /// When a full `withdrawn` was last swept of expired pairs.
    withdrawn_swept: Option<Instant>,
}

impl TrackerState {
    /// Forgets withdrawn pairs older than the window before `now` (Unix seconds): an
    /// announcement that old is refused anyway.
    fn forget_withdrawals(&mut self, now: u64) {
        let horizon = now.saturating_sub(WITHDRAWAL_WINDOW.as_secs()) * 1000;
        self.withdrawn.retain(|_, at| *at >= horizon);
    }
}

/// Withdrawn pairs remembered, at most; past it, expired ones go first, then the
/// withdrawal is still applied but not remembered (a replay could then list the peer
/// again, which costs fetchers one dial and a report).
const MAX_TOMBSTONES: usize = 100_000;

/// Which sources are counted together (reports, providers per source): one IPv4 address,
/// or one IPv6 /56 (a home gets a /56 or a /64 of its own, so counting per address or
/// per /64 would not limit it: a /56 holds 256 /64s).
fn source_key(ip: IpAddr) -> IpAddr {
    prefix(ip, 32, 56)
}

/// Which sources make one network (providers per network, and who gives up an entry when
/// a hash's list is full): an IPv6 /48 (a site: one holds 256 /56s), an IPv4 address
/// (addresses are scarce; grouping a /24 would put an ISP's customers on one count and
/// give them up first once attackers spread over many addresses).
fn network_key(ip: IpAddr) -> IpAddr {
    prefix(ip, 32, 48)
}

/// The first `v4` or `v6` bits of `ip`. An IPv6 address that carries an IPv4 one counts
/// as that IPv4 address ([`embedded_ipv4`]).
fn prefix(ip: IpAddr, v4: u32, v6: u32) -> IpAddr {
    debug_assert!(v4 <= 32 && v6 <= 128);
    let v4_prefix = |a: std::net::Ipv4Addr| {
        let mask = u32::MAX.checked_shl(32 - v4).unwrap_or(0);
        IpAddr::from(std::net::Ipv4Addr::from(u32::from(a) & mask))
    };
    match ip {
        IpAddr::V6(a) => match embedded_ipv4(a) {
            Some(inner) => v4_prefix(inner),
            None => {
                let mask = u128::MAX.checked_shl(128 - v6).unwrap_or(0);
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(a) & mask))
            }
        },
        IpAddr::V4(a) => v4_prefix(a),
    }
}

/// The IPv4 address an IPv6 one stands for: IPv4-mapped (`::ffff:a.b.c.d`), NAT64's
/// well-known prefix (`64:ff9b::a.b.c.d`: a translating tracker sees every IPv4 client
/// there), 6to4 (`2002:AABB:CCDD::/48` is one IPv4 address's, so one address would be two
/// networks) and Teredo (`2001:0::/32`, the client's address inverted in the last 32 bits;
/// the prefix names the Teredo server, shared by its clients).
fn embedded_ipv4(a: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let bits = u128::from(a);
    let low32 = bits as u32;
    if let Some(mapped) = a.to_ipv4_mapped() {
        return Some(mapped);
    }
    match a.segments() {
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low32.into()),
        [0x2002, ..] => Some(((bits >> 80) as u32).into()),
        [0x2001, 0, ..] => Some((!low32).into()),
        _ => None,
    }
}

/// `source` with an IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(source: Option<SocketAddr>) -> Option<SocketAddr> {
    source.map(|s| SocketAddr::new(s.ip().to_canonical(), s.port()))
}

/// Sources whose counts one [`PerMinute`] remembers.
const MAX_COUNTED: usize = 10_000;

/// Requests past [`MAX_COUNTED`] sources in one minute, all such sources together.
const MAX_UNCOUNTED: u32 = 1000;

/// Requests per source ([`source_key`]) in the current minute: (window start, count).
#[derive(Debug, Default)]
struct PerMinute {
    sources: HashMap<Option<IpAddr>, (Instant, u32)>,
    /// When a full table was last swept of ended windows (at most once a second: a sweep
    /// holds the tracker's lock over every source).
    swept: Option<Instant>,
    /// Requests of sources past the table's bound this minute: (window start, count).
    uncounted: (Option<Instant>, u32),
}

/// What [`PerMinute::admit`] says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// Counted, within the source's bound.
    Yes,
    /// The source made its `max` this minute.
    Over,
    /// A new source while [`MAX_COUNTED`] others are counted this minute: counted with all
    /// such sources together, up to [`MAX_UNCOUNTED`] a minute (then [`Admit::Over`]).
    Uncounted,
}

impl PerMinute {
    /// Counts a request from `key` at `now`, unless `key` made `max` this minute already or
    /// [`MAX_COUNTED`] other sources are counted this minute.
    fn admit(&mut self, key: Option<IpAddr>, now: Instant, max: u32) -> Admit {
        let minute = Duration::from_secs(60);
        if !self.sources.contains_key(&key) && self.sources.len() >= MAX_COUNTED {
            if self
                .swept
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
            {
                self.swept = Some(now);
                self.sources
                    .retain(|_, (since, _)| now.duration_since(*since) < minute);
            }
            if self.sources.len() >= MAX_COUNTED {
                let (since, count) = &mut self.uncounted;
                if since.is_none_or(|at| now.duration_since(at) >= minute) {
                    (*since, *count) = (Some(now), 0);
                }
                if *count >= MAX_UNCOUNTED {
                    return Admit::Over;
                }
                *count += 1;
                return Admit::Uncounted;
            }
        }
        let (since, count) = self.sources.entry(key).or_insert((now, 0));
        if now.duration_since(*since) >= minute {
            (*since, *count) = (now, 0);
        }
        if *count >= max {
            return Admit::Over;
        }
        *count += 1;
        Admit::Yes
    }
}

/// Which nodes said they hold which hash, for a while.
#[derive(Default)]
pub struct Tracker {
    config: TrackerConfig,
    state: Mutex<TrackerState>,
    /// The swarm that dials reported peers to see whether they answer.
    prober: Option<Arc<Swarm>>,
    /// The only hashes listed, when set ([`Tracker::only`]).
    tracked: Option<std::collections::HashSet<Hash>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("config", &self.config)
            .field("probes", &self.prober.is_some())
            .field("tracked", &self.tracked.as_ref().map(|t| t.len()))
            .finish_non_exhaustive()
    }
}

/// A running probe of a peer; ends it however the probe ends (a panic included).
struct ProbeSlot<'a> {
    tracker: &'a Tracker,
    peer: EndpointId,
}

impl Drop for ProbeSlot<'_> {
    fn drop(&mut self) {
        self.tracker.lock().probing.remove(&self.peer);
    }
}

/// Probes running at once; a report past this only demotes.
const MAX_PROBES: usize = 8;

/// What a probe of a reported peer concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The peer answered: its demotion is lifted.
    Alive,
    /// Nobody answered: the entry is removed.
    Removed,
    /// Not judged: the peer names a relay that is not one of the prober's own (others may
    /// reach it through it), nothing the tracker may dial (no address at the announcer's
    /// IP), a dial that failed for the prober's own reasons, the entry changed (announced
    /// again, expired) while it ran, or too many probes were running.
    Unjudged,
}

/// Why an announcement was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnounceError {
    #[error("the peer id {0:?} is not an iroh endpoint id")]
    BadPeerId(String),
    #[error("the peer gives no usable address and no relay URL")]
    NoAddress,
    #[error("the peer's {0}")]
    BadRelayUrl(crate::BadRelayUrl),
    #[error("the peer gives {given} addresses, at most {max} are accepted")]
    TooManyAddresses { given: usize, max: usize },
    #[error("{given} hashes in one announcement, at most {max} are accepted")]
    TooManyHashes { given: usize, max: usize },
    #[error("{0:?} is not a BLAKE3 hash")]
    BadHash(String),
    #[error(
        "the announcement is not signed by the peer's key (a node from before signed \
         announcements: upgrade it)"
    )]
    Unsigned,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("too many announcements from this address; try again in a minute")]
    RateLimited,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            state: Mutex::default(),
            prober: None,
            tracked: None,
        }
    }

    /// Lists only `hashes` (an origin's: the artifacts of the catalog it serves); an
    /// announcement's other hashes are not recorded, and one with none of them is answered
    /// before its signature is checked. Without it any hash is listed, up to
    /// [`TrackerConfig::max_hashes`]: announcements of made-up hashes (free, like the ids)
    /// filled the table, kept the hashes of the next release out, and held about 750 bytes
    /// an entry.
    pub fn only(self, hashes: impl IntoIterator<Item = Hash>) -> Self {
        Self {
            tracked: Some(hashes.into_iter().collect()),
            ..self
        }
    }

    /// Whether `hash` may be listed.
    fn tracks(&self, hash: &Hash) -> bool {
        self.tracked.as_ref().is_none_or(|t| t.contains(hash))
    }

    /// A tracker that dials each peer reported unreachable through `swarm` (the origin's)
    /// and acts on the answer (see the module doc).
    pub fn with_prober(config: TrackerConfig, swarm: Arc<Swarm>) -> Self {
        Self {
            prober: Some(swarm),
            ..Self::new(config)
        }
    }

    /// Dials `peer`, reported unreachable for `hash`, through the prober: removes its entry
    /// when nobody answers within [`TrackerConfig::probe_timeout`], lifts its demotion
    /// when it answers. Only what the tracker can judge without being steered is dialed:
    /// the entry's addresses at the IP its announcement came from (never an address the
    /// announcer merely named) and its relay when it is one of the prober's own relays; a
    /// peer that names any other relay is not judged.
    /// Without those, without a prober, past 8 probes at once or when the dial fails for a
    /// reason of the prober's own (no route, no relay), nothing is judged.
    pub async fn probe(&self, hash: Hash, peer: EndpointId) -> ProbeOutcome {
        let Some(swarm) = &self.prober else {
            return ProbeOutcome::Unjudged;
        };
        let entry = {
            let mut state = self.lock();
            let now = Instant::now();
            let entry = state.providers.get(&hash).and_then(|entries| {
                entries
                    .iter()
                    .find(|e| e.id == peer && e.expires > now)
                    .map(|e| (e.addr.clone(), e.source, e.expires))
            });
            match entry {
                Some(entry) if state.probing.len() < MAX_PROBES && state.probing.insert(peer) => {
                    entry
                }
                _ => return ProbeOutcome::Unjudged,
            }
        };
        let slot = ProbeSlot {
            tracker: self,
            peer,
        };
        let (addr, source, expires) = entry;
        // A peer that names a relay other than the prober's own may be reachable through it
        // by everyone else (behind a NAT, that is how): a failed direct dial proves nothing.
        let relay = match addr.relay() {
            Ok(Some(url)) if swarm.relay_map.contains(&url) => Some(url.to_string()),
            Ok(None) => None,
            _ => return ProbeOutcome::Unjudged,
        };
        let target = PeerAddr {
            id: addr.id.clone(),
            addrs: addr
                .addrs
                .iter()
                .filter(|a| Some(a.ip()) == source)
                .copied()
                .collect(),
            relay_url: relay,
        };
        let reach = if target.addrs.is_empty() && target.relay_url.is_none() {
            Reach::Failed
        } else {
            swarm.reachable(&target, self.config.probe_timeout).await
        };
        drop(slot);
        let mut state = self.lock();
        let Some(entries) = state.providers.get_mut(&hash) else {
            return ProbeOutcome::Unjudged;
        };
        // The same entry it probed: one announced again meanwhile is the peer's own word.
        let Some(i) = entries
            .iter()
            .position(|e| e.id == peer && e.expires == expires)
        else {
            return ProbeOutcome::Unjudged;
        };
        match reach {
            Reach::Answered => {
                entries[i].reported = false;
                ProbeOutcome::Alive
            }
            Reach::NoAnswer => {
                entries.swap_remove(i);
                if entries.is_empty() {
                    state.providers.remove(&hash);
                }
                debug!(%hash, %peer, "reported peer did not answer the tracker's dial; entry removed");
                ProbeOutcome::Removed
            }
            Reach::Failed => ProbeOutcome::Unjudged,
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a signed announcement (module [`announce`]'s doc): refused unless its
    /// peer's key signed it within the window; not recorded for a hash where the peer's
    /// entry comes from an announcement issued no earlier. `source` (the announcer's IP as
    /// the HTTP server saw it) replaces unspecified addresses such as `0.0.0.0:port`.
    /// How many hashes were recorded.
    pub fn announce_signed(
        &self,
        announcement: &Announcement,
        source: Option<SocketAddr>,
    ) -> std::result::Result<usize, AnnounceError> {
        self.announce_signed_at(announcement, source, unix_now())
    }

    /// [`Tracker::announce_signed`] with the tracker's clock at `now` (Unix seconds).
    pub(crate) fn announce_signed_at(
        &self,
        announcement: &Announcement,
        source: Option<SocketAddr>,
        now: u64,
    ) -> std::result::Result<usize, AnnounceError> {
        // The counts first: they are cheap, the signature is not; nor is a signature
        // checked for an announcement of nothing this tracker lists.
        self.check_counts(&announcement.peer, &announcement.hashes)?;
        let hashes = signed::parse_hashes(&announcement.hashes).map_err(AnnounceError::BadHash)?;
        if !hashes.is_empty() && !hashes.iter().any(|h| self.tracks(h)) {
            return Ok(0);
        }
        if let Some(source) = canonical(source).filter(|s| !s.ip().is_loopback()) {
            let key = Some(source_key(source.ip()));
            let max = self.config.max_announcements_per_minute;
            // Past the table's bound new sources share one count: many sources (a few
            // /48s' worth of /56s) must not shut honest nodes out of the tracker at once.
            if self.lock().announcers.admit(key, Instant::now(), max) == Admit::Over {
                return Err(AnnounceError::RateLimited);
            }
        }
        announcement.check(now)?;
        self.record(
            &announcement.peer,
            &hashes,
            source,
            announcement.issued_at_ms,
            true,
        )
    }

    /// Records that `peer` holds `hashes`, on the word of the caller (in process: the
    /// route takes only [`Tracker::announce_signed`]). `source` as there.
    pub fn announce(
        &self,
        peer: &PeerAddr,
        hashes: &[String],
        source: Option<SocketAddr>,
    ) -> std::result::Result<usize, AnnounceError> {
        self.announce_at(peer, hashes, source, unix_now())
    }

    /// [`Tracker::announce`] with the tracker's clock at `announced` (Unix seconds).
    pub(crate) fn announce_at(
        &self,
        peer: &PeerAddr,
        hashes: &[String],
        source: Option<SocketAddr>,
        announced: u64,
    ) -> std::result::Result<usize, AnnounceError> {
        self.check_counts(peer, hashes)?;
        let hashes = signed::parse_hashes(hashes).map_err(AnnounceError::BadHash)?;
        self.record(peer, &hashes, source, announced.saturating_mul(1000), false)
    }

    /// How many addresses and hashes an announcement may carry.
    fn check_counts(
        &self,
        peer: &PeerAddr,
        hashes: &[String],
    ) -> std::result::Result<(), AnnounceError> {
        let c = &self.config;
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
        Ok(())
    }

    /// Records an announcement issued at `issued_ms` (Unix ms), its counts checked
    /// ([`Tracker::check_counts`]) and its hashes parsed. A `signed` one does not replace
    /// an entry issued no earlier, nor list a peer again for a hash it withdrew since.
    fn record(
        &self,
        peer: &PeerAddr,
        hashes: &[Hash],
        source: Option<SocketAddr>,
        issued_ms: u64,
        signed: bool,
    ) -> std::result::Result<usize, AnnounceError> {
        let c = &self.config;
        // An IPv4 announcer on a dual-stack socket is seen as `::ffff:a.b.c.d`.
        let source = canonical(source);
        let id = peer
            .endpoint_id()
            .map_err(|_| AnnounceError::BadPeerId(peer.id.clone()))?;
        let relay_url = peer
            .relay_url
            .as_deref()
            .map(crate::check_relay_url)
            .transpose()
            .map_err(AnnounceError::BadRelayUrl)?
            .map(|u| u.to_string());
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
        if addrs.is_empty() && relay_url.is_none() {
            return Err(AnnounceError::NoAddress);
        }
        let addr = PeerAddr {
            // Listed in its one canonical form: an id spelled another way would not match
            // the fetcher's own when it leaves itself out of the answer.
            id: id.to_string(),
            addrs,
            relay_url,
        };
        let source_ip = source.map(|s| s.ip());
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
            state.forget_withdrawals(unix_now());
            state.last_sweep = Some(now);
        }
        let mut accepted = 0;
        for &hash in hashes {
            if !self.tracks(&hash) {
                continue;
            }
            if !state.providers.contains_key(&hash) && state.providers.len() >= c.max_hashes {
                debug!(%hash, "tracker full; announcement ignored");
                continue;
            }
            // Issued before the peer withdrew: a replay.
            if signed
                && state
                    .withdrawn
                    .get(&(hash, id))
                    .is_some_and(|at| *at >= issued_ms)
            {
                continue;
            }
            let entries = state.providers.entry(hash).or_default();
            // A replay (from anywhere) of this announcement or an older one: the entry
            // stays as the peer's latest announcement made it.
            if signed
                && entries
                    .iter()
                    .any(|e| e.id == id && e.expires > now && e.issued_ms >= issued_ms)
            {
                continue;
            }
            entries.retain(|e| e.expires > now && e.id != id);
            if let Some(i) = to_replace(entries, source_ip, c) {
                entries.swap_remove(i);
            }
            entries.push(Entry {
                id,
                addr: addr.clone(),
                expires,
                issued_ms,
                source: source_ip,
                reported: false,
            });
            accepted += 1;
        }
        Ok(accepted)
    }

    /// Up to `max_returned` unexpired providers of `hash`, in random order, those nobody
    /// reported unreachable first.
    pub fn providers(&self, hash: &Hash) -> Vec<PeerAddr> {
        let now = Instant::now();
        let (mut fresh, mut reported): (Vec<&Entry>, Vec<&Entry>) = (Vec::new(), Vec::new());
        let state = self.lock();
        for e in state.providers.get(hash).into_iter().flatten() {
            // Expiry is enforced here, not only by the sweep in `announce`.
            if e.expires > now {
                match e.reported {
                    false => fresh.push(e),
                    true => reported.push(e),
                }
            }
        }
        let mut rng = rand::rng();
        fresh.shuffle(&mut rng);
        reported.shuffle(&mut rng);
        fresh
            .into_iter()
            .chain(reported)
            .take(self.config.max_returned)
            .map(|e| e.addr.clone())
            .collect()
    }

    /// A node at `source` could not reach `peer` for `hash`: list it after the others
    /// until it announces again. Nothing is removed (see the module doc).
    pub fn report(
        &self,
        report: &UnreachableReport,
        source: Option<SocketAddr>,
    ) -> std::result::Result<ReportOutcome, ReportError> {
        let (hash, peer) = report.parse()?;
        self.demote(hash, peer, source)
    }

    /// [`Tracker::report`] of a parsed report.
    fn demote(
        &self,
        hash: Hash,
        peer: EndpointId,
        source: Option<SocketAddr>,
    ) -> std::result::Result<ReportOutcome, ReportError> {
        let now = Instant::now();
        let mut state = self.lock();
        let key = source.map(|s| source_key(s.ip()));
        // Past the table's bound a new source is refused: a report only demotes.
        if state
            .reporters
            .admit(key, now, self.config.max_reports_per_minute)
            != Admit::Yes
        {
            return Err(ReportError::RateLimited);
        }
        let entry = state
            .providers
            .get_mut(&hash)
            .and_then(|entries| entries.iter_mut().find(|e| e.id == peer && e.expires > now));
        Ok(match entry {
            Some(e) => {
                e.reported = true;
                ReportOutcome::Demoted
            }
            None => ReportOutcome::NotListed,
        })
    }
}

impl Tracker {
    /// Withdrawn (hash, peer) pairs remembered.
    #[cfg(test)]
    pub(crate) fn tombstones(&self) -> usize {
        self.lock().withdrawn.len()
    }

    /// Removes the entries a signed [`Withdrawal`] names; returns how many there were.
    /// Refused, it removes nothing.
    pub fn withdraw(&self, withdrawal: &Withdrawal) -> std::result::Result<usize, WithdrawError> {
        self.withdraw_at(withdrawal, unix_now())
    }

    /// [`Tracker::withdraw`] with the tracker's clock at `now` (Unix seconds).
    pub(crate) fn withdraw_at(
        &self,
        withdrawal: &Withdrawal,
        now: u64,
    ) -> std::result::Result<usize, WithdrawError> {
        let checked = withdrawal.check(now, self.config.max_hashes_per_announce)?;
        // Through the end of its second, by the peer's clock as its announcements are.
        let until_ms = withdrawal
            .issued_at
            .saturating_mul(1000)
            .saturating_add(999);
        let mut state = self.lock();
        // A full table is swept once a second at most, not per hash or per withdrawal.
        if state.withdrawn.len() + checked.hashes.len() > MAX_TOMBSTONES
            && state
                .withdrawn_swept
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            state.withdrawn_swept = Some(Instant::now());
            state.forget_withdrawals(now);
        }
        let mut removed = 0;
        for hash in &checked.hashes {
            let Some(entries) = state.providers.get_mut(hash) else {
                continue;
            };
            let before = entries.len();
            // Only what was announced by then: the same withdrawal replayed later (here or
            // at another tracker) never removes what the peer announced after it.
            entries.retain(|e| e.id != checked.peer || e.issued_ms > until_ms);
            let gone = before - entries.len();
            removed += gone;
            if entries.is_empty() {
                state.providers.remove(hash);
            }
            // Remembered only where the peer was listed: hashes made up for the purpose
            // would otherwise fill the table for nothing.
            let key = (*hash, checked.peer);
            if gone > 0
                && (state.withdrawn.len() < MAX_TOMBSTONES || state.withdrawn.contains_key(&key))
            {
                let at = state.withdrawn.entry(key).or_default();
                *at = (*at).max(until_ms);
            }
        }
        Ok(removed)
    }
}

/// Which entry of a hash's `entries` a new one from `source` replaces, if any: the oldest
/// of `source`'s own ([`source_key`]) once it has
/// [`TrackerConfig::max_providers_per_source`], else the oldest of its network's
/// ([`network_key`]) once that has [`TrackerConfig::max_providers_per_network`], else,
/// when the list is full, the oldest entry of the networks with the most (fresh
/// announcements win over old ones, and many ids from one address or one network's many
/// addresses do not push out others).
fn to_replace(entries: &[Entry], source: Option<IpAddr>, c: &TrackerConfig) -> Option<usize> {
    let oldest = |of: &dyn Fn(&Entry) -> bool| {
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| of(e))
            .min_by_key(|(_, e)| e.expires)
            .map(|(i, _)| i)
    };
    for (key, cap) in [
        (
            source_key as fn(IpAddr) -> IpAddr,
            c.max_providers_per_source,
        ),
        (network_key, c.max_providers_per_network),
    ] {
        let of = |e: &Entry| e.source.map(key) == source.map(key);
        if entries.iter().filter(|e| of(e)).count() >= cap.max(1) {
            return oldest(&of);
        }
    }
    if entries.len() < c.max_providers_per_hash {
        return None;
    }
    let network = |ip: Option<IpAddr>| ip.map(network_key);
    let mut per_network: HashMap<Option<IpAddr>, usize> = HashMap::new();
    for e in entries {
        *per_network.entry(network(e.source)).or_default() += 1;
    }
    let most = per_network.values().copied().max()?;
    oldest(&|e| per_network.get(&network(e.source)) == Some(&most))
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

/// Routes of the tracker: `POST /v1/swarm/announce`, `GET /v1/swarm/providers/{hash}`,
/// `POST /v1/swarm/report` and `POST /v1/swarm/withdraw`.
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
        .route(
            "/v1/swarm/report",
            post(report).layer(DefaultBodyLimit::max(MAX_REPORT_BODY)),
        )
        .route(
            "/v1/swarm/withdraw",
            post(withdraw_route).layer(DefaultBodyLimit::max(limit)),
        )
        .with_state(tracker)
}

/// Largest report body: a hash and an endpoint id, with room to spare.
const MAX_REPORT_BODY: usize = 1024;

/// 429 for a source past its count this minute (its window ends within a minute).
fn too_many(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, "60")],
        format!("{e}\n"),
    )
        .into_response()
}

async fn report(
    State(tracker): State<Arc<Tracker>>,
    Source(source): Source,
    axum::Json(body): axum::Json<UnreachableReport>,
) -> Response {
    let outcome = body
        .parse()
        .and_then(|(hash, peer)| Ok((hash, peer, tracker.demote(hash, peer, source)?)));
    match outcome {
        Ok((hash, peer, outcome)) => {
            if outcome == ReportOutcome::Demoted && tracker.prober.is_some() {
                let tracker = tracker.clone();
                tokio::spawn(async move { tracker.probe(hash, peer).await });
            }
            axum::Json(outcome).into_response()
        }
        Err(e @ ReportError::RateLimited) => too_many(e),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn withdraw_route(
    State(tracker): State<Arc<Tracker>>,
    axum::Json(body): axum::Json<Withdrawal>,
) -> Response {
    match tracker.withdraw(&body) {
        Ok(removed) => axum::Json(WithdrawReply { removed }).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn announce(
    State(tracker): State<Arc<Tracker>>,
    Source(source): Source,
    axum::Json(body): axum::Json<Announcement>,
) -> Response {
    match tracker.announce_signed(&body, source) {
        Ok(recorded) => axum::Json(AnnounceReply {
            ttl_secs: tracker.config.ttl.as_secs(),
            recorded: Some(recorded),
        })
        .into_response(),
        Err(e @ AnnounceError::RateLimited) => too_many(e),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn providers(State(tracker): State<Arc<Tracker>>, Path(hash): Path<String>) -> Response {
    match BlobRef::from_hex(&hash, 0) {
        Ok(blob) => axum::Json(tracker.providers(&blob.hash)).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// Largest providers answer read: 64 peers with 8 addresses and a 256-byte relay URL each
/// fit.
const MAX_PROVIDERS_REPLY: usize = 128 * 1024;

/// Which tracker listed which peer (the last one that did), bounded.
#[derive(Debug, Default)]
pub(crate) struct ListedBy(HashMap<EndpointId, String>);

/// The hashes this node announced, per tracker (base URL), bounded.
#[derive(Debug, Default)]
pub(crate) struct AnnouncedTo {
    by_tracker: HashMap<String, std::collections::HashSet<Hash>>,
    total: usize,
}

/// Announced hashes remembered for withdrawal; past this, new ones are not (they leave the
/// tracker when its TTL runs out, as they did before withdrawals).
const MAX_ANNOUNCED: usize = 100_000;

impl AnnouncedTo {
    fn record(&mut self, tracker: &str, hashes: &[Hash]) {
        let set = self.by_tracker.entry(tracker.to_owned()).or_default();
        for h in hashes {
            if self.total >= MAX_ANNOUNCED {
                debug!(
                    tracker,
                    "too many announced hashes to remember; the rest expire"
                );
                return;
            }
            if set.insert(*h) {
                self.total += 1;
            }
        }
    }
}

/// How long one withdrawal request may take.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(5);

/// Peers whose tracker is remembered; the map starts over past this.
const MAX_LISTED: usize = 4096;

/// How long an announcement waits for a home relay (relays on, none reached yet).
const HOME_RELAY_WAIT: Duration = Duration::from_secs(5);

/// How long reporting an unreachable peer to its tracker may take (in the background).
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

impl Swarm {
    /// Tells the tracker at `origin_http` that this node holds `hashes` (complete blobs),
    /// in batches the tracker accepts. Returns the time-to-live it granted. With relays on,
    /// it first waits briefly for a home relay, so the announcement carries its URL.
    pub async fn announce(&self, origin_http: &str, hashes: &[Hash]) -> Result<Duration> {
        let url = format!("{}/v1/swarm/announce", origin_http.trim_end_matches('/'));
        let fail = |reason: String| Error::Tracker {
            url: url.clone(),
            reason,
        };
        if !self.relay_map.is_empty()
            && self.home_relay().is_none()
            && !self.online(HOME_RELAY_WAIT).await
        {
            debug!("no home relay yet; announcing direct addresses only");
        }
        let peer = self.announce_addr();
        self.announced_to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(origin_http.trim_end_matches('/'), hashes);
        let mut ttl = Duration::MAX;
        let key = self.router.endpoint().secret_key();
        for batch in hashes.chunks(TrackerConfig::default().max_hashes_per_announce) {
            let body = Announcement::sign(key, peer.clone(), self.next_issue_ms(), batch);
            let response = self
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let reply: AnnounceReply = json_reply(response, 4096).await.map_err(fail)?;
            let distinct = batch.iter().collect::<std::collections::HashSet<_>>().len();
            if let Some(recorded) = reply.recorded
                && recorded < distinct
            {
                // Hashes the tracker does not list (not in its catalog), a tracker full of
                // hashes, an announcement older than one it keeps, or hashes withdrawn
                // within the window: normal after an update (older blobs are still held).
                debug!(tracker = %url, recorded, announced = distinct, "the tracker did not record every hash announced");
            }
            ttl = ttl.min(Duration::from_secs(reply.ttl_secs));
        }
        Ok(if ttl == Duration::MAX {
            Duration::ZERO
        } else {
            ttl
        })
    }

    /// The issue time of this node's next announcement: now in Unix milliseconds, or just
    /// after the last one's (the tracker keeps the newer of two, and a clock that steps
    /// back must not make this node's own announcements look like replays). After a clock
    /// that was ahead by more than a tracker's window is corrected, now again: no tracker
    /// with a right clock accepted those times.
    pub(crate) fn next_issue_ms(&self) -> u64 {
        let now = unix_now_ms();
        let window_ms = WITHDRAWAL_WINDOW.as_millis() as u64;
        let last = &self.last_announcement_ms;
        let mut previous = last.load(Ordering::Relaxed);
        loop {
            let next = if previous > now.saturating_add(window_ms) {
                now
            } else {
                now.max(previous.saturating_add(1))
            };
            match last.compare_exchange_weak(previous, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(actual) => previous = actual,
            }
        }
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
        let mut peers: Vec<PeerAddr> = json_reply(response, MAX_PROVIDERS_REPLY)
            .await
            .map_err(fail)?;
        let me = self.endpoint_id();
        peers.retain(|p| p.endpoint_id().is_ok_and(|id| id != me));
        for p in &mut peers {
            // Our tracker keeps at most 8; one that sends more is not believed past that.
            p.addrs
                .truncate(TrackerConfig::default().max_addrs_per_peer);
        }
        // A tracker is not trusted with where this node connects: an entry whose relay URL
        // does not pass the check is dropped, whatever else it says.
        peers.retain(|p| match p.relay() {
            Ok(_) => true,
            Err(e) => {
                debug!(tracker = %url, error = %e, "provider dropped");
                false
            }
        });
        let mut listed = self.listed_by.lock().unwrap_or_else(|e| e.into_inner());
        if listed.0.len() + peers.len() > MAX_LISTED {
            listed.0.clear();
        }
        let base = origin_http.trim_end_matches('/');
        for p in &peers {
            if let Ok(id) = p.endpoint_id() {
                listed.0.insert(id, base.to_owned());
            }
        }
        Ok(peers)
    }

    /// Tells the tracker at `origin_http`, in the background and within a few seconds,
    /// that this node holds (part of) `hash`: a fetch that joins a herd announces itself
    /// when it starts, so others can take the ranges it has verified while it runs.
    /// Best effort, like a report; it does not wait for a home relay.
    pub(crate) fn announce_in_background(&self, origin_http: &str, hash: &Hash) {
        let base = origin_http.trim_end_matches('/').to_owned();
        self.announced_to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&base, &[*hash]);
        let key = self.router.endpoint().secret_key();
        let body = Announcement::sign(key, self.announce_addr(), self.next_issue_ms(), &[*hash]);
        let request = self
            .http
            .post(format!("{base}/v1/swarm/announce"))
            .timeout(REPORT_TIMEOUT)
            .json(&body);
        tokio::spawn(async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => debug!(tracker = %base, status = %r.status(), "announce refused"),
                Err(e) => debug!(tracker = %base, error = %e, "announce failed"),
            }
        });
    }

    /// Tells the tracker that listed `peer` (if one did), in the background, that it could
    /// not be reached for `hash`. Best effort: failures are only logged.
    pub(crate) fn report_unreachable(&self, hash: &Hash, peer: &EndpointId) {
        let Some(base) = self
            .listed_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(peer)
            .cloned()
        else {
            return;
        };
        let body = UnreachableReport {
            hash: hash.to_hex().to_string(),
            peer: peer.to_string(),
        };
        let request = self
            .http
            .post(format!("{base}/v1/swarm/report"))
            .timeout(REPORT_TIMEOUT)
            .json(&body);
        tokio::spawn(async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => debug!(tracker = %base, status = %r.status(), "report refused"),
                Err(e) => debug!(tracker = %base, error = %e, "report failed"),
            }
        });
    }

    /// Takes this node off every tracker it announced to (a [`Withdrawal`] signed with its
    /// endpoint key, in batches), all trackers at once, within `within` in all. Call it when
    /// the node leaves: fetchers then stop dialing it at once instead of each losing a
    /// connect timeout until the entries expire. Best effort: a tracker that does not answer
    /// keeps the entries until their TTL. Returns how many entries the trackers removed.
    pub async fn withdraw(&self, within: Duration) -> usize {
        let announced =
            std::mem::take(&mut *self.announced_to.lock().unwrap_or_else(|e| e.into_inner()));
        let key = self.router.endpoint().secret_key().clone();
        // Not before this node's last announcement, whatever the clock did since: a
        // withdrawal removes only what was issued no later than it.
        let last = self.last_announcement_ms.load(Ordering::Relaxed);
        let issued_at = unix_now().max(last / 1000);
        let requests = announced.by_tracker.into_iter().flat_map(|(base, hashes)| {
            let hashes: Vec<Hash> = hashes.into_iter().collect();
            let url = format!("{base}/v1/swarm/withdraw");
            hashes
                .chunks(TrackerConfig::default().max_hashes_per_announce)
                .map(|batch| {
                    let body = Withdrawal::sign(&key, issued_at, batch);
                    let request = self.http.post(&url).timeout(WITHDRAW_TIMEOUT).json(&body);
                    let url = url.clone();
                    async move {
                        let response = match request.send().await {
                            Ok(r) => r,
                            Err(e) => {
                                info!(tracker = %url, error = %e, "withdrawal failed");
                                return 0;
                            }
                        };
                        match json_reply::<WithdrawReply>(response, 4096).await {
                            Ok(reply) => reply.removed,
                            Err(e) => {
                                info!(tracker = %url, error = %e, "withdrawal refused");
                                0
                            }
                        }
                    }
                })
                .collect::<Vec<_>>()
        });
        let all = futures::future::join_all(requests);
        match tokio::time::timeout(within, all).await {
            Ok(removed) => removed.into_iter().sum(),
            Err(_) => {
                info!(within = ?within, "withdrawal from the trackers timed out");
                0
            }
        }
    }

    /// The address this node announces: its bound sockets, with an unspecified IP replaced
    /// by the interface addresses the endpoint knows (the tracker fills in the rest), and
    /// its home relay when it has one.
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
            relay_url: self.home_relay().map(|u| u.to_string()),
        }
    }
}

/// A tracker's JSON answer, read up to `max` bytes, or why not: what went wrong reading
/// it, its status and (the start of) its words, or why it does not parse.
async fn json_reply<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    max: usize,
) -> std::result::Result<T, String> {
    let status = response.status();
    let bytes = read_bounded(response, max)
        .await
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        let words: String = String::from_utf8_lossy(&bytes)
            .trim()
            .chars()
            .take(200)
            .collect();
        return Err(format!("answered {status}: {words}"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("bad answer: {e}"))
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
