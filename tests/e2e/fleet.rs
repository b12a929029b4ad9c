//! The fleet harness (`scripts/fleet.sh`): nodes behind home NATs in network namespaces,
//! an origin and a relay on a public segment, shaped links. Each case runs the script and
//! reads its `FLEET-RESULT` line. It needs root and `ip`, `iptables`, `tc`: without them
//! the script says what is missing and these tests fail with its words (never skipped).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use archy_tests::archy_binary;

/// One fleet at a time: two cores, and each fleet runs several nodes.
static FLEET: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The longest a case may take before it is stopped (the script tears down on SIGTERM).
const CASE_WITHIN: Duration = Duration::from_secs(300);

/// Runs one case; returns its result line's fields.
fn run_case(case: &str, args: &[&str]) -> BTreeMap<String, String> {
    let _one = FLEET.lock().unwrap_or_else(|e| e.into_inner());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fleet.sh");
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("bash")
        .arg(&script)
        .args(["--case", case])
        .args(args)
        .env("ARCHY_BIN", archy_binary())
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CASE_WITHIN {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!(
                "fleet case {case} took more than {CASE_WITHIN:?}; its output:\n{}",
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = std::fs::read_to_string(out.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
    assert!(
        status.success(),
        "scripts/fleet.sh --case {case} failed ({status}):\n{stderr}\n{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("FLEET-RESULT case={case} ")))
        .unwrap_or_else(|| panic!("no result line for case {case} in:\n{stdout}\n{stderr}"));
    eprintln!("{line}");
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn num(fields: &BTreeMap<String, String>, key: &str) -> u64 {
    fields
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("result field {key} missing or not a number: {fields:?}"))
}

/// Two nodes behind different NATs: the second fetches from the first, and the result says
/// whether its bytes came directly (hole punched) or through the relay.
#[test]
fn fleet_two_nodes_behind_nats_fetch_from_each_other() {
    let r = run_case("pair", &["--size-mib", "8"]);
    assert!(num(&r, "from_peers") > 0, "{r:?}");
    assert!(
        num(&r, "direct_bytes") + num(&r, "relayed_bytes") > 0,
        "{r:?}"
    );
}

/// A node whose NAT lets no UDP out (but to the origin) is reached through the relay only.
#[test]
fn fleet_node_reachable_only_through_the_relay() {
    let r = run_case("relay", &["--size-mib", "4"]);
    assert!(num(&r, "from_peers") > 0, "{r:?}");
    assert!(num(&r, "relayed_bytes") > 0, "{r:?}");
    assert_eq!(num(&r, "direct_bytes"), 0, "{r:?}");
}

/// A peer that leaves mid-transfer: the fetch still completes, the origin takes over.
#[test]
fn fleet_peer_leaving_mid_transfer_origin_wins() {
    let r = run_case("leave", &["--size-mib", "16"]);
    assert!(num(&r, "from_origin") > 0, "{r:?}");
    assert!(
        num(&r, "from_peers") + num(&r, "from_origin") >= 16 * 1024 * 1024,
        "{r:?}"
    );
}

/// A fleet that starts fetching at the same instant: every node completes.
#[test]
fn fleet_starting_at_the_same_instant_completes() {
    let r = run_case("herd", &["--nodes", "3", "--size-mib", "4"]);
    assert_eq!(num(&r, "failed"), 0, "{r:?}");
}

/// A fetch-only node (the fleet's nodes) needs no Podman: it fetches an artifact the
/// verified catalog names, at the size the catalog declares, refuses any other hash (the
/// API names a hash, never a size: only the signed catalog can make the node download),
/// and installs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_only_node_fetches_what_the_catalog_names_and_installs_nothing() {
    use archy_node::node::ErrorKind;
    let tmp = tempfile::tempdir().unwrap();
    let origin = archy_tests::TestOrigin::start(tmp.path()).await;
    let node = archy_node::Node::start(archy_node::NodeConfig {
        data_dir: tmp.path().join("node"),
        origin: Some(origin.url.clone()),
        pinned_root: Some(origin.root.clone()),
        fetch_only: true,
        pull_interval_seconds: 3600,
        // Nothing listens there: a fetch-only node never asks.
        podman_url: "unix:///nonexistent/archy-test/podman.sock".into(),
        ..archy_node::NodeConfig::default()
    })
    .await
    .expect("a fetch-only node starts without Podman");
    node.pull_catalog().await.unwrap();

    // The origin serves a blob no catalog names: asked for it, the node must refuse before
    // any download (were the check gone, the origin would hand it over).
    let unlisted = tmp.path().join("unlisted.bin");
    std::fs::write(&unlisted, vec![7u8; 300_000]).unwrap();
    let stranger = origin
        .swarm
        .import_file(&unlisted, "unlisted")
        .await
        .unwrap();
    let err = node.fetch_catalog_blob(&stranger.hex()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(err.message.contains("no artifact of catalog"), "{err}");
    assert_eq!(
        node.swarm().complete_size(&stranger.hash).await.unwrap(),
        None,
        "the node holds a blob its catalog does not name"
    );
    let metrics = node.swarm().metrics();
    assert_eq!(
        metrics.bytes_from_iroh + metrics.bytes_from_http,
        0,
        "the node downloaded something for a hash its catalog does not name"
    );

    let image = std::fs::read(archy_tests::artifacts_dir().join("hello/image.tar")).unwrap();
    let hash = archy_registry::blake3_hex(&image);
    let fetched = node.fetch_catalog_blob(&hash).await.unwrap();
    assert_eq!(fetched.size, image.len() as u64);
    assert_eq!(fetched.named_by, vec!["hello/image".to_owned()]);
    assert_eq!(
        fetched.bytes_from_origin_iroh + fetched.bytes_from_origin_http,
        image.len() as u64
    );
    assert!(
        node.fetch_catalog_blob(&hash)
            .await
            .unwrap()
            .already_present
    );

    let err = node.install("hello").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused, "{err}");
    assert!(err.message.contains("fetch-only"), "{err}");
    node.shutdown().await;

    // Fetch-only and publish-only contradict each other (one pulls a catalog, the other
    // trusts none): refused at start, by name.
    let err = archy_node::Node::start(archy_node::NodeConfig {
        data_dir: tmp.path().join("other"),
        fetch_only: true,
        publish_only: true,
        podman_url: "unix:///nonexistent/archy-test/podman.sock".into(),
        ..archy_node::NodeConfig::default()
    })
    .await
    .err()
    .expect("fetch_only with publish_only is refused");
    assert!(
        format!("{err:#}").contains("fetch_only and publish_only"),
        "{err:#}"
    );
}
