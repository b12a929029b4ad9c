//! Manifest → `podman create` argv. Every manifest that parses and validates (YAML for
//! UTF-8 input, and JSON) is rendered with `create_args` for each container, with a loaded
//! image id or its pinned reference, on two publish addresses, and `argv_check` (a model of
//! Podman's option parser) must read the argv as exactly what the manifest says: no
//! manifest value may become a Podman option or change another one's meaning.
#![no_main]

use std::net::IpAddr;
use std::path::PathBuf;

use archy_orchestrator::argv_check::{self, Rendered};
use archy_orchestrator::{create_args, render};
use archy_registry::Manifest;
use libfuzzer_sys::fuzz_target;

const LOADED_IMAGE_ID: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(manifest) = Manifest::from_yaml(text)
    {
        exercise(&manifest);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(manifest) = Manifest::from_json_value(value)
    {
        exercise(&manifest);
    }
});

fn exercise(manifest: &Manifest) {
    manifest.validate().expect("a parsed manifest validates");
    for address in [IpAddr::from([127, 0, 0, 1]), IpAddr::from([0, 0, 0, 0])] {
        for c in &manifest.containers {
            let image = c
                .image
                .reference
                .clone()
                .unwrap_or_else(|| LOADED_IMAGE_ID.to_owned());
            let env_file = PathBuf::from(format!(
                "/var/lib/archy/apps/{}/env/{}.env",
                manifest.id, c.name
            ));
            let argv = create_args(manifest, c, &image, &env_file, address);
            let rendered = Rendered {
                image: &image,
                env_file: &env_file,
                publish_address: address,
            };
            if let Err(e) = argv_check::check_create(manifest, c, rendered, &argv) {
                panic!(
                    "container {:?}: {e}\nargv: {argv:?}\nmanifest: {}",
                    c.name,
                    serde_json::to_string(manifest).unwrap_or_default()
                );
            }
        }
        // The developer rendering of the same commands must not panic either.
        let _ = render(manifest, address);
    }
}
