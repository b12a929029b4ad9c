//! The web dashboard in a real browser (Debian's chromium, driven over WebDriver by
//! chromedriver) against a real node serving its API on loopback and real rootless Podman:
//! first-run setup, login and its rate limit, the overview's trust state in words, the
//! store, an install with live progress (re-attached after a reload), the installed app's
//! controls and logs, uninstall keeping the data and with its deletion, the settings page,
//! logout, and what a hostile page can make the browser send.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;

const PASSWORD: &str = "correct horse battery";

/// A node serving its API and dashboard on loopback (real HTTP, with connect info), its
/// catalog (hello edited by [`dash_hello`], and [`dash_greeter`] which needs it) from a test origin whose answer the test can
/// change; and the apps dir that catalog is built from.
async fn dash_node(dir: &Path) -> (ApiNode, PathBuf) {
    let apps = apps_from_hello(
        &dir.join("variant"),
        &[
            ("hello", 18080, &dash_hello),
            ("greeter", 18081, &dash_greeter),
        ],
    );
    let origin = TestOrigin::of(dir, &apps).await;
    // ApiNode keeps its state in dir/node: the listing is there before the node starts.
    seed_listing(&dir.join("node")).await;
    (ApiNode::start(dir, origin, |_| {}).await, apps)
}

/// The origin now answers another, validly signed catalog under the same version: the
/// node refuses it and raises the equivocation alarm.
async fn equivocate(n: &ApiNode, apps: &Path) {
    n.origin.serve(n.origin.sign(apps, 1, 29, None));
    let _ = n.node.pull_catalog().await;
    let status = n.node.status().await.unwrap();
    assert!(
        status.alarms.iter().any(|a| a.kind == "equivocation"),
        "no equivocation alarm: {:?}",
        status.alarms
    );
}

/// hello as the dashboard shows it: it prints a line first (for the logs dialog), takes a
/// few seconds to become healthy (so an install can be re-attached to after a reload), and
/// keeps data (a volume and a generated secret) that an uninstall keeps unless told.
fn dash_hello(manifest: String) -> String {
    token_secret(web_lines(
        manifest,
        "    volumes: [{ name: data, path: /data }]\n    env: { TOKEN: { secret: token } }\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM INT; echo dashboard-log-line; sleep 4 & wait; /bin/busybox httpd -f -p 8080 -h /www & wait\"]",
    ))
}

/// An app that needs hello: installing it from the store shows the plan first.
fn dash_greeter(manifest: String) -> String {
    dash_hello(manifest)
        .replace("name: Hello", "name: Greeter")
        .replace(
            "resources:",
            "dependencies: [{ id: hello, version: \"^1\" }]\nresources:",
        )
}

/// The publisher of the seeded listing (a test mnemonic).
const PUBLISHER_WORDS: &str =
    "leader monkey parrot ring guide accident before fence cannon height naive bean";

/// A third-party listing as discovery would have stored it (a signed publication whose
/// files are nowhere: the store shows it, nothing installs it), with its publisher's score.
async fn seed_listing(data_dir: &Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let db = archy_node::db::open(&data_dir.join("archy.db"))
        .await
        .unwrap();
    let dev = archy_marketplace::DeveloperIdentity::from_mnemonic(PUBLISHER_WORDS, "", 0).unwrap();
    let manifest = archy_registry::Manifest::from_yaml(
        "id: notes\nname: Notes\nversion: 2.1.0\ndescription: Plain-text notes, kept on your node.\n\
         artifacts:\n  - { name: image, media_type: application/vnd.oci.image.layout.v1.tar }\n\
         containers:\n  - name: web\n    image: { artifact: image }\n    ports:\n      - { container: 8080, host: 30001 }\n\
         resources:\n  disk_mb: 10\n  memory_mb: 64\n",
    )
    .unwrap();
    let envelope = archy_marketplace::test_support::signed_publication(&dev, manifest);
    let row = archy_node::db::MarketRow {
        author: dev.nostr_public_hex(),
        app_id: "notes".into(),
        event_id: "ab".repeat(32),
        created_at: 1_700_000_000,
        version: "2.1.0".into(),
        name: "Notes".into(),
        did: dev.did_key().public().did_key(),
        withdrawn: None,
    };
    archy_node::db::upsert_listing(&db, &row, &envelope.to_bytes())
        .await
        .unwrap();
    let explanation = serde_json::json!([
        { "points": 40, "reason": "vouched for by a key you trust" },
        { "points": 5, "reason": "listed for more than 30 days" },
    ]);
    archy_node::db::store_score(&db, &dev.nostr_public_hex(), 45, &explanation)
        .await
        .unwrap();
    db.close().await;
}

/// Whether Podman holds the volume `name`.
fn podman_volume_exists(name: &str) -> bool {
    podman(&["volume", "exists", "--", name]).0
}

/// chromedriver on a free port and a headless chromium session through it; both end when
/// dropped (the session with [`Browser::close`]).
struct Browser {
    client: Client,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

const INSTALL_HINT: &str = "install Debian's chromium and chromium-driver \
     (`apt-get install -y --no-install-recommends chromium chromium-driver`; scripts/test.sh does)";

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/lib/chromium"),
        ])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Browser {
    async fn start() -> Self {
        let driver_bin = std::env::var_os("ARCHY_CHROMEDRIVER")
            .map(PathBuf::from)
            .or_else(|| find_program("chromedriver"))
            .unwrap_or_else(|| {
                panic!("chromedriver is missing: the dashboard tests need a real browser; {INSTALL_HINT}")
            });
        let chromium = std::env::var_os("ARCHY_CHROMIUM")
            .map(PathBuf::from)
            .or_else(|| find_program("chromium"))
            .unwrap_or_else(|| {
                panic!(
                    "chromium is missing: the dashboard tests need a real browser; {INSTALL_HINT}"
                )
            });
        let port = free_port();
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("chromedriver-{port}.log")))
                .unwrap();
        let driver = std::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL_HINT}", driver_bin.display()));
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut up = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "chromedriver did not listen on port {port}");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("a chromium session through chromedriver: {e}"));
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Runs `script` (a function body) in the page until it returns `want`.
async fn wait_js(c: &Client, script: &str, want: serde_json::Value, what: &str, secs: u64) {
    let mut last = serde_json::Value::Null;
    for _ in 0..secs * 10 {
        match c.execute(script, vec![]).await {
            Ok(v) if v == want => return,
            Ok(v) => last = v,
            Err(e) => last = format!("error: {e}").into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = c
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap_or_default();
    panic!("{what}: waited {secs} s for {want}, last {last}; page:\n{text}");
}

/// Waits until the element `css` is shown and its text contains `needle`.
async fn wait_text(c: &Client, css: &str, needle: &str, secs: u64) -> String {
    let mut last = String::new();
    for _ in 0..secs * 10 {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && el.is_displayed().await.unwrap_or(false)
            && let Ok(text) = el.text().await
        {
            if text.contains(needle) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = c
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default();
    let page = c
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap_or_default();
    panic!("{css}: waited {secs} s for {needle:?}; last text {last:?}; at {url}:\n{page}");
}

/// Clicks the element `css` as a user would, once it is there and enabled.
async fn click(c: &Client, css: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        match c.find(Locator::Css(css)).await {
            Ok(el) if el.is_enabled().await.unwrap_or(false) => match el.click().await {
                Ok(()) => return,
                Err(e) => last = e.to_string(),
            },
            Ok(_) => last = "disabled".into(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not click {css}: {last}");
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let el = c.wait().for_element(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn login(c: &Client, password: &str) {
    wait_text(c, "#view-login h1", "Log in", 10).await;
    type_into(c, "#login-password", password).await;
    click(c, "#login-submit").await;
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let dir = repo_root().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(&path, png).unwrap();
    path
}

async fn go(c: &Client, url: &str) {
    c.goto(url).await.unwrap();
}

/// A page on another origin (another port of 127.0.0.1: another origin, but the same
/// *site*, so even a SameSite=Strict cookie goes along) that submits forms to the node.
async fn hostile_site(api: &str) -> (String, tokio::task::JoinHandle<()>) {
    let stop = format!(
        r#"<!doctype html><form id=f method=POST action="{api}/v1/apps/hello/stop" enctype="text/plain"><input name='{{"x":"' value='"}}'></form><script>document.getElementById('f').submit()</script>"#
    );
    let logout = format!(
        r#"<!doctype html><form id=f method=POST action="{api}/ui/logout"><input name=csrf value=guess></form><script>document.getElementById('f').submit()</script>"#
    );
    let router = axum::Router::new()
        .route(
            "/stop",
            axum::routing::get(move || {
                let page = stop.clone();
                async move { axum::response::Html(page) }
            }),
        )
        .route(
            "/logout",
            axum::routing::get(move || {
                let page = logout.clone();
                async move { axum::response::Html(page) }
            }),
        );
    let (listener, url) = loopback_listener().await;
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, server)
}

async fn app_state(n: &ApiNode) -> String {
    n.node
        .app("hello")
        .await
        .map(|a| a.state.to_string())
        .unwrap_or_else(|e| format!("{e:?}"))
}

/// The whole dashboard, as an operator uses it, in chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser_from_first_run_to_uninstall() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    remove_leftovers("greeter").await;
    let tmp = tempfile::tempdir().unwrap();
    let (n, apps) = dash_node(tmp.path()).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let http = reqwest::Client::new();

    // First run, from loopback: the setup page sets the password and logs in.
    go(c, &n.url("/")).await;
    wait_text(c, "#view-setup h1", "Welcome", 10).await;
    type_into(c, "#setup-password", PASSWORD).await;
    type_into(c, "#setup-password2", "something else").await;
    click(c, "#setup-submit").await;
    wait_text(c, "#setup-error", "differ", 5).await;
    type_into(c, "#setup-password2", PASSWORD).await;
    click(c, "#setup-submit").await;
    wait_text(c, "#catalog-version", "Catalog version 1", 20).await;
    let file = archy_dashboard::password::password_path(&n.data_dir);
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("$argon2id$")
    );
    // The first-run page never answers again.
    let again = http
        .post(n.url("/ui/setup"))
        .header("content-type", "application/json")
        .body(r#"{"password":"an attacker's choice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // The overview says the trust state in words, alarms included.
    let trust = wait_text(c, "#card-trust", "expires in", 10).await;
    assert!(trust.contains(&n.origin.url), "{trust}");
    equivocate(&n, &apps).await;
    c.refresh().await.unwrap();
    let alarms = wait_text(c, "#card-alarms", "equivocation", 20).await;
    assert!(
        alarms.contains("two different catalogs under the same version number"),
        "{alarms}"
    );
    wait_text(c, "#card-swarm", "From the origin", 5).await;
    wait_text(c, "#card-limits", "Resource limits", 5).await;

    // Logout (the page's form, with its hidden CSRF field), a wrong password, then in.
    click(c, "#logout").await;
    login(c, "not the password").await;
    wait_text(c, "#login-error", "Wrong password", 10).await;
    login(c, PASSWORD).await;
    wait_text(c, "#catalog-version", "Catalog version 1", 20).await;

    // A page loaded without a session shows the login (not the page it asked for), and
    // logging in lands on that page.
    c.delete_all_cookies().await.unwrap();
    go(c, &n.url("/#/apps")).await;
    wait_text(c, "#view-login h1", "Log in", 10).await;
    let hidden = c
        .execute(
            "return [document.getElementById('top').hidden, document.getElementById('view-apps').hidden];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        hidden,
        serde_json::json!([true, true]),
        "a page shown without a session"
    );
    login(c, PASSWORD).await;
    wait_text(c, "#view-apps h1", "Installed apps", 20).await;

    // Settings: a refused value is shown next to its field and changes nothing; a valid
    // change is in effect at once (the API, the install gate, the store's approval text).
    go(c, &n.url("/#/settings")).await;
    wait_js(
        c,
        "return document.getElementById('settings-market_min_score').value;",
        "50".into(),
        "the settings page shows the threshold",
        20,
    )
    .await;
    type_into(c, "#settings-relays", "http://not-a-relay.example").await;
    type_into(c, "#settings-market_min_score", "25").await;
    type_into(c, "#settings-pull_interval_seconds", "600").await;
    click(c, "#settings-save").await;
    let error = wait_text(c, "#settings-error-relays", "not a ws:// or wss:// URL", 10).await;
    assert!(error.contains("http://not-a-relay.example"), "{error}");
    let token = api_client(&n.data_dir);
    let settings = || async {
        token
            .get(n.url("/v1/settings"))
            .send()
            .await
            .unwrap()
            .json::<archy_api::Settings>()
            .await
            .unwrap()
    };
    assert_eq!(
        settings().await.market_min_score,
        50,
        "a refused update changed something"
    );
    type_into(c, "#settings-relays", "ws://127.0.0.1:9").await;
    click(c, "#settings-save").await;
    wait_text(c, "#toast", "Settings saved", 10).await;
    let now = settings().await;
    assert_eq!(now.market_min_score, 25);
    assert_eq!(now.pull_interval_seconds, 600);
    assert_eq!(now.relays, ["ws://127.0.0.1:9"]);
    for field in ["relays", "market_min_score", "pull_interval_seconds"] {
        assert!(now.overridden.iter().any(|f| f == field), "{now:?}");
    }
    assert_eq!(n.node.market_min_score(), 25);
    assert_eq!(n.node.relays(), ["ws://127.0.0.1:9"]);
    assert_eq!(n.node.pull_interval(), Duration::from_secs(600));
    wait_text(c, "#settings-source-market_min_score", "set here", 5).await;
    assert!(
        c.find(Locator::Css("#settings-error-relays"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .is_ok_and(|shown| !shown),
        "the relays error stayed after a valid save"
    );

    // The store: the verified catalog's hello, and the marketplace beside it.
    c.execute("performance.clearResourceTimings();", vec![])
        .await
        .unwrap();
    go(c, &n.url("/#/store")).await;
    let card = wait_text(c, "#store-hello", "Hello", 20).await;
    assert!(
        card.contains("VERIFIED CATALOG") || card.contains("Verified catalog"),
        "{card}"
    );
    assert!(
        card.contains("A static page that proves the whole chain works"),
        "{card}"
    );
    // What it will be allowed to do, in words, from its signed manifest.
    for words in [
        "opens port 18080 on this host",
        "limited to 32 MiB of memory",
    ] {
        assert!(
            card.contains(words),
            "{words:?} missing from the store card: {card}"
        );
    }
    wait_text(c, "#store-threshold", "scoring below 25 out of 100", 10).await;
    // Beside it, a third-party listing: its publisher, sandbox verdict, score with every
    // term, what it may do; all from the one store answer.
    let listing = wait_text(c, "#store-market .card", "Trust score: 45 / 100", 20).await;
    for words in [
        "THIRD PARTY",
        "Plain-text notes, kept on your node.",
        "passes the sandbox policy",
        "(this node asks for 25)",
        "+40",
        "vouched for by a key you trust",
        "listed for more than 30 days",
        "opens port 30001 on this host",
        "Installs as",
        "notes.",
    ] {
        assert!(
            listing.to_uppercase().contains(&words.to_uppercase()),
            "{words:?} missing from the listing card: {listing}"
        );
    }
    // The page asked for the store once, and for no listing's details.
    let asked = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(p => p.startsWith('/v1/market') || p === '/v1/store');",
            vec![],
        )
        .await
        .unwrap();
    let asked: Vec<String> = serde_json::from_value(asked).unwrap();
    assert!(
        asked.iter().all(|p| p == "/v1/store") && !asked.is_empty(),
        "{asked:?}"
    );
    // The search narrows both columns as the operator types.
    type_into(c, "#store-search", "greet").await;
    wait_js(
        c,
        "return [!!document.getElementById('store-greeter'), !!document.getElementById('store-hello'), document.querySelectorAll('#store-market .card').length];",
        serde_json::json!([true, false, 0]),
        "the search shows greeter only",
        10,
    )
    .await;
    c.execute(
        "const s = document.getElementById('store-search'); s.value = ''; s.dispatchEvent(new Event('input'));",
        vec![],
    )
    .await
    .unwrap();
    wait_text(c, "#store-hello", "Hello", 10).await;

    // Greeter needs hello, which is not installed: the store shows the plan and installs
    // nothing until the operator says yes. Cancelled here; confirmed at the end.
    let greeter = wait_text(c, "#store-greeter", "needs the app hello ^1", 10).await;
    assert!(greeter.contains("Greeter"), "{greeter}");
    click(c, "#store-greeter button.install").await;
    let plan = wait_text(c, "#plan-text", "will also install", 10).await;
    assert_eq!(plan, "Installing Greeter will also install Hello 1.0.0.");
    wait_text(c, "#plan-list", "Hello 1.0.0 (hello)", 5).await;
    click(c, "#plan-cancel").await;
    wait_js(
        c,
        "return [document.getElementById('plan-dialog').open, !!document.getElementById('op-greeter')];",
        serde_json::json!([false, false]),
        "the plan cancelled, nothing started",
        10,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(n.node.app("greeter").await.is_err() && n.node.app("hello").await.is_err());
    assert!(!podman_has_app("greeter").await && !podman_has_app("hello").await);

    // Install, drawn live from the NDJSON stream, to "running".
    click(c, "#store-hello button.install").await;
    wait_js(
        c,
        "const o = document.getElementById('op-hello'); return !!(o && o.dataset.stages);",
        true.into(),
        "progress events drawn",
        30,
    )
    .await;
    c.set_window_size(390, 844).await.unwrap();
    let progress_shot = screenshot(c, "phone-install-progress").await;
    // A reload drops the page's stream; the install goes on, and the page re-attaches to
    // it (`GET /v1/operations`, then its events replayed and followed).
    c.refresh().await.unwrap();
    wait_js(
        c,
        "const o = document.getElementById('op-hello'); return !!(o && o.dataset.operation && o.dataset.stages);",
        true.into(),
        "the install's progress back after a reload",
        30,
    )
    .await;
    wait_js(
        c,
        "const o = document.getElementById('op-hello'); return o && o.dataset.state;",
        "running".into(),
        "install finished",
        180,
    )
    .await;
    let stages = c
        .execute(
            "return document.getElementById('op-hello').dataset.stages",
            vec![],
        )
        .await
        .unwrap();
    let stages = stages.as_str().unwrap().to_owned();
    for stage in ["fetching", "starting"] {
        assert!(
            stages.contains(stage),
            "stage {stage} never drawn: {stages}"
        );
    }
    wait_text(c, "#op-hello .op-state", "running", 5).await;
    assert_eq!(app_state(&n).await, "running");
    c.set_window_size(1280, 900).await.unwrap();

    // Installed apps: state, the launch link that answers, stop and start.
    go(c, &n.url("/#/apps")).await;
    wait_js(
        c,
        "const a = document.getElementById('app-hello'); return a && a.dataset.state;",
        "running".into(),
        "hello listed running",
        20,
    )
    .await;
    let launch = c
        .find(Locator::Css("#launch-hello"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("a launch link");
    assert!(
        reqwest::get(&launch).await.unwrap().status().is_success(),
        "{launch}"
    );
    // The logs dialog shows what the app printed (NDJSON `{"container","line"}`, followed).
    click(c, "#app-hello button.logs").await;
    wait_text(c, "#logs-name", "hello / web", 10).await;
    wait_text(c, "#logs-output", "dashboard-log-line", 30).await;
    click(c, "#logs-close").await;
    wait_js(
        c,
        "return document.getElementById('logs-dialog').open;",
        false.into(),
        "the logs dialog closed",
        10,
    )
    .await;
    click(c, "#app-hello button.stop").await;
    wait_js(
        c,
        "const a = document.getElementById('app-hello'); return a && a.dataset.state;",
        "stopped".into(),
        "hello stopped",
        60,
    )
    .await;
    assert_eq!(app_state(&n).await, "stopped");
    click(c, "#app-hello button.start").await;
    wait_js(
        c,
        "const a = document.getElementById('app-hello'); return a && a.dataset.state;",
        "running".into(),
        "hello started",
        60,
    )
    .await;

    // CSRF: the page's own fetch without the header is refused by the real server...
    let refused = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/v1/apps/hello/stop', {method: 'POST', credentials: 'same-origin',
               headers: {'Content-Type': 'application/json'}, body: '{}'})
               .then(async r => done([r.status, (await r.json()).kind]));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, serde_json::json!([403, "cross_site"]));
    let cookie = c.get_named_cookie("archy_session").await.unwrap();
    let cookie = format!("archy_session={}", cookie.value());
    let (status, body) = {
        let r = http
            .post(n.url("/v1/apps/hello/restart"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("X-CSRF-Token"), "{body}");
    // ...and so is another site's form, although the browser sends the cookie along.
    let (evil, evil_server) = hostile_site(&n.api).await;
    go(c, &format!("{evil}/stop")).await;
    wait_js(
        c,
        "return document.body.innerText.includes('cross_site');",
        true.into(),
        "the cross-site form POST refused",
        20,
    )
    .await;
    go(c, &format!("{evil}/logout")).await;
    wait_js(
        c,
        "return document.body.innerText.includes('cross_site');",
        true.into(),
        "the cross-site logout refused",
        20,
    )
    .await;
    evil_server.abort();
    assert_eq!(
        app_state(&n).await,
        "running",
        "a hostile page stopped the app"
    );
    // The CLI's token keeps working alongside.
    let by_token = api_client(&n.data_dir)
        .get(n.url("/v1/apps/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), StatusCode::OK);

    // A phone-sized screen: every page fits its width.
    c.set_window_size(390, 844).await.unwrap();
    let mut shots = vec![progress_shot];
    for (page, css) in [
        ("overview", "#card-alarms"),
        ("store", "#store-hello"),
        ("apps", "#app-hello"),
        ("settings", "#settings-form"),
    ] {
        go(c, &n.url(&format!("/#/{page}"))).await;
        wait_text(c, css, "", 20).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let overflow = c
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        let (scroll, inner) = (overflow[0].as_u64().unwrap(), overflow[1].as_u64().unwrap());
        assert!(inner <= 400, "not a phone-sized viewport: {inner}");
        assert!(
            scroll <= inner,
            "{page} is wider than the phone: {scroll} > {inner}"
        );
        shots.push(screenshot(c, &format!("phone-{page}")).await);
    }
    eprintln!("screenshots: {shots:?}");
    c.set_window_size(1280, 900).await.unwrap();
    go(c, &n.url("/#/store")).await;
    wait_text(c, "#store-hello", "Installed", 20).await;
    shots.push(screenshot(c, "desktop-store").await);

    // Uninstall keeping the data: the app goes, its volume and secret stay.
    go(c, &n.url("/#/apps")).await;
    click(c, "#app-hello button.uninstall").await;
    wait_text(c, "#uninstall-dialog", "Also delete its data", 5).await;
    wait_text(c, "#uninstall-confirm", "Uninstall", 5).await;
    click(c, "#uninstall-confirm").await;
    wait_js(
        c,
        "return document.getElementById('app-hello') === null && document.getElementById('apps-list').innerText.includes('No apps installed');",
        true.into(),
        "hello uninstalled, data kept",
        60,
    )
    .await;
    assert!(n.node.app("hello").await.is_err());
    assert!(!podman_has_app("hello").await);
    assert!(
        n.data_dir.join("apps/hello").exists(),
        "the app's data dir went although deletion was not asked for"
    );
    assert!(
        podman_volume_exists("archy-hello-data"),
        "the app's volume went although deletion was not asked for"
    );

    // Installed again from the store, then uninstalled with its data.
    go(c, &n.url("/#/store")).await;
    click(c, "#store-hello button.install").await;
    wait_js(
        c,
        "const o = document.getElementById('op-hello'); return o && o.dataset.state;",
        "running".into(),
        "hello installed again",
        180,
    )
    .await;
    assert_eq!(app_state(&n).await, "running");

    // Uninstall, with the data deletion confirmed in the dialog.
    go(c, &n.url("/#/apps")).await;
    click(c, "#app-hello button.uninstall").await;
    wait_text(c, "#uninstall-dialog", "Also delete its data", 5).await;
    click(c, "#uninstall-purge").await;
    wait_text(c, "#uninstall-confirm", "delete its data", 5).await;
    click(c, "#uninstall-confirm").await;
    wait_js(
        c,
        "return document.getElementById('app-hello') === null && document.getElementById('apps-list').innerText.includes('No apps installed');",
        true.into(),
        "hello uninstalled",
        60,
    )
    .await;
    assert!(n.node.app("hello").await.is_err());
    assert!(!podman_has_app("hello").await);
    assert!(
        !n.data_dir.join("apps/hello").exists(),
        "the app's data was kept although deletion was confirmed"
    );
    assert!(
        !podman_volume_exists("archy-hello-data"),
        "the app's volume was kept although deletion was confirmed"
    );

    // Greeter with its dependency, confirmed in the plan: hello first, then greeter.
    go(c, &n.url("/#/store")).await;
    click(c, "#store-greeter button.install").await;
    wait_text(c, "#plan-text", "will also install Hello 1.0.0", 10).await;
    click(c, "#plan-confirm").await;
    wait_js(
        c,
        "const o = document.getElementById('op-greeter'); return o && o.dataset.state;",
        "running".into(),
        "greeter installed with hello",
        240,
    )
    .await;
    assert_eq!(app_state(&n).await, "running");
    assert_eq!(
        n.node.app("greeter").await.unwrap().state.to_string(),
        "running"
    );
    wait_text(c, "#store-hello", "Installed (1.0.0", 20).await;
    n.node.uninstall("greeter", true).await.unwrap();
    n.node.uninstall("hello", true).await.unwrap();
    assert!(!podman_has_app("greeter").await && !podman_has_app("hello").await);

    // Logout: the old cookie is worth nothing afterwards.
    click(c, "#logout").await;
    wait_text(c, "#view-login h1", "Log in", 10).await;
    let after = http
        .get(n.url("/v1/status"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    // Guessing: five wrong passwords, then the client is locked out (even the right one).
    for i in 0..5 {
        login(c, &format!("guess number {i}")).await;
        wait_text(c, "#login-error", "Wrong password", 10).await;
        c.execute(
            "document.getElementById('login-error').hidden = true;",
            vec![],
        )
        .await
        .unwrap();
    }
    login(c, PASSWORD).await;
    wait_text(c, "#login-error", "Too many failed attempts", 10).await;
    let limited = http
        .post(n.url("/ui/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"password":"{PASSWORD}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    shots.push(screenshot(c, "desktop-login-limited").await);

    browser.close().await;
    n.stop().await;
}
