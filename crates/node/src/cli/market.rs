//! `archy market`: third-party listings discovered on Nostr relays, their install, and the
//! keys the operator trusts.

use archy_api::MarketDetail;

use super::print::{self, json_or};
use super::{MarketCommand, Target, TrustCommand, progress};

pub async fn run(command: MarketCommand, target: &Target) -> anyhow::Result<()> {
    if let MarketCommand::Vouch(command) = command {
        return super::vouch::run(command, target).await;
    }
    let client = target.client()?;
    match command {
        MarketCommand::List => {
            let listings = client.market().await?;
            json_or(target.json, &listings, |listings| {
                for l in listings {
                    outln!(
                        "{:<16} {:<10} {:<24} by {} ({}…)",
                        l.app_id,
                        l.version,
                        l.name,
                        l.did,
                        l.author.get(..12).unwrap_or(&l.author)
                    );
                }
            });
        }
        MarketCommand::Trust { command } => match command {
            TrustCommand::List => {
                let keys = client.trusted_keys().await?;
                json_or(target.json, &keys, |keys| {
                    for k in keys {
                        outln!("{}  ({})", k.key, k.source);
                    }
                });
            }
            TrustCommand::Add { key } => {
                let added = client.trust_key(&key).await?;
                json_or(target.json, &added, |a| {
                    outln!(
                        "trusting {}: the publishers it follows (its kind-3 contact list) now \
                         score; `archy market discover` rescores. To vouch with this node's own \
                         key instead: `archy market follow NPUB`",
                        a.trusted
                    )
                });
            }
            TrustCommand::Remove { key } => {
                let removed = client.untrust_key(&key).await?;
                json_or(target.json, &removed, |r| {
                    outln!("no longer trusting {}", r.untrusted)
                });
            }
        },
        MarketCommand::Show { app } => {
            let details = client.market_show(&app).await?;
            json_or(target.json, &details, |details| {
                details.iter().for_each(print_detail)
            });
        }
        MarketCommand::Install {
            app,
            publisher,
            approve,
        } => {
            // The install is the node's operation: Ctrl-C detaches, it goes on.
            let started = client
                .market_install_operation(&app, publisher.as_deref(), approve)
                .await?;
            match progress::follow(target.json, started, "install", &app).await? {
                archy_api::OperationResult::App(installed) => {
                    json_or(target.json, &installed, print::app)
                }
                other => json_or(target.json, &other, |_| {}),
            }
        }
        MarketCommand::Vouch(_) => unreachable!("handled above"),
        MarketCommand::Discover => {
            let found = client.discover().await?;
            json_or(target.json, &found, |found| {
                outln!(
                    "{} publication(s) listed, {} withdrawn by their publisher",
                    found.listed,
                    found.withdrawn
                );
                for r in &found.rejected {
                    outln!("rejected {}: {}", r.event, r.reason);
                }
                found.relays.iter().for_each(print_relay);
                print_outbox(&found.outbox, &found.outbox_refused);
            });
        }
        MarketCommand::Status => {
            let status = client.status().await?;
            json_or(target.json, &status.market, |market| match market {
                Some(m) => {
                    outln!(
                        "last discovery {}: {} listed, {} withdrawn{}",
                        m.at,
                        m.listed,
                        m.withdrawn,
                        if m.incomplete {
                            " (incomplete: listings it did not see are kept)"
                        } else {
                            ""
                        }
                    );
                    m.relays.iter().for_each(print_relay);
                    print_outbox(&m.outbox, &m.outbox_refused);
                }
                None => outln!("no discovery yet (`archy market discover` runs one now)"),
            });
        }
    }
    Ok(())
}

/// The publishers' own relays (NIP-65) a pass used, and those it refused.
fn print_outbox(used: &[archy_api::OutboxRelay], refused: &[archy_api::OutboxRefusal]) {
    for o in used {
        let whose: Vec<&str> = o
            .publishers
            .iter()
            .map(|p| p.get(..16).unwrap_or(p))
            .collect();
        outln!(
            "outbox relay {} (for publisher {})",
            o.relay,
            whose.join(", ")
        );
    }
    for r in refused {
        outln!(
            "outbox relay {} of publisher {} not used: {}",
            r.relay,
            r.publisher.get(..16).unwrap_or(&r.publisher),
            r.reason
        );
    }
}

/// What one relay sent in a pass: counts, refusals by reason, forgeries, errors.
fn print_relay(r: &archy_api::RelayReport) {
    outln!(
        "relay {}: {} examined, {} refused, {} forged",
        r.relay,
        r.examined,
        r.rejected,
        r.forged
    );
    if !r.rejected_by_reason.is_empty() {
        let reasons: Vec<String> = r
            .rejected_by_reason
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        outln!("  refused: {}", reasons.join(", "));
    }
    for e in &r.errors {
        outln!("  error: {e}");
    }
}

/// One publisher's listing: who, the local id, the sandbox verdict, the score explained.
fn print_detail(d: &MarketDetail) {
    let l = &d.listing;
    outln!("{} {} ({}) by {}", l.app_id, l.version, l.name, l.did);
    outln!("  publisher: {}", l.author);
    if let Some(w) = &l.withdrawn {
        outln!(
            "  WITHDRAWN by its publisher at {} (NIP-09 deletion {}): it cannot be installed",
            print::unix_time(w.at),
            w.deletion
        );
    }
    if let Some(id) = &d.local_id {
        let installed = match &d.installed_version {
            Some(v) if l.withdrawn.is_none() && *v != l.version => {
                format!(
                    "  [installed: {v}; {} listed, `archy app update {id}`]",
                    l.version
                )
            }
            Some(v) => format!("  [installed: {v}]"),
            None => String::new(),
        };
        outln!("  installs as: {id}{installed}");
    }
    if !d.description.is_empty() {
        outln!("  {}", d.description);
    }
    outln!("  sandbox policy: {}", d.sandbox);
    if let Some(origin) = &d.origin {
        outln!("  origin: {origin}");
    }
    match &d.score {
        Some(score) => {
            outln!(
                "  trust score: {}/100 (install without --approve needs {})",
                score.score,
                d.threshold
            );
            for term in &score.explanation {
                outln!("    {:+6} {}", term.points, term.reason);
            }
        }
        None => outln!(
            "  trust score: not computed yet (counts as 0; needs --approve below {})",
            d.threshold
        ),
    }
}
