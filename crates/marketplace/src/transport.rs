//! The websocket transport of discovery's client, counting per relay the events that arrive
//! with a bad id or signature (or unreadable). The client drops those before any code of
//! ours sees them; without this count a lying relay would look merely quiet.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr_sdk::pool::ConnectionMode;
use nostr_sdk::pool::transport::error::TransportError;
use nostr_sdk::pool::transport::websocket::{
    DefaultWebsocketTransport, WebSocketSink, WebSocketStream, WebSocketTransport,
};
use nostr_sdk::prelude::*;
use nostr_sdk::util::BoxedFuture;

/// Forged ids remembered per relay, so an event sent again (pages overlap by a second)
/// counts once; past this, every frame counts.
const IDS_KEPT: usize = 100_000;

#[derive(Debug, Default)]
struct Forged {
    count: usize,
    ids: HashSet<String>,
}

/// Forged or unreadable events by relay URL (without a trailing `/`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ForgedCounts(Arc<Mutex<HashMap<String, Forged>>>);

impl ForgedCounts {
    /// Relays are named with or without a trailing `/`, as the client prints them.
    pub(crate) fn of(&self, relay: &str) -> usize {
        let relay = relay.trim_end_matches('/');
        self.0
            .lock()
            .map_or(0, |m| m.get(relay).map_or(0, |f| f.count))
    }

    /// One more forged event from `relay`; `id` is the id it claims, when readable.
    fn count(&self, relay: &str, id: Option<String>) {
        let Ok(mut m) = self.0.lock() else {
            return;
        };
        let f = m.entry(relay.to_owned()).or_default();
        let new = match id {
            Some(id) if f.ids.len() < IDS_KEPT => f.ids.insert(id),
            Some(id) => !f.ids.contains(&id),
            None => true,
        };
        f.count += usize::from(new);
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct CountingTransport {
    pub(crate) forged: ForgedCounts,
}

impl WebSocketTransport for CountingTransport {
    fn support_ping(&self) -> bool {
        DefaultWebsocketTransport.support_ping()
    }

    fn connect<'a>(
        &'a self,
        url: &'a Url,
        mode: &'a ConnectionMode,
        timeout: Duration,
    ) -> BoxedFuture<'a, Result<(WebSocketSink, WebSocketStream), TransportError>> {
        Box::pin(async move {
            let (sink, stream) = DefaultWebsocketTransport
                .connect(url, mode, timeout)
                .await?;
            let relay = url.as_str().trim_end_matches('/').to_owned();
            let forged = self.forged.clone();
            let stream = stream.inspect(move |message| {
                if let Ok(message) = message
                    && let Some(text) = message.as_text()
                    && let Err(id) = event_checks(text)
                {
                    forged.count(&relay, id);
                }
            });
            Ok((sink, Box::pin(stream) as WebSocketStream))
        })
    }
}

/// An error for an `EVENT` message whose event is unreadable or fails NIP-01 (id,
/// signature), with the id it claims when it has one; Ok for anything else.
fn event_checks(text: &str) -> Result<(), Option<String>> {
    // Cheap test first: only EVENT messages are parsed.
    let is_event = text
        .trim_start()
        .strip_prefix('[')
        .is_some_and(|rest| rest.trim_start().starts_with("\"EVENT\""));
    if !is_event {
        return Ok(());
    }
    match RelayMessage::from_json(text) {
        Ok(RelayMessage::Event { event, .. }) => {
            event.verify().map_err(|_| Some(event.id.to_hex()))
        }
        _ => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_that_fail_nip01_are_counted() {
        let keys = Keys::generate();
        let good = EventBuilder::text_note("hi").sign_with_keys(&keys).unwrap();
        let message =
            |e: &Event| RelayMessage::event(SubscriptionId::new("s"), e.clone()).as_json();
        assert_eq!(event_checks(&message(&good)), Ok(()));
        let mut tampered = good.clone();
        tampered.content.push('!');
        assert_eq!(
            event_checks(&message(&tampered)),
            Err(Some(good.id.to_hex()))
        );
        assert_eq!(event_checks(r#"["EVENT","s",{"id":"nope"}]"#), Err(None));
        assert_eq!(event_checks(r#"["EOSE","s"]"#), Ok(()));
        assert_eq!(event_checks(r#"["NOTICE","EVENT"]"#), Ok(()));

        // The same forgery sent twice counts once; unreadable ones each time.
        let counts = ForgedCounts::default();
        counts.count("r", Some("a".into()));
        counts.count("r", Some("a".into()));
        counts.count("r", None);
        counts.count("r", None);
        assert_eq!((counts.of("r"), counts.of("other")), (3, 0));
    }
}
