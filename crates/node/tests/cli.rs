//! The developer-side `archy` commands, run as a real binary: validate, render, dev; and the
//! operator's `archy relay run`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn archy(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_archy"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../apps/hello/manifest.yml");

#[test]
fn validate_names_the_field_and_the_rule() {
    let ok = archy(&["app", "validate", HELLO, "--third-party"], None);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("hello 1.0.0 is valid and passes the third-party sandbox policy"));

    let dir = tempfile::tempdir().unwrap();
    let hello = std::fs::read_to_string(HELLO).unwrap();
    let typo = dir.path().join("typo.yml");
    std::fs::write(&typo, hello.replace("    ports:", "    portz:")).unwrap();
    let out = archy(&["app", "validate", typo.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(text(&out).contains("portz"), "{}", text(&out));

    let privileged = dir.path().join("privileged.yml");
    std::fs::write(
        &privileged,
        hello.replace(
            "    stop_grace_seconds: 5",
            "    stop_grace_seconds: 5\n    privileged: true",
        ),
    )
    .unwrap();
    let first_party = archy(&["app", "validate", privileged.to_str().unwrap()], None);
    assert!(first_party.status.success(), "{}", text(&first_party));
    let third_party = archy(
        &[
            "app",
            "validate",
            privileged.to_str().unwrap(),
            "--third-party",
        ],
        None,
    );
    assert!(!third_party.status.success());
    assert!(
        text(&third_party).contains("containers[0].privileged"),
        "{}",
        text(&third_party)
    );
}

#[test]
fn render_prints_the_podman_commands() {
    let out = archy(
        &["app", "render", HELLO, "--publish-address", "127.0.0.1"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("podman create --name archy-hello-web"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--publish 127.0.0.1:18080:8080/tcp"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("podman start archy-hello-web"),
        "{stdout}"
    );
}

#[test]
fn dev_init_and_show_give_the_same_identities() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.mnemonic");
    let path = file.to_str().unwrap();
    let init = archy(&["dev", "init", "--out", path], None);
    assert!(init.status.success(), "{}", text(&init));
    let shown = String::from_utf8_lossy(&init.stdout).into_owned();
    assert!(
        shown.contains("did:   did:key:z6Mk") && shown.contains("nostr: npub1"),
        "{shown}"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !shown.contains(std::fs::read_to_string(&file).unwrap().trim()),
        "the mnemonic was printed"
    );

    let again = archy(&["dev", "show", "--mnemonic-file", path], None);
    assert_eq!(String::from_utf8_lossy(&again.stdout), shown);
    let piped = archy(
        &["dev", "show"],
        Some(&std::fs::read_to_string(&file).unwrap()),
    );
    assert_eq!(String::from_utf8_lossy(&piped.stdout), shown);

    let twice = archy(&["dev", "init", "--out", path], None);
    assert!(
        !twice.status.success() && text(&twice).contains("must not exist"),
        "{}",
        text(&twice)
    );
    assert!(Path::new(path).exists());
    let bad = archy(&["dev", "show"], Some("not a mnemonic"));
    assert!(
        !bad.status.success() && text(&bad).contains("mnemonic"),
        "{}",
        text(&bad)
    );
}

/// `archy … | head`: a reader that has gone away ends the output quietly (status 0), never
/// with a panic about a broken pipe.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let cases: [&[&str]; 3] = [
        &["app", "render", HELLO, "--publish-address", "127.0.0.1"],
        &["app", "validate", HELLO],
        &["--help"],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_archy"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
}

#[test]
fn install_service_renders_units_that_start_podman_then_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "data_dir = \"state\"\npodman_url = \"unix:///run/user/0/podman.sock\"\n",
    )
    .unwrap();
    let out = archy(
        &[
            "node",
            "install-service",
            "--config",
            config.to_str().unwrap(),
            "--podman-user",
            "root",
            "--print",
        ],
        None,
    );
    let rendered = text(&out);
    assert!(out.status.success(), "{rendered}");
    assert!(rendered.contains("# archy-podman.service"), "{rendered}");
    assert!(rendered.contains("# archy-node.service"), "{rendered}");
    let config = std::fs::canonicalize(&config).unwrap();
    assert!(
        rendered.contains(&format!("node run --config {}", config.display())),
        "{rendered}"
    );
    assert!(rendered.contains("system service --time=0"), "{rendered}");
    let missing = archy(
        &[
            "node",
            "install-service",
            "--config",
            config.to_str().unwrap(),
            "--podman-user",
            "no-such-user-here",
            "--print",
        ],
        None,
    );
    assert!(!missing.status.success());
    assert!(text(&missing).contains("no user"), "{}", text(&missing));
}

#[test]
fn relay_run_needs_a_transport_and_stops_on_sigterm() {
    let none = archy(&["relay", "run", "--bind", "127.0.0.1:0"], None);
    assert!(!none.status.success());
    assert!(text(&none).contains("--http-only"), "{}", text(&none));
    let both = archy(
        &[
            "relay",
            "run",
            "--http-only",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ],
        None,
    );
    assert!(!both.status.success());
    assert!(
        text(&both).contains("cannot be used with"),
        "{}",
        text(&both)
    );

    let mut relay = Command::new(env!("CARGO_BIN_EXE_archy"))
        .args(["relay", "run", "--http-only", "--bind", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env("ARCHY_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = relay.stderr.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let addr = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match seen.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                relay.kill().ok();
                panic!("no 'serving' line from the relay: {e}");
            }
        };
        if line.contains("relay serving over plain HTTP")
            && let Some(at) = line.find("127.0.0.1:")
        {
            let port: String = line[at + 10..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            break format!("127.0.0.1:{port}");
        }
    };
    // It answers as an iroh relay does.
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(&mut conn, b"GET /healthz HTTP/1.0\r\nHost: relay\r\n\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut conn, &mut answer).ok();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );

    let term = Command::new("kill")
        .args(["-TERM", &relay.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = relay.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            relay.kill().ok();
            panic!("the relay did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// `archy app unpublish --relay-ca`: a `wss://` relay whose certificate a private CA signed
/// takes the withdrawal when that CA is named, and is refused, named with the TLS failure,
/// when it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_ca_lets_the_cli_reach_a_tls_relay_of_a_private_ca() {
    let ca = archy_marketplace::tls_fixture::TestCa::new("archy test CA");
    let relay = archy_marketplace::tls_fixture::TlsRelay::start(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("relay-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let mnemonic = dir.path().join("dev.mnemonic");
    let init = archy(&["dev", "init", "--out", mnemonic.to_str().unwrap()], None);
    assert!(init.status.success(), "{}", text(&init));
    let unpublish = |ca: Option<&Path>| {
        let mut args = vec![
            "--json",
            "app",
            "unpublish",
            "notes",
            "--mnemonic-file",
            mnemonic.to_str().unwrap(),
            "--relay",
            &relay.url,
        ];
        if let Some(ca) = ca {
            args.extend(["--relay-ca", ca.to_str().unwrap()]);
        }
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            archy(&args, None)
        })
    };

    let out = unpublish(Some(&ca_file)).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["relays"][0]["accepted"], true, "{report}");

    let out = unpublish(None).await.unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&relay.url) && said.contains("invalid peer certificate"),
        "{said}"
    );
}
