//! The relay `archy relay run` starts, with real parts: two swarm endpoints that know each
//! other only by id and relay URL connect through it; HTTPS with the operator's files.

use std::net::Ipv4Addr;

use archy_swarm::{PeerAddr, RelayMode, Swarm, SwarmConfig};

use super::*;

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

#[tokio::test]
async fn nodes_behind_it_reach_each_other_by_id_and_relay_url() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&RelayServerConfig {
        http_bind: loopback(),
        tls: None,
        client_rate_bytes_per_sec: NonZeroU32::new(8 * 1024 * 1024),
    })
    .await
    .unwrap();
    let url = format!("http://{}", server.http_addr().unwrap());
    let relay: RelayMode = url.parse().unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let mut config = SwarmConfig::new(tmp.path().join(name));
        config.relay_mode = relay.clone();
        let swarm = Swarm::start(config).await.unwrap();
        assert!(
            swarm.online(Duration::from_secs(20)).await,
            "{name} is online"
        );
        nodes.push(swarm);
    }
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 241) as u8).collect();
    let file = tmp.path().join("blob");
    std::fs::write(&file, &data).unwrap();
    let blob = nodes[1].import_file(&file, "test/blob").await.unwrap();
    let b = nodes[1].addr();
    assert_eq!(b.relay_url.as_deref(), Some(format!("{url}/").as_str()));
    let through_relay = PeerAddr { addrs: vec![], ..b };
    nodes[0].fetch(&blob, &[through_relay]).await.unwrap();
    let out = tmp.path().join("out");
    nodes[0].export(&blob, &out).await.unwrap();
    assert!(
        std::fs::read(&out).unwrap() == data,
        "the blob arrived whole"
    );
    assert!(
        server.metrics().server.bytes_sent.get() > 0,
        "the relay carried the connection"
    );
    for node in nodes {
        node.shutdown().await;
    }
    tokio::time::timeout(SHUTDOWN_GRACE, server.shutdown())
        .await
        .unwrap()
        .unwrap();
}

/// A self-signed certificate for 127.0.0.1, written as the operator's PEM files.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf, rcgen::CertifiedKey<rcgen::KeyPair>) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("relay.crt"), dir.join("relay.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path, cert)
}

#[tokio::test]
async fn https_uses_the_operators_certificate_and_quic_discovery_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, issued) = self_signed(tmp.path());
    let server = start(&RelayServerConfig {
        http_bind: loopback(),
        tls: Some(RelayTls {
            https_bind: loopback(),
            cert,
            key,
            quic_bind: Some(loopback()),
        }),
        client_rate_bytes_per_sec: None,
    })
    .await
    .unwrap();
    let https = server.https_addr().expect("HTTPS listens");
    assert!(
        server.quic_addr().is_some(),
        "QUIC address discovery listens"
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(issued.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = client
        .get(format!("https://{https}/healthz"))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success(), "{}", health.status());
    // Anyone else's certificate is not this one: a client that does not trust it refuses.
    let stranger = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("https://{https}/healthz"))
            .send()
            .await
            .is_err()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_tls_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(tmp.path());
    let (_, other_key, _) = self_signed(&{
        let d = tmp.path().join("other");
        std::fs::create_dir(&d).unwrap();
        d
    });
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = tmp.path().join("missing.pem");
    let config = |cert: &Path, key: &Path| RelayServerConfig {
        http_bind: loopback(),
        tls: Some(RelayTls {
            https_bind: loopback(),
            cert: cert.to_owned(),
            key: key.to_owned(),
            quic_bind: None,
        }),
        client_rate_bytes_per_sec: None,
    };
    for (cert, key, expect) in [
        (
            &missing,
            &key,
            format!("TLS certificate {}", missing.display()),
        ),
        (&garbage, &key, "no certificate in it".to_owned()),
        (&cert, &garbage, format!("TLS key {}", garbage.display())),
        (&cert, &other_key, "does not fit certificate".to_owned()),
    ] {
        let err = format!("{:#}", start(&config(cert, key)).await.unwrap_err());
        assert!(err.contains(&expect), "{expect:?} not in {err}");
    }
}
