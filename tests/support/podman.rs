//! The one rootless Podman service every test shares: the locks that keep tests out of each
//! other's way, and the tests' own hands on it (setup, clean-up and checks; never the code
//! under test).

use archy_orchestrator::{Engine, Orchestrator, OrchestratorConfig};

use crate::podman_url;

/// Tests that share the rootless Podman user and the hello app's host port: one at a time.
pub static PODMAN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Tests that stop the Podman service itself hold this for writing; every test that needs
/// the service but not the shared app port (it only starts a node) holds it for reading,
/// so it never meets a service that is down on purpose.
pub static PODMAN_SERVICE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A connection to the test service.
pub async fn engine() -> Engine {
    Engine::connect(&podman_url())
        .await
        .expect("podman reachable")
}

/// `podman --remote ARGS` against the test service, for what the orchestrator offers no call
/// for: whether it succeeded, and its output (stdout, trimmed; on failure stderr follows, so
/// an assertion on it says why).
pub fn podman(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("podman")
        .args(["--remote", "--url", &podman_url()])
        .args(args)
        .output()
        .expect("podman client runs");
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        text.push_str(String::from_utf8_lossy(&out.stderr).trim());
    }
    (out.status.success(), text)
}

/// Whether Podman holds containers of `app`.
pub async fn podman_has_app(app: &str) -> bool {
    !engine().await.containers_of(app).await.unwrap().is_empty()
}

/// Removes the containers an earlier run left of `app`.
pub async fn remove_leftovers(app: &str) {
    let engine = engine().await;
    for c in engine.containers_of(app).await.unwrap() {
        engine.remove_container(&c.name).await.unwrap();
    }
}

/// Removes whatever an earlier run left of `app` in Podman: its containers, volumes and
/// secrets (a purge by a throwaway orchestrator), and its network.
pub async fn remove_everything_of(app: &str) {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Orchestrator::connect(OrchestratorConfig {
        podman_url: podman_url(),
        data_dir: dir.path().to_owned(),
        publish_address: [127, 0, 0, 1].into(),
    })
    .await
    .unwrap();
    let _ = orchestrator.uninstall(app, true).await;
    let _ = podman(&["network", "rm", "--", &format!("archy-{app}")]);
}
