//! Counts the inputs of a corpus directory that are valid manifests (YAML or JSON), i.e.
//! the ones that reach `create_args` in the `manifest_argv` target, and how many of
//! those carry option-like values:
//! `cargo run --example count_valid -- corpus-generated/manifest_argv`.

use archy_registry::Manifest;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: count_valid <corpus dir>");
    let (mut total, mut yaml, mut json, mut dashy) = (0, 0, 0, 0);
    for entry in std::fs::read_dir(&dir).expect("readable corpus dir") {
        let data = std::fs::read(entry.expect("entry").path()).expect("readable input");
        total += 1;
        let mut manifests = Vec::new();
        if let Ok(text) = std::str::from_utf8(&data)
            && let Ok(m) = Manifest::from_yaml(text)
        {
            yaml += 1;
            manifests.push(m);
        }
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&data)
            && let Ok(m) = Manifest::from_json_value(value)
        {
            json += 1;
            manifests.push(m);
        }
        if manifests.iter().any(|m| {
            m.containers.iter().any(|c| {
                c.command.iter().any(|a| a.starts_with('-'))
                    || c.env.values().any(|v| {
                        matches!(v, archy_registry::manifest::EnvValue::Plain(p)
                            if p.starts_with('-') || p.contains([':', ',', '=']))
                    })
            })
        }) {
            dashy += 1;
        }
    }
    println!(
        "{total} inputs: {yaml} valid YAML manifests, {json} valid JSON manifests, \
         {dashy} with option-like command arguments or env values"
    );
}
