//! The README's walkthrough, only `archy` commands: a developer publishes from a
//! publish-only node (no root, no Podman service), the operator follows them with the node's
//! own key, discovers, installs; then a report lowers the score. A real Nostr relay over
//! websocket, real nodes as child processes, rootless Podman for the install.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::*;
use nostr_relay_builder::prelude::{LocalRelay, RelayBuilder};

/// Runs `archy ARGS` against the node at `api` whose data dir is `data_dir`, `stdin` fed in.
fn archy(api: &str, data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(archy_binary())
        .arg("--api")
        .arg(api)
        .args(args)
        .env("ARCHY_TOKEN_FILE", archy_node::auth::token_path(data_dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `archy ARGS --json`, which must succeed; its answer.
fn archy_json(api: &str, data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = archy(api, data_dir, &all, None);
    assert!(
        out.status.success(),
        "archy {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "archy {args:?} --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `archy node run --publish-only …` with flags only, as the README shows; killed on drop.
struct DevNode(std::process::Child);

impl DevNode {
    async fn spawn(data_dir: &Path, api: &str, relay: &str) -> Self {
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let child = Command::new(archy_binary())
            .args([
                "node",
                "run",
                "--publish-only",
                "--blobs-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-listen", api.trim_start_matches("http://")])
            // Nothing listens there: a publish-only node never asks Podman anything.
            .args(["--podman-url", "unix:///nonexistent/archy-dev/podman.sock"])
            .args(["--relay", relay])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let node = DevNode(child);
        let token = archy_node::auth::token_path(data_dir);
        for _ in 0..200 {
            if token.exists()
                && let Ok(r) = api_client(data_dir)
                    .get(format!("{api}/v1/status"))
                    .send()
                    .await
                && r.status().is_success()
            {
                return node;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "the publish-only node did not come up; log: {}",
            std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default()
        );
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_zero_to_an_installed_third_party_app_with_archy_commands() {
    let _podman = PODMAN.lock().await;
    let relay = LocalRelay::new(RelayBuilder::default().addr([127, 0, 0, 1].into()));
    relay.run().await.unwrap();
    let relay_url = relay.url().await.to_string();
    let tmp = tempfile::tempdir().unwrap();

    // The developer: an identity, a publish-only node, a publication.
    let dev_dir = tmp.path().join("dev");
    let dev_api = format!("http://127.0.0.1:{}", free_port());
    let _dev_node = DevNode::spawn(&dev_dir, &dev_api, &relay_url).await;
    let mnemonic = tmp.path().join("dev.mnemonic");
    let init = Command::new(archy_binary())
        .args(["dev", "init", "--out"])
        .arg(&mnemonic)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let words = std::fs::read_to_string(&mnemonic).unwrap();
    let dev = archy_marketplace::DeveloperIdentity::from_mnemonic(&words, "", 0).unwrap();
    let local_id = archy_registry::namespaced_id("hello", &dev.nostr_public_hex());

    let status = archy_json(&dev_api, &dev_dir, &["status"]);
    assert_eq!(status["publish_only"], true);
    assert!(status["catalog"].is_null());
    let refused = archy(&dev_api, &dev_dir, &["app", "install", "hello"], None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("publish-only"), "{stderr}");

    let manifest = tmp.path().join("manifest.yml");
    std::fs::write(
        &manifest,
        std::fs::read_to_string(repo_root().join("apps/hello/manifest.yml"))
            .unwrap()
            .replace("host: 18080", "host: 18090"),
    )
    .unwrap();
    let image = format!(
        "image={}",
        artifacts_dir().join("hello/image.tar").display()
    );
    let published = archy(
        &dev_api,
        &dev_dir,
        &[
            "app",
            "publish",
            "--manifest",
            manifest.to_str().unwrap(),
            "--artifact",
            &image,
            "--mnemonic-file",
            mnemonic.to_str().unwrap(),
            "--relay",
            &relay_url,
        ],
        None,
    );
    let said = String::from_utf8_lossy(&published.stdout).into_owned();
    assert!(
        published.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&published.stderr)
    );
    assert!(said.contains(&local_id), "{said}");
    let follow_hint = format!("archy market follow {}", dev.npub());
    assert!(said.contains(&follow_hint), "{said}");
    // The dev node discovers on its --relay: the listing as others see it.
    archy_json(&dev_api, &dev_dir, &["market", "discover"]);
    let listed = archy_json(&dev_api, &dev_dir, &["market", "list"]);
    assert_eq!(listed[0]["author"], dev.nostr_public_hex(), "{listed}");

    // The operator: a node pinning the network's root, its relays on the command line.
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
    let (listener, url) = loopback_listener().await;
    let server = serve_bytes(
        listener,
        signed_catalog(&keys, &url, &id, 1, 30).to_bytes(),
        swarm.clone(),
    );
    let op_home = tmp.path().join("operator");
    std::fs::create_dir_all(&op_home).unwrap();
    let op_api = format!("http://127.0.0.1:{}", free_port());
    let op_config = write_node_config(
        &op_home,
        &url,
        &root,
        &op_api,
        &format!("relays = [\"{relay_url}\"]\n"),
    );
    remove_leftovers(&local_id).await;
    let op = NodeProcess::spawn(&op_config, &op_api).await;
    let op_dir = op.data_dir.clone();

    // Discovered, but nobody the operator trusts vouches for the developer yet.
    archy_json(&op_api, &op_dir, &["market", "discover"]);
    let shown = archy_json(&op_api, &op_dir, &["market", "show", "hello"]);
    assert_eq!(shown[0]["score"]["score"], 0, "{shown}");
    let no_key = archy_json(&op_api, &op_dir, &["market", "key"]);
    assert!(no_key["key"].is_null(), "{no_key}");

    let followed = archy_json(&op_api, &op_dir, &["market", "follow", &dev.npub()]);
    assert_eq!(followed["action"], "follow");
    assert_eq!(followed["subject"], dev.nostr_public_hex());
    assert_eq!(followed["follows"], 1);
    assert_eq!(followed["published"][0]["ok"], true, "{followed}");
    assert_eq!(followed["score"]["score"], 50, "{followed}");
    let key = archy_json(&op_api, &op_dir, &["market", "key"]);
    assert_eq!(key["follows"], serde_json::json!([dev.nostr_public_hex()]));
    let key_file = op_dir.join(archy_node::node::OPERATOR_KEY_FILE);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key_file).unwrap().permissions()
        ) & 0o777,
        0o600
    );
    let text = archy(&op_api, &op_dir, &["market", "follow", &dev.npub()], None);
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(said.contains("already following"), "{said}");

    archy_json(&op_api, &op_dir, &["market", "discover"]);
    let shown = archy(&op_api, &op_dir, &["market", "show", "hello"], None);
    let said = String::from_utf8_lossy(&shown.stdout);
    assert!(said.contains("trust score: 50/100"), "{said}");
    assert!(said.contains("followed by operator key npub1"), "{said}");

    let installed = archy(&op_api, &op_dir, &["market", "install", "hello"], None);
    assert!(
        installed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&installed.stdout),
        String::from_utf8_lossy(&installed.stderr)
    );
    let app = archy_json(&op_api, &op_dir, &["app", "status", &local_id]);
    assert_eq!(app["state"], "running", "{app}");
    assert!(
        reqwest::get("http://127.0.0.1:18090/")
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // A report by the operator key lowers the score at once.
    let reported = archy_json(
        &op_api,
        &op_dir,
        &[
            "market",
            "report",
            "hello",
            "--reason",
            "spam",
            "--comment",
            "ads",
        ],
    );
    assert_eq!(reported["kind"], 1984);
    assert_eq!(reported["app"], "hello");
    assert_eq!(reported["score"]["score"], 0, "{reported}");
    let bad = archy(
        &op_api,
        &op_dir,
        &["market", "report", "hello", "--reason", "rude"],
        None,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("malware"));

    // The developer's own mnemonic, from stdin, is a key the dev node may vouch with too;
    // a second one needs --replace.
    let imported = archy(
        &dev_api,
        &dev_dir,
        &["market", "key", "import", "--json"],
        Some(&words),
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let view: serde_json::Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(view["key"]["hex"], dev.nostr_public_hex());
    let other = archy_marketplace::OperatorKey::new_mnemonic();
    let again = archy(
        &dev_api,
        &dev_dir,
        &["market", "key", "import"],
        Some(&other),
    );
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--replace"), "{stderr}");
    let phrase = other
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!stderr.contains(&phrase), "{stderr}");

    let removed = archy(
        &op_api,
        &op_dir,
        &["app", "uninstall", &local_id, "--purge"],
        None,
    );
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert!(!podman_has_app(&local_id).await);
    drop(op);
    server.abort();
    relay.shutdown();
}
