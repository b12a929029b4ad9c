//! `archy relay run`: an iroh relay server for operators whose nodes sit behind home NATs.
//! It is the `iroh-relay` crate's own server (the engine behind iroh's public relays), so
//! nodes speak to it exactly as to those; nothing here is a protocol of ours.
//!
//! A relay forwards end-to-end encrypted packets between endpoints that cannot reach each
//! other directly and helps them punch a direct path; it never sees what they say. Its
//! queues, key cache and per-client buffers are the upstream server's, all bounded; this
//! module adds only configuration, an optional per-client rate limit, and a bounded shutdown.
//!
//! Nodes point at it with `relay_mode = ["https://relay.example:443"]` (or `http://…` for an
//! HTTP-only relay on a LAN or behind a TLS proxy).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use iroh_relay::server::{
    CertConfig, ClientRateLimit, QuicConfig, RelayConfig, Server, ServerConfig, TlsConfig,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How a relay server is set up.
#[derive(Debug, Clone)]
pub struct RelayServerConfig {
    /// The plain-HTTP listener: the relay itself when `tls` is `None`, otherwise only the
    /// captive-portal probe iroh clients send over plain HTTP.
    pub http_bind: SocketAddr,
    /// Serve the relay over HTTPS with these files; `None` means HTTP only.
    pub tls: Option<RelayTls>,
    /// At most this many bytes per second are read from one client (bursts up to one
    /// second's worth); unlimited when `None`.
    pub client_rate_bytes_per_sec: Option<NonZeroU32>,
}

/// HTTPS for the relay: a PEM certificate chain and its private key (renewed by the
/// operator's own tooling, e.g. certbot; read at start).
#[derive(Debug, Clone)]
pub struct RelayTls {
    pub https_bind: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Also answer QUIC address discovery here (iroh clients ask port 7842 by default):
    /// it tells each node its public address, which helps hole punching.
    pub quic_bind: Option<SocketAddr>,
}

/// How long a stopping relay may take to close its connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Starts the relay; it runs until the returned server is shut down or dropped.
pub async fn start(config: &RelayServerConfig) -> anyhow::Result<Server> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut relay = RelayConfig::new(config.http_bind);
    if let Some(rate) = config.client_rate_bytes_per_sec {
        let mut limit = ClientRateLimit::new(rate);
        limit.max_burst_bytes = Some(rate);
        relay.limits.client_rx = Some(limit);
    }
    let mut quic = None;
    if let Some(tls) = &config.tls {
        let server_config = tls_server_config(&tls.cert, &tls.key)?;
        quic = tls.quic_bind.map(|bind| {
            let mut q = QuicConfig::new(bind);
            q.server_config = Some(server_config.clone());
            q
        });
        relay.tls = Some(TlsConfig::new(
            tls.https_bind,
            CertConfig::Manual { server_config },
        ));
    }
    let mut server = ServerConfig::default();
    server.relay = Some(relay);
    server.quic = quic;
    Server::spawn(server).await.map_err(|e| {
        anyhow::anyhow!(
            "starting the relay (HTTP on {}{}): {e}",
            config.http_bind,
            config
                .tls
                .as_ref()
                .map(|t| format!(", HTTPS on {}", t.https_bind))
                .unwrap_or_default()
        )
    })
}

/// Runs the relay until SIGINT or SIGTERM, or until it stops by itself (an error).
pub async fn run(config: &RelayServerConfig) -> anyhow::Result<()> {
    let mut server = start(config).await?;
    match (server.https_addr(), server.http_addr()) {
        (Some(https), http) => {
            tracing::info!(%https, http = ?http, quic = ?server.quic_addr(), "relay serving over HTTPS: nodes use relay_mode = [\"https://<this host's name>:{}\"]", https.port());
        }
        (None, Some(http)) => {
            tracing::warn!(%http, "relay serving over plain HTTP (no TLS): only for a LAN, tests, or behind a TLS proxy; nodes use relay_mode = [\"http://<this host>:{}\"]", http.port());
        }
        (None, None) => bail!("the relay server listens nowhere"),
    }
    let ended = tokio::select! {
        _ = crate::shutdown_signal() => None,
        ended = server.join() => Some(ended),
    };
    if let Some(ended) = ended {
        bail!("the relay stopped by itself: {ended:?}");
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server.shutdown()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => bail!("relay shutdown: {e}"),
        Err(_) => bail!(
            "relay shutdown took longer than {} s",
            SHUTDOWN_GRACE.as_secs()
        ),
    }
}

/// A rustls server config from PEM files; each error names the file and what was wrong.
fn tls_server_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("TLS certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("TLS certificate {}: not PEM certificates", cert.display()))?;
    if certs.is_empty() {
        bail!("TLS certificate {}: no certificate in it", cert.display());
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("TLS key {}: no PEM private key read", key.display()))?;
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, private_key)
    .with_context(|| {
        format!(
            "TLS key {} does not fit certificate {}",
            key.display(),
            cert.display()
        )
    })
}

#[cfg(test)]
mod tests;
