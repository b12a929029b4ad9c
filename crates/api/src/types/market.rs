//! The marketplace: listings, publishers' scores, trusted keys, and the operator's own key.

use super::*;

// ---- marketplace --------------------------------------------------------------------------

/// A verified publication the node knows: newest per publisher and app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketRow {
    /// The publisher's Nostr key (hex).
    pub author: String,
    pub app_id: String,
    pub event_id: String,
    /// Unix seconds of the Nostr event.
    pub created_at: i64,
    pub version: String,
    pub name: String,
    /// The publisher's did:key.
    pub did: String,
    /// Set when the publisher withdrew it (NIP-09): it cannot be installed. `GET
    /// /v1/market` lists only what is not withdrawn; `GET /v1/market/{app}` shows both.
    #[serde(default)]
    pub withdrawn: Option<Withdrawal>,
}

/// `POST /v1/market/discover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoverResponse {
    /// Publications listed after this pass.
    pub listed: u64,
    /// Events refused, with the reason (the first few).
    pub rejected: Vec<RejectedEvent>,
    /// Every event refused in this pass.
    pub rejected_total: u64,
    /// Refused events by category.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Distinct events examined.
    pub examined: u64,
    /// A relay had more events than one pass takes: older publications may be missing.
    pub truncated: bool,
    /// Relays that could not be asked, with the reason.
    pub relay_errors: Vec<RelayError>,
    /// Publications their publisher withdrew, found in this pass.
    #[serde(default)]
    pub withdrawn: u64,
    /// What each relay sent.
    #[serde(default)]
    pub relays: Vec<RelayReport>,
    /// The publishers' own relays (NIP-65 outbox) the pass used.
    #[serde(default)]
    pub outbox: Vec<OutboxRelay>,
    /// Relays publishers announced that the pass did not use, and why (the first few).
    #[serde(default)]
    pub outbox_refused: Vec<OutboxRefusal>,
}

/// What one relay sent in a discovery pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelayReport {
    pub relay: String,
    /// Events new to the pass that this relay sent, examined.
    pub examined: u64,
    /// Of those, refused by the publication checks (DID signature, key binding, manifest).
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Events with a bad id or signature (forged), or unreadable: dropped unread.
    pub forged: u64,
    /// Requests that failed, or why the relay could not be asked.
    pub errors: Vec<String>,
}

/// The last marketplace discovery (`archy market status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketStatus {
    /// When the pass ended (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// Publications listed after it.
    pub listed: u64,
    /// Listings their publisher withdrew, kept to show.
    pub withdrawn: u64,
    /// A relay had more than one pass takes, or could not be asked: listings it did not
    /// see are kept.
    pub incomplete: bool,
    pub relays: Vec<RelayReport>,
    /// The publishers' own relays (NIP-65 outbox) the pass used.
    #[serde(default)]
    pub outbox: Vec<OutboxRelay>,
    /// Relays publishers announced that the pass did not use, and why (the first few).
    #[serde(default)]
    pub outbox_refused: Vec<OutboxRefusal>,
}

/// A relay a publisher announced (NIP-65, kind 10002) that a discovery pass used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutboxRelay {
    pub relay: String,
    /// The publishers (hex) whose publications were asked for there.
    pub publishers: Vec<String>,
}

/// A relay a publisher announced that a discovery pass did not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutboxRefusal {
    /// The publisher (hex).
    pub publisher: String,
    /// The URL as announced (cut when long).
    pub relay: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelayError {
    pub relay: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RejectedEvent {
    /// The Nostr event id.
    pub event: String,
    pub reason: String,
}

/// One publisher's listing of an app (`GET /v1/market/{app}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketDetail {
    pub listing: MarketRow,
    /// The id the app gets on this node (`<id>.<publisher key prefix>`); `null` when the
    /// publication does not verify.
    pub local_id: Option<String>,
    pub description: String,
    /// `passes`, or why the sandbox policy (or verification) refuses it.
    pub sandbox: String,
    pub origin: Option<String>,
    pub installed: bool,
    /// `null` until the publisher has been scored.
    pub score: Option<ScoreRow>,
    /// Below this score an install needs `approve`.
    pub threshold: u8,
    /// What the app will be allowed to do; `null` when the publication does not verify.
    #[serde(default)]
    pub permissions: Option<Permissions>,
    /// The version installed here from this publisher, when it is.
    #[serde(default)]
    pub installed_version: Option<String>,
}

/// A publisher's trust score with every term explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScoreRow {
    pub author: String,
    /// 0..=100.
    pub score: u8,
    /// The terms that make the score (the node sends `null` if it cannot read them).
    #[serde(deserialize_with = "null_as_empty")]
    pub explanation: Vec<ScoreTerm>,
    pub computed_at: String,
}

/// One reason in a score, with the points it adds (or removes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScoreTerm {
    pub points: i32,
    pub reason: String,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// `?publisher=…&approve=…&stream=…` of `POST /v1/market/{app}/install`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MarketInstallQuery {
    /// The publisher's Nostr key (hex, or a prefix of 4+ digits), when several list the app.
    #[serde(default)]
    pub publisher: Option<String>,
    /// The operator accepts a publisher below the trust threshold.
    #[serde(default)]
    pub approve: bool,
    /// Stream newline-delimited JSON progress events ([`OperationEvent`]).
    #[serde(default)]
    pub stream: bool,
}

/// A key the operator trusts (`GET /v1/trust/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustedKey {
    /// Nostr public key, hex.
    pub key: String,
    pub source: KeySource,
}

/// Where a trusted key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// `trusted_keys` in the node's config (removed there only).
    Config,
    /// Added through the API (`archy market trust add`).
    Cli,
    /// This node's own operator key (`GET /v1/operator`), trusted while it exists.
    Operator,
}
wire_names!(KeySource { Config => "config", Cli => "cli", Operator => "operator" });

/// `POST /v1/trust/keys/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Trusted {
    /// The key, hex.
    pub trusted: String,
}

/// `DELETE /v1/trust/keys/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Untrusted {
    /// The key, hex.
    pub untrusted: String,
}

// ---- the operator's own key: follows, endorsements, reports ---------------------------

/// `GET /v1/operator`: this node's own Nostr key (NIP-06), which signs the operator's
/// follows (kind 3), endorsements (NIP-32) and reports (NIP-56), and is always trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// `null` until the first follow, endorse or report creates it (or one is imported).
    pub key: Option<OperatorKeyView>,
    /// The keys this node's last published contact list follows, hex.
    pub follows: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperatorKeyView {
    pub npub: String,
    /// The public key, hex.
    pub hex: String,
    /// Where the node keeps the key's mnemonic (mode 0600): back it up to use the key in
    /// other Nostr clients.
    pub file: String,
}

/// `POST /v1/operator/key`: the operator's own mnemonic for this node's key (NIP-06,
/// account 0, no passphrase). Never logged; not shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportOperatorKey {
    /// 12 to 24 BIP39 words (English).
    pub mnemonic: String,
    /// Replace a key the node already holds (its follows, endorsements and reports stay
    /// with the old key on the relays; this node stops counting them).
    #[serde(default)]
    pub replace: bool,
}

impl std::fmt::Debug for ImportOperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOperatorKey")
            .field("mnemonic", &"<redacted>")
            .field("replace", &self.replace)
            .finish()
    }
}

/// `POST /v1/operator/follow` and `/v1/operator/unfollow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    /// A publisher: `npub1…`, 64 hex digits, or a did:key a listing binds to its Nostr key.
    pub target: String,
    /// Publish even when no relay answered for the current contact list (built on this
    /// node's own last copy, which may miss follows made elsewhere with the same key).
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/operator/endorse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndorseRequest {
    /// A publisher (`npub1…`, hex, did:key) or an app id a listing names (`notes`, or the
    /// local `notes.<16 hex>`).
    pub target: String,
    /// The publisher's key (hex or a prefix), when several list the app.
    #[serde(default)]
    pub publisher: Option<String>,
    /// Labels beside `endorse` in the `archy` namespace (1 to 32 of `a-z0-9-`, at most 8).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Why, in words (at most 1024 bytes).
    #[serde(default)]
    pub comment: String,
}

/// `POST /v1/operator/report`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// A publisher (`npub1…`, hex, did:key), a listing's event id (hex or `note1…`), or an
    /// app id (its listing is reported).
    pub target: String,
    /// The publisher's key (hex or a prefix), when several list the app.
    #[serde(default)]
    pub publisher: Option<String>,
    /// NIP-56 type: `malware`, `impersonation`, `illegal`, `spam`, `nudity`, `profanity`
    /// or `other`.
    pub reason: String,
    /// Why, in words (at most 1024 bytes).
    #[serde(default)]
    pub comment: String,
}

/// What a follow, unfollow, endorsement or report did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VouchResponse {
    pub action: VouchAction,
    /// The operator key that signed, `npub1…`.
    pub operator: String,
    /// The publisher it is about, hex.
    pub subject: String,
    /// The app it is about, if one.
    pub app: Option<String>,
    /// The event signed and sent; `null` when nothing had to change.
    pub event_id: Option<String>,
    /// 3 (contact list), 1984 (report) or 1985 (label).
    pub kind: u16,
    /// Follow and unfollow: each relay's answer to the request for the current contact list.
    pub fetched: Vec<RelayResult>,
    /// Each relay's answer to the event.
    pub published: Vec<RelayResult>,
    /// Follow and unfollow: the keys the contact list follows now.
    pub follows: Option<u64>,
    /// What happened, in words.
    pub note: String,
    /// The publisher's score after this, when it lists apps here.
    pub score: Option<ScoreRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VouchAction {
    Follow,
    Unfollow,
    Endorse,
    Report,
}
wire_names!(VouchAction { Follow => "follow", Unfollow => "unfollow", Endorse => "endorse", Report => "report" });

/// One relay's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelayResult {
    pub relay: String,
    pub ok: bool,
    /// The relay's message, or why it could not be asked.
    pub message: String,
}
