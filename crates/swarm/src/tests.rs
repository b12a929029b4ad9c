//! Two real iroh endpoints on loopback, real filesystem stores.

use super::*;

async fn node(dir: &Path) -> Swarm {
    Swarm::start(SwarmConfig::new(dir))
        .await
        .expect("swarm starts")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn fetch_verifies_and_exports_over_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let peer = node(&tmp.path().join("peer")).await;
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let file = write(tmp.path(), "artifact", &content);
    let blob = origin.import_file(&file, "origin/artifact").await.unwrap();
    assert_eq!(blob.size, content.len() as u64);
    assert_eq!(blob.hex(), blake3::hash(&content).to_hex().to_string());

    let report = peer.fetch(&blob, &[origin.addr()]).await.unwrap();
    assert!(!report.already_present);
    let out = tmp.path().join("out");
    peer.export(&blob, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), content);
    // A second fetch moves nothing.
    assert!(
        peer.fetch(&blob, &[origin.addr()])
            .await
            .unwrap()
            .already_present
    );

    // The identity survives a restart: catalogs name the origin by it.
    let id = origin.endpoint_id();
    origin.shutdown().await;
    let again = node(&tmp.path().join("origin")).await;
    assert_eq!(again.endpoint_id(), id);
    again.shutdown().await;
    peer.shutdown().await;
}

#[tokio::test]
async fn declared_size_must_match_the_content() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let peer = node(&tmp.path().join("peer")).await;
    let content = vec![7u8; 50_000];
    let blob = origin
        .import_file(&write(tmp.path(), "a", &content), "t")
        .await
        .unwrap();

    // Declared smaller than it is: only the declared chunks are fetched, then refused.
    let short = BlobRef {
        size: 10_000,
        ..blob
    };
    let err = peer.fetch(&short, &[origin.addr()]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                declared: 10_000,
                ..
            }
        ),
        "{err}"
    );

    // Declared larger than it is: the size proof shows the real length.
    let long = BlobRef {
        size: 90_000,
        ..blob
    };
    let err = peer.fetch(&long, &[origin.addr()]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                declared: 90_000,
                ..
            }
        ),
        "{err}"
    );
    origin.shutdown().await;
    peer.shutdown().await;
}

#[tokio::test]
async fn unknown_hash_and_dead_provider_fail_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let peer = node(&tmp.path().join("peer")).await;
    let missing = BlobRef::from_hex(&blake3::hash(b"nobody has this").to_hex(), 15).unwrap();
    let err = peer.fetch(&missing, &[origin.addr()]).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains(&missing.hex()), "{err}");

    let dead = origin.addr();
    origin.shutdown().await;
    let err = peer.fetch(&missing, &[dead]).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    peer.shutdown().await;
}

#[test]
fn bad_hashes_are_named() {
    let err = BlobRef::from_hex("xyz", 1).unwrap_err();
    assert!(err.to_string().contains("xyz"));
}
