//! The operator's own voice on Nostr: a NIP-06 key the node holds, and the events it signs
//! to vouch for or against publishers.
//!
//! - **Follows** live in the operator's kind-3 contact list (NIP-02): one replaceable event
//!   that every client using the same key shares. It is therefore never built from scratch:
//!   [`update_follows`] first asks every relay for the newest copy, merges the change into
//!   it (tags, order and content kept; only the `p` tags named are added or removed), and
//!   refuses when no relay answered, unless forced, rather than overwrite follows made
//!   elsewhere with a partial list.
//! - **Endorsements** are NIP-32 labels (kind 1985) in the `archy` namespace:
//!   `["L","archy"]`, `["l","endorse","archy"]`, `["p",<publisher>]`, and for one app also
//!   `["a","30078:<publisher>:archy:app:<id>"]`.
//! - **Reports** are NIP-56 reports (kind 1984): `["p",<publisher>,<type>]`, or for one
//!   event `["e",<id>,<type>]` with `["p",<author>]`.
//!
//! Every event goes to each relay, and each relay's answer comes back ([`RelayOutcome`]).

use std::cmp::Reverse;
use std::collections::HashSet;
use std::time::Duration;

use nostr_sdk::nips::nip56::Report;
use nostr_sdk::prelude::*;
use serde::Serialize;

use crate::nostr::{connected_client, connected_relays};
use crate::tls::RelayList;
use crate::{DeveloperIdentity, manifest_d_tag};
use crate::{ENDORSE_LABEL, LABEL_NAMESPACE, MANIFEST_EVENT_KIND, MAX_FOLLOWS_PER_LIST};

/// Extra labels an endorsement may carry beside `endorse`.
pub const MAX_EXTRA_LABELS: usize = 8;
/// Bytes of a report's or endorsement's free-text comment.
pub const MAX_COMMENT_BYTES: usize = 1024;

/// Why vouching did not happen. Nothing was published unless the error says so.
#[derive(Debug, thiserror::Error)]
pub enum VouchError {
    #[error("operator key: {0}")]
    Key(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no relay is configured: set `relays` (node config or `PUT /v1/settings`)")]
    NoRelays,
    /// No relay answered the request for the current contact list: following now could
    /// drop follows made with this key elsewhere.
    #[error(
        "no relay answered for this key's current contact list ({}); publishing one now could \
         drop follows made with this key elsewhere: retry when a relay answers, or force it to \
         build on this node's own last copy",
        describe(.0)
    )]
    NoAnswer(Vec<RelayOutcome>),
    #[error("no relay accepted the event ({})", describe(.0))]
    NoneAccepted(Vec<RelayOutcome>),
    #[error("relay client: {0}")]
    Relay(String),
}

/// One relay's answer: to a request (did it answer in time) or to an event (did it take it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayOutcome {
    pub relay: String,
    pub ok: bool,
    /// The relay's own message, or why it could not be asked.
    pub message: String,
}

fn describe(outcomes: &[RelayOutcome]) -> String {
    if outcomes.is_empty() {
        return "no relay".into();
    }
    outcomes
        .iter()
        .map(|o| format!("{}: {}", o.relay, o.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The node operator's Nostr key (NIP-06, account 0, from a BIP39 mnemonic): the same key
/// any NIP-06 wallet or client derives from those words. The secret stays inside.
pub struct OperatorKey {
    keys: Keys,
}

impl OperatorKey {
    /// A new 24-word mnemonic from OS randomness.
    pub fn new_mnemonic() -> zeroize::Zeroizing<String> {
        DeveloperIdentity::new_mnemonic()
    }

    /// The key at `m/44'/1237'/0'/0/0`, no passphrase. Errors never quote the words.
    pub fn from_mnemonic(mnemonic: &str) -> Result<Self, VouchError> {
        let words =
            zeroize::Zeroizing::new(mnemonic.split_whitespace().collect::<Vec<_>>().join(" "));
        bip39::Mnemonic::parse_in(bip39::Language::English, words.as_str())
            .map_err(|e| VouchError::Key(format!("not a BIP39 mnemonic: {e}")))?;
        let keys = Keys::from_mnemonic(words.as_str(), None)
            .map_err(|_| VouchError::Key("cannot derive the NIP-06 key".into()))?;
        Ok(Self { keys })
    }

    pub fn public_key(&self) -> PublicKey {
        self.keys.public_key()
    }

    pub fn npub(&self) -> String {
        self.keys
            .public_key()
            .to_bech32()
            .unwrap_or_else(|_| self.keys.public_key().to_hex())
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorKey({})", self.keys.public_key().to_hex())
    }
}

/// What a contact-list change did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContactChange {
    /// Keys newly followed.
    pub added: Vec<PublicKey>,
    /// Keys no longer followed.
    pub removed: Vec<PublicKey>,
    /// Keys asked for that needed no change (already followed, or not followed).
    pub unchanged: Vec<PublicKey>,
    /// Keys the new list follows.
    pub follows: usize,
}

impl ContactChange {
    pub fn changed(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty())
    }
}

/// The contact list `base` (the newest known, if any) with `follow` added and `unfollow`
/// removed, signed by `key`. Every tag of `base` that is not an unfollowed `p` tag stays,
/// in order, with its relay hint and petname, and so does its content; new follows are
/// appended. The new list is dated after `base`, so relays replace it.
pub fn merge_contact_list(
    key: &OperatorKey,
    base: Option<&Event>,
    follow: &[PublicKey],
    unfollow: &[PublicKey],
    now: Timestamp,
) -> Result<(Event, ContactChange), VouchError> {
    let me = key.public_key();
    if let Some(base) = base {
        check_own_contact_list(base, &me)?;
    }
    if follow.contains(&me) {
        return Err(VouchError::Invalid(
            "this is the operator's own key: it is trusted fully already".into(),
        ));
    }
    if let Some(both) = follow.iter().find(|k| unfollow.contains(k)) {
        return Err(VouchError::Invalid(format!(
            "{} is both followed and unfollowed",
            both.to_hex()
        )));
    }
    let drop: HashSet<PublicKey> = unfollow.iter().copied().collect();
    let mut change = ContactChange::default();
    let mut followed: HashSet<PublicKey> = HashSet::new();
    let mut removed: HashSet<PublicKey> = HashSet::new();
    let mut tags: Vec<Tag> = Vec::new();
    for tag in base.map(|b| b.tags.iter()).into_iter().flatten() {
        match p_tag_key(tag) {
            Some(pk) if drop.contains(&pk) => {
                removed.insert(pk);
            }
            Some(pk) => {
                followed.insert(pk);
                tags.push(tag.clone());
            }
            None => tags.push(tag.clone()),
        }
    }
    for pk in unfollow {
        if removed.contains(pk) {
            change.removed.push(*pk);
        } else {
            change.unchanged.push(*pk);
        }
    }
    for pk in follow {
        if followed.insert(*pk) {
            tags.push(Tag::public_key(*pk));
            change.added.push(*pk);
        } else {
            change.unchanged.push(*pk);
        }
    }
    if followed.len() > MAX_FOLLOWS_PER_LIST {
        return Err(VouchError::Invalid(format!(
            "the contact list would follow {} keys, more than {MAX_FOLLOWS_PER_LIST}",
            followed.len()
        )));
    }
    change.follows = followed.len();
    let at = match base {
        Some(b) if b.created_at >= now => Timestamp::from_secs(b.created_at.as_secs() + 1),
        _ => now,
    };
    let content = base.map(|b| b.content.clone()).unwrap_or_default();
    let event = EventBuilder::new(Kind::ContactList, content)
        .tags(tags)
        .custom_created_at(at)
        .sign_with_keys(&key.keys)
        .map_err(|e| VouchError::Key(format!("signing the contact list: {e}")))?;
    Ok((event, change))
}

/// The key a `p` tag names, read raw (other clients add relay hints and petnames).
fn p_tag_key(tag: &Tag) -> Option<PublicKey> {
    match tag.as_slice() {
        [p, key, ..] if p == "p" => PublicKey::from_hex(key).ok(),
        _ => None,
    }
}

fn check_own_contact_list(event: &Event, me: &PublicKey) -> Result<(), VouchError> {
    if event.kind != Kind::ContactList || event.pubkey != *me {
        return Err(VouchError::Invalid(format!(
            "event {} is not this key's contact list",
            event.id
        )));
    }
    event
        .verify()
        .map_err(|e| VouchError::Invalid(format!("contact list {}: {e}", event.id)))
}

/// The newest valid contact list of `author` among `events` (NIP-01: the latest
/// `created_at`, the lowest id on a tie).
pub fn newest_contact_list<'a>(
    author: &PublicKey,
    events: impl IntoIterator<Item = &'a Event>,
) -> Option<&'a Event> {
    events
        .into_iter()
        .filter(|e| check_own_contact_list(e, author).is_ok())
        .max_by_key(|e| (e.created_at, Reverse(e.id)))
}

/// What the relays hold of one key's contact list.
#[derive(Debug, Default)]
pub struct ContactListFetch {
    /// The newest valid one any relay sent.
    pub newest: Option<Event>,
    /// Each relay: answered (EOSE) in time, or why not.
    pub relays: Vec<RelayOutcome>,
}

impl ContactListFetch {
    /// Whether any relay answered, even with nothing.
    pub fn answered(&self) -> bool {
        self.relays.iter().any(|r| r.ok)
    }
}

/// Asks every relay at once for `author`'s contact list; a relay has answered when it
/// ended its stored events (EOSE) within `timeout`. Only events `author` signed count.
pub async fn fetch_contact_list(
    relays: &(impl RelayList + ?Sized),
    author: &PublicKey,
    timeout: Duration,
) -> Result<ContactListFetch, VouchError> {
    let client = connected_client(relays)
        .await
        .map_err(|e| VouchError::Relay(e.to_string()))?;
    client.wait_for_connection(timeout).await;
    let mut down = Vec::new();
    let up = connected_relays(&client, &mut down).await;
    let mut out = ContactListFetch {
        newest: None,
        relays: down
            .into_iter()
            .map(|(relay, message)| RelayOutcome {
                relay,
                ok: false,
                message,
            })
            .collect(),
    };
    let filter = Filter::new()
        .kind(Kind::ContactList)
        .author(*author)
        .limit(4);
    // Listen first, then ask every relay, so one slow relay costs `timeout` once.
    let mut asked = Vec::new();
    for url in &up {
        let Ok(relay) = client.relay(url).await else {
            continue;
        };
        let notifications = relay.notifications();
        let id = SubscriptionId::generate();
        // Auto-closing on EOSE, not long-lived: nostr-relay-pool 0.44 sends a long-lived
        // REQ before it registers the subscription, so a fast relay's events arrive for an
        // unknown subscription and are dropped ("subscription not found"), and a list
        // another client published would be lost from the merge. An auto-closing one is
        // registered first.
        let once = SubscribeAutoCloseOptions::default()
            .exit_policy(ReqExitPolicy::ExitOnEOSE)
            .timeout(Some(timeout));
        match relay
            .subscribe_with_id(
                id.clone(),
                filter.clone(),
                SubscribeOptions::default().close_on(Some(once)),
            )
            .await
        {
            Ok(()) => asked.push((url.clone(), relay, notifications, id)),
            Err(e) => out.relays.push(RelayOutcome {
                relay: url.to_string(),
                ok: false,
                message: format!("request refused: {e}"),
            }),
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut events: Vec<Event> = Vec::new();
    for (url, relay, mut notifications, id) in asked {
        let outcome = loop {
            let next = tokio::time::timeout_at(deadline, notifications.recv()).await;
            let notification = match next {
                Err(_) => break Err(format!("no answer within {} s", timeout.as_secs())),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                    break Err("the connection closed".into());
                }
                Ok(Ok(n)) => n,
            };
            match notification {
                RelayNotification::Message {
                    message:
                        RelayMessage::Event {
                            subscription_id,
                            event,
                        },
                } if *subscription_id == id => events.push(event.into_owned()),
                RelayNotification::Message {
                    message: RelayMessage::EndOfStoredEvents(sid),
                } if *sid == id => break Ok(()),
                RelayNotification::Message {
                    message:
                        RelayMessage::Closed {
                            subscription_id,
                            message,
                        },
                } if *subscription_id == id => break Err(format!("request closed: {message}")),
                RelayNotification::RelayStatus {
                    status:
                        status @ (RelayStatus::Disconnected
                        | RelayStatus::Terminated
                        | RelayStatus::Banned),
                } => {
                    break Err(format!("disconnected ({status})"));
                }
                RelayNotification::Shutdown => break Err("the client shut down".into()),
                _ => {}
            }
        };
        let _ = relay.unsubscribe(&id).await;
        out.relays.push(match outcome {
            Ok(()) => RelayOutcome {
                relay: url.to_string(),
                ok: true,
                message: "answered".into(),
            },
            Err(message) => RelayOutcome {
                relay: url.to_string(),
                ok: false,
                message,
            },
        });
    }
    client.disconnect().await;
    out.newest = newest_contact_list(author, &events).cloned();
    Ok(out)
}

/// Sends `event` to every relay; each relay's answer. A relay that is not connected within
/// `timeout`, or does not answer within it, is a failure with that reason.
pub async fn send_event(
    event: &Event,
    relays: &(impl RelayList + ?Sized),
    timeout: Duration,
) -> Result<Vec<RelayOutcome>, VouchError> {
    if relays.urls().is_empty() {
        return Err(VouchError::NoRelays);
    }
    let client = connected_client(relays)
        .await
        .map_err(|e| VouchError::Relay(e.to_string()))?;
    client.wait_for_connection(timeout).await;
    let mut down = Vec::new();
    let up = connected_relays(&client, &mut down).await;
    let mut outcomes: Vec<RelayOutcome> = down
        .into_iter()
        .map(|(relay, message)| RelayOutcome {
            relay,
            ok: false,
            message,
        })
        .collect();
    if !up.is_empty() {
        match tokio::time::timeout(timeout, client.send_event_to(up.clone(), event)).await {
            Ok(Ok(output)) => {
                for url in &up {
                    let (ok, message) = if output.success.contains(url) {
                        (true, "accepted".to_owned())
                    } else {
                        let why = output.failed.get(url).cloned();
                        (false, why.unwrap_or_else(|| "no answer".into()))
                    };
                    outcomes.push(RelayOutcome {
                        relay: url.to_string(),
                        ok,
                        message,
                    });
                }
            }
            Ok(Err(e)) => outcomes.extend(up.iter().map(|url| RelayOutcome {
                relay: url.to_string(),
                ok: false,
                message: format!("sending: {e}"),
            })),
            Err(_) => outcomes.extend(up.iter().map(|url| RelayOutcome {
                relay: url.to_string(),
                ok: false,
                message: format!("no answer within {} s", timeout.as_secs()),
            })),
        }
    }
    client.disconnect().await;
    outcomes.sort_by(|a, b| a.relay.cmp(&b.relay));
    Ok(outcomes)
}

/// `outcomes` if a relay accepted, else the error that names each relay's answer.
fn accepted(outcomes: Vec<RelayOutcome>) -> Result<Vec<RelayOutcome>, VouchError> {
    if outcomes.iter().any(|o| o.ok) {
        Ok(outcomes)
    } else {
        Err(VouchError::NoneAccepted(outcomes))
    }
}

/// A change to the operator's follows.
#[derive(Debug, Clone, Copy)]
pub struct FollowChange<'a> {
    pub follow: &'a [PublicKey],
    pub unfollow: &'a [PublicKey],
    /// The node's own last published contact list, if any: merged with what the relays
    /// hold (the newest wins) and, when forced, used alone when no relay answered.
    pub local: Option<&'a Event>,
    /// Publish even when no relay answered for the current list.
    pub force: bool,
}

/// What [`update_follows`] did.
#[derive(Debug, Clone)]
pub struct FollowOutcome {
    /// The new contact list, `None` when nothing changed (nothing was published).
    pub event: Option<Event>,
    pub change: ContactChange,
    /// Each relay's answer to the request for the current list.
    pub fetched: Vec<RelayOutcome>,
    /// Each relay's answer to the new list (empty when nothing was published).
    pub published: Vec<RelayOutcome>,
}

/// Fetches the key's newest contact list from the relays, merges the change into it
/// ([`merge_contact_list`]) and publishes the result to every relay. Refuses, publishing
/// nothing, when no relay answered and `force` is not set, or when nothing would change.
/// Fails when no relay accepted the new list.
pub async fn update_follows(
    key: &OperatorKey,
    relays: &(impl RelayList + ?Sized),
    change: FollowChange<'_>,
    timeout: Duration,
) -> Result<FollowOutcome, VouchError> {
    if relays.urls().is_empty() {
        return Err(VouchError::NoRelays);
    }
    let fetched = fetch_contact_list(relays, &key.public_key(), timeout).await?;
    if !fetched.answered() && !change.force {
        return Err(VouchError::NoAnswer(fetched.relays));
    }
    let me = key.public_key();
    let base = newest_contact_list(&me, fetched.newest.iter().chain(change.local));
    let (event, diff) =
        merge_contact_list(key, base, change.follow, change.unfollow, Timestamp::now())?;
    if !diff.changed() {
        return Ok(FollowOutcome {
            event: None,
            change: diff,
            fetched: fetched.relays,
            published: Vec::new(),
        });
    }
    let published = accepted(send_event(&event, relays, timeout).await?)?;
    Ok(FollowOutcome {
        event: Some(event),
        change: diff,
        fetched: fetched.relays,
        published,
    })
}

/// What an endorsement or a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A publisher, for everything it publishes.
    Publisher(PublicKey),
    /// One app of a publisher (its NIP-78 coordinate).
    App {
        publisher: PublicKey,
        app_id: String,
    },
    /// One event (a publication), by id, and its author.
    Event { id: EventId, author: PublicKey },
}

impl Subject {
    /// The publisher the claim is about: the key the score counts it for.
    pub fn publisher(&self) -> PublicKey {
        match self {
            Self::Publisher(pk) | Self::App { publisher: pk, .. } => *pk,
            Self::Event { author, .. } => *author,
        }
    }
}

/// The NIP-33 coordinate of an app's publications: `30078:<publisher hex>:archy:app:<id>`.
pub fn app_coordinate(publisher: &PublicKey, app_id: &str) -> String {
    format!(
        "{MANIFEST_EVENT_KIND}:{}:{}",
        publisher.to_hex(),
        manifest_d_tag(app_id)
    )
}

fn check_comment(comment: &str) -> Result<(), VouchError> {
    if comment.len() > MAX_COMMENT_BYTES {
        return Err(VouchError::Invalid(format!(
            "the comment is {} bytes, more than {MAX_COMMENT_BYTES}",
            comment.len()
        )));
    }
    Ok(())
}

/// Checks an extra endorsement label: 1 to 32 of `a-z`, `0-9` and `-`.
fn check_label(label: &str) -> Result<(), VouchError> {
    let ok = (1..=32).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(VouchError::Invalid(format!(
            "label {label:?}: 1 to 32 of a-z, 0-9 and '-'"
        )))
    }
}

/// The NIP-32 endorsement of `subject` (a publisher, or one of its apps), signed by `key`:
/// `["L","archy"]`, `["l","endorse","archy"]`, one `["l",<label>,"archy"]` per extra label,
/// `["p",<publisher>]`, and `["a",<coordinate>]` for an app. An event subject is refused:
/// endorse its publisher or app instead.
pub fn endorsement_event(
    key: &OperatorKey,
    subject: &Subject,
    labels: &[String],
    comment: &str,
) -> Result<Event, VouchError> {
    check_comment(comment)?;
    if labels.len() > MAX_EXTRA_LABELS {
        return Err(VouchError::Invalid(format!(
            "{} labels, at most {MAX_EXTRA_LABELS}",
            labels.len()
        )));
    }
    let publisher = subject.publisher();
    if publisher == key.public_key() {
        return Err(VouchError::Invalid(
            "endorsing the operator's own key counts for nothing".into(),
        ));
    }
    let mut tags = vec![
        Tag::custom(label_kind(true), [LABEL_NAMESPACE]),
        Tag::custom(label_kind(false), [ENDORSE_LABEL, LABEL_NAMESPACE]),
    ];
    let mut seen: HashSet<&str> = HashSet::from([ENDORSE_LABEL]);
    for label in labels {
        check_label(label)?;
        if seen.insert(label.as_str()) {
            tags.push(Tag::custom(
                label_kind(false),
                [label.as_str(), LABEL_NAMESPACE],
            ));
        }
    }
    tags.push(Tag::public_key(publisher));
    match subject {
        Subject::Publisher(_) => {}
        Subject::App { app_id, .. } => tags.push(Tag::custom(
            TagKind::a(),
            [app_coordinate(&publisher, app_id)],
        )),
        Subject::Event { .. } => {
            return Err(VouchError::Invalid(
                "an endorsement names a publisher or an app, not an event".into(),
            ));
        }
    }
    EventBuilder::new(Kind::Label, comment)
        .tags(tags)
        .sign_with_keys(&key.keys)
        .map_err(|e| VouchError::Key(format!("signing the endorsement: {e}")))
}

/// NIP-32's `L` (namespace) or `l` (label) tag.
fn label_kind(namespace: bool) -> TagKind<'static> {
    TagKind::SingleLetter(if namespace {
        SingleLetterTag::uppercase(Alphabet::L)
    } else {
        SingleLetterTag::lowercase(Alphabet::L)
    })
}

/// A NIP-56 report type by name.
pub fn parse_report(reason: &str) -> Result<Report, VouchError> {
    reason.trim().to_ascii_lowercase().parse().map_err(|_| {
        VouchError::Invalid(format!(
            "report reason {reason:?}: one of malware, impersonation, illegal, spam, nudity, \
             profanity, other"
        ))
    })
}

/// The NIP-56 report of `subject`, signed by `key`: `["p",<publisher>,<type>]` for a
/// publisher (an app reports its publisher, with the app's `a` coordinate); for an event
/// `["e",<id>,<type>]` and `["p",<author>]`.
pub fn report_event(
    key: &OperatorKey,
    subject: &Subject,
    report: Report,
    comment: &str,
) -> Result<Event, VouchError> {
    check_comment(comment)?;
    let publisher = subject.publisher();
    if publisher == key.public_key() {
        return Err(VouchError::Invalid(
            "reporting the operator's own key counts for nothing".into(),
        ));
    }
    let tags = match subject {
        Subject::Publisher(pk) => vec![Tag::public_key_report(*pk, report)],
        Subject::App { publisher, app_id } => vec![
            Tag::public_key_report(*publisher, report),
            Tag::custom(TagKind::a(), [app_coordinate(publisher, app_id)]),
        ],
        Subject::Event { id, author } => {
            vec![Tag::event_report(*id, report), Tag::public_key(*author)]
        }
    };
    EventBuilder::report(tags, comment)
        .sign_with_keys(&key.keys)
        .map_err(|e| VouchError::Key(format!("signing the report: {e}")))
}

/// Sends an endorsement or report to every relay; fails when none accepted it.
pub async fn publish_claim(
    event: &Event,
    relays: &(impl RelayList + ?Sized),
    timeout: Duration,
) -> Result<Vec<RelayOutcome>, VouchError> {
    accepted(send_event(event, relays, timeout).await?)
}

#[cfg(test)]
mod tests;
