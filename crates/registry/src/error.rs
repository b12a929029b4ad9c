use chrono::{DateTime, Utc};

/// A manifest or document field that broke a rule. `field` is a dotted path
/// (`containers[0].ports[1].host`) so an author can find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    pub field: String,
    pub rule: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("document is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not a signed envelope: {0}")]
    MalformedEnvelope(String),
    #[error("envelope carries payload type {found:?}, expected {expected:?}")]
    WrongPayloadType { expected: String, found: String },
    #[error("{role} role: {valid} valid signature(s) from distinct keys, threshold is {threshold}")]
    ThresholdNotMet {
        role: &'static str,
        valid: usize,
        threshold: u32,
    },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("invalid {what}: {source}")]
    Invalid {
        what: &'static str,
        #[source]
        source: ValidationError,
    },
    #[error("{what} version {version} expired at {expires} (now {now})")]
    Expired {
        what: &'static str,
        version: u64,
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("catalog rollback refused: offered version {offered}, current version is {current}")]
    Rollback { current: u64, offered: u64 },
    #[error(
        "catalog equivocation: version {version} was already accepted with different bytes \
         (accepted blake3 {accepted}, offered blake3 {offered}); both refused, keeping the current catalog"
    )]
    Equivocation {
        version: u64,
        accepted: String,
        offered: String,
    },
    #[error(
        "catalog version {version} does not chain to the current version {current}: its previous is {found}, \
         the current catalog's blake3 is {expected}"
    )]
    ChainBroken {
        version: u64,
        current: u64,
        expected: String,
        found: String,
    },
    #[error("root rotation must go to version {expected}, got version {found}")]
    RootVersionSkip { expected: u64, found: u64 },
    #[error("clock went backward: now is {now}, but {last_seen} was already seen")]
    ClockBackward {
        now: DateTime<Utc>,
        last_seen: DateTime<Utc>,
    },
    #[error("invalid key: {0}")]
    Key(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
