//! Fixed keys and documents shared by the fuzz targets and the seed generator
//! (`cargo run --example gen_seeds`). Everything is deterministic: fixed secret keys,
//! a fixed expiry, and ed25519 signatures (which are deterministic), so regenerating
//! the seeds yields the same bytes.

use std::sync::LazyLock;

use archy_registry::{
    Artifact, Catalog, CatalogApp, Envelope, Manifest, Origin, PayloadType, PublicKey, Root,
    SecretKey, VerifiedRoot, blake3_hex,
};
use chrono::{DateTime, TimeZone, Utc};

/// The root role key of the fixed root (same bytes as the trust.rs tests).
pub fn root_key() -> SecretKey {
    SecretKey::from_bytes(&[1; 32])
}

/// The catalog role key of the fixed root.
pub fn catalog_key() -> SecretKey {
    SecretKey::from_bytes(&[2; 32])
}

/// Public keys the `envelope` target checks signatures against: root key, then catalog key.
pub static ALLOWED: LazyLock<[PublicKey; 2]> =
    LazyLock::new(|| [root_key().public(), catalog_key().public()]);

/// Expiry of every fixture document (far future, so nothing expires mid-run).
pub fn expires() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()
}

/// The "now" the targets use for expiry checks.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

/// Root v1: one root key (threshold 1), one catalog key (threshold 1).
pub fn root() -> Root {
    Root::new(
        1,
        expires(),
        &[root_key().public()],
        1,
        &[catalog_key().public()],
        1,
    )
    .expect("fixture root is valid")
}

/// The root above, self-signed by its root key: a valid trust anchor.
pub fn root_envelope() -> Vec<u8> {
    let mut env = Envelope::unsigned(PayloadType::Root, &root().to_json());
    env.sign(&root_key()).expect("payload is base64");
    env.to_bytes()
}

/// The trust anchor the `catalog` target verifies against, built once.
pub static VERIFIED_ROOT: LazyLock<VerifiedRoot> = LazyLock::new(|| {
    VerifiedRoot::trust_anchor(&root_envelope()).expect("fixture root is a valid anchor")
});

/// The first-party demo manifest, as authored.
pub const HELLO_MANIFEST_YAML: &str = include_str!("../../apps/hello/manifest.yml");

pub fn hello_manifest() -> Manifest {
    Manifest::from_yaml(HELLO_MANIFEST_YAML).expect("apps/hello/manifest.yml is valid")
}

/// A catalog v1 holding the hello app (artifact hash of a stand-in image).
pub fn catalog() -> Catalog {
    let manifest = hello_manifest();
    let image = b"stand-in for the hello OCI archive";
    let artifacts = manifest
        .artifacts
        .iter()
        .map(|decl| Artifact {
            name: decl.name.clone(),
            blake3: blake3_hex(image),
            size: image.len() as u64,
            media_type: decl.media_type.clone(),
        })
        .collect();
    let app = CatalogApp {
        id: manifest.id.clone(),
        version: manifest.version.clone(),
        manifest,
        artifacts,
    };
    Catalog::new(
        1,
        expires(),
        None,
        Origin {
            http: "http://127.0.0.1:8480".into(),
            iroh: "ab".repeat(32),
        },
        vec![app],
    )
    .expect("fixture catalog is valid")
}

/// The catalog above in an envelope signed by the fixed catalog key.
pub fn catalog_envelope() -> Vec<u8> {
    let mut env = Envelope::unsigned(PayloadType::Catalog, &catalog().to_json());
    env.sign(&catalog_key()).expect("payload is base64");
    env.to_bytes()
}
