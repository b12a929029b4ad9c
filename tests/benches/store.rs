//! What the dashboard's store asks of a node with a large catalog and marketplace: 1,000
//! signed catalog apps and 1,000 third-party listings (20 publishers × 50 apps). A real node
//! (in process, real sqlite, the catalog verified by a real pull, every listing a signed
//! publication) answers the store's requests over loopback HTTP with its token, as the page
//! would: `GET /v1/catalog/apps`, `GET /v1/market`, then `GET /v1/market/{app}` for each
//! listed app (the store asks for each one's details). The baseline is serializing the same
//! data with serde_json alone, in the same run. Bodies are not compressed: the node sends no
//! `Content-Encoding` (no gzip), so the sizes given are what crosses the wire.
//!
//! Needs the rootless Podman service (the node connects to it at start), like the tests:
//!   ARCHY_PODMAN_URL=… cargo bench -p archy-tests --bench store

use std::path::Path;
use std::time::{Duration, Instant};

use archy_tests::*;

const CATALOG_APPS: usize = 1000;
const PUBLISHERS: usize = 20;
const APPS_PER_PUBLISHER: usize = 50;
const RUNS: usize = 7;
const DEV: &str = "leader monkey parrot ring guide accident before fence cannon height naive bean";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn kib(n: usize) -> String {
    format!("{:.0} KiB", n as f64 / 1024.0)
}

/// 1,000 apps made from hello's manifest (distinct ids and ports); their image is one
/// hard-linked file, so the catalog build hashes 1,000 artifacts without copying them.
fn many_apps(dir: &Path) -> std::path::PathBuf {
    let manifest = std::fs::read_to_string(repo_root().join("apps/hello/manifest.yml")).unwrap();
    let image = artifacts_dir().join("hello/image.tar");
    for i in 0..CATALOG_APPS {
        let id = format!("app{i:04}");
        let m = manifest
            .replace("id: hello", &format!("id: {id}"))
            .replace("name: Hello", &format!("name: App {i}"))
            .replace("host: 18080", &format!("host: {}", 20000 + i));
        std::fs::create_dir_all(dir.join("apps").join(&id)).unwrap();
        std::fs::write(dir.join("apps").join(&id).join("manifest.yml"), m).unwrap();
        std::fs::create_dir_all(dir.join("artifacts").join(&id)).unwrap();
        let to = dir.join("artifacts").join(&id).join("image.tar");
        if std::fs::hard_link(&image, &to).is_err() {
            std::fs::copy(&image, &to).unwrap();
        }
    }
    dir.join("apps")
}

/// 1,000 signed publications stored as discovered listings, straight into the node's
/// database (discovery itself is not what is measured).
async fn many_listings(data_dir: &Path) {
    let db = archy_node::db::open(&data_dir.join("archy.db"))
        .await
        .unwrap();
    for p in 0..PUBLISHERS {
        let dev = archy_marketplace::DeveloperIdentity::from_mnemonic(DEV, "", p as u32).unwrap();
        for a in 0..APPS_PER_PUBLISHER {
            let app = format!("tool{a:02}x{p:02}");
            let manifest = archy_registry::Manifest::from_yaml(&format!(
                "id: {app}\nname: Tool {a} by {p}\nversion: 1.{a}.0\ndescription: A third-party tool, one of many.\n\
                 artifacts:\n  - {{ name: image, media_type: application/vnd.oci.image.layout.v1.tar }}\n\
                 containers:\n  - name: web\n    image: {{ artifact: image }}\n    ports:\n      - {{ container: 8080, host: {} }}\n\
                 resources:\n  disk_mb: 10\n  memory_mb: 64\n",
                30000 + p * APPS_PER_PUBLISHER + a
            ))
            .unwrap();
            let publication = archy_registry::Publication::new(
                archy_registry::Publisher {
                    did: dev.did_key().public().did_key(),
                    nostr: dev.nostr_public_hex(),
                },
                manifest,
                vec![archy_registry::Artifact {
                    name: "image".into(),
                    blake3: "cd".repeat(32),
                    size: 1_000_000,
                    media_type: "application/vnd.oci.image.layout.v1.tar".into(),
                }],
                archy_registry::Origin {
                    http: "http://127.0.0.1:1".into(),
                    iroh: "ef".repeat(32),
                },
                chrono::Utc::now(),
            );
            let envelope = publication.sign(dev.did_key()).unwrap();
            let row = archy_node::db::MarketRow {
                author: dev.nostr_public_hex(),
                app_id: app.clone(),
                event_id: blake3::hash(app.as_bytes()).to_hex().to_string(),
                created_at: 1_700_000_000,
                version: format!("1.{a}.0"),
                name: format!("Tool {a} by {p}"),
                did: dev.did_key().public().did_key(),
                withdrawn: None,
            };
            archy_node::db::upsert_listing(&db, &row, &envelope.to_bytes())
                .await
                .unwrap();
        }
    }
    db.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let setup = Instant::now();
    let keys = Keys::new();
    let root = keys.write_root(dir);
    let (swarm, origin_id) = origin_swarm(&dir.join("origin")).await;
    let apps = many_apps(&dir.join("many"));
    let (listener, origin) = loopback_listener().await;
    let catalog = signed_catalog_of(&apps, &keys, &origin, &origin_id, 1, 30).to_bytes();
    let catalog_len = catalog.len();
    let server = serve_bytes(listener, catalog, swarm);
    let data_dir = dir.join("node");
    std::fs::create_dir_all(&data_dir).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    many_listings(&data_dir).await;
    let node = archy_node::Node::start(archy_node::NodeConfig {
        pull_interval_seconds: 3600,
        reconcile_interval_seconds: 3600,
        ..node_config(&data_dir, &origin, &root)
    })
    .await
    .expect("node starts");
    let pulled = Instant::now();
    node.pull_catalog().await.expect("the catalog is accepted");
    let pull_time = pulled.elapsed();
    let (api_listener, api) = loopback_listener().await;
    let router = archy_node::api_router(node.clone()).unwrap();
    let api_server = tokio::spawn(axum::serve(api_listener, router).into_future());
    let http = api_client(&data_dir);
    eprintln!(
        "setup {:.1} s (catalog envelope {}, its pull and verification {})",
        setup.elapsed().as_secs_f64(),
        kib(catalog_len),
        ms(pull_time)
    );

    let get = |path: String| {
        let http = http.clone();
        let url = format!("{api}{path}");
        async move {
            let r = http.get(&url).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            assert!(
                r.headers().get("content-encoding").is_none(),
                "the node compresses now: update this bench"
            );
            r.bytes().await.unwrap()
        }
    };

    // What the node answers, over HTTP.
    let mut catalog_t = Vec::new();
    let mut market_t = Vec::new();
    let mut details_t = Vec::new();
    let (mut catalog_body, mut market_body, mut details_bytes) = (0, 0, 0);
    let mut listed: Vec<archy_api::MarketRow> = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let body = get(archy_api::routes::CATALOG_APPS.to_owned()).await;
        catalog_t.push(t.elapsed());
        catalog_body = body.len();
        let apps: Vec<archy_api::CatalogAppView> = serde_json::from_slice(&body).unwrap();
        assert_eq!(apps.len(), CATALOG_APPS);

        let t = Instant::now();
        let body = get(archy_api::routes::MARKET.to_owned()).await;
        market_t.push(t.elapsed());
        market_body = body.len();
        listed = serde_json::from_slice(&body).unwrap();
        assert_eq!(listed.len(), PUBLISHERS * APPS_PER_PUBLISHER);

        // The store then asks for each app's details, all at once (as the page does).
        let t = Instant::now();
        let ids: std::collections::BTreeSet<&str> =
            listed.iter().map(|l| l.app_id.as_str()).collect();
        let bodies =
            futures::future::join_all(ids.iter().map(|id| get(archy_api::routes::market_app(id))))
                .await;
        details_t.push(t.elapsed());
        details_bytes = bodies.iter().map(|b| b.len()).sum();
    }

    // The baseline: the same data serialized by serde_json alone.
    let apps: Vec<archy_api::CatalogAppView> = node.catalog_apps().await.unwrap();
    let mut details: Vec<Vec<archy_api::MarketDetail>> = Vec::new();
    let ids: std::collections::BTreeSet<&str> = listed.iter().map(|l| l.app_id.as_str()).collect();
    for id in &ids {
        details.push(node.market_show(id).await.unwrap());
    }
    let (mut base_catalog, mut base_market, mut base_details) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        let a = serde_json::to_vec(&apps).unwrap();
        base_catalog.push(t.elapsed());
        assert_eq!(a.len(), catalog_body);
        let t = Instant::now();
        let b = serde_json::to_vec(&listed).unwrap();
        base_market.push(t.elapsed());
        assert_eq!(b.len(), market_body);
        let t = Instant::now();
        let n: usize = details
            .iter()
            .map(|d| serde_json::to_vec(d).unwrap().len())
            .sum();
        base_details.push(t.elapsed());
        assert!(
            n.abs_diff(details_bytes) < 64 * ids.len(),
            "{n} vs {details_bytes}"
        );
    }

    println!(
        "store data: {CATALOG_APPS} catalog apps, {} listings; median of {RUNS} runs; bodies uncompressed (the node does not gzip)",
        listed.len()
    );
    println!(
        "  GET /v1/catalog/apps      node {:>9}   serde_json alone {:>9}   body {}",
        ms(median(catalog_t)),
        ms(median(base_catalog)),
        kib(catalog_body)
    );
    println!(
        "  GET /v1/market            node {:>9}   serde_json alone {:>9}   body {}",
        ms(median(market_t)),
        ms(median(base_market)),
        kib(market_body)
    );
    println!(
        "  GET /v1/market/{{app}} x{} node {:>9}   serde_json alone {:>9}   bodies {}",
        ids.len(),
        ms(median(details_t)),
        ms(median(base_details)),
        kib(details_bytes)
    );

    api_server.abort();
    server.abort();
    let _ = node.shutdown().await;
}
