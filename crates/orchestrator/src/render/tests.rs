//! Tests of [`super::create_args`] and [`super::render`].

use super::*;

fn hello() -> archy_registry::Manifest {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../apps/hello/manifest.yml"
    ))
    .unwrap();
    archy_registry::Manifest::from_yaml(&yaml).unwrap()
}

/// The argv of one container, which the checker must accept as it is.
fn args_of(m: &archy_registry::Manifest, container: usize) -> Vec<String> {
    let c = &m.containers[container];
    let image = "f".repeat(64);
    let env_file = Path::new("/data/apps/x/env/web.env");
    let address = IpAddr::from([127, 0, 0, 1]);
    let args = create_args(m, c, &image, env_file, address);
    let rendered = Rendered {
        image: &image,
        env_file,
        publish_address: address,
    };
    let spec = check_argv(m, c, rendered, args.clone()).unwrap_or_else(|e| panic!("{e}\n{args:?}"));
    assert_eq!(spec.argv(), args, "the spec runs the argv that was checked");
    assert_eq!(spec.name(), crate::container_name(&m.id, &c.name));
    args
}

fn position(args: &[String], arg: &str) -> usize {
    args.iter()
        .position(|a| a == arg)
        .unwrap_or_else(|| panic!("{arg} missing from {args:?}"))
}

#[test]
fn render_shows_every_podman_step_in_order() {
    let lines = render(&hello(), IpAddr::from([127, 0, 0, 1]));
    assert_eq!(
        lines[0],
        "podman network create --label archy.app=hello -- archy-hello"
    );
    let create = &lines[1];
    for part in [
        "podman create --name archy-hello-web",
        "--label archy.app=hello",
        "--stop-timeout 5",
        "--publish 127.0.0.1:18080:8080/tcp",
        "--cap-drop=ALL --security-opt=no-new-privileges --userns=nomap",
        "--network=archy-hello --network-alias=web",
        "--pids-limit 2048 --memory 32m -- <artifact:image>",
    ] {
        assert!(create.contains(part), "{part:?} missing from {create}");
    }
    assert!(create.ends_with(" -- <artifact:image>"), "{create}");
    assert_eq!(lines.last().unwrap(), "podman start archy-hello-web");
}

/// The whole hardened argv of the hello app, as it runs.
#[test]
fn hello_create_args_are_hardened() {
    let args = args_of(&hello(), 0);
    let image = "f".repeat(64);
    let expected = [
        "create",
        "--name",
        "archy-hello-web",
        "--label",
        "archy.app=hello",
        "--label",
        "archy.container=web",
        "--label",
        "archy.version=1.0.0",
        "--stop-timeout",
        "5",
        "--env-file",
        "/data/apps/x/env/web.env",
        "--publish",
        "127.0.0.1:18080:8080/tcp",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--userns=nomap",
        "--network=archy-hello",
        "--network-alias=web",
        "--pids-limit",
        "2048",
        "--memory",
        "32m",
        "--",
        image.as_str(),
    ];
    assert_eq!(args, expected);
}

#[test]
fn options_end_right_before_the_image_and_caps_are_dropped_first() {
    let mut m = hello();
    let c = &mut m.containers[0];
    c.capabilities = vec!["NET_BIND_SERVICE".into(), "CHOWN".into()];
    c.command = vec!["--privileged".into(), "-x".into()];
    c.read_only_root = true;
    c.volumes.push(archy_registry::manifest::Volume {
        name: "data".into(),
        path: "/data".into(),
        read_only: false,
    });
    m.resources.pids_limit = Some(64);
    m.resources.millicpus = Some(1500);
    let args = args_of(&m, 0);
    let dash = position(&args, "--");
    assert_eq!(args[dash + 1], "f".repeat(64), "the image follows `--`");
    assert_eq!(
        &args[dash + 2..],
        ["--privileged", "-x"],
        "the command follows the image"
    );
    assert_eq!(
        args.iter().filter(|a| *a == "--").count(),
        1,
        "one end of options"
    );
    let drop = position(&args, "--cap-drop=ALL");
    let adds: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "--cap-add")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(adds.len(), 2);
    assert!(
        adds.iter().all(|i| *i > drop),
        "cap-add before cap-drop: {args:?}"
    );
    assert_eq!(args[adds[0] + 1], "NET_BIND_SERVICE");
    assert_eq!(args[adds[1] + 1], "CHOWN");
    for flag in [
        "--security-opt=no-new-privileges",
        USERNS,
        "--read-only",
        "--read-only-tmpfs=false",
    ] {
        assert!(position(&args, flag) < dash, "{flag} after the image");
    }
    assert_eq!(args[position(&args, "--tmpfs") + 1], TMP_TMPFS);
    assert_eq!(args[position(&args, "--pids-limit") + 1], "64");
    assert_eq!(args[position(&args, "--cpus") + 1], "1.5");
    assert_eq!(
        args[position(&args, "--volume") + 1],
        "archy-hello-data:/data:U"
    );
}

#[test]
fn privileged_containers_keep_podmans_meaning() {
    let mut m = hello();
    m.containers[0].privileged = true;
    m.containers[0].capabilities = vec!["SYS_ADMIN".into()];
    let args = args_of(&m, 0);
    assert!(args.contains(&"--privileged".to_owned()));
    for absent in [
        "--cap-drop=ALL",
        "--cap-add",
        "--security-opt=no-new-privileges",
        USERNS,
    ] {
        assert!(!args.contains(&absent.to_owned()), "{absent} in {args:?}");
    }
    // Resource limits still apply.
    assert!(args.contains(&"--pids-limit".to_owned()));
}

#[test]
fn secrets_are_podman_secrets_never_values() {
    let mut m = hello();
    m.secrets.push(archy_registry::manifest::SecretSpec {
        name: "token".into(),
        length: 32,
    });
    m.containers[0].env.insert(
        "TOKEN".into(),
        EnvValue::Secret(archy_registry::manifest::SecretRef {
            secret: "token".into(),
        }),
    );
    m.containers[0]
        .env
        .insert("GREETING".into(), EnvValue::Plain("hi".into()));
    let args = args_of(&m, 0);
    assert_eq!(
        args[position(&args, "--secret") + 1],
        "archy-hello-token,type=env,target=TOKEN"
    );
    assert!(position(&args, "--secret") < position(&args, "--"));
}

#[test]
fn shell_words_quote_what_needs_it() {
    let args = vec!["echo".to_owned(), "two words".to_owned(), "it's".to_owned()];
    assert_eq!(shell_words(&args), r"echo 'two words' 'it'\''s'");
}

#[test]
fn ipv6_publish_addresses_are_bracketed() {
    let m = hello();
    let c = &m.containers[0];
    let env_file = Path::new("/data/apps/x/env/web.env");
    for (address, expected) in [
        ("::1", "[::1]:18080:8080/tcp"),
        ("fd00::20", "[fd00::20]:18080:8080/tcp"),
        ("::", "[::]:18080:8080/tcp"),
        ("0.0.0.0", "0.0.0.0:18080:8080/tcp"),
    ] {
        let address: IpAddr = address.parse().unwrap();
        let args = create_args(&m, c, &"f".repeat(64), env_file, address);
        assert_eq!(args[position(&args, "--publish") + 1], expected);
        let rendered = Rendered {
            image: &"f".repeat(64),
            env_file,
            publish_address: address,
        };
        check_argv(&m, c, rendered, args).unwrap();
    }
}
