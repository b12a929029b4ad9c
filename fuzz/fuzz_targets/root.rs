//! Root::from_json and VerifiedRoot::trust_anchor on arbitrary bytes.
#![no_main]

use archy_registry::{Role, Root, VerifiedRoot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = Root::from_json(data) {
        check_root(&root);
    }
    if let Ok(anchor) = VerifiedRoot::trust_anchor(data) {
        assert_eq!(anchor.envelope_bytes(), data);
        check_root(anchor.root());
        let _ = anchor.check_unexpired(archy_registry_fuzz::now());
        // An anchor cannot rotate to itself (rotation needs version + 1).
        assert!(anchor.rotate(data).is_err());
    }
});

fn check_root(root: &Root) {
    for role in [Role::Root, Role::Catalog] {
        // "validated at parse time, so lookups cannot fail" (root.rs): every key id resolves.
        assert_eq!(root.role_keys(role).len(), root.role(role).keyids.len());
    }
}
