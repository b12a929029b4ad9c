//! The contact-list merge, the shape of labels and reports (NIP-32, NIP-56), and vouching
//! through a real relay over websocket (nostr-relay-builder's LocalRelay, in process).

use std::time::Duration;

use super::*;
use crate::test_support::{self, dead_relay, relay};
use crate::{ScoreConfig, TrustInputs, fetch_trust_events};

/// NIP-06's published test vector: this mnemonic's key (account 0).
const OPERATOR: &str =
    "leader monkey parrot ring guide accident before fence cannon height naive bean";
const OPERATOR_HEX: &str = "17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917";
const TIMEOUT: Duration = Duration::from_secs(3);

fn operator() -> OperatorKey {
    OperatorKey::from_mnemonic(OPERATOR).unwrap()
}

fn raw(event: &Event) -> Vec<Vec<String>> {
    event.tags.iter().map(|t| t.as_slice().to_vec()).collect()
}

/// A contact list as another client would write it: relay hints, petnames, a tag we do not
/// know, and relays in the content (as some clients still put them).
fn foreign_list(key: &OperatorKey, follows: &[(PublicKey, &str)], at: u64) -> Event {
    let mut tags: Vec<Tag> = follows
        .iter()
        .map(|(pk, name)| Tag::parse(["p", &pk.to_hex(), "wss://hint.example/", name]).unwrap())
        .collect();
    tags.insert(1, Tag::hashtag("unknown-to-us"));
    EventBuilder::new(Kind::ContactList, r#"{"wss://r.example/":{"read":true}}"#)
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(at))
        .sign_with_keys(key.keys())
        .unwrap()
}

#[test]
fn the_operator_key_is_the_nip06_key_and_errors_never_quote_the_words() {
    let key = operator();
    assert_eq!(key.public_key().to_hex(), OPERATOR_HEX);
    assert!(key.npub().starts_with("npub1"));
    // Extra whitespace and line breaks are not part of the words.
    let spaced = format!("  {}\n", OPERATOR.replace(' ', "  \n"));
    assert_eq!(
        OperatorKey::from_mnemonic(&spaced).unwrap().public_key(),
        key.public_key()
    );
    let err = OperatorKey::from_mnemonic(
        "leader monkey parrot ring guide accident before fence cannon height naive zebra",
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("leader") && !err.contains("zebra"), "{err}");
    let err = OperatorKey::from_mnemonic("secretword")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("secretword"), "{err}");
    assert!(!format!("{key:?}").contains(&key.keys().secret_key().to_secret_hex()));
}

#[test]
fn a_follow_keeps_every_tag_and_the_content_of_the_newest_list() {
    let key = operator();
    let (a, b, c) = (
        Keys::generate().public_key(),
        Keys::generate().public_key(),
        Keys::generate().public_key(),
    );
    let base = foreign_list(&key, &[(a, "alice"), (b, "bob")], 1_000);
    let (list, change) =
        merge_contact_list(&key, Some(&base), &[c], &[], Timestamp::from_secs(2_000)).unwrap();
    let mut expected = raw(&base);
    expected.push(vec!["p".into(), c.to_hex()]);
    assert_eq!(
        raw(&list),
        expected,
        "tags kept whole, in order, the new follow appended"
    );
    assert_eq!(list.content, base.content);
    assert_eq!(list.kind, Kind::ContactList);
    assert_eq!(list.pubkey, key.public_key());
    assert_eq!(list.created_at.as_secs(), 2_000);
    list.verify().unwrap();
    assert_eq!(change.added, vec![c]);
    assert!(change.removed.is_empty() && change.unchanged.is_empty());
    assert_eq!(change.follows, 3);

    // Following someone already followed changes nothing.
    let (_, again) =
        merge_contact_list(&key, Some(&list), &[a], &[], Timestamp::from_secs(3_000)).unwrap();
    assert!(!again.changed());
    assert_eq!(again.unchanged, vec![a]);

    // A base dated after our clock: the new list is dated after it, or relays keep the old.
    let future = foreign_list(&key, &[(a, "alice")], 5_000);
    let (later, _) =
        merge_contact_list(&key, Some(&future), &[b], &[], Timestamp::from_secs(4_000)).unwrap();
    assert_eq!(later.created_at.as_secs(), 5_001);

    // No list yet: a list of the new follows alone, no content.
    let (fresh, change) =
        merge_contact_list(&key, None, &[a, b], &[], Timestamp::from_secs(10)).unwrap();
    assert_eq!(
        raw(&fresh),
        vec![
            vec!["p".to_owned(), a.to_hex()],
            vec!["p".to_owned(), b.to_hex()]
        ]
    );
    assert_eq!((fresh.content.as_str(), change.follows), ("", 2));
}

#[test]
fn an_unfollow_removes_only_the_named_key() {
    let key = operator();
    let (a, b, stranger) = (
        Keys::generate().public_key(),
        Keys::generate().public_key(),
        Keys::generate().public_key(),
    );
    // A duplicate entry of `a` (clients write those): every copy goes.
    let base = foreign_list(&key, &[(a, "alice"), (b, "bob"), (a, "alice again")], 1_000);
    let (list, change) = merge_contact_list(
        &key,
        Some(&base),
        &[],
        &[a, stranger],
        Timestamp::from_secs(2_000),
    )
    .unwrap();
    let kept: Vec<Vec<String>> = raw(&base)
        .into_iter()
        .filter(|t| !(t[0] == "p" && t[1] == a.to_hex()))
        .collect();
    assert_eq!(raw(&list), kept);
    assert_eq!(change.removed, vec![a]);
    assert_eq!(change.unchanged, vec![stranger]);
    assert_eq!(change.follows, 1);
}

#[test]
fn a_merge_refuses_other_keys_lists_forgeries_and_contradictions() {
    let key = operator();
    let other = OperatorKey::from_mnemonic(
        "what bleak badge arrange retreat wolf trade produce cricket blur garlic valid proud rude strong choose busy staff weather area salt hollow arm fade",
    )
    .unwrap();
    let a = Keys::generate().public_key();
    let now = Timestamp::from_secs(2_000);
    let theirs = foreign_list(&other, &[(a, "a")], 1_000);
    let err = merge_contact_list(&key, Some(&theirs), &[a], &[], now).unwrap_err();
    assert!(
        err.to_string().contains("not this key's contact list"),
        "{err}"
    );
    let mut forged = foreign_list(&key, &[(a, "a")], 1_000);
    forged.content.push('!');
    assert!(merge_contact_list(&key, Some(&forged), &[a], &[], now).is_err());
    assert!(merge_contact_list(&key, None, &[key.public_key()], &[], now).is_err());
    assert!(merge_contact_list(&key, None, &[a], &[a], now).is_err());

    // The newest of several copies: latest created_at, the lowest id on a tie; forgeries
    // and other keys' lists never win.
    let old = foreign_list(&key, &[(a, "old")], 1_000);
    let tie_a = foreign_list(&key, &[(a, "x")], 3_000);
    let tie_b = foreign_list(&key, &[(a, "y")], 3_000);
    let mut forged_new = foreign_list(&key, &[(a, "z")], 9_000);
    forged_new.content.push(' ');
    let theirs_new = foreign_list(&other, &[(a, "a")], 9_000);
    let all = [old, tie_a.clone(), tie_b.clone(), forged_new, theirs_new];
    let newest = newest_contact_list(&key.public_key(), &all).unwrap();
    assert_eq!(newest.id, tie_a.id.min(tie_b.id));
}

#[test]
fn endorsements_are_nip32_labels_the_score_counts() {
    let key = operator();
    let publisher = Keys::generate().public_key();
    let hex = publisher.to_hex();
    let app = Subject::App {
        publisher,
        app_id: "notes".into(),
    };
    let event = endorsement_event(&key, &app, &["audited".into()], "reviewed the source").unwrap();
    assert_eq!(event.kind, Kind::Label);
    assert_eq!(event.kind.as_u16(), 1985);
    assert_eq!(event.content, "reviewed the source");
    assert_eq!(
        raw(&event),
        vec![
            vec!["L", "archy"],
            vec!["l", "endorse", "archy"],
            vec!["l", "audited", "archy"],
            vec!["p", hex.as_str()],
            vec!["a", &format!("30078:{hex}:archy:app:notes")],
        ]
    );
    event.verify().unwrap();
    let plain = endorsement_event(&key, &Subject::Publisher(publisher), &[], "").unwrap();
    assert_eq!(
        raw(&plain),
        vec![
            vec!["L", "archy"],
            vec!["l", "endorse", "archy"],
            vec!["p", hex.as_str()]
        ]
    );

    // The score reads it as the operator's endorsement (the operator follows the key too).
    let mut inputs = TrustInputs::new();
    inputs
        .add_event(&test_support::follows(key.keys(), &[publisher], 1))
        .unwrap();
    inputs.add_event(&event).unwrap();
    let score = inputs.score(&[key.public_key()], &publisher, &ScoreConfig::default());
    assert_eq!(score.score, 70, "{:?}", score.explanation);
    assert!(
        score.explanation[1]
            .reason
            .starts_with("endorsed by operator key"),
        "{:?}",
        score.explanation
    );

    for bad in ["Audited", "", "a b", &"x".repeat(33)] {
        assert!(
            endorsement_event(&key, &app, &[bad.into()], "").is_err(),
            "{bad:?}"
        );
    }
    let too_long = "x".repeat(MAX_COMMENT_BYTES + 1);
    assert!(endorsement_event(&key, &app, &[], &too_long).is_err());
    let event_subject = Subject::Event {
        id: event.id,
        author: publisher,
    };
    assert!(endorsement_event(&key, &event_subject, &[], "").is_err());
    assert!(endorsement_event(&key, &Subject::Publisher(key.public_key()), &[], "").is_err());
}

#[test]
fn reports_are_nip56_reports_the_score_counts() {
    let key = operator();
    let publisher = Keys::generate().public_key();
    let hex = publisher.to_hex();
    let by_key = report_event(&key, &Subject::Publisher(publisher), Report::Malware, "").unwrap();
    assert_eq!(by_key.kind, Kind::Reporting);
    assert_eq!(by_key.kind.as_u16(), 1984);
    assert_eq!(raw(&by_key), vec![vec!["p", hex.as_str(), "malware"]]);

    let app = Subject::App {
        publisher,
        app_id: "notes".into(),
    };
    let by_app = report_event(&key, &app, Report::Spam, "fake").unwrap();
    assert_eq!(
        raw(&by_app),
        vec![
            vec!["p", hex.as_str(), "spam"],
            vec!["a", &format!("30078:{hex}:archy:app:notes")],
        ]
    );
    assert_eq!(by_app.content, "fake");

    let listing = EventId::all_zeros();
    let by_event = report_event(
        &key,
        &Subject::Event {
            id: listing,
            author: publisher,
        },
        Report::Other,
        "",
    )
    .unwrap();
    assert_eq!(
        raw(&by_event),
        vec![
            vec!["e", &listing.to_hex(), "other"],
            vec!["p", hex.as_str()],
        ]
    );

    // Each lowers a followed publisher's score by its type's weight.
    for (report, expected, reason) in [
        (&by_key, 0, "reported as malware by operator key"),
        (&by_app, 0, "reported as spam by operator key"),
        (&by_event, 30, "reported as other by operator key"),
    ] {
        let mut inputs = TrustInputs::new();
        inputs
            .add_event(&test_support::follows(key.keys(), &[publisher], 1))
            .unwrap();
        inputs.add_event(report).unwrap();
        let score = inputs.score(&[key.public_key()], &publisher, &ScoreConfig::default());
        assert_eq!(score.score, expected, "{:?}", score.explanation);
        assert!(
            score
                .explanation
                .iter()
                .any(|t| t.reason.starts_with(reason)),
            "{:?}",
            score.explanation
        );
    }

    assert_eq!(parse_report(" Malware ").unwrap(), Report::Malware);
    let err = parse_report("rude").unwrap_err().to_string();
    assert!(
        err.contains("rude") && err.contains("impersonation"),
        "{err}"
    );
    assert!(
        report_event(
            &key,
            &Subject::Publisher(key.public_key()),
            Report::Spam,
            ""
        )
        .is_err()
    );
}

async fn score_on(relays: &[String], key: &OperatorKey, publisher: &PublicKey) -> (u8, String) {
    let fetched = fetch_trust_events(
        relays,
        &[key.public_key()],
        &[*publisher],
        &crate::TrustFetchLimits::default(),
        TIMEOUT,
    )
    .await
    .unwrap();
    let score = fetched
        .inputs
        .score(&[key.public_key()], publisher, &ScoreConfig::default());
    let why: Vec<String> = score
        .explanation
        .iter()
        .map(|t| format!("{:+} {}", t.points, t.reason))
        .collect();
    (score.score, why.join("; "))
}

/// The whole vouching path through a real relay: a publisher scores 0 until the operator
/// follows it; the follow keeps a follow another client made with the same key; an
/// endorsement raises the score and a report lowers it.
#[tokio::test]
async fn vouching_through_a_relay_moves_the_score_and_keeps_the_contact_list_whole() {
    let (_relay, url) = relay().await;
    let relays = vec![url.clone()];
    let key = operator();
    let dev = crate::DeveloperIdentity::from_mnemonic(OPERATOR, "", 4).unwrap();
    let publisher = dev.nostr_keys().public_key();
    let listing = test_support::publication_event_at(
        dev.did_key(),
        dev.nostr_keys(),
        "notes",
        "1.0.0",
        Timestamp::now().as_secs() - 10,
    );
    crate::publish(&listing, &relays).await.unwrap();

    let (before, why) = score_on(&relays, &key, &publisher).await;
    assert_eq!(before, 0, "{why}");
    assert!(why.contains("no follow path"), "{why}");

    // Another client (a phone, say) follows a friend with the same key.
    let friend = Keys::generate().public_key();
    let elsewhere = foreign_list(&key, &[(friend, "friend")], Timestamp::now().as_secs() - 60);
    crate::publish(&elsewhere, &relays).await.unwrap();

    let change = FollowChange {
        follow: &[publisher],
        unfollow: &[],
        local: None,
        force: false,
    };
    let outcome = update_follows(&key, &relays, change, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(outcome.change.added, vec![publisher]);
    assert_eq!(outcome.change.follows, 2);
    assert!(
        outcome.fetched.iter().all(|r| r.ok),
        "{:?}",
        outcome.fetched
    );
    assert_eq!(outcome.published.len(), 1);
    assert!(outcome.published[0].ok, "{:?}", outcome.published);
    let on_relay = fetch_contact_list(&relays, &key.public_key(), TIMEOUT)
        .await
        .unwrap()
        .newest
        .unwrap();
    assert_eq!(Some(on_relay.id), outcome.event.as_ref().map(|e| e.id));
    let mut expected = raw(&elsewhere);
    expected.push(vec!["p".into(), publisher.to_hex()]);
    assert_eq!(
        raw(&on_relay),
        expected,
        "the friend followed elsewhere survives"
    );
    assert_eq!(on_relay.content, elsewhere.content);

    let (followed, why) = score_on(&relays, &key, &publisher).await;
    assert_eq!(followed, 50, "{why}");
    assert!(why.contains("+50 followed by operator key"), "{why}");

    let endorse = endorsement_event(&key, &Subject::Publisher(publisher), &[], "").unwrap();
    let accepted = publish_claim(&endorse, &relays, TIMEOUT).await.unwrap();
    assert!(accepted[0].ok);
    let (endorsed, why) = score_on(&relays, &key, &publisher).await;
    assert_eq!(endorsed, 70, "{why}");

    let report = report_event(
        &key,
        &Subject::Event {
            id: listing.id,
            author: publisher,
        },
        Report::Other,
        "does not do what it says",
    )
    .unwrap();
    publish_claim(&report, &relays, TIMEOUT).await.unwrap();
    let (reported, why) = score_on(&relays, &key, &publisher).await;
    assert_eq!(reported, 50, "{why}");
    assert!(
        why.contains("-20 reported as other by operator key"),
        "{why}"
    );

    // Unfollowing takes the follow away again and keeps the friend.
    let change = FollowChange {
        follow: &[],
        unfollow: &[publisher],
        local: outcome.event.as_ref(),
        force: false,
    };
    let outcome = update_follows(&key, &relays, change, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(outcome.change.removed, vec![publisher]);
    assert_eq!(raw(outcome.event.as_ref().unwrap()), raw(&elsewhere));
}

/// With no relay answering, a follow publishes nothing (it could drop follows made
/// elsewhere) unless forced; a dead relay beside a live one costs only its own answer.
#[tokio::test]
async fn a_follow_refuses_when_no_relay_answers_and_reports_each_relay() {
    let key = operator();
    let publisher = Keys::generate().public_key();
    let dead = dead_relay();
    let change = FollowChange {
        follow: &[publisher],
        unfollow: &[],
        local: None,
        force: false,
    };
    let err = update_follows(&key, std::slice::from_ref(&dead), change, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, VouchError::NoAnswer(_)), "{err}");
    assert!(err.to_string().contains(&dead), "{err}");
    let forced = FollowChange {
        force: true,
        ..change
    };
    let err = update_follows(&key, std::slice::from_ref(&dead), forced, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, VouchError::NoneAccepted(_)), "{err}");
    assert!(matches!(
        update_follows(&key, &[], change, TIMEOUT).await,
        Err(VouchError::NoRelays)
    ));

    // With the local copy as the base when forced: nothing of it is lost either.
    let (_relay, url) = relay().await;
    let friend = Keys::generate().public_key();
    let local = foreign_list(&key, &[(friend, "friend")], Timestamp::now().as_secs() - 5);
    let both = vec![url.clone(), dead.clone()];
    let outcome = update_follows(
        &key,
        &both,
        FollowChange {
            local: Some(&local),
            ..change
        },
        TIMEOUT,
    )
    .await
    .unwrap();
    let by_relay = |list: &[RelayOutcome], relay: &str| {
        list.iter()
            .find(|o| o.relay.trim_end_matches('/') == relay.trim_end_matches('/'))
            .cloned()
            .unwrap_or_else(|| panic!("{relay} missing from {list:?}"))
    };
    assert!(by_relay(&outcome.fetched, &url).ok);
    assert!(!by_relay(&outcome.fetched, &dead).ok);
    assert!(by_relay(&outcome.published, &url).ok);
    let failed = by_relay(&outcome.published, &dead);
    assert!(!failed.ok && !failed.message.is_empty(), "{failed:?}");
    assert_eq!(outcome.change.follows, 2, "the local copy's follow is kept");
}

/// A relay on loopback answers a REQ within microseconds: the list must be read every time,
/// not only when the client registered its subscription before the answer came (a
/// long-lived subscription in nostr-relay-pool 0.44 is registered after its REQ is sent,
/// and the events of an answer that beats it are dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_list_is_read_however_fast_the_relay_answers() {
    let (_relay, url) = relay().await;
    let relays = vec![url];
    let key = operator();
    let friend = Keys::generate().public_key();
    let list = foreign_list(&key, &[(friend, "friend")], Timestamp::now().as_secs() - 60);
    crate::publish(&list, &relays).await.unwrap();
    for attempt in 0..20 {
        let fetched = fetch_contact_list(&relays, &key.public_key(), TIMEOUT)
            .await
            .unwrap();
        assert!(fetched.answered(), "{:?}", fetched.relays);
        assert_eq!(
            fetched.newest.map(|e| e.id),
            Some(list.id),
            "attempt {attempt}: the relay's list was not read"
        );
    }
}
