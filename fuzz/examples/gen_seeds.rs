//! Writes the seed corpora into fuzz/corpus/<target>/ (deterministic; rerun to refresh).
//!     cd fuzz && cargo run --example gen_seeds

use std::fs;
use std::path::Path;

use archy_registry::{Envelope, Manifest, PayloadType, VerifiedCatalog};
use archy_registry_fuzz as fx;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    println!("{} ({} bytes)", path.display(), bytes.len());
}

fn main() {
    let root_env = fx::root_envelope();
    let catalog_env = fx::catalog_envelope();
    // The signed seeds reach the code behind signature checks.
    VerifiedCatalog::verify(&fx::VERIFIED_ROOT, &catalog_env).expect("seed catalog verifies");
    let signers = Envelope::from_bytes(&catalog_env)
        .unwrap()
        .valid_signers(fx::ALLOWED.iter());
    assert_eq!(signers.unwrap(), vec![fx::catalog_key().public()]);

    // envelope: a root and a catalog envelope (each verifies against one of the fixed
    // keys), and a manifest-typed envelope signed by both keys.
    write("envelope", "seed-root-envelope.json", &root_env);
    write("envelope", "seed-catalog-envelope.json", &catalog_env);
    let manifest_json = serde_json::to_vec(&fx::hello_manifest()).unwrap();
    let mut two = Envelope::unsigned(PayloadType::Manifest, &manifest_json);
    two.sign(&fx::root_key()).unwrap();
    two.sign(&fx::catalog_key()).unwrap();
    write(
        "envelope",
        "seed-manifest-envelope-two-sigs.json",
        &two.to_bytes(),
    );

    // root: the payload (for Root::from_json) and the self-signed anchor envelope.
    write("root", "seed-root.json", &fx::root().to_json());
    write("root", "seed-root-envelope.json", &root_env);

    // catalog: the payload (for Catalog::from_json) and the signed envelope, which
    // verifies against the fixed root.
    write("catalog", "seed-catalog.json", &fx::catalog().to_json());
    write("catalog", "seed-catalog-envelope.json", &catalog_env);

    // manifest: the authored YAML, its JSON form, and a richer YAML exercising env,
    // secrets, volumes, commands and depends_on (from the manifest.rs unit tests).
    write(
        "manifest",
        "seed-hello.yml",
        fx::HELLO_MANIFEST_YAML.as_bytes(),
    );
    write(
        "manifest",
        "seed-hello.json",
        &serde_json::to_vec_pretty(&fx::hello_manifest()).unwrap(),
    );
    Manifest::from_yaml(RICH_YAML).expect("the rich seed is a valid manifest");
    write("manifest", "seed-rich.yml", RICH_YAML.as_bytes());
}

const RICH_YAML: &str = r#"id: hello
name: Hello
version: 1.0.0-rc.1+build.5
artifacts:
  - name: image
    media_type: application/vnd.oci.image.layout.v1.tar
containers:
  - name: web
    image: { artifact: image }
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
    env:
      GREETING: hi
      PASSWORD: { secret: admin }
    ports: [{ container: 8080, host: 18080 }, { container: 53, host: 10053, protocol: udp }]
    volumes: [{ name: data, path: /data }, { name: cache, path: /cache, read_only: true }]
    capabilities: [NET_BIND_SERVICE]
    health: { http: { port: 8080, path: / } }
    depends_on: [db]
    user: "1000:1000"
  - name: db
    image: { reference: "docker.io/library/postgres@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
    health: { command: ["pg_isready"], retries: 5 }
    network: app
secrets: [{ name: admin, length: 24 }]
dependencies: [{ id: other-app, version: ">=1.2, <2" }]
resources: { disk_mb: 100 }
ui: { container: web, port: 8080 }
"#;
