//! Shared fixtures for the cross-crate tests: keys, a signed root and catalogs, an origin
//! (honest or hostile) on loopback ([`TestOrigin`]), and nodes with real sqlite, iroh and
//! rootless Podman (`node`: in process, serving the API, or as a child process), next to
//! the shared Podman service and the tests' own hands on it (`podman`).

mod node;
mod nostr_relay;
mod podman;

pub use node::*;
pub use nostr_relay::*;
pub use podman::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use archy_node::catalog_build::{self, BuildOptions};
use archy_node::{Node, origin};
use archy_registry::{Envelope, PayloadType, Root, SecretKey};
use chrono::{Duration, Utc};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repo")
        .to_owned()
}

/// The rootless Podman service the tests drive. Missing is a failure, not a skip.
pub fn podman_url() -> String {
    std::env::var("ARCHY_PODMAN_URL").unwrap_or_else(|_| {
        panic!(
            "ARCHY_PODMAN_URL is not set: these tests need a rootless Podman service. \
             Run them through scripts/test.sh, or `eval $(scripts/setup-podman.sh)` first."
        )
    })
}

/// Image archives built by apps/build.sh.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("ARCHY_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("build/artifacts"));
    let image = dir.join("hello/image.tar");
    assert!(
        image.is_file(),
        "{} is missing: build the app images with apps/build.sh (scripts/test.sh does)",
        image.display()
    );
    dir
}

pub struct Keys {
    pub root: SecretKey,
    pub catalog: SecretKey,
}

impl Keys {
    pub fn new() -> Self {
        let m = "legal winner thank year wave sausage worth useful legal winner thank yellow";
        Keys {
            root: SecretKey::from_mnemonic(m, "", archy_registry::keys::KeyPurpose::Root, 0)
                .unwrap(),
            catalog: SecretKey::from_mnemonic(m, "", archy_registry::keys::KeyPurpose::Catalog, 0)
                .unwrap(),
        }
    }

    /// A signed root envelope, written to `dir/root.json`.
    pub fn write_root(&self, dir: &Path) -> PathBuf {
        let root = Root::new(
            1,
            Utc::now() + Duration::days(365),
            &[self.root.public()],
            1,
            &[self.catalog.public()],
            1,
        )
        .unwrap();
        let mut env = Envelope::unsigned(PayloadType::Root, &root.to_json());
        env.sign(&self.root).unwrap();
        let path = dir.join("root.json");
        std::fs::write(&path, env.to_bytes()).unwrap();
        path
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds and signs a catalog of the repo's apps for an origin.
pub fn signed_catalog(
    keys: &Keys,
    http: &str,
    iroh: &str,
    version: u64,
    expires_in_days: i64,
) -> Envelope {
    signed_catalog_of(
        &repo_root().join("apps"),
        keys,
        http,
        iroh,
        version,
        expires_in_days,
    )
}

/// Builds and signs a catalog of the apps under `apps_dir` (artifacts from [`artifacts_dir`]).
pub fn signed_catalog_of(
    apps_dir: &Path,
    keys: &Keys,
    http: &str,
    iroh: &str,
    version: u64,
    expires_in_days: i64,
) -> Envelope {
    signed_catalog_after(apps_dir, keys, http, iroh, version, expires_in_days, None)
}

/// Like [`signed_catalog_of`], naming the previous catalog envelope (the hash chain).
pub fn signed_catalog_after(
    apps_dir: &Path,
    keys: &Keys,
    http: &str,
    iroh: &str,
    version: u64,
    expires_in_days: i64,
    previous: Option<&[u8]>,
) -> Envelope {
    let expires_in = chrono::Duration::days(expires_in_days);
    signed_catalog_expiring(apps_dir, keys, http, iroh, version, expires_in, previous)
}

/// The general form: any expiry (even seconds away), any predecessor.
pub fn signed_catalog_expiring(
    apps_dir: &Path,
    keys: &Keys,
    http: &str,
    iroh: &str,
    version: u64,
    expires_in: chrono::Duration,
    previous: Option<&[u8]>,
) -> Envelope {
    let previous_file = previous.map(|bytes| {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    });
    // Apps made by `apps_from_hello` carry their own artifacts dir beside them.
    let beside = apps_dir.with_file_name("artifacts");
    let artifacts_dir = if beside.is_dir() {
        beside
    } else {
        artifacts_dir()
    };
    let mut env = catalog_build::build(&BuildOptions {
        apps_dir: apps_dir.to_owned(),
        artifacts_dir,
        origin: archy_registry::Origin {
            http: http.to_owned(),
            iroh: iroh.to_owned(),
        },
        version,
        expires_in,
        previous: previous_file.as_ref().map(|f| f.path().to_owned()),
    })
    .unwrap();
    env.sign(&keys.catalog).unwrap();
    env
}

pub async fn loopback_listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// A real origin: its own data dir, iroh endpoint and HTTP server.
pub struct RunningOrigin {
    pub url: String,
    pub swarm: Arc<archy_swarm::Swarm>,
    pub server: tokio::task::JoinHandle<()>,
}

pub async fn start_origin(
    dir: &Path,
    catalog: &Path,
    listener: tokio::net::TcpListener,
    url: String,
) -> RunningOrigin {
    let o = origin::prepare(&origin::OriginConfig {
        data_dir: dir.to_owned(),
        catalog: catalog.to_owned(),
        artifacts: artifacts_dir(),
        iroh_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        roots: None,
    })
    .await
    .expect("origin starts");
    let swarm = o.swarm.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            o.router
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    RunningOrigin { url, swarm, server }
}

/// Catalog bytes an origin serves, replaceable while it runs.
pub type CatalogSlot = Arc<std::sync::Mutex<Vec<u8>>>;
/// Root rotation envelopes an origin serves by version, changeable while it runs.
pub type RootsSlot = Arc<std::sync::Mutex<std::collections::BTreeMap<u64, Vec<u8>>>>;

/// A hostile or broken origin: serves whatever catalog bytes it is given, next to the
/// swarm routes of a real swarm node (so artifacts are reachable over iroh).
pub fn serve_bytes(
    listener: tokio::net::TcpListener,
    catalog: Vec<u8>,
    swarm: Arc<archy_swarm::Swarm>,
) -> tokio::task::JoinHandle<()> {
    serve_slot(
        listener,
        Arc::new(std::sync::Mutex::new(catalog)),
        Default::default(),
        swarm,
    )
}

/// Like [`serve_bytes`], with the catalog and root rotations in slots the test can change.
pub fn serve_slot(
    listener: tokio::net::TcpListener,
    catalog: CatalogSlot,
    roots: RootsSlot,
    swarm: Arc<archy_swarm::Swarm>,
) -> tokio::task::JoinHandle<()> {
    let router = axum::Router::new()
        .route(
            "/v1/catalog",
            axum::routing::get(move || {
                let body = catalog.lock().map(|b| b.clone()).unwrap_or_default();
                async move { body }
            }),
        )
        .route(
            "/v1/root/{version}",
            axum::routing::get(move |axum::extract::Path(v): axum::extract::Path<u64>| {
                let body = roots.lock().ok().and_then(|r| r.get(&v).cloned());
                async move { body.ok_or(axum::http::StatusCode::NOT_FOUND) }
            }),
        )
        .merge(archy_swarm::http_routes(swarm.clone()))
        .merge(archy_swarm::tracker_routes(Arc::new(
            archy_swarm::Tracker::with_prober(Default::default(), swarm),
        )));
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    })
}

/// A copy of the repo's hello app with its manifest edited, for failure cases.
pub fn hello_variant(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    apps_from_hello(dir, &[("hello", 18080, &edit)])
}

/// An empty swarm node, to stand behind test origins; and its endpoint id.
pub async fn origin_swarm(dir: &Path) -> (Arc<archy_swarm::Swarm>, String) {
    let swarm = Arc::new(
        archy_swarm::Swarm::start(archy_swarm::SwarmConfig::new(dir))
            .await
            .unwrap(),
    );
    let id = swarm.endpoint_id().to_string();
    (swarm, id)
}

/// A swarm node holding the hello image, to stand behind test origins; and its endpoint id.
pub async fn origin_swarm_with_hello(dir: &Path) -> (Arc<archy_swarm::Swarm>, String) {
    let (swarm, id) = origin_swarm(dir).await;
    swarm
        .import_file(&artifacts_dir().join("hello/image.tar"), "origin/hello")
        .await
        .unwrap();
    (swarm, id)
}

/// The setup most tests repeat: signing keys and a pinned root (`dir/root.json`), a swarm
/// node holding hello's image (`dir/origin`), and an origin on loopback serving a catalog
/// signed for its URL and endpoint id, which the test can replace while it runs.
pub struct TestOrigin {
    pub keys: Keys,
    /// The signed root nodes pin.
    pub root: PathBuf,
    pub swarm: Arc<archy_swarm::Swarm>,
    /// The swarm node's endpoint id, as catalogs name it.
    pub id: String,
    pub url: String,
    pub slot: CatalogSlot,
    pub server: tokio::task::JoinHandle<()>,
}

impl TestOrigin {
    /// Serving the repo's apps: catalog version 1, valid for 30 days.
    pub async fn start(dir: &Path) -> Self {
        Self::with(dir, |keys, url, id| signed_catalog(keys, url, id, 1, 30)).await
    }

    /// Serving the apps under `apps_dir`: catalog version 1, valid for 30 days.
    pub async fn of(dir: &Path, apps_dir: &Path) -> Self {
        Self::with(dir, |keys, url, id| {
            signed_catalog_of(apps_dir, keys, url, id, 1, 30)
        })
        .await
    }

    /// Serving apps made from hello ([`apps_from_hello`] in `dir/apps`): catalog version 1,
    /// valid for 30 days.
    pub async fn hello_apps(dir: &Path, apps: &[HelloApp<'_>]) -> Self {
        Self::of(dir, &apps_from_hello(&dir.join("apps"), apps)).await
    }

    /// Serving `catalog(keys, origin url, endpoint id)`.
    pub async fn with(dir: &Path, catalog: impl FnOnce(&Keys, &str, &str) -> Envelope) -> Self {
        let keys = Keys::new();
        let root = keys.write_root(dir);
        let (swarm, id) = origin_swarm_with_hello(&dir.join("origin")).await;
        let (listener, url) = loopback_listener().await;
        let slot: CatalogSlot =
            Arc::new(std::sync::Mutex::new(catalog(&keys, &url, &id).to_bytes()));
        let server = serve_slot(listener, slot.clone(), Default::default(), swarm.clone());
        TestOrigin {
            keys,
            root,
            swarm,
            id,
            url,
            slot,
            server,
        }
    }

    /// A catalog of the apps under `apps_dir` for this origin, chained to `previous`.
    pub fn sign(
        &self,
        apps_dir: &Path,
        version: u64,
        expires_in_days: i64,
        previous: Option<&[u8]>,
    ) -> Vec<u8> {
        let (keys, url, id) = (&self.keys, &self.url, &self.id);
        signed_catalog_after(apps_dir, keys, url, id, version, expires_in_days, previous).to_bytes()
    }

    /// The catalog bytes served now.
    pub fn catalog(&self) -> Vec<u8> {
        self.slot.lock().unwrap().clone()
    }

    /// Serves `catalog` from now on.
    pub fn serve(&self, catalog: Vec<u8>) {
        *self.slot.lock().unwrap() = catalog;
    }

    /// A node (in process) with its state in `dir`, pinning this origin's root; not pulled yet.
    pub async fn node(&self, dir: &Path) -> Arc<Node> {
        start_node(dir, &self.url, &self.root).await
    }
}

/// One app made from hello: its id, host port, and an edit of the manifest text.
pub type HelloApp<'a> = (&'a str, u16, &'a dyn Fn(String) -> String);

/// Several apps made from hello's manifest and image: `(id, host port, edit)` each. Returns
/// the apps dir; the image archives are copied into an `artifacts` dir beside it.
pub fn apps_from_hello(dir: &Path, apps: &[HelloApp<'_>]) -> PathBuf {
    let manifest = std::fs::read_to_string(repo_root().join("apps/hello/manifest.yml")).unwrap();
    let image = artifacts_dir().join("hello/image.tar");
    for (id, port, edit) in apps {
        let m = manifest
            .replace("id: hello", &format!("id: {id}"))
            .replace("host: 18080", &format!("host: {port}"));
        std::fs::create_dir_all(dir.join("apps").join(id)).unwrap();
        std::fs::write(dir.join("apps").join(id).join("manifest.yml"), edit(m)).unwrap();
        std::fs::create_dir_all(dir.join("artifacts").join(id)).unwrap();
        std::fs::copy(&image, dir.join("artifacts").join(id).join("image.tar")).unwrap();
    }
    dir.join("apps")
}
