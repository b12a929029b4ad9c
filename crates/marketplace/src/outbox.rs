//! The outbox model (NIP-65): a publisher announces the relays it writes to in a kind-10002
//! event, and a node fetches that publisher's publications from them too. Relay URLs in such
//! an event are the publisher's words, so they are hostile input: only `ws`/`wss`, at most
//! [`MAX_RELAY_URL_BYTES`], no userinfo, query or fragment, and no loopback, private,
//! link-local or otherwise non-public address unless the operator allows it. A name is
//! resolved when the plan is made (to refuse it early, with a reason) and again when the
//! relay is dialed, and the connection goes to the addresses that second check passed, never
//! to a fresh lookup: a name that answers a public address to the first question and the
//! node's LAN to the next (DNS rebinding) reaches nothing ([`Resolver`], the transport). Only publishers the caller names (the node: those the
//! operator follows, or whose score passes its gate) are looked up, and at most
//! [`OutboxLimits::per_publisher`] relays each and [`OutboxLimits::total`] in all are used.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use nostr_sdk::nips::nip65::RelayMetadata;
use nostr_sdk::nostr::types::url::Host as UrlHost;
use nostr_sdk::prelude::*;
use tokio::sync::Semaphore;

use crate::{DeveloperIdentity, Error};

/// The longest relay URL taken from an event.
pub const MAX_RELAY_URL_BYTES: usize = 256;

/// `r` tags read from one relay list; the rest are ignored.
const MAX_TAGS_READ: usize = 50;

/// Refusals kept per pass (the rest are counted in [`OutboxPlan::refused_total`]).
const MAX_REFUSALS_KEPT: usize = 50;

/// Bounds on the outbox relays a node uses in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Extra relays used per publisher (besides the node's own relays).
    pub per_publisher: usize,
    /// Extra relays used in one pass, all publishers together.
    pub total: usize,
    /// Publishers whose relay lists are asked for in one pass (the first named).
    pub max_publishers: usize,
    /// Take relays on loopback, private, link-local or other non-public addresses (tests,
    /// a relay on the operator's LAN). Off by default.
    pub allow_private: bool,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            per_publisher: 2,
            total: 8,
            max_publishers: 100,
            allow_private: false,
        }
    }
}

/// What a resolver answers: the addresses of a name, or why there are none.
pub type Resolved = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;

/// How outbox relays' host names become addresses: the system's resolver, or one of the
/// caller's (tests, a node with its own DNS). Every address it gives is checked before use.
#[derive(Clone)]
pub struct Resolver(Arc<dyn Fn(String, u16) -> Resolved + Send + Sync>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::system()
    }
}

/// System lookups outstanding at once, at most ([`Resolver::system`]).
const MAX_SYSTEM_LOOKUPS: usize = 8;

impl Resolver {
    /// The system's resolver (`getaddrinfo`, through tokio), with at most
    /// [`MAX_SYSTEM_LOOKUPS`] lookups outstanding ([`Resolver::bounded`]). Each lookup holds
    /// a blocking thread until the system resolver gives up, tens of seconds after the
    /// caller's deadline when a name's servers never answer, and relay names are
    /// publishers' words: unbounded, names that hang would pile up threads in the blocking
    /// pool the node's file I/O shares. The places are the process's, shared by every
    /// resolver this makes (a node makes one per discovery pass).
    pub fn system() -> Self {
        static PLACES: LazyLock<Arc<Semaphore>> =
            LazyLock::new(|| Arc::new(Semaphore::new(MAX_SYSTEM_LOOKUPS)));
        Self::sharing(PLACES.clone(), MAX_SYSTEM_LOOKUPS, |name, port| {
            Box::pin(async move { Ok(tokio::net::lookup_host((name, port)).await?.collect()) })
        })
    }

    /// `lookup`, with at most `max` lookups outstanding: each runs to its end on a task of
    /// its own and holds its place until then, even after its caller stopped waiting; one
    /// more waits for a place (within its caller's deadline, as the lookup itself).
    pub fn bounded(
        max: usize,
        lookup: impl Fn(String, u16) -> Resolved + Send + Sync + 'static,
    ) -> Self {
        Self::sharing(Arc::new(Semaphore::new(max)), max, lookup)
    }

    /// [`Resolver::bounded`], with `max` places taken from `places`.
    fn sharing(
        places: Arc<Semaphore>,
        max: usize,
        lookup: impl Fn(String, u16) -> Resolved + Send + Sync + 'static,
    ) -> Self {
        let lookup = Arc::new(lookup);
        Self::new(move |name, port| {
            let (places, lookup) = (places.clone(), lookup.clone());
            Box::pin(async move {
                let place = places
                    .acquire_owned()
                    .await
                    .map_err(|_| std::io::Error::other("the resolver was closed"))?;
                let running = tokio::spawn(async move {
                    let answer = lookup(name, port).await;
                    drop(place);
                    answer
                });
                match running.await {
                    Ok(answer) => answer,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => Err(std::io::Error::other(format!(
                        "the lookup was stopped ({e}); {max} may run at once"
                    ))),
                }
            })
        })
    }

    /// A resolver answering with `lookup(name, port)`.
    pub fn new(lookup: impl Fn(String, u16) -> Resolved + Send + Sync + 'static) -> Self {
        Self(Arc::new(lookup))
    }

    /// The addresses a relay URL may be dialed at, each checked: an IP literal itself, a
    /// name resolved within `timeout`; unless `allow_private`, any non-public address
    /// refuses the whole URL (a name with one private answer is not trusted for the rest).
    pub(crate) async fn checked_addrs(
        &self,
        url: &Url,
        allow_private: bool,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, String> {
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let (name, addrs) = match url.host().ok_or("the URL has no host")? {
            UrlHost::Ipv4(ip) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
            UrlHost::Ipv6(ip) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
            UrlHost::Domain(name) => {
                let lookup = (self.0)(name.to_owned(), port);
                let addrs = tokio::time::timeout(timeout, lookup)
                    .await
                    .map_err(|_| format!("{name} did not resolve within {}s", timeout.as_secs()))?
                    .map_err(|e| format!("{name} does not resolve: {e}"))?;
                (name.to_owned(), addrs)
            }
        };
        if addrs.is_empty() {
            return Err(format!("{name} resolves to no address"));
        }
        if !allow_private {
            for addr in &addrs {
                check_public(addr.ip()).map_err(|e| format!("{name} resolves to {e}"))?;
            }
        }
        Ok(addrs)
    }
}

/// A relay a publisher announced that the node does not use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRefusal {
    /// The publisher (hex).
    pub publisher: String,
    /// The URL as announced, cut to [`MAX_RELAY_URL_BYTES`] for display.
    pub relay: String,
    pub reason: String,
}

/// Which extra relays a pass uses, for whom, and what it refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxPlan {
    /// Relay URL → the publishers fetched there.
    pub relays: BTreeMap<String, Vec<PublicKey>>,
    /// The first refusals.
    pub refused: Vec<OutboxRefusal>,
    pub refused_total: usize,
}

impl OutboxPlan {
    fn refuse(&mut self, publisher: &PublicKey, relay: &str, reason: String) {
        self.refused_total += 1;
        if self.refused.len() < MAX_REFUSALS_KEPT {
            let mut shown = relay.to_owned();
            if shown.len() > MAX_RELAY_URL_BYTES {
                let mut cut = MAX_RELAY_URL_BYTES;
                while !shown.is_char_boundary(cut) {
                    cut -= 1;
                }
                shown.truncate(cut);
                shown.push('…');
            }
            self.refused.push(OutboxRefusal {
                publisher: publisher.to_hex(),
                relay: shown,
                reason,
            });
        }
    }
}

/// The kind-10002 event announcing `write` as the developer's write relays, keeping every
/// other entry of `previous` (the newest list the relays hold, made by any client of the
/// key): a relay listed for reading only becomes read and write. `None` when `previous`
/// already lists them all for writing (nothing to send). Dated after `previous`.
pub fn relay_list_event(
    identity: &DeveloperIdentity,
    write: &[String],
    previous: Option<&Event>,
) -> Result<Option<Event>, Error> {
    let keys = identity.nostr_keys();
    let mut entries: Vec<(RelayUrl, Option<RelayMetadata>)> = Vec::new();
    if let Some(previous) = previous {
        for (url, marker) in nostr_sdk::nips::nip65::extract_relay_list(previous) {
            entries.push((url.clone(), *marker));
        }
    }
    let mut changed = previous.is_none();
    for raw in write {
        let url = RelayUrl::parse(raw).map_err(|e| Error::Event(format!("relay {raw}: {e}")))?;
        match entries.iter_mut().find(|(u, _)| *u == url) {
            Some((_, marker @ Some(RelayMetadata::Read))) => {
                *marker = None;
                changed = true;
            }
            Some(_) => {}
            None => {
                entries.push((url, Some(RelayMetadata::Write)));
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    let mut builder = EventBuilder::relay_list(entries);
    if let Some(previous) = previous {
        let at = Timestamp::now().max(previous.created_at + 1);
        builder = builder.custom_created_at(at);
    }
    builder
        .sign_with_keys(keys)
        .map(Some)
        .map_err(|e| Error::Event(format!("signing the relay list: {e}")))
}

/// The newest kind-10002 event of each author among `events`, signature checked.
pub fn newest_relay_lists(events: &[Event]) -> HashMap<PublicKey, Event> {
    let mut newest: HashMap<PublicKey, Event> = HashMap::new();
    for e in events {
        if e.kind != Kind::RelayList || e.verify().is_err() {
            continue;
        }
        let newer = newest
            .get(&e.pubkey)
            .is_none_or(|old| (e.created_at, e.id) > (old.created_at, old.id));
        if newer {
            newest.insert(e.pubkey, e.clone());
        }
    }
    newest
}

/// The relays a list names for writing (`r` tags unmarked or marked `write`), as written,
/// from its first [`MAX_TAGS_READ`] `r` tags.
pub fn write_relays(list: &Event) -> Vec<String> {
    list.tags
        .iter()
        .map(Tag::as_slice)
        .filter(|t| t.first().is_some_and(|k| k == "r"))
        .take(MAX_TAGS_READ)
        .filter(|t| t.len() >= 2 && t.get(2).is_none_or(|m| m == "write"))
        .map(|t| t[1].clone())
        .collect()
}

/// A relay URL from an event, checked: `ws`/`wss`, at most [`MAX_RELAY_URL_BYTES`], a
/// host, no userinfo, query or fragment, and (unless `allow_private`) no host that is a
/// loopback, private, link-local or other non-public address, or a `localhost` name.
pub fn check_relay_url(raw: &str, allow_private: bool) -> Result<RelayUrl, String> {
    if raw.len() > MAX_RELAY_URL_BYTES {
        return Err(format!("longer than {MAX_RELAY_URL_BYTES} bytes"));
    }
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("scheme {:?} is not ws or wss", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries credentials (userinfo)".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("carries a query or fragment".into());
    }
    let host = url.host().ok_or("has no host")?;
    if !allow_private {
        match host {
            UrlHost::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err("names localhost (not allowed: outbox_allow_private)".into());
                }
            }
            UrlHost::Ipv4(ip) => check_public(IpAddr::V4(ip))?,
            UrlHost::Ipv6(ip) => check_public(IpAddr::V6(ip))?,
        }
    }
    RelayUrl::parse(url.as_str()).map_err(|e| e.to_string())
}

/// Refuses an address that is not on the public internet.
pub(crate) fn check_public(ip: IpAddr) -> Result<(), String> {
    if is_private(ip) {
        Err(format!(
            "{ip} is a loopback, private or otherwise non-public address (not allowed: outbox_allow_private)"
        ))
    } else {
        Ok(())
    }
}

/// Not on the public internet: the special-purpose ranges of RFC 6890 and its updates,
/// and IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo),
/// judged by the address they carry or refused when it cannot be told.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_private(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let o = v6.octets();
            let embedded =
                |at: usize| std::net::Ipv4Addr::new(o[at], o[at + 1], o[at + 2], o[at + 3]);
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_private(v4);
            }
            // ::a.b.c.d (IPv4-compatible, deprecated) and ::1, :: themselves.
            if s[..6] == [0; 6] {
                return v6.is_loopback() || v6.is_unspecified() || v4_private(embedded(12));
            }
            // NAT64 (64:ff9b::/96 well-known, 64:ff9b:1::/48 local-use).
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return v4_private(embedded(12));
            }
            if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
                return true;
            }
            // 6to4 carries the IPv4 address in bits 16..48.
            if s[0] == 0x2002 {
                return v4_private(embedded(2));
            }
            v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] == 0) // Teredo: the far end is a relay's choice
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        }
    }
}

fn v4_private(v4: std::net::Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240
}

/// Resolves a relay's host name within `timeout` and refuses it when any address it
/// resolves to is not public (unless `allow_private`). IP literals were checked already.
async fn check_resolved(
    url: &RelayUrl,
    allow_private: bool,
    resolver: &Resolver,
    timeout: Duration,
) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let url = Url::parse(url.as_str()).map_err(|e| format!("not a URL: {e}"))?;
    resolver
        .checked_addrs(&url, allow_private, timeout)
        .await
        .map(|_| ())
}

/// Chooses the extra relays of a pass from the publishers' newest relay lists: for each
/// publisher of `eligible` in order (the others' lists are ignored), its write relays that
/// pass [`check_relay_url`] and resolve to public addresses, skipping those in `configured`
/// (already asked), within [`OutboxLimits::per_publisher`] and [`OutboxLimits::total`].
pub async fn plan_outbox(
    lists: &HashMap<PublicKey, Event>,
    eligible: &[PublicKey],
    configured: &[String],
    limits: &OutboxLimits,
    resolver: &Resolver,
    timeout: Duration,
) -> OutboxPlan {
    let configured: HashSet<RelayUrl> = configured
        .iter()
        .filter_map(|u| RelayUrl::parse(u).ok())
        .collect();
    let mut plan = OutboxPlan::default();
    let mut resolved: HashMap<RelayUrl, Result<(), String>> = HashMap::new();
    let mut keys: HashMap<RelayUrl, String> = HashMap::new();
    for publisher in eligible.iter().take(limits.max_publishers) {
        let Some(list) = lists.get(publisher) else {
            continue;
        };
        let mut used = 0usize;
        for raw in write_relays(list) {
            let url = match check_relay_url(&raw, limits.allow_private) {
                Ok(url) => url,
                Err(why) => {
                    plan.refuse(publisher, &raw, why);
                    continue;
                }
            };
            if configured.contains(&url) {
                continue;
            }
            // One key per relay however it is written (`ws://a` and `ws://a/` are one).
            let key = keys
                .entry(url.clone())
                .or_insert_with(|| url.to_string())
                .clone();
            if plan.relays.get(&key).is_some_and(|p| p.contains(publisher)) {
                continue;
            }
            if used >= limits.per_publisher {
                plan.refuse(
                    publisher,
                    &raw,
                    format!(
                        "over the bound of {} relays per publisher",
                        limits.per_publisher
                    ),
                );
                continue;
            }
            if !plan.relays.contains_key(&key) && plan.relays.len() >= limits.total {
                plan.refuse(
                    publisher,
                    &raw,
                    format!("over the bound of {} outbox relays in all", limits.total),
                );
                continue;
            }
            if !resolved.contains_key(&url) {
                let checked = check_resolved(&url, limits.allow_private, resolver, timeout).await;
                resolved.insert(url.clone(), checked);
            }
            if let Some(Err(why)) = resolved.get(&url) {
                plan.refuse(publisher, &raw, why.clone());
                continue;
            }
            plan.relays.entry(key).or_default().push(*publisher);
            used += 1;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lookups that hang keep their places past their callers' deadlines; one more is not
    /// started but waits for a place, within its own deadline, and starts when one frees.
    #[tokio::test]
    async fn hung_lookups_hold_their_places_and_one_more_waits() {
        let (release, released) = tokio::sync::watch::channel(false);
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let resolver = {
            let started = started.clone();
            Resolver::bounded(2, move |_, _| {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut released = released.clone();
                Box::pin(async move {
                    released.wait_for(|r| *r).await.ok();
                    Ok(vec![SocketAddr::from(([1, 1, 1, 1], 443))])
                })
            })
        };
        let started_now = || started.load(std::sync::atomic::Ordering::SeqCst);
        let url = Url::parse("wss://hangs.example").unwrap();
        for _ in 0..3 {
            let e = resolver
                .checked_addrs(&url, false, Duration::from_millis(100))
                .await
                .unwrap_err();
            assert!(e.contains("did not resolve within"), "{e}");
        }
        assert_eq!(
            started_now(),
            2,
            "the third lookup started beside two hung ones"
        );
        let waiting = tokio::spawn({
            let (resolver, url) = (resolver.clone(), url.clone());
            async move {
                resolver
                    .checked_addrs(&url, false, Duration::from_secs(30))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(started_now(), 2);
        release.send_replace(true);
        let answered = waiting.await.unwrap();
        assert_eq!(answered, Ok(vec![SocketAddr::from(([1, 1, 1, 1], 443))]));
        assert_eq!(started_now(), 3);
    }

    fn list(keys: &Keys, tags: &[&[&str]]) -> Event {
        EventBuilder::new(Kind::RelayList, "")
            .tags(tags.iter().map(|t| Tag::parse(t.iter().copied()).unwrap()))
            .sign_with_keys(keys)
            .unwrap()
    }

    #[test]
    fn hostile_relay_urls_are_refused() {
        let long = format!("wss://{}.example/", "a".repeat(300));
        for (url, why) in [
            ("https://relay.example", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("wss://user:pw@relay.example", "credentials"),
            ("wss://relay.example/?x=1", "query"),
            ("wss://relay.example/#f", "query or fragment"),
            (long.as_str(), "longer than"),
            ("ws://127.0.0.1:7000", "non-public"),
            ("ws://10.1.2.3", "non-public"),
            ("ws://192.168.1.1", "non-public"),
            ("ws://169.254.169.254", "non-public"),
            ("ws://0.0.0.0", "non-public"),
            ("ws://100.64.0.1", "non-public"),
            ("ws://[::1]:7000", "non-public"),
            ("ws://[fd00::1]", "non-public"),
            ("ws://[fe80::1]", "non-public"),
            ("ws://[::ffff:127.0.0.1]", "non-public"),
            // IPv6 forms that carry a private IPv4 address, and the rarer ranges.
            ("ws://[::10.0.0.1]", "non-public"),
            ("ws://[64:ff9b::a00:1]", "non-public"),
            ("ws://[64:ff9b:1::1]", "non-public"),
            ("ws://[2002:c0a8:101::1]", "non-public"),
            ("ws://[2001:0:4136:e378::1]", "non-public"),
            ("ws://[fec0::1]", "non-public"),
            ("ws://192.0.0.8", "non-public"),
            ("ws://198.18.0.1", "non-public"),
            ("ws://localhost:7000", "localhost"),
            ("ws://relay.localhost", "localhost"),
        ] {
            let err = check_relay_url(url, false).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(check_relay_url("wss://relay.example", false).is_ok());
        assert!(check_relay_url("ws://8.8.8.8:7000", false).is_ok());
        // The same forms carrying a public address are public.
        assert!(check_relay_url("ws://[64:ff9b::808:808]", false).is_ok());
        assert!(check_relay_url("ws://[2002:808:808::1]", false).is_ok());
        assert!(check_relay_url("ws://[2606:4700::1111]", false).is_ok());
        // Allowed by the operator: loopback and private hosts, never the rest.
        assert!(check_relay_url("ws://127.0.0.1:7000", true).is_ok());
        assert!(check_relay_url("ws://localhost:7000", true).is_ok());
        assert!(check_relay_url("wss://user@relay.example", true).is_err());
        assert!(check_relay_url(&long, true).is_err());
    }

    #[test]
    fn write_relays_are_the_unmarked_and_write_ones() {
        let keys = Keys::generate();
        let event = list(
            &keys,
            &[
                &["r", "wss://both.example"],
                &["r", "wss://w.example", "write"],
                &["r", "wss://r.example", "read"],
                &["r", "wss://odd.example", "sideways"],
                &["p", "wss://not-r.example"],
            ],
        );
        assert_eq!(
            write_relays(&event),
            ["wss://both.example", "wss://w.example"]
        );
    }

    /// Per publisher and in all, at most the bound; refused URLs are said; relays the node
    /// already uses and lists of publishers not named are not counted.
    #[tokio::test]
    async fn the_plan_is_bounded_per_publisher_and_in_all() {
        let t = Duration::from_secs(1);
        let (a, b, stranger) = (Keys::generate(), Keys::generate(), Keys::generate());
        let urls = |n: usize, p: &str| -> Vec<String> {
            (0..n).map(|i| format!("ws://8.8.{p}.{i}:7000")).collect()
        };
        let tags = |urls: &[String]| -> Vec<Vec<String>> {
            urls.iter().map(|u| vec!["r".into(), u.clone()]).collect()
        };
        let make = |keys: &Keys, urls: &[String]| {
            EventBuilder::new(Kind::RelayList, "")
                .tags(tags(urls).into_iter().map(|t| Tag::parse(t).unwrap()))
                .sign_with_keys(keys)
                .unwrap()
        };
        let mut a_urls = vec!["ws://node.example:1".to_owned(), "ws://127.0.0.1:9".into()];
        a_urls.extend(urls(5, "1"));
        // The same relay spelled twice counts once.
        a_urls.insert(3, "ws://8.8.1.0:7000/".into());
        let events = vec![
            make(&a, &a_urls),
            make(&b, &urls(5, "2")),
            make(&stranger, &urls(5, "3")),
        ];
        let lists = newest_relay_lists(&events);
        let limits = OutboxLimits {
            per_publisher: 2,
            total: 3,
            ..OutboxLimits::default()
        };
        let configured = ["ws://node.example:1".to_owned()];
        let plan = plan_outbox(
            &lists,
            &[a.public_key(), b.public_key()],
            &configured,
            &limits,
            &Resolver::system(),
            t,
        )
        .await;
        let used: Vec<&String> = plan.relays.keys().collect();
        assert_eq!(
            used,
            [
                "ws://8.8.1.0:7000/",
                "ws://8.8.1.1:7000/",
                "ws://8.8.2.0:7000/"
            ]
        );
        assert_eq!(plan.relays["ws://8.8.2.0:7000/"], [b.public_key()]);
        let reasons: Vec<&str> = plan.refused.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].contains("non-public"), "{reasons:?}");
        assert_eq!(
            reasons
                .iter()
                .filter(|r| r.contains("per publisher"))
                .count(),
            3
        );
        assert_eq!(
            reasons.iter().filter(|r| r.contains("in all")).count(),
            4,
            "{reasons:?}"
        );
        assert!(
            plan.refused
                .iter()
                .all(|r| r.publisher != stranger.public_key().to_hex())
        );
    }

    #[test]
    fn a_new_list_keeps_the_old_entries_and_is_dated_after_it() {
        let dev = DeveloperIdentity::from_mnemonic(
            "leader monkey parrot ring guide accident before fence cannon height naive bean",
            "",
            0,
        )
        .unwrap();
        let old = EventBuilder::new(Kind::RelayList, "")
            .tags([
                Tag::parse(["r", "wss://read.example", "read"]).unwrap(),
                Tag::parse(["r", "wss://other.example"]).unwrap(),
            ])
            .custom_created_at(Timestamp::now() + 100)
            .sign_with_keys(dev.nostr_keys())
            .unwrap();
        let new = relay_list_event(
            &dev,
            &["wss://read.example".into(), "wss://new.example".into()],
            Some(&old),
        )
        .unwrap()
        .unwrap();
        assert!(new.created_at > old.created_at);
        let entries: Vec<(String, Option<RelayMetadata>)> =
            nostr_sdk::nips::nip65::extract_relay_list(&new)
                .map(|(u, m)| (u.to_string(), *m))
                .collect();
        assert_eq!(
            entries,
            [
                ("wss://read.example".to_owned(), None),
                ("wss://other.example".to_owned(), None),
                ("wss://new.example".to_owned(), Some(RelayMetadata::Write)),
            ]
        );
        assert!(
            relay_list_event(&dev, &["wss://other.example".into()], Some(&new))
                .unwrap()
                .is_none()
        );
    }
}
