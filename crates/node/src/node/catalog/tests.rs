//! The node's catalog pull ([`CatalogSync`]) driven through sources in memory: no Podman, no
//! HTTP, no swarm, and a real sqlite file. Each test is an attack from TUF's list (rollback,
//! freeze, mix-and-match, wrong role, endless data) or an equivocation between the origin and
//! a peer, checked where the node acts on it: what the pull returns and tells the operator,
//! what the trust state and the database hold afterwards (and after a restart), which alarms
//! are raised, and what is relayed on to other peers. The HTTP origin and the iroh relay are
//! the real-parts layer, in `tests/e2e/trust*.rs` and `tests/e2e/swarm.rs`.

use std::collections::HashMap;
use std::sync::Mutex;

use archy_registry::{
    Catalog, Envelope, Origin, PayloadType, Root, SecretKey, VerifiedRoot, catalog_link,
};
use chrono::Duration as Days;
use futures::future::BoxFuture;

use super::*;
use crate::node::source::installable;

fn key(n: u8) -> SecretKey {
    SecretKey::from_bytes(&[n; 32])
}

/// Root version 1's keys: root role and catalog role.
const ROOT1: u8 = 1;
const CATALOG1: u8 = 2;

/// A root envelope: `root_key` holds the root role, `catalog_key` the catalog role, each
/// alone (threshold 1); signed by `signers`.
fn root(version: u64, root_key: u8, catalog_key: u8, signers: &[u8]) -> Vec<u8> {
    let root = Root::new(
        version,
        Utc::now() + Days::days(365),
        &[key(root_key).public()],
        1,
        &[key(catalog_key).public()],
        1,
    )
    .unwrap();
    let mut env = Envelope::unsigned(PayloadType::Root, &root.to_json());
    for k in signers {
        env.sign(&key(*k)).unwrap();
    }
    env.to_bytes()
}

/// A catalog envelope signed by `signer`. `tag` goes into the origin URL, so two catalogs
/// of one version with different tags are different documents (a fork, an equivocation).
fn catalog(
    version: u64,
    expires: DateTime<Utc>,
    previous: Option<&[u8]>,
    tag: &str,
    signer: u8,
) -> Vec<u8> {
    let previous =
        previous.map(|bytes| catalog_link(&Envelope::from_bytes(bytes).unwrap()).unwrap());
    let catalog = Catalog::new(
        version,
        expires,
        previous,
        Origin {
            http: format!("http://{tag}.example"),
            iroh: "ab".repeat(32),
        },
        vec![],
    )
    .unwrap();
    let mut env = Envelope::unsigned(PayloadType::Catalog, &catalog.to_json());
    env.sign(&key(signer)).unwrap();
    env.to_bytes()
}

fn in_days(days: i64) -> DateTime<Utc> {
    Utc::now() + Days::days(days)
}

/// How a memory source answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// From its documents; "not found" for any other.
    Up,
    /// Every fetch fails at once (connection refused).
    Down,
    /// Every fetch never ends (a silent server, a stalled peer).
    Hang,
}

/// A catalog source in memory: documents by name, and a record of what it was asked. It
/// ignores `limit` on purpose, so the node's own bound is what is tested.
struct Memory {
    name: &'static str,
    mode: Mutex<Mode>,
    docs: Mutex<HashMap<Document, Vec<u8>>>,
    asked: Mutex<Vec<Document>>,
}

impl Memory {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            mode: Mutex::new(Mode::Up),
            docs: Mutex::default(),
            asked: Mutex::default(),
        }
    }

    fn serve(&self, doc: Document, bytes: &[u8]) -> &Self {
        self.docs.lock().unwrap().insert(doc, bytes.to_vec());
        self
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn asked(&self) -> Vec<Document> {
        self.asked.lock().unwrap().clone()
    }
}

impl CatalogSource for Memory {
    fn locate(&self, doc: Document) -> String {
        let name = self.name;
        match doc {
            Document::Root(v) => format!("mem://{name}/root/{v}"),
            Document::Catalog => format!("mem://{name}/catalog"),
            Document::CatalogVersion(v) => format!("mem://{name}/catalog/{v}"),
        }
    }

    fn fetch(&self, doc: Document, _limit: usize) -> BoxFuture<'_, Result<Vec<u8>, SourceError>> {
        Box::pin(async move {
            self.asked.lock().unwrap().push(doc);
            let mode = *self.mode.lock().unwrap();
            match mode {
                Mode::Up => {}
                Mode::Down => {
                    return Err(SourceError::Unavailable(format!(
                        "cannot connect to {}",
                        self.locate(doc)
                    )));
                }
                Mode::Hang => std::future::pending().await,
            }
            let found = self.docs.lock().unwrap().get(&doc).cloned();
            found.ok_or_else(|| SourceError::NotFound(format!("{} has none", self.locate(doc))))
        })
    }
}

/// What a node holds for the catalog pull: trust state, a sqlite file, what it relayed on,
/// and a clock the test moves.
struct Puller {
    dir: tempfile::TempDir,
    db: Db,
    trust: RwLock<TrustState>,
    relayed: Mutex<Vec<Vec<u8>>>,
    now: Mutex<DateTime<Utc>>,
    limits: SyncLimits,
}

impl Puller {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(&dir.path().join("archy.db")).await.unwrap();
        Self {
            dir,
            db,
            trust: RwLock::new(TrustState::new(anchor())),
            relayed: Mutex::default(),
            now: Mutex::new(Utc::now()),
            limits: SyncLimits {
                max_document_bytes: 64 * 1024,
                fetch_within: Duration::from_millis(500),
                max_root_rotations: 4,
                max_chain_fetch: 8,
                max_relay_peers: 8,
                expiry_warning_days: 7,
            },
        }
    }

    async fn pull(&self, origin: &Memory, peers: &[&Memory]) -> Pulled {
        let relay_on =
            |envelope: bytes::Bytes| self.relayed.lock().unwrap().push(envelope.to_vec());
        let clock = || *self.now.lock().unwrap();
        let peers: Vec<&dyn CatalogSource> = peers.iter().map(|p| *p as _).collect();
        CatalogSync {
            trust: &self.trust,
            db: &self.db,
            relay_on: &relay_on,
            clock: &clock,
            limits: self.limits.clone(),
        }
        .pull(origin, &peers)
        .await
    }

    /// The pull's error message, which must be a refusal or the origin being unavailable.
    async fn refused(&self, origin: &Memory, peers: &[&Memory]) -> NodeError {
        match self.pull(origin, peers).await {
            Ok(update) => panic!("accepted: {update:?}"),
            Err(e) => e,
        }
    }

    async fn version(&self) -> Option<u64> {
        self.trust.read().await.catalog().map(|c| c.version())
    }

    async fn root_version(&self) -> u64 {
        self.trust.read().await.root().version()
    }

    /// The catalog envelope the database would restore at the next start.
    async fn stored(&self) -> Option<Vec<u8>> {
        db::latest_catalog(&self.db).await.unwrap()
    }

    /// What a restart would make of the database: the same as the running state.
    async fn check_restart(&self) {
        let restored = TrustState::restore(
            anchor(),
            &db::root_rotations(&self.db).await.unwrap(),
            self.stored().await.as_deref(),
            None,
        )
        .unwrap();
        let running = self.trust.read().await;
        assert_eq!(restored.root().version(), running.root().version());
        assert_eq!(
            restored.catalog().map(|c| c.payload_hash().to_owned()),
            running.catalog().map(|c| c.payload_hash().to_owned()),
            "the database and the running trust state differ"
        );
    }

    async fn alarms(&self, kind: &str) -> Vec<String> {
        db::alarms(&self.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.message)
            .collect()
    }

    async fn all_alarms(&self) -> usize {
        db::alarms(&self.db).await.unwrap().len()
    }

    fn relayed(&self) -> Vec<Vec<u8>> {
        self.relayed.lock().unwrap().clone()
    }

    fn advance(&self, by: Days) {
        *self.now.lock().unwrap() += by;
    }

    async fn installable(&self) -> Result<(), NodeError> {
        installable(&*self.trust.read().await, *self.now.lock().unwrap()).map(|_| ())
    }
}

fn anchor() -> VerifiedRoot {
    VerifiedRoot::trust_anchor(&root(1, ROOT1, CATALOG1, &[ROOT1])).unwrap()
}

#[tokio::test]
async fn an_origin_catalog_is_verified_stored_and_relayed_on() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    let v1 = catalog(1, in_days(30), None, "a", CATALOG1);
    origin.serve(Document::Catalog, &v1);
    let pulled = node.pull(&origin, &[]).await;
    assert_eq!(
        pull_message(&pulled),
        "catalog updated from nothing to version 1"
    );
    assert_eq!(
        pulled.unwrap(),
        (
            CatalogUpdate::Updated {
                from: None,
                to: 1,
                missed: 0
            },
            vec![]
        )
    );
    assert_eq!(node.stored().await, Some(v1.clone()));
    assert_eq!(node.relayed(), vec![v1.clone()]);
    node.installable().await.unwrap();
    // The same catalog again: nothing to store or relay.
    let pulled = node.pull(&origin, &[]).await;
    assert_eq!(pull_message(&pulled), "catalog version 1 is current");
    assert_eq!(node.relayed().len(), 1);
    // The origin was asked for its next root (there is none), then the catalog.
    assert_eq!(origin.asked()[..2], [Document::Root(2), Document::Catalog]);
    node.check_restart().await;
    assert_eq!(node.all_alarms().await, 0);
}

#[tokio::test]
async fn rollback_is_refused_from_the_origin_and_from_peers() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    let v1 = catalog(1, in_days(30), None, "a", CATALOG1);
    let v2 = catalog(2, in_days(30), Some(&v1), "a", CATALOG1);
    origin.serve(Document::Catalog, &v1);
    node.pull(&origin, &[]).await.unwrap();
    origin.serve(Document::Catalog, &v2);
    node.pull(&origin, &[]).await.unwrap();
    assert_eq!(node.version().await, Some(2));

    // The origin (or whoever stands in its place) serves the older, validly signed v1.
    origin.serve(Document::Catalog, &v1);
    let err = node.refused(&origin, &[]).await;
    assert_eq!(err.kind, ErrorKind::Refused);
    assert!(
        err.message
            .contains("catalog from mem://origin/catalog refused")
            && err
                .message
                .contains("rollback refused: offered version 1, current version is 2"),
        "{}",
        err.message
    );
    // A peer relaying it while the origin is down gets no further.
    origin.set(Mode::Down);
    let peer = Memory::new("peer");
    peer.serve(Document::Catalog, &v1);
    let err = node.refused(&origin, &[&peer]).await;
    assert_eq!(err.kind, ErrorKind::Unavailable, "{}", err.message);
    assert_eq!(peer.asked(), [Document::Catalog]);
    assert_eq!(node.version().await, Some(2));
    assert_eq!(node.stored().await, Some(v2.clone()));
    assert_eq!(node.relayed(), vec![v1, v2]);
    node.check_restart().await;
}

#[tokio::test]
async fn an_expired_catalog_is_refused_and_a_frozen_one_allows_no_installs() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    // Expired before it arrives: refused, nothing kept.
    origin.serve(
        Document::Catalog,
        &catalog(1, Utc::now() - Days::minutes(1), None, "a", CATALOG1),
    );
    let err = node.refused(&origin, &[]).await;
    assert!(
        err.message.contains("catalog version 1 expired"),
        "{}",
        err.message
    );
    assert_eq!(node.version().await, None);
    assert_eq!(node.stored().await, None);
    assert!(node.relayed().is_empty());
    let install = node.installable().await.unwrap_err();
    assert!(
        install.message.contains("no verified catalog"),
        "{}",
        install.message
    );

    // Freeze: the origin goes on serving the catalog it had, past its expiry. The node keeps
    // it (running apps keep running) but installs nothing from it.
    let v1 = catalog(1, Utc::now() + Days::hours(1), None, "a", CATALOG1);
    origin.serve(Document::Catalog, &v1);
    node.pull(&origin, &[]).await.unwrap();
    node.installable().await.unwrap();
    node.advance(Days::hours(2));
    let pulled = node.pull(&origin, &[]).await;
    assert_eq!(pull_message(&pulled), "catalog version 1 is current");
    let install = node.installable().await.unwrap_err();
    assert_eq!(install.kind, ErrorKind::Refused);
    assert!(
        install.message.contains("expired") && install.message.contains("no installs from it"),
        "{}",
        install.message
    );
    // A fresh catalog from the origin ends the freeze.
    let v2 = catalog(2, in_days(30), Some(&v1), "a", CATALOG1);
    origin.serve(Document::Catalog, &v2);
    node.pull(&origin, &[]).await.unwrap();
    node.installable().await.unwrap();
    node.check_restart().await;
}

#[tokio::test]
async fn mix_and_match_documents_are_refused() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    let v1 = catalog(1, in_days(30), None, "a", CATALOG1);
    origin.serve(Document::Catalog, &v1);
    node.pull(&origin, &[]).await.unwrap();

    // v2's payload under v1's signatures.
    let v2 = catalog(2, in_days(30), Some(&v1), "a", CATALOG1);
    let mut mixed = Envelope::from_bytes(&v2).unwrap();
    mixed.signatures = Envelope::from_bytes(&v1).unwrap().signatures;
    origin.serve(Document::Catalog, &mixed.to_bytes());
    let err = node.refused(&origin, &[]).await;
    assert!(
        err.message.contains("catalog role: 0 valid signature(s)"),
        "{}",
        err.message
    );

    // v3 over a v2 from another history: the origin serves the fork's v2 as the link.
    let other_v1 = catalog(1, in_days(30), None, "fork", CATALOG1);
    let fork_v2 = catalog(2, in_days(30), Some(&other_v1), "fork", CATALOG1);
    let v3 = catalog(3, in_days(30), Some(&fork_v2), "fork", CATALOG1);
    origin
        .serve(Document::Catalog, &v3)
        .serve(Document::CatalogVersion(2), &fork_v2);
    let err = node.refused(&origin, &[]).await;
    assert!(
        err.message.contains(
            "catalog version 3 from mem://origin/catalog refused: the chain from the current \
             catalog breaks at version 2 (mem://origin/catalog/2)"
        ) && err
            .message
            .contains("does not chain to the current version 1"),
        "{}",
        err.message
    );
    assert_eq!(node.alarms("chain-broken").await.len(), 1);
    assert_eq!(node.version().await, Some(1));
    assert_eq!(node.stored().await, Some(v1.clone()));
    assert_eq!(node.relayed(), vec![v1]);
    node.check_restart().await;
}

#[tokio::test]
async fn documents_signed_by_the_wrong_role_are_refused() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    // A catalog signed by the root key, which holds no catalog role.
    origin.serve(
        Document::Catalog,
        &catalog(1, in_days(30), None, "a", ROOT1),
    );
    let err = node.refused(&origin, &[]).await;
    assert!(
        err.message.contains("catalog role: 0 valid signature(s)"),
        "{}",
        err.message
    );
    // A signed root presented as the catalog.
    origin.serve(Document::Catalog, &root(1, ROOT1, CATALOG1, &[ROOT1]));
    let err = node.refused(&origin, &[]).await;
    assert!(err.message.contains("payload type"), "{}", err.message);
    assert_eq!(node.version().await, None);

    // Root version 2 signed by its own root key and the catalog key, not the old root key:
    // the walk stops there, with an alarm, and the catalog is not even asked for.
    let origin = Memory::new("origin2");
    origin
        .serve(Document::Root(2), &root(2, 20, CATALOG1, &[20, CATALOG1]))
        .serve(
            Document::Catalog,
            &catalog(1, in_days(30), None, "a", CATALOG1),
        );
    let err = node.refused(&origin, &[]).await;
    assert!(
        err.message
            .starts_with("root version 2 from mem://origin2/root/2 refused: root role"),
        "{}",
        err.message
    );
    assert_eq!(origin.asked(), [Document::Root(2)]);
    assert_eq!(node.root_version().await, 1);
    assert_eq!(node.alarms("root-rotation").await.len(), 1);
    assert!(db::root_rotations(&node.db).await.unwrap().is_empty());
    assert!(node.relayed().is_empty());
    node.check_restart().await;
}

#[tokio::test]
async fn a_rotated_root_retires_the_old_catalog_key() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    // Root 2 hands both roles to new keys, signed by the old root key and the new one.
    origin
        .serve(Document::Root(2), &root(2, 20, 21, &[ROOT1, 20]))
        .serve(
            Document::Catalog,
            &catalog(1, in_days(30), None, "a", CATALOG1),
        );
    let err = node.refused(&origin, &[]).await;
    assert!(
        err.message.contains("catalog role: 0 valid signature(s)"),
        "{}",
        err.message
    );
    assert_eq!(node.root_version().await, 2);
    let v1 = catalog(1, in_days(30), None, "a", 21);
    origin.serve(Document::Catalog, &v1);
    node.pull(&origin, &[]).await.unwrap();
    assert_eq!(node.stored().await, Some(v1));
    node.check_restart().await;
}

#[tokio::test]
async fn endless_data_is_cut_off_by_the_node_not_the_source() {
    let mut node = Puller::new().await;
    node.limits.max_document_bytes = 2048;
    let origin = Memory::new("origin");
    let peer = Memory::new("peer");
    let small = catalog(1, in_days(30), None, "a", CATALOG1);
    assert!(small.len() < 2048);
    peer.serve(Document::Catalog, &small);
    // A validly signed catalog over the limit, from a source that ignores the limit.
    let big = catalog(1, in_days(30), None, &"b".repeat(4096), CATALOG1);
    origin.serve(Document::Catalog, &big);
    let err = node.refused(&origin, &[&peer]).await;
    assert_eq!(err.kind, ErrorKind::Refused);
    assert_eq!(
        err.message,
        "mem://origin/catalog sent more than the 2048-byte limit"
    );
    // Too much is the origin misbehaving, not being away: peers are not asked instead.
    assert!(peer.asked().is_empty());
    assert_eq!(node.version().await, None);
    assert_eq!(node.stored().await, None);

    // An origin (and a peer) that never answer cost the fetch deadline each; the next peer
    // serves.
    origin.set(Mode::Hang);
    let stalled = Memory::new("stalled");
    stalled.set(Mode::Hang);
    let started = std::time::Instant::now();
    let pulled = tokio::time::timeout(
        Duration::from_secs(5),
        node.pull(&origin, &[&stalled, &peer]),
    )
    .await
    .expect("the pull must end within the fetch deadlines");
    let (update, notes) = pulled.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(update, CatalogUpdate::Updated { to: 1, .. }));
    assert_eq!(
        notes,
        vec![
            "relayed by mem://peer/catalog: the origin is unreachable (mem://origin/root/2 did not \
             answer within 0.5 s)"
                .to_owned()
        ]
    );
    assert_eq!(stalled.asked(), [Document::Catalog]);
    assert_eq!(node.relayed(), vec![small]);
}

#[tokio::test]
async fn an_endless_root_chain_is_walked_to_the_cap_per_pull() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    // Roots 2..=10, each signed by the previous root key and its own: all valid.
    for version in 2..=10u64 {
        let (prev, own) = (
            if version == 2 {
                ROOT1
            } else {
                18 + version as u8
            },
            19 + version as u8,
        );
        origin.serve(
            Document::Root(version),
            &root(version, own, CATALOG1, &[prev, own]),
        );
    }
    origin.serve(
        Document::Catalog,
        &catalog(1, in_days(30), None, "a", CATALOG1),
    );
    node.pull(&origin, &[]).await.unwrap();
    assert_eq!(node.root_version().await, 5, "max_root_rotations is 4");
    assert_eq!(db::root_rotations(&node.db).await.unwrap().len(), 4);
    let roots = |asked: Vec<Document>| {
        asked
            .into_iter()
            .filter(|d| matches!(d, Document::Root(_)))
            .count()
    };
    assert_eq!(roots(origin.asked()), 4);
    node.pull(&origin, &[]).await.unwrap();
    assert_eq!(node.root_version().await, 9);
    node.check_restart().await;
}

#[tokio::test]
async fn a_peer_equivocating_with_the_origin_raises_an_alarm_and_changes_nothing() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    let v1 = catalog(1, in_days(30), None, "a", CATALOG1);
    origin.serve(Document::Catalog, &v1);
    node.pull(&origin, &[]).await.unwrap();
    let hash = node
        .trust
        .read()
        .await
        .catalog()
        .unwrap()
        .payload_hash()
        .to_owned();

    // The origin is away; a peer relays another version 1, signed by the catalog key.
    origin.set(Mode::Down);
    let peer = Memory::new("peer");
    peer.serve(
        Document::Catalog,
        &catalog(1, in_days(30), None, "other", CATALOG1),
    );
    let err = node.refused(&origin, &[&peer]).await;
    // The pull fails as the origin did; the peer's catalog is refused with an alarm.
    assert_eq!(err.message, "cannot connect to mem://origin/root/2");
    let alarms = node.alarms("equivocation").await;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert!(
        alarms[0].starts_with(
            "catalog from mem://peer/catalog (relayed while the origin is unreachable: cannot \
             connect to mem://origin/root/2) refused: catalog equivocation: version 1"
        ),
        "{}",
        alarms[0]
    );
    assert_eq!(
        node.trust.read().await.catalog().unwrap().payload_hash(),
        hash
    );
    assert_eq!(node.stored().await, Some(v1.clone()));
    assert_eq!(node.relayed(), vec![v1]);
    // The origin back: its catalog is the one the node has.
    origin.set(Mode::Up);
    let pulled = node.pull(&origin, &[&peer]).await;
    assert_eq!(pull_message(&pulled), "catalog version 1 is current");
    node.check_restart().await;
}

#[tokio::test]
async fn peers_are_asked_only_while_the_origin_is_unavailable() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    let peer = Memory::new("peer");
    let v1 = catalog(1, in_days(30), None, "a", CATALOG1);
    let v2 = catalog(2, in_days(30), Some(&v1), "a", CATALOG1);
    origin.serve(Document::Catalog, &v1);
    peer.serve(Document::Catalog, &v2);
    // The origin answers: its catalog counts, the peer is not asked.
    node.pull(&origin, &[&peer]).await.unwrap();
    assert!(peer.asked().is_empty());
    assert_eq!(node.version().await, Some(1));
    // A refusal from the origin is not unavailability either.
    origin.serve(
        Document::Catalog,
        &catalog(1, in_days(30), None, "x", ROOT1),
    );
    node.refused(&origin, &[&peer]).await;
    assert!(peer.asked().is_empty());

    // The origin is away: a tampered relay is skipped, the next peer's v2 is accepted.
    origin.set(Mode::Down);
    let liar = Memory::new("liar");
    let mut tampered = Envelope::from_bytes(&v2).unwrap();
    tampered.payload = Envelope::from_bytes(&catalog(3, in_days(30), None, "z", ROOT1))
        .unwrap()
        .payload;
    liar.serve(Document::Catalog, &tampered.to_bytes());
    let pulled = node.pull(&origin, &[&liar, &peer]).await;
    assert_eq!(
        pull_message(&pulled),
        "catalog updated from version 1 to version 2, relayed by mem://peer/catalog: the origin \
         is unreachable (cannot connect to mem://origin/root/2)"
    );
    assert_eq!(node.relayed().last(), Some(&v2));
    // Peers are never asked for history: a gap behind a relayed catalog stays a gap.
    assert!(peer.asked().iter().all(|d| *d == Document::Catalog));
    node.check_restart().await;
}

#[tokio::test]
async fn a_gap_is_chained_through_the_origin_or_reported_as_unverified() {
    let origin = Memory::new("origin");
    let v1 = catalog(1, in_days(30), None, "a", CATALOG1);
    let v2 = catalog(2, in_days(30), Some(&v1), "a", CATALOG1);
    let v3 = catalog(3, in_days(30), Some(&v2), "a", CATALOG1);

    let node = Puller::new().await;
    origin.serve(Document::Catalog, &v1);
    node.pull(&origin, &[]).await.unwrap();
    origin
        .serve(Document::Catalog, &v3)
        .serve(Document::CatalogVersion(2), &v2);
    let (update, notes) = node.pull(&origin, &[]).await.unwrap();
    assert_eq!(
        update,
        CatalogUpdate::Updated {
            from: Some(1),
            to: 3,
            missed: 0
        }
    );
    assert_eq!(
        notes,
        ["chain verified through 1 skipped version(s) fetched from the origin"]
    );
    assert_eq!(node.all_alarms().await, 0);

    // The origin lost version 2: accepted across an unverified gap, with an alarm.
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    origin.serve(Document::Catalog, &v1);
    node.pull(&origin, &[]).await.unwrap();
    origin.serve(Document::Catalog, &v3);
    let (update, notes) = node.pull(&origin, &[]).await.unwrap();
    assert!(matches!(update, CatalogUpdate::Updated { missed: 1, .. }));
    let expected = "accepted across an unverified gap of 1 version(s) (version 2): the origin no \
                    longer has it (mem://origin/catalog/2 has none)";
    assert_eq!(notes, [expected]);
    let alarms = node.alarms("unverified-gap").await;
    assert!(
        alarms.len() == 1 && alarms[0].contains(expected),
        "{alarms:?}"
    );
    node.check_restart().await;
}

#[tokio::test]
async fn a_clock_that_goes_backward_is_refused_with_an_alarm() {
    let node = Puller::new().await;
    let origin = Memory::new("origin");
    let v1 = catalog(1, in_days(30), None, "a", CATALOG1);
    origin.serve(Document::Catalog, &v1);
    node.pull(&origin, &[]).await.unwrap();
    node.advance(Days::hours(-1));
    let v2 = catalog(2, in_days(30), Some(&v1), "a", CATALOG1);
    origin.serve(Document::Catalog, &v2);
    let err = node.refused(&origin, &[]).await;
    assert!(
        err.message.contains("clock went backward"),
        "{}",
        err.message
    );
    assert_eq!(node.alarms("clock-backward").await.len(), 1);
    assert_eq!(node.version().await, Some(1));
    // Keep the data dir until the end: the sqlite file lives there.
    assert!(node.dir.path().join("archy.db").exists());
}

#[test]
fn gaps_are_described_as_runs() {
    assert_eq!(describe_gaps(&[2..=2]), "version 2");
    assert_eq!(describe_gaps(&[2..=4, 7..=7]), "versions 2–4, 7");
    assert_eq!(describe_gaps(&[3..=5]), "versions 3–5");
}
