//! `archy catalog`: build an unsigned catalog (publisher side), list and pull the node's.

use anyhow::Context;
use archy_node::catalog_build::{self, BuildOptions};

use super::print::json_or;
use super::{CatalogCommand, Target};

pub async fn run(command: CatalogCommand, target: &Target) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Build {
            apps,
            artifacts,
            origin_http,
            origin_iroh,
            version,
            expires_in_days,
            previous,
            out,
        } => {
            let envelope = catalog_build::build(&BuildOptions {
                apps_dir: apps,
                artifacts_dir: artifacts,
                origin: archy_registry::Origin {
                    http: origin_http,
                    iroh: origin_iroh,
                },
                version,
                expires_in: chrono::Duration::days(expires_in_days),
                previous,
            })?;
            std::fs::write(&out, envelope.to_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote unsigned catalog version {version} to {}",
                out.display()
            );
        }
        CatalogCommand::List => {
            let apps = target.client()?.catalog_apps().await?;
            json_or(target.json, &apps, |apps| {
                for a in apps {
                    outln!(
                        "{:<16} {:<10} {}{}",
                        a.id,
                        a.version,
                        a.name,
                        if a.installed { "  [installed]" } else { "" }
                    );
                }
            });
        }
        CatalogCommand::Pull => {
            let pulled = target.client()?.pull_catalog().await?;
            json_or(target.json, &pulled, |p| outln!("{}", p.result));
        }
    }
    Ok(())
}
