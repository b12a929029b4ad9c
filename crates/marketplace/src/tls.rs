//! TLS to `wss://` relays: the certificate authorities a relay's certificate may chain to.
//! By default the public web roots (webpki-roots), as nostr-sdk's own transport trusts; an
//! operator adds the CAs of private relays (`relay_ca_certs`), PEM files read once. Nothing
//! here turns a check off: a relay whose chain reaches none of these is refused.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::Error;

/// The CAs a `wss://` relay's certificate may chain to beyond the public roots, and the
/// TLS client configuration made of them.
#[derive(Clone, Default)]
pub struct RelayTls {
    /// Where the extra CAs came from, for messages.
    sources: Vec<String>,
    /// `None`: the public roots only (nostr-sdk's own transport).
    config: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for RelayTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayTls")
            .field("extra_cas", &self.sources)
            .finish()
    }
}

impl RelayTls {
    /// The public roots only.
    pub fn public_roots() -> Self {
        Self::default()
    }

    /// The public roots and every certificate in each PEM file; a file that cannot be read
    /// or holds no certificate is an error naming it.
    pub fn with_ca_files(paths: &[PathBuf]) -> Result<Self, Error> {
        let mut pems = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = std::fs::read(path)
                .map_err(|e| Error::RelayCa(format!("reading {}: {e}", path.display())))?;
            pems.push((path.display().to_string(), bytes));
        }
        Self::with_ca_pems(&pems)
    }

    /// The public roots and every certificate in each `(name, PEM bytes)`.
    pub fn with_ca_pems(pems: &[(String, Vec<u8>)]) -> Result<Self, Error> {
        if pems.is_empty() {
            return Ok(Self::default());
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut sources = Vec::with_capacity(pems.len());
        for (name, pem) in pems {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| Error::RelayCa(format!("{name}: not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(Error::RelayCa(format!(
                    "{name}: no certificate in it (a PEM file with -----BEGIN CERTIFICATE-----)"
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    Error::RelayCa(format!("{name}: a certificate is not a usable CA: {e}"))
                })?;
            }
            sources.push(name.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::RelayCa(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            sources,
            config: Some(Arc::new(config)),
        })
    }

    /// The files (or names) the extra CAs came from.
    pub fn extra_cas(&self) -> &[String] {
        &self.sources
    }

    /// The client configuration when extra CAs are set.
    pub(crate) fn config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.config.clone()
    }
}

/// A TLS client configuration trusting the public web roots only (as nostr-sdk's own
/// transport does), for relays our own connector dials.
pub(crate) fn public_roots_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                // The ring provider supports the default versions; this cannot fail.
                .unwrap_or_else(|e| panic!("TLS setup with ring's defaults: {e}"));
            Arc::new(config)
        })
        .clone()
}

/// Relay URLs and how to reach them. The functions that talk to relays take any of these:
/// a list of URLs (public roots only) or a [`RelaySet`] (with the operator's CAs).
pub trait RelayList: Sync {
    fn urls(&self) -> &[String];

    /// The TLS trust for `wss://` relays.
    fn tls(&self) -> Option<&RelayTls> {
        None
    }
}

impl RelayList for [String] {
    fn urls(&self) -> &[String] {
        self
    }
}

impl RelayList for Vec<String> {
    fn urls(&self) -> &[String] {
        self
    }
}

impl<const N: usize> RelayList for [String; N] {
    fn urls(&self) -> &[String] {
        self
    }
}

/// Relay URLs with the CAs their certificates may chain to.
#[derive(Debug, Clone, Default)]
pub struct RelaySet {
    pub urls: Vec<String>,
    pub tls: RelayTls,
}

impl RelaySet {
    pub fn new(urls: Vec<String>, tls: RelayTls) -> Self {
        Self { urls, tls }
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
}

impl RelayList for RelaySet {
    fn urls(&self) -> &[String] {
        &self.urls
    }

    fn tls(&self) -> Option<&RelayTls> {
        Some(&self.tls)
    }
}
