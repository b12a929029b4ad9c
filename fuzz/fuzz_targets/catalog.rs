//! Catalog::from_json, and VerifiedCatalog::verify against a fixed root built once.
#![no_main]

use archy_registry::{Catalog, Envelope, VerifiedCatalog, blake3_hex, catalog_link};
use archy_registry_fuzz::VERIFIED_ROOT;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(catalog) = Catalog::from_json(data) {
        for app in &catalog.apps {
            app.manifest
                .validate()
                .expect("a parsed catalog's manifests validate");
        }
    }
    if let Ok(verified) = VerifiedCatalog::verify(&VERIFIED_ROOT, data) {
        assert_eq!(verified.envelope_bytes(), data);
        // The chain link is the BLAKE3 of the payload bytes, not of the envelope.
        let envelope = Envelope::from_bytes(data).expect("a verified envelope parses");
        let payload = envelope
            .payload_bytes()
            .expect("a verified payload decodes");
        assert_eq!(verified.payload_hash(), blake3_hex(&payload));
        assert_eq!(
            catalog_link(&envelope).expect("link"),
            verified.payload_hash()
        );
        let _ = verified.check_unexpired(archy_registry_fuzz::now());
        for app in &verified.catalog().apps {
            let found = verified
                .app(&app.id)
                .expect("every listed app is found by id");
            for a in &app.artifacts {
                assert!(found.artifact(&a.name).is_some());
            }
        }
    }
});
