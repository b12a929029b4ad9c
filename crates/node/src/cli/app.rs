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
            relay_ca,
            origin_http,
        } => {
            let relays = archy_marketplace::RelaySet::new(relays, relay_tls(&relay_ca)?);
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
            json_or(target.json, &published, |published| {
                for a in &published.artifacts {
                    outln!("artifact {:<12} {} ({} bytes)", a.name, a.blake3, a.size);
                }
                outln!("event     {}", published.event_id);
                print_relays(&published.relays);
                let list = &published.relay_list;
                if let Some(id) = &list.event_id {
                    outln!(
                        "relay list {id} (NIP-65: nodes find your publications on these relays)"
                    );
                    print_relays(&list.relays);
                }
                if let Some(note) = &list.note {
                    outln!("{note}");
                }
                outln!(
                    "nodes install it as {} (`archy market install`)",
                    published.local_id
                );
                outln!(
                    "operators vouch for you with `archy market follow {}`",
                    identity.npub()
                );
            });
        }
        AppCommand::Unpublish {
            id,
            mnemonic_file,
            index,
            relays,
            relay_ca,
        } => {
            let tls = relay_tls(&relay_ca)?;
            let mnemonic = archy_node::publish::read_mnemonic_file(&mnemonic_file)?;
            let identity =
                archy_marketplace::DeveloperIdentity::from_mnemonic(&mnemonic, "", index)?;
            let relays = if relays.is_empty() {
                let settings = target
                    .client()?
                    .settings()
                    .await
                    .context("no --relay given, and your node's relays could not be read")?;
                settings.relays
            } else {
                relays
            };
            let relays = archy_marketplace::RelaySet::new(relays, tls);
            let done = archy_node::publish::unpublish(&identity, &id, &relays).await?;
            json_or(target.json, &done, |done| {
                for r in &done.lookup_errors {
                    eprintln!(
                        "note: {} was not asked which versions it holds: {}",
                        r.relay,
                        r.error.as_deref().unwrap_or("")
                    );
                }
                outln!("withdrawal {} of {}", done.event_id, done.app);
                outln!(
                    "names      every version up to now (coordinate) and {} held by the relays",
                    done.versions.len()
                );
                print_relays(&done.relays);
            });
            if !done.accepted() {
                anyhow::bail!(
                    "no relay accepted the withdrawal of {}: {}",
                    done.app,
                    archy_node::publish::failures(&done.relays)
                );
            }
        }
        AppCommand::Install { id, with_deps } => {
            let client = target.client()?;
            if with_deps {
                // What it will install, before it starts (on stderr: stdout is the result).
                // No question asked: --with-deps is the operator's yes, also in a script.
                let plan = client.install_plan(&id).await?;
                if !target.json {
                    eprintln!("{}", plan.in_words());
                }
            }
            let started = client.install_operation(&id, with_deps).await?;
            let result = progress::follow(target.json, started, "install", &id).await?;
            print_result(target, &result);
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
        AppCommand::Logs {
            id,
            container,
            tail,
            follow,
            since,
        } => {
            let client = target.client()?;
            let container = match container {
                Some(c) => c,
                // The app's first container, by the name its manifest gives it.
                None => {
                    let app = client.app(&id).await?;
                    let first =
                        app.containers
                            .first()
                            .map(|c| c.name.clone())
                            .ok_or_else(|| {
                                anyhow::anyhow!("{id} has no containers; name one with --container")
                            })?;
                    first
                        .strip_prefix(&format!("archy-{id}-"))
                        .unwrap_or(&first)
                        .to_owned()
                }
            };
            let mut lines = client
                .logs(&id, &container, tail, follow, since.as_deref())
                .await?;
            use futures::StreamExt;
            while let Some(line) = lines.next().await {
                let line = line?;
                if target.json {
                    outln!("{}", serde_json::to_string(&line)?);
                } else {
                    outln!("{}", line.line);
                }
            }
        }
        AppCommand::Adopt { id } => {
            let app = target.client()?.adopt(&id).await?;
            json_or(target.json, &app, |a| {
                outln!("adopted {} {}: the node manages it again", a.id, a.version);
                print::app(a);
            });
        }
        AppCommand::Update { id, approve } => {
            let started = target.client()?.update_operation(&id, approve).await?;
            let result = progress::follow(target.json, started, "update", &id).await?;
            print_result(target, &result);
        }
        AppCommand::Uninstall { id, purge } => {
            let started = target.client()?.uninstall_operation(&id, purge).await?;
            let what = if purge { "purge" } else { "uninstall" };
            let result = progress::follow(target.json, started, what, &id).await?;
            print_result(target, &result);
        }
        AppCommand::Watch { operation } => {
            let client = target.client()?;
            let id = operation_of(&client, &operation).await?;
            let view = client.operation(id).await?;
            if !target.json {
                eprintln!(
                    "operation {id}: {} of {} ({}, stage {})",
                    view.kind, view.app, view.state, view.stage
                );
            }
            let started = archy_api::StartedOperation {
                id: Some(id),
                events: client.operation_events(id).await?,
            };
            let result =
                progress::follow(target.json, started, view.kind.as_str(), &view.app).await?;
            print_result(target, &result);
        }
    }
    Ok(())
}

/// The CAs of `--relay-ca`, beside the public roots.
fn relay_tls(files: &[std::path::PathBuf]) -> anyhow::Result<archy_marketplace::RelayTls> {
    archy_marketplace::RelayTls::with_ca_files(files).context("--relay-ca")
}

/// One line per relay: ok, or the error naming it and why.
fn print_relays(relays: &[archy_node::publish::RelayOutcome]) {
    for r in relays {
        if r.accepted {
            outln!("relay      ok     {}", r.relay);
        } else {
            outln!(
                "relay      error  {}: {}",
                r.relay,
                r.error.as_deref().unwrap_or("refused")
            );
        }
    }
}

/// The operation `arg` names: its number, or an app's running (else latest) operation.
async fn operation_of(client: &archy_api::Client, arg: &str) -> anyhow::Result<u64> {
    if let Ok(id) = arg.parse::<u64>() {
        return Ok(id);
    }
    let operations = client.operations().await?;
    let of_app = || operations.iter().filter(|o| o.app == arg);
    of_app()
        .find(|o| o.state == archy_api::OperationState::Running)
        .or_else(|| of_app().next())
        .map(|o| o.id)
        .with_context(|| {
            format!("no operation of {arg:?} on the node (`archy app watch` takes an operation number or an app id)")
        })
}

/// An operation's result: the app, or what was removed.
fn print_result(target: &Target, result: &archy_api::OperationResult) {
    match result {
        archy_api::OperationResult::App(app) => json_or(target.json, app, print::app),
        archy_api::OperationResult::Uninstalled(removed) => json_or(target.json, removed, |r| {
            outln!(
                "{} uninstalled{}",
                r.uninstalled,
                if r.purged {
                    " and its data purged"
                } else {
                    "; its data is kept (use --purge to delete it)"
                }
            )
        }),
    }
}

fn read_manifest(path: &std::path::Path) -> anyhow::Result<archy_registry::Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    archy_registry::Manifest::from_yaml(&text).with_context(|| format!("{}", path.display()))
}
