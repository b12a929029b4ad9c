//! What the dashboard's store asks of a node with a large catalog and marketplace: 1,000
//! signed catalog apps and 1,000 third-party listings (20 publishers × 50 apps, each
//! publisher scored). A real node (in process, real sqlite, the catalog verified by a real
//! pull, every listing a signed publication) answers `GET /v1/store`, the one request the
//! store page makes, through its real axum router (front door, error mapping, compression):
//!
//! - server time: the router called in process (`oneshot`), until the whole body is made
//!   (view built from sqlite and the trust state, JSON, compression when asked);
//! - loopback: the same over HTTP with reqwest, as a client sees it;
//! - bytes on the wire: the body as sent, plain and with `Accept-Encoding: gzip` and `br`;
//! - baseline: serde_json alone serializing the same `StoreView`, in the same run.
//!
//! For comparison, once: what the page asked for before (`GET /v1/catalog/apps`,
//! `GET /v1/market`, then `GET /v1/market/{app}` per listed app).
//!
//! Needs the rootless Podman service (the node connects to it at start), like the tests:
//!   ARCHY_PODMAN_URL=… cargo bench -p archy-tests --bench store

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use archy_tests::*;
use tower::ServiceExt as _;

const CATALOG_APPS: usize = 1000;
const PUBLISHERS: usize = 20;
const APPS_PER_PUBLISHER: usize = 50;
const RUNS: usize = 15;
const DEV: &str = "leader monkey parrot ring guide accident before fence cannon height naive bean";
/// The issue's bounds for the store page.
const MAX_SERVER: Duration = Duration::from_millis(100);
const MAX_WIRE: usize = 300 * 1000;

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

/// The body decoded from its `Content-Encoding`.
fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(body, 64 * 1024)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
    out
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
            let envelope = archy_marketplace::test_support::signed_publication(&dev, manifest);
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
        // Each publisher scored, with the terms the store explains.
        let explanation = serde_json::json!([
            { "points": 40, "reason": format!("followed by 2 keys you trust (publisher {p})") },
            { "points": 10, "reason": "listed for more than 30 days" },
            { "points": -5, "reason": "reported once by a key you follow" },
        ]);
        archy_node::db::store_score(&db, &dev.nostr_public_hex(), 45, &explanation)
            .await
            .unwrap();
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
    let router = archy_node::api_router(node.clone()).unwrap();
    let (api_listener, api) = loopback_listener().await;
    let api_server = tokio::spawn(axum::serve(api_listener, router.clone()).into_future());
    let http = api_client(&data_dir);
    let token = archy_node::auth::read_token(&archy_node::auth::token_path(&data_dir)).unwrap();
    eprintln!(
        "setup {:.1} s (catalog envelope {}, its pull and verification {})",
        setup.elapsed().as_secs_f64(),
        kib(catalog_len),
        ms(pull_time)
    );

    // The router in process: the server's own time, until the last byte of the body.
    let in_process = |encoding: Option<&'static str>| {
        let router = router.clone();
        let token = token.as_str().to_owned();
        async move {
            let mut request = axum::http::Request::get(archy_api::routes::STORE)
                .header("host", "127.0.0.1")
                .header("authorization", format!("Bearer {token}"));
            if let Some(e) = encoding {
                request = request.header("accept-encoding", e);
            }
            let t = Instant::now();
            let response = router
                .oneshot(request.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            let sent = response
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (t.elapsed(), sent, body)
        }
    };
    // The same over loopback HTTP, as a client sees it.
    let over_http = |encoding: Option<&'static str>| {
        let http = http.clone();
        let url = format!("{api}{}", archy_api::routes::STORE);
        async move {
            let mut request = http.get(&url);
            if let Some(e) = encoding {
                request = request.header("accept-encoding", e);
            }
            let t = Instant::now();
            let r = request.send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let sent = r
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = r.bytes().await.unwrap();
            (t.elapsed(), sent, body)
        }
    };

    // The first view after start verifies every listing's publication once.
    let (cold, _, body) = in_process(None).await;
    let view: archy_api::StoreView = serde_json::from_slice(&body).unwrap();
    assert_eq!(view.catalog.len(), CATALOG_APPS);
    let listed: usize = view.publishers.iter().map(|p| p.listings.len()).sum();
    assert_eq!(listed, PUBLISHERS * APPS_PER_PUBLISHER);
    assert!(
        view.publishers
            .iter()
            .flat_map(|p| &p.listings)
            .all(|l| l.sandbox == "passes" && l.local_id.is_some() && !l.may.is_empty()),
        "every listing verifies"
    );
    assert!(view.publishers.iter().all(|p| p.terms.len() == 3));
    let plain = serde_json::to_vec(&view).unwrap();
    assert_eq!(plain, body, "the route's body is the view's JSON");

    let encodings: [(&str, Option<&'static str>); 3] = [
        ("identity", None),
        ("gzip", Some("gzip")),
        ("br", Some("br")),
    ];
    let mut rows = Vec::new();
    for (name, encoding) in encodings {
        let (mut server_t, mut http_t) = (Vec::new(), Vec::new());
        let mut wire = 0;
        for _ in 0..RUNS {
            let (t, sent, body) = in_process(encoding).await;
            assert_eq!(sent.as_deref(), encoding, "{name}: content-encoding");
            assert_eq!(
                decode(sent.as_deref(), &body),
                plain,
                "{name}: decodes to the view"
            );
            server_t.push(t);
            wire = body.len();
            let (t, sent, body) = over_http(encoding).await;
            assert_eq!(sent.as_deref(), encoding, "{name} over HTTP");
            assert_eq!(body.len(), wire, "{name}: the same bytes over HTTP");
            http_t.push(t);
        }
        rows.push((name, median(server_t), median(http_t), wire));
    }

    // The baseline: serde_json alone, the same view, in the same run.
    let mut base = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let bytes = serde_json::to_vec(&view).unwrap();
        base.push(t.elapsed());
        assert_eq!(bytes.len(), plain.len());
    }
    let base = median(base);
    // And building the view alone (sqlite, trust state, words), without JSON.
    let mut build = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let v = node.store().await.unwrap();
        build.push(t.elapsed());
        assert_eq!(v.catalog.len(), CATALOG_APPS);
    }
    let build = median(build);

    // What the page asked for before, once: the catalog, the market, then each app's details.
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{api}{path}");
        async move {
            let r = http.get(&url).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            r.bytes().await.unwrap().len()
        }
    };
    let t = Instant::now();
    let mut before_bytes = get(archy_api::routes::CATALOG_APPS.to_owned()).await;
    let market: Vec<archy_api::MarketRow> = serde_json::from_slice(
        &http
            .get(format!("{api}{}", archy_api::routes::MARKET))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    before_bytes += serde_json::to_vec(&market).unwrap().len();
    let ids: std::collections::BTreeSet<&str> = market.iter().map(|l| l.app_id.as_str()).collect();
    let details =
        futures::future::join_all(ids.iter().map(|id| get(archy_api::routes::market_app(id))))
            .await;
    before_bytes += details.iter().sum::<usize>();
    let before = t.elapsed();

    println!(
        "store page data: {CATALOG_APPS} catalog apps, {listed} listings by {PUBLISHERS} publishers; median of {RUNS} runs"
    );
    println!(
        "  GET /v1/store, first view after start (verifies {listed} publications): {}",
        ms(cold)
    );
    println!(
        "  building the view alone (sqlite, trust state, words): {}",
        ms(build)
    );
    println!(
        "  serde_json alone (baseline), same view:               {}   {} ({} bytes)",
        ms(base),
        kib(plain.len()),
        plain.len()
    );
    for (name, server_t, http_t, wire) in &rows {
        println!(
            "  GET /v1/store {name:<8}  server {:>8} ({:>5.1}x baseline)   loopback {:>8}   on the wire {:>7} ({:>3.0}% of plain, {wire} bytes)",
            ms(*server_t),
            server_t.as_secs_f64() / base.as_secs_f64(),
            ms(*http_t),
            kib(*wire),
            *wire as f64 * 100.0 / plain.len() as f64,
        );
    }
    println!(
        "  before: /v1/catalog/apps + /v1/market + {} x /v1/market/{{app}}: {} over loopback, {} uncompressed",
        ids.len(),
        ms(before),
        kib(before_bytes)
    );
    let (_, gzip_server, _, gzip_wire) = rows[1];
    println!(
        "  bounds: server <= {} ms: {} (gzip {}); wire <= {} KB: {} (gzip {} bytes)",
        MAX_SERVER.as_millis(),
        if gzip_server <= MAX_SERVER {
            "met"
        } else {
            "MISSED"
        },
        ms(gzip_server),
        MAX_WIRE / 1000,
        if gzip_wire <= MAX_WIRE {
            "met"
        } else {
            "MISSED"
        },
        gzip_wire
    );

    api_server.abort();
    server.abort();
    let _ = node.shutdown().await;
}
