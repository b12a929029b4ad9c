//! The walking skeleton with real parts: a signed catalog served by an origin on loopback,
//! a node that pulls and verifies it into sqlite, fetches the image over iroh, and runs the
//! app in rootless Podman. Every bad input gets a clear error and leaves nothing behind.
//!
//! The tests live in the modules below, one subject each; their fixtures are in tests/support.

use archy_registry::Envelope;
use archy_tests::*;
use base64::Engine as _;

/// Rewrites a catalog's payload with `edit`, keeping (now invalid) signatures unless re-signed.
fn edit_payload(env: &Envelope, edit: impl FnOnce(&mut serde_json::Value)) -> Envelope {
    let mut value: serde_json::Value =
        serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    edit(&mut value);
    let mut out = env.clone();
    out.payload =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&value).unwrap());
    out
}

#[path = "e2e/adopt_and_health.rs"]
mod adopt_and_health;
#[path = "e2e/api_contract.rs"]
mod api_contract;
#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/dashboard.rs"]
mod dashboard;
#[path = "e2e/fleet.rs"]
mod fleet;
#[path = "e2e/hardening.rs"]
mod hardening;
#[path = "e2e/install.rs"]
mod install;
#[path = "e2e/libpod.rs"]
mod libpod;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/market.rs"]
mod market;
#[path = "e2e/market_interop.rs"]
mod market_interop;
#[path = "e2e/market_vouch.rs"]
mod market_vouch;
#[path = "e2e/operations.rs"]
mod operations;
#[path = "e2e/reliability.rs"]
mod reliability;
#[path = "e2e/security.rs"]
mod security;
#[path = "e2e/shutdown_and_disk.rs"]
mod shutdown_and_disk;
#[path = "e2e/swarm.rs"]
mod swarm;
#[path = "e2e/trust.rs"]
mod trust;
#[path = "e2e/trust_chain.rs"]
mod trust_chain;
