//! The formula: a key's terms (follow path, corroboration, endorsements, reports,
//! history), each with its points and the reason put in words.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use nostr_sdk::nips::nip56::Report;
use nostr_sdk::prelude::*;

use super::{ClaimKind, ScoreTerm, TrustScore, TrustScores};

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
                "no follow path from the operator's keys within {max_hops} hops \
                 (`archy market follow` the publisher, or a key that follows it)"
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

    pub(super) fn total(&self, pk: &PublicKey) -> i32 {
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
        // Each publication deleted once, by id or by its app's coordinate (every version up
        // to the request); an app withdrawn with no version known counts as one.
        let deleted_publications = h
            .publications
            .iter()
            .filter(|(id, (app, at))| {
                self.inputs.deleted.contains(&(*pk, **id))
                    || h.deleted_apps.get(app).is_some_and(|d| d >= at)
            })
            .count();
        // A set: every deleted app against every publication was quadratic in what a
        // publisher (anybody) puts in its deletions.
        let published: std::collections::HashSet<&_> =
            h.publications.values().map(|(app, _)| app).collect();
        let withdrawn_unseen = h
            .deleted_apps
            .keys()
            .filter(|app| !published.contains(app))
            .count();
        let deleted = deleted_publications + withdrawn_unseen;
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
