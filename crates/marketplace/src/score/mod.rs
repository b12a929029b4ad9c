//! Trust scores: how far this node's operator should trust a publisher's key, from the
//! operator's own web of trust on Nostr. Follows (NIP-02) carry trust outward from the
//! operator's keys with a decay per hop; endorsements (NIP-32 labels) and reports (NIP-56)
//! count only in proportion to their author's own follow score; a publisher's history
//! (NIP-78 publications, NIP-09 deletions) adds a little, and only to a key already trusted.
//! A key with no path from the operator's keys scores 0, however many keys vouch for it.
//! The formula and its constants are in `docs/trust-score.md`.
//!
//! Here: the public types and the stores they share. `ingest` reads events into
//! [`TrustInputs`], `graph` propagates trust over follows, `explain` turns a key's
//! standing into the terms of its score.

mod explain;
mod graph;
mod ingest;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use nostr_sdk::nips::nip56::Report;
use nostr_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::nostr::Rejection;
use graph::Reach;

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
    /// The earliest time known: the first publication's `created_at`, or when a node
    /// first saw the publisher, whichever is earlier.
    first_seen: Option<u64>,
    /// (app, version) pairs.
    versions: BTreeSet<(String, String)>,
    /// Publication id → (app, `created_at`).
    publications: HashMap<EventId, (String, u64)>,
    /// App → the newest deletion of it by coordinate (its `created_at`).
    deleted_apps: BTreeMap<String, u64>,
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

#[cfg(test)]
mod tests;
