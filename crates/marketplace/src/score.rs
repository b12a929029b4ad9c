//! Trust scores: how far this node's operator should trust a publisher's key, from the
//! operator's own web of trust on Nostr. Follows (NIP-02) carry trust outward from the
//! operator's keys with a decay per hop; endorsements (NIP-32 labels) and reports (NIP-56)
//! count only in proportion to their author's own follow score; a publisher's history
//! (NIP-78 publications, NIP-09 deletions) adds a little, and only to a key already trusted.
//! A key with no path from the operator's keys scores 0, however many keys vouch for it.
//! The formula and its constants are in `docs/trust-score.md`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use nostr_sdk::nips::nip56::Report;
use nostr_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::nostr::{Listing, Rejection, check_publication};
use crate::par::par_map;
use crate::{MANIFEST_EVENT_KIND, manifest_d_tag};

/// NIP-32 namespace (`L` tag, and mark of the `l` tag) of Archipelago's labels.
pub const LABEL_NAMESPACE: &str = "archy";
/// The label by which a key vouches for a publisher named in a `p` tag:
/// `["L", "archy"], ["l", "endorse", "archy"], ["p", <hex key>]`.
pub const ENDORSE_LABEL: &str = "endorse";
/// Follows kept per contact list: the bound nostr-sdk already puts on kind-3 tags.
pub const MAX_FOLLOWS_PER_LIST: usize = 10_000;
/// Keys one report or label event may name; more are ignored.
pub const MAX_TARGETS_PER_CLAIM: usize = 100;

/// The constants of the formula. The defaults are documented in `docs/trust-score.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreConfig {
    /// Follows are followed this many hops out from the operator's keys.
    pub max_hops: u8,
    /// A key at hop h gets `100 × hop_decay^h` points.
    pub hop_decay: f64,
    /// Each further follower at the previous hop adds this share of its follow score…
    pub corroboration_weight: f64,
    /// …up to this many points in all.
    pub corroboration_cap: u8,
    /// An endorsement adds this share of its author's follow score…
    pub endorsement_weight: f64,
    /// …up to this many points for all endorsements together.
    pub endorsement_cap: u8,
    /// A report removes this share of its author's follow score, by NIP-56 type.
    pub report_malware: f64,
    pub report_impersonation: f64,
    pub report_illegal: f64,
    pub report_spam: f64,
    /// nudity, profanity and other.
    pub report_other: f64,
    /// One history point per this many days since the first publication seen…
    pub days_per_history_point: u32,
    /// …up to this many.
    pub history_age_cap: u8,
    /// One point per version published beyond the first, up to this many.
    pub history_versions_cap: u8,
    /// Points removed per publication its author deleted (NIP-09)…
    pub deletion_penalty: u8,
    /// …up to this many.
    pub deletion_cap: u8,
    /// Endorsements and reports explained one by one; the rest are summed in one term.
    pub terms_listed: usize,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            max_hops: 3,
            hop_decay: 0.5,
            corroboration_weight: 0.1,
            corroboration_cap: 10,
            endorsement_weight: 0.2,
            endorsement_cap: 30,
            report_malware: 1.0,
            report_impersonation: 0.8,
            report_illegal: 0.8,
            report_spam: 0.5,
            report_other: 0.2,
            days_per_history_point: 30,
            history_age_cap: 5,
            history_versions_cap: 5,
            deletion_penalty: 1,
            deletion_cap: 5,
            terms_listed: 5,
        }
    }
}

impl ScoreConfig {
    fn report_weight(&self, report: &Report) -> f64 {
        match report {
            Report::Malware => self.report_malware,
            Report::Impersonation => self.report_impersonation,
            Report::Illegal => self.report_illegal,
            Report::Spam => self.report_spam,
            Report::Nudity | Report::Profanity | Report::Other => self.report_other,
        }
    }

    /// Points of a key first reached at `hop`.
    fn hop_points(&self, hop: u8) -> u8 {
        let points = 100.0 * self.hop_decay.clamp(0.0, 1.0).powi(i32::from(hop));
        points.round().clamp(0.0, 100.0) as u8
    }
}

/// One reason in a score, with the points it adds (or removes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreTerm {
    pub points: i32,
    pub reason: String,
}

/// A publisher's score, 0..=100: the sum of its terms, clamped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustScore {
    pub score: u8,
    pub explanation: Vec<ScoreTerm>,
}

/// Why an event does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("NIP-01 id or signature invalid: {0}")]
    Invalid(String),
    #[error("already counted")]
    Duplicate,
    #[error("kind {0} carries no trust signal")]
    Kind(u16),
    #[error("an older contact list than the one held")]
    Stale,
    #[error("a label other than {ENDORSE_LABEL:?} in namespace {LABEL_NAMESPACE:?}")]
    NotEndorsement,
    #[error("names no key in a p tag")]
    NoTarget,
    #[error("not a valid publication: {0}")]
    Publication(Rejection),
}

/// What [`TrustInputs::add_events`] did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStats {
    pub accepted: usize,
    /// Bad id or signature.
    pub invalid: usize,
    /// Valid but not a trust signal (duplicate, stale, other kind or label…).
    pub ignored: usize,
}

#[derive(Debug, Clone)]
struct ContactList {
    created_at: Timestamp,
    id: EventId,
    follows: Vec<PublicKey>,
}

#[derive(Debug, Clone)]
enum ClaimKind {
    Endorse,
    Report(Report),
}

#[derive(Debug, Clone)]
struct Claim {
    author: PublicKey,
    event: EventId,
    kind: ClaimKind,
}

#[derive(Debug, Clone, Default)]
struct History {
    first_seen: Option<u64>,
    versions: BTreeSet<(String, String)>,
    publications: HashSet<EventId>,
    /// Deletion targets: publication ids and `archy:app:` coordinates.
    deleted: BTreeSet<String>,
}

/// Verified trust signals: newest contact list per author, endorsements and reports by
/// target, and publishers' history. Every event's NIP-01 id and signature is checked
/// before it counts.
#[derive(Debug, Clone, Default)]
pub struct TrustInputs {
    seen: HashSet<EventId>,
    contacts: HashMap<PublicKey, ContactList>,
    claims: HashMap<PublicKey, Vec<Claim>>,
    /// (author, event) pairs the author asked to delete (NIP-09).
    deleted: HashSet<(PublicKey, EventId)>,
    history: HashMap<PublicKey, History>,
    stats: IngestStats,
}

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
        for id in event.tags.event_ids() {
            self.deleted.insert((event.pubkey, *id));
        }
        for c in event.tags.coordinates() {
            // A deletion only speaks for its own author's events.
            if c.public_key == event.pubkey
                && c.kind == Kind::Custom(MANIFEST_EVENT_KIND)
                && c.identifier.starts_with(&manifest_d_tag(""))
            {
                self.history
                    .entry(event.pubkey)
                    .or_default()
                    .deleted
                    .insert(c.identifier.clone());
            }
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
        h.publications.insert(id);
    }

    /// Scores as of now. The propagation runs once here; [`TrustScores::score`] then
    /// explains any key.
    pub fn scores(&self, operator_keys: &[PublicKey], config: &ScoreConfig) -> TrustScores<'_> {
        self.scores_at(operator_keys, config, Timestamp::now())
    }

    /// [`Self::scores`] at a given time (history age is measured up to `now`).
    pub fn scores_at(
        &self,
        operator_keys: &[PublicKey],
        config: &ScoreConfig,
        now: Timestamp,
    ) -> TrustScores<'_> {
        let operators: BTreeSet<PublicKey> = operator_keys.iter().copied().collect();
        let mut scores = TrustScores {
            inputs: self,
            config: config.clone(),
            now: now.as_secs(),
            reach: self.propagate(&operators, config, &HashSet::new()),
            condemned: HashSet::new(),
            operators,
        };
        // A key whose score is 0 with every report counted stops vouching: its follows no
        // longer carry trust and its reports and endorsements weigh nothing. Decided once,
        // from this first pass, so report cycles (A reports B, B reports A) cannot oscillate.
        let condemned: HashSet<PublicKey> = self
            .claims
            .keys()
            .filter(|k| scores.reach.get(*k).is_some_and(|r| r.follow_score > 0))
            .filter(|k| !scores.operators.contains(*k))
            .filter(|k| scores.total(k) <= 0)
            .copied()
            .collect();
        if !condemned.is_empty() {
            scores.reach = self.propagate(&scores.operators, config, &condemned);
            scores.condemned = condemned;
        }
        scores
    }

    /// One score; see [`Self::scores`] to score many keys against one propagation.
    pub fn score(
        &self,
        operator_keys: &[PublicKey],
        publisher: &PublicKey,
        config: &ScoreConfig,
    ) -> TrustScore {
        self.scores(operator_keys, config).score(publisher)
    }

    /// Breadth-first from the operator's keys over follows, `max_hops` deep. A key's hop
    /// is its shortest follow distance; its follow score is the hop's points plus a capped
    /// bonus for further followers at the previous hop. Keys in `blocked` are reached but
    /// carry no trust onward.
    fn propagate(
        &self,
        operators: &BTreeSet<PublicKey>,
        config: &ScoreConfig,
        blocked: &HashSet<PublicKey>,
    ) -> HashMap<PublicKey, Reach> {
        let mut reach: HashMap<PublicKey, Reach> = HashMap::new();
        for op in operators {
            reach.insert(
                *op,
                Reach {
                    hop: 0,
                    via: None,
                    others: 0,
                    corroboration: 0.0,
                    follow_score: 100,
                },
            );
        }
        let mut frontier: Vec<PublicKey> = operators.iter().copied().collect();
        for hop in 0..config.max_hops {
            let mut next = Vec::new();
            for u in &frontier {
                if blocked.contains(u) {
                    continue;
                }
                let weight = reach.get(u).map_or(0, |r| r.follow_score);
                for v in self.follows(u) {
                    match reach.entry(*v) {
                        Entry::Vacant(e) => {
                            e.insert(Reach {
                                hop: hop + 1,
                                via: Some(*u),
                                others: 0,
                                corroboration: 0.0,
                                follow_score: 0,
                            });
                            next.push(*v);
                        }
                        Entry::Occupied(mut e) => {
                            let r = e.get_mut();
                            if r.hop == hop + 1 && r.via != Some(*u) {
                                r.others += 1;
                                r.corroboration += config.corroboration_weight * f64::from(weight);
                            }
                        }
                    }
                }
            }
            let base = config.hop_points(hop + 1);
            for v in &next {
                if let Some(r) = reach.get_mut(v) {
                    let bonus = r
                        .corroboration
                        .round()
                        .clamp(0.0, f64::from(config.corroboration_cap));
                    r.follow_score = (f64::from(base) + bonus).min(100.0) as u8;
                }
            }
            frontier = next;
        }
        reach
    }
}

/// Checks ids and signatures of a batch on every core.
fn verify_all(events: &[Event]) -> Vec<Result<(), Ignored>> {
    par_map(events, |e| {
        e.verify().map_err(|e| Ignored::Invalid(e.to_string()))
    })
}

#[derive(Debug, Clone)]
struct Reach {
    hop: u8,
    /// The follower that reached this key first (None for the operator's keys).
    via: Option<PublicKey>,
    /// Further followers at the previous hop.
    others: u32,
    corroboration: f64,
    follow_score: u8,
}

/// The propagation from one set of operator keys; explains any key's score.
#[derive(Debug)]
pub struct TrustScores<'a> {
    inputs: &'a TrustInputs,
    config: ScoreConfig,
    now: u64,
    operators: BTreeSet<PublicKey>,
    reach: HashMap<PublicKey, Reach>,
    condemned: HashSet<PublicKey>,
}

/// A term before it is put in words (only the explained key's are).
#[derive(Debug, Clone)]
enum Term {
    Operator,
    FollowedBy {
        via: PublicKey,
        via_score: u8,
        via_operator: bool,
        hop: u8,
    },
    Corroborated {
        others: u32,
        hop: u8,
    },
    NoPath {
        max_hops: u8,
    },
    Endorsed {
        by: PublicKey,
        weight: u8,
        operator: bool,
    },
    EndorsedMore {
        count: usize,
        capped: bool,
    },
    Reported {
        by: PublicKey,
        report: Report,
        weight: u8,
        operator: bool,
    },
    ReportedMore {
        count: usize,
    },
    History {
        days: u64,
        versions: usize,
        apps: usize,
    },
    HistoryWithoutTrust {
        days: u64,
        versions: usize,
    },
    Deleted {
        count: usize,
    },
    Condemned,
}

fn npub(pk: &PublicKey) -> String {
    pk.to_bech32().unwrap_or_else(|_| pk.to_hex())
}

fn key(pk: &PublicKey, operator: bool, weight: u8) -> String {
    if operator {
        format!("operator key {}", npub(pk))
    } else {
        format!("{} (follow score {weight})", npub(pk))
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator => write!(f, "operator key, trusted fully"),
            Self::FollowedBy {
                via,
                via_score,
                via_operator,
                hop,
            } => write!(
                f,
                "followed by {} (hop {hop})",
                key(via, *via_operator, *via_score)
            ),
            Self::Corroborated { others, hop } => {
                write!(f, "also followed by {others} other keys at hop {hop}")
            }
            Self::NoPath { max_hops } => write!(
                f,
                "no follow path from the operator's keys within {max_hops} hops"
            ),
            Self::Endorsed {
                by,
                weight,
                operator,
            } => write!(f, "endorsed by {}", key(by, *operator, *weight)),
            Self::EndorsedMore { count, capped } => {
                write!(f, "endorsed by {count} more keys")?;
                if *capped {
                    write!(f, " (endorsements capped)")?;
                }
                Ok(())
            }
            Self::Reported {
                by,
                report,
                weight,
                operator,
            } => write!(
                f,
                "reported as {} by {}",
                report.as_str(),
                key(by, *operator, *weight)
            ),
            Self::ReportedMore { count } => write!(f, "reported by {count} more keys"),
            Self::History {
                days,
                versions,
                apps,
            } => write!(
                f,
                "publishing for {days} days, {versions} versions of {apps} apps"
            ),
            Self::HistoryWithoutTrust { days, versions } => write!(
                f,
                "publishing for {days} days, {versions} versions: history counts only with a trust path"
            ),
            Self::Deleted { count } => write!(f, "deleted {count} publications (NIP-09)"),
            Self::Condemned => write!(
                f,
                "vouches for no one: its score is 0 when every report counts"
            ),
        }
    }
}

impl TrustScores<'_> {
    /// The key's score with every point explained.
    pub fn score(&self, publisher: &PublicKey) -> TrustScore {
        let terms = self.terms(publisher);
        let total: i32 = terms.iter().map(|(p, _)| p).sum();
        TrustScore {
            score: total.clamp(0, 100) as u8,
            explanation: terms
                .into_iter()
                .map(|(points, term)| ScoreTerm {
                    points,
                    reason: term.to_string(),
                })
                .collect(),
        }
    }

    /// Keys the follows reached (the operator's keys included).
    pub fn reached(&self) -> usize {
        self.reach.len()
    }

    fn total(&self, pk: &PublicKey) -> i32 {
        self.terms(pk).iter().map(|(p, _)| p).sum()
    }

    /// What a key's word weighs: its follow score, 0 once condemned.
    fn weight(&self, pk: &PublicKey) -> u8 {
        if self.condemned.contains(pk) {
            return 0;
        }
        self.reach.get(pk).map_or(0, |r| r.follow_score)
    }

    fn terms(&self, pk: &PublicKey) -> Vec<(i32, Term)> {
        if self.operators.contains(pk) {
            return vec![(100, Term::Operator)];
        }
        let cfg = &self.config;
        let mut terms = Vec::new();
        match self.reach.get(pk) {
            Some(r) => {
                if let Some(via) = r.via {
                    terms.push((
                        i32::from(cfg.hop_points(r.hop)),
                        Term::FollowedBy {
                            via,
                            via_score: self.weight(&via),
                            via_operator: self.operators.contains(&via),
                            hop: r.hop,
                        },
                    ));
                }
                let bonus = i32::from(r.follow_score) - i32::from(cfg.hop_points(r.hop));
                if r.others > 0 && bonus > 0 {
                    terms.push((
                        bonus,
                        Term::Corroborated {
                            others: r.others,
                            hop: r.hop.saturating_sub(1),
                        },
                    ));
                }
            }
            None => terms.push((
                0,
                Term::NoPath {
                    max_hops: cfg.max_hops,
                },
            )),
        }
        self.claim_terms(pk, &mut terms);
        self.history_terms(pk, &mut terms);
        if self.condemned.contains(pk) {
            terms.push((0, Term::Condemned));
        }
        terms
    }

    fn claim_terms(&self, pk: &PublicKey, terms: &mut Vec<(i32, Term)>) {
        let cfg = &self.config;
        let Some(claims) = self.inputs.claims.get(pk) else {
            return;
        };
        // One endorsement and the most severe report per author.
        let mut endorsers: BTreeSet<PublicKey> = BTreeSet::new();
        let mut reporters: HashMap<PublicKey, Report> = HashMap::new();
        for c in claims {
            if c.author == *pk
                || self.weight(&c.author) == 0
                || self.inputs.deleted.contains(&(c.author, c.event))
            {
                continue;
            }
            match &c.kind {
                ClaimKind::Endorse => {
                    endorsers.insert(c.author);
                }
                ClaimKind::Report(r) => {
                    let held = reporters.entry(c.author).or_insert_with(|| r.clone());
                    if cfg.report_weight(r) > cfg.report_weight(held) {
                        *held = r.clone();
                    }
                }
            }
        }

        let mut endorsements: Vec<(u8, PublicKey)> = endorsers
            .into_iter()
            .map(|a| (self.weight(&a), a))
            .collect();
        endorsements.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut room = i32::from(cfg.endorsement_cap);
        let (mut rest_points, mut rest_count, mut capped) = (0, 0, false);
        for (i, (weight, by)) in endorsements.into_iter().enumerate() {
            let raw = (cfg.endorsement_weight * f64::from(weight)).round() as i32;
            let points = raw.clamp(0, room);
            capped |= points < raw;
            room -= points;
            if i < cfg.terms_listed && points > 0 {
                let operator = self.operators.contains(&by);
                terms.push((
                    points,
                    Term::Endorsed {
                        by,
                        weight,
                        operator,
                    },
                ));
            } else {
                rest_points += points;
                rest_count += 1;
            }
        }
        if rest_count > 0 {
            terms.push((
                rest_points,
                Term::EndorsedMore {
                    count: rest_count,
                    capped,
                },
            ));
        }

        let mut reports: Vec<(i32, u8, PublicKey, Report)> = reporters
            .into_iter()
            .map(|(by, r)| {
                let weight = self.weight(&by);
                let points = -(cfg.report_weight(&r) * f64::from(weight)).round() as i32;
                (points, weight, by, r)
            })
            .collect();
        reports.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
        let (mut rest_points, mut rest_count) = (0, 0);
        for (i, (points, weight, by, report)) in reports.into_iter().enumerate() {
            if i < cfg.terms_listed {
                let operator = self.operators.contains(&by);
                terms.push((
                    points,
                    Term::Reported {
                        by,
                        report,
                        weight,
                        operator,
                    },
                ));
            } else {
                rest_points += points;
                rest_count += 1;
            }
        }
        if rest_count > 0 {
            terms.push((rest_points, Term::ReportedMore { count: rest_count }));
        }
    }

    fn history_terms(&self, pk: &PublicKey, terms: &mut Vec<(i32, Term)>) {
        let cfg = &self.config;
        let Some(h) = self.inputs.history.get(pk) else {
            return;
        };
        // A creation time is the publisher's own claim: one in the future counts as now.
        let days = h
            .first_seen
            .map_or(0, |first| self.now.saturating_sub(first) / 86_400);
        let versions = h.versions.len();
        let deleted = h.deleted.len()
            + h.publications
                .iter()
                .filter(|id| self.inputs.deleted.contains(&(*pk, **id)))
                .count();
        let trusted: i32 = terms.iter().map(|(p, _)| p).sum();
        if trusted <= 0 {
            if versions > 0 {
                terms.push((0, Term::HistoryWithoutTrust { days, versions }));
            }
            return;
        }
        if versions > 0 {
            let age = (days / u64::from(cfg.days_per_history_point.max(1)))
                .min(u64::from(cfg.history_age_cap)) as i32;
            let more = versions
                .saturating_sub(1)
                .min(usize::from(cfg.history_versions_cap)) as i32;
            let apps: BTreeSet<&str> = h.versions.iter().map(|(app, _)| app.as_str()).collect();
            terms.push((
                age + more,
                Term::History {
                    days,
                    versions,
                    apps: apps.len(),
                },
            ));
        }
        if deleted > 0 {
            let points = (deleted.saturating_mul(usize::from(cfg.deletion_penalty)))
                .min(usize::from(cfg.deletion_cap)) as i32;
            terms.push((-points, Term::Deleted { count: deleted }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{endorse, follows, publication_event_at, report};
    use archy_registry::SecretKey;

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    fn keys(n: usize) -> Vec<Keys> {
        (0..n).map(|_| Keys::generate()).collect()
    }

    fn pks(keys: &[Keys]) -> Vec<PublicKey> {
        keys.iter().map(|k| k.public_key()).collect()
    }

    fn scored(inputs: &TrustInputs, op: &Keys, who: &Keys) -> TrustScore {
        inputs
            .scores_at(
                &[op.public_key()],
                &ScoreConfig::default(),
                Timestamp::from_secs(NOW),
            )
            .score(&who.public_key())
    }

    fn reasons(s: &TrustScore) -> String {
        s.explanation
            .iter()
            .map(|t| format!("{:+} {}", t.points, t.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// op → a → b → c → d: 100 × 0.5^hop, nothing past max_hops.
    #[test]
    fn trust_decays_per_hop_and_stops_at_max_hops() {
        let [op, a, b, c, d] = [0; 5].map(|_| Keys::generate());
        let mut inputs = TrustInputs::new();
        for (who, whom) in [(&op, &a), (&a, &b), (&b, &c), (&c, &d)] {
            inputs
                .add_event(&follows(who, &[whom.public_key()], NOW))
                .unwrap();
        }
        let got: Vec<u8> = [&op, &a, &b, &c, &d]
            .iter()
            .map(|k| scored(&inputs, &op, k).score)
            .collect();
        assert_eq!(got, [100, 50, 25, 13, 0]);
        let a_score = scored(&inputs, &op, &a);
        assert_eq!(a_score.explanation.len(), 1);
        assert!(
            a_score.explanation[0]
                .reason
                .starts_with("followed by operator key npub1")
                && a_score.explanation[0].reason.ends_with("(hop 1)"),
            "{}",
            reasons(&a_score)
        );
        let b_score = scored(&inputs, &op, &b);
        assert!(
            reasons(&b_score).contains("(follow score 50) (hop 2)"),
            "{}",
            reasons(&b_score)
        );
        let d_score = scored(&inputs, &op, &d);
        assert_eq!(d_score.explanation[0].points, 0);
        assert!(
            reasons(&d_score).contains("no follow path"),
            "{}",
            reasons(&d_score)
        );

        let shallow = ScoreConfig {
            max_hops: 1,
            ..ScoreConfig::default()
        };
        let s = inputs.scores_at(&[op.public_key()], &shallow, Timestamp::from_secs(NOW));
        assert_eq!(s.score(&b.public_key()).score, 0);
    }

    /// 1,000 keys that follow, endorse and report each other, publish with a long history
    /// and endorse an outsider: none has a path from the operator, so all score 0, and their
    /// reports leave a trusted publisher untouched.
    #[test]
    fn a_sybil_cluster_without_a_path_scores_zero() {
        let [op, publisher] = [0; 2].map(|_| Keys::generate());
        let sybils = keys(1000);
        let sybil_pks = pks(&sybils);
        let mut events = vec![follows(&op, &[publisher.public_key()], NOW)];
        for (i, s) in sybils.iter().enumerate() {
            let whom: Vec<PublicKey> = (1..=30)
                .map(|j| sybil_pks[(i + j * 7) % sybil_pks.len()])
                .collect();
            events.push(follows(s, &whom, NOW));
            events.push(endorse(s, &sybil_pks[(i + 1) % sybil_pks.len()]));
            events.push(report(s, &publisher.public_key(), Report::Malware));
        }
        let mut inputs = TrustInputs::new();
        let stats = inputs.add_events(&events);
        assert_eq!((stats.accepted, stats.invalid), (events.len(), 0));
        // Years of history on a few of them.
        let did = SecretKey::from_bytes(&[7; 32]);
        for (i, s) in sybils.iter().take(5).enumerate() {
            for v in 0..3u64 {
                let at = NOW - 1000 * DAY + v * DAY;
                let ev = publication_event_at(&did, s, &format!("app{i}"), &format!("1.{v}.0"), at);
                inputs.add_event(&ev).unwrap();
            }
        }
        let scores = inputs.scores_at(
            &[op.public_key()],
            &ScoreConfig::default(),
            Timestamp::from_secs(NOW),
        );
        for s in &sybil_pks {
            let score = scores.score(s);
            assert_eq!(score.score, 0, "{}", reasons(&score));
            assert!(score.explanation.iter().all(|t| t.points == 0));
        }
        let with_history = scores.score(&sybil_pks[0]);
        assert!(
            reasons(&with_history).contains("history counts only with a trust path"),
            "{}",
            reasons(&with_history)
        );
        let trusted = scores.score(&publisher.public_key());
        assert_eq!(trusted.score, 50, "{}", reasons(&trusted));
        assert!(!reasons(&trusted).contains("reported"));
    }

    /// An honest key at hop 2 follows one sybil: the whole cluster gets at most hop-3
    /// points, and a target followed by all of them gains no more than the capped bonus.
    #[test]
    fn an_attack_edge_buys_only_bounded_trust() {
        let [op, friend, dupe, target] = [0; 4].map(|_| Keys::generate());
        let sybils = keys(300);
        let sybil_pks = pks(&sybils);
        let mut events = vec![
            follows(&op, &[friend.public_key()], NOW),
            follows(&friend, &[dupe.public_key()], NOW),
            follows(&dupe, &sybil_pks, NOW),
        ];
        for s in &sybils {
            events.push(follows(s, &[target.public_key()], NOW));
            events.push(endorse(s, &target.public_key()));
        }
        let mut inputs = TrustInputs::new();
        inputs.add_events(&events);
        let scores = inputs.scores_at(
            &[op.public_key()],
            &ScoreConfig::default(),
            Timestamp::from_secs(NOW),
        );
        assert!(sybil_pks.iter().all(|s| scores.score(s).score == 13));
        // Hop 4 is past max_hops: following adds nothing; endorsements by hop-3 keys weigh
        // 13 each, 0.2 × 13 ≈ 3 points, capped at 30 together.
        let t = scores.score(&target.public_key());
        assert_eq!(t.score, 30, "{}", reasons(&t));
        assert!(
            reasons(&t).contains("endorsements capped"),
            "{}",
            reasons(&t)
        );
    }

    #[test]
    fn corroboration_from_more_followers_is_capped() {
        let op = Keys::generate();
        let friends = keys(40);
        let target = Keys::generate();
        let mut events = vec![follows(&op, &pks(&friends), NOW)];
        for (i, f) in friends.iter().enumerate() {
            if i < 3 {
                events.push(follows(f, &[target.public_key()], NOW));
            }
        }
        let mut inputs = TrustInputs::new();
        inputs.add_events(&events);
        // Two more followers at hop 1 (score 50): 2 × 0.1 × 50 = +10.
        let t = scored(&inputs, &op, &target);
        assert_eq!(t.score, 35, "{}", reasons(&t));
        assert!(reasons(&t).contains("+10 also followed by 2 other keys at hop 1"));
        for f in &friends[3..] {
            inputs
                .add_event(&follows(f, &[target.public_key()], NOW))
                .unwrap();
        }
        assert_eq!(scored(&inputs, &op, &target).score, 35);
    }

    #[test]
    fn reports_and_endorsements_weigh_by_their_authors_follow_score() {
        let [op, friend, far, stranger, p] = [0; 5].map(|_| Keys::generate());
        let mut inputs = TrustInputs::new();
        inputs.add_events(&[
            follows(&op, &[friend.public_key(), p.public_key()], NOW),
            follows(&friend, &[far.public_key()], NOW),
        ]);
        assert_eq!(scored(&inputs, &op, &p).score, 50);
        // A stranger (no path) weighs 0: no term at all.
        inputs
            .add_event(&report(&stranger, &p.public_key(), Report::Malware))
            .unwrap();
        inputs
            .add_event(&endorse(&stranger, &p.public_key()))
            .unwrap();
        let s = scored(&inputs, &op, &p);
        assert_eq!(s.score, 50);
        assert_eq!(s.explanation.len(), 1, "{}", reasons(&s));
        // A hop-2 key (25) reporting spam: −0.5 × 25.
        inputs
            .add_event(&report(&far, &p.public_key(), Report::Spam))
            .unwrap();
        let s = scored(&inputs, &op, &p);
        assert_eq!(s.score, 37, "{}", reasons(&s));
        assert!(reasons(&s).contains("-13 reported as spam by npub1"));
        // A hop-1 key (50) endorsing: +0.2 × 50.
        inputs
            .add_event(&endorse(&friend, &p.public_key()))
            .unwrap();
        let s = scored(&inputs, &op, &p);
        assert_eq!(s.score, 47, "{}", reasons(&s));
        assert!(reasons(&s).contains("+10 endorsed by npub1"));
        // The operator's own malware report: −100.
        inputs
            .add_event(&report(&op, &p.public_key(), Report::Malware))
            .unwrap();
        let s = scored(&inputs, &op, &p);
        assert_eq!(s.score, 0, "{}", reasons(&s));
        assert!(reasons(&s).contains("-100 reported as malware by operator key npub1"));
    }

    #[test]
    fn a_key_reported_down_to_zero_stops_vouching() {
        let [op, bad, friend_of_bad, p] = [0; 4].map(|_| Keys::generate());
        let mut inputs = TrustInputs::new();
        inputs.add_events(&[
            follows(&op, &[bad.public_key(), p.public_key()], NOW),
            follows(&bad, &[friend_of_bad.public_key()], NOW),
            report(&bad, &p.public_key(), Report::Malware),
        ]);
        assert_eq!(scored(&inputs, &op, &friend_of_bad).score, 25);
        assert_eq!(scored(&inputs, &op, &p).score, 0);
        inputs
            .add_event(&report(&op, &bad.public_key(), Report::Malware))
            .unwrap();
        assert_eq!(scored(&inputs, &op, &bad).score, 0);
        assert_eq!(scored(&inputs, &op, &friend_of_bad).score, 0);
        // p was reported to 0 by `bad` before `bad` was condemned: it scores again, but
        // does not vouch this round.
        let s = scored(&inputs, &op, &p);
        assert_eq!(s.score, 50, "{}", reasons(&s));
        assert!(
            reasons(&s).contains("vouches for no one"),
            "{}",
            reasons(&s)
        );
    }

    #[test]
    fn deleted_reports_stop_counting() {
        let [op, p] = [0; 2].map(|_| Keys::generate());
        let r = report(&op, &p.public_key(), Report::Impersonation);
        let mut inputs = TrustInputs::new();
        inputs.add_events(&[follows(&op, &[p.public_key()], NOW), r.clone()]);
        assert_eq!(scored(&inputs, &op, &p).score, 0);
        let retraction = EventBuilder::delete(EventDeletionRequest::new().id(r.id))
            .sign_with_keys(&op)
            .unwrap();
        // Someone else cannot retract it.
        let forged_retraction = EventBuilder::delete(EventDeletionRequest::new().id(r.id))
            .sign_with_keys(&p)
            .unwrap();
        inputs.add_event(&forged_retraction).unwrap();
        assert_eq!(scored(&inputs, &op, &p).score, 0);
        inputs.add_event(&retraction).unwrap();
        assert_eq!(scored(&inputs, &op, &p).score, 50);
    }

    #[test]
    fn bad_signatures_stale_lists_and_foreign_labels_do_not_count() {
        let [op, a, b] = [0; 3].map(|_| Keys::generate());
        let mut inputs = TrustInputs::new();
        let mut forged = follows(&op, &[a.public_key()], NOW);
        forged.pubkey = b.public_key();
        assert!(matches!(
            inputs.add_event(&forged),
            Err(Ignored::Invalid(_))
        ));
        let mut tampered = follows(&op, &[a.public_key()], NOW);
        tampered.tags = Tags::from_list(vec![Tag::public_key(b.public_key())]);
        assert!(matches!(
            inputs.add_event(&tampered),
            Err(Ignored::Invalid(_))
        ));
        assert_eq!(scored(&inputs, &op, &a).score, 0);

        let newer = follows(&op, &[b.public_key()], NOW);
        let older = follows(&op, &[a.public_key()], NOW - 10);
        inputs.add_event(&newer).unwrap();
        assert_eq!(inputs.add_event(&older), Err(Ignored::Stale));
        assert_eq!(inputs.add_event(&newer), Err(Ignored::Duplicate));
        assert_eq!(scored(&inputs, &op, &a).score, 0, "unfollowed");
        assert_eq!(scored(&inputs, &op, &b).score, 50);

        let other_label = EventBuilder::label("ugc", ENDORSE_LABEL)
            .tag(Tag::public_key(a.public_key()))
            .sign_with_keys(&op)
            .unwrap();
        assert_eq!(inputs.add_event(&other_label), Err(Ignored::NotEndorsement));
        let note = EventBuilder::text_note("hi").sign_with_keys(&op).unwrap();
        assert_eq!(inputs.add_event(&note), Err(Ignored::Kind(1)));
        assert_eq!(
            inputs.stats(),
            IngestStats {
                accepted: 1,
                invalid: 2,
                ignored: 4
            }
        );
    }

    #[test]
    fn history_adds_a_little_to_trusted_publishers_only() {
        let [op, p] = [0; 2].map(|_| Keys::generate());
        let did = SecretKey::from_bytes(&[9; 32]);
        let mut inputs = TrustInputs::new();
        inputs
            .add_event(&follows(&op, &[p.public_key()], NOW))
            .unwrap();
        // Four versions of two apps over 200 days, one version deleted.
        let mut first = None;
        for (app, version, days_ago) in [
            ("notes", "1.0.0", 200),
            ("notes", "1.1.0", 100),
            ("notes", "2.0.0", 10),
            ("blog", "1.0.0", 50),
        ] {
            let ev = publication_event_at(&did, &p, app, version, NOW - days_ago * DAY);
            first.get_or_insert(ev.id);
            inputs.add_event(&ev).unwrap();
        }
        let s = scored(&inputs, &op, &p);
        // 50 + min(5, 200/30) + min(5, 4 − 1).
        assert_eq!(s.score, 58, "{}", reasons(&s));
        assert!(reasons(&s).contains("+8 publishing for 200 days, 4 versions of 2 apps"));
        let deletion = EventBuilder::delete(EventDeletionRequest::new().id(first.unwrap()))
            .sign_with_keys(&p)
            .unwrap();
        inputs.add_event(&deletion).unwrap();
        let s = scored(&inputs, &op, &p);
        assert_eq!(s.score, 57, "{}", reasons(&s));
        assert!(reasons(&s).contains("-1 deleted 1 publications (NIP-09)"));
        // A publication whose DID binds another key is no history.
        let other = Keys::generate();
        let mut bad = publication_event_at(&did, &other, "x", "1.0.0", NOW);
        bad = EventBuilder::new(bad.kind, bad.content.clone())
            .tags(bad.tags.clone())
            .sign_with_keys(&p)
            .unwrap();
        assert!(matches!(
            inputs.add_event(&bad),
            Err(Ignored::Publication(Rejection::KeyBinding { .. }))
        ));
    }

    /// Every key of a mixed graph: the score is the clamped sum of its terms, and the
    /// explanation survives JSON as the node stores it.
    #[test]
    fn every_score_is_the_clamped_sum_of_its_terms() {
        use ::rand::{Rng, SeedableRng};
        let mut rng = ::rand::rngs::StdRng::seed_from_u64(7);
        let all = keys(300);
        let all_pks = pks(&all);
        let mut events = Vec::new();
        for k in &all {
            let whom: Vec<PublicKey> = (0..rng.random_range(0..20))
                .map(|_| all_pks[rng.random_range(0..all_pks.len())])
                .collect();
            events.push(follows(k, &whom, NOW));
            for _ in 0..rng.random_range(0..4) {
                let target = all_pks[rng.random_range(0..all_pks.len())];
                events.push(match rng.random_range(0..3) {
                    0 => endorse(k, &target),
                    1 => report(k, &target, Report::Malware),
                    _ => report(k, &target, Report::Spam),
                });
            }
        }
        let mut inputs = TrustInputs::new();
        inputs.add_events(&events);
        let ops = &all_pks[..3];
        let scores = inputs.scores_at(ops, &ScoreConfig::default(), Timestamp::from_secs(NOW));
        let mut nonzero = 0;
        for pk in &all_pks {
            let s = scores.score(pk);
            let sum: i32 = s.explanation.iter().map(|t| t.points).sum();
            assert_eq!(i32::from(s.score), sum.clamp(0, 100), "{}", reasons(&s));
            assert!(!s.explanation.is_empty());
            nonzero += usize::from(s.score > 0);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<TrustScore>(&json).unwrap(), s);
        }
        assert!(nonzero > 3, "the graph should reach past the operator keys");
        let json = serde_json::to_value(scores.score(&all_pks[0])).unwrap();
        assert_eq!(json["score"], 100);
        assert_eq!(json["explanation"][0]["points"], 100);
    }
}
