//! `wss://` relays behind TLS: nostr-relay-builder's relay behind an in-process TLS
//! terminator (tokio-rustls) whose certificate a test CA (rcgen) signed. Trusted through
//! [`RelayTls`], it carries a publication; signed by a CA the node was not told of, it is
//! refused, and the error names the relay and the TLS failure.

use std::sync::Arc;
use std::time::Duration;

use nostr_relay_builder::prelude::{LocalRelay, RelayBuilder};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const TIMEOUT: Duration = Duration::from_secs(3);
const DEV: &str = "leader monkey parrot ring guide accident before fence cannon height naive bean";

/// A certificate authority, its certificate in PEM.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> Vec<u8> {
        self.issuer.pem().into_bytes()
    }

    /// A server certificate for `localhost` signed by this CA, and its key.
    fn server_cert(
        &self,
    ) -> (
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        (cert.der().clone(), der.into())
    }
}

/// The in-process relay behind a TLS terminator with a certificate `ca` signed; its
/// `wss://localhost:PORT` URL. Both stop when the returned relay and task are dropped.
async fn tls_relay(ca: &Ca) -> (LocalRelay, tokio::task::JoinHandle<()>, String) {
    let relay = LocalRelay::new(RelayBuilder::default().addr([127, 0, 0, 1].into()));
    relay.run().await.unwrap();
    let plain = relay.url().await.to_string();
    let backend = plain
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let (cert, key) = ca.server_cert();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let terminator = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to relay.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (relay, terminator, format!("wss://localhost:{port}"))
}

fn trusting(url: &str, ca: &Ca) -> RelaySet {
    RelaySet::new(
        vec![url.to_owned()],
        RelayTls::with_ca_pems(&[("test-ca.pem".to_owned(), ca.pem())]).unwrap(),
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
    let (_relay, _terminator, url) = tls_relay(&ca).await;
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
    let (_relay, _terminator, url) = tls_relay(&stranger).await;
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
