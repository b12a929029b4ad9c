//! Third-party developers: one BIP39 mnemonic yields both identities a publisher needs,
//! an ed25519 DID (did:key) that signs manifests and a Nostr key (NIP-06) that signs the
//! NIP-78 events carrying them. Discovery, scoring and publishing build on this, and so
//! does the node operator's own key, which vouches for publishers (`vouch`).

mod deletion;
mod fetch;
mod nostr;
mod outbox;
mod par;
mod score;
mod tls;
#[cfg(any(test, feature = "test-support"))]
pub mod tls_fixture;
mod transport;
mod vouch;

pub use deletion::{
    DeletionTargets, Deletions, Withdrawal, deletion_from_json, deletion_targets, event_json,
    parse_coordinate, withdrawal_event,
};
pub use fetch::{TrustFetch, TrustFetchLimits, fetch_trust_events, fetch_trust_events_onto};
pub use nostr::{
    APP_HASHTAG, Discovery, DiscoveryCollector, DiscoveryLimits, Listing, Outbox, PublishReport,
    Rejection, RelayReport, Seen, Withdrawn, discover, discover_outbox, discover_with,
    fetch_relay_list, own_publications, publication_event, publish, publish_report, verify_event,
};
/// NIP-56 report types.
pub use nostr_sdk::nips::nip56::Report;
/// Nostr events and their ids, as the operator's vouches are stored.
pub use nostr_sdk::{Event, EventId, JsonUtil};
pub use outbox::{
    MAX_RELAY_URL_BYTES, OutboxLimits, OutboxPlan, OutboxRefusal, Resolved, Resolver,
    check_relay_url, newest_relay_lists, plan_outbox, relay_list_event, write_relays,
};
pub use score::{
    ENDORSE_LABEL, Ignored, IngestStats, LABEL_NAMESPACE, MAX_FOLLOWS_PER_LIST,
    MAX_TARGETS_PER_CLAIM, ScoreConfig, ScoreTerm, TrustInputs, TrustScore, TrustScores,
};
pub use tls::{RelayList, RelaySet, RelayTls};
pub use vouch::{
    ContactChange, ContactListFetch, FollowChange, FollowOutcome, MAX_COMMENT_BYTES,
    MAX_EXTRA_LABELS, OperatorKey, RelayOutcome, Subject, VouchError, app_coordinate,
    endorsement_event, fetch_contact_list, merge_contact_list, newest_contact_list, parse_report,
    publish_claim, report_event, send_event, update_follows,
};

use archy_registry::keys::KeyPurpose;
use archy_registry::{PublicKey, SecretKey};
#[cfg(test)]
use nostr_sdk::EventBuilder;
use nostr_sdk::nips::nip06::FromMnemonic;
use nostr_sdk::{Keys, ToBech32};

/// A Nostr event (NIP-01), e.g. a deletion request a node keeps.
pub use nostr_sdk::Event as NostrEvent;
/// A Nostr public key (secp256k1, x-only), as publishers and operators are named.
pub use nostr_sdk::PublicKey as NostrKey;

/// A key as people read it: `npub1…` (NIP-19).
pub fn npub(key: &NostrKey) -> String {
    key.to_bech32().unwrap_or_else(|_| key.to_hex())
}

/// Reads a Nostr public key written as `npub1…` (NIP-19) or 64 hex digits.
pub fn parse_nostr_key(text: &str) -> Result<NostrKey, Error> {
    NostrKey::parse(text.trim()).map_err(|e| {
        Error::PublicKey(format!(
            "{text:?} is not a Nostr public key (npub1… or hex): {e}"
        ))
    })
}

/// Kind of the NIP-78 application-specific events that carry manifests.
pub const MANIFEST_EVENT_KIND: u16 = 30078;

/// The NIP-78 `d` tag of an app's manifest event: namespaced so it never collides with
/// other applications' data in the same kind.
pub fn manifest_d_tag(app_id: &str) -> String {
    format!("archy:app:{app_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("developer key: {0}")]
    Key(#[from] archy_registry::Error),
    /// Deriving the Nostr key from the mnemonic.
    #[error("nostr key (NIP-06): {0}")]
    Nostr(String),
    #[error("nostr public key: {0}")]
    PublicKey(String),
    /// Building or signing an event.
    #[error("nostr event: {0}")]
    Event(String),
    /// Reaching relays, or what they answered.
    #[error("relay: {0}")]
    Relay(String),
    /// The CAs a `wss://` relay's certificate may chain to (`relay_ca_certs`).
    #[error("relay CA certificates: {0}")]
    RelayCa(String),
}

/// A developer's two keys, derived from one mnemonic. Secrets stay inside; only public
/// forms are exposed for display.
pub struct DeveloperIdentity {
    did_key: SecretKey,
    nostr: Keys,
}

impl DeveloperIdentity {
    /// A new 24-word mnemonic from OS randomness, for `archy dev init`.
    pub fn new_mnemonic() -> zeroize::Zeroizing<String> {
        let mut entropy = zeroize::Zeroizing::new([0u8; 32]);
        rand::fill(&mut entropy[..]);
        // 32 bytes is always a valid BIP39 entropy length.
        let mnemonic = bip39::Mnemonic::from_entropy(&entropy[..]).map(|m| m.to_string());
        zeroize::Zeroizing::new(mnemonic.unwrap_or_default())
    }

    /// DID key at `m/44'/7368'/2'/INDEX'` (SLIP-0010 ed25519), Nostr key at
    /// `m/44'/1237'/ACCOUNT'/0/0` (NIP-06, secp256k1).
    pub fn from_mnemonic(mnemonic: &str, passphrase: &str, index: u32) -> Result<Self, Error> {
        let did_key = SecretKey::from_mnemonic(mnemonic, passphrase, KeyPurpose::Developer, index)?;
        let passphrase = (!passphrase.is_empty()).then_some(passphrase);
        let nostr = Keys::from_mnemonic_with_account(mnemonic, passphrase, Some(index))
            .map_err(|e| Error::Nostr(e.to_string()))?;
        Ok(Self { did_key, nostr })
    }

    pub fn did(&self) -> String {
        self.did_key.public().did_key()
    }

    /// The key that signs this developer's publications.
    pub fn did_key(&self) -> &SecretKey {
        &self.did_key
    }

    pub fn did_public_key(&self) -> PublicKey {
        self.did_key.public()
    }

    /// Nostr public key, hex.
    pub fn nostr_public_hex(&self) -> String {
        self.nostr.public_key().to_hex()
    }

    /// Nostr public key, bech32 `npub1…`.
    pub fn npub(&self) -> String {
        self.nostr.public_key().to_bech32().unwrap_or_default()
    }

    /// The Nostr keys that sign this developer's events.
    pub fn nostr_keys(&self) -> &Keys {
        &self.nostr
    }
}

impl std::fmt::Debug for DeveloperIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeveloperIdentity({}, nostr {})",
            self.did(),
            self.nostr_public_hex()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIP-06's published test vectors (account 0).
    #[test]
    fn nostr_key_matches_nip06_vectors() {
        let cases = [
            (
                "leader monkey parrot ring guide accident before fence cannon height naive bean",
                "7f7ff03d123792d6ac594bfa67bf6d0c0ab55b6b1fdb6249303fe861f1ccba9a",
                "17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917",
            ),
            (
                "what bleak badge arrange retreat wolf trade produce cricket blur garlic valid proud rude strong choose busy staff weather area salt hollow arm fade",
                "c15d739894c81a2fcfd3a2df85a0d2c0dbc47a280d092799f144d73d7ae78add",
                "d41b22899549e1f3d335a31002cfd382174006e166d3e658e3a5eecdb6463573",
            ),
        ];
        for (mnemonic, secret, public) in cases {
            let id = DeveloperIdentity::from_mnemonic(mnemonic, "", 0).unwrap();
            assert_eq!(id.nostr_keys().secret_key().to_secret_hex(), secret);
            assert_eq!(id.nostr_public_hex(), public);
            assert!(id.did().starts_with("did:key:z6Mk"));
            assert!(id.npub().starts_with("npub1"));
        }
    }

    /// The node runs discovery and trust fetches on spawned tasks.
    #[test]
    fn relay_futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        let relays: Vec<String> = Vec::new();
        let timeout = std::time::Duration::ZERO;
        is_send(&discover(&relays, timeout));
        let limits = DiscoveryLimits::default();
        is_send(&discover_with(&relays, &[], &[], &limits, timeout));
        is_send(&publish_report(
            &EventBuilder::text_note("")
                .sign_with_keys(&Keys::generate())
                .unwrap(),
            &relays,
        ));
        let fetch_limits = TrustFetchLimits::default();
        is_send(&fetch_trust_events(
            &relays,
            &[],
            &[],
            &fetch_limits,
            timeout,
        ));
    }

    #[test]
    fn nostr_keys_parse_as_npub_or_hex() {
        let hex = "17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917";
        let key = parse_nostr_key(hex).unwrap();
        assert_eq!(parse_nostr_key(&key.to_bech32().unwrap()).unwrap(), key);
        let err = parse_nostr_key("npub1nope").unwrap_err().to_string();
        assert!(err.contains("npub1nope"), "{err}");
    }

    #[test]
    fn identities_are_reproducible_and_distinct_per_index() {
        let m = "leader monkey parrot ring guide accident before fence cannon height naive bean";
        let a = DeveloperIdentity::from_mnemonic(m, "", 0).unwrap();
        let b = DeveloperIdentity::from_mnemonic(m, "", 0).unwrap();
        let c = DeveloperIdentity::from_mnemonic(m, "", 1).unwrap();
        assert_eq!(a.did(), b.did());
        assert_ne!(a.did(), c.did());
        assert_ne!(a.nostr_public_hex(), c.nostr_public_hex());
        assert!(DeveloperIdentity::from_mnemonic("not words", "", 0).is_err());
        assert_eq!(manifest_d_tag("hello"), "archy:app:hello");
        let fresh = DeveloperIdentity::new_mnemonic();
        assert_eq!(fresh.split_whitespace().count(), 24);
        assert!(DeveloperIdentity::from_mnemonic(&fresh, "", 0).is_ok());
    }
}

#[cfg(test)]
mod paging_tests;
#[cfg(test)]
mod relay_tests;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
#[cfg(test)]
mod tls_tests;
