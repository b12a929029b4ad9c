//! Verify-and-ingest cost of catalogs of 100, 1,000 and 10,000 apps, against a baseline
//! measured in the same run: parsing the same JSON (envelope, base64, payload as untyped
//! JSON) plus one ed25519 verification. Run: `cargo bench -p archy-registry --bench catalog`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use archy_registry::envelope_pae as pae;
use archy_registry::{
    Catalog, CatalogApp, Envelope, Manifest, Origin, PayloadType, Root, SecretKey, TrustState,
    VerifiedRoot,
};
use base64::Engine;
use chrono::Utc;

const MANIFEST: &str = r#"
id: app
name: App
version: 1.0.0
description: A benchmark app with the shape of a real one.
artifacts:
  - { name: image, media_type: application/vnd.oci.image.layout.v1.tar }
containers:
  - name: web
    image: { artifact: image }
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080"]
    env: { MODE: production, PASSWORD: { secret: admin } }
    ports: [{ container: 8080, host: 18080 }]
    volumes: [{ name: data, path: /data }]
    health: { http: { port: 8080, path: /healthz } }
secrets: [{ name: admin }]
ui: { container: web, port: 8080 }
"#;

fn catalog_bytes(apps: usize, key: &SecretKey) -> Vec<u8> {
    let template = Manifest::from_yaml(MANIFEST).unwrap();
    let apps = (0..apps)
        .map(|i| {
            let mut manifest = template.clone();
            manifest.id = format!("app-{i}");
            CatalogApp {
                id: manifest.id.clone(),
                version: manifest.version.clone(),
                manifest,
                artifacts: vec![archy_registry::Artifact {
                    name: "image".into(),
                    blake3: archy_registry::blake3_hex(&i.to_le_bytes()),
                    size: 2_000_000 + i as u64,
                    media_type: "application/vnd.oci.image.layout.v1.tar".into(),
                }],
            }
        })
        .collect();
    let origin = Origin {
        http: "https://origin.example".into(),
        iroh: "ab".repeat(32),
    };
    let catalog = Catalog::new(
        1,
        Utc::now() + chrono::Duration::days(30),
        None,
        origin,
        apps,
    )
    .unwrap();
    let mut env = Envelope::unsigned(PayloadType::Catalog, &catalog.to_json());
    env.sign(key).unwrap();
    env.to_bytes()
}

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let root_key = SecretKey::from_bytes(&[1; 32]);
    let catalog_key = SecretKey::from_bytes(&[2; 32]);
    let now = Utc::now();
    let root = Root::new(
        1,
        now + chrono::Duration::days(365),
        &[root_key.public()],
        1,
        &[catalog_key.public()],
        1,
    )
    .unwrap();
    let mut root_env = Envelope::unsigned(PayloadType::Root, &root.to_json());
    root_env.sign(&root_key).unwrap();
    let anchor = VerifiedRoot::trust_anchor(&root_env.to_bytes()).unwrap();
    let public = catalog_key.public();

    println!(
        "{:>7} {:>10} {:>14} {:>14} {:>7} {:>12}",
        "apps", "bytes", "ingest", "baseline", "ratio", "per app"
    );
    let mut per_app = Vec::new();
    for apps in [100usize, 1_000, 10_000] {
        let bytes = catalog_bytes(apps, &catalog_key);
        let runs = if apps >= 10_000 { 9 } else { 31 };
        let ingest = median(runs, || {
            let mut state = TrustState::new(anchor.clone());
            black_box(state.update_catalog(black_box(&bytes), now).unwrap());
        });
        let baseline = median(runs, || {
            let env: Envelope = serde_json::from_slice(black_box(&bytes)).unwrap();
            let payload = base64::engine::general_purpose::STANDARD
                .decode(&env.payload)
                .unwrap();
            let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            let sig = base64::engine::general_purpose::STANDARD
                .decode(&env.signatures[0].sig)
                .unwrap();
            assert!(public.verify(&pae(&env.payload_type, &payload), &sig));
            black_box(value);
        });
        let ratio = ingest.as_secs_f64() / baseline.as_secs_f64();
        let each = ingest / apps as u32;
        per_app.push(each);
        println!(
            "{apps:>7} {:>10} {:>14?} {:>14?} {ratio:>6.2}x {each:>12?}",
            bytes.len(),
            ingest,
            baseline
        );
    }
    let growth = per_app[2].as_secs_f64() / per_app[0].as_secs_f64();
    println!("per-app cost at 10,000 vs 100 apps: {growth:.2}x (1.0 = linear)");
}
