//! Nodes for the tests: in this process (with or without its API served on loopback, and
//! the hello fixture most Podman tests start from), or as a real `archy node run` child
//! process that can be killed, terminated and started again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use archy_node::{Node, NodeConfig};

use crate::{PODMAN, TestOrigin, hello_variant, loopback_listener, podman_url, remove_leftovers};

pub async fn start_node(dir: &Path, origin: &str, root: &Path) -> Arc<Node> {
    start_node_with(dir, origin, root, 3600).await
}

pub async fn start_node_with(
    dir: &Path,
    origin: &str,
    root: &Path,
    pull_interval_seconds: u64,
) -> Arc<Node> {
    let config = NodeConfig {
        pull_interval_seconds,
        ..node_config(dir, origin, root)
    };
    Node::start(config).await.expect("node starts")
}

/// A node whose loops, if a test runs them, wait an hour (pull and reconcile): only what
/// the test does (and Podman's events) moves it. Not pulled yet.
pub async fn quiet_node(dir: &Path, origin: &str, root: &Path) -> Arc<Node> {
    Node::start(NodeConfig {
        pull_interval_seconds: 3600,
        reconcile_interval_seconds: 3600,
        ..node_config(dir, origin, root)
    })
    .await
    .expect("node starts")
}

/// A test node's config: state in `dir`, the catalog from `origin` under `root`, the test
/// Podman, apps published on loopback; tests adjust the rest with `..node_config(…)`.
pub fn node_config(dir: &Path, origin: &str, root: &Path) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_owned(),
        origin: Some(origin.to_owned()),
        pinned_root: Some(root.to_owned()),
        podman_url: podman_url(),
        publish_address: [127, 0, 0, 1].into(),
        ..NodeConfig::default()
    }
}

/// The `archy` binary next to the test executable (target/debug/archy).
pub fn archy_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("archy");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build --bins` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `node.toml` in `dir` for an `archy node run` child process (`extra` is appended TOML).
pub fn write_node_config(dir: &Path, origin: &str, root: &Path, api: &str, extra: &str) -> PathBuf {
    let config = dir.join("node.toml");
    let text = format!(
        "data_dir = \"node\"\norigin = \"{origin}\"\npinned_root = \"{}\"\npodman_url = \"{}\"\n\
         publish_address = \"127.0.0.1\"\napi_listen = \"{}\"\n{extra}",
        root.display(),
        podman_url(),
        api.trim_start_matches("http://")
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// A client of a node's API: the node's token (from `data_dir`) on every request, and the
/// JSON body type the API wants on state changes.
pub fn api_client(data_dir: &Path) -> reqwest::Client {
    let token = archy_node::auth::read_token(&archy_node::auth::token_path(data_dir))
        .unwrap_or_else(|e| panic!("the node's API token: {e:#}"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.as_str()).parse().unwrap(),
    );
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// `archy node run` as a real child process, killed (SIGKILL) when dropped.
pub struct NodeProcess {
    pub child: std::process::Child,
    pub api: String,
    /// The node's config file; its log is beside it (`.log`).
    pub config: PathBuf,
    /// The node's data dir (`node` beside its config, as [`write_node_config`] writes it).
    pub data_dir: PathBuf,
}

impl NodeProcess {
    /// A node with its config, log and data in `dir` (see [`write_node_config`]; `extra` is
    /// appended TOML), its API on a free loopback port, its catalog from `origin` under
    /// `root`; started and answering with a catalog.
    pub async fn start(dir: &Path, origin: &str, root: &Path, extra: &str) -> Self {
        let api = format!("http://127.0.0.1:{}", free_port());
        let config = write_node_config(dir, origin, root, &api, extra);
        Self::spawn(&config, &api).await
    }

    /// Runs `archy node run --config config`, its API at `api`, until it answers with a
    /// catalog.
    pub async fn spawn(config: &Path, api: &str) -> Self {
        let log = std::fs::File::create(config.with_extension("log")).unwrap();
        let child = std::process::Command::new(archy_binary())
            .args(["node", "run", "--config"])
            .arg(config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let node = Self {
            child,
            api: api.to_owned(),
            config: config.to_owned(),
            data_dir: config.parent().unwrap().join("node"),
        };
        let token = archy_node::auth::token_path(&node.data_dir);
        for _ in 0..200 {
            if token.exists()
                && let Ok(r) = node.client().get(format!("{api}/v1/status")).send().await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["catalog"]["version"].is_u64()
            {
                return node;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "archy node did not come up with a catalog; log: {}",
            std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
        );
    }

    /// A client with this node's token.
    pub fn client(&self) -> reqwest::Client {
        api_client(&self.data_dir)
    }

    /// SIGKILL: no shutdown code runs, as in a power cut or OOM kill.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the node if it still runs (SIGKILL), and starts it again on the same config,
    /// data and API address, answering with a catalog.
    pub async fn restart(&mut self) {
        self.kill();
        *self = Self::spawn(&self.config, &self.api).await;
    }

    /// Sends SIGTERM and waits (up to `limit`) for the process to exit: its status and how
    /// long it took.
    pub fn terminate(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let sent = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, sent.elapsed());
            }
            assert!(
                sent.elapsed() < limit,
                "the node did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the node logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_extension("log")).unwrap_or_default()
    }

    /// `GET path` as JSON, within 5 s.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.api);
        let client = self.client();
        tokio::time::timeout(Duration::from_secs(5), async {
            client.get(&url).send().await.unwrap().json().await.unwrap()
        })
        .await
        .unwrap_or_else(|_| panic!("GET {url} took over 5 s"))
    }

    /// `POST path` (no body) as JSON: an install, start or stop without streaming.
    pub async fn post_json(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.api);
        self.client()
            .post(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    /// Uninstalls `app` and deletes its data, through the API.
    pub async fn purge(&self, app: &str) {
        self.client()
            .delete(format!("{}/v1/apps/{app}?purge=true", self.api))
            .send()
            .await
            .unwrap();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A node (in process) whose catalog holds `hello` edited by `edit`, pulled and ready; its
/// loops do not run, so only what a test does (and Podman's events) moves it.
pub async fn node_with_hello(
    tmp: &Path,
    edit: impl Fn(String) -> String,
) -> (Arc<Node>, tokio::task::JoinHandle<()>) {
    let apps = hello_variant(&tmp.join("variant"), edit);
    let origin = TestOrigin::of(tmp, &apps).await;
    let node = quiet_node(&tmp.join("node"), &origin.url, &origin.root).await;
    node.pull_catalog()
        .await
        .expect("the test catalog is accepted");
    (node, origin.server)
}

/// Serves `node`'s API (and dashboard) on loopback as `archy node run` does, and waits (up
/// to 10 s) until its token file exists: the API's URL, and the task serving it (whose
/// failure is printed).
pub async fn serve_api(node: Arc<Node>) -> (String, tokio::task::JoinHandle<()>) {
    let token = archy_node::auth::token_path(&node.config().data_dir);
    let (listener, api) = loopback_listener().await;
    let daemon = tokio::spawn(async move {
        if let Err(e) = archy_node::serve(node, listener).await {
            eprintln!("the node's API stopped: {e:#}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !token.exists() {
        assert!(
            Instant::now() < deadline,
            "the node wrote no API token within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (api, daemon)
}

/// A node in this process serving its API on loopback (real HTTP), its catalog from a
/// [`TestOrigin`], pulled.
pub struct ApiNode {
    pub node: Arc<Node>,
    /// The API's base URL.
    pub api: String,
    pub data_dir: PathBuf,
    pub origin: TestOrigin,
    pub daemon: tokio::task::JoinHandle<()>,
}

impl ApiNode {
    /// A node with its state in `dir/node`, configured by [`node_config`] and then `edit`.
    pub async fn start(dir: &Path, origin: TestOrigin, edit: impl FnOnce(&mut NodeConfig)) -> Self {
        let data_dir = dir.join("node");
        let mut config = node_config(&data_dir, &origin.url, &origin.root);
        edit(&mut config);
        let node = Node::start(config).await.expect("node starts");
        node.pull_catalog()
            .await
            .expect("the test catalog is accepted");
        let (api, daemon) = serve_api(node.clone()).await;
        ApiNode {
            node,
            api,
            data_dir,
            origin,
            daemon,
        }
    }

    /// The URL of `path` on the API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// A client with the node's token ([`api_client`]).
    pub fn client(&self) -> reqwest::Client {
        api_client(&self.data_dir)
    }

    /// The node's API token.
    pub fn token(&self) -> String {
        archy_node::auth::read_token(&archy_node::auth::token_path(&self.data_dir))
            .unwrap()
            .as_str()
            .to_owned()
    }

    /// Stops serving the API and the origin, and shuts the node down.
    pub async fn stop(self) {
        self.daemon.abort();
        self.origin.server.abort();
        self.node.shutdown().await;
    }
}

/// What the tests of `hello` on its shared host port begin with: the Podman lock (held
/// until the fixture is dropped), no hello containers left by an earlier run, a temp dir,
/// and [`node_with_hello`] in it.
pub struct HelloTest {
    pub node: Arc<Node>,
    /// The test origin's server.
    pub server: tokio::task::JoinHandle<()>,
    pub tmp: tempfile::TempDir,
    // Last: released after everything else is dropped.
    _podman: tokio::sync::MutexGuard<'static, ()>,
}

impl HelloTest {
    /// Hello's manifest edited by `edit` (see [`web_lines`] and [`token_secret`]).
    pub async fn start(edit: impl Fn(String) -> String) -> Self {
        let podman = PODMAN.lock().await;
        remove_leftovers("hello").await;
        let tmp = tempfile::tempdir().unwrap();
        let (node, server) = node_with_hello(tmp.path(), edit).await;
        HelloTest {
            node,
            server,
            tmp,
            _podman: podman,
        }
    }

    /// The usual end: hello purged, the origin stopped.
    pub async fn finish(self) {
        self.node.uninstall("hello", true).await.unwrap();
        self.server.abort();
    }
}

/// Hello's manifest with `lines` (YAML at the web container's indent: each line starts with
/// four spaces) added to its web container.
pub fn web_lines(manifest: String, lines: &str) -> String {
    manifest.replace(
        "    stop_grace_seconds: 5",
        &format!("    stop_grace_seconds: 5\n{lines}"),
    )
}

/// Hello's manifest declaring a generated secret `token` (for the web container to take,
/// e.g. `env: { TOKEN: { secret: token } }` added by [`web_lines`]).
pub fn token_secret(manifest: String) -> String {
    manifest.replace("resources:", "secrets: [{ name: token }]\nresources:")
}

/// Hello with a volume, a generated secret and the secret in its env: every kind of object
/// an install creates.
pub fn with_data(manifest: String) -> String {
    token_secret(web_lines(
        manifest,
        "    volumes: [{ name: data, path: /data }]\n    env: { TOKEN: { secret: token } }",
    ))
}
