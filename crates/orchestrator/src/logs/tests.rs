//! Unit tests of container logs, and one against a real Podman service (ignored unless
//! asked for: it needs `ARCHY_PODMAN_URL` and `ARCHY_TEST_ARTIFACTS`).

use std::net::IpAddr;

use super::*;
use crate::OrchestratorConfig;

fn hello() -> Manifest {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../apps/hello/manifest.yml"
    ))
    .unwrap();
    Manifest::from_yaml(&yaml).unwrap()
}

fn orchestrator(engine: Engine) -> Orchestrator {
    Orchestrator {
        runtime: std::sync::Arc::new(engine),
        config: OrchestratorConfig {
            podman_url: String::new(),
            data_dir: std::env::temp_dir(),
            publish_address: IpAddr::from([127, 0, 0, 1]),
        },
        tamper_argv: None,
    }
}

async fn lines_of(input: &[u8]) -> Vec<String> {
    let mut reader = input;
    let mut out = Vec::new();
    while let Some(line) = read_line_capped(&mut reader).await.unwrap() {
        out.push(line);
    }
    out
}

#[test]
fn logs_argv_ends_options_before_the_container() {
    assert_eq!(
        logs_args("archy-hello-web", 100, false, None),
        ["logs", "--tail", "100", "--", "archy-hello-web"]
    );
    assert_eq!(
        logs_args("archy-hello-web", 0, true, None),
        ["logs", "--tail", "0", "--follow", "--", "archy-hello-web"]
    );
    assert_eq!(
        logs_args("archy-hello-web", u32::MAX, false, None)[2],
        LOG_TAIL_MAX.to_string()
    );
}

/// `--since` carries a time the node rendered, glued to its flag, before the `--`.
#[test]
fn logs_since_is_one_rendered_argument_before_the_end_of_options() {
    let at = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678+02:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        logs_args("archy-hello-web", 10, true, Some(at)),
        [
            "logs",
            "--tail",
            "10",
            "--follow",
            "--since=2030-01-02T01:04:05Z",
            "--",
            "archy-hello-web"
        ]
    );
}

/// Only the manifest's containers, by their manifest name: anything else is refused
/// before Podman is asked (this engine has no service behind it).
#[tokio::test]
async fn logs_of_containers_outside_the_manifest_are_refused() {
    let o = orchestrator(Engine::unconnected());
    let m = hello();
    for name in ["db", "archy-hello-web", "web --follow", "", "../web"] {
        let err = o.logs_of(&m, name, 10, false, None).await.unwrap_err();
        assert!(
            matches!(&err, Error::UnknownContainer { app, container } if app == "hello" && container == name),
            "{name:?}: {err}"
        );
    }
    // The manifest's own container gets as far as Podman (which is not there).
    let err = o.logs_of(&m, "web", 10, false, None).await.unwrap_err();
    assert!(
        matches!(err, Error::ServiceDown { .. } | Error::Engine(_)),
        "{err}"
    );
}

#[tokio::test]
async fn lines_are_split_and_made_utf8() {
    assert_eq!(
        lines_of(b"one\ntwo\r\n\nbad \xff\xfe end\nlast without newline").await,
        [
            "one",
            "two",
            "",
            "bad \u{fffd}\u{fffd} end",
            "last without newline"
        ]
    );
    assert!(lines_of(b"").await.is_empty());
}

#[tokio::test]
async fn long_lines_are_cut_and_marked() {
    let long = "x".repeat(LOG_LINE_MAX * 3);
    let input = format!("{long}\nnext\n");
    let lines = lines_of(input.as_bytes()).await;
    assert_eq!(
        lines.len(),
        2,
        "the rest of a cut line is skipped, not a new line"
    );
    assert!(lines[0].ends_with(CUT_MARK));
    assert_eq!(lines[0].len(), LOG_LINE_MAX);
    assert_eq!(lines[1], "next");

    // Exactly the cap is not cut.
    let exact = "y".repeat(LOG_LINE_MAX);
    assert_eq!(lines_of(format!("{exact}\n").as_bytes()).await, [exact]);

    // A cut never splits a character, and replacement never grows a line past the cap.
    let wide = "é".repeat(LOG_LINE_MAX);
    let line = &lines_of(wide.as_bytes()).await[0];
    assert!(
        line.len() <= LOG_LINE_MAX && line.ends_with(CUT_MARK),
        "{}",
        line.len()
    );
    assert!(!line.contains('\u{fffd}'));
    let invalid = vec![0xffu8; LOG_LINE_MAX];
    let line = &lines_of(&invalid).await[0];
    assert!(
        line.len() <= LOG_LINE_MAX && line.ends_with(CUT_MARK),
        "{}",
        line.len()
    );
}

/// Against the real service: a container of an app built in code, its last lines, its
/// followed lines, a long line cut, non-UTF-8 replaced; the client is gone once the
/// follower drops its receiver.
/// Runs in `scripts/test.sh`, which starts the service and builds the artifacts; alone it
/// fails saying what is missing (it used to be ignored, so CI never ran it).
#[tokio::test]
async fn real_podman_logs_tail_and_follow() {
    let url = std::env::var("ARCHY_PODMAN_URL").expect(
        "ARCHY_PODMAN_URL is not set: this test needs a rootless Podman service \
         (scripts/setup-podman.sh starts one and prints it)",
    );
    let artifacts = std::env::var("ARCHY_TEST_ARTIFACTS").expect(
        "ARCHY_TEST_ARTIFACTS is not set: this test needs hello's image (apps/build.sh build/artifacts)",
    );
    let engine = Engine::connect(&url).await.unwrap();
    let image = engine
        .load_image_file(&std::path::Path::new(&artifacts).join("hello/image.tar"))
        .await
        .unwrap();
    let mut m = hello();
    m.id = format!("orchlogs{}", std::process::id());
    let name = container_name(&m.id, "web");
    let script = "echo one; echo two >&2; printf 'bad \\377 end\\n'; \
                  head -c 20000 /dev/zero | tr '\\0' x; echo; \
                  i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done";
    engine
        .run(&[
            "run",
            "-d",
            "--name",
            &name,
            "--userns=nomap",
            "--entrypoint",
            "/bin/busybox",
            "--",
            &image,
            "sh",
            "-c",
            script,
        ])
        .await
        .unwrap();
    let o = orchestrator(engine.clone());
    // Spawned, so that a failed assertion still removes the container below.
    let follow_name = name.clone();
    let result = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let mut rx = o.logs_of(&m, "web", 100, false, None).await?;
        let mut last = Vec::new();
        while let Some(l) = rx.recv().await {
            assert_eq!(l.container, "web");
            last.push(l.line);
        }
        let short: Vec<&str> = last.iter().map(|l| &l[..l.len().min(40)]).collect();
        assert!(last.contains(&"one".to_owned()), "{short:?}");
        assert!(last.iter().any(|l| l.starts_with("tick")), "{short:?}");
        // Podman 4.3.1's remote client passes on a line longer than conmon's 8 KiB buffer
        // in pieces, on either stream, without line breaks: the 20000 x's arrive glued to
        // a line before them. Whatever arrives, no line is over the cap.
        let starts = |p: &str| last.iter().any(|l| l.starts_with(p));
        assert!(starts("bad \u{fffd} end"), "{short:?}");
        assert!(starts("two"), "stderr: {short:?}");
        assert!(last.iter().all(|l| l.len() <= LOG_LINE_MAX), "{short:?}");
        assert!(last.iter().any(|l| l.ends_with(CUT_MARK)), "{short:?}");

        let mut rx = o.logs_of(&m, "web", 1, true, None).await?;
        let mut ticks = Vec::new();
        while ticks.len() < 5 {
            let l = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                .await
                .expect("a followed line within 10 s")
                .expect("the stream goes on");
            ticks.push(l.line);
        }
        assert!(ticks.iter().all(|t| t.starts_with("tick")), "{ticks:?}");
        drop(rx);
        // The follow client was killed with its receiver (the container still runs).
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let ps = std::process::Command::new("pgrep")
            .args(["-f", &format!("logs --tail 1 --follow -- {follow_name}")])
            .output()
            .unwrap();
        assert!(
            ps.stdout.is_empty(),
            "a podman logs client outlived its receiver"
        );
        Ok::<_, Error>(())
    })
    .await;
    engine.remove_container(&name).await.unwrap();
    match result {
        Ok(outcome) => outcome.unwrap(),
        Err(panicked) => std::panic::resume_unwind(panicked.into_panic()),
    }
}
