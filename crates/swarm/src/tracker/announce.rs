//! Announcing: a node tells a tracker which hashes it holds and where it is reached.
//!
//! An announcement replaces the entry the tracker keeps for its peer id, addresses
//! included. Unsigned, anybody could announce an honest peer's id with addresses that lead
//! nowhere: fetchers would dial those, report the peer unreachable, and the tracker's probe
//! of those addresses would remove it, which is the delisting a signed [`super::Withdrawal`]
//! exists to prevent. So an announcement is signed by the peer's endpoint key (the ed25519
//! key its id is) over a domain tag, the peer id, the time it was issued, its relay URL,
//! its addresses and the hashes it names; the tracker accepts it within
//! [`super::WITHDRAWAL_WINDOW`] of its own clock, an older announcement never replaces a
//! newer one of the same peer (a replay from elsewhere cannot move the peer's entry to the
//! replayer's address), and one issued before the peer withdrew does not list it again.
//! Signing proves who announces, not that a peer is worth anything: fresh keys cost
//! nothing (docs/threat-model.md). Not signed: which tracker it is for. A node announces
//! only to its own origin's tracker; one that announced to several would let each replay
//! its latest announcement to the others before it arrives there (signing the tracker's
//! endpoint id would close that).

use std::str::FromStr;

use iroh::{EndpointId, SecretKey};
use iroh_blobs::Hash;
use serde::{Deserialize, Serialize};

use super::{AnnounceError, signed};
use crate::PeerAddr;

/// Separates these signatures from anything else the endpoint key signs.
const DOMAIN: &str = "archy-swarm-announce-v1";

/// An announcement, as posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub peer: PeerAddr,
    pub hashes: Vec<String>,
    /// Milliseconds since the Unix epoch, by the peer's clock, strictly increasing from one
    /// announcement of a node to its next (absent from a node that predates signed
    /// announcements; refused). Milliseconds: two announcements in one second (the herd's
    /// at the start of a fetch, the full one after it) must both count.
    #[serde(default)]
    pub issued_at_ms: u64,
    /// Hex of the ed25519 signature by `peer.id` over the domain tag, the peer id, the issue
    /// time, the relay URL, the addresses and each hash (see `signed_bytes`).
    #[serde(default)]
    pub signature: String,
}

impl Announcement {
    /// `peer` (whose id must be `key`'s) holds `hashes`, signed as issued at `issued_at_ms`.
    pub fn sign(key: &SecretKey, peer: PeerAddr, issued_at_ms: u64, hashes: &[Hash]) -> Self {
        let id = key.public();
        let peer = PeerAddr {
            id: id.to_string(),
            ..peer
        };
        let signature = key.sign(&signed_bytes(&id, &peer, issued_at_ms, hashes));
        Self {
            peer,
            hashes: hashes.iter().map(|h| h.to_hex().to_string()).collect(),
            issued_at_ms,
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Verifies the signature against the tracker's clock `now` (Unix seconds), within the
    /// window either way; the peer's id when it holds. The rest (addresses, relay URL,
    /// counts) the tracker checks as it records the announcement.
    pub(super) fn check(&self, now: u64) -> Result<EndpointId, AnnounceError> {
        let id = EndpointId::from_str(&self.peer.id)
            .map_err(|_| AnnounceError::BadPeerId(self.peer.id.chars().take(80).collect()))?;
        if self.signature.is_empty() {
            return Err(AnnounceError::Unsigned);
        }
        signed::within_window(self.issued_at_ms / 1000, now)?;
        let hashes = signed::parse_hashes(&self.hashes).map_err(AnnounceError::BadHash)?;
        let bytes = signed_bytes(&id, &self.peer, self.issued_at_ms, &hashes);
        signed::verify(&id, &bytes, &self.signature)?;
        Ok(id)
    }
}

/// What is signed, one field per line: the domain tag, the peer id, the issue time, the
/// relay URL prefixed with its length (it is the one free-form field), the number of
/// addresses and each address, then each hash in canonical (lowercase hex) form. So no two
/// announcements share these bytes.
fn signed_bytes(id: &EndpointId, peer: &PeerAddr, issued_ms: u64, hashes: &[Hash]) -> Vec<u8> {
    let relay = peer.relay_url.as_deref().unwrap_or("");
    let mut text = format!(
        "{DOMAIN}\n{id}\n{issued_ms}\n{}:{relay}\n{}\n",
        relay.len(),
        peer.addrs.len()
    );
    for addr in &peer.addrs {
        text.push_str(&addr.to_string());
        text.push('\n');
    }
    for hash in hashes {
        text.push_str(&hash.to_hex());
        text.push('\n');
    }
    text.into_bytes()
}
