//! Attacks on the node's last mile, performed as found, through the real node: a web page
//! or local process driving the API, path parameters that climb out of the data dir,
//! unbounded uploads, and a catalog signed by our own (stolen) keys that tries to turn a
//! manifest value into a Podman option.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};

/// A node serving its API, its catalog (the repo's apps) from a test origin in `dir`.
async fn api_node(dir: &Path, edit: impl FnOnce(&mut archy_node::NodeConfig)) -> ApiNode {
    ApiNode::start(dir, TestOrigin::start(dir).await, edit).await
}

async fn publish_pins(n: &ApiNode) -> Vec<String> {
    n.node
        .swarm()
        .pins("archy/publish")
        .await
        .unwrap()
        .into_iter()
        .map(|(tag, _)| tag)
        .collect()
}

/// One HTTP/1.1 request written by hand (no client normalises its target); the answer.
async fn raw_http(api: &str, method: &str, target: &str, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = api.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

async fn error_of(response: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

/// What a hostile web page (or any local process without the token) can make a browser
/// send: nothing gets past the front door, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_pages_hosts_and_callers_without_the_token() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let n = api_node(tmp.path(), |_| {}).await;
    let raw = reqwest::Client::new();
    let bearer = format!("Bearer {}", n.token());

    // The data dir, the database and the token are the operator's alone.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&n.data_dir), 0o700, "data dir");
    assert_eq!(mode(&n.data_dir.join("archy.db")), 0o600, "sqlite");
    assert_eq!(
        mode(&archy_node::auth::token_path(&n.data_dir)),
        0o600,
        "token"
    );

    // A cross-site "simple" request (a form or fetch without preflight): refused by origin.
    let (status, body) = error_of(
        raw.post(n.url("/v1/apps/hello/install"))
            .header(ORIGIN, "http://evil.example")
            .header(CONTENT_TYPE, "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["kind"], "cross_site", "{body}");
    // Even carrying the token, another site's page is refused.
    let (status, _) = error_of(
        raw.post(n.url(&format!("/v1/trust/keys/{}", "a".repeat(64))))
            .header(AUTHORIZATION, &bearer)
            .header(ORIGIN, "http://evil.example")
            .header(CONTENT_TYPE, "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // DNS rebinding: the page's own name, resolved to 127.0.0.1.
    let (status, body) = error_of(
        raw.get(n.url("/v1/status"))
            .header(HOST, "rebind.evil.example:7878")
            .header(AUTHORIZATION, &bearer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{body}");
    assert_eq!(body["kind"], "wrong_host");

    // No credential, wrong credential: 401 on reads and on changes.
    for (method, path) in [
        (reqwest::Method::GET, "/v1/status"),
        (reqwest::Method::GET, "/v1/apps"),
        (reqwest::Method::POST, "/v1/apps/hello/install"),
        (reqwest::Method::DELETE, "/v1/apps/hello?purge=true"),
        (reqwest::Method::POST, "/v1/publish"),
    ] {
        for auth in [None, Some("Bearer 00000000000000000000000000000000")] {
            let mut request = raw
                .request(method.clone(), n.url(path))
                .header(CONTENT_TYPE, "application/json");
            if let Some(auth) = auth {
                request = request.header(AUTHORIZATION, auth);
            }
            let (status, body) = error_of(request.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
            assert_eq!(body["kind"], "unauthorized");
        }
    }

    // The token, but a body type a form can send: refused before anything runs.
    let (status, body) = error_of(
        raw.post(n.url("/v1/apps/hello/install"))
            .header(AUTHORIZATION, &bearer)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("a=b")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    // Nothing changes state on GET.
    let status = raw
        .get(n.url("/v1/apps/hello/install"))
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        n.node.apps().await.unwrap().is_empty(),
        "something installed"
    );
    assert!(!podman_has_app("hello").await);

    // The local operator, with the token: works.
    let client = n.client();
    let status = client.get(n.url("/v1/status")).send().await.unwrap();
    assert!(status.status().is_success());
    // Every error answer is the contract's error body, axum's own included.
    for (method, path, body, want) in [
        (reqwest::Method::GET, "/v1/nope", "", StatusCode::NOT_FOUND),
        (
            reqwest::Method::POST,
            "/v1/publish",
            "not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::POST,
            "/v1/publish",
            r#"{"app": "x", "artifacts": [], "extra": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::POST,
            "/v1/apps/hello/install?stream=maybe",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::PUT,
            "/v1/status",
            "",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let answer = client
            .request(method.clone(), n.url(path))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), want, "{method} {path}");
        let error: archy_api::ApiError = answer
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: not an ApiError: {e}"));
        assert!(!error.error.is_empty(), "{method} {path}");
    }
    n.stop().await;
}

/// `DELETE /v1/apps/..%2F..%2F..%2Fvictim?purge=true` once removed a directory outside the
/// data dir. Every path parameter is now parsed by its grammar first; purge touches only
/// apps this node installed or kept data of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_cannot_leave_the_data_dir() {
    let _podman = PODMAN.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let n = api_node(tmp.path(), |_| {}).await;
    let client = n.client();
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), b"data").unwrap();
    // node/apps/<id> -> ../../victim: the data dir is three levels below.
    for id in [
        "..%2F..%2F..%2Fvictim",
        "..%2F..%2Fvictim",
        "hello%2F..%2F..%2F..%2Fvictim",
        "-rf",
        "hello%00",
        "HELLO",
    ] {
        let (status, body) = error_of(
            client
                .delete(n.url(&format!("/v1/apps/{id}?purge=true")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}: {body}");
        assert_eq!(body["kind"], "invalid", "{id}: {body}");
        assert!(body["error"].as_str().unwrap().contains("app id"), "{body}");
    }
    // Raw requests, as no URL library would normalise them: `..` segments kept.
    for target in [
        "/v1/apps/%2E%2E?purge=true",
        "/v1/apps/%2e%2e%2f..%2fvictim?purge=true",
    ] {
        let answer = raw_http(&n.api, "DELETE", target, &n.token()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
    }
    // Other routes and parameter kinds refuse the same way.
    for (method, path) in [
        (reqwest::Method::POST, "/v1/apps/..%2Fx/stop"),
        (reqwest::Method::GET, "/v1/apps/..%2Fx"),
        (reqwest::Method::POST, "/v1/apps/a.b.c/install"),
        (reqwest::Method::GET, "/v1/market/..%2Fx"),
        (reqwest::Method::POST, "/v1/trust/keys/..%2F..%2Fx"),
        (
            reqwest::Method::POST,
            "/v1/market/hello/install?publisher=..%2F",
        ),
    ] {
        let status = client
            .request(method.clone(), n.url(path))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}");
    }
    // A valid id this node never installed: nothing to purge, nothing removed.
    let (status, body) = error_of(
        client
            .delete(n.url("/v1/apps/victim?purge=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        victim.join("precious").exists(),
        "a directory outside the data dir was removed"
    );
    n.stop().await;
}

/// Uploads for publication: only for a publication in progress that declared the artifact,
/// never past its declared size or the node's cap; failures and abandoned publications
/// leave no temporary file and no pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_bounded_and_leave_nothing_behind() {
    let _podman = PODMAN.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let n = api_node(tmp.path(), |c| c.max_upload_mib = 1).await;
    let client = n.client();
    let put = |session: &str, body: Vec<u8>| {
        client
            .put(n.url(&format!("/v1/publish/{session}/image")))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
    };
    let begin = |size: u64, blake3: String| {
        client
            .post(n.url("/v1/publish"))
            .json(&serde_json::json!({
                "app": "notes",
                "artifacts": [{ "name": "image", "size": size, "blake3": blake3 }]
            }))
            .send()
    };
    let session_of = |v: serde_json::Value| v["session"].as_str().unwrap().to_owned();
    let tmp_files = || {
        std::fs::read_dir(n.data_dir.join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    // No publication in progress: nothing is taken.
    let (status, _) = error_of(put(&"0".repeat(32), vec![1; 1024]).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A text/plain upload (what a page could send) is refused at the door.
    let status = client
        .put(n.url(&format!("/v1/publish/{}/image", "0".repeat(32))))
        .header(CONTENT_TYPE, "text/plain")
        .body("x")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Declaring more than the node's cap (1 MiB here).
    let (status, body) = error_of(
        begin(2 * 1024 * 1024, blake3::hash(b"x").to_hex().to_string())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("max_upload_mib"));

    // Sending more than declared: cut off, nothing kept.
    let small = vec![7u8; 1000];
    let hash = blake3::hash(&small).to_hex().to_string();
    let session = session_of(
        begin(1000, hash.clone())
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    // 2 MiB: far more than fits in socket buffers, so the node must read what overruns
    // (up to a bound) before answering, or the client sees a reset instead of the 413.
    let (status, body) = error_of(put(&session, vec![7u8; 2 * 1024 * 1024]).await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(tmp_files(), 0, "a temporary file stayed");
    assert!(publish_pins(&n).await.is_empty());
    // The declared size, other bytes: the hash decides, nothing kept.
    let (status, body) = error_of(put(&session, vec![8u8; 1000]).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("hashes to"),
        "{body}"
    );
    assert!(publish_pins(&n).await.is_empty());
    assert_eq!(tmp_files(), 0);
    // The right bytes are kept, pinned; aborting the publication releases them.
    let ok: serde_json::Value = put(&session, small.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["blake3"], hash.as_str(), "{ok}");
    assert_eq!(publish_pins(&n).await.len(), 1);
    let status = client
        .delete(n.url(&format!("/v1/publish/{session}")))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    assert!(
        publish_pins(&n).await.is_empty(),
        "an aborted publication kept its pin"
    );
    // A finished publication keeps its artifacts pinned (its node is their origin).
    let session = session_of(
        begin(1000, hash.clone())
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert!(put(&session, small).await.unwrap().status().is_success());
    let finished = client
        .post(n.url(&format!("/v1/publish/{session}/finish")))
        .send()
        .await
        .unwrap();
    assert!(finished.status().is_success());
    assert_eq!(publish_pins(&n).await.len(), 1);
    // A finished session takes no more uploads.
    let (status, _) = error_of(put(&session, vec![1]).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    n.stop().await;
}

/// The attack as found: a catalog signed by our own catalog key whose hello manifest names
/// `--mount=type=bind,src=/,dst=/x@sha256:…` as its image. Podman once took it as an
/// option and mounted the host's `/`. Now the manifest is refused by its grammar before
/// anything reaches Podman, and nothing is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_manifest_cannot_smuggle_podman_options() {
    let _podman = PODMAN.lock().await;
    remove_leftovers("hello").await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = Keys::new();
    let root = keys.write_root(tmp.path());
    let (swarm, id) = origin_swarm_with_hello(&tmp.path().join("origin")).await;
    let digest = "a".repeat(64);
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let payloads: [(&str, Edit); 3] = [
        (
            "image.reference",
            Box::new(move |c: &mut serde_json::Value| {
                c["image"] = serde_json::json!({
                    "reference": format!("--mount=type=bind,src=/,dst=/x@sha256:{digest}")
                });
                c["command"] = serde_json::json!(["localhost/archy/hello:1.0.0"]);
            }),
        ),
        (
            "volumes[0].path",
            Box::new(|c: &mut serde_json::Value| {
                c["volumes"] = serde_json::json!([{ "name": "data", "path": "/data:/host,rw" }]);
            }),
        ),
        (
            "user",
            Box::new(|c: &mut serde_json::Value| {
                c["user"] = serde_json::json!("--privileged");
            }),
        ),
    ];
    for (i, (field, edit)) in payloads.iter().enumerate() {
        let (listener, url) = loopback_listener().await;
        let honest = signed_catalog(&keys, &url, &id, 1, 30);
        let mut hostile = edit_payload(&honest, |v| {
            edit(&mut v["apps"][0]["manifest"]["containers"][0])
        });
        hostile.signatures.clear();
        hostile.sign(&keys.catalog).unwrap();
        let server = serve_bytes(listener, hostile.to_bytes(), swarm.clone());
        let node = start_node(&tmp.path().join(format!("node-{i}")), &url, &root).await;
        let refused = match node.pull_catalog().await {
            Err(e) => e.message,
            Ok(_) => {
                node.install("hello")
                    .await
                    .expect_err("a hostile manifest installed")
                    .message
            }
        };
        assert!(refused.contains(field), "{field}: {refused}");
        assert!(node.apps().await.unwrap().is_empty());
        assert!(!podman_has_app("hello").await, "{field}: containers exist");
        node.shutdown().await;
        server.abort();
    }
}
