//! NIP-09 deletion requests (kind 5) aimed at publications, and the withdrawal a developer
//! sends. An `a` tag names a coordinate `kind:pubkey:d-tag`; our d tags (`archy:app:<id>`)
//! contain `:`, so a coordinate is read as kind, key and *the rest of the string* (the
//! nostr-sdk parser keeps only the third field, and would read `archy`).
//!
//! A request speaks only for its own author: an `e` id counts only against that author's
//! event, an `a` coordinate only when it names that author's key. By coordinate it covers
//! every version of the app published at or before the request (NIP-09); by id, one event.

use std::collections::{HashMap, HashSet};

use nostr_sdk::prelude::*;

use crate::{Error, MANIFEST_EVENT_KIND, manifest_d_tag};

/// A deletion that covers a publication: the request's id (hex) and its `created_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub deletion: String,
    pub at: u64,
}

/// What one deletion request names, read from its raw tags (no signature check).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletionTargets {
    /// Event ids (hex) of `e` tags.
    pub event_ids: Vec<String>,
    /// Apps of `a` tags naming the request's own author's publications.
    pub apps: Vec<String>,
}

/// Splits a coordinate into kind, key and identifier: the identifier is everything after
/// the second `:`, so identifiers that contain `:` survive.
pub fn parse_coordinate(text: &str) -> Option<(Kind, PublicKey, &str)> {
    let (kind, rest) = text.split_once(':')?;
    let (key, identifier) = rest.split_once(':')?;
    let kind: u16 = kind.parse().ok()?;
    let key = PublicKey::from_hex(key).ok()?;
    Some((Kind::from(kind), key, identifier))
}

/// The app a coordinate names, when it is one of `author`'s publications.
pub(crate) fn app_of_coordinate<'a>(text: &'a str, author: &PublicKey) -> Option<&'a str> {
    let (kind, key, d) = parse_coordinate(text)?;
    if kind != Kind::Custom(MANIFEST_EVENT_KIND) || key != *author {
        return None;
    }
    d.strip_prefix(manifest_d_tag("").as_str())
        .filter(|app| !app.is_empty())
}

/// The targets of a deletion request, for its own author.
pub fn deletion_targets(event: &Event) -> DeletionTargets {
    let mut targets = DeletionTargets::default();
    if event.kind != Kind::EventDeletion {
        return targets;
    }
    for tag in event.tags.iter() {
        match tag.as_slice() {
            [e, id, ..] if e == "e" => {
                if let Ok(id) = EventId::from_hex(id) {
                    targets.event_ids.push(id.to_hex());
                }
            }
            [a, coordinate, ..] if a == "a" => {
                if let Some(app) = app_of_coordinate(coordinate, &event.pubkey) {
                    targets.apps.push(app.to_owned());
                }
            }
            _ => {}
        }
    }
    targets
}

/// A deletion request as a node keeps it: its NIP-01 JSON.
pub fn event_json(event: &Event) -> String {
    event.as_json()
}

/// A kept deletion request read back. Its signature is checked again where it is used.
pub fn deletion_from_json(text: &str) -> Result<Event, Error> {
    let event =
        Event::from_json(text).map_err(|e| Error::Event(format!("a kept deletion: {e}")))?;
    if event.kind != Kind::EventDeletion {
        return Err(Error::Event(format!(
            "a kept deletion is of kind {}",
            event.kind.as_u16()
        )));
    }
    Ok(event)
}

/// Deletion requests whose signature checked, indexed by what they delete.
#[derive(Debug, Clone, Default)]
pub struct Deletions {
    /// (author, event id) → the request.
    by_id: HashMap<(String, String), Withdrawal>,
    /// (author, app) → the newest request by coordinate (it covers the most).
    by_app: HashMap<(String, String), Withdrawal>,
    events: Vec<Event>,
    seen: HashSet<EventId>,
}

impl Deletions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a deletion request once its id and signature check; false for anything else
    /// (another kind, a forgery, one already held).
    pub fn add(&mut self, event: &Event) -> bool {
        if event.kind != Kind::EventDeletion || self.seen.contains(&event.id) {
            return false;
        }
        if event.verify().is_err() {
            return false;
        }
        self.seen.insert(event.id);
        let author = event.pubkey.to_hex();
        let mark = Withdrawal {
            deletion: event.id.to_hex(),
            at: event.created_at.as_secs(),
        };
        let targets = deletion_targets(event);
        for id in targets.event_ids {
            self.by_id
                .entry((author.clone(), id))
                .or_insert_with(|| mark.clone());
        }
        for app in targets.apps {
            let held = self
                .by_app
                .entry((author.clone(), app))
                .or_insert_with(|| mark.clone());
            if mark.at > held.at {
                *held = mark.clone();
            }
        }
        self.events.push(event.clone());
        true
    }

    /// The request of `author` (hex) that deletes its publication `event_id` of `app_id`
    /// created at `created_at`: by that id, or by the app's coordinate at or after it.
    pub fn covering(
        &self,
        author: &str,
        app_id: &str,
        event_id: &str,
        created_at: u64,
    ) -> Option<&Withdrawal> {
        let author = author.to_owned();
        self.by_id
            .get(&(author.clone(), event_id.to_owned()))
            .or_else(|| {
                self.by_app
                    .get(&(author, app_id.to_owned()))
                    .filter(|w| w.at >= created_at)
            })
    }

    /// The newest request by coordinate that withdraws `author`'s `app_id`.
    pub fn app_withdrawal(&self, author: &str, app_id: &str) -> Option<&Withdrawal> {
        self.by_app.get(&(author.to_owned(), app_id.to_owned()))
    }

    /// Every request taken, as received.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The request that withdraws `app_id`: its coordinate (every version up to now) and the
/// ids of the versions known, signed by the developer's Nostr key.
pub fn withdrawal_event(keys: &Keys, app_id: &str, versions: &[EventId]) -> Result<Event, Error> {
    let coordinate = Coordinate::new(Kind::Custom(MANIFEST_EVENT_KIND), keys.public_key())
        .identifier(manifest_d_tag(app_id));
    let request = EventDeletionRequest::new()
        .coordinate(coordinate)
        .ids(versions.iter().copied())
        .reason(format!("{app_id} withdrawn by its publisher"));
    EventBuilder::delete(request)
        .tag(Tag::from_standardized(TagStandard::Kind {
            kind: Kind::Custom(MANIFEST_EVENT_KIND),
            uppercase: false,
        }))
        .sign_with_keys(keys)
        .map_err(|e| Error::Event(format!("signing the withdrawal: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::publication_event_at;
    use archy_registry::SecretKey;

    fn coordinate_deletion(by: &Keys, of: &PublicKey, app: &str, at: u64) -> Event {
        EventBuilder::new(Kind::EventDeletion, "")
            .tag(Tag::parse(["a", &format!("30078:{}:archy:app:{app}", of.to_hex())]).unwrap())
            .custom_created_at(Timestamp::from_secs(at))
            .sign_with_keys(by)
            .unwrap()
    }

    #[test]
    fn coordinates_keep_identifiers_that_contain_colons() {
        let keys = Keys::generate();
        let pk = keys.public_key();
        let text = format!("30078:{}:archy:app:notes", pk.to_hex());
        let (kind, key, d) = parse_coordinate(&text).unwrap();
        assert_eq!((kind, key, d), (Kind::Custom(30078), pk, "archy:app:notes"));
        // What nostr-sdk makes of it: only the third field. This is why we parse ourselves.
        assert_eq!(Coordinate::parse(&text).unwrap().identifier, "archy");
        assert_eq!(app_of_coordinate(&text, &pk), Some("notes"));
        assert_eq!(
            app_of_coordinate(&text, &Keys::generate().public_key()),
            None
        );
        for bad in [
            "30078",
            "30078:nothex:archy:app:x",
            "x:00:archy:app:y",
            &format!("1:{}:archy:app:notes", pk.to_hex()),
            &format!("30078:{}:other:notes", pk.to_hex()),
            &format!("30078:{}:archy:app:", pk.to_hex()),
        ] {
            assert_eq!(app_of_coordinate(bad, &pk), None, "{bad}");
        }
        // The withdrawal we send round-trips through our parser.
        let event = withdrawal_event(&keys, "notes", &[]).unwrap();
        assert_eq!(
            deletion_targets(&event),
            DeletionTargets {
                event_ids: vec![],
                apps: vec!["notes".into()]
            }
        );
    }

    #[test]
    fn a_coordinate_covers_every_version_up_to_the_request_and_only_its_authors() {
        let dev = Keys::generate();
        let other = Keys::generate();
        let did = SecretKey::from_bytes(&[4; 32]);
        let v1 = publication_event_at(&did, &dev, "notes", "1.0.0", 1_000);
        let v2 = publication_event_at(&did, &dev, "notes", "2.0.0", 2_000);
        let v3 = publication_event_at(&did, &dev, "notes", "3.0.0", 3_000);
        let author = dev.public_key().to_hex();
        let covered = |d: &Deletions, e: &Event| {
            d.covering(&author, "notes", &e.id.to_hex(), e.created_at.as_secs())
                .is_some()
        };

        let mut d = Deletions::new();
        // Someone else naming the developer's coordinate or ids: ignored.
        let foreign = coordinate_deletion(&other, &dev.public_key(), "notes", 9_000);
        assert!(d.add(&foreign));
        let by_other_id = EventBuilder::delete(EventDeletionRequest::new().id(v1.id))
            .sign_with_keys(&other)
            .unwrap();
        assert!(d.add(&by_other_id));
        assert!(!covered(&d, &v1) && !covered(&d, &v3));
        // A forged signature is not taken at all.
        let mut forged = coordinate_deletion(&other, &dev.public_key(), "notes", 9_001);
        forged.pubkey = dev.public_key();
        assert!(!d.add(&forged));
        assert!(!covered(&d, &v1));

        assert!(d.add(&coordinate_deletion(
            &dev,
            &dev.public_key(),
            "notes",
            2_000
        )));
        assert!(
            covered(&d, &v1) && covered(&d, &v2),
            "versions at or before it"
        );
        assert!(!covered(&d, &v3), "a version published after the request");
        assert!(d.covering(&author, "blog", "00", 10).is_none());
        // By id: that event only.
        let by_id = EventBuilder::delete(EventDeletionRequest::new().id(v3.id))
            .sign_with_keys(&dev)
            .unwrap();
        assert!(d.add(&by_id));
        assert!(!d.add(&by_id), "held already");
        assert!(covered(&d, &v3));
        assert_eq!(d.len(), 4);
        assert_eq!(d.app_withdrawal(&author, "notes").unwrap().at, 2_000);
    }
}
