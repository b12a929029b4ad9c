//! For tests of `wss://` relays (feature `test-support`): a certificate authority (rcgen)
//! and nostr-relay-builder's in-process relay behind a TLS terminator (tokio-rustls) with a
//! `localhost` certificate that CA signed.

use std::sync::Arc;

use nostr_relay_builder::prelude::{LocalRelay, RelayBuilder};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};

/// A certificate authority made for a test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        Self { issuer }
    }

    /// Its certificate, PEM: what `relay_ca_certs` names.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("server params")
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der.into())
        .expect("server TLS config")
    }
}

/// The in-process relay behind TLS; both stop when this is dropped.
pub struct TlsRelay {
    pub relay: LocalRelay,
    /// `wss://localhost:PORT`
    pub url: String,
    /// The relay itself, `ws://127.0.0.1:PORT`.
    pub plain_url: String,
    terminator: tokio::task::JoinHandle<()>,
}

impl TlsRelay {
    /// A relay whose certificate `ca` signed.
    pub async fn start(ca: &TestCa) -> Self {
        let relay = LocalRelay::new(RelayBuilder::default().addr([127, 0, 0, 1].into()));
        relay.run().await.expect("relay runs");
        let plain_url = relay.url().await.to_string();
        let backend = plain_url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .to_owned();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server_config()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let terminator = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let backend = backend.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake here.
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
        Self {
            relay,
            url: format!("wss://localhost:{port}"),
            plain_url,
            terminator,
        }
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        self.terminator.abort();
        self.relay.shutdown();
    }
}
