//! Archipelago's trust core: manifests, signed envelopes, root and catalog documents,
//! and the state machine a node runs to accept or refuse them.
//!
//! Everything here is bytes in, bytes out: no I/O, no clock (callers pass "now"),
//! no networking. The only way to obtain a [`VerifiedCatalog`], a [`VerifiedApp`] or a
//! [`VerifiedManifest`] is through verification in this crate (each type's docs hold a
//! `compile_fail` example of building one by hand elsewhere).

mod catalog;
mod envelope;
mod error;
pub mod grammar;
pub mod keys;
pub mod manifest;
mod publication;
mod root;
mod trust;

pub use catalog::{
    Artifact, Catalog, CatalogApp, Origin, VerifiedApp, VerifiedCatalog, catalog_link,
};
pub use envelope::{Envelope, PayloadType, Signature, pae as envelope_pae};
pub use error::{Error, ValidationError};
pub use keys::{KeyId, PublicKey, SecretKey};
pub use manifest::{Manifest, VerifiedManifest};
pub use publication::{Publication, Publisher, VerifiedPublication, namespaced_id};
pub use root::{KeyEntry, Role, RoleKeys, Root, VerifiedRoot};
pub use trust::{CatalogChain, CatalogUpdate, ChainUpdate, TrustState};

/// The spec version this crate writes and understands.
pub const SPEC_VERSION: u32 = 1;

/// Hard cap on any signed document a node will parse. Catalogs embed full manifests
/// (a catalog of 10,000 realistic apps is about 20 MiB), so this is generous, but it
/// bounds what a hostile origin can make us hold.
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;

/// BLAKE3 hash of bytes, lowercase hex.
pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
