//! NIP-78 (kind 30078) events carrying DID-signed publications: building them, checking
//! them (NIP-01 id and signature, DID signature, DID ↔ Nostr key binding, manifest), and
//! discovering them through relays, newest per (author, app), NIP-09 deletions honoured
//! (by id and by coordinate, see [`crate::deletion`]), with what each relay sent counted.
//!
//! Discovery is bounded by design: relays are walked page by page (`limit` + `until`) up to
//! a budget of events per relay, each author's events are checked up to a cap, and rejected
//! events are counted by reason with only the first few kept verbatim. A flood of events
//! therefore costs bounded memory and work; it can hide unknown publishers once the budget
//! is spent, but never the publishers the caller names (they are fetched by author first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use archy_registry::{Envelope, VerifiedPublication};
use nostr_sdk::prelude::*;
use tracing::debug;

use crate::deletion::{Deletions, Withdrawal};
use crate::outbox::{
    OutboxLimits, OutboxPlan, OutboxRefusal, Resolver, newest_relay_lists, plan_outbox,
};
use crate::par::par_map;
use crate::tls::{RelayList, RelayTls};
use crate::transport::CountingTransport;
use crate::{DeveloperIdentity, Error, MANIFEST_EVENT_KIND, manifest_d_tag};

/// Versions kept per (author, app) in a pass, newest first: enough that deleting the
/// newest by id falls back on the one before, bounded whatever an author publishes.
const VERSIONS_KEPT: usize = 4;

/// The indexed `t` tag that lets relays filter Archipelago publications.
pub const APP_HASHTAG: &str = "archy-app";

/// A publication found on a relay that passed every check.
#[derive(Debug, Clone)]
pub struct Listing {
    pub event_id: String,
    /// Nostr public key (hex) of the publisher.
    pub author: String,
    pub app_id: String,
    pub created_at: u64,
    pub publication: VerifiedPublication,
    /// The DID-signed envelope as received, for storage and re-verification.
    pub envelope: String,
}

/// Why an event carries no usable publication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("NIP-01 id or signature invalid: {0}")]
    Nostr(String),
    #[error("kind {0} is not {MANIFEST_EVENT_KIND}")]
    Kind(u16),
    #[error("no d tag")]
    NoIdentifier,
    #[error("d tag {0:?} is not archy:app:<id>")]
    Identifier(String),
    #[error("publication: {0}")]
    Publication(String),
    #[error("the DID {did} binds Nostr key {bound}, but the event is signed by {signer}")]
    KeyBinding {
        did: String,
        bound: String,
        signer: String,
    },
    #[error("d tag names {d_tag:?}, the manifest {manifest:?}")]
    AppId { d_tag: String, manifest: String },
    #[error("author already has {0} publications checked in this pass")]
    AuthorCap(usize),
}

impl Rejection {
    /// A stable short name, for counting rejections by reason.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Nostr(_) => "nostr-signature",
            Self::Kind(_) => "kind",
            Self::NoIdentifier | Self::Identifier(_) => "d-tag",
            Self::Publication(_) => "publication",
            Self::KeyBinding { .. } => "key-binding",
            Self::AppId { .. } => "app-id",
            Self::AuthorCap(_) => "author-cap",
        }
    }
}

/// Bounds on one discovery pass. The defaults suit public relays (most cap a REQ at a few
/// hundred events) and keep a pass under a few MB whatever the relays hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryLimits {
    /// `limit` of each REQ; relays may lower it, which only costs more pages.
    pub page_size: usize,
    /// Events taken from one relay in the open (any author) walk. Past it, older events on
    /// that relay are not seen this pass and [`Discovery::truncated`] is set.
    pub max_events_per_relay: usize,
    /// Publications of one author checked per pass (newest first); more are counted as
    /// rejected without the DID check, so one key cannot buy unbounded verification work.
    pub max_per_author: usize,
    /// Rejected events whose reason is kept verbatim; all are counted by category.
    pub max_rejected_kept: usize,
    /// Authors named in one REQ (targeted publishers, deletions).
    pub authors_per_request: usize,
}

impl Default for DiscoveryLimits {
    fn default() -> Self {
        Self {
            page_size: 500,
            max_events_per_relay: 20_000,
            max_per_author: 100,
            max_rejected_kept: 100,
            authors_per_request: 200,
        }
    }
}

/// A valid publication seen in a pass (listed or not): what a node records as history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub author: String,
    pub app_id: String,
    pub version: String,
    pub event_id: String,
    pub created_at: u64,
}

/// An app whose every version seen was deleted by its author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    pub author: String,
    pub app_id: String,
    /// The newest version seen, and its event.
    pub version: String,
    pub event_id: String,
    pub withdrawal: Withdrawal,
}

/// What one relay sent in a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Events new to the pass that this relay sent and that were examined.
    pub examined: usize,
    /// Of those, refused by the publication checks.
    pub rejected: usize,
    pub rejected_by_reason: BTreeMap<String, usize>,
    /// Events with a bad id or signature, or unreadable: dropped before any other check.
    pub forged: usize,
    /// Requests that failed, or why the relay could not be asked.
    pub errors: Vec<String>,
}

/// What a discovery pass found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// The newest publication per (author, app) that its author did not delete.
    pub listings: Vec<Listing>,
    /// Every valid publication seen, deleted or not (bounded per author).
    pub seen: Vec<Seen>,
    /// Apps whose author deleted every version seen.
    pub withdrawn: Vec<Withdrawn>,
    /// The deletion requests (kind 5) of the authors seen, signatures checked, including
    /// those passed in: a node keeps them so a lagging relay cannot bring a version back.
    pub deletions: Vec<Event>,
    /// By relay (as the client names it).
    pub relays: BTreeMap<String, RelayReport>,
    /// The first [`DiscoveryLimits::max_rejected_kept`] events refused, with the reason
    /// (event id, reason); [`Self::rejected_total`] counts them all.
    pub rejected: Vec<(String, String)>,
    /// Every event refused in this pass.
    pub rejected_total: usize,
    /// Refused events by [`Rejection::category`].
    pub rejected_by_reason: BTreeMap<String, usize>,
    /// Distinct events examined.
    pub examined: usize,
    /// A relay had more events than the budget allowed: older publications of publishers
    /// not named to [`discover_with`] may be missing, so a caller should not treat absence
    /// from this pass as removal.
    pub truncated: bool,
    /// Relays that could not be asked (relay, reason).
    pub relay_errors: Vec<(String, String)>,
    /// The publishers' own relays (NIP-65) this pass used, with whom it asked for there.
    pub outbox: BTreeMap<String, Vec<String>>,
    /// Relays publishers announced that this pass did not use, and why (the first few).
    pub outbox_refused: Vec<OutboxRefusal>,
    /// Every announced relay refused.
    pub outbox_refused_total: usize,
}

/// Which publishers' own relays (NIP-65, kind 10002) a discovery pass may use, and within
/// which bounds.
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'a> {
    /// The only publishers whose relay lists count (e.g. those the operator follows or
    /// whose score passes the node's gate), most wanted first.
    pub publishers: &'a [PublicKey],
    pub limits: &'a OutboxLimits,
    /// How the relays' names resolve ([`Resolver::system`] but in tests); each is resolved
    /// and checked when the plan is made and again, for the addresses dialed, at connect.
    pub resolver: &'a Resolver,
}

/// The kind-30078 event for a publication envelope, signed by the developer's Nostr key.
pub fn publication_event(
    identity: &DeveloperIdentity,
    envelope: &Envelope,
    app_id: &str,
) -> Result<Event, Error> {
    let content = String::from_utf8(envelope.to_bytes())
        .map_err(|e| Error::Event(format!("the envelope is not UTF-8: {e}")))?;
    EventBuilder::new(Kind::Custom(MANIFEST_EVENT_KIND), content)
        .tags([
            Tag::identifier(manifest_d_tag(app_id)),
            Tag::hashtag(APP_HASHTAG),
        ])
        .sign_with_keys(identity.nostr_keys())
        .map_err(|e| Error::Event(format!("signing the publication: {e}")))
}

/// Every check a node applies to an event before it lists the app.
pub fn verify_event(event: &Event) -> Result<Listing, Rejection> {
    check_nostr(event)?;
    check_publication(event)
}

/// NIP-01: the id is the hash of the event and the signature is the author's.
fn check_nostr(event: &Event) -> Result<(), Rejection> {
    event.verify().map_err(|e| Rejection::Nostr(e.to_string()))
}

/// Everything after NIP-01; only for events whose signature was checked.
pub(crate) fn check_publication(event: &Event) -> Result<Listing, Rejection> {
    if event.kind != Kind::Custom(MANIFEST_EVENT_KIND) {
        return Err(Rejection::Kind(event.kind.as_u16()));
    }
    let d = event.tags.identifier().ok_or(Rejection::NoIdentifier)?;
    let app_id = d
        .strip_prefix("archy:app:")
        .ok_or_else(|| Rejection::Identifier(d.to_owned()))?;
    let publication = VerifiedPublication::verify(event.content.as_bytes())
        .map_err(|e| Rejection::Publication(e.to_string()))?;
    let p = publication.publication();
    if p.publisher.nostr != event.pubkey.to_hex() {
        return Err(Rejection::KeyBinding {
            did: p.publisher.did.clone(),
            bound: p.publisher.nostr.clone(),
            signer: event.pubkey.to_hex(),
        });
    }
    if p.manifest.id != app_id {
        return Err(Rejection::AppId {
            d_tag: app_id.to_owned(),
            manifest: p.manifest.id.clone(),
        });
    }
    Ok(Listing {
        event_id: event.id.to_hex(),
        author: event.pubkey.to_hex(),
        app_id: app_id.to_owned(),
        created_at: event.created_at.as_secs(),
        publication,
        envelope: event.content.clone(),
    })
}

/// Turns a stream of events into a [`Discovery`] within [`DiscoveryLimits`]: each event is
/// examined once, the newest valid publications per (author, app) kept, rejections counted,
/// and at the end the newest one its author did not delete listed. Usable without relays
/// (e.g. on events a node stored).
#[derive(Debug)]
pub struct DiscoveryCollector {
    limits: DiscoveryLimits,
    seen: HashSet<EventId>,
    per_author: HashMap<PublicKey, usize>,
    /// Newest first, at most [`VERSIONS_KEPT`].
    versions: BTreeMap<(String, String), Vec<Listing>>,
    deletions: Deletions,
    found: Discovery,
}

impl DiscoveryCollector {
    pub fn new(limits: DiscoveryLimits) -> Self {
        Self {
            limits,
            seen: HashSet::new(),
            per_author: HashMap::new(),
            versions: BTreeMap::new(),
            deletions: Deletions::new(),
            found: Discovery::default(),
        }
    }

    /// Examines one event; false when it was seen before (from another relay or page).
    pub fn add(&mut self, event: &Event) -> bool {
        self.add_batch(std::slice::from_ref(event)) == 1
    }

    /// Examines a batch (e.g. one page from a relay), checking signatures on every core;
    /// returns how many events were new.
    pub fn add_batch(&mut self, events: &[Event]) -> usize {
        let candidates: Vec<&Event> = events
            .iter()
            .filter(|e| !self.seen.contains(&e.id))
            .collect();
        // The signature first: only what an author signed may mark an id as seen or spend
        // the author's budget, or a forgery could shadow the real event or its publisher.
        let signed = par_map(&candidates, |e| check_nostr(e));
        let mut fresh: Vec<(&Event, Option<Rejection>)> = Vec::with_capacity(candidates.len());
        let mut to_check: Vec<(usize, &Event)> = Vec::new();
        for (event, signed) in candidates.into_iter().zip(signed) {
            if let Err(reason) = signed {
                fresh.push((event, Some(reason)));
                continue;
            }
            if !self.seen.insert(event.id) {
                continue;
            }
            let count = self.per_author.entry(event.pubkey).or_default();
            if *count >= self.limits.max_per_author {
                fresh.push((
                    event,
                    Some(Rejection::AuthorCap(self.limits.max_per_author)),
                ));
                continue;
            }
            *count += 1;
            to_check.push((fresh.len(), event));
            fresh.push((event, None));
        }
        let checked = par_map(&to_check, |(_, e)| check_publication(e));
        let mut listings: Vec<Option<Listing>> = vec![None; fresh.len()];
        for ((i, _), result) in to_check.iter().zip(checked) {
            match result {
                Ok(listing) => listings[*i] = Some(listing),
                Err(reason) => fresh[*i].1 = Some(reason),
            }
        }
        self.found.examined += fresh.len();
        let count = fresh.len();
        for ((event, rejection), listing) in fresh.into_iter().zip(listings) {
            if let Some(reason) = rejection {
                self.reject(event, reason);
            } else if let Some(listing) = listing {
                self.keep(listing);
            }
        }
        count
    }

    fn keep(&mut self, listing: Listing) {
        self.found.seen.push(Seen {
            author: listing.author.clone(),
            app_id: listing.app_id.clone(),
            version: listing
                .publication
                .publication()
                .manifest
                .version
                .to_string(),
            event_id: listing.event_id.clone(),
            created_at: listing.created_at,
        });
        let key = (listing.author.clone(), listing.app_id.clone());
        let kept = self.versions.entry(key).or_default();
        let order = |l: &Listing| std::cmp::Reverse((l.created_at, l.event_id.clone()));
        let at = kept.partition_point(|old| order(old) < order(&listing));
        if at < VERSIONS_KEPT {
            kept.insert(at, listing);
            kept.truncate(VERSIONS_KEPT);
        }
    }

    fn reject(&mut self, event: &Event, reason: Rejection) {
        debug!(event = %event.id, %reason, "publication rejected");
        self.found.rejected_total += 1;
        *self
            .found
            .rejected_by_reason
            .entry(reason.category().to_owned())
            .or_default() += 1;
        if self.found.rejected.len() < self.limits.max_rejected_kept {
            self.found
                .rejected
                .push((event.id.to_hex(), reason.to_string()));
        }
    }

    /// Authors with at least one valid publication so far.
    pub fn authors(&self) -> Vec<PublicKey> {
        let mut authors: Vec<PublicKey> = self
            .versions
            .keys()
            .filter_map(|(author, _)| PublicKey::from_hex(author).ok())
            .collect();
        authors.dedup();
        authors
    }

    /// Takes NIP-09 deletion requests (kind 5): at [`Self::finish`], a publication its own
    /// author deleted, by event id or by the app's coordinate at or after its time, is not
    /// listed. Requests with a bad signature, and what a key says of another's events, are
    /// ignored.
    pub fn apply_deletions<'a>(&mut self, deletions: impl IntoIterator<Item = &'a Event>) {
        for event in deletions {
            self.deletions.add(event);
        }
    }

    /// Events examined and refused so far, by category.
    fn tally(&self) -> (usize, usize, BTreeMap<String, usize>) {
        (
            self.found.examined,
            self.found.rejected_total,
            self.found.rejected_by_reason.clone(),
        )
    }

    pub fn finish(mut self) -> Discovery {
        for ((author, app_id), versions) in std::mem::take(&mut self.versions) {
            let deleted = |l: &Listing| {
                self.deletions
                    .covering(&author, &app_id, &l.event_id, l.created_at)
                    .cloned()
            };
            match versions.iter().find(|l| deleted(l).is_none()) {
                Some(listed) => self.found.listings.push(listed.clone()),
                None => {
                    let Some(newest) = versions.first() else {
                        continue;
                    };
                    let Some(withdrawal) = deleted(newest) else {
                        continue;
                    };
                    self.found.withdrawn.push(Withdrawn {
                        author: author.clone(),
                        app_id: app_id.clone(),
                        version: newest
                            .publication
                            .publication()
                            .manifest
                            .version
                            .to_string(),
                        event_id: newest.event_id.clone(),
                        withdrawal,
                    });
                }
            }
        }
        self.found.deletions = self.deletions.events().to_vec();
        self.found
    }
}

/// A client that checks every event a relay sends against the REQ's filters and `limit`,
/// so a relay cannot push unrelated or unbounded events into a pass; its transport counts
/// forged events, keeps why a relay could not be reached, and verifies `wss://` relays
/// against the list's CAs.
pub(crate) struct RelayClient {
    client: Client,
    transport: CountingTransport,
}

impl std::ops::Deref for RelayClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl RelayClient {
    /// A client with no relay added yet.
    pub(crate) fn new(tls: Option<&RelayTls>) -> Self {
        let transport = CountingTransport::new(tls);
        let client = Client::builder()
            .opts(ClientOptions::new().verify_subscriptions(true))
            .websocket_transport(transport.clone())
            .build();
        Self { client, transport }
    }

    /// Adds one of the operator's own relays (dialed as configured).
    pub(crate) async fn add_operator_relay(
        &self,
        relay: &str,
    ) -> Result<bool, nostr_sdk::client::Error> {
        if let Ok(url) = RelayUrl::parse(relay) {
            self.transport.allowed.operator(url.as_str());
        }
        self.client.add_relay(relay).await
    }

    /// Adds a relay a publisher named: dialed only at the addresses `resolver` gives when
    /// the connection is made, each checked (public unless `allow_private`), never at what
    /// another lookup would say (DNS rebinding).
    pub(crate) async fn add_outbox_relay(
        &self,
        relay: &RelayUrl,
        resolver: &Resolver,
        allow_private: bool,
    ) -> Result<bool, nostr_sdk::client::Error> {
        self.transport
            .allowed
            .checked(relay.as_str(), resolver.clone(), allow_private);
        self.client.add_relay(relay.as_str()).await
    }

    /// Why `relay` is not connected, in words: the last connection failure when there was
    /// one, else its status.
    pub(crate) async fn why_down(&self, relay: &RelayUrl) -> String {
        match self.transport.failures.of(relay.as_str()) {
            Some(why) => why,
            None => match self.client.relay(relay).await {
                Ok(r) => format!("not connected ({})", r.status()),
                Err(e) => e.to_string(),
            },
        }
    }
}

/// A [`RelayClient`] with every relay of the list added, connecting.
pub(crate) async fn connected_client(
    relays: &(impl RelayList + ?Sized),
) -> Result<RelayClient, Error> {
    let client = RelayClient::new(relays.tls());
    for relay in relays.urls() {
        client
            .add_operator_relay(relay.as_str())
            .await
            .map_err(|e| Error::Relay(format!("{relay}: {e}")))?;
    }
    client.connect().await;
    Ok(client)
}

/// The relays of `client` that are connected; the others go to `errors` with why.
pub(crate) async fn connected_relays(
    client: &RelayClient,
    errors: &mut Vec<(String, String)>,
) -> Vec<RelayUrl> {
    let mut up = Vec::new();
    for (url, relay) in client.relays().await {
        if relay.is_connected() {
            up.push(url);
        } else {
            errors.push((url.to_string(), client.why_down(&url).await));
        }
    }
    up.sort();
    up
}

/// What a walk does with each page; returns how many of its events were new.
pub(crate) type PageSink<'a> = dyn FnMut(&[Event]) -> usize + Send + 'a;

/// What one REQ brought.
struct Page {
    /// Events that arrived.
    got: usize,
    /// Of those, new to the sink.
    fresh: usize,
    /// The oldest and newest `created_at` among them.
    oldest: Option<Timestamp>,
    newest: Option<Timestamp>,
}

/// Events of one REQ, at most `limit` (the page is the only buffer), handed to `sink`.
async fn stream_into(
    client: &Client,
    relays: &[RelayUrl],
    filter: Filter,
    limit: usize,
    timeout: Duration,
    sink: &mut PageSink<'_>,
) -> Result<Page, Error> {
    let mut stream = client
        .stream_events_from(relays.to_vec(), filter.limit(limit), timeout)
        .await
        .map_err(|e| Error::Relay(format!("fetching: {e}")))?;
    let mut page: Vec<Event> = Vec::new();
    while let Some(event) = stream.next().await {
        page.push(event);
        if page.len() >= limit {
            break;
        }
    }
    let oldest = page.iter().map(|e| e.created_at).min();
    let newest = page.iter().map(|e| e.created_at).max();
    let fresh = sink(&page);
    Ok(Page {
        got: page.len(),
        fresh,
        oldest,
        newest,
    })
}

/// Pages in a row that bring nothing new before a relay's walk ends.
const MAX_STALE_PAGES: usize = 3;

/// More bytes than the control messages of an empty page (EOSE, CLOSED, NOTICE).
const DROPPED_PAGE_BYTES: usize = 4096;

/// Walks one relay from the newest events back, page by page, until it has nothing older
/// or `budget` events were taken. Returns true when the budget stopped the walk, or when a
/// single second held more events than a page (some of them may be missing).
///
/// Relays disagree on `until`: NIP-01 makes it inclusive, some relays read it as exclusive.
/// Paging with `until` = the oldest second of the last page would then skip the events of
/// that second that did not fit on the page. So after each page, that second is fetched
/// whole (`since` = s, `until` = s + 1: second s on an exclusive relay, s and s + 1 on an
/// inclusive one, asked again with `until` = s when s + 1 filled the answer), and the next page asks for what is strictly older: `until` = s on a
/// relay not known to be inclusive, s - 1 once the relay has sent an event at exactly the
/// `until` it was given. `until` falls at every page, so the walk ends.
pub(crate) async fn walk(
    client: &Client,
    relay: &RelayUrl,
    base: &Filter,
    page_size: usize,
    budget: usize,
    timeout: Duration,
    sink: &mut PageSink<'_>,
) -> Result<bool, Error> {
    let relays = std::slice::from_ref(relay);
    let handle = client.relay(relay).await.ok();
    let received = || handle.as_ref().map_or(0, |r| r.stats().bytes_received());
    let mut taken = 0usize;
    let mut stale_pages = 0usize;
    let mut until: Option<u64> = None;
    // The relay sent an event created at exactly the `until` it was given.
    let mut inclusive = false;
    // The last second fetched whole.
    let mut complete: Option<u64> = None;
    // A second held more events than one request returns.
    let mut cut = false;
    loop {
        if taken >= budget {
            return Ok(true);
        }
        let want = page_size.min(budget - taken).max(1);
        let mut filter = base.clone();
        if let Some(until) = until {
            filter = filter.until(Timestamp::from_secs(until));
        }
        let before = received();
        let page = stream_into(client, relays, filter, want, timeout, sink).await?;
        // Only new events spend the budget: an inclusive `until` returns the last second's
        // events again, and counting those would report a complete walk as cut. A relay
        // that ignores `until` (only repeats, page after page) is left after a few such
        // pages instead.
        taken += page.fresh;
        if page.got > 0 && page.fresh == 0 {
            stale_pages += 1;
            if stale_pages > MAX_STALE_PAGES {
                return Ok(cut);
            }
        } else {
            stale_pages = 0;
        }
        let Some(oldest) = page.oldest else {
            // The client drops events with a bad signature or outside the filter before
            // they reach us; a page made only of those looks like the end. Say so.
            let sent = received().saturating_sub(before);
            if sent > DROPPED_PAGE_BYTES {
                return Err(Error::Relay(format!(
                    "sent {sent} bytes but no valid event matching the request; \
                     stopped reading this relay"
                )));
            }
            return Ok(cut);
        };
        if until.is_some() && page.newest.map(|t| t.as_secs()) == until {
            inclusive = true;
        }
        let second = oldest.as_secs();
        if complete != Some(second) {
            if taken >= budget {
                return Ok(true);
            }
            // A whole page, whatever is left of the budget: the second must come whole, or
            // be said to be cut (the budget is overrun by one page at most).
            let want = page_size.max(1);
            let whole = |until: u64| {
                base.clone()
                    .since(Timestamp::from_secs(second))
                    .until(Timestamp::from_secs(until))
            };
            let after = second.saturating_add(1);
            let upto = if inclusive { second } else { after };
            let mut boundary =
                stream_into(client, relays, whole(upto), want, timeout, sink).await?;
            taken += boundary.fresh;
            if !inclusive && boundary.newest.map(|t| t.as_secs()) == Some(after) {
                // Inclusive after all: the next second's events may have crowded this one
                // out of a full answer; ask for this second alone.
                inclusive = true;
                if boundary.got >= want {
                    boundary =
                        stream_into(client, relays, whole(second), want, timeout, sink).await?;
                    taken += boundary.fresh;
                }
            }
            cut |= boundary.got >= want;
            complete = Some(second);
        }
        // Second `second` is whole: next, what is strictly older.
        let next = if inclusive {
            match second.checked_sub(1) {
                Some(next) => next,
                None => return Ok(cut),
            }
        } else {
            second
        };
        // `until` falls at every page (the client drops events newer than it asked for).
        let next = match until {
            Some(u) if next >= u => match u.checked_sub(1) {
                Some(n) => n,
                None => return Ok(cut),
            },
            _ => next,
        };
        until = Some(next);
    }
}

/// What each relay said to an event sent to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Relays that stored it (they answered OK).
    pub accepted: Vec<String>,
    /// Relays that refused it or could not be reached: (relay, why).
    pub failed: Vec<(String, String)>,
}

impl PublishReport {
    /// The failures, one `relay: why` per relay, for an error message.
    pub fn failures(&self) -> String {
        self.failed
            .iter()
            .map(|(relay, why)| format!("{relay}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// How long a relay has to connect, and then to answer an event with OK.
const PUBLISH_CONNECT: Duration = Duration::from_secs(5);
const PUBLISH_ANSWER: Duration = Duration::from_secs(15);

/// Sends `event` to every relay and says, per relay, whether it was stored or why not. A
/// relay that cannot be added, reached or that refuses costs its own entry only.
pub async fn publish_report(event: &Event, relays: &(impl RelayList + ?Sized)) -> PublishReport {
    let mut report = PublishReport::default();
    let client = RelayClient::new(relays.tls());
    for relay in relays.urls() {
        if let Err(e) = client.add_operator_relay(relay.as_str()).await {
            report
                .failed
                .push((relay.clone(), format!("not a relay URL: {e}")));
        }
    }
    client.connect().await;
    client.wait_for_connection(PUBLISH_CONNECT).await;
    let mut up = Vec::new();
    for (url, relay) in client.relays().await {
        if relay.is_connected() {
            up.push(url);
        } else {
            report.failed.push((
                url.to_string(),
                format!(
                    "could not connect within {}s: {}",
                    PUBLISH_CONNECT.as_secs(),
                    client.why_down(&url).await
                ),
            ));
        }
    }
    if !up.is_empty() {
        let sent = nostr_sdk::async_utility::time::timeout(
            Some(PUBLISH_ANSWER),
            client.send_event_to(up.clone(), event),
        )
        .await;
        match sent {
            Some(Ok(output)) => {
                report
                    .accepted
                    .extend(output.success.iter().map(|u| u.to_string()));
                report.failed.extend(
                    output
                        .failed
                        .iter()
                        .map(|(u, why)| (u.to_string(), format!("refused: {why}"))),
                );
                for url in up {
                    if !output.success.contains(&url) && !output.failed.contains_key(&url) {
                        report
                            .failed
                            .push((url.to_string(), "no answer".to_owned()));
                    }
                }
            }
            Some(Err(e)) => report
                .failed
                .extend(up.iter().map(|u| (u.to_string(), format!("sending: {e}")))),
            None => report.failed.extend(up.iter().map(|u| {
                (
                    u.to_string(),
                    format!("no answer within {}s", PUBLISH_ANSWER.as_secs()),
                )
            })),
        }
    }
    client.disconnect().await;
    report.accepted.sort();
    report.failed.sort();
    report
}

/// [`publish_report`] for callers that only need one relay to accept: the relays that
/// did, or an error naming each relay that did not and why.
pub async fn publish(
    event: &Event,
    relays: &(impl RelayList + ?Sized),
) -> Result<Vec<String>, Error> {
    let report = publish_report(event, relays).await;
    if report.accepted.is_empty() {
        return Err(Error::Relay(format!(
            "no relay accepted event {}: {}",
            event.id,
            report.failures()
        )));
    }
    Ok(report.accepted)
}

/// The events `author` signed for `app_id` that the relays hold (every version a lagging
/// relay still has), ids and signatures checked; with the relays that could not be asked.
pub async fn own_publications(
    relays: &(impl RelayList + ?Sized),
    author: &PublicKey,
    app_id: &str,
    timeout: Duration,
) -> Result<(Vec<Event>, Vec<(String, String)>), Error> {
    let client = connected_client(relays).await?;
    client.wait_for_connection(timeout).await;
    let mut errors = Vec::new();
    let up = connected_relays(&client, &mut errors).await;
    let d = manifest_d_tag(app_id);
    let filter = Filter::new()
        .kind(Kind::Custom(MANIFEST_EVENT_KIND))
        .author(*author)
        .identifier(d.clone());
    let mut found: Vec<Event> = Vec::new();
    let mut seen: HashSet<EventId> = HashSet::new();
    for relay in &up {
        let mut sink = |page: &[Event]| {
            let before = found.len();
            found.extend(
                page.iter()
                    .filter(|e| {
                        e.pubkey == *author
                            && e.tags.identifier() == Some(d.as_str())
                            && e.verify().is_ok()
                            && seen.insert(e.id)
                    })
                    .cloned(),
            );
            found.len() - before
        };
        if let Err(e) = walk(&client, relay, &filter, 100, 1_000, timeout, &mut sink).await {
            errors.push((relay.to_string(), e.to_string()));
        }
    }
    client.disconnect().await;
    found.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    Ok((found, errors))
}

/// The newest relay list (NIP-65, kind 10002) `author` signed that the relays hold, signature
/// checked; with the relays that could not be asked.
pub async fn fetch_relay_list(
    relays: &(impl RelayList + ?Sized),
    author: &PublicKey,
    timeout: Duration,
) -> Result<(Option<Event>, Vec<(String, String)>), Error> {
    let client = connected_client(relays).await?;
    client.wait_for_connection(timeout).await;
    let mut errors = Vec::new();
    let up = connected_relays(&client, &mut errors).await;
    let filter = Filter::new().kind(Kind::RelayList).author(*author);
    let mut found: Vec<Event> = Vec::new();
    for relay in &up {
        let mut sink = |page: &[Event]| {
            let before = found.len();
            found.extend(page.iter().filter(|e| e.pubkey == *author).cloned());
            found.len() - before
        };
        if let Err(e) = walk(&client, relay, &filter, 10, 10, timeout, &mut sink).await {
            errors.push((relay.to_string(), e.to_string()));
        }
    }
    client.disconnect().await;
    Ok((newest_relay_lists(&found).remove(author), errors))
}

/// [`discover_with`] with the default limits, no named publishers and no deletions known.
pub async fn discover(
    relays: &(impl RelayList + ?Sized),
    timeout: Duration,
) -> Result<Discovery, Error> {
    discover_with(relays, &[], &[], &DiscoveryLimits::default(), timeout).await
}

/// Fetches publications from the relays (those that answer; `timeout` bounds each REQ),
/// keeps the newest valid one per (author, app), and drops the ones their author deleted
/// (NIP-09): the deletions the relays hold for the authors seen and the named publishers,
/// and `known_deletions` (those a node kept from earlier passes, checked again here), so a
/// relay that missed a withdrawal cannot bring the app back. `publishers` (e.g. the keys
/// the operator's web of trust reaches) are fetched by author first, so no flood from
/// other keys can crowd them out; then every relay is walked for anyone's publications
/// within `limits`. A relay that is down or sends garbage costs its share only; what each
/// relay sent is in [`Discovery::relays`].
pub async fn discover_with(
    relays: &(impl RelayList + ?Sized),
    publishers: &[PublicKey],
    known_deletions: &[Event],
    limits: &DiscoveryLimits,
    timeout: Duration,
) -> Result<Discovery, Error> {
    discover_outbox(relays, publishers, known_deletions, limits, None, timeout).await
}

/// What one walk of `relay` examined and refused: the collector's tallies after it less
/// those before it, into the relay's report.
fn record_walk(
    reports: &mut BTreeMap<String, RelayReport>,
    relay: &RelayUrl,
    (examined, rejected, by_reason): (usize, usize, BTreeMap<String, usize>),
    (examined_after, rejected_after, by_reason_after): (usize, usize, BTreeMap<String, usize>),
) {
    let report = reports.entry(relay.to_string()).or_default();
    report.examined = examined_after - examined;
    report.rejected = rejected_after - rejected;
    for (reason, n) in by_reason_after {
        let delta = n - by_reason.get(&reason).copied().unwrap_or(0);
        if delta > 0 {
            report.rejected_by_reason.insert(reason, delta);
        }
    }
}

/// [`discover_with`], and then the outbox model (NIP-65): the newest relay list (kind
/// 10002) of each of `outbox.publishers` is fetched from `relays`, and each publisher's
/// publications and deletions are fetched from the write relays it names too, those that
/// pass [`crate::check_relay_url`] within [`OutboxLimits`] (`timeout` bounds each connection
/// and each request there). Only those publishers' events are asked for on their relays, and
/// every event goes through the same checks as any other.
pub async fn discover_outbox(
    relays: &(impl RelayList + ?Sized),
    publishers: &[PublicKey],
    known_deletions: &[Event],
    limits: &DiscoveryLimits,
    outbox: Option<Outbox<'_>>,
    timeout: Duration,
) -> Result<Discovery, Error> {
    let client = connected_client(relays).await?;
    client.wait_for_connection(timeout).await;
    let mut errors = Vec::new();
    let up = connected_relays(&client, &mut errors).await;
    let mut collector = DiscoveryCollector::new(limits.clone());
    let mut reports: BTreeMap<String, RelayReport> = BTreeMap::new();
    let mut truncated = false;
    let page_size = limits.page_size.max(1);
    let per_request = limits.authors_per_request.max(1);
    for relay in &up {
        let before = collector.tally();
        truncated |= walk_relay(
            &client,
            relay,
            publishers,
            limits,
            timeout,
            &mut collector,
            &mut errors,
        )
        .await;
        record_walk(&mut reports, relay, before, collector.tally());
    }
    let mut plan = OutboxPlan::default();
    if let Some(outbox) = outbox {
        plan = plan_relays(&client, &up, relays.urls(), outbox, timeout, &mut errors).await;
        for (url, whose) in &plan.relays {
            let Ok(relay) = RelayUrl::parse(url) else {
                continue;
            };
            let added = client
                .add_outbox_relay(&relay, outbox.resolver, outbox.limits.allow_private)
                .await
                .is_ok()
                && client
                    .try_connect_relay(url.as_str(), timeout)
                    .await
                    .is_ok();
            if !added {
                errors.push((url.clone(), client.why_down(&relay).await));
                continue;
            }
            let before = collector.tally();
            // Only the publishers who named this relay, never the open walk.
            let mut only_them = limits.clone();
            only_them.max_events_per_relay = 0;
            truncated |= walk_relay(
                &client,
                &relay,
                whose,
                &only_them,
                timeout,
                &mut collector,
                &mut errors,
            )
            .await;
            record_walk(&mut reports, &relay, before, collector.tally());
        }
    }
    let mut authors = collector.authors();
    authors.extend_from_slice(publishers);
    authors.sort();
    authors.dedup();
    let mut deletions: Vec<Event> = known_deletions.to_vec();
    let mut seen: HashSet<EventId> = HashSet::new();
    // The configured relays for every author, an outbox relay for its publishers only.
    let mut deletion_walks: Vec<(RelayUrl, Vec<PublicKey>)> =
        up.iter().map(|r| (r.clone(), authors.clone())).collect();
    for (url, whose) in &plan.relays {
        if let Ok(relay) = RelayUrl::parse(url)
            && client.relay(&relay).await.is_ok_and(|r| r.is_connected())
        {
            deletion_walks.push((relay, whose.clone()));
        }
    }
    for (relay, authors) in &deletion_walks {
        for chunk in authors.chunks(per_request) {
            let filter = Filter::new()
                .kind(Kind::EventDeletion)
                .authors(chunk.iter().copied());
            let budget = chunk.len().saturating_mul(limits.max_per_author);
            let mut sink = |page: &[Event]| {
                let before = deletions.len();
                deletions.extend(page.iter().filter(|e| seen.insert(e.id)).cloned());
                deletions.len() - before
            };
            if let Err(e) = walk(
                &client, relay, &filter, page_size, budget, timeout, &mut sink,
            )
            .await
            {
                errors.push((relay.to_string(), format!("deletions: {e}")));
            }
        }
    }
    collector.apply_deletions(&deletions);
    client.disconnect().await;
    let mut found = collector.finish();
    for (relay, reason) in &errors {
        reports
            .entry(relay.clone())
            .or_default()
            .errors
            .push(reason.clone());
    }
    for (relay, report) in reports.iter_mut() {
        report.forged = client.transport.forged.of(relay);
    }
    found.truncated = truncated;
    found.relay_errors = errors;
    found.relays = reports;
    found.outbox = plan
        .relays
        .into_iter()
        .map(|(url, whose)| (url, whose.iter().map(PublicKey::to_hex).collect()))
        .collect();
    found.outbox_refused = plan.refused;
    found.outbox_refused_total = plan.refused_total;
    Ok(found)
}

/// The relay lists (kind 10002) of `outbox.publishers` on the relays `up`, turned into the
/// pass's outbox relays.
async fn plan_relays(
    client: &Client,
    up: &[RelayUrl],
    configured: &[String],
    outbox: Outbox<'_>,
    timeout: Duration,
    errors: &mut Vec<(String, String)>,
) -> OutboxPlan {
    let wanted: Vec<PublicKey> = outbox
        .publishers
        .iter()
        .take(outbox.limits.max_publishers)
        .copied()
        .collect();
    let mut lists: Vec<Event> = Vec::new();
    let mut seen: HashSet<EventId> = HashSet::new();
    for relay in up {
        for chunk in wanted.chunks(200) {
            let filter = Filter::new()
                .kind(Kind::RelayList)
                .authors(chunk.iter().copied());
            let mut sink = |page: &[Event]| {
                let before = lists.len();
                lists.extend(page.iter().filter(|e| seen.insert(e.id)).cloned());
                lists.len() - before
            };
            // A relay keeps one list per author; a stale copy or two may come too.
            let budget = chunk.len().saturating_mul(2);
            if let Err(e) = walk(client, relay, &filter, 200, budget, timeout, &mut sink).await {
                errors.push((relay.to_string(), format!("relay lists: {e}")));
            }
        }
    }
    let newest = newest_relay_lists(&lists);
    plan_outbox(
        &newest,
        &wanted,
        configured,
        outbox.limits,
        outbox.resolver,
        timeout,
    )
    .await
}

/// One relay's share of a discovery pass: the named publishers by author, then anyone's
/// publications newest first. True when a budget stopped a walk. A failed walk is recorded
/// and the next one still runs.
async fn walk_relay(
    client: &Client,
    relay: &RelayUrl,
    publishers: &[PublicKey],
    limits: &DiscoveryLimits,
    timeout: Duration,
    collector: &mut DiscoveryCollector,
    errors: &mut Vec<(String, String)>,
) -> bool {
    let base = Filter::new()
        .kind(Kind::Custom(MANIFEST_EVENT_KIND))
        .hashtag(APP_HASHTAG);
    let page_size = limits.page_size.max(1);
    let mut sink = |page: &[Event]| collector.add_batch(page);
    let mut walks: Vec<(Filter, usize)> = publishers
        .chunks(limits.authors_per_request.max(1))
        .map(|chunk| {
            let budget = chunk.len().saturating_mul(limits.max_per_author);
            (base.clone().authors(chunk.iter().copied()), budget)
        })
        .collect();
    // Zero: only the named publishers (an outbox relay).
    if limits.max_events_per_relay > 0 {
        walks.push((base, limits.max_events_per_relay));
    }
    let mut truncated = false;
    for (filter, budget) in walks {
        match walk(
            client, relay, &filter, page_size, budget, timeout, &mut sink,
        )
        .await
        {
            Ok(t) => truncated |= t,
            Err(e) => errors.push((relay.to_string(), e.to_string())),
        }
    }
    truncated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::publication_event_at;
    use archy_registry::SecretKey;

    /// Forgeries in an author's name do not spend its budget; its own events past the cap
    /// are refused unchecked; reasons are kept up to the cap and all counted.
    #[test]
    fn the_collector_bounds_work_per_author_and_reasons_kept() {
        let limits = DiscoveryLimits {
            max_per_author: 3,
            max_rejected_kept: 4,
            ..DiscoveryLimits::default()
        };
        let did = SecretKey::from_bytes(&[5; 32]);
        let publisher = Keys::generate();
        let legit = publication_event_at(&did, &publisher, "notes", "1.0.0", 1_000);
        let mut collector = DiscoveryCollector::new(limits);
        for i in 0..50 {
            let mut forged = publication_event_at(
                &did,
                &Keys::generate(),
                &format!("f{i}"),
                "1.0.0",
                2_000 + i,
            );
            forged.pubkey = publisher.public_key();
            assert!(collector.add(&forged));
        }
        // The real event's id with someone else's signature does not shadow it.
        let mut shadow = legit.clone();
        shadow.sig = Keys::generate().sign_schnorr(&nostr_sdk::secp256k1::Message::from_digest(
            legit.id.to_bytes(),
        ));
        assert!(collector.add(&shadow));
        assert!(collector.add(&legit));
        assert!(!collector.add(&legit), "seen before");
        let loud = Keys::generate();
        for i in 0..10 {
            let e = EventBuilder::new(Kind::Custom(MANIFEST_EVENT_KIND), "junk")
                .tags([Tag::identifier(format!("archy:app:x{i}"))])
                .sign_with_keys(&loud)
                .unwrap();
            collector.add(&e);
        }
        assert_eq!(collector.authors(), vec![publisher.public_key()]);
        let found = collector.finish();
        assert_eq!(found.listings.len(), 1);
        assert_eq!(found.examined, 62);
        assert_eq!(found.rejected_total, 61);
        assert_eq!(found.rejected.len(), 4);
        let by = |r: &str| found.rejected_by_reason.get(r).copied().unwrap_or(0);
        assert_eq!(
            (by("nostr-signature"), by("publication"), by("author-cap")),
            (51, 3, 7)
        );
    }
}
