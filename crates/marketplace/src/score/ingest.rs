//! Reading events into [`TrustInputs`]: NIP-01 checks, then contact lists (NIP-02),
//! reports (NIP-56), endorsement labels (NIP-32), publications (NIP-78) and deletions
//! (NIP-09).

use std::collections::{BTreeSet, HashSet};

use nostr_sdk::nips::nip56::Report;
use nostr_sdk::prelude::*;
use tracing::debug;

use super::{
    Claim, ClaimKind, ContactList, ENDORSE_LABEL, Ignored, IngestStats, LABEL_NAMESPACE,
    MAX_FOLLOWS_PER_LIST, MAX_TARGETS_PER_CLAIM, TrustInputs,
};
use crate::MANIFEST_EVENT_KIND;
use crate::deletion::deletion_targets;
use crate::nostr::{Listing, check_publication};
use crate::par::par_map;

impl TrustInputs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts of everything added so far.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// The keys `author`'s newest contact list follows.
    pub fn follows(&self, author: &PublicKey) -> &[PublicKey] {
        self.contacts
            .get(author)
            .map_or(&[], |c| c.follows.as_slice())
    }

    /// Authors of the reports and labels held, so their retractions can be fetched.
    pub(crate) fn claim_authors(&self) -> Vec<PublicKey> {
        let authors: BTreeSet<PublicKey> =
            self.claims.values().flatten().map(|c| c.author).collect();
        authors.into_iter().collect()
    }

    /// Checks one event's id and signature, then takes what it says: a contact list
    /// (kind 3), a report (1984), an endorsement label (1985), a publication (30078, with
    /// every check of discovery) or a deletion (5).
    pub fn add_event(&mut self, event: &Event) -> Result<(), Ignored> {
        let verified = event.verify().map_err(|e| Ignored::Invalid(e.to_string()));
        self.count(event, verified)
    }

    /// [`Self::add_event`] for a batch, checking signatures on every core.
    pub fn add_events(&mut self, events: &[Event]) -> IngestStats {
        let before = self.stats;
        for (event, verified) in events.iter().zip(verify_all(events)) {
            // The outcome is in the stats.
            let _ = self.count(event, verified);
        }
        IngestStats {
            accepted: self.stats.accepted - before.accepted,
            invalid: self.stats.invalid - before.invalid,
            ignored: self.stats.ignored - before.ignored,
        }
    }

    /// A publication a node saw earlier and recorded, as history of its author: a relay
    /// that keeps only the newest event per app (NIP-33) cannot show the versions before.
    /// `event_id` is hex; an unreadable one is ignored.
    pub fn add_publication_seen(
        &mut self,
        author: &PublicKey,
        event_id: &str,
        app_id: &str,
        version: &str,
        created_at: u64,
    ) {
        if let Ok(id) = EventId::from_hex(event_id) {
            self.record_publication(*author, id, app_id, version.to_owned(), created_at);
        }
    }

    /// When a node first saw `author` publish (its own clock): history starts no later.
    pub fn add_first_seen(&mut self, author: &PublicKey, at: u64) {
        let h = self.history.entry(*author).or_default();
        h.first_seen = Some(h.first_seen.map_or(at, |f| f.min(at)));
    }

    /// A publication discovery already verified, as history of its author.
    pub fn add_listing(&mut self, listing: &Listing) {
        let Ok(author) = PublicKey::from_hex(&listing.author) else {
            return;
        };
        let Ok(id) = EventId::from_hex(&listing.event_id) else {
            return;
        };
        let version = listing
            .publication
            .publication()
            .manifest
            .version
            .to_string();
        self.record_publication(author, id, &listing.app_id, version, listing.created_at);
    }

    fn count(&mut self, event: &Event, verified: Result<(), Ignored>) -> Result<(), Ignored> {
        let outcome = verified.and_then(|()| self.add_verified(event));
        match &outcome {
            Ok(()) => self.stats.accepted += 1,
            Err(Ignored::Invalid(reason)) => {
                debug!(event = %event.id, %reason, "trust event with a bad signature ignored");
                self.stats.invalid += 1;
            }
            Err(_) => self.stats.ignored += 1,
        }
        outcome
    }

    fn add_verified(&mut self, event: &Event) -> Result<(), Ignored> {
        if !self.seen.insert(event.id) {
            return Err(Ignored::Duplicate);
        }
        match event.kind {
            Kind::ContactList => self.add_contacts(event),
            Kind::Reporting => self.add_report(event),
            Kind::Label => self.add_label(event),
            Kind::EventDeletion => {
                self.add_deletion(event);
                Ok(())
            }
            k if k == Kind::Custom(MANIFEST_EVENT_KIND) => {
                let listing = check_publication(event).map_err(Ignored::Publication)?;
                self.add_listing(&listing);
                Ok(())
            }
            k => Err(Ignored::Kind(k.as_u16())),
        }
    }

    fn add_contacts(&mut self, event: &Event) -> Result<(), Ignored> {
        // NIP-01 replaceable events: newest wins, the lowest id on a tie.
        if let Some(held) = self.contacts.get(&event.pubkey)
            && (held.created_at, std::cmp::Reverse(held.id))
                >= (event.created_at, std::cmp::Reverse(event.id))
        {
            return Err(Ignored::Stale);
        }
        // Raw `p` tags: parsing every tag into nostr's typed form costs more than the rest
        // of the ingest together on a large graph.
        let mut unique = HashSet::new();
        let follows: Vec<PublicKey> = event
            .tags
            .iter()
            .filter_map(|t| match t.as_slice() {
                [p, key, ..] if p == "p" => PublicKey::from_hex(key).ok(),
                _ => None,
            })
            .filter(|pk| *pk != event.pubkey && unique.insert(*pk))
            .take(MAX_FOLLOWS_PER_LIST)
            .collect();
        self.contacts.insert(
            event.pubkey,
            ContactList {
                created_at: event.created_at,
                id: event.id,
                follows,
            },
        );
        Ok(())
    }

    fn add_report(&mut self, event: &Event) -> Result<(), Ignored> {
        // NIP-56: the type is on the p tag, or on the e tag when an event is reported.
        let event_report = event.tags.iter().find_map(|t| match t.as_standardized() {
            Some(TagStandard::EventReport(_, r)) => Some(r.clone()),
            _ => None,
        });
        let mut targets = Vec::new();
        for tag in event.tags.filter_standardized(TagKind::p()) {
            let (target, report) = match tag {
                TagStandard::PublicKeyReport(pk, r) => (*pk, r.clone()),
                TagStandard::PublicKey { public_key, .. } => {
                    (*public_key, event_report.clone().unwrap_or(Report::Other))
                }
                _ => continue,
            };
            targets.push((target, ClaimKind::Report(report)));
        }
        self.add_claims(event, targets)
    }

    fn add_label(&mut self, event: &Event) -> Result<(), Ignored> {
        let mut in_namespace = false;
        let mut endorses = false;
        for tag in event.tags.iter() {
            match tag.as_standardized() {
                Some(TagStandard::LabelNamespace(ns)) if ns == LABEL_NAMESPACE => {
                    in_namespace = true
                }
                Some(TagStandard::Label {
                    value,
                    namespace: Some(ns),
                }) if value == ENDORSE_LABEL && ns == LABEL_NAMESPACE => endorses = true,
                _ => {}
            }
        }
        if !(in_namespace && endorses) {
            return Err(Ignored::NotEndorsement);
        }
        let targets = event
            .tags
            .public_keys()
            .map(|pk| (*pk, ClaimKind::Endorse))
            .collect();
        self.add_claims(event, targets)
    }

    fn add_claims(
        &mut self,
        event: &Event,
        targets: Vec<(PublicKey, ClaimKind)>,
    ) -> Result<(), Ignored> {
        if targets.is_empty() {
            return Err(Ignored::NoTarget);
        }
        for (target, kind) in targets.into_iter().take(MAX_TARGETS_PER_CLAIM) {
            self.claims.entry(target).or_default().push(Claim {
                author: event.pubkey,
                event: event.id,
                kind,
            });
        }
        Ok(())
    }

    fn add_deletion(&mut self, event: &Event) {
        // Raw tags: nostr-sdk's coordinate parser cuts our `archy:app:<id>` d tags short.
        let targets = deletion_targets(event);
        for id in targets.event_ids {
            if let Ok(id) = EventId::from_hex(&id) {
                self.deleted.insert((event.pubkey, id));
            }
        }
        if targets.apps.is_empty() {
            return;
        }
        let at = event.created_at.as_secs();
        let h = self.history.entry(event.pubkey).or_default();
        for app in targets.apps {
            let held = h.deleted_apps.entry(app).or_insert(at);
            *held = (*held).max(at);
        }
    }

    fn record_publication(
        &mut self,
        author: PublicKey,
        id: EventId,
        app_id: &str,
        version: String,
        created_at: u64,
    ) {
        let h = self.history.entry(author).or_default();
        h.first_seen = Some(h.first_seen.map_or(created_at, |f| f.min(created_at)));
        h.versions.insert((app_id.to_owned(), version));
        h.publications.insert(id, (app_id.to_owned(), created_at));
    }
}

/// Checks ids and signatures of a batch on every core.
fn verify_all(events: &[Event]) -> Vec<Result<(), Ignored>> {
    par_map(events, |e| {
        e.verify().map_err(|e| Ignored::Invalid(e.to_string()))
    })
}
