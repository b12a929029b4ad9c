//! The web of trust: breadth-first over follows from the operator's keys, with decay
//! per hop and a capped bonus for corroborating followers; keys reported down to 0 stop
//! vouching.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};

use nostr_sdk::prelude::*;

use super::{ScoreConfig, TrustInputs, TrustScore, TrustScores};

impl TrustInputs {
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

#[derive(Debug, Clone)]
pub(super) struct Reach {
    pub(super) hop: u8,
    /// The follower that reached this key first (None for the operator's keys).
    pub(super) via: Option<PublicKey>,
    /// Further followers at the previous hop.
    pub(super) others: u32,
    corroboration: f64,
    pub(super) follow_score: u8,
}
