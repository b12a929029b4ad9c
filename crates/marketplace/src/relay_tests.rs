//! Publish and discover through real Nostr relays over websocket (nostr-relay-builder's
//! LocalRelay, in process).

use std::time::Duration;

use archy_registry::Publication;
use nostr_relay_builder::prelude::*;
use nostr_sdk::{Client, PublicKey};

use super::*;
use crate::test_support::relay;

const TIMEOUT: Duration = Duration::from_secs(3);
const DEV: &str = "leader monkey parrot ring guide accident before fence cannon height naive bean";

/// A publication of "notes" by `dev`, binding `nostr` (by default the developer's own key).
fn publication(dev: &DeveloperIdentity, version: &str, nostr: Option<PublicKey>) -> Publication {
    let nostr = nostr.unwrap_or_else(|| dev.nostr_keys().public_key());
    crate::test_support::publication(dev.did_key(), &nostr, "notes", version)
}

fn event_at(dev: &DeveloperIdentity, envelope: &archy_registry::Envelope, at: u64) -> Event {
    crate::test_support::envelope_event_at(envelope, dev.nostr_keys(), "notes", at)
}

#[tokio::test]
async fn publish_then_discover_through_a_relay() {
    let (_relay, url) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let envelope = publication(&dev, "1.0.0", None)
        .sign(dev.did_key())
        .unwrap();
    let event = publication_event(&dev, &envelope, "notes").unwrap();
    let accepted = publish(&event, std::slice::from_ref(&url)).await.unwrap();
    assert_eq!(accepted.len(), 1);

    let found = discover(&[url], TIMEOUT).await.unwrap();
    assert!(found.rejected.is_empty(), "{:?}", found.rejected);
    assert_eq!(found.listings.len(), 1);
    let l = &found.listings[0];
    assert_eq!(
        (l.app_id.as_str(), l.author.as_str()),
        ("notes", dev.nostr_public_hex().as_str())
    );
    assert_eq!(l.publication.did(), dev.did_public_key());
    assert_eq!(
        l.publication.publication().manifest.version.to_string(),
        "1.0.0"
    );
}

#[tokio::test]
async fn mismatched_did_and_tampered_manifest_are_rejected_with_reasons() {
    let (_relay, url) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let other = DeveloperIdentity::from_mnemonic(DEV, "", 1).unwrap();

    // The DID binds `other`'s Nostr key, but `dev` signs the event.
    let wrong_binding = publication(&dev, "1.0.0", Some(other.nostr_keys().public_key()))
        .sign(dev.did_key())
        .unwrap();
    publish(
        &publication_event(&dev, &wrong_binding, "notes").unwrap(),
        std::slice::from_ref(&url),
    )
    .await
    .unwrap();

    // A valid Nostr event around a manifest changed after the DID signed it.
    let mut tampered = publication(&other, "1.0.0", None)
        .sign(other.did_key())
        .unwrap();
    let mut evil = publication(&other, "1.0.0", None);
    evil.manifest.containers[0].privileged = true;
    use base64::Engine as _;
    tampered.payload =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&evil).unwrap());
    publish(
        &publication_event(&other, &tampered, "notes").unwrap(),
        std::slice::from_ref(&url),
    )
    .await
    .unwrap();

    let found = discover(&[url], TIMEOUT).await.unwrap();
    assert!(found.listings.is_empty(), "{:?}", found.listings);
    let reasons: Vec<&str> = found.rejected.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("binds Nostr key")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("0 valid signature")),
        "{reasons:?}"
    );
}

#[test]
fn forged_nostr_signatures_and_ids_are_rejected() {
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let envelope = publication(&dev, "1.0.0", None)
        .sign(dev.did_key())
        .unwrap();
    let good = publication_event(&dev, &envelope, "notes").unwrap();
    assert!(verify_event(&good).is_ok());
    // Same id and signature, other content.
    let mut forged = good.clone();
    forged.content.push(' ');
    assert!(
        verify_event(&forged)
            .unwrap_err()
            .to_string()
            .contains("NIP-01")
    );
    // Someone else's key claimed as author.
    let mut stolen = good;
    stolen.pubkey = DeveloperIdentity::from_mnemonic(DEV, "", 2)
        .unwrap()
        .nostr_keys()
        .public_key();
    assert!(
        verify_event(&stolen)
            .unwrap_err()
            .to_string()
            .contains("NIP-01")
    );
}

#[tokio::test]
async fn newest_version_wins_across_relays_and_old_replays() {
    let (_a, url_a) = relay().await;
    let (_b, url_b) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let old = event_at(
        &dev,
        &publication(&dev, "1.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        1_700_000_000,
    );
    let new = event_at(
        &dev,
        &publication(&dev, "2.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        1_700_000_100,
    );
    // Relay A is stale (only the old one); relay B got the new one, then the old one replayed.
    publish(&old, std::slice::from_ref(&url_a)).await.unwrap();
    publish(&new, std::slice::from_ref(&url_b)).await.unwrap();
    let _ = publish(&old, std::slice::from_ref(&url_b)).await;
    let found = discover(&[url_a, url_b], TIMEOUT).await.unwrap();
    assert_eq!(found.listings.len(), 1);
    assert_eq!(
        found.listings[0]
            .publication
            .publication()
            .manifest
            .version
            .to_string(),
        "2.0.0"
    );
}

#[tokio::test]
async fn deleted_publications_disappear() {
    let (_relay, url) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let event = publication_event(
        &dev,
        &publication(&dev, "1.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        "notes",
    )
    .unwrap();
    publish(&event, std::slice::from_ref(&url)).await.unwrap();
    assert_eq!(
        discover(std::slice::from_ref(&url), TIMEOUT)
            .await
            .unwrap()
            .listings
            .len(),
        1
    );
    let deletion = EventBuilder::delete(EventDeletionRequest::new().id(event.id))
        .sign_with_keys(dev.nostr_keys())
        .unwrap();
    publish(&deletion, std::slice::from_ref(&url))
        .await
        .unwrap();
    let found = discover(&[url], TIMEOUT).await.unwrap();
    assert!(
        found.listings.is_empty(),
        "a deleted publication is still listed"
    );
}

#[tokio::test]
async fn a_dead_relay_does_not_stop_discovery() {
    let (_relay, url) = relay().await;
    let dead = format!("ws://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let event = publication_event(
        &dev,
        &publication(&dev, "1.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        "notes",
    )
    .unwrap();
    publish(&event, &[url.clone(), dead.clone()]).await.unwrap();
    let found = discover(&[dead, url], TIMEOUT).await.unwrap();
    assert_eq!(found.listings.len(), 1);
}

/// A relay whose store the test can also write to directly, with a rate limit high enough
/// for a flood to land through the websocket (LocalRelay allows 60 events a minute per
/// connection by default).
async fn open_relay() -> (LocalRelay, String, std::sync::Arc<dyn NostrDatabase>) {
    let db: std::sync::Arc<dyn NostrDatabase> =
        std::sync::Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: Some(100_000),
        }));
    let relay = LocalRelay::new(
        RelayBuilder::default()
            .addr([127, 0, 0, 1].into())
            .database(db.clone())
            .rate_limit(RateLimit {
                max_reqs: 500,
                notes_per_minute: 1_000_000,
            }),
    );
    relay.run().await.unwrap();
    let url = relay.url().await.to_string();
    (relay, url, db)
}

/// Sends events through one connection, without waiting for each OK, then waits until the
/// relay holds `expect` events of `filter` (bounded).
async fn flood(
    url: &str,
    db: &dyn NostrDatabase,
    events: Vec<Event>,
    filter: Filter,
    expect: usize,
) {
    let client = Client::default();
    client.add_relay(url).await.unwrap();
    client.connect().await;
    client.wait_for_connection(TIMEOUT).await;
    for chunk in events.chunks(1000) {
        let msgs = chunk
            .iter()
            .map(|e| ClientMessage::event(e.clone()))
            .collect();
        client.batch_msg_to([url], msgs).await.unwrap();
    }
    for _ in 0..600 {
        if db.count(filter.clone()).await.unwrap() >= expect {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        db.count(filter).await.unwrap(),
        expect,
        "the flood did not land"
    );
    client.disconnect().await;
}

fn spam_event(keys: &Keys, d: &str, content: String, at: u64) -> Event {
    EventBuilder::new(Kind::Custom(MANIFEST_EVENT_KIND), content)
        .tags([Tag::identifier(d), Tag::hashtag(APP_HASHTAG)])
        .custom_created_at(Timestamp::from_secs(at))
        .sign_with_keys(keys)
        .unwrap()
}

/// 10,000 spam publications, all newer than one legitimate publication: 2,000 of garbage
/// from one key, 2,000 of garbage from 2,000 keys, 2,000 DID-signed envelopes binding
/// another Nostr key, 2,000 with a foreign d tag (all validly signed, sent through the
/// websocket), and 2,000 with forged signatures, some claiming the legitimate publisher's
/// key, written straight into the relay's store among the others (the relay itself refuses
/// them). Discovery finds the legitimate listing with bounded bookkeeping; with a budget too
/// small for the flood, it still finds it when the publisher is named; a relay that hides
/// it behind a page of forgeries costs its share only, and is reported.
#[tokio::test]
async fn a_spam_flood_does_not_hide_a_legitimate_publication() {
    let (_relay, url, db) = open_relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let t0 = Timestamp::now().as_secs() - 50_000;
    let legit = event_at(
        &dev,
        &publication(&dev, "1.0.0", None)
            .sign(dev.did_key())
            .unwrap(),
        t0,
    );
    publish(&legit, std::slice::from_ref(&url)).await.unwrap();

    // Valid signatures at t0+1, t0+2, …; forgeries at every fifth second among them.
    let mut at = t0;
    let mut next = || {
        at += 1;
        if (at - t0).is_multiple_of(5) {
            at += 1;
        }
        at
    };
    let mut spam = Vec::new();
    let loud = Keys::generate();
    for i in 0..2000 {
        spam.push(spam_event(
            &loud,
            &format!("archy:app:loud{i}"),
            format!("garbage {i}"),
            next(),
        ));
    }
    for i in 0..2000 {
        let content = if i % 2 == 0 {
            "{\"payloadType\":1}".into()
        } else {
            "x".repeat(i % 300)
        };
        spam.push(spam_event(
            &Keys::generate(),
            "archy:app:junk",
            content,
            next(),
        ));
    }
    let binder_keys: Vec<Keys> = (0..200).map(|_| Keys::generate()).collect();
    let did = archy_registry::SecretKey::from_bytes(&[3; 32]);
    let envelope =
        crate::test_support::publication(&did, &dev.nostr_keys().public_key(), "notes", "6.6.6")
            .sign(&did)
            .unwrap();
    let bound_elsewhere = String::from_utf8(envelope.to_bytes()).unwrap();
    for i in 0..2000 {
        spam.push(spam_event(
            &binder_keys[i % 200],
            &format!("archy:app:notes{}", i / 200),
            bound_elsewhere.clone(),
            next(),
        ));
    }
    for i in 0..2000 {
        spam.push(spam_event(
            &Keys::generate(),
            &format!("other:{i}"),
            "{}".into(),
            next(),
        ));
    }
    let all_spam = Filter::new().kind(Kind::Custom(MANIFEST_EVENT_KIND));
    flood(&url, db.as_ref(), spam, all_spam.clone(), 8001).await;

    let forge = |i: u64, at: u64, claim_publisher: bool| {
        let mut e = spam_event(
            &Keys::generate(),
            &format!("archy:app:forged{i}"),
            "{}".into(),
            at,
        );
        if claim_publisher {
            // Claims the legitimate publisher's key (the id no longer matches).
            e.pubkey = dev.nostr_keys().public_key();
        } else if i.is_multiple_of(2) {
            e.content.push(' ');
        } else {
            e.sig =
                Keys::generate().sign_schnorr(&nostr_sdk::secp256k1::Message::from_digest([7; 32]));
        }
        e
    };
    let forged: Vec<Event> = (0..2000)
        .map(|i| forge(i, t0 + 5 * (i + 1), false))
        .collect();
    assert!(
        publish(&forged[0], std::slice::from_ref(&url))
            .await
            .is_err(),
        "the relay verifies signatures itself"
    );
    for e in &forged {
        db.save_event(e).await.unwrap();
    }
    assert_eq!(db.count(all_spam.clone()).await.unwrap(), 10_001);

    let limits = DiscoveryLimits::default();
    let found = discover_with(std::slice::from_ref(&url), &[], &[], &limits, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(found.listings.len(), 1, "{:?}", found.rejected_by_reason);
    assert_eq!(found.listings[0].event_id, legit.id.to_hex());
    assert!(!found.truncated);
    assert!(found.relay_errors.is_empty(), "{:?}", found.relay_errors);
    // The relay's own account: every forgery counted once (pages overlap), every refusal
    // by reason.
    let [(_, report)]: [(&String, &RelayReport); 1] =
        found.relays.iter().collect::<Vec<_>>().try_into().unwrap();
    assert_eq!(report.forged, 2000, "{report:?}");
    assert_eq!((report.examined, report.rejected), (8001, 8000));
    assert_eq!(report.rejected_by_reason, found.rejected_by_reason);
    assert!(report.errors.is_empty());
    // Forged events never reach the collector (the client drops them); everything with a
    // valid signature is examined once and refused, counted by reason, a few kept verbatim.
    assert_eq!(found.examined, 8001);
    assert_eq!(found.rejected_total, 8000);
    assert_eq!(found.rejected.len(), limits.max_rejected_kept);
    let by = |r: &str| found.rejected_by_reason.get(r).copied().unwrap_or(0);
    assert_eq!(by("author-cap"), 2000 - limits.max_per_author);
    assert_eq!(by("publication"), limits.max_per_author + 2000);
    assert_eq!(by("key-binding"), 2000);
    assert_eq!(by("d-tag"), 2000);

    // A budget smaller than the flood: the open walk stops early and says so, and the
    // publisher the caller names is still found.
    let small = DiscoveryLimits {
        max_events_per_relay: 1000,
        ..DiscoveryLimits::default()
    };
    let blind = discover_with(std::slice::from_ref(&url), &[], &[], &small, TIMEOUT)
        .await
        .unwrap();
    assert!(blind.truncated);
    assert!(blind.examined <= 1000, "{}", blind.examined);
    assert!(blind.listings.is_empty());
    let named = discover_with(
        std::slice::from_ref(&url),
        &[dev.nostr_keys().public_key()],
        &[],
        &small,
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(named.listings.len(), 1);
    assert_eq!(named.listings[0].event_id, legit.id.to_hex());

    // A lying relay: the legitimate event under a solid block of forgeries that claim its
    // publisher's key. It hides the publication, as any relay can, and is reported; with
    // another relay the publication is found.
    let (_liar, liar_url, liar_db) = open_relay().await;
    liar_db.save_event(&legit).await.unwrap();
    let newest = Timestamp::now().as_secs();
    for i in 0..1000 {
        liar_db
            .save_event(&forge(i, newest - i, true))
            .await
            .unwrap();
    }
    let publisher = [dev.nostr_keys().public_key()];
    let alone = discover_with(
        std::slice::from_ref(&liar_url),
        &publisher,
        &[],
        &limits,
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(alone.listings.is_empty());
    assert!(!alone.relay_errors.is_empty());
    assert!(
        alone
            .relay_errors
            .iter()
            .all(|(_, e)| e.contains("no valid event")),
        "{:?}",
        alone.relay_errors
    );
    let both = discover_with(&[liar_url, url], &publisher, &[], &limits, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(both.listings.len(), 1);
}

async fn send_all(url: &str, events: &[Event]) {
    let client = Client::default();
    client.add_relay(url).await.unwrap();
    client.connect().await;
    client.wait_for_connection(TIMEOUT).await;
    for e in events {
        let out = client.send_event(e).await.unwrap();
        assert!(!out.success.is_empty(), "{:?}", out.failed);
    }
    client.disconnect().await;
}

/// Publish, discover, fetch the operator's web of trust from the relay, score.
#[tokio::test]
async fn publishers_are_scored_from_the_operators_web_of_trust_on_a_relay() {
    use crate::test_support::{endorse, follows, report};
    use nostr_sdk::nips::nip56::Report;

    let (_relay, url, _db) = open_relay().await;
    let devs: Vec<DeveloperIdentity> = (0..5)
        .map(|i| DeveloperIdentity::from_mnemonic(DEV, "", i).unwrap())
        .collect();
    for dev in &devs {
        let event = publication_event(
            dev,
            &publication(dev, "1.0.0", None).sign(dev.did_key()).unwrap(),
            "notes",
        )
        .unwrap();
        publish(&event, std::slice::from_ref(&url)).await.unwrap();
    }
    let [plain, reported, endorsed, sybil_reported, stranger] =
        [0, 1, 2, 3, 4].map(|i| devs[i].nostr_keys().public_key());

    let operator = Keys::generate();
    let friend = Keys::generate();
    let sybils: Vec<Keys> = (0..50).map(|_| Keys::generate()).collect();
    let sybil_pks: Vec<PublicKey> = sybils.iter().map(|k| k.public_key()).collect();
    let now = Timestamp::now().as_secs();
    let mut events = vec![
        follows(
            &operator,
            &[
                friend.public_key(),
                plain,
                reported,
                endorsed,
                sybil_reported,
            ],
            now,
        ),
        report(&friend, &reported, Report::Malware),
        endorse(&friend, &endorsed),
    ];
    for s in &sybils {
        events.push(follows(s, &sybil_pks, now));
        events.push(report(s, &sybil_reported, Report::Malware));
        events.push(endorse(s, &stranger));
    }
    send_all(&url, &events).await;

    let found = discover(std::slice::from_ref(&url), TIMEOUT).await.unwrap();
    assert_eq!(found.listings.len(), 5, "{:?}", found.rejected);
    let publishers: Vec<PublicKey> = found
        .listings
        .iter()
        .map(|l| PublicKey::from_hex(&l.author).unwrap())
        .collect();
    let fetched = fetch_trust_events(
        std::slice::from_ref(&url),
        &[operator.public_key()],
        &publishers,
        &TrustFetchLimits::default(),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(
        fetched.relay_errors.is_empty(),
        "{:?}",
        fetched.relay_errors
    );
    let mut inputs = fetched.inputs;
    // The sybils' reports are not even fetched (no path to their authors); counted
    // anyway, they weigh nothing.
    inputs.add_events(&events);

    let scores = inputs.scores(&[operator.public_key()], &ScoreConfig::default());
    let explain = |pk: &PublicKey| {
        let s = scores.score(pk);
        let text: Vec<String> = s
            .explanation
            .iter()
            .map(|t| format!("{:+} {}", t.points, t.reason))
            .collect();
        (s.score, text.join("; "))
    };
    let (p, why) = explain(&plain);
    assert_eq!(p, 50, "{why}");
    assert!(why.contains("followed by operator key npub1"), "{why}");
    assert!(
        why.contains("publishing for 0 days, 1 versions of 1 apps"),
        "{why}"
    );
    let (r, why) = explain(&reported);
    assert!(r < p, "{why}");
    assert!(why.contains("reported as malware by npub1"), "{why}");
    let (e, why) = explain(&endorsed);
    assert!(e > p, "{why}");
    assert!(why.contains("+10 endorsed by npub1"), "{why}");
    let (s, why) = explain(&sybil_reported);
    assert_eq!(s, p, "{why}");
    assert!(!why.contains("reported"), "{why}");
    let (u, why) = explain(&stranger);
    assert_eq!(u, 0, "{why}");
    assert!(why.contains("no follow path"), "{why}");
}

/// Two compliant relays; the developer withdraws the app (its coordinate and every version
/// known) on relay A only, while relay B still holds an older version. Discovery lists
/// nothing while it sees A, and with the withdrawal remembered, nothing from B alone either;
/// forgetting it brings the old version back, which is why a node keeps it. A deletion by
/// someone else withdraws nothing.
#[tokio::test]
async fn a_withdrawal_holds_against_a_lagging_relay() {
    let (_a, url_a) = relay().await;
    let (_b, url_b) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let t0 = Timestamp::now().as_secs() - 1_000;
    let signed = |version| {
        publication(&dev, version, None)
            .sign(dev.did_key())
            .unwrap()
    };
    let v1 = event_at(&dev, &signed("1.0.0"), t0);
    let v2 = event_at(&dev, &signed("2.0.0"), t0 + 100);
    publish(&v1, &[url_a.clone(), url_b.clone()]).await.unwrap();
    publish(&v2, std::slice::from_ref(&url_a)).await.unwrap();
    let both = [url_a.clone(), url_b.clone()];

    let found = discover(&both, TIMEOUT).await.unwrap();
    assert_eq!(found.listings.len(), 1);
    assert_eq!(found.listings[0].event_id, v2.id.to_hex());
    let mut seen: Vec<&str> = found.seen.iter().map(|s| s.version.as_str()).collect();
    seen.sort();
    assert_eq!(seen, ["1.0.0", "2.0.0"], "every version the relays hold");

    // Every version the relays hold can be named by id…
    let (held, errors) = own_publications(&both, &dev.nostr_keys().public_key(), "notes", TIMEOUT)
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let ids: Vec<EventId> = held.iter().map(|e| e.id).collect();
    assert_eq!(ids, [v2.id, v1.id]);
    // …but the developer withdraws while relay B is out of reach: only 2.0.0 is named by
    // id, and 1.0.0 on B is covered by the app's coordinate alone.
    let (held, _) = own_publications(
        std::slice::from_ref(&url_a),
        &dev.nostr_keys().public_key(),
        "notes",
        TIMEOUT,
    )
    .await
    .unwrap();
    let ids: Vec<EventId> = held.iter().map(|e| e.id).collect();
    assert_eq!(ids, [v2.id]);
    let withdrawal = withdrawal_event(dev.nostr_keys(), "notes", &ids).unwrap();
    let dead = format!("ws://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let report = publish_report(&withdrawal, &[url_a.clone(), dead.clone()]).await;
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    assert!(report.accepted[0].starts_with(&url_a), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].0.starts_with(&dead), "{report:?}");
    assert!(
        report.failed[0].1.contains("could not connect"),
        "{report:?}"
    );

    let found = discover(&both, TIMEOUT).await.unwrap();
    assert!(found.listings.is_empty(), "{:?}", found.listings);
    assert_eq!(found.withdrawn.len(), 1);
    assert_eq!(
        found.withdrawn[0].withdrawal.deletion,
        withdrawal.id.to_hex()
    );
    assert_eq!(found.deletions.len(), 1);

    // Relay A is gone; B never heard of the withdrawal.
    let lagging = std::slice::from_ref(&url_b);
    let limits = DiscoveryLimits::default();
    let remembered = discover_with(lagging, &[], &found.deletions, &limits, TIMEOUT)
        .await
        .unwrap();
    assert!(remembered.listings.is_empty(), "{:?}", remembered.listings);
    assert_eq!(remembered.withdrawn.len(), 1);
    let forgotten = discover_with(lagging, &[], &[], &limits, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(forgotten.listings.len(), 1, "the lagging relay's version");
    assert_eq!(forgotten.listings[0].event_id, v1.id.to_hex());

    // A stranger's deletion of the developer's version (by id, and by coordinate: a
    // compliant relay refuses the latter, a lying one could serve it) withdraws nothing.
    let stranger = Keys::generate();
    let foreign = EventBuilder::delete(
        EventDeletionRequest::new().id(v1.id).coordinate(
            Coordinate::new(
                Kind::Custom(MANIFEST_EVENT_KIND),
                dev.nostr_keys().public_key(),
            )
            .identifier("archy:app:notes"),
        ),
    )
    .sign_with_keys(&stranger)
    .unwrap();
    let ignored = discover_with(lagging, &[], &[foreign], &limits, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(ignored.listings.len(), 1);
    assert!(ignored.withdrawn.is_empty());
}

/// The outbox model on two real relays: the publisher publishes to relay B only and
/// announces B (NIP-65) on relay A; a pass on A alone finds it through B, and a withdrawal
/// sent to B alone is honoured. A publisher not named, announcing the same relay, is not
/// fetched there; with the default (strict) limits a loopback relay is refused.
#[tokio::test]
async fn a_publisher_is_found_on_the_relays_it_announces() {
    let (_a, a) = relay().await;
    let (_b, b) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let stranger = DeveloperIdentity::from_mnemonic(DEV, "", 1).unwrap();
    for who in [&dev, &stranger] {
        let envelope = publication(who, "1.0.0", None).sign(who.did_key()).unwrap();
        let event = publication_event(who, &envelope, "notes").unwrap();
        publish(&event, std::slice::from_ref(&b)).await.unwrap();
        let list = relay_list_event(who, std::slice::from_ref(&b), None)
            .unwrap()
            .unwrap();
        publish(&list, std::slice::from_ref(&a)).await.unwrap();
    }
    let only_a = std::slice::from_ref(&a);
    let limits = DiscoveryLimits::default();
    let named = [dev.nostr_keys().public_key()];

    let nothing = discover(only_a, TIMEOUT).await.unwrap();
    assert!(nothing.listings.is_empty());

    let loopback_ok = OutboxLimits {
        allow_private: true,
        ..OutboxLimits::default()
    };
    let system = Resolver::system();
    let outbox = Outbox {
        publishers: &named,
        limits: &loopback_ok,
        resolver: &system,
    };
    let found = discover_outbox(only_a, &[], &[], &limits, Some(outbox), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(found.listings.len(), 1, "{:?}", found.relay_errors);
    assert_eq!(found.listings[0].author, dev.nostr_public_hex());
    assert!(found.relay_errors.is_empty(), "{:?}", found.relay_errors);
    let b_key = b.trim_end_matches('/');
    let used: Vec<(&str, &[String])> = found
        .outbox
        .iter()
        .map(|(r, p)| (r.trim_end_matches('/'), p.as_slice()))
        .collect();
    assert_eq!(used, [(b_key, &[dev.nostr_public_hex()][..])]);
    let report = found
        .relays
        .iter()
        .find(|(r, _)| r.trim_end_matches('/') == b_key)
        .unwrap()
        .1;
    assert_eq!(report.examined, 1, "the stranger's event is not asked for");

    // Withdrawn on B only: the pass sees it there.
    let (held, _) = own_publications(
        std::slice::from_ref(&b),
        &dev.nostr_keys().public_key(),
        "notes",
        TIMEOUT,
    )
    .await
    .unwrap();
    let ids: Vec<EventId> = held.iter().map(|e| e.id).collect();
    let withdrawal = withdrawal_event(dev.nostr_keys(), "notes", &ids).unwrap();
    publish(&withdrawal, std::slice::from_ref(&b))
        .await
        .unwrap();
    let found = discover_outbox(only_a, &[], &[], &limits, Some(outbox), TIMEOUT)
        .await
        .unwrap();
    assert!(found.listings.is_empty());
    // The relay dropped the publication (NIP-09); the node keeps the request it found on B.
    assert!(found.deletions.iter().any(|d| d.id == withdrawal.id));

    // The default limits refuse a relay on loopback: nothing is fetched from B.
    let strict = OutboxLimits::default();
    let outbox = Outbox {
        publishers: &named,
        limits: &strict,
        resolver: &system,
    };
    let found = discover_outbox(only_a, &[], &[], &limits, Some(outbox), TIMEOUT)
        .await
        .unwrap();
    assert!(found.outbox.is_empty());
    assert!(found.deletions.is_empty() && found.listings.is_empty());
    assert_eq!(found.outbox_refused.len(), 1);
    assert!(
        found.outbox_refused[0].reason.contains("non-public"),
        "{:?}",
        found.outbox_refused
    );
}

/// An outbox relay named by a host name is dialed where the name resolves when the
/// connection is made, and that answer is what is checked: a name that gives a public
/// address to the plan's lookup and loopback to the next (DNS rebinding) is refused at
/// connect, naming the address, and nothing is fetched from the loopback relay behind it.
/// With private addresses allowed, the same name reaches that relay through our resolver
/// (the system cannot resolve `.invalid`), so the connection uses the checked answer.
#[tokio::test]
async fn an_outbox_relay_is_dialed_at_the_address_checked_at_connect() {
    let (_a, a) = relay().await;
    let (_b, b) = relay().await;
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let envelope = publication(&dev, "1.0.0", None)
        .sign(dev.did_key())
        .unwrap();
    let event = publication_event(&dev, &envelope, "notes").unwrap();
    publish(&event, std::slice::from_ref(&b)).await.unwrap();
    let b_url = Url::parse(&b).unwrap();
    let b_addr = std::net::SocketAddr::new(
        b_url.host_str().unwrap().parse().unwrap(),
        b_url.port().unwrap(),
    );
    let named_url = format!("ws://rebind.invalid:{}", b_addr.port());
    let list = relay_list_event(&dev, std::slice::from_ref(&named_url), None)
        .unwrap()
        .unwrap();
    publish(&list, std::slice::from_ref(&a)).await.unwrap();
    let only_a = std::slice::from_ref(&a);
    let named = [dev.nostr_keys().public_key()];
    let limits = DiscoveryLimits::default();

    // A public address to the first question, loopback after.
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let rebinding = Resolver::new(move |name, port| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            assert_eq!(name, "rebind.invalid");
            let ip: std::net::IpAddr = match n {
                0 => "8.8.8.8".parse().unwrap(),
                _ => "127.0.0.1".parse().unwrap(),
            };
            Ok(vec![std::net::SocketAddr::new(ip, port)])
        })
    });
    let strict = OutboxLimits::default();
    let outbox = Outbox {
        publishers: &named,
        limits: &strict,
        resolver: &rebinding,
    };
    let found = discover_outbox(only_a, &[], &[], &limits, Some(outbox), TIMEOUT)
        .await
        .unwrap();
    assert!(found.listings.is_empty(), "{:?}", found.listings);
    assert!(
        found.outbox_refused.is_empty(),
        "{:?}",
        found.outbox_refused
    );
    assert!(asked.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    let why = found
        .relay_errors
        .iter()
        .find(|(r, _)| r.contains("rebind.invalid"))
        .map(|(_, why)| why.clone())
        .unwrap_or_else(|| panic!("no error for the rebinding relay: {:?}", found.relay_errors));
    assert!(
        why.contains("resolves to 127.0.0.1") && why.contains("non-public"),
        "{why}"
    );

    // Private addresses allowed: the name reaches relay B at the address we resolved.
    let to_b = Resolver::new(move |_, _| Box::pin(async move { Ok(vec![b_addr]) }));
    let lenient = OutboxLimits {
        allow_private: true,
        ..OutboxLimits::default()
    };
    let outbox = Outbox {
        publishers: &named,
        limits: &lenient,
        resolver: &to_b,
    };
    let found = discover_outbox(only_a, &[], &[], &limits, Some(outbox), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(found.listings.len(), 1, "{:?}", found.relay_errors);
}

/// Fail-closed: a relay added to a client without saying whose it is (the operator's, or
/// a checked outbox relay) is never dialed, so a new code path cannot reach a publisher's
/// relay around the address check. The same relay added as the operator's connects.
#[tokio::test]
async fn a_relay_nobody_vouched_for_is_not_dialed() {
    let (_r, url) = relay().await;
    let client = crate::nostr::RelayClient::new(None);
    client.add_relay(url.as_str()).await.unwrap();
    assert!(
        client
            .try_connect_relay(url.as_str(), TIMEOUT)
            .await
            .is_err()
    );
    let relay = RelayUrl::parse(&url).unwrap();
    let why = client.why_down(&relay).await;
    assert!(
        why.contains("neither one of this node's relays nor a checked outbox relay"),
        "{why}"
    );
    let vouched = crate::nostr::RelayClient::new(None);
    vouched.add_operator_relay(url.as_str()).await.unwrap();
    vouched
        .try_connect_relay(url.as_str(), TIMEOUT)
        .await
        .unwrap();
}
