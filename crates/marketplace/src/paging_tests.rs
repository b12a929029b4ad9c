//! Paging with `until` against relays that read it either way: NIP-01 makes `until`
//! inclusive, some relays (PyPI's `nostr-relay` 1.14) read it as exclusive. A small relay
//! here serves a fixed set of events over websocket, newest first, `limit` at most, with
//! `until` read as told, and counts the requests.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_wsocket::futures_util::{SinkExt as _, StreamExt as _};
use nostr_sdk::prelude::*;
use tokio_tungstenite::tungstenite::Message;

use crate::nostr::{connected_client, walk};

const TIMEOUT: Duration = Duration::from_secs(3);

/// A websocket relay on loopback that answers each REQ with the messages `answer` makes
/// of its subscription id and filters (EOSE included where wanted); its URL.
async fn scripted_relay(
    answer: impl Fn(SubscriptionId, Vec<Filter>) -> Vec<String> + Send + Sync + 'static,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(message)) = rx.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let Ok(ClientMessage::Req {
                        subscription_id,
                        filters,
                    }) = ClientMessage::from_json(text.as_str())
                    else {
                        continue;
                    };
                    let filters = filters.into_iter().map(|f| f.into_owned()).collect();
                    for m in answer(subscription_id.into_owned(), filters) {
                        if tx.send(Message::text(m)).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    url
}

/// A relay of `events` that reads `until` as exclusive or inclusive; its URL and the
/// count of REQs it answered.
async fn relay(events: Vec<Event>, exclusive: bool) -> (String, Arc<AtomicUsize>) {
    let reqs = Arc::new(AtomicUsize::new(0));
    let counted = reqs.clone();
    let url = scripted_relay(move |id, filters| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut messages: Vec<String> = filters
            .iter()
            .flat_map(|filter| serve(&events, filter, exclusive))
            .map(|event| RelayMessage::event(id.clone(), event).as_json())
            .collect();
        messages.push(RelayMessage::eose(id).as_json());
        messages
    })
    .await;
    (url, reqs)
}

/// What a relay sends for `filter`: newest first (ties by id), at most `limit`.
fn serve(events: &[Event], filter: &Filter, exclusive: bool) -> Vec<Event> {
    let mut filter = filter.clone();
    if exclusive && let Some(until) = filter.until {
        match until.as_secs().checked_sub(1) {
            Some(before) => filter.until = Some(Timestamp::from_secs(before)),
            None => return Vec::new(),
        }
    }
    let mut out: Vec<Event> = events
        .iter()
        .filter(|e| filter.match_event(e, MatchEventOptions::default()))
        .cloned()
        .collect();
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    out.truncate(filter.limit.unwrap_or(usize::MAX));
    out
}

/// `count` notes, several to a second: second `1_000 + i / per_second`.
fn notes(count: usize, per_second: usize) -> Vec<Event> {
    let keys = Keys::generate();
    (0..count)
        .map(|i| {
            EventBuilder::text_note(format!("note {i}"))
                .custom_created_at(Timestamp::from_secs(1_000 + (i / per_second) as u64))
                .sign_with_keys(&keys)
                .unwrap()
        })
        .collect()
}

/// Walks `url` for text notes with pages of `page_size`: the ids taken and whether the
/// walk says it was cut.
async fn walk_all(url: &str, page_size: usize, budget: usize) -> (HashSet<EventId>, bool) {
    let relays = [url.to_owned()];
    let client = connected_client(&relays[..]).await.unwrap();
    client.wait_for_connection(TIMEOUT).await;
    let relay = RelayUrl::parse(url).unwrap();
    let mut taken: HashSet<EventId> = HashSet::new();
    let mut sink = |page: &[Event]| page.iter().filter(|e| taken.insert(e.id)).count();
    let filter = Filter::new().kind(Kind::TextNote);
    let cut = walk(
        &client, &relay, &filter, page_size, budget, TIMEOUT, &mut sink,
    )
    .await
    .unwrap();
    client.disconnect().await;
    (taken, cut)
}

/// Pages end inside a second (3 notes to a second, pages of 4): every note is taken from a
/// relay that reads `until` either way, the walk says it is complete, and it ends.
#[tokio::test]
async fn no_event_is_skipped_whether_until_is_inclusive_or_exclusive() {
    let events = notes(40, 3);
    let all: HashSet<EventId> = events.iter().map(|e| e.id).collect();
    for exclusive in [true, false] {
        let (url, reqs) = relay(events.clone(), exclusive).await;
        let (taken, cut) = walk_all(&url, 4, 10_000).await;
        assert_eq!(
            taken.len(),
            all.len(),
            "exclusive {exclusive}: {} of {} taken",
            taken.len(),
            all.len()
        );
        assert!(!cut, "exclusive {exclusive}");
        // Each page costs at most two requests (the page and its last second whole).
        let reqs = reqs.load(Ordering::SeqCst);
        assert!(
            reqs <= 2 * (40 / 2 + 2),
            "exclusive {exclusive}: {reqs} requests"
        );

        // A walk whose budget exceeds what the relay holds is complete, not cut (one
        // replaceable event per author, asked for with a budget of two).
        let (url, _) = relay(notes(1, 1), exclusive).await;
        let (taken, cut) = walk_all(&url, 500, 2).await;
        assert_eq!((taken.len(), cut), (1, false), "exclusive {exclusive}");
    }
}

/// A second holding more events than a page: the walk ends and says it may have missed
/// some, on either kind of relay; and the budget still bounds it.
#[tokio::test]
async fn a_second_denser_than_a_page_ends_the_walk_and_says_so() {
    let mut events = notes(10, 10);
    events.extend(notes(6, 2).into_iter().map(|mut e| {
        // Older seconds, re-signed below.
        e.created_at = Timestamp::from_secs(e.created_at.as_secs() - 500);
        e
    }));
    let keys = Keys::generate();
    let events: Vec<Event> = events
        .into_iter()
        .map(|e| {
            EventBuilder::text_note(e.content)
                .custom_created_at(e.created_at)
                .sign_with_keys(&keys)
                .unwrap()
        })
        .collect();
    for exclusive in [true, false] {
        let (url, _) = relay(events.clone(), exclusive).await;
        let (taken, cut) = walk_all(&url, 4, 10_000).await;
        assert!(cut, "exclusive {exclusive}");
        // The older seconds are all there: the dense one did not stop the walk.
        let older = events
            .iter()
            .filter(|e| e.created_at.as_secs() < 1_000)
            .filter(|e| taken.contains(&e.id))
            .count();
        assert_eq!(older, 6, "exclusive {exclusive}");
        let (taken, cut) = walk_all(&url, 4, 5).await;
        assert!(cut && taken.len() <= 5 + 4, "exclusive {exclusive}");
    }
}

/// A relay's message is bounded as it arrives (6 MiB: nostr-sdk's 5 MB event and room):
/// one that sends 7 MiB before a valid event loses the connection, and the event never
/// arrives. (Through async-wsocket's own transport, 64 MiB were buffered and parsed, and
/// the event after them taken.)
#[tokio::test]
async fn a_relay_message_over_the_bound_ends_the_connection() {
    let note = notes(1, 1).remove(0);
    let url = scripted_relay(move |id, _| {
        let big = format!(r#"["NOTICE","{}"]"#, "x".repeat(7 * 1024 * 1024));
        let event = RelayMessage::event(id.clone(), note.clone()).as_json();
        vec![big, event, RelayMessage::eose(id).as_json()]
    })
    .await;
    let relays = [url.clone()];
    let client = connected_client(&relays[..]).await.unwrap();
    client.wait_for_connection(TIMEOUT).await;
    let relay = RelayUrl::parse(&url).unwrap();
    let mut taken = 0;
    let mut sink = |page: &[Event]| {
        taken += page.len();
        page.len()
    };
    let filter = Filter::new().kind(Kind::TextNote);
    let walked = walk(&client, &relay, &filter, 10, 100, TIMEOUT, &mut sink).await;
    client.disconnect().await;
    assert_eq!(
        taken, 0,
        "the event after a 7 MiB message was taken ({walked:?})"
    );
}
