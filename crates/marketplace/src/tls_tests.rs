//! `wss://` relays behind TLS: nostr-relay-builder's relay behind an in-process TLS
//! terminator (tokio-rustls) whose certificate a test CA (rcgen) signed. Trusted through
//! [`RelayTls`], it carries a publication; signed by a CA the node was not told of, it is
//! refused, and the error names the relay and the TLS failure.

use std::time::Duration;

use super::*;
use crate::tls_fixture::{TestCa as Ca, TlsRelay};

const TIMEOUT: Duration = Duration::from_secs(3);
const DEV: &str = "leader monkey parrot ring guide accident before fence cannon height naive bean";

fn trusting(url: &str, ca: &Ca) -> RelaySet {
    RelaySet::new(
        vec![url.to_owned()],
        RelayTls::with_ca_pems(&[("test-ca.pem".to_owned(), ca.pem().into_bytes())]).unwrap(),
    )
}

fn notes_event(dev: &DeveloperIdentity) -> Event {
    let nostr = dev.nostr_keys().public_key();
    let envelope = crate::test_support::publication(dev.did_key(), &nostr, "notes", "1.0.0")
        .sign(dev.did_key())
        .unwrap();
    publication_event(dev, &envelope, "notes").unwrap()
}

#[tokio::test]
async fn a_relay_behind_tls_signed_by_a_trusted_ca_carries_publications() {
    let ca = Ca::new("archy test CA");
    let relay = TlsRelay::start(&ca).await;
    let url = relay.url.clone();
    let relays = trusting(&url, &ca);
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let event = notes_event(&dev);

    let report = publish_report(&event, &relays).await;
    assert_eq!(report.failed, Vec::new(), "{report:?}");
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    assert!(report.accepted[0].starts_with("wss://localhost:"));

    let found = discover(&relays, TIMEOUT).await.unwrap();
    assert!(found.relay_errors.is_empty(), "{:?}", found.relay_errors);
    assert_eq!(found.listings.len(), 1, "{:?}", found.rejected);
    assert_eq!(found.listings[0].event_id, event.id.to_hex());
}

#[tokio::test]
async fn a_relay_whose_certificate_no_trusted_ca_signed_is_refused_naming_it() {
    let trusted = Ca::new("archy test CA");
    let stranger = Ca::new("someone else's CA");
    let relay = TlsRelay::start(&stranger).await;
    let url = relay.url.clone();
    let dev = DeveloperIdentity::from_mnemonic(DEV, "", 0).unwrap();
    let event = notes_event(&dev);

    // Trusting another CA: refused, with the relay and the TLS failure named.
    let relays = trusting(&url, &trusted);
    let report = publish_report(&event, &relays).await;
    assert!(report.accepted.is_empty(), "{report:?}");
    let (relay, why) = &report.failed[0];
    assert!(relay.starts_with(&url), "{report:?}");
    assert!(why.contains("invalid peer certificate"), "{why}");
    assert!(why.contains("relay_ca_certs"), "{why}");
    let found = discover(&relays, TIMEOUT).await.unwrap();
    assert!(found.listings.is_empty());
    let (relay, why) = &found.relay_errors[0];
    assert!(relay.starts_with(&url), "{:?}", found.relay_errors);
    assert!(why.contains("invalid peer certificate"), "{why}");

    // Trusting the public roots only (nostr-sdk's own transport): refused too.
    let report = publish_report(&event, std::slice::from_ref(&url)).await;
    assert!(report.accepted.is_empty(), "{report:?}");
    assert!(
        report.failed[0].1.contains("invalid peer certificate"),
        "{report:?}"
    );
}

#[test]
fn ca_files_that_hold_no_certificate_are_refused_naming_them() {
    let dir = std::env::temp_dir().join(format!("archy-relay-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let err = RelayTls::with_ca_files(std::slice::from_ref(&empty))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty.pem") && err.contains("no certificate"),
        "{err}"
    );
    let missing = dir.join("missing.pem");
    let err = RelayTls::with_ca_files(&[missing]).unwrap_err().to_string();
    assert!(err.contains("missing.pem"), "{err}");
    let good = dir.join("ca.pem");
    std::fs::write(&good, Ca::new("archy test CA").pem()).unwrap();
    let tls = RelayTls::with_ca_files(&[good]).unwrap();
    assert_eq!(tls.extra_cas().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
