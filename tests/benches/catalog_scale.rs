//! What a catalog's size costs a node (issue 15, item 5): for catalogs of 1, 1,000 and
//! 10,000 apps, a real `archy node run` process (release build) is started against an
//! origin on loopback serving that catalog, and measured:
//!
//! - start → catalog verified: from spawning the process until `GET /v1/status` names the
//!   catalog's version (polled every 5 ms), median of a few starts, each from an empty
//!   data dir;
//! - memory: the process's resident set (`VmRSS`) once the catalog is verified and the node
//!   has settled, and its peak (`VmHWM`), from `/proc/<pid>/status`;
//! - restarted: the same, for a node started again on the data dir of the first start (its
//!   catalog already on disk, checked again at start; the origin still serves it);
//! - baseline, same run: `VerifiedCatalog::verify` of the same bytes in this process (the
//!   least any node must do with them), and the catalog's own size in bytes.
//!
//! Linear means: time and resident memory above the 1-app node grow in proportion to the
//! catalog's bytes. The table gives both per catalog byte.
//!
//! Every app is hello's manifest under its own id and port, with an artifact entry that is
//! never fetched (the node fetches artifacts on install, not at start).
//!
//! Needs the `archy` release binary beside this bench (scripts/bench.sh builds it) and the
//! rootless Podman service (the node connects to it at start):
//!   ARCHY_PODMAN_URL=… scripts/bench.sh catalog_scale

use std::path::Path;
use std::time::{Duration, Instant};

use archy_registry::{Catalog, CatalogApp, Envelope, Manifest, PayloadType, VerifiedCatalog};
use archy_tests::*;

const SIZES: [usize; 3] = [1, 1_000, 10_000];
const STARTS: usize = 3;

fn catalog(keys: &Keys, http: &str, iroh: &str, apps: usize) -> Envelope {
    let text = std::fs::read_to_string(repo_root().join("apps/hello/manifest.yml")).unwrap();
    let template = Manifest::from_yaml(&text).unwrap();
    let artifacts = template.artifacts.clone();
    let apps = (0..apps)
        .map(|i| {
            let mut manifest = Manifest::from_yaml(
                &text
                    .replace("id: hello", &format!("id: app{i:05}"))
                    .replace("host: 18080", &format!("host: {}", 20000 + i % 40000)),
            )
            .unwrap();
            manifest.name = format!("App {i}");
            CatalogApp {
                id: manifest.id.clone(),
                version: manifest.version.clone(),
                manifest,
                artifacts: artifacts
                    .iter()
                    .map(|a| archy_registry::Artifact {
                        name: a.name.clone(),
                        blake3: archy_registry::blake3_hex(format!("{i}/{}", a.name).as_bytes()),
                        size: 1_000_000 + i as u64,
                        media_type: a.media_type.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    let origin = archy_registry::Origin {
        http: http.to_owned(),
        iroh: iroh.to_owned(),
    };
    let expires = chrono::Utc::now() + chrono::Duration::days(30);
    let catalog = Catalog::new(1, expires, None, origin, apps).unwrap();
    let mut env = Envelope::unsigned(PayloadType::Catalog, &catalog.to_json());
    env.sign(&keys.catalog).unwrap();
    env
}

/// `(kB resident, kB peak)` of a process, from `/proc/<pid>/status`.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Start {
    verified: Duration,
    rss_kb: u64,
    peak_kb: u64,
}

/// One `archy node run` until its catalog is verified: from an empty data dir when
/// `fresh`, else on the data dir a previous start left.
async fn start_once(dir: &Path, origin: &TestOrigin, fresh: bool) -> Start {
    if fresh {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::fs::create_dir_all(dir).unwrap();
    let api = format!("http://127.0.0.1:{}", free_port());
    let config = write_node_config(dir, &origin.url, &origin.root, &api, "");
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let began = Instant::now();
    let mut child = std::process::Command::new(archy_binary())
        .args(["node", "run", "--config"])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let token = archy_node::auth::token_path(&dir.join("node"));
    let verified = loop {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "the node did not verify its catalog in 120 s; log: {}",
            std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
        );
        if token.exists() {
            let client = api_client(&dir.join("node"));
            if let Ok(r) = client.get(format!("{api}/v1/status")).send().await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["catalog"]["version"].is_u64()
            {
                break began.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Let start-up work that follows the catalog (caches warmed in the background) finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_kb, peak_kb) = memory_kb(child.id());
    // SIGTERM, so the node closes its database and store cleanly for the restart.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stop = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if stop.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.wait().unwrap();
    Start {
        verified,
        rss_kb,
        peak_kb,
    }
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    archy_binary();
    let tmp = tempfile::tempdir().unwrap();
    println!(
        "{:>6} {:>10} {:>11} {:>11} {:>9} {:>9} {:>13} {:>13} {:>11} {:>11}",
        "apps",
        "bytes",
        "start→ok",
        "verify",
        "RSS MiB",
        "peak MiB",
        "RSS/byte*",
        "peak/byte*",
        "restart→ok",
        "RSS again"
    );
    let mut first: Option<(usize, u64, u64)> = None;
    for apps in SIZES {
        let dir = tmp.path().join(format!("n{apps}"));
        std::fs::create_dir_all(&dir).unwrap();
        let origin = TestOrigin::with(&dir, |keys, url, id| catalog(keys, url, id, apps)).await;
        let bytes = origin.catalog();
        let anchor =
            archy_registry::VerifiedRoot::trust_anchor(&std::fs::read(&origin.root).unwrap())
                .unwrap();
        let verify = median(
            (0..STARTS)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(VerifiedCatalog::verify(&anchor, &bytes).unwrap());
                    t.elapsed()
                })
                .collect(),
        );
        let mut starts = Vec::new();
        for run in 0..STARTS {
            starts.push(start_once(&dir.join(format!("node{run}")), &origin, true).await);
        }
        let mut restarts = Vec::new();
        for _ in 0..STARTS {
            restarts.push(start_once(&dir.join("node0"), &origin, false).await);
        }
        let restarted = median(restarts.iter().map(|s| s.verified).collect());
        let rss_again = median(restarts.iter().map(|s| s.rss_kb).collect());
        let verified = median(starts.iter().map(|s| s.verified).collect());
        let rss = median(starts.iter().map(|s| s.rss_kb).collect());
        let peak = median(starts.iter().map(|s| s.peak_kb).collect());
        let (per_rss, per_peak) = match first {
            Some((_, base_rss, base_peak)) => {
                let extra = (bytes.len() - first.unwrap().0) as f64;
                (
                    format!("{:.1}", (rss as f64 - base_rss as f64) * 1024.0 / extra),
                    format!("{:.1}", (peak as f64 - base_peak as f64) * 1024.0 / extra),
                )
            }
            None => {
                first = Some((bytes.len(), rss, peak));
                ("-".into(), "-".into())
            }
        };
        println!(
            "{:>6} {:>10} {:>9.0}ms {:>9.1}ms {:>9.1} {:>9.1} {:>13} {:>13} {:>9.0}ms {:>11.1}",
            apps,
            bytes.len(),
            verified.as_secs_f64() * 1000.0,
            verify.as_secs_f64() * 1000.0,
            mib(rss),
            mib(peak),
            per_rss,
            per_peak,
            restarted.as_secs_f64() * 1000.0,
            mib(rss_again)
        );
        origin.server.abort();
    }
    println!("* bytes of memory per catalog byte above the 1-app node");
}
