//! Fetching from relays the trust signals a score needs, within bounds: contact lists hop by
//! hop from the operator's keys, then reports and endorsements of the publishers by the keys
//! reached, then the publishers' own publications and deletions.

use std::collections::HashSet;
use std::time::Duration;

use nostr_sdk::prelude::*;

use crate::nostr::{APP_HASHTAG, connected_client, connected_relays, walk};
use crate::score::TrustInputs;
use crate::tls::RelayList;
use crate::{Error, MANIFEST_EVENT_KIND};

/// Bounds on one fetch of trust signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustFetchLimits {
    /// Contact lists are fetched this many hops out (match [`crate::ScoreConfig::max_hops`]).
    pub max_hops: u8,
    /// Keys the walk over follows may reach; past it, later hops stop growing.
    pub max_keys: usize,
    /// Authors named in one REQ.
    pub authors_per_request: usize,
    /// `limit` of each REQ.
    pub page_size: usize,
    /// Reports, labels, publications or deletions taken per author named in a REQ.
    pub events_per_author: usize,
}

impl Default for TrustFetchLimits {
    fn default() -> Self {
        Self {
            max_hops: 3,
            max_keys: 20_000,
            authors_per_request: 250,
            page_size: 500,
            events_per_author: 20,
        }
    }
}

/// What [`fetch_trust_events`] gathered.
#[derive(Debug, Default)]
pub struct TrustFetch {
    pub inputs: TrustInputs,
    /// A bound was reached: some keys or events were not fetched.
    pub truncated: bool,
    /// Relays that could not be asked or failed a request (relay, reason).
    pub relay_errors: Vec<(String, String)>,
}

/// Gathers, from the relays that answer (`timeout` bounds each REQ): the contact lists
/// (kind 3) of the operator's keys and of the keys they reach, hop by hop, up to
/// `max_hops`; the reports (1984) and labels (1985) that reached keys made about
/// `publishers`; and the publishers' publications (30078) and deletions (5), with the
/// deletions of those reports and labels. Everything goes through [`TrustInputs`], which
/// checks every signature.
pub async fn fetch_trust_events(
    relays: &(impl RelayList + ?Sized),
    operator_keys: &[PublicKey],
    publishers: &[PublicKey],
    limits: &TrustFetchLimits,
    timeout: Duration,
) -> Result<TrustFetch, Error> {
    fetch_trust_events_onto(
        TrustInputs::new(),
        relays,
        operator_keys,
        publishers,
        limits,
        timeout,
    )
    .await
}

/// [`fetch_trust_events`] onto inputs the caller already holds (e.g. the operator's own
/// events, before relays echo them): their contact lists steer the walk over follows too.
pub async fn fetch_trust_events_onto(
    seed: TrustInputs,
    relays: &(impl RelayList + ?Sized),
    operator_keys: &[PublicKey],
    publishers: &[PublicKey],
    limits: &TrustFetchLimits,
    timeout: Duration,
) -> Result<TrustFetch, Error> {
    let client = connected_client(relays).await?;
    client.wait_for_connection(timeout).await;
    let mut out = TrustFetch {
        inputs: seed,
        ..TrustFetch::default()
    };
    let up = connected_relays(&client, &mut out.relay_errors).await;
    let mut fetcher = Fetcher {
        client: &client,
        relays: &up,
        limits,
        timeout,
        out: &mut out,
    };

    let mut known: HashSet<PublicKey> = operator_keys.iter().copied().collect();
    let mut reached: Vec<PublicKey> = known.iter().copied().collect();
    reached.sort();
    let mut frontier = reached.clone();
    for _ in 0..limits.max_hops {
        let contacts = Filter::new().kind(Kind::ContactList);
        // Relays keep one list per author; a stale copy on another relay may come too.
        fetcher.by_authors(&contacts, &frontier, 2).await;
        let mut next = Vec::new();
        'expand: for u in &frontier {
            for v in fetcher.out.inputs.follows(u) {
                if known.len() >= limits.max_keys {
                    fetcher.out.truncated = true;
                    break 'expand;
                }
                if known.insert(*v) {
                    next.push(*v);
                }
            }
        }
        reached.extend_from_slice(&next);
        frontier = next;
    }

    let per_request = limits.authors_per_request.max(1);
    for targets in publishers.chunks(per_request) {
        let claims = Filter::new()
            .kinds([Kind::Reporting, Kind::Label])
            .pubkeys(targets.iter().copied());
        fetcher
            .by_authors(&claims, &reached, limits.events_per_author)
            .await;
    }
    let publications = Filter::new()
        .kind(Kind::Custom(MANIFEST_EVENT_KIND))
        .hashtag(APP_HASHTAG);
    fetcher
        .by_authors(&publications, publishers, limits.events_per_author)
        .await;
    let mut deleters = fetcher.out.inputs.claim_authors();
    deleters.extend_from_slice(publishers);
    deleters.sort();
    deleters.dedup();
    let deletions = Filter::new().kind(Kind::EventDeletion);
    fetcher
        .by_authors(&deletions, &deleters, limits.events_per_author)
        .await;
    client.disconnect().await;
    Ok(out)
}

struct Fetcher<'a> {
    client: &'a Client,
    relays: &'a [RelayUrl],
    limits: &'a TrustFetchLimits,
    timeout: Duration,
    out: &'a mut TrustFetch,
}

impl Fetcher<'_> {
    /// `filter` for `authors`, a chunk at a time, on every relay, at most `per_author`
    /// events per author named; what arrives goes to the inputs in batches.
    async fn by_authors(&mut self, filter: &Filter, authors: &[PublicKey], per_author: usize) {
        let page_size = self.limits.page_size.max(1);
        for chunk in authors.chunks(self.limits.authors_per_request.max(1)) {
            let filter = filter.clone().authors(chunk.iter().copied());
            let budget = chunk.len().saturating_mul(per_author.max(1));
            for relay in self.relays {
                let mut batch: Vec<Event> = Vec::new();
                let mut seen: HashSet<EventId> = HashSet::new();
                let mut sink = |page: &[Event]| {
                    let before = batch.len();
                    batch.extend(page.iter().filter(|e| seen.insert(e.id)).cloned());
                    batch.len() - before
                };
                let walked = walk(
                    self.client,
                    relay,
                    &filter,
                    page_size,
                    budget,
                    self.timeout,
                    &mut sink,
                )
                .await;
                match walked {
                    Ok(truncated) => self.out.truncated |= truncated,
                    Err(e) => self
                        .out
                        .relay_errors
                        .push((relay.to_string(), e.to_string())),
                }
                self.out.inputs.add_events(&batch);
            }
        }
    }
}
