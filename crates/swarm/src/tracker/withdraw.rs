//! Withdrawing: a node that leaves tells the trackers it announced to, so fetchers stop
//! dialing it. A stale entry costs every fetcher that draws it one connect timeout (3 s);
//! a withdrawal takes it off at once.
//!
//! A withdrawal removes entries, so an unsigned one would let anybody delist honest peers.
//! It is therefore signed by the peer's endpoint key (the ed25519 key its id is), as
//! announcements are, over a domain tag, the peer id, the time it was issued and the
//! hashes it names, so it cannot be forged or moved to other hashes or another peer. It is
//! accepted within [`WITHDRAWAL_WINDOW`] of the tracker's clock and removes only entries
//! whose announcement was issued (by the peer's clock, as the withdrawal was) no later
//! than it was: replayed later, here or at another tracker, it never removes what the peer
//! announced after it. The tracker keeps each withdrawn (hash, peer) for the window, so an
//! announcement issued before the withdrawal, replayed after it, does not list the peer
//! again.
//! `POST /v1/swarm/withdraw` takes a [`Withdrawal`] and answers `{"removed": n}`.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iroh::{EndpointId, SecretKey};
use iroh_blobs::Hash;
use serde::{Deserialize, Serialize};

use super::signed;

/// How far a withdrawal's issue time may be from the tracker's clock, either way.
pub const WITHDRAWAL_WINDOW: Duration = Duration::from_secs(300);

/// Separates these signatures from anything else the endpoint key signs.
const DOMAIN: &str = "archy-swarm-withdraw-v1";

/// A peer's signed statement that it no longer serves `hashes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The peer's endpoint id.
    pub peer: String,
    /// Seconds since the Unix epoch, by the peer's clock.
    pub issued_at: u64,
    pub hashes: Vec<String>,
    /// Hex of the ed25519 signature by `peer` over the domain tag, the peer id, the issue
    /// time and each hash (see `signed_bytes`).
    pub signature: String,
}

/// The tracker's answer to a withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawReply {
    /// Entries removed (a hash the tracker did not list the peer for counts nothing).
    pub removed: usize,
}

/// Why a withdrawal was refused. Nothing is removed when one is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WithdrawError {
    #[error("the peer id {0:?} is not an iroh endpoint id")]
    BadPeerId(String),
    #[error("{0:?} is not a BLAKE3 hash")]
    BadHash(String),
    #[error("{given} hashes in one withdrawal, at most {max} are accepted")]
    TooManyHashes { given: usize, max: usize },
    #[error(transparent)]
    Signature(#[from] signed::SignatureError),
}

/// A withdrawal checked: who, and which hashes.
pub(super) struct Checked {
    pub peer: EndpointId,
    pub hashes: Vec<Hash>,
}

impl Withdrawal {
    /// Signs a withdrawal of `hashes` by the peer whose key is `key`, issued at `issued_at`.
    pub fn sign(key: &SecretKey, issued_at: u64, hashes: &[Hash]) -> Self {
        let peer = key.public();
        let signature = key.sign(&Self::signed_bytes(&peer, issued_at, hashes));
        Self {
            peer: peer.to_string(),
            issued_at,
            hashes: hashes.iter().map(|h| h.to_hex().to_string()).collect(),
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// What is signed: the domain tag, the peer id, the issue time and each hash in its
    /// canonical (lowercase hex) form, one per line. Every field is fixed-format, so no two
    /// withdrawals share these bytes.
    fn signed_bytes(peer: &EndpointId, issued_at: u64, hashes: &[Hash]) -> Vec<u8> {
        let mut bytes = format!("{DOMAIN}\n{peer}\n{issued_at}\n").into_bytes();
        for h in hashes {
            bytes.extend_from_slice(h.to_hex().as_bytes());
            bytes.push(b'\n');
        }
        bytes
    }

    /// Parses and verifies the withdrawal against the tracker's clock `now` (Unix seconds).
    pub(super) fn check(&self, now: u64, max_hashes: usize) -> Result<Checked, WithdrawError> {
        let peer = EndpointId::from_str(&self.peer)
            .map_err(|_| WithdrawError::BadPeerId(self.peer.chars().take(80).collect()))?;
        if self.hashes.len() > max_hashes {
            return Err(WithdrawError::TooManyHashes {
                given: self.hashes.len(),
                max: max_hashes,
            });
        }
        signed::within_window(self.issued_at, now)?;
        let hashes = signed::parse_hashes(&self.hashes).map_err(WithdrawError::BadHash)?;
        let bytes = Self::signed_bytes(&peer, self.issued_at, &hashes);
        signed::verify(&peer, &bytes, &self.signature)?;
        Ok(Checked { peer, hashes })
    }
}

/// Seconds since the Unix epoch by this machine's clock (0 for a clock before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch by this machine's clock (0 for a clock before 1970).
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
