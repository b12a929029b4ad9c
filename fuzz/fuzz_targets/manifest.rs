//! Manifest::from_yaml (UTF-8 input) and Manifest::from_json_value; every manifest that
//! parses must validate, have a start order, and round-trip through serde_json unchanged.
#![no_main]

use archy_registry::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(manifest) = Manifest::from_yaml(text)
    {
        exercise(&manifest);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(manifest) = Manifest::from_json_value(value)
    {
        exercise(&manifest);
    }
});

fn exercise(manifest: &Manifest) {
    manifest.validate().expect("a parsed manifest validates");
    let order = manifest
        .start_order()
        .expect("a validated manifest has a start order");
    assert_eq!(order.len(), manifest.containers.len());
    let _ = manifest.check_sandbox_policy();

    // Round trip: serialize, parse back, equal.
    let json = serde_json::to_vec(manifest).expect("a manifest serializes");
    let back: Manifest = match serde_json::from_slice(&json) {
        Ok(m) => m,
        Err(e) => panic!(
            "serialized manifest does not parse back: {e}\njson: {}",
            String::from_utf8_lossy(&json)
        ),
    };
    assert_eq!(&back, manifest, "json: {}", String::from_utf8_lossy(&json));
    // The catalog path (JSON value, then validate) accepts it too.
    let value: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
    let again = Manifest::from_json_value(value).expect("the round-tripped manifest validates");
    assert_eq!(&again, manifest);
}
