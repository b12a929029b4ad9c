//! `archy app`: install and manage apps on the node, and the developer side: validate and
//! render a manifest, publish a third-party app.

use std::time::Duration;

use anyhow::Context;

use super::print::{self, json_or};
use super::{AppCommand, Target, progress};

/// A publish uploads whole images to the node: give it an hour.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3600);

pub async fn run(command: AppCommand, target: &Target) -> anyhow::Result<()> {
    match command {
        AppCommand::Validate {
            manifest,
            third_party,
        } => {
            let m = read_manifest(&manifest)?;
            if third_party {
                m.check_sandbox_policy()
                    .with_context(|| format!("{}: sandbox policy", manifest.display()))?;
            }
            outln!(
                "{}: {} {} is valid{}",
                manifest.display(),
                m.id,
                m.version,
                if third_party {
                    " and passes the third-party sandbox policy"
                } else {
                    ""
                }
            );
        }
        AppCommand::Render {
            manifest,
            publish_address,
        } => {
            for line in archy_orchestrator::render(&read_manifest(&manifest)?, publish_address) {
                outln!("{line}");
            }
        }
        AppCommand::Publish {
            manifest,
            artifacts,
            mnemonic_file,
            index,
            relays,
            origin_http,
        } => {
            let m = read_manifest(&manifest)?;
            let mnemonic = archy_node::publish::read_mnemonic_file(&mnemonic_file)?;
            let identity =
                archy_marketplace::DeveloperIdentity::from_mnemonic(&mnemonic, "", index)?;
            let client = target.client_with_timeout(PUBLISH_TIMEOUT)?;
            let published = archy_node::publish::publish(archy_node::publish::PublishRequest {
                client: &client,
                manifest: m,
                artifacts: artifacts.into_iter().collect(),
                identity: &identity,
                relays: &relays,
                origin_http,
            })
            .await?;
            for a in &published.artifacts {
                outln!("artifact {:<12} {} ({} bytes)", a.name, a.blake3, a.size);
            }
            outln!("event     {}", published.event_id);
            outln!("relays    {}", published.accepted_by.join(", "));
            outln!(
                "nodes install it as {} (`archy market install`)",
                published.local_id
            );
        }
        AppCommand::Install { id, with_deps } => {
            let client = target.client()?;
            let bar = progress::bar(target.json);
            let installed = client
                .install(&id, with_deps, |p| progress::draw(&bar, p))
                .await;
            progress::finish(&bar, installed.is_ok());
            json_or(target.json, &installed?, print::app);
        }
        AppCommand::List => {
            let apps = target.client()?.apps().await?;
            json_or(target.json, &apps, |apps| apps.iter().for_each(print::app));
        }
        AppCommand::Status { id } => {
            json_or(target.json, &target.client()?.app(&id).await?, print::app);
        }
        AppCommand::Start { id } => {
            json_or(target.json, &target.client()?.start(&id).await?, print::app);
        }
        AppCommand::Stop { id } => {
            json_or(target.json, &target.client()?.stop(&id).await?, print::app);
        }
        AppCommand::Restart { id } => {
            let app = target.client()?.restart(&id).await?;
            json_or(target.json, &app, print::app);
        }
        AppCommand::Update { id, approve } => {
            let app = target.client()?.update(&id, approve).await?;
            json_or(target.json, &app, print::app);
        }
        AppCommand::Uninstall { id, purge } => {
            let removed = target.client()?.uninstall(&id, purge).await?;
            json_or(target.json, &removed, |_| {
                outln!(
                    "{id} uninstalled{}",
                    if purge {
                        " and its data purged"
                    } else {
                        "; its data is kept (use --purge to delete it)"
                    }
                )
            });
        }
    }
    Ok(())
}

fn read_manifest(path: &std::path::Path) -> anyhow::Result<archy_registry::Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    archy_registry::Manifest::from_yaml(&text).with_context(|| format!("{}", path.display()))
}
