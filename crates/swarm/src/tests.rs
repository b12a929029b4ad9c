//! Real iroh endpoints on loopback, real filesystem stores.

use super::*;

mod corrupt;
mod dead_peers;
mod fetch_policy;
mod herd;
mod leaving;
mod relays;
mod resume;
mod services;

async fn node(dir: &Path) -> Swarm {
    Swarm::start(SwarmConfig::new(dir))
        .await
        .expect("swarm starts")
}

/// A node serving at most `rate` bytes per second (to make transfers slow enough to watch).
async fn throttled_node(dir: &Path, rate: u64) -> Swarm {
    let mut config = SwarmConfig::new(dir);
    config.upload_limit_bytes_per_sec = Some(rate);
    Swarm::start(config).await.expect("swarm starts")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `len` bytes of deterministic, incompressible content (xorshift from `seed`).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut x = seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// Imports `len` bytes of fresh content into `swarm` and returns the blob.
async fn import(swarm: &Swarm, dir: &Path, len: usize, seed: u64) -> (BlobRef, Vec<u8>) {
    let data = content(len, seed);
    let file = write(dir, &format!("content-{seed}-{len}"), &data);
    let blob = swarm
        .import_file(&file, &format!("test/{seed}"))
        .await
        .unwrap();
    (blob, data)
}

/// Checks `swarm` holds exactly `data` under `blob`.
async fn assert_holds(swarm: &Swarm, blob: &BlobRef, data: &[u8], scratch: &Path) {
    let out = scratch.join(format!("export-{}-{}", blob.hex(), swarm.endpoint_id()));
    swarm.export(blob, &out).await.unwrap();
    assert!(
        std::fs::read(&out).unwrap() == data,
        "exported bytes differ"
    );
    std::fs::remove_file(&out).unwrap();
}

/// An address where nothing answers: a swarm that was started and shut down.
async fn dead_peer(dir: &Path) -> PeerAddr {
    let s = node(dir).await;
    let addr = s.addr();
    s.shutdown().await;
    addr
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

async fn serve_origin(swarm: std::sync::Arc<Swarm>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, http_routes(swarm)).await.unwrap() });
    url
}

#[tokio::test]
async fn http_fallback_verifies_resumes_and_is_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = std::sync::Arc::new(node(&tmp.path().join("origin")).await);
    let peer = node(&tmp.path().join("peer")).await;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 239) as u8).collect();
    let blob = origin
        .import_file(&write(tmp.path(), "a", &content), "t")
        .await
        .unwrap();
    let url = serve_origin(origin.clone()).await;

    // Range requests are honoured.
    let client = reqwest::Client::new();
    let ranged = client
        .get(format!("{url}/v1/blobs/{}", blob.hex()))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &content[10..20]);

    // A part file from an interrupted run is resumed, not refetched: poison its bytes
    // and the resumed download fails verification (then starts clean and succeeds).
    let part = tmp
        .path()
        .join("peer/partial")
        .join(format!("{}.part", blob.hex()));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, vec![0u8; 100_000]).unwrap();
    let err = peer.fetch_http(&blob, &url).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert!(!part.exists(), "a part that failed verification was kept");
    std::fs::write(&part, &content[..100_000]).unwrap();
    peer.fetch_http(&blob, &url).await.unwrap();
    let out = tmp.path().join("out");
    peer.export(&blob, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), content);
    let m = peer.metrics();
    assert_eq!((m.bytes_from_http, m.verification_failures), (blob.size, 1));

    // iroh unreachable: the origin's HTTP finishes the job, and the fallback is counted.
    let other = node(&tmp.path().join("other")).await;
    let dead = PeerAddr {
        id: origin.endpoint_id().to_string(),
        addrs: vec!["127.0.0.1:9".parse().unwrap()],
        relay_url: None,
    };
    let seen = std::sync::atomic::AtomicU64::new(0);
    let on_bytes = |n: u64| seen.store(n, std::sync::atomic::Ordering::Relaxed);
    other
        .fetch_from_origin(&blob, Some(&dead), &url, &on_bytes)
        .await
        .unwrap();
    assert_eq!(
        seen.into_inner(),
        blob.size,
        "progress did not reach the full size"
    );
    assert_eq!(other.metrics().http_fallbacks, 1);
    assert_eq!(
        other.complete_size(&blob.hash).await.unwrap(),
        Some(blob.size)
    );
}

#[tokio::test]
async fn http_bytes_that_do_not_match_the_hash_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = node(&tmp.path().join("peer")).await;
    // A lying HTTP server: right length, wrong bytes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v1/blobs/{hash}",
        axum::routing::get(|| async { vec![1u8; 1000] }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let blob = BlobRef::from_hex(&blake3::hash(&[2u8; 1000]).to_hex(), 1000).unwrap();
    let err = peer.fetch_http(&blob, &url).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(peer.complete_size(&blob.hash).await.unwrap(), None);
    // Longer than declared: cut off at the declared size.
    let short = BlobRef { size: 10, ..blob };
    let err = peer.fetch_http(&short, &url).await.unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    assert_eq!(peer.metrics().verification_failures, 2);
}

/// Reads all of what [`Swarm::open_complete`] opened.
async fn read_all(bytes: BlobBytes) -> (bool, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match bytes {
        BlobBytes::File(mut f) => {
            std::io::Read::read_to_end(&mut f, &mut out).unwrap();
            (true, out)
        }
        BlobBytes::Reader(mut r) => {
            r.read_to_end(&mut out).await.unwrap();
            (false, out)
        }
    }
}

#[tokio::test]
async fn a_complete_blob_opens_as_the_stores_own_file_or_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = node(&tmp.path().join("origin")).await;
    let peer = node(&tmp.path().join("peer")).await;
    // Fetched (verified as it streamed): the store's own data file, not a copy.
    let (big, data) = import(&origin, tmp.path(), 300_000, 7).await;
    peer.fetch(&big, &[origin.addr()]).await.unwrap();
    let (file, read) = read_all(peer.open_complete(&big).await.unwrap()).await;
    assert!(file, "a fetched blob of 300 kB has a data file of its own");
    assert!(read == data, "the opened bytes are the blob's");
    let data_dir = tmp.path().join("peer").join("blobs");
    let files_before = std::fs::read_dir(&data_dir).unwrap().count();
    // Small blobs live in the store's database: read through the store.
    let (small, data) = import(&origin, tmp.path(), 1000, 8).await;
    let (file, read) = read_all(origin.open_complete(&small).await.unwrap()).await;
    assert!(!file && read == data);
    // Only a complete blob of the declared size opens.
    let wrong = BlobRef {
        size: big.size + 1,
        ..big
    };
    assert!(matches!(
        peer.open_complete(&wrong).await,
        Err(Error::SizeMismatch { .. })
    ));
    let absent = BlobRef::from_hex(&"ab".repeat(32), 10).unwrap();
    let err = peer.open_complete(&absent).await.unwrap_err().to_string();
    assert!(err.contains("not complete in the store"), "{err}");
    assert_eq!(
        std::fs::read_dir(&data_dir).unwrap().count(),
        files_before,
        "opening wrote nothing"
    );
    origin.shutdown().await;
    peer.shutdown().await;
}
