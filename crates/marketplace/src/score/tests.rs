//! Tests of the trust score: decay, sybil resistance, claims, deletions, history.

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

/// A compliant relay (NIP-33) holds only the newest event per (publisher, app), so each
/// pass sees one version of each app. What the node recorded from earlier passes makes the
/// history grow; the relay's view alone does not. Deleting by coordinate takes every version
/// up to the request, once each; a deletion by another key counts for nothing.
#[test]
fn history_grows_over_passes_from_what_the_node_recorded() {
    let [op, p, stranger] = [0; 3].map(|_| Keys::generate());
    let did = SecretKey::from_bytes(&[9; 32]);
    let follow = follows(&op, &[p.public_key()], NOW);
    // Releases in time order; each pass runs a day after one.
    let releases = [
        ("notes", "1.0.0", 200),
        ("notes", "1.1.0", 100),
        ("blog", "1.0.0", 50),
        ("notes", "2.0.0", 10),
    ];
    let mut relay: BTreeMap<&str, Event> = BTreeMap::new();
    let mut recorded: Vec<(EventId, &str, &str, u64)> = Vec::new();
    let mut with_record = Vec::new();
    let mut relay_only = Vec::new();
    for (app, version, days_ago) in releases {
        let at = NOW - days_ago * DAY;
        let event = publication_event_at(&did, &p, app, version, at);
        // The relay replaces the app's previous event.
        relay.insert(app, event);
        let pass_time = Timestamp::from_secs(at + DAY);
        let score_of = |record: &[(EventId, &str, &str, u64)]| {
            let mut inputs = TrustInputs::new();
            inputs.add_event(&follow).unwrap();
            for e in relay.values() {
                inputs.add_event(e).unwrap();
            }
            for (id, app, version, at) in record {
                inputs.add_publication_seen(&p.public_key(), &id.to_hex(), app, version, *at);
            }
            inputs
                .scores_at(&[op.public_key()], &ScoreConfig::default(), pass_time)
                .score(&p.public_key())
        };
        relay_only.push(score_of(&[]).score);
        with_record.push(score_of(&recorded).score);
        recorded.push((relay[app].id, app, version, at));
    }
    // 50 + min(5, days/30) + min(5, versions − 1), pass after pass.
    assert_eq!(with_record, [50, 54, 57, 58]);
    assert_eq!(relay_only, [50, 50, 52, 52]);

    let mut inputs = TrustInputs::new();
    inputs.add_event(&follow).unwrap();
    for (id, app, version, at) in &recorded {
        inputs.add_publication_seen(&p.public_key(), &id.to_hex(), app, version, *at);
    }
    let s = scored(&inputs, &op, &p);
    assert!(
        reasons(&s).contains("+8 publishing for 200 days, 4 versions of 2 apps"),
        "{}",
        reasons(&s)
    );
    // The node saw the publisher long before any event it still has: history starts there.
    let mut late = TrustInputs::new();
    late.add_event(&follow).unwrap();
    late.add_event(&relay["notes"]).unwrap();
    late.add_first_seen(&p.public_key(), NOW - 400 * DAY);
    assert!(reasons(&scored(&late, &op, &p)).contains("publishing for 400 days"));

    // Someone else's withdrawal of the developer's app: nothing.
    let coordinate = |by: &Keys, at: u64| {
        EventBuilder::new(Kind::EventDeletion, "")
            .tag(
                Tag::parse([
                    "a",
                    &format!("30078:{}:archy:app:notes", p.public_key().to_hex()),
                ])
                .unwrap(),
            )
            .custom_created_at(Timestamp::from_secs(at))
            .sign_with_keys(by)
            .unwrap()
    };
    inputs.add_event(&coordinate(&stranger, NOW)).unwrap();
    assert_eq!(scored(&inputs, &op, &p).score, 58);
    // The developer withdraws notes after 1.1.0: two versions deleted.
    inputs.add_event(&coordinate(&p, NOW - 100 * DAY)).unwrap();
    let s = scored(&inputs, &op, &p);
    assert_eq!(s.score, 56, "{}", reasons(&s));
    assert!(reasons(&s).contains("-2 deleted 2 publications (NIP-09)"));
    // Then every version, and blog's by id as well: each publication counts once.
    let blog = recorded.iter().find(|r| r.1 == "blog").unwrap().0;
    inputs.add_event(&coordinate(&p, NOW)).unwrap();
    inputs
        .add_event(
            &EventBuilder::delete(EventDeletionRequest::new().id(blog))
                .sign_with_keys(&p)
                .unwrap(),
        )
        .unwrap();
    let s = scored(&inputs, &op, &p);
    assert_eq!(s.score, 54, "{}", reasons(&s));
    assert!(reasons(&s).contains("-4 deleted 4 publications (NIP-09)"));

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
