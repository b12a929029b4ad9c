//! What announcements and withdrawals check alike: the issue time against the tracker's
//! clock, the hashes named, and the ed25519 signature by the peer's endpoint key.

use iroh::EndpointId;
use iroh_blobs::Hash;

use super::WITHDRAWAL_WINDOW;
use crate::BlobRef;

/// Why a signed statement's (an announcement's or a withdrawal's) time or signature is
/// refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error(
        "issued at {issued_at} (Unix seconds) but the tracker's clock says {now}: more than \
         {window} s apart (check the node's clock)"
    )]
    OutOfWindow {
        issued_at: u64,
        now: u64,
        window: u64,
    },
    #[error("the signature is not 64 bytes of hex")]
    BadSignature,
    #[error("the signature does not verify with the peer's key")]
    Forged,
}

/// `issued_at` (Unix seconds, the peer's clock) within [`WITHDRAWAL_WINDOW`] of `now` (the
/// tracker's), either way.
pub(super) fn within_window(issued_at: u64, now: u64) -> Result<(), SignatureError> {
    let window = WITHDRAWAL_WINDOW.as_secs();
    if issued_at.abs_diff(now) > window {
        return Err(SignatureError::OutOfWindow {
            issued_at,
            now,
            window,
        });
    }
    Ok(())
}

/// The hashes as given (hex), or the first that is not one (cut to 80 characters).
pub(super) fn parse_hashes(hashes: &[String]) -> Result<Vec<Hash>, String> {
    hashes
        .iter()
        .map(|h| {
            BlobRef::from_hex(h, 0)
                .map(|b| b.hash)
                .map_err(|_| h.chars().take(80).collect())
        })
        .collect()
}

/// `signature` (hex) is `peer`'s over `signed`.
pub(super) fn verify(
    peer: &EndpointId,
    signed: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    let signature: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::BadSignature)?;
    peer.verify(signed, &iroh::Signature::from_bytes(&signature))
        .map_err(|_| SignatureError::Forged)
}
