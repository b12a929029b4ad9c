//! The wire contract (`archy-api`) against a real node: every answer the node gives must
//! deserialize into the contract's type and serialize back to the very same JSON, so a
//! field the server adds, drops, renames or reshapes without the contract fails here.
//! The typed client drives the same node, and `/v1/openapi.json` names every route.

use super::*;
use archy_api::{ErrorKind, routes};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `value` as the contract's `T`, checked to be exactly what `T` says: deserializing and
/// serializing back gives the same JSON (no field unknown to the contract, none missing,
/// no shape changed).
fn strict<T: Serialize + DeserializeOwned>(what: &str, value: &serde_json::Value) -> T {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what}: not the contract's shape: {e}\n{value:#}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, value,
        "{what}: the node sends something the contract does not describe"
    );
    typed
}

async fn json_of(what: &str, response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "{what}");
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_speaks_the_contract() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start(tmp.path()).await;
    let n = ApiNode::start(tmp.path(), origin, |_| {}).await;
    let raw = n.client();
    let get = |path: &str| raw.get(n.url(path)).send();

    // Reads.
    let status: archy_api::StatusView = strict(
        "status",
        &json_of("status", get(routes::STATUS).await.unwrap(), 200).await,
    );
    assert_eq!(status.catalog.as_ref().map(|c| c.version), Some(1));
    strict::<archy_api::SwarmStatus>(
        "swarm",
        &json_of("swarm", get(routes::SWARM).await.unwrap(), 200).await,
    );
    let catalog: Vec<archy_api::CatalogAppView> = strict(
        "catalog apps",
        &json_of("catalog", get(routes::CATALOG_APPS).await.unwrap(), 200).await,
    );
    assert!(catalog.iter().any(|a| a.id == "hello" && !a.installed));
    strict::<Vec<archy_api::MarketRow>>(
        "market",
        &json_of("market", get(routes::MARKET).await.unwrap(), 200).await,
    );
    // The store in one answer, and the plan of an install (hello needs nothing).
    let store: archy_api::StoreView = strict(
        "store",
        &json_of("store", get(routes::STORE).await.unwrap(), 200).await,
    );
    assert_eq!(store.catalog_version, Some(1));
    let hello = store.catalog.iter().find(|a| a.id == "hello").unwrap();
    assert!(hello.installed.is_none() && hello.needs.is_empty());
    assert!(
        hello
            .may
            .iter()
            .any(|w| w.starts_with("opens port 18080 on this host")),
        "{:?}",
        hello.may
    );
    let plan: archy_api::InstallPlan = strict(
        "plan",
        &json_of(
            "plan",
            get(&routes::catalog_app_plan("hello")).await.unwrap(),
            200,
        )
        .await,
    );
    assert_eq!(
        (
            plan.app.id.as_str(),
            plan.install_first.len(),
            plan.catalog_version
        ),
        ("hello", 0, 1)
    );
    for (id, status, kind) in [
        ("nope", 404, ErrorKind::NotFound),
        ("-rf", 400, ErrorKind::Invalid),
    ] {
        let e: archy_api::ApiError = strict(
            "error",
            &json_of(
                "plan",
                get(&routes::catalog_app_plan(id)).await.unwrap(),
                status,
            )
            .await,
        );
        assert_eq!(e.kind, kind, "{id}");
    }

    // Big read-only answers are compressed for a client that asks; what carries a CSRF
    // token never is (BREACH), however the client asks.
    let compressed = raw
        .get(n.url(routes::OPENAPI))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.status().as_u16(), 200);
    assert_eq!(
        compressed
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let setup = reqwest::Client::new()
        .post(n.url("/ui/setup"))
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip, br")
        .body(r#"{"password":"a password for the contract test"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(setup.status().as_u16(), 200);
    assert!(setup.headers().get("content-encoding").is_none());
    let cookie = setup.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = setup.json::<serde_json::Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/ui/session", "/ui/login"] {
        let request = if path == "/ui/login" {
            reqwest::Client::new()
                .post(n.url(path))
                .header("content-type", "application/json")
                .body(r#"{"password":"a password for the contract test"}"#)
        } else {
            reqwest::Client::new()
                .get(n.url(path))
                .header("cookie", &cookie)
        };
        let answer = request
            .header("accept-encoding", "gzip, br, deflate")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{path}");
        assert!(
            answer.headers().get("content-encoding").is_none(),
            "{path} was compressed"
        );
        let body: serde_json::Value = answer.json().await.unwrap();
        assert!(
            body["csrf"].as_str().is_some_and(|t| t.len() >= 32),
            "{path}: {body}"
        );
        if path == "/ui/session" {
            assert_eq!(body["csrf"], csrf.as_str());
        }
    }
    // Nor are the other API answers.
    let with_session = reqwest::Client::new()
        .get(n.url(routes::SETTINGS))
        .header("cookie", &cookie)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(with_session.status().as_u16(), 200);
    assert!(with_session.headers().get("content-encoding").is_none());

    let pulled = raw.post(n.url(routes::CATALOG_PULL)).send().await.unwrap();
    strict::<archy_api::PullResponse>("catalog pull", &json_of("pull", pulled, 200).await);

    // Trust keys: add, list, remove.
    let key = "a".repeat(64);
    let added = raw
        .post(n.url(&routes::trust_key(&key)))
        .send()
        .await
        .unwrap();
    let added: archy_api::Trusted = strict("trust add", &json_of("trust add", added, 200).await);
    assert_eq!(added.trusted, key);
    let keys: Vec<archy_api::TrustedKey> = strict(
        "trust keys",
        &json_of("trust keys", get(routes::TRUST_KEYS).await.unwrap(), 200).await,
    );
    assert!(
        keys.iter()
            .any(|k| k.key == key && k.source == archy_api::KeySource::Cli)
    );
    let removed = raw
        .delete(n.url(&routes::trust_key(&key)))
        .send()
        .await
        .unwrap();
    strict::<archy_api::Untrusted>("trust remove", &json_of("trust remove", removed, 200).await);

    // Errors: the node's own, and the front door's.
    let missing: archy_api::ApiError = strict(
        "error",
        &json_of("missing app", get(&routes::app("nope")).await.unwrap(), 404).await,
    );
    assert_eq!(missing.kind, ErrorKind::NotFound);
    let bad: archy_api::ApiError = strict(
        "error",
        &json_of("bad id", get(&routes::app("-rf")).await.unwrap(), 400).await,
    );
    assert_eq!(bad.kind, ErrorKind::Invalid);
    let no_listing = get(&routes::market_app("nothing")).await.unwrap();
    strict::<archy_api::ApiError>("error", &json_of("no listing", no_listing, 404).await);
    let anonymous = reqwest::Client::new()
        .get(n.url(routes::STATUS))
        .send()
        .await
        .unwrap();
    let anonymous: archy_api::ApiError =
        strict("error", &json_of("no token", anonymous, 401).await);
    assert_eq!(anonymous.kind, ErrorKind::Unauthorized);

    // A publication: begin, upload, finish; and one aborted.
    let bytes = b"an artifact".to_vec();
    let declared = archy_api::BeginPublish {
        app: "notes".into(),
        artifacts: vec![archy_api::DeclaredArtifact {
            name: "image".into(),
            size: bytes.len() as u64,
            blake3: blake3::hash(&bytes).to_hex().to_string(),
        }],
    };
    let begun = raw
        .post(n.url(routes::PUBLISH))
        .json(&declared)
        .send()
        .await
        .unwrap();
    let session: archy_api::PublishSession =
        strict("publish", &json_of("publish", begun, 200).await);
    let uploaded = raw
        .put(n.url(&routes::publish_artifact(&session.session, "image")))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    strict::<archy_api::UploadedArtifact>("upload", &json_of("upload", uploaded, 200).await);
    let finished = raw
        .post(n.url(&routes::publish_finish(&session.session)))
        .send()
        .await
        .unwrap();
    strict::<archy_api::PublishFinished>("finish", &json_of("finish", finished, 200).await);
    let begun = raw
        .post(n.url(routes::PUBLISH))
        .json(&declared)
        .send()
        .await
        .unwrap();
    let session: archy_api::PublishSession =
        strict("publish", &json_of("publish", begun, 200).await);
    let aborted = raw
        .delete(n.url(&routes::publish_session(&session.session)))
        .send()
        .await
        .unwrap();
    strict::<archy_api::PublishAborted>("abort", &json_of("abort", aborted, 200).await);

    // An install stream: every line an event of the contract, the last one the app.
    let stream = raw
        .post(n.url(&routes::app_install("hello", true, false)))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let text = stream.text().await.unwrap();
    let events: Vec<archy_api::OperationEvent> = text
        .lines()
        .map(|line| strict("install stream", &serde_json::from_str(line).unwrap()))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, archy_api::OperationEvent::Progress { progress } if progress.stage == archy_api::Stage::Fetching)),
        "{text}"
    );
    match events.last() {
        Some(archy_api::OperationEvent::Result { result }) => {
            assert_eq!(result.state, archy_api::AppState::Running)
        }
        other => panic!("the stream ended with {other:?}: {text}"),
    }
    let apps: Vec<archy_api::AppView> = strict(
        "apps",
        &json_of("apps", get(routes::APPS).await.unwrap(), 200).await,
    );
    assert_eq!(apps.len(), 1);
    // The store says what is installed (no update: the catalog's version runs); a plan of
    // an installed app is refused as its install would be.
    let store: archy_api::StoreView = strict(
        "store",
        &json_of("store", get(routes::STORE).await.unwrap(), 200).await,
    );
    let installed = store
        .catalog
        .iter()
        .find(|a| a.id == "hello")
        .and_then(|a| a.installed.clone())
        .expect("hello shown installed");
    assert_eq!(installed.version, "1.0.0");
    assert_eq!(installed.update_to, None);
    let e: archy_api::ApiError = strict(
        "error",
        &json_of(
            "plan",
            get(&routes::catalog_app_plan("hello")).await.unwrap(),
            409,
        )
        .await,
    );
    assert_eq!(e.kind, ErrorKind::Conflict);
    strict::<archy_api::AppView>(
        "app",
        &json_of("app", get(&routes::app("hello")).await.unwrap(), 200).await,
    );
    // A second install is refused, as an error line of the stream's contract.
    let again = raw
        .post(n.url(&routes::app_install("hello", true, false)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last = again.lines().last().unwrap_or_default();
    match strict::<archy_api::OperationEvent>(
        "install stream",
        &serde_json::from_str(last).unwrap(),
    ) {
        archy_api::OperationEvent::Error(e) => assert_eq!(e.kind, ErrorKind::Conflict, "{e:?}"),
        other => panic!("a second install did not fail: {other:?}"),
    }

    // The typed client against the same node.
    let client =
        archy_api::Client::from_token_file(&n.api, &archy_node::auth::token_path(&n.data_dir))
            .unwrap();
    assert_eq!(
        client.status().await.unwrap().endpoint_id,
        status.endpoint_id
    );
    let stopped = client.stop("hello").await.unwrap();
    assert_eq!(stopped.desired, archy_api::DesiredState::Stopped);
    let started = client.start("hello").await.unwrap();
    assert_eq!(started.desired, archy_api::DesiredState::Running);
    let err = client.app("nope").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::NotFound), "{err}");
    let err = client.install("hello", false, |_| {}).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Conflict), "{err}");
    assert_eq!(client.catalog_apps().await.unwrap().len(), catalog.len());
    assert_eq!(client.store().await.unwrap().catalog.len(), catalog.len());
    let err = client.install_plan("hello").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Conflict), "{err}");

    let removed = raw
        .delete(n.url(&routes::uninstall("hello", true)))
        .send()
        .await
        .unwrap();
    let removed: archy_api::Uninstalled =
        strict("uninstall", &json_of("uninstall", removed, 200).await);
    assert!(removed.purged);

    // The node's description of itself is the contract's, and names every route.
    let served = json_of("openapi", get(routes::OPENAPI).await.unwrap(), 200).await;
    assert_eq!(served, serde_json::to_value(archy_api::openapi()).unwrap());
    let document = client.openapi().await.unwrap();
    for (method, path) in routes::ALL {
        let item = document
            .paths
            .paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in /v1/openapi.json"));
        let op = match method {
            routes::Method::Get => &item.get,
            routes::Method::Post => &item.post,
            routes::Method::Put => &item.put,
            routes::Method::Delete => &item.delete,
        };
        assert!(op.is_some(), "{method} {path} is not in /v1/openapi.json");
    }
    n.stop().await;
    assert!(!podman_has_app("hello").await);
}
