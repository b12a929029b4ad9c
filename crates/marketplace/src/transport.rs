//! The websocket transport of every relay client here: it counts per relay the events that
//! arrive with a bad id or signature (or unreadable), which the client drops before any code
//! of ours sees them (without this count a lying relay would look merely quiet); it keeps
//! each relay's last connection failure, which the client reduces to a status; and it
//! verifies a `wss://` relay's certificate against the operator's CAs when set ([`RelayTls`]).
//! Outbox relays (named by publishers, [`crate::outbox`]) are dialed by our own connector
//! at the addresses their name resolves to *now*, each checked, never through a second
//! lookup of nostr-sdk's: what was checked is what is dialed.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_wsocket::futures_util::stream::SplitSink;
use async_wsocket::futures_util::{Sink, StreamExt as _, TryStreamExt as _};

use nostr_sdk::pool::ConnectionMode;
use nostr_sdk::pool::transport::error::TransportError;
use nostr_sdk::pool::transport::websocket::{
    DefaultWebsocketTransport, WebSocketSink, WebSocketStream, WebSocketTransport,
};
use nostr_sdk::prelude::*;
use nostr_sdk::util::BoxedFuture;

use crate::outbox::Resolver;
use crate::tls::RelayTls;

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

/// Why the last attempt to connect to a relay failed, by relay URL (without a trailing `/`);
/// cleared when a connection succeeds.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectFailures(Arc<Mutex<HashMap<String, String>>>);

impl ConnectFailures {
    pub(crate) fn of(&self, relay: &str) -> Option<String> {
        let relay = relay.trim_end_matches('/');
        self.0.lock().ok().and_then(|m| m.get(relay).cloned())
    }

    fn set(&self, relay: &str, why: Option<String>) {
        if let Ok(mut m) = self.0.lock() {
            match why {
                Some(why) => m.insert(relay.to_owned(), why),
                None => m.remove(relay),
            };
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct CountingTransport {
    pub(crate) forged: ForgedCounts,
    pub(crate) failures: ConnectFailures,
    /// Set: `wss://` relays are verified against these roots (the public ones and the
    /// operator's CAs) by our own connector; unset: nostr-sdk's (public roots).
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// Which relays may be dialed, and how (fail-closed: a relay named in neither way is
    /// refused at connect).
    pub(crate) allowed: AllowedRelays,
}

/// How a relay is dialed.
#[derive(Debug, Clone)]
enum Route {
    /// One of the operator's own relays (config): as nostr-sdk dials it, or with the
    /// operator's CAs.
    Operator,
    /// A relay a publisher named (outbox): its name resolved by the resolver at connect
    /// time, each address checked (public unless allowed), and only those dialed.
    Checked(Resolver, bool),
}

/// The relays this client may dial, by URL without a trailing `/`.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedRelays(Arc<Mutex<HashMap<String, Route>>>);

impl AllowedRelays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `relay` is one of the operator's own.
    pub(crate) fn operator(&self, relay: &str) {
        // An outbox route for the same URL stays: the stricter of the two wins.
        self.lock()
            .entry(relay.trim_end_matches('/').to_owned())
            .or_insert(Route::Operator);
    }

    /// From now on `relay` is dialed only at addresses `resolver` gives at connect time,
    /// each checked as public unless `allow_private`.
    pub(crate) fn checked(&self, relay: &str, resolver: Resolver, allow_private: bool) {
        self.lock().insert(
            relay.trim_end_matches('/').to_owned(),
            Route::Checked(resolver, allow_private),
        );
    }

    fn of(&self, relay: &str) -> Option<Route> {
        self.lock().get(relay.trim_end_matches('/')).cloned()
    }
}

impl CountingTransport {
    pub(crate) fn new(tls: Option<&RelayTls>) -> Self {
        Self {
            tls: tls.and_then(RelayTls::config),
            ..Self::default()
        }
    }

    async fn open(
        &self,
        url: &Url,
        mode: &ConnectionMode,
        timeout: Duration,
    ) -> Result<(WebSocketSink, WebSocketStream), TransportError> {
        let refuse = |why: String| Err(TransportError::backend(Refused(why)));
        match self.allowed.of(url.as_str()) {
            Some(Route::Checked(resolver, allow_private)) => {
                // Our connector dials directly; a proxy would resolve the name itself.
                if !matches!(mode, ConnectionMode::Direct) {
                    return refuse(format!(
                        "{url}: an outbox relay is dialed directly only, not through {mode:?}"
                    ));
                }
                let tls = self
                    .tls
                    .clone()
                    .unwrap_or_else(crate::tls::public_roots_config);
                connect_checked(url, &resolver, allow_private, tls, timeout).await
            }
            // Dialed by our own connector too, so the message bound of `handshake` holds;
            // through a proxy or Tor, async-wsocket's (whose bound is its own, 64 MiB).
            Some(Route::Operator) => match mode {
                ConnectionMode::Direct => {
                    let tls = self
                        .tls
                        .clone()
                        .unwrap_or_else(crate::tls::public_roots_config);
                    connect_tls(url, tls, timeout).await
                }
                _ => DefaultWebsocketTransport.connect(url, mode, timeout).await,
            },
            None => refuse(format!(
                "{url} is neither one of this node's relays nor a checked outbox relay"
            )),
        }
    }
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
            let relay = url.as_str().trim_end_matches('/').to_owned();
            let opened = self.open(url, mode, timeout).await;
            self.failures
                .set(&relay, opened.as_ref().err().map(connect_failure));
            let (sink, stream) = opened?;
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

/// A connection failure in words a person can act on: a certificate the node does not
/// trust says which setting decides it.
fn connect_failure(e: &TransportError) -> String {
    let text = e.to_string();
    if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") {
        format!(
            "{text} (the relay's TLS certificate does not chain to a CA this node trusts: \
             the public roots, or relay_ca_certs)"
        )
    } else {
        text
    }
}

/// TCP, then TLS verified against `config`'s roots (for `wss://`), then the websocket
/// handshake, within `timeout`; the socket is async-wsocket's, as nostr-sdk's own
/// transport makes it.
async fn connect_tls(
    url: &Url,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(WebSocketSink, WebSocketStream), TransportError> {
    let host = url
        .host_str()
        .ok_or_else(|| TransportError::backend(Refused("the URL has no host".into())))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| TransportError::backend(Refused("the URL has no port".into())))?;
    within(timeout, async {
        let tcp = tokio::net::TcpStream::connect(format!("{host}:{port}")).await?;
        handshake(url, tcp, config).await
    })
    .await
}

/// An outbox relay: its name resolved now by `resolver`, every address checked (public
/// unless `allow_private`), then TCP to those addresses in turn, TLS for `wss://` (SNI and
/// certificate for the name in the URL) and the websocket handshake, within `timeout`.
async fn connect_checked(
    url: &Url,
    resolver: &Resolver,
    allow_private: bool,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(WebSocketSink, WebSocketStream), TransportError> {
    within(timeout, async {
        let addrs = resolver
            .checked_addrs(url, allow_private, timeout)
            .await
            .map_err(|why| async_wsocket::Error::Io(std::io::Error::other(Refused(why))))?;
        let mut last = None;
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(tcp) => return handshake(url, tcp, config).await,
                Err(e) => last = Some(e),
            }
        }
        Err(async_wsocket::Error::Io(last.unwrap_or_else(|| {
            std::io::Error::other("no address to dial")
        })))
    })
    .await
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connection made by `connect` within `timeout`, split as nostr-sdk's transport hands
/// it on.
async fn within(
    timeout: Duration,
    connect: impl std::future::Future<Output = Result<Socket, async_wsocket::Error>>,
) -> Result<(WebSocketSink, WebSocketStream), TransportError> {
    let socket = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| TransportError::backend(async_wsocket::Error::Timeout))?
        .map_err(TransportError::backend)?;
    Ok(split(socket))
}

/// TLS (for `wss://`, verified against `config`) and the websocket handshake over `tcp`.
async fn handshake(
    url: &Url,
    tcp: tokio::net::TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> Result<Socket, async_wsocket::Error> {
    let connector = match url.scheme() {
        "wss" => tokio_tungstenite::Connector::Rustls(config),
        _ => tokio_tungstenite::Connector::Plain,
    };
    // A relay's message is bounded here, before it is buffered and parsed: nostr-sdk
    // drops events over 5 MB only after that, and the websocket's default let 64 MiB in.
    let limits = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_RELAY_MESSAGE))
        .max_frame_size(Some(MAX_RELAY_MESSAGE));
    let (socket, _) = tokio_tungstenite::client_async_tls_with_config(
        url.as_str(),
        tcp,
        Some(limits),
        Some(connector),
    )
    .await?;
    Ok(socket)
}

/// The largest websocket message taken from a relay: nostr-sdk's 5 MB for an event's JSON,
/// with room for the framing and whitespace around it.
const MAX_RELAY_MESSAGE: usize = 6 * 1024 * 1024;

/// The socket as nostr-sdk's transport hands it on: a sink and a stream.
fn split(socket: Socket) -> (WebSocketSink, WebSocketStream) {
    let (tx, rx) = async_wsocket::WebSocket::Tokio(socket).split();
    let sink: WebSocketSink = Box::new(TlsSink(tx));
    let stream: WebSocketStream = Box::pin(rx.map_err(TransportError::backend));
    (sink, stream)
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The sink half with nostr-sdk's error type (mapped per call, as its own transport does).
struct TlsSink(SplitSink<async_wsocket::WebSocket, async_wsocket::Message>);

impl Sink<async_wsocket::Message> for TlsSink {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_ready(cx)
            .map_err(TransportError::backend)
    }

    fn start_send(
        mut self: Pin<&mut Self>,
        item: async_wsocket::Message,
    ) -> Result<(), Self::Error> {
        Pin::new(&mut self.0)
            .start_send(item)
            .map_err(TransportError::backend)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_flush(cx)
            .map_err(TransportError::backend)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_close(cx)
            .map_err(TransportError::backend)
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
