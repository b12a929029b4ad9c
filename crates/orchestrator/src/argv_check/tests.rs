//! Unit tests of the Podman argv model.

use std::net::IpAddr;
use std::path::Path;

use archy_registry::Manifest;

use super::*;

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

const IMAGE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn reads_options_like_pflag() {
    let a = argv(&[
        "create",
        "--name",
        "archy-a-web",
        "--read-only",
        "--read-only-tmpfs=false",
        "--network=archy-a",
        "--cap-add",
        "CHOWN,KILL",
        "--",
        IMAGE,
        "-x",
        "--privileged",
    ]);
    let p = parse_create(&a).unwrap();
    assert_eq!(p.single("--name"), Some("archy-a-web"));
    assert!(p.is_set("--read-only"));
    assert!(!p.is_set("--read-only-tmpfs"));
    assert_eq!(p.single("--network"), Some("archy-a"));
    assert_eq!(p.cap_add, ["CHOWN", "KILL"]);
    assert_eq!(p.image, IMAGE);
    assert_eq!(p.command, ["-x", "--privileged"]);
}

#[test]
fn refuses_what_podman_would_read_differently() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["create", "--mount=type=bind,src=/,dst=/x", "--", IMAGE],
            "not an option",
        ),
        (&["create", "-v", "/:/x", "--", IMAGE], "short option"),
        (&["create", IMAGE, "--", "sh"], "positional"),
        (&["create", "--name", "archy-a-b"], "never end with `--`"),
        (&["create", "--"], "no image"),
        (
            &[
                "create", "--name", "archy-a", "--name", "archy-b", "--", IMAGE,
            ],
            "twice",
        ),
        (&["create", "--user", "1", "--user=0", "--", IMAGE], "twice"),
        (&["create", "--privileged=yes", "--", IMAGE], "boolean"),
        (
            &["create", "--volume", "archy-a-d:/data:/host:U", "--", IMAGE],
            "parts",
        ),
        (
            &["create", "--volume", "archy-a-d:/x,ro:U", "--", IMAGE],
            "','",
        ),
        (
            &["create", "--volume", "/:/x:U", "--", IMAGE],
            "named volume",
        ),
        (
            &["create", "--volume", "archy-a-d:/x:U,exec", "--", IMAGE],
            "volume option",
        ),
        (
            &["create", "--publish", "::1:18080:80/tcp", "--", IMAGE],
            "brackets",
        ),
        (
            &["create", "--cap-add", "CHOWN,SYS_ADMINX", "--", IMAGE],
            "capability",
        ),
        (
            &["create", "--user", "--privileged", "--", IMAGE],
            "user[:group]",
        ),
        (
            &[
                "create",
                "--security-opt",
                "seccomp=unconfined",
                "--",
                IMAGE,
            ],
            "security option",
        ),
        (&["create", "--userns=host", "--", IMAGE], "user namespace"),
        (&["create", "--", "--privileged"], "pinned"),
        (
            &[
                "create",
                "--",
                "dir:x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ],
            "transport",
        ),
        (&["create", "--name"], "needs a value"),
        (&["run", "--", IMAGE], "start with `create`"),
    ];
    for (a, why) in cases {
        let e = parse_create(&argv(a)).unwrap_err();
        assert!(
            e.to_string().contains(why),
            "{a:?}: expected {why:?} in {e}"
        );
    }
}

#[test]
fn a_value_is_the_next_element_whatever_it_looks_like() {
    // pflag: `--user --privileged` makes "--privileged" the user, not a flag.
    let e = parse_create(&argv(&["create", "--user", "--privileged", "--", IMAGE])).unwrap_err();
    assert_eq!(e.index, Some(2));
    assert_eq!(e.element, "--privileged");
}

#[test]
fn value_parsers_round_trip() {
    assert_eq!(
        parse_volume("archy-a-data:/var/lib/x:ro,U").unwrap(),
        VolumeArg {
            source: "archy-a-data".into(),
            destination: "/var/lib/x".into(),
            options: vec!["ro".into(), "U".into()],
        }
    );
    assert_eq!(
        parse_publish("[::1]:18080:80/udp").unwrap(),
        PublishArg {
            host_ip: Some("::1".parse().unwrap()),
            host_port: 18080,
            container_port: 80,
            protocol: "udp".into(),
        }
    );
    assert!(parse_publish("127.0.0.1:018080:80/tcp").is_err());
    assert!(parse_publish("127.0.0.1:1-2:80/tcp").is_err());
    assert_eq!(
        parse_user("app:1000").unwrap(),
        UserArg {
            user: "app".into(),
            group: Some("1000".into()),
        }
    );
    let s = parse_secret("archy-a-token,type=env,target=TOKEN").unwrap();
    assert_eq!(s.name, "archy-a-token");
    assert_eq!(s.options["target"], "TOKEN");
    assert!(parse_secret("archy-a-token,type=env,target=A,target=B").is_err());
    assert_eq!(
        parse_tmpfs("/tmp:rw,nosuid,nodev,mode=1777")
            .unwrap()
            .options
            .len(),
        4
    );
    assert!(parse_tmpfs("/tmp:exec").is_err());
    assert_eq!(millicpus("0.5"), Some(500));
    assert_eq!(millicpus("2"), Some(2000));
    assert_eq!(millicpus("0.001"), Some(1));
    for bad in ["", ".5", "1.", "1.0001", "-1", "1e3", "0x1"] {
        assert_eq!(millicpus(bad), None, "{bad:?}");
    }
}

#[test]
fn every_flag_has_a_value_check() {
    for spec in FLAGS {
        let mut out = CreateArgs::default();
        if let Err(e) = take_value(&mut out, spec, "", 0) {
            assert!(!e.contains("has no value check"), "{}: {e}", spec.name);
        }
    }
}

fn hello() -> Manifest {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../apps/hello/manifest.yml"
    ))
    .unwrap();
    Manifest::from_yaml(&yaml).unwrap()
}

/// `check_create` of hello's argv with one change, for a container that is (or is not)
/// privileged.
fn check_changed(privileged: bool, change: &dyn Fn(&mut Vec<String>)) -> Result<(), ArgvError> {
    let mut m = hello();
    m.containers[0].privileged = privileged;
    let c = &m.containers[0];
    let env_file = Path::new("/d/env");
    let address = IpAddr::from([127, 0, 0, 1]);
    let mut argv = crate::create_args(&m, c, IMAGE, env_file, address);
    change(&mut argv);
    let rendered = Rendered {
        image: IMAGE,
        env_file,
        publish_address: address,
    };
    check_create(&m, c, rendered, &argv).map(drop)
}

/// The hardening flags are part of what the argv must say: present unless the container
/// is privileged, absent when it is (Podman's meaning of privileged is kept).
#[test]
fn hardening_flags_are_required_unless_privileged() {
    check_changed(false, &|_| {}).unwrap();
    check_changed(true, &|_| {}).unwrap();
    type Change = fn(&mut Vec<String>);
    let unprivileged: &[(&str, Change)] = &[
        ("cap-drop dropped", |a| a.retain(|x| x != "--cap-drop=ALL")),
        ("cap-drop narrowed", |a| {
            let i = a.iter().position(|x| x == "--cap-drop=ALL").unwrap();
            a[i] = "--cap-drop=NET_RAW".into();
        }),
        ("no-new-privileges dropped", |a| {
            a.retain(|x| x != "--security-opt=no-new-privileges")
        }),
        ("userns dropped", |a| a.retain(|x| x != crate::USERNS)),
        ("userns auto", |a| {
            let i = a.iter().position(|x| x == crate::USERNS).unwrap();
            a[i] = "--userns=auto".into();
        }),
        ("privileged sneaks in", |a| {
            a.insert(1, "--privileged".into())
        }),
        ("privileged=true sneaks in", |a| {
            a.insert(1, "--privileged=true".into())
        }),
        ("unknown flag", |a| a.insert(1, "--privileged=yes".into())),
        ("no --", |a| a.retain(|x| x != "--")),
        ("image as option", |a| {
            *a.last_mut().unwrap() = "--rm".into()
        }),
        ("tag instead of id", |a| {
            *a.last_mut().unwrap() = "alpine:latest".into()
        }),
        ("pinned reference instead of the loaded id", |a| {
            *a.last_mut().unwrap() = format!("docker.io/library/alpine@sha256:{IMAGE}")
        }),
        ("transport prefix", |a| {
            *a.last_mut().unwrap() = format!("dir:x@sha256:{IMAGE}")
        }),
        ("bind mount", |a| {
            a.insert(1, "--volume".into());
            a.insert(2, "/:/host:U".into());
        }),
        ("extra secret option", |a| {
            a.insert(1, "--secret".into());
            a.insert(2, "archy-hello-y,type=env,target=K,uid=0".into());
        }),
        ("capability added", |a| {
            a.insert(1, "--cap-add".into());
            a.insert(2, "CHOWN".into());
        }),
        ("tmpfs without a read-only root", |a| {
            a.insert(1, "--tmpfs".into());
            a.insert(2, crate::TMP_TMPFS.into());
        }),
        ("pids limit dropped", |a| {
            let i = a.iter().position(|x| x == "--pids-limit").unwrap();
            a.drain(i..i + 2);
        }),
        ("second name", |a| {
            a.insert(1, "--name".into());
            a.insert(2, "archy-hello-web".into());
        }),
    ];
    for (what, change) in unprivileged {
        assert!(check_changed(false, change).is_err(), "{what} passed");
    }
    let privileged: &[(&str, Change)] = &[
        ("privileged dropped", |a| a.retain(|x| x != "--privileged")),
        ("userns on a privileged container", |a| {
            a.insert(1, crate::USERNS.into())
        }),
        ("cap-drop on a privileged container", |a| {
            a.insert(1, "--cap-drop=ALL".into())
        }),
    ];
    for (what, change) in privileged {
        assert!(check_changed(true, change).is_err(), "{what} passed");
    }
}

#[test]
fn a_read_only_root_gets_exactly_its_tmp() {
    let mut m = hello();
    m.containers[0].read_only_root = true;
    let c = &m.containers[0];
    let env_file = Path::new("/d/env");
    let address = IpAddr::from([127, 0, 0, 1]);
    let argv = crate::create_args(&m, c, IMAGE, env_file, address);
    let rendered = Rendered {
        image: IMAGE,
        env_file,
        publish_address: address,
    };
    check_create(&m, c, rendered, &argv).unwrap();
    let i = argv.iter().position(|x| x == "--tmpfs").unwrap();
    for (what, value) in [
        (
            "exec tmpfs",
            "/tmp:rw,nosuid,nodev,mode=1777,size=1g".to_owned(),
        ),
        (
            "another path",
            "/var/tmp:rw,nosuid,nodev,mode=1777".to_owned(),
        ),
    ] {
        let mut a = argv.clone();
        a[i + 1] = value;
        assert!(check_create(&m, c, rendered, &a).is_err(), "{what} passed");
    }
    let mut a = argv.clone();
    a.retain(|x| x != "--read-only-tmpfs=false");
    assert!(
        check_create(&m, c, rendered, &a).is_err(),
        "podman's own tmpfs"
    );
}

#[test]
fn image_ids_are_64_lowercase_hex() {
    assert!(is_image_id(IMAGE));
    assert!(!is_image_id(&IMAGE.to_uppercase()));
    assert!(!is_image_id(&format!("sha256:{IMAGE}")));
    assert!(!is_image_id(&IMAGE[1..]));
    assert!(!is_image_id("localhost/archy/hello:1.0.0"));
    assert!(!is_image_id(&format!("-{}", &IMAGE[1..])));
}

/// Third-party apps run as `<id>.<namespace>`: their objects' names carry it.
#[test]
fn object_names_may_carry_a_third_party_namespace() {
    for good in [
        "archy-hello",
        "archy-hello-web",
        "archy-hello.d99fe0fa4c0b5354",
        "archy-hello.d99fe0fa4c0b5354-web",
        "archy-my-app.0123456789abcdef-db-data",
    ] {
        check_object_name("name", good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "archy-hello.d99f-web",
        "archy-hello.D99FE0FA4C0B5354-web",
        "archy-hello.d99fe0fa4c0b5354web",
        "archy-hello.d99fe0fa4c0b5354-",
        "archy-hello.d99fe0fa4c0b5354-web.x",
        "archy-hello.d99fe0fa4c0b5354.d99fe0fa4c0b5354",
        "archy-.d99fe0fa4c0b5354",
        "archy-hello.d99fe0fa4c0b5354-web,uid=0",
        "archy-hello web",
    ] {
        assert!(check_object_name("name", bad).is_err(), "{bad} passed");
    }
}
