//! Runs the real `archy-sign` binary through whole ceremonies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use archy_registry::{
    Artifact, Catalog, CatalogApp, Envelope, Manifest, Origin, PayloadType, Root, blake3_hex,
};
use chrono::{Duration, Utc};

/// The all-"abandon" BIP39 test mnemonic: valid, and public, so fine in a test.
const TEST_MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

/// Runs archy-sign with `stdin` piped in (or an empty, non-terminal stdin).
fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_archy-sign"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start archy-sign");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and insists on success, returning stdout.
fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "archy-sign {args:?} failed\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs and insists on failure, returning stdout + stderr.
fn fails(args: &[&str], stdin: Option<&str>) -> String {
    let out = run(args, stdin);
    assert!(
        !out.status.success(),
        "archy-sign {args:?} should have failed\nstdout: {}",
        stdout(&out)
    );
    format!("{}{}", stdout(&out), stderr(&out))
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes a secret file the way a keyholder should keep one: owner-only.
fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// One keyholder: a fresh mnemonic from `mnemonic new`, kept in a file.
struct Keyholder {
    mnemonic_file: PathBuf,
}

impl Keyholder {
    fn new(dir: &Path, name: &str) -> Self {
        let mnemonic_file = dir.join(format!("{name}.mnemonic"));
        ok(&["mnemonic", "new", "--out", s(&mnemonic_file)], None);
        Self { mnemonic_file }
    }

    fn did(&self, role: &str) -> String {
        ok(
            &[
                "pubkey",
                "--role",
                role,
                "--mnemonic-file",
                s(&self.mnemonic_file),
            ],
            None,
        )
        .trim()
        .to_owned()
    }

    fn sign(&self, file: &Path, role: &str) {
        ok(
            &[
                "sign",
                s(file),
                "--role",
                role,
                "--mnemonic-file",
                s(&self.mnemonic_file),
            ],
            None,
        );
    }
}

fn write_catalog(path: &Path, version: u64) {
    write_catalog_with(path, version, None, vec![]);
}

/// An unsigned catalog envelope with these apps, chained to `previous`.
fn write_catalog_with(path: &Path, version: u64, previous: Option<String>, apps: Vec<CatalogApp>) {
    let origin = Origin {
        http: "http://127.0.0.1:1".into(),
        iroh: "ab".repeat(32),
    };
    let catalog = Catalog::new(
        version,
        Utc::now() + Duration::days(30),
        previous,
        origin,
        apps,
    )
    .unwrap();
    let envelope = Envelope::unsigned(PayloadType::Catalog, &catalog.to_json());
    std::fs::write(path, envelope.to_bytes()).unwrap();
}

/// A one-container app; `extra` is appended to the container's YAML.
fn catalog_app(id: &str, version: &str, image_hash: char, extra: &str) -> CatalogApp {
    let yaml = format!(
        "id: {id}\nname: {id}\nversion: {version}\n\
         artifacts: [{{ name: image, media_type: application/vnd.oci.image.layout.v1.tar }}]\n\
         containers:\n  - name: web\n    image: {{ artifact: image }}\n\
         \x20   ports: [{{ container: 8080, host: 18080 }}]\n{extra}"
    );
    let manifest = Manifest::from_yaml(&yaml).unwrap();
    let artifacts = vec![Artifact {
        name: "image".into(),
        blake3: image_hash.to_string().repeat(64),
        size: 4096,
        media_type: "application/vnd.oci.image.layout.v1.tar".into(),
    }];
    CatalogApp {
        id: id.into(),
        version: manifest.version.clone(),
        manifest,
        artifacts,
    }
}

fn root_init(
    out: &Path,
    version: &str,
    root_keys: &[&str],
    root_k: &str,
    catalog_keys: &[&str],
    catalog_k: &str,
) {
    let mut args = vec!["root", "init", "--out", s(out), "--version", version];
    for k in root_keys {
        args.extend(["--root-key", *k]);
    }
    for k in catalog_keys {
        args.extend(["--catalog-key", *k]);
    }
    args.extend([
        "--root-threshold",
        root_k,
        "--catalog-threshold",
        catalog_k,
        "--expires-in-days",
        "365",
    ]);
    ok(&args, None);
}

/// The trust anchor most tests start from: Alice alone holds both roles (1 of 1) of
/// root version 1 at `dir/root.json`, which she has signed.
fn alice_anchor(dir: &Path) -> (Keyholder, PathBuf) {
    let alice = Keyholder::new(dir, "alice");
    let root = dir.join("root.json");
    root_init(
        &root,
        "1",
        &[&alice.did("root")],
        "1",
        &[&alice.did("catalog")],
        "1",
    );
    alice.sign(&root, "root");
    (alice, root)
}

#[test]
fn mnemonic_new_gives_valid_words_that_check_accepts() {
    let first = ok(&["mnemonic", "new"], None);
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.len(), 24, "{first}");
    assert!(
        words
            .iter()
            .all(|w| w.chars().all(|c| c.is_ascii_lowercase()))
    );
    let checked = ok(&["mnemonic", "check"], Some(&first));
    assert!(checked.contains("24 words"), "{checked}");

    // Fresh randomness each time.
    assert_ne!(first, ok(&["mnemonic", "new"], None));

    let twelve = ok(&["mnemonic", "new", "--words", "12"], None);
    assert_eq!(twelve.split_whitespace().count(), 12, "{twelve}");
    ok(&["mnemonic", "check"], Some(&twelve));
}

#[test]
fn mnemonic_new_out_writes_an_owner_only_file_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyholder.mnemonic");
    let out = run(&["mnemonic", "new", "--out", s(&file)], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "the words went to stdout too");
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(mode(&file), 0o600);
    let words = std::fs::read_to_string(&file).unwrap();
    assert_eq!(words.split_whitespace().count(), 24, "{words}");
    ok(&["mnemonic", "check", "--mnemonic-file", s(&file)], None);

    // An existing file (perhaps the only copy of a mnemonic) is not replaced.
    let err = fails(&["mnemonic", "new", "--out", s(&file)], None);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), words);
    // Unless asked, and the replacement is 0600 even over a world-readable file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(&["mnemonic", "new", "--out", s(&file), "--force"], None);
    assert_eq!(mode(&file), 0o600);
    assert_ne!(std::fs::read_to_string(&file).unwrap(), words);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        1,
        "a temporary file was left: {leftovers:?}"
    );
    assert!(fails(&["mnemonic", "new", "--force"], None).contains("--out"));

    // Printing still works, with a warning when stdout is not a terminal.
    let out = run(&["mnemonic", "new"], None);
    assert_eq!(stdout(&out).split_whitespace().count(), 24);
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("--out FILE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_command_reading_a_mnemonic_refuses_a_readable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("words.mnemonic");
    std::fs::write(&file, TEST_MNEMONIC).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fix = format!("chmod 600 {}", file.display());
    let envelope = dir.path().join("catalog.json");
    write_catalog(&envelope, 1);
    for args in [
        vec!["mnemonic", "check", "--mnemonic-file", s(&file)],
        vec!["pubkey", "--role", "root", "--mnemonic-file", s(&file)],
        vec![
            "sign",
            s(&envelope),
            "--role",
            "catalog",
            "--mnemonic-file",
            s(&file),
        ],
    ] {
        let err = fails(&args, None);
        assert!(err.contains(&fix), "{args:?}: {err}");
        assert!(!err.contains("abandon"), "{err}");
    }
    // A readable passphrase file is refused the same way.
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "TREZOR\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = fails(
        &["pubkey", "--role", "root", "--passphrase-file", s(&pass)],
        Some(TEST_MNEMONIC),
    );
    assert!(
        err.contains(&format!("chmod 600 {}", pass.display())),
        "{err}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(
        &["pubkey", "--role", "root", "--mnemonic-file", s(&file)],
        None,
    );
}

#[test]
fn extra_entropy_is_mixed_in_and_must_not_be_empty() {
    let dice = "3 6 1 4 2 5 5 1 6 2 3 4 1 1 6 2 5 3 4 6 2 1 5 3";
    let mnemonic = ok(&["mnemonic", "new", "--extra-entropy-stdin"], Some(dice));
    assert_eq!(mnemonic.split_whitespace().count(), 24);
    ok(&["mnemonic", "check"], Some(&mnemonic));
    // The OS part still makes each run different, even with the same dice.
    assert_ne!(
        mnemonic,
        ok(&["mnemonic", "new", "--extra-entropy-stdin"], Some(dice))
    );

    let err = fails(&["mnemonic", "new", "--extra-entropy-stdin"], Some(" \n"));
    assert!(err.contains("no entropy"), "{err}");
}

#[test]
fn mnemonic_check_names_the_problem_without_echoing_words() {
    let bad_checksum = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon";
    let err = fails(&["mnemonic", "check"], Some(bad_checksum));
    assert!(
        err.contains("mnemonic on stdin: not a valid BIP39 mnemonic"),
        "{err}"
    );
    assert!(err.contains("checksum"), "{err}");
    assert!(
        !err.contains("abandon"),
        "the error must not repeat the words: {err}"
    );

    let unknown = TEST_MNEMONIC.replace("about", "hunter2");
    let err = fails(&["mnemonic", "check"], Some(&unknown));
    assert!(
        err.contains("word 12 is not in the BIP39 English word list"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    // No mnemonic anywhere: stdin is not a terminal and is empty.
    let err = fails(&["pubkey", "--role", "root"], None);
    assert!(err.contains("mnemonic on stdin: empty"), "{err}");
}

#[test]
fn bad_or_missing_mnemonic_file_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("words.txt");
    write_secret(&file, "correct horse battery staple\n");
    let err = fails(
        &["pubkey", "--role", "root", "--mnemonic-file", s(&file)],
        None,
    );
    assert!(
        err.contains(&format!(
            "mnemonic file {}: not a valid BIP39 mnemonic",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("horse"), "{err}");

    let missing = dir.path().join("nope.txt");
    let err = fails(
        &["pubkey", "--role", "root", "--mnemonic-file", s(&missing)],
        None,
    );
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // There is no flag that takes the mnemonic itself.
    let err = fails(
        &["pubkey", "--role", "root", "--mnemonic", TEST_MNEMONIC],
        None,
    );
    assert!(err.contains("unexpected argument"), "{err}");
}

#[test]
fn derive_reproduces_slip10_ed25519_vectors() {
    let seed1 = "000102030405060708090a0b0c0d0e0f";
    let out = ok(
        &[
            "derive",
            "--seed-hex",
            seed1,
            "--path",
            "m/0'/1'/2'/2'/1000000000'",
        ],
        None,
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("3c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a")
    );
    assert!(lines.next().unwrap().starts_with("did:key:z6Mk"), "{out}");

    let master = ok(&["derive", "--seed-hex", seed1, "--path", "m"], None);
    assert!(
        master.starts_with("a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"),
        "{master}"
    );

    let seed2 = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542";
    let out = ok(
        &[
            "derive",
            "--seed-hex",
            seed2,
            "--path",
            "m/0'/2147483647'/1'/2147483646'/2'",
        ],
        None,
    );
    assert!(
        out.starts_with("47150c75db263559a70d5778bf36abbab30fb061ad69f69ece61a72b0cfa4fc0"),
        "{out}"
    );

    let err = fails(&["derive", "--seed-hex", seed1, "--path", "m/0/1'"], None);
    assert!(err.contains("not hardened"), "{err}");
    let err = fails(&["derive", "--seed-hex", "zz", "--path", "m"], None);
    assert!(err.contains("--seed-hex"), "{err}");
}

#[test]
fn pubkey_is_reproducible_per_role_index_and_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let pubkey = |extra: &[&str]| {
        let mut args = vec!["pubkey"];
        args.extend(extra);
        let out = run(&args, Some(TEST_MNEMONIC));
        assert!(out.status.success(), "{}", stderr(&out));
        (stdout(&out).trim().to_owned(), stderr(&out))
    };
    // Known answers, listed in docs/keys.md, cross-checked with an independent
    // implementation (Python hashlib PBKDF2/HMAC-SHA512 + pyca ed25519).
    let (root, path) = pubkey(&["--role", "root"]);
    assert_eq!(
        root,
        "did:key:z6Mkow7SaUdDpF7CWySNGDqtQPnLiNyyZU319EvCPsGLkMVh"
    );
    assert!(path.contains("m/44'/7368'/0'/0'"), "{path}");
    assert_eq!(pubkey(&["--role", "root"]).0, root);

    let (catalog, _) = pubkey(&["--role", "catalog"]);
    assert_eq!(
        catalog,
        "did:key:z6Mkr63gmgkXrPCT39TBeV7rDdDqJFGLUHEHMBjcHx2n98Tx"
    );
    let (catalog, path) = pubkey(&["--role", "catalog", "--index", "3"]);
    assert!(path.contains("m/44'/7368'/1'/3'"), "{path}");
    assert_ne!(catalog, root);
    let (developer, path) = pubkey(&["--role", "developer"]);
    assert_eq!(
        developer,
        "did:key:z6MkjSyHiayvam1CMxMncFrviidwde88N1d8ChpJtHSjTbDY"
    );
    assert!(path.contains("m/44'/7368'/2'/0'"), "{path}");
    assert_ne!(developer, root);

    // Messy whitespace and capitals from a paper backup give the same key.
    let messy = format!("  {}\n", TEST_MNEMONIC.to_uppercase().replace(' ', "  \n"));
    let out = run(&["pubkey", "--role", "root"], Some(&messy));
    assert_eq!(stdout(&out).trim(), root, "{}", stderr(&out));

    let pass = dir.path().join("pass");
    write_secret(&pass, "TREZOR\n");
    let (with_pass, _) = pubkey(&["--role", "root", "--passphrase-file", s(&pass)]);
    assert_eq!(
        with_pass,
        "did:key:z6Mkhc1R4q9qFBQZLY3P43t8qSTZFvkmy8aqseduNaQYVWvN"
    );

    // BIP39 hashes the NFKD form: a composed and a decomposed "é" are the same passphrase.
    let expected = "did:key:z6MkeuKge8VsK4kdVMqr21LwGCTJSVjgEssvSAR6KvMaBKsF";
    for spelling in ["caf\u{e9}", "cafe\u{301}"] {
        write_secret(&pass, spelling);
        let (key, _) = pubkey(&["--role", "root", "--passphrase-file", s(&pass)]);
        assert_eq!(key, expected, "{spelling:?}");
    }
}

#[test]
fn full_ceremony_root_then_two_of_two_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Keyholder::new(dir.path(), "alice");
    let bob = Keyholder::new(dir.path(), "bob");
    let root = dir.path().join("root.json");
    let (alice_root, alice_cat, bob_cat) =
        (alice.did("root"), alice.did("catalog"), bob.did("catalog"));
    root_init(
        &root,
        "1",
        &[&alice_root],
        "1",
        &[&alice_cat, &bob_cat],
        "2",
    );

    // Unsigned: not a trust anchor yet.
    let report = fails(&["verify", s(&root)], None);
    assert!(report.contains("threshold is 1"), "{report}");

    // Alice signs the root with her mnemonic piped on stdin.
    let words = std::fs::read_to_string(&alice.mnemonic_file).unwrap();
    let out = run(&["sign", s(&root), "--role", "root"], Some(&words));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("signed by {alice_root}")),
        "{}",
        stderr(&out)
    );
    let report = ok(&["verify", s(&root)], None);
    assert!(
        report.contains("result: VALID: root version 1 as a trust anchor"),
        "{report}"
    );
    assert!(
        report.contains(&format!("{alice_root}  valid, in root role of root v1")),
        "{report}"
    );

    // A catalog signed by Alice alone does not meet the 2-of-2 threshold.
    let catalog = dir.path().join("catalog.json");
    write_catalog(&catalog, 1);
    alice.sign(&catalog, "catalog");
    let report = fails(&["verify", s(&catalog), "--root", s(&root)], None);
    assert!(report.contains(&alice_cat), "{report}");
    assert!(
        report.contains("1 of 2 key(s) signed, 2 needed: NOT MET"),
        "{report}"
    );
    assert!(
        report.contains("catalog role: 1 valid signature(s) from distinct keys, threshold is 2"),
        "{report}"
    );

    // Bob signs in his own session; both signatures are kept.
    bob.sign(&catalog, "catalog");
    let report = ok(&["verify", s(&catalog), "--root", s(&root)], None);
    assert!(
        report.contains(&alice_cat) && report.contains(&bob_cat),
        "{report}"
    );
    assert!(
        report.contains("2 of 2 key(s) signed, 2 needed: met"),
        "{report}"
    );
    assert!(
        report.contains("result: VALID: catalog version 1 under root version 1"),
        "{report}"
    );

    // Signing again with the same key replaces, never duplicates.
    bob.sign(&catalog, "catalog");
    let envelope = Envelope::from_bytes(&std::fs::read(&catalog).unwrap()).unwrap();
    assert_eq!(envelope.signatures.len(), 2);

    // A catalog without --root cannot be judged.
    let err = fails(&["verify", s(&catalog)], None);
    assert!(err.contains("--root"), "{err}");
}

#[test]
fn signatures_outside_the_role_are_marked_and_wrong_role_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_alice, root) = alice_anchor(dir.path());
    let mallory = Keyholder::new(dir.path(), "mallory");

    // Signing a catalog with a root key would never count: refused before any mnemonic is read.
    let catalog = dir.path().join("catalog.json");
    write_catalog(&catalog, 1);
    let err = fails(&["sign", s(&catalog), "--role", "root"], None);
    assert!(err.contains("sign it with --role catalog"), "{err}");

    mallory.sign(&catalog, "catalog");
    let report = fails(&["verify", s(&catalog), "--root", s(&root)], None);
    assert!(
        report.contains(&format!(
            "{}  valid, NOT IN ROLE: does not count",
            mallory.did("catalog")
        )),
        "{report}"
    );
}

#[test]
fn tampered_payload_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, root) = alice_anchor(dir.path());
    let catalog = dir.path().join("catalog.json");
    write_catalog(&catalog, 1);
    alice.sign(&catalog, "catalog");
    ok(&["verify", s(&catalog), "--root", s(&root)], None);

    // Same signatures, payload changed to point nodes at another origin.
    let signed = Envelope::from_bytes(&std::fs::read(&catalog).unwrap()).unwrap();
    let payload = String::from_utf8(signed.payload_bytes().unwrap()).unwrap();
    let evil = payload.replace("http://127.0.0.1:1", "http://127.0.0.1:2");
    assert_ne!(payload, evil);
    let mut tampered = Envelope::unsigned(PayloadType::Catalog, evil.as_bytes());
    tampered.signatures = signed.signatures.clone();
    let tampered_file = dir.path().join("tampered.json");
    std::fs::write(&tampered_file, tampered.to_bytes()).unwrap();
    let report = fails(&["verify", s(&tampered_file), "--root", s(&root)], None);
    assert!(report.contains("BAD SIGNATURE"), "{report}");
    assert!(
        report.contains("not valid: catalog role: 0 valid signature(s)"),
        "{report}"
    );

    // The root envelope's payload is just as bound.
    let signed_root = Envelope::from_bytes(&std::fs::read(&root).unwrap()).unwrap();
    let root_payload = String::from_utf8(signed_root.payload_bytes().unwrap()).unwrap();
    let mut tampered_root = Envelope::unsigned(
        PayloadType::Root,
        root_payload
            .replace("\"version\": 1", "\"version\": 7")
            .as_bytes(),
    );
    tampered_root.signatures = signed_root.signatures;
    let tampered_root_file = dir.path().join("tampered-root.json");
    std::fs::write(&tampered_root_file, tampered_root.to_bytes()).unwrap();
    let report = fails(&["verify", s(&tampered_root_file)], None);
    assert!(
        report.contains("root role: 0 valid signature(s)"),
        "{report}"
    );
}

#[test]
fn root_rotation_needs_old_and_new_root_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, v1) = alice_anchor(dir.path());
    let carol = Keyholder::new(dir.path(), "carol");
    let v2 = dir.path().join("root-v2.json");
    // Carol takes over the root role.
    root_init(
        &v2,
        "2",
        &[&carol.did("root")],
        "1",
        &[&alice.did("catalog")],
        "1",
    );
    carol.sign(&v2, "root");

    // On its own, v2 meets its own threshold; as a rotation it also needs Alice.
    ok(&["verify", s(&v2)], None);
    let report = fails(&["verify", s(&v2), "--root", s(&v1)], None);
    assert!(
        report.contains("root role of previous root v1: 0 of 1"),
        "{report}"
    );

    let out = run(
        &[
            "sign",
            s(&v2),
            "--role",
            "root",
            "--mnemonic-file",
            s(&alice.mnemonic_file),
        ],
        None,
    );
    assert!(
        stderr(&out).contains("not in this root's root role"),
        "{}",
        stderr(&out)
    );
    let report = ok(&["verify", s(&v2), "--root", s(&v1)], None);
    assert!(
        report.contains("result: VALID: rotation from root version 1 to 2"),
        "{report}"
    );

    // Skipping a version is refused with the registry's reason.
    let v3 = dir.path().join("root-v3.json");
    root_init(
        &v3,
        "3",
        &[&carol.did("root")],
        "1",
        &[&alice.did("catalog")],
        "1",
    );
    alice.sign(&v3, "root");
    carol.sign(&v3, "root");
    let err = fails(&["verify", s(&v3), "--root", s(&v1)], None);
    assert!(err.contains("must go to version 2, got version 3"), "{err}");
}

#[test]
fn root_init_validates_and_does_not_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Keyholder::new(dir.path(), "alice");
    let root = dir.path().join("root.json");
    let (r, c) = (alice.did("root"), alice.did("catalog"));
    let base = [
        "root",
        "init",
        "--out",
        s(&root),
        "--root-key",
        r.as_str(),
        "--catalog-key",
        c.as_str(),
    ];

    let mut too_high = base.to_vec();
    too_high.extend([
        "--root-threshold",
        "2",
        "--catalog-threshold",
        "1",
        "--expires-in-days",
        "30",
    ]);
    let err = fails(&too_high, None);
    assert!(
        err.contains("roles.root.threshold: must be between 1 and the number of keys (1)"),
        "{err}"
    );

    let mut bad_key = base.to_vec();
    bad_key[5] = "did:key:nope";
    bad_key.extend([
        "--root-threshold",
        "1",
        "--catalog-threshold",
        "1",
        "--expires-in-days",
        "30",
    ]);
    let err = fails(&bad_key, None);
    assert!(err.contains("--root-key"), "{err}");

    let mut good = base.to_vec();
    good.extend([
        "--root-threshold",
        "1",
        "--catalog-threshold",
        "1",
        "--expires",
        "2100-01-01T00:00:00Z",
    ]);
    ok(&good, None);
    let envelope = Envelope::from_bytes(&std::fs::read(&root).unwrap()).unwrap();
    envelope.expect_type(PayloadType::Root).unwrap();
    assert!(envelope.signatures.is_empty());

    let err = fails(&good, None);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn sign_wraps_a_bare_catalog_document() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, root) = alice_anchor(dir.path());

    let origin = Origin {
        http: "http://127.0.0.1:1".into(),
        iroh: "cd".repeat(32),
    };
    let bare = Catalog::new(4, Utc::now() + Duration::days(7), None, origin, vec![])
        .unwrap()
        .to_json();
    let bare_file = dir.path().join("catalog-bare.json");
    let signed_file = dir.path().join("catalog-signed.json");
    std::fs::write(&bare_file, &bare).unwrap();
    ok(
        &[
            "sign",
            s(&bare_file),
            "--role",
            "catalog",
            "--out",
            s(&signed_file),
            "--mnemonic-file",
            s(&alice.mnemonic_file),
        ],
        None,
    );
    // --out leaves the input untouched, and the exact bytes are what got signed.
    assert_eq!(std::fs::read(&bare_file).unwrap(), bare);
    let envelope = Envelope::from_bytes(&std::fs::read(&signed_file).unwrap()).unwrap();
    assert_eq!(envelope.payload_bytes().unwrap(), bare);
    let report = ok(&["verify", s(&signed_file), "--root", s(&root)], None);
    assert!(report.contains("catalog version 4"), "{report}");
}

#[test]
fn review_shows_what_a_catalog_changes_before_it_is_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, root) = alice_anchor(dir.path());

    // Version 1, signed: what nodes hold now.
    let old = dir.path().join("catalog-v1.json");
    write_catalog_with(
        &old,
        1,
        None,
        vec![
            catalog_app("hello", "1.0.0", 'a', ""),
            catalog_app("gone", "2.0.0", 'a', ""),
        ],
    );
    alice.sign(&old, "catalog");
    ok(&["verify", s(&old), "--root", s(&root)], None);
    let old_hash = archy_registry::catalog_link(
        &archy_registry::Envelope::from_bytes(&std::fs::read(&old).unwrap()).unwrap(),
    )
    .unwrap();

    // Version 2: hello asks for more, gone goes, extra arrives.
    let new = dir.path().join("catalog-v2.json");
    write_catalog_with(
        &new,
        2,
        Some(old_hash.clone()),
        vec![
            catalog_app(
                "hello",
                "1.1.0",
                'b',
                "    capabilities: [NET_ADMIN]\n    network: host\n",
            ),
            catalog_app("extra", "0.1.0", 'c', ""),
        ],
    );
    let args = ["review", s(&new), "--previous", s(&old)];
    let report = ok(&args, None);
    for line in [
        format!("   {}: catalog version 2, 2 app(s), expires ", s(&new)),
        format!(
            "     previous {old_hash} = payload blake3 of {}: the hash chain holds",
            s(&old)
        ),
        "   apps: 1 added, 1 removed, 1 changed, 0 unchanged".into(),
        "     + app extra 0.1.0 (new)".into(),
        "!!       port host 18080/tcp -> container 8080".into(),
        "     - app gone 2.0.0 (removed)".into(),
        "     ~ app hello 1.0.0 -> 1.1.0".into(),
        format!(
            "       artifact image: blake3 {} -> {}",
            "a".repeat(64),
            "b".repeat(64)
        ),
        "!!     container web: network: app -> HOST".into(),
        "!!     container web: capability added: NET_ADMIN".into(),
    ] {
        assert!(report.contains(&line), "{line:?} missing:\n{report}");
    }
    // Apps in id order, and the same text every time.
    let (extra, gone, hello) = (
        report.find("app extra").unwrap(),
        report.find("app gone").unwrap(),
        report.find("app hello").unwrap(),
    );
    assert!(extra < gone && gone < hello, "{report}");
    assert_eq!(report, ok(&args, None));

    // The payload hash the review names is the one `sign` shows the keyholder.
    let payload = Envelope::from_bytes(&std::fs::read(&new).unwrap())
        .unwrap()
        .payload_bytes()
        .unwrap();
    let payload_hash = blake3_hex(&payload);
    assert!(
        report.contains(&format!("it must show payload blake3 {payload_hash}")),
        "{report}"
    );
    let out = run(
        &[
            "sign",
            s(&new),
            "--role",
            "catalog",
            "--mnemonic-file",
            s(&alice.mnemonic_file),
        ],
        None,
    );
    assert!(
        stderr(&out).contains(&format!("payload blake3 {payload_hash}")),
        "{}",
        stderr(&out)
    );
    ok(&["verify", s(&new), "--root", s(&root)], None);

    // Without --previous, every app is new and all its permissions are listed.
    let alone = ok(&["review", s(&new)], None);
    assert!(
        alone.contains(&format!(
            "previous {old_hash} (not checked: give --previous OLD_CATALOG)"
        )),
        "{alone}"
    );
    assert!(alone.contains("     + app hello 1.1.0 (new)"), "{alone}");
    assert!(alone.contains("!!       capability NET_ADMIN"), "{alone}");
    assert!(alone.contains("!!       network: HOST"), "{alone}");

    // A catalog that does not name the one before it is called out.
    let unchained = dir.path().join("catalog-unchained.json");
    write_catalog_with(&unchained, 2, Some("f".repeat(64)), vec![]);
    let report = ok(&["review", s(&unchained), "--previous", s(&old)], None);
    assert!(
        report.contains(&format!(
            "!!   previous {} does NOT name {} (its payload blake3 is {old_hash})",
            "f".repeat(64),
            s(&old)
        )),
        "{report}"
    );

    // Only catalogs are reviewed.
    let err = fails(&["review", s(&root)], None);
    assert!(err.contains("not a catalog"), "{err}");
}

#[test]
fn root_rotate_replaces_a_compromised_key_under_old_and_new_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let [alice, bob, carol, dave] =
        ["alice", "bob", "carol", "dave"].map(|name| Keyholder::new(dir.path(), name));
    let (a, b, c, d) = (
        alice.did("root"),
        bob.did("root"),
        carol.did("root"),
        dave.did("root"),
    );
    let catalog_key = alice.did("catalog");
    let v1 = dir.path().join("root-v1.json");
    root_init(&v1, "1", &[&a, &b, &c], "2", &[&catalog_key], "1");
    alice.sign(&v1, "root");
    bob.sign(&v1, "root");
    ok(&["verify", s(&v1)], None);

    // Carol's root key is compromised: rotate it out and Dave in. The thresholds and
    // the catalog role are not given, so they carry over.
    let v2 = dir.path().join("root-v2.json");
    let rotate = |out: &Path, previous: &Path, extra: &[&str]| {
        let mut args = vec!["root", "rotate", "--previous", s(previous), "--out", s(out)];
        args.extend(extra);
        run(&args, None)
    };
    let out = rotate(
        &v2,
        &v1,
        &[
            "--root-key",
            &a,
            "--root-key",
            &b,
            "--root-key",
            &d,
            "--expires-in-days",
            "365",
        ],
    );
    let told = stderr(&out);
    assert!(out.status.success(), "{told}");
    for line in [
        format!(
            "wrote unsigned root version 2 to {}, rotating from root version 1",
            s(&v2)
        ),
        format!("    {d}  (new)"),
        format!("    {c}  (ROTATED OUT of the root role)"),
        "signed by 2 of root v1's 3 root key(s) AND 2 of its own 3".into(),
        format!("`archy-sign verify {} --root {}`", s(&v2), s(&v1)),
    ] {
        assert!(told.contains(&line), "{line:?} missing:\n{told}");
    }
    let parse = |path: &Path| {
        let envelope = Envelope::from_bytes(&std::fs::read(path).unwrap()).unwrap();
        (
            Root::from_json(&envelope.payload_bytes().unwrap()).unwrap(),
            envelope,
        )
    };
    let (root1, _) = parse(&v1);
    let (root2, envelope2) = parse(&v2);
    assert!(envelope2.signatures.is_empty());
    assert_eq!(root2.version, 2);
    assert_eq!(root2.roles.root.keyids, [a.clone(), b.clone(), d.clone()]);
    assert_eq!(root2.roles.root.threshold, 2);
    assert_eq!(root2.roles.catalog, root1.roles.catalog);
    assert!(
        !root2.keys.contains_key(&c),
        "Carol's key must leave the root"
    );

    // Alice and compromised Carol: root v1's threshold is met, root v2's is not,
    // because Carol's signature no longer counts there.
    let forged = dir.path().join("root-v2-forged.json");
    std::fs::copy(&v2, &forged).unwrap();
    alice.sign(&forged, "root");
    carol.sign(&forged, "root");
    let report = fails(&["verify", s(&forged), "--root", s(&v1)], None);
    assert!(
        report.contains("root role of previous root v1: 2 of 3 key(s) signed, 2 needed: met"),
        "{report}"
    );
    assert!(
        report.contains("root role of root v2: 1 of 3 key(s) signed, 2 needed: NOT MET"),
        "{report}"
    );
    assert!(report.contains("result: NOT VALID"), "{report}");

    // Alice and Dave: root v2's threshold is met (it would pass as a fresh anchor),
    // but only one of root v1's keys vouches for it: not a rotation yet.
    alice.sign(&v2, "root");
    dave.sign(&v2, "root");
    ok(&["verify", s(&v2)], None);
    let report = fails(&["verify", s(&v2), "--root", s(&v1)], None);
    assert!(
        report.contains("root role of previous root v1: 1 of 3 key(s) signed, 2 needed: NOT MET"),
        "{report}"
    );

    // Bob completes both thresholds.
    bob.sign(&v2, "root");
    let report = ok(&["verify", s(&v2), "--root", s(&v1)], None);
    assert!(
        report.contains("result: VALID: rotation from root version 1 to 2"),
        "{report}"
    );

    // The yearly renewal: nothing given but the expiry, everything carries over.
    let v3 = dir.path().join("root-v3.json");
    let out = rotate(&v3, &v2, &["--expires", "2100-01-01T00:00:00Z"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (root3, _) = parse(&v3);
    assert_eq!((root3.version, &root3.roles), (3, &root2.roles));
    alice.sign(&v3, "root");
    bob.sign(&v3, "root");
    ok(&["verify", s(&v3), "--root", s(&v2)], None);
    // Root 3 against root 1 skips a version: refused, though Alice and Bob are in both.
    let err = fails(&["verify", s(&v3), "--root", s(&v1)], None);
    assert!(err.contains("must go to version 2, got version 3"), "{err}");

    // Refusals: an unsigned previous root, overwriting the previous root, and a
    // carried-over threshold that no longer fits the keys given.
    let unsigned = dir.path().join("root-unsigned.json");
    root_init(&unsigned, "1", &[&a], "1", &[&catalog_key], "1");
    let out = rotate(
        &dir.path().join("x.json"),
        &unsigned,
        &["--expires-in-days", "9"],
    );
    assert!(
        stderr(&out).contains("not a validly signed root"),
        "{}",
        stderr(&out)
    );
    let out = rotate(&v2, &v2, &["--expires-in-days", "9", "--force"]);
    assert!(
        stderr(&out).contains("that is the previous root"),
        "{}",
        stderr(&out)
    );
    let out = rotate(
        &dir.path().join("y.json"),
        &v2,
        &["--root-key", &a, "--expires-in-days", "9"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "root role: the threshold 2 carried over from root v2 is more than the 1 key(s) \
             given; give --root-threshold"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("y.json").exists());
    // Nothing overwrote the signed root 2.
    ok(&["verify", s(&v2), "--root", s(&v1)], None);
}
