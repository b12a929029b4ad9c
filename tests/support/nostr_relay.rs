//! An independent Nostr relay for interop tests: the PyPI package `nostr-relay` (Python,
//! sqlite storage), in the venv `scripts/test.sh` makes, run as a child process on a free
//! loopback port with its config and database in a directory of the test's own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The variable naming the relay's executable (`scripts/test.sh` sets it).
pub const NOSTR_RELAY_ENV: &str = "ARCHY_TEST_NOSTR_RELAY";

/// How long the relay has to answer after it was started (it migrates its database first).
const STARTUP: Duration = Duration::from_secs(60);

/// The `nostr-relay` executable. Missing is a failure, not a skip.
pub fn nostr_relay_binary() -> PathBuf {
    let Some(path) = std::env::var_os(NOSTR_RELAY_ENV) else {
        panic!(
            "{NOSTR_RELAY_ENV} is not set: the interop tests need the independent relay from \
             PyPI (`nostr-relay` 1.14). Run them through scripts/test.sh, which installs it in \
             build/nostr-relay-venv, or set {NOSTR_RELAY_ENV}=build/nostr-relay-venv/bin/nostr-relay \
             after `python3 -m venv build/nostr-relay-venv && build/nostr-relay-venv/bin/pip \
             install -r scripts/nostr-relay-requirements.txt`."
        )
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{NOSTR_RELAY_ENV}={} is not a file: install the relay as scripts/test.sh does",
        path.display()
    );
    path
}

/// A running `nostr-relay serve`, killed (SIGKILL) when dropped.
pub struct PythonRelay {
    child: std::process::Child,
    /// `ws://127.0.0.1:PORT`
    pub url: String,
    log: PathBuf,
}

impl PythonRelay {
    /// Starts the relay with its config, sqlite database and log in `dir` and waits, at most
    /// a minute, until it answers NIP-11. `max_event_size` is the longest event content it
    /// stores (its default, 4096, is less than a publication).
    pub async fn start(dir: &Path, max_event_size: usize) -> Self {
        let binary = nostr_relay_binary();
        std::fs::create_dir_all(dir).unwrap();
        let port = crate::free_port();
        let config = dir.join("nostr-relay.yaml");
        // Its own keys only: what is not set keeps the package's defaults (config.py).
        std::fs::write(
            &config,
            format!(
                "DEBUG: false\n\
                 relay_name: archy interop test\n\
                 storage:\n  \
                   sqlalchemy.url: \"sqlite+aiosqlite:///{}\"\n  \
                   validators:\n    \
                     - nostr_relay.validators.is_not_too_large\n    \
                     - nostr_relay.validators.is_signed\n    \
                     - nostr_relay.validators.is_recent\n\
                 gunicorn:\n  bind: \"127.0.0.1:{port}\"\n\
                 authentication:\n  enabled: false\n\
                 max_event_size: {max_event_size}\n",
                dir.join("nostr.sqlite3").display()
            ),
        )
        .unwrap();
        let log = dir.join("nostr-relay.log");
        let out = std::fs::File::create(&log).unwrap();
        // uvicorn: one process, so killing it leaves no worker behind (gunicorn forks).
        let child = std::process::Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--use-uvicorn"])
            .current_dir(dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut relay = Self {
            child,
            url: format!("ws://127.0.0.1:{port}"),
            log,
        };
        relay.wait_ready(port).await;
        relay
    }

    async fn wait_ready(&mut self, port: u16) {
        let info = format!("http://127.0.0.1:{port}/");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < STARTUP {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "nostr-relay exited ({status}) before answering; its log:\n{}",
                    self.log()
                );
            }
            let answer = client
                .get(&info)
                .header("Accept", "application/nostr+json")
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(r) = answer
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["software"]
                    .as_str()
                    .is_some_and(|s| s.contains("nostr_relay"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "nostr-relay did not answer NIP-11 at {info} within {STARTUP:?}; its log:\n{}",
            self.log()
        );
    }

    /// What the relay logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PythonRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
