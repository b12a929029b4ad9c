//! No manifest value can ever become a Podman option.
//!
//! Manifests whose string fields come from hostile strategies (leading `-`/`--`, `:`, `,`,
//! `=`, line breaks, NUL, spaces, unicode, plus valid values) are generated; those that
//! pass `Manifest::validate` are rendered with `create_args`, and the argv must be read by
//! `argv_check` (a model of Podman's option parser) as exactly what the manifest says.
//! A second test shows the checker is a real oracle: manifests built around validation
//! (the found attack among them) render argvs it refuses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use archy_orchestrator::argv_check::{self, Rendered};
use archy_orchestrator::create_args;
use archy_registry::Manifest;
use archy_registry::grammar::LINUX_CAPABILITIES;
use archy_registry::manifest::{
    ArtifactDecl, Container, EnvValue, HealthCheck, HttpCheck, ImageSource, NetworkMode,
    OCI_ARCHIVE_MEDIA_TYPE, PidMode, Port, Probe, Protocol, Resources, SecretRef, SecretSpec,
    TcpCheck, Ui, Volume,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

const LOADED_IMAGE_ID: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A publisher's namespace, as third-party app ids carry it (`<id>.<16 hex>`).
const NAMESPACE: &str = "d99fe0fa4c0b5354";

/// Strings built to be misread by Podman or by a line-based format.
fn hostile() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "--privileged",
            "-v",
            "-",
            "--",
            "--mount=type=bind,src=/,dst=/x",
            "--volume=/:/host",
            "--user=0",
            "--cap-add=ALL",
            "--network=host",
            "-e=LD_PRELOAD=/x",
            "/data:/host",
            "/x,ro",
            "/x:rw,exec,suid",
            "a:b",
            "a,b",
            "a=b",
            "CHOWN,SYS_ADMIN",
            "0:0:0",
            "a\nb",
            "a\r\nHost: x",
            "a\0b",
            "a b",
            " ",
            "",
            "ü",
            "\u{202e}",
            "/..",
            "/./x",
            "//x",
            "dir:x",
        ])
        .prop_map(String::from),
        "[-a-zA-Z0-9:,=/ .@_\n\r\t\0]{0,12}",
        "\\PC{0,6}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
    .boxed()
}

/// A valid value most of the time, a hostile one (or a valid one with a hostile prefix or
/// suffix) otherwise.
fn mostly(valid: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        60 => valid.clone(),
        1 => hostile(),
        1 => (hostile(), valid.clone()).prop_map(|(h, v)| format!("{h}{v}")),
        1 => (valid, hostile()).prop_map(|(v, h)| format!("{v}{h}")),
    ]
    .boxed()
}

fn name() -> BoxedStrategy<String> {
    mostly("[a-z]([a-z0-9-]{0,6}[a-z0-9])?".boxed())
}

fn reference() -> BoxedStrategy<String> {
    mostly(
        "((registry\\.example|localhost|\\[::1\\])(:5000)?/)?[a-z0-9]+([._-][a-z0-9]+)?(/[a-z0-9]+)?(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,8})?@sha256:[a-f0-9]{64}"
            .boxed(),
    )
}

fn volume_path() -> BoxedStrategy<String> {
    mostly("(/[a-zA-Z0-9._ =@+-]{1,8}){1,3}".boxed())
}

fn http_path() -> BoxedStrategy<String> {
    mostly("/([a-z0-9._~-]{1,6}/?){0,3}(\\?[a-z0-9=&%]{0,6})?".boxed())
}

fn user() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            "[0-9]{1,5}(:[0-9]{1,5})?",
            "[a-z_][a-z0-9_-]{0,8}(:[a-z_][a-z0-9_-]{0,8})?",
        ]
        .boxed(),
    )
}

fn env_key() -> BoxedStrategy<String> {
    mostly("[A-Z_][A-Z0-9_]{0,8}".boxed())
}

/// Env values and command arguments: anything on one line is valid, including leading
/// dashes, `=`, `:` and `,`.
fn free_text() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            "[-a-zA-Z0-9:,=/ .@_\t]{0,12}",
            "--?[a-z-]{1,10}(=[a-z0-9/:,]{0,8})?",
            "\\PC{0,8}",
        ]
        .boxed(),
    )
}

fn capability() -> BoxedStrategy<String> {
    mostly(
        prop::sample::select(LINUX_CAPABILITIES.to_vec())
            .prop_map(String::from)
            .boxed(),
    )
}

fn health() -> impl Strategy<Value = Option<HealthCheck>> {
    let kind = prop_oneof![
        (1..=u16::MAX, http_path()).prop_map(|(port, path)| Probe::Http(HttpCheck { port, path })),
        (1..=u16::MAX).prop_map(|port| Probe::Tcp(TcpCheck { port })),
        prop::collection::vec(free_text(), 0..3).prop_map(Probe::Command),
    ];
    prop::option::weighted(
        0.4,
        (kind, 1..5u32).prop_map(|(probe, n)| HealthCheck {
            probe,
            interval_seconds: n,
            timeout_seconds: n,
            retries: n,
            start_period_seconds: n * 10,
        }),
    )
}

fn container(secrets: Vec<String>) -> impl Strategy<Value = Container> {
    let env_value = if secrets.is_empty() {
        free_text().prop_map(EnvValue::Plain).boxed()
    } else {
        prop_oneof![
            3 => free_text().prop_map(EnvValue::Plain),
            1 => prop::sample::select(secrets).prop_map(|secret| EnvValue::Secret(SecretRef { secret })),
        ]
        .boxed()
    };
    let image = prop_oneof![
        Just(ImageSource {
            artifact: Some("image".into()),
            reference: None,
        }),
        reference().prop_map(|r| ImageSource {
            artifact: None,
            reference: Some(r),
        }),
    ];
    let port = (1..=u16::MAX, 1024..=u16::MAX, any::<bool>()).prop_map(|(c, h, udp)| Port {
        container: c,
        host: h,
        protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
    });
    let volume =
        (name(), volume_path(), any::<bool>()).prop_map(|(name, path, read_only)| Volume {
            name,
            path,
            read_only,
        });
    (
        (
            name(),
            image,
            prop::collection::vec(free_text(), 0..4),
            prop::collection::btree_map(env_key(), env_value, 0..4),
            prop::collection::vec(port, 0..3),
            prop::collection::vec(volume, 0..3),
        ),
        (
            prop::collection::vec(capability(), 0..3),
            health(),
            0..100u32,
            prop::option::weighted(0.4, user()),
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.1),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (name, image, command, env, ports, volumes),
                (
                    capabilities,
                    health,
                    stop_grace_seconds,
                    user,
                    privileged,
                    host_net,
                    host_pid,
                    ro,
                ),
            )| Container {
                name,
                image,
                command,
                env,
                ports,
                volumes,
                capabilities,
                health,
                stop_grace_seconds,
                depends_on: Vec::new(),
                user,
                privileged,
                network: if host_net {
                    NetworkMode::Host
                } else {
                    NetworkMode::App
                },
                pid: if host_pid {
                    PidMode::Host
                } else {
                    PidMode::Private
                },
                read_only_root: ro,
            },
        )
}

fn resources() -> impl Strategy<Value = Resources> {
    (
        0..1000u64,
        prop::option::weighted(0.5, prop_oneof![0..10u64, 6..100_000u64]),
        prop::option::weighted(
            0.5,
            prop_oneof![0..2u32, 1..=1_000_000u32, 999_999..1_000_002u32],
        ),
        prop::option::weighted(0.5, prop_oneof![0..20u32, 16..=1_000_000u32]),
    )
        .prop_map(|(disk_mb, memory_mb, millicpus, pids_limit)| Resources {
            disk_mb,
            memory_mb,
            millicpus,
            pids_limit,
        })
}

fn manifest() -> impl Strategy<Value = Manifest> {
    let secrets = prop::collection::vec(name(), 0..3);
    secrets.prop_flat_map(|secret_names| {
        (
            name(),
            mostly("[A-Za-z][A-Za-z0-9 ]{0,12}".boxed()),
            (0..3u64, 0..20u64, 0..5u64),
            prop::collection::vec(container(secret_names.clone()), 1..4),
            resources(),
            any::<bool>(),
        )
            .prop_map(
                move |(id, display, (ma, mi, pa), mut containers, resources, ui)| {
                    // Distinct container names, so more generated manifests validate.
                    for (i, c) in containers.iter_mut().enumerate().skip(1) {
                        c.name = format!("{}{i}", c.name);
                    }
                    let ui = ui
                        .then(|| {
                            let c = &containers[0];
                            c.ports
                                .iter()
                                .find(|p| p.protocol == Protocol::Tcp)
                                .map(|p| Ui {
                                    container: c.name.clone(),
                                    port: p.container,
                                    path: "/".into(),
                                })
                        })
                        .flatten();
                    Manifest {
                        id,
                        name: display,
                        version: semver::Version::new(ma, mi, pa),
                        description: String::new(),
                        artifacts: vec![ArtifactDecl {
                            name: "image".into(),
                            media_type: OCI_ARCHIVE_MEDIA_TYPE.into(),
                        }],
                        containers,
                        secrets: secret_names
                            .iter()
                            .map(|name| SecretSpec {
                                name: name.clone(),
                                length: 32,
                            })
                            .collect(),
                        dependencies: Vec::new(),
                        resources,
                        ui,
                    }
                },
            )
    })
}

fn publish_address() -> impl Strategy<Value = IpAddr> {
    prop::sample::select(vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from([0, 0, 0, 0]),
        IpAddr::from([192, 168, 1, 20]),
    ])
}

fn image_for(c: &Container) -> String {
    c.image
        .reference
        .clone()
        .unwrap_or_else(|| LOADED_IMAGE_ID.to_owned())
}

fn env_file(m: &Manifest, c: &Container) -> PathBuf {
    PathBuf::from(format!("/var/lib/archy/apps/{}/env/{}.env", m.id, c.name))
}

/// Renders every container of a valid manifest and has the checker read it back.
fn check_all(m: &Manifest, address: IpAddr) -> Result<(), String> {
    for c in &m.containers {
        let image = image_for(c);
        let env_file = env_file(m, c);
        let argv = create_args(m, c, &image, &env_file, address);
        argv_check::check_create(
            m,
            c,
            Rendered {
                image: &image,
                env_file: &env_file,
                publish_address: address,
            },
            &argv,
        )
        .map_err(|e| format!("container {:?}: {e}\nargv: {argv:?}", c.name))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 5000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every manifest that validates renders an argv Podman reads as exactly the manifest.
    #[test]
    fn valid_manifests_render_argvs_podman_reads_as_the_manifest(
        m in manifest(),
        address in publish_address(),
    ) {
        if m.validate().is_ok() {
            check_all(&m, address).map_err(TestCaseError::fail)?;
            // The same manifest as a third-party app, under its publisher's namespace.
            let mut third_party = m.clone();
            third_party.id = format!("{}.{NAMESPACE}", m.id);
            check_all(&third_party, address).map_err(TestCaseError::fail)?;
        }
    }
}

/// The property above cannot pass vacuously: a fair share of generated manifests
/// validate, many of those carry values that look like options, and many generated
/// manifests are refused.
#[test]
fn generated_manifests_validate_often_enough_and_carry_hostile_values() {
    let mut runner = TestRunner::new(Config {
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..Config::default()
    });
    let strategy = manifest();
    let total = 2000;
    let (mut valid, mut dashy) = (0, 0);
    let mut refused_fields: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..total {
        let m = strategy.new_tree(&mut runner).unwrap().current();
        match m.validate() {
            Ok(()) => {
                valid += 1;
                check_all(&m, IpAddr::from([127, 0, 0, 1])).unwrap();
                let looks_like_option = m.containers.iter().any(|c| {
                    c.command.iter().any(|a| a.starts_with('-'))
                        || c.env.values().any(
                            |v| matches!(v, EnvValue::Plain(p) if p.starts_with('-') || p.contains([':', ',', '='])),
                        )
                });
                if looks_like_option {
                    dashy += 1;
                }
            }
            Err(e) => {
                let field = e
                    .field
                    .split('.')
                    .map(|part| part.split('[').next().unwrap_or(part))
                    .collect::<Vec<_>>()
                    .join(".");
                *refused_fields.entry(field).or_default() += 1;
            }
        }
    }
    let fraction = valid as f64 / total as f64;
    eprintln!(
        "{valid}/{total} generated manifests validate ({:.0}%), {dashy} of them with option-like values; refused by field: {refused_fields:?}",
        fraction * 100.0
    );
    assert!(
        fraction >= 0.05,
        "only {valid}/{total} generated manifests validate"
    );
    assert!(
        fraction <= 0.95,
        "{valid}/{total} validate: the strategies are not hostile enough"
    );
    assert!(
        dashy >= valid / 10,
        "{dashy} of {valid} valid manifests carry option-like values"
    );
    for field in [
        "containers.image.reference",
        "containers.volumes.path",
        "containers.user",
        "containers.env",
        "containers.command",
        "containers.capabilities",
        "containers.name",
        "id",
        "resources.millicpus",
        "resources.pids_limit",
        "resources.memory_mb",
    ] {
        assert!(
            refused_fields.keys().any(|k| k.starts_with(field)),
            "no generated manifest was refused for {field}: {refused_fields:?}"
        );
    }
}

/// A change to a manifest that validation would refuse.
type Mutation = Box<dyn Fn(&mut Manifest)>;
/// A change to a rendered argv.
type Tamper = Box<dyn Fn(&mut Vec<String>)>;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn base() -> Manifest {
    Manifest::from_yaml(
        r#"
id: demo
name: Demo
version: 1.2.3
artifacts: [{ name: image, media_type: application/vnd.oci.image.layout.v1.tar }]
containers:
  - name: web
    image: { artifact: image }
    command: ["/bin/httpd", "-f", "--port=8080"]
    env: { GREETING: "--hi=a,b:c", TOKEN: { secret: token } }
    ports: [{ container: 8080, host: 18080 }]
    volumes: [{ name: data, path: /data }, { name: conf, path: /etc/app, read_only: true }]
    capabilities: [CHOWN, NET_BIND_SERVICE]
    user: "1000:1000"
    read_only_root: true
secrets: [{ name: token }]
resources: { memory_mb: 64, millicpus: 500, pids_limit: 128 }
"#,
    )
    .unwrap()
}

fn render(
    m: &Manifest,
) -> (
    Vec<String>,
    Result<argv_check::CreateArgs, argv_check::ArgvError>,
) {
    let c = &m.containers[0];
    let image = image_for(c);
    let env_file = env_file(m, c);
    let address = IpAddr::from([127, 0, 0, 1]);
    let argv = create_args(m, c, &image, &env_file, address);
    let checked = argv_check::check_create(
        m,
        c,
        Rendered {
            image: &image,
            env_file: &env_file,
            publish_address: address,
        },
        &argv,
    );
    (argv, checked)
}

#[test]
fn a_realistic_manifest_round_trips() {
    let m = base();
    let (argv, checked) = render(&m);
    let parsed = checked.unwrap_or_else(|e| panic!("{e}\n{argv:?}"));
    assert_eq!(parsed.image, LOADED_IMAGE_ID);
    assert_eq!(parsed.command, ["/bin/httpd", "-f", "--port=8080"]);
    assert_eq!(parsed.volumes.len(), 2);
    assert_eq!(parsed.cap_add, ["CHOWN", "NET_BIND_SERVICE"]);
    assert_eq!(parsed.user.unwrap().group.as_deref(), Some("1000"));
    assert_eq!(parsed.secrets.len(), 1);
}

/// The manifest found in the wild, and its relatives, built around validation: validate
/// refuses each, and the checker refuses the argv `create_args` renders for it.
#[test]
fn the_checker_refuses_argvs_of_manifests_that_bypass_validation() {
    let attack = format!("--mount=type=bind,src=/,dst=/x@sha256:{HEX}");
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "image reference --mount=…",
            Box::new(move |m: &mut Manifest| {
                m.containers[0].image = ImageSource {
                    artifact: None,
                    reference: Some(attack.clone()),
                };
                m.containers[0].command = vec!["docker.io/library/busybox".into()];
            }),
        ),
        (
            "volume path with ':'",
            Box::new(|m: &mut Manifest| m.containers[0].volumes[0].path = "/data:/host".into()),
        ),
        (
            "volume path with ','",
            Box::new(|m: &mut Manifest| m.containers[0].volumes[0].path = "/x,ro".into()),
        ),
        (
            "volume path with ':' and options",
            Box::new(|m: &mut Manifest| m.containers[0].volumes[0].path = "/x:rw,exec,suid".into()),
        ),
        (
            "user --privileged",
            Box::new(|m: &mut Manifest| m.containers[0].user = Some("--privileged".into())),
        ),
        (
            "capabilities smuggled through a comma",
            Box::new(|m: &mut Manifest| {
                m.containers[0].capabilities = vec!["CHOWN,SYS_ADMIN".into()]
            }),
        ),
        (
            "transport prefix",
            Box::new(|m: &mut Manifest| {
                m.containers[0].image = ImageSource {
                    artifact: None,
                    reference: Some(format!("docker-daemon:x@sha256:{HEX}")),
                };
            }),
        ),
        (
            "volume name with ':'",
            Box::new(|m: &mut Manifest| m.containers[0].volumes[0].name = "x:/host".into()),
        ),
        (
            "container name that is an option",
            Box::new(|m: &mut Manifest| m.containers[0].name = "x --privileged".into()),
        ),
    ];
    for (what, mutate) in cases {
        let mut m = base();
        mutate(&mut m);
        assert!(m.validate().is_err(), "{what}: validate accepted it");
        let (argv, checked) = render(&m);
        let e = checked.expect_err(&format!("{what}: the checker accepted {argv:?}"));
        eprintln!("{what}: {e}");
    }
}

/// The checker also catches a renderer that drifts from the manifest: each argv below is
/// the honest one with one element changed.
#[test]
fn the_checker_refuses_tampered_argvs() {
    let m = base();
    let (argv, checked) = render(&m);
    checked.unwrap();
    let tamper: Vec<(&str, Tamper)> = vec![
        ("drop --", Box::new(|a| a.retain(|x| x != "--"))),
        (
            "extra option",
            Box::new(|a| a.insert(1, "--privileged".into())),
        ),
        (
            "unknown option",
            Box::new(|a| a.insert(1, "--mount=type=bind,src=/,dst=/x".into())),
        ),
        (
            "second --user",
            Box::new(|a| {
                a.insert(1, "--user".into());
                a.insert(2, "0".into());
            }),
        ),
        (
            "extra capability",
            Box::new(|a| {
                let i = a.iter().position(|x| x == "CHOWN").unwrap();
                a[i] = "CHOWN,SYS_ADMIN".into();
            }),
        ),
        (
            "volume read-write",
            Box::new(|a| {
                let i = a.iter().position(|x| x.ends_with(":ro,U")).unwrap();
                a[i] = a[i].replace(":ro,U", ":U");
            }),
        ),
        (
            "command changed",
            Box::new(|a| {
                a.pop();
            }),
        ),
        (
            "label overridden",
            Box::new(|a| {
                a.insert(1, "--label".into());
                a.insert(2, "archy.app=other".into());
            }),
        ),
        (
            "memory limit dropped",
            Box::new(|a| {
                let i = a.iter().position(|x| x == "--memory").unwrap();
                a.drain(i..i + 2);
            }),
        ),
    ];
    for (what, f) in tamper {
        let mut a = argv.clone();
        f(&mut a);
        let c = &m.containers[0];
        let env_file = env_file(&m, c);
        let r = argv_check::check_create(
            &m,
            c,
            Rendered {
                image: LOADED_IMAGE_ID,
                env_file: &env_file,
                publish_address: IpAddr::from([127, 0, 0, 1]),
            },
            &a,
        );
        assert!(r.is_err(), "{what}: accepted {a:?}");
    }
}

/// The `manifest_argv` fuzz seeds stay honest: the attack seeds are refused, the others
/// validate and round-trip.
#[test]
fn the_fuzz_seeds_validate_or_are_refused_as_intended() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/manifest_argv"
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = if name.ends_with(".json") {
            Manifest::from_json_value(serde_json::from_str(&text).unwrap())
        } else {
            Manifest::from_yaml(&text)
        };
        if name.contains("attack") {
            assert!(parsed.is_err(), "{name} validates");
        } else {
            let m = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
            for address in [IpAddr::from([127, 0, 0, 1]), IpAddr::from([0, 0, 0, 0])] {
                check_all(&m, address).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
    assert!(seen >= 4, "only {seen} seeds in {dir}");
}

/// An IPv6 publish address must be rendered in brackets (`[::1]:18080:8080/tcp`): Podman
/// splits `--publish` at ':' and refuses `::1:18080:8080/tcp` ("invalid port format",
/// measured on 4.3.1).
#[test]
fn an_ipv6_publish_address_round_trips() {
    let m = base();
    let c = &m.containers[0];
    let env_file = env_file(&m, c);
    for address in ["::1", "fd00::20", "::"] {
        let address: IpAddr = address.parse().unwrap();
        let argv = create_args(&m, c, LOADED_IMAGE_ID, &env_file, address);
        argv_check::check_create(
            &m,
            c,
            Rendered {
                image: LOADED_IMAGE_ID,
                env_file: &env_file,
                publish_address: address,
            },
            &argv,
        )
        .unwrap_or_else(|e| panic!("{address}: {e}"));
    }
}
