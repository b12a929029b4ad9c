//! The lifecycle's logic against the in-memory runtime ([`crate::fake`]): every step of an
//! install, an update and an undo is made to fail (or hang, as a crash would leave it), and
//! what the engine holds afterwards is checked: nothing half-installed, nothing of what
//! existed before lost, every object labelled. The same paths against real Podman are the
//! e2e tests (tests/e2e install, lifecycle, reliability).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use archy_registry::Manifest;

use crate::fake::{FakeRuntime, Op};
use crate::{
    ContainerState, Created, Error, LABEL_APP, LABEL_CONTAINER, LABEL_VERSION, Orchestrator,
    OrchestratorConfig, argv_check,
};

const APP: &str = "fake";

/// Two containers (web depends on db) on the app's network, a volume, a secret delivered
/// as an environment variable, two image archives and command health checks (the fake
/// answers them; no port is published, so nothing on this host can collide).
fn manifest(version: &str) -> Manifest {
    let yaml = format!(
        r#"
id: {APP}
name: Fake
version: {version}
artifacts:
  - {{ name: web-image, media_type: application/vnd.oci.image.layout.v1.tar }}
  - {{ name: db-image, media_type: application/vnd.oci.image.layout.v1.tar }}
secrets:
  - {{ name: token, length: 24 }}
containers:
  - name: db
    image: {{ artifact: db-image }}
    volumes:
      - {{ name: data, path: /data }}
    env:
      TOKEN: {{ secret: token }}
    health: {{ command: ["/bin/true"], interval_seconds: 1, timeout_seconds: 1, retries: 0, start_period_seconds: 0 }}
  - name: web
    image: {{ artifact: web-image }}
    depends_on: [db]
    env:
      GREETING: hello
    health: {{ command: ["/bin/true"], interval_seconds: 1, timeout_seconds: 1, retries: 0, start_period_seconds: 0 }}
resources:
  disk_mb: 10
"#
    );
    Manifest::from_yaml(&yaml).unwrap()
}

/// Version 2 adds a volume and a secret of its own: what a failed update must take away.
fn manifest_v2() -> Manifest {
    let mut m = manifest("2.0.0");
    m.secrets.push(archy_registry::manifest::SecretSpec {
        name: "extra".into(),
        length: 16,
    });
    let web = m.containers.iter_mut().find(|c| c.name == "web").unwrap();
    web.volumes.push(archy_registry::manifest::Volume {
        name: "cache".into(),
        path: "/cache".into(),
        read_only: false,
    });
    web.env.insert(
        "EXTRA".into(),
        archy_registry::manifest::EnvValue::Secret(archy_registry::manifest::SecretRef {
            secret: "extra".into(),
        }),
    );
    m
}

struct Setup {
    fake: Arc<FakeRuntime>,
    orchestrator: Orchestrator,
    data: tempfile::TempDir,
    images: BTreeMap<String, PathBuf>,
    /// Every record the last tracked operation reported, in order.
    records: Arc<Mutex<Vec<Created>>>,
}

impl Setup {
    fn new() -> Self {
        let fake = Arc::new(FakeRuntime::new());
        let data = tempfile::tempdir().unwrap();
        let orchestrator = Orchestrator::with_runtime(
            fake.clone(),
            OrchestratorConfig {
                podman_url: String::new(),
                data_dir: data.path().join("node"),
                publish_address: IpAddr::from([127, 0, 0, 1]),
            },
        )
        .unwrap();
        let mut images = BTreeMap::new();
        for artifact in ["web-image", "db-image"] {
            let path = data.path().join(format!("{artifact}.tar"));
            std::fs::write(&path, artifact).unwrap();
            images.insert(artifact.to_owned(), path);
        }
        Self {
            fake,
            orchestrator,
            data,
            images,
            records: Arc::default(),
        }
    }

    fn app_dir(&self) -> PathBuf {
        self.data.path().join("node/apps").join(APP)
    }

    async fn install(&self, m: &Manifest) -> crate::Result<crate::AppRuntime> {
        self.records.lock().unwrap().clear();
        let records = self.records.clone();
        let sink = move |c: &Created| records.lock().unwrap().push(c.clone());
        self.orchestrator
            .install_manifest(m, &self.images, &|_| {}, &sink)
            .await
    }

    async fn update(&self, old: &Manifest, new: &Manifest) -> crate::Result<crate::AppRuntime> {
        self.records.lock().unwrap().clear();
        let records = self.records.clone();
        let sink = move |c: &Created| records.lock().unwrap().push(c.clone());
        self.orchestrator
            .update_manifest(old, new, &self.images, &self.images, &|_| {}, &sink)
            .await
    }

    fn last_record(&self) -> Created {
        self.records
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_else(|| Created::new(APP))
    }

    fn left(&self) -> Vec<String> {
        self.fake.objects().of_app(APP)
    }

    fn secret_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.app_dir().join("secrets").join(name)).ok()
    }
}

/// Every (operation, n-th call) a clean run of `run` makes: the steps to break.
async fn steps<F, Fut>(run: F) -> Vec<(Op, usize)>
where
    F: Fn(Setup) -> Fut,
    Fut: std::future::Future<Output = BTreeMap<Op, usize>>,
{
    let counts = run(Setup::new()).await;
    let steps: Vec<(Op, usize)> = counts
        .into_iter()
        .flat_map(|(op, n)| (1..=n).map(move |i| (op, i)))
        .collect();
    assert!(steps.len() > 10, "a clean run made only {steps:?}");
    steps
}

fn diff(after: BTreeMap<Op, usize>, before: &BTreeMap<Op, usize>) -> BTreeMap<Op, usize> {
    after
        .into_iter()
        .map(|(op, n)| (op, n - before.get(&op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn an_install_labels_every_object_and_creates_containers_only_from_checked_argvs() {
    let s = Setup::new();
    let runtime = s.install(&manifest("1.0.0")).await.unwrap();
    assert!(runtime.all_running(), "{runtime:?}");
    assert_eq!(
        s.left(),
        [
            "container archy-fake-db",
            "container archy-fake-web",
            "volume archy-fake-data",
            "network archy-fake",
            "secret archy-fake-token",
        ]
    );
    let objects = s.fake.objects();
    let app_label = |labels: &BTreeMap<String, String>| labels.get(LABEL_APP).cloned();
    for (name, c) in &objects.containers {
        assert_eq!(app_label(&c.labels).as_deref(), Some(APP), "{name}");
        assert_eq!(c.labels[LABEL_VERSION], "1.0.0", "{name}");
        assert_eq!(
            name,
            &crate::container_name(APP, &c.labels[LABEL_CONTAINER])
        );
        assert_eq!(c.state, ContainerState::Running, "{name}");
        // What ran is an argv the checker reads as hardened.
        let parsed = argv_check::parse_create(&c.argv).unwrap();
        assert_eq!(parsed.cap_drop, ["ALL"], "{name}");
        assert!(objects.images.contains(&c.image), "{name}: {}", c.image);
    }
    for labels in objects.volumes.values().chain(objects.networks.values()) {
        assert_eq!(app_label(labels).as_deref(), Some(APP));
    }
    for (labels, value) in objects.secrets.values() {
        assert_eq!(app_label(labels).as_deref(), Some(APP));
        assert_eq!(
            Some(String::from_utf8(value.clone()).unwrap()),
            s.secret_file("token"),
            "the Podman secret holds the 0600 file's value"
        );
    }
    // The record names exactly what was created, each before it was.
    let record = s.last_record();
    assert_eq!(record.containers, ["archy-fake-db", "archy-fake-web"]);
    assert_eq!(record.volumes, ["archy-fake-data"]);
    assert_eq!(record.networks, ["archy-fake"]);
    assert_eq!(record.secrets, ["archy-fake-token"]);
    assert!(record.app_dir);
    // db (which web depends on) is started, and healthy, before web starts.
    let calls = s.fake.calls();
    let at = |op: Op, about: &str| {
        calls
            .iter()
            .position(|(o, a)| *o == op && a == about)
            .unwrap_or_else(|| panic!("no {op:?} {about}: {calls:?}"))
    };
    assert!(at(Op::Exec, "archy-fake-db") < at(Op::StartContainer, "archy-fake-web"));
    assert!(at(Op::CreateVolume, "archy-fake-data") < at(Op::CreateContainer, "archy-fake-db"));
    // Installing again is refused and changes nothing.
    let before = s.fake.objects();
    let err = s.install(&manifest("1.0.0")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyInstalled(_)), "{err}");
    assert_eq!(s.fake.objects(), before);
}

/// Each step of an install failing in turn: the install fails, and nothing of the app is
/// left in the engine or on disk, and the record says so. With the undo switched off, the
/// first failing step after a create leaves objects behind and this test fails.
#[tokio::test]
async fn every_failing_step_of_an_install_is_undone() {
    let m = manifest("1.0.0");
    let steps = steps(|s| async move {
        s.install(&manifest("1.0.0")).await.unwrap();
        s.fake.counts()
    })
    .await;
    for (op, n) in steps {
        let s = Setup::new();
        s.fake.fail_nth(op, n);
        let err = s.install(&m).await.expect_err(&format!("{op:?} #{n}"));
        assert!(
            err.to_string().contains("injected failure") || matches!(err, Error::Unhealthy { .. }),
            "{op:?} #{n}: {err}"
        );
        assert_eq!(s.left(), Vec::<String>::new(), "{op:?} #{n}: {err}");
        assert!(!s.app_dir().exists(), "{op:?} #{n}: the app dir stayed");
        assert!(
            s.last_record().is_empty(),
            "{op:?} #{n}: {:?}",
            s.last_record()
        );
    }
}

/// Data kept from an earlier install (its volume, its secret file) outlives a reinstall
/// that fails at any step: undo removes what the failed install created, nothing else.
#[tokio::test]
async fn a_failed_reinstall_keeps_the_data_that_was_there() {
    async fn installed_then_uninstalled() -> (Setup, String) {
        let s = Setup::new();
        s.install(&manifest("1.0.0")).await.unwrap();
        assert!(matches!(s.orchestrator.uninstall(APP, false).await, Ok(())));
        assert_eq!(s.left(), ["volume archy-fake-data"]);
        let token = s.secret_file("token").expect("the secret file is kept");
        (s, token)
    }
    let steps = steps(|_| async {
        let (s, _) = installed_then_uninstalled().await;
        let before = s.fake.counts();
        s.install(&manifest("1.0.0")).await.unwrap();
        diff(s.fake.counts(), &before)
    })
    .await;
    for (op, n) in steps {
        let (s, token) = installed_then_uninstalled().await;
        s.fake.fail_nth(op, n);
        s.install(&manifest("1.0.0"))
            .await
            .expect_err(&format!("{op:?} #{n}"));
        assert_eq!(s.left(), ["volume archy-fake-data"], "{op:?} #{n}");
        assert_eq!(s.secret_file("token"), Some(token), "{op:?} #{n}");
    }
}

/// A crash at any step (the operation's future dropped while the engine does not answer)
/// leaves only what its last record names; undoing that record removes all of it.
#[tokio::test]
async fn the_record_of_an_install_cut_short_at_any_step_undoes_it() {
    let steps = steps(|s| async move {
        s.install(&manifest("1.0.0")).await.unwrap();
        s.fake.counts()
    })
    .await;
    for (op, n) in steps {
        let s = Setup::new();
        let reached = s.fake.hang_nth(op, n);
        let m = manifest("1.0.0");
        tokio::select! {
            result = s.install(&m) => panic!("{op:?} #{n}: the install ended: {result:?}"),
            // The install's future is dropped here, in the middle of the step: a crash.
            () = reached.notified() => {}
        }
        let record = s.last_record();
        s.orchestrator
            .undo(&record)
            .await
            .unwrap_or_else(|e| panic!("{op:?} #{n}: {e}"));
        assert_eq!(s.left(), Vec::<String>::new(), "{op:?} #{n}: {record:?}");
        assert!(!s.app_dir().exists(), "{op:?} #{n}: {record:?}");
        // Undoing twice is harmless.
        s.orchestrator.undo(&record).await.unwrap();
    }
}

/// An undo that cannot remove something says what is left (the sink's last record, and
/// the error of a later `undo`), and finishing that record later removes the rest.
#[tokio::test]
async fn an_undo_that_fails_leaves_a_record_of_what_is_left() {
    for remove in [
        Op::RemoveNetwork,
        Op::RemoveSecret,
        Op::RemoveVolume,
        Op::RemoveContainer,
    ] {
        let s = Setup::new();
        // web's create fails, then one removal of the undo fails.
        s.fake.fail_nth(Op::CreateContainer, 2);
        s.fake.fail_nth(remove, 1);
        s.install(&manifest("1.0.0")).await.unwrap_err();
        let left = s.last_record();
        assert!(
            !left.is_empty(),
            "{remove:?}: the record says nothing is left"
        );
        if remove != Op::RemoveContainer {
            // (A container that would not go is removed with its volume: `volume rm
            // --force` takes the containers using it, as Podman's does.)
            assert!(!s.left().is_empty(), "{remove:?}");
        }
        s.orchestrator.undo(&left).await.unwrap();
        assert_eq!(s.left(), Vec::<String>::new(), "{remove:?}");
    }
}

/// Each step of an update failing in turn: either the update is refused before the old
/// version was touched, or it is rolled back; in both cases the old version's containers
/// are there (running, after a rollback), its data too, and nothing only the new version
/// declared (its volume, its secret) is left.
#[tokio::test]
async fn every_failing_step_of_an_update_leaves_the_old_version() {
    let (v1, v2) = (manifest("1.0.0"), manifest_v2());
    let steps = steps(|s| async move {
        s.install(&manifest("1.0.0")).await.unwrap();
        let before = s.fake.counts();
        s.update(&manifest("1.0.0"), &manifest_v2()).await.unwrap();
        assert_eq!(
            s.left(),
            [
                "container archy-fake-db",
                "container archy-fake-web",
                "volume archy-fake-cache",
                "volume archy-fake-data",
                "network archy-fake",
                "secret archy-fake-extra",
                "secret archy-fake-token",
            ]
        );
        diff(s.fake.counts(), &before)
    })
    .await;
    let mut rolled_back = 0;
    for (op, n) in steps {
        let s = Setup::new();
        s.install(&v1).await.unwrap();
        let token = s.secret_file("token");
        s.fake.fail_nth(op, n);
        let err = s.update(&v1, &v2).await.expect_err(&format!("{op:?} #{n}"));
        let objects = s.fake.objects();
        let versions: Vec<(&str, &str, ContainerState)> = objects
            .containers
            .iter()
            .map(|(name, c)| (name.as_str(), c.labels[LABEL_VERSION].as_str(), c.state))
            .collect();
        assert_eq!(
            versions
                .iter()
                .map(|(n, v, _)| (*n, *v))
                .collect::<Vec<_>>(),
            [("archy-fake-db", "1.0.0"), ("archy-fake-web", "1.0.0")],
            "{op:?} #{n}: {err}"
        );
        if matches!(err, Error::RolledBack { .. }) {
            rolled_back += 1;
            assert!(
                versions
                    .iter()
                    .all(|(_, _, s)| *s == ContainerState::Running),
                "{op:?} #{n}: {versions:?}"
            );
        } else {
            assert!(
                err.to_string().contains("injected failure"),
                "{op:?} #{n}: {err}"
            );
        }
        assert_eq!(
            s.left(),
            [
                "container archy-fake-db",
                "container archy-fake-web",
                "volume archy-fake-data",
                "network archy-fake",
                "secret archy-fake-token",
            ],
            "{op:?} #{n}: {err}"
        );
        assert_eq!(s.secret_file("token"), token, "{op:?} #{n}");
        assert_eq!(s.secret_file("extra"), None, "{op:?} #{n}");
    }
    assert!(
        rolled_back > 5,
        "only {rolled_back} failures were rolled back"
    );
}

/// Objects not named for the app, or named for it but labelled for another, are never
/// touched: an install meeting a foreign secret of its name stops, and undo refuses names
/// that are not the app's.
#[tokio::test]
async fn objects_of_others_are_left_alone() {
    let s = Setup::new();
    s.fake.put(|o| {
        o.secrets.insert(
            "archy-fake-token".into(),
            (
                BTreeMap::from([(LABEL_APP.to_owned(), "other".to_owned())]),
                b"theirs".to_vec(),
            ),
        );
    });
    let err = s.install(&manifest("1.0.0")).await.unwrap_err();
    assert!(matches!(err, Error::SecretTaken { .. }), "{err}");
    let objects = s.fake.objects();
    assert_eq!(objects.secrets["archy-fake-token"].1, b"theirs");
    assert_eq!(
        objects.containers.len() + objects.volumes.len() + objects.networks.len(),
        0
    );

    let s = Setup::new();
    s.install(&manifest("1.0.0")).await.unwrap();
    let mut forged = Created::new(APP);
    forged.containers.push("archy-other-web".into());
    forged.volumes.push("archy-fakeish-data".into());
    s.fake.put(|o| {
        let web = o.containers["archy-fake-web"].clone();
        o.containers.insert("archy-other-web".into(), web);
    });
    let err = s.orchestrator.undo(&forged).await.unwrap_err();
    assert!(
        matches!(&err, Error::UndoIncomplete { left, .. } if left.len() == 2),
        "{err}"
    );
    assert!(s.fake.objects().containers.contains_key("archy-other-web"));
}

#[tokio::test]
async fn uninstall_keeps_data_until_purged() {
    let s = Setup::new();
    s.install(&manifest("1.0.0")).await.unwrap();
    s.orchestrator.uninstall(APP, false).await.unwrap();
    assert_eq!(s.left(), ["volume archy-fake-data"]);
    assert!(s.secret_file("token").is_some());
    let err = s.orchestrator.uninstall(APP, false).await.unwrap_err();
    assert!(matches!(err, Error::NotInstalled(_)), "{err}");
    s.orchestrator.uninstall(APP, true).await.unwrap();
    assert_eq!(s.left(), Vec::<String>::new());
    assert!(!s.app_dir().exists());
}

/// Repair recreates what was removed behind the orchestrator's back and starts what
/// died, leaving the rest alone; the narrow calls the node uses see the same engine.
#[tokio::test]
async fn repair_recreates_and_restarts() {
    let s = Setup::new();
    let m = manifest("1.0.0");
    s.install(&m).await.unwrap();
    let mut events = s.orchestrator.app_events().unwrap();
    s.orchestrator.kill_container(APP, "web").await.unwrap();
    let died = events.recv().await.unwrap();
    assert_eq!((died.app.as_str(), died.status.as_str()), (APP, "died"));
    s.fake.put(|o| {
        o.containers.remove("archy-fake-db");
    });
    let by_app = s.orchestrator.containers_by_app().await.unwrap();
    assert_eq!(by_app[APP].len(), 1, "{by_app:?}");
    let repair = s.orchestrator.repair_manifest(&m, &s.images).await.unwrap();
    assert_eq!(repair.recreated, ["archy-fake-db"]);
    assert_eq!(repair.restarted, ["archy-fake-web"]);
    assert!(s.orchestrator.status(APP).await.unwrap().all_running());
    let details = s
        .orchestrator
        .inspect("archy-fake-web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(details.labels[LABEL_VERSION], "1.0.0");
    assert_eq!(
        s.orchestrator.volumes_of(APP).await.unwrap(),
        ["archy-fake-data"]
    );
}

#[tokio::test]
async fn logs_are_labelled_with_the_manifest_name() {
    let s = Setup::new();
    let m = manifest("1.0.0");
    s.install(&m).await.unwrap();
    for line in ["one", "two", "three"] {
        s.fake.write_log("archy-fake-web", line);
    }
    let mut rx = s
        .orchestrator
        .logs_of(&m, "web", 2, false, None)
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(l) = rx.recv().await {
        assert_eq!(l.container, "web");
        got.push(l.line);
    }
    assert_eq!(got, ["two", "three"]);
    let err = s
        .orchestrator
        .logs_of(&m, "archy-fake-web", 2, false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownContainer { .. }), "{err}");
    s.fake.put(|o| {
        o.containers.remove("archy-fake-web");
    });
    let err = s
        .orchestrator
        .logs_of(&m, "web", 2, false, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn a_runtime_that_is_not_rootless_is_refused() {
    let fake = FakeRuntime::with_host(crate::HostInfo::default());
    let config = OrchestratorConfig {
        podman_url: String::new(),
        data_dir: Path::new("/nonexistent").to_owned(),
        publish_address: IpAddr::from([127, 0, 0, 1]),
    };
    let err = Orchestrator::with_runtime(Arc::new(fake), config)
        .err()
        .unwrap();
    assert!(matches!(err, Error::NotRootless { .. }), "{err}");
}

/// Archives streamed by an [`crate::ImageSource`] (as the node's store hands them over), one
/// of them shorter than it claims: the install reads each archive once, refuses the short
/// one, and leaves nothing behind. Loaded from a map of files, the same install works.
#[tokio::test]
async fn a_streamed_archive_shorter_than_declared_is_refused_and_the_install_undone() {
    struct Streams {
        short: &'static str,
    }
    impl crate::ImageSource for Streams {
        fn open<'a>(
            &'a self,
            artifact: &'a str,
        ) -> crate::BoxFuture<'a, crate::Result<crate::ImageArchive>> {
            Box::pin(async move {
                let bytes = artifact.as_bytes().to_vec();
                let size = bytes.len() as u64 + u64::from(artifact == self.short);
                Ok(crate::ImageArchive {
                    what: artifact.to_owned(),
                    size,
                    source: crate::ArchiveSource::Stream(Box::pin(std::io::Cursor::new(bytes))),
                })
            })
        }
    }
    let s = Setup::new();
    let m = manifest("1.0.0");
    let err = s
        .orchestrator
        .install_manifest(&m, &Streams { short: "web-image" }, &|_| {}, &|_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("web-image") && err.to_string().contains("not loaded"),
        "{err}"
    );
    assert!(s.left().is_empty(), "{:?}", s.left());
    assert_eq!(
        s.fake.count(Op::LoadImage),
        2,
        "each archive opened and read once"
    );
    // Every archive whole: installed, each image loaded once.
    let s = Setup::new();
    s.orchestrator
        .install_manifest(&m, &Streams { short: "none" }, &|_| {}, &|_| {})
        .await
        .unwrap();
    assert_eq!(s.fake.count(Op::LoadImage), 2);
    assert_eq!(s.fake.objects().images.len(), 2);
}
