//! Envelope::from_bytes, then payload_bytes and valid_signers against fixed keys.
//! Must never panic on any input.
#![no_main]

use archy_registry::{Envelope, PayloadType};
use archy_registry_fuzz::ALLOWED;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::from_bytes(data) else {
        return;
    };
    let payload = env.payload_bytes();
    // The allowed list names each key twice: a key still counts at most once.
    let keys = ALLOWED.iter().chain(ALLOWED.iter());
    let signers = env.valid_signers(keys);
    // valid_signers fails exactly when the payload is not base64.
    assert_eq!(payload.is_ok(), signers.is_ok());
    if let Ok(signers) = signers {
        assert!(signers.len() <= ALLOWED.len(), "{signers:?}");
        for s in &signers {
            assert!(ALLOWED.contains(s));
        }
    }
    for t in [
        PayloadType::Root,
        PayloadType::Catalog,
        PayloadType::Manifest,
    ] {
        let _ = env.expect_type(t);
    }
    // Serializing and parsing back gives the same envelope.
    let again = Envelope::from_bytes(&env.to_bytes()).expect("to_bytes output parses");
    assert_eq!(again, env);
});
