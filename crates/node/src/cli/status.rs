//! `archy status`: the node's trust state, catalog freshness and alarms.

use archy_api::StatusView;

use super::Target;
use super::print::json_or;

pub async fn run(target: &Target) -> anyhow::Result<()> {
    let status = target.client()?.status().await?;
    json_or(target.json, &status, print);
    Ok(())
}

fn print(v: &StatusView) {
    outln!("endpoint:  {}", v.endpoint_id);
    if v.publish_only {
        outln!("mode:      publish-only: no pinned root, no catalog, installs nothing");
        if let Some(url) = &v.blobs_url {
            outln!("blobs:     {url} (the origin of what this node publishes)");
        }
        for a in &v.alarms {
            outln!("ALARM {} at {}: {}", a.kind, a.raised_at, a.message);
        }
        return;
    }
    outln!("root:      version {}", v.root_version);
    match &v.catalog {
        Some(c) => {
            outln!(
                "catalog:   version {} from {}, expires {} ({} days left)",
                c.version,
                c.origin,
                c.expires,
                c.days_left
            );
            if c.missed_versions > 0 {
                outln!(
                    "           accepted across {} version(s) whose hash chain could not be checked (the origin no longer had them)",
                    c.missed_versions
                );
            }
            if let Some(warning) = &c.warning {
                outln!("WARNING:   {warning}");
            }
        }
        None => outln!("catalog:   none yet"),
    }
    let pull = &v.last_pull;
    outln!(
        "last pull: {} {}",
        pull.at.as_deref().unwrap_or("never"),
        pull.message
    );
    let swarm = &v.swarm;
    outln!(
        "swarm:     {} bytes over iroh, {} over HTTP, {} HTTP fallback(s), {} verification failure(s)",
        swarm.bytes_from_iroh,
        swarm.bytes_from_http,
        swarm.http_fallbacks,
        swarm.verification_failures
    );
    let limits = &v.resource_limits;
    let enforced: Vec<&str> = [
        ("memory", limits.memory),
        ("cpu", limits.cpu),
        ("pids", limits.pids),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| name)
    .collect();
    if enforced.len() < 3 {
        outln!(
            "limits:    enforced: {}; {}",
            if enforced.is_empty() {
                "none".to_owned()
            } else {
                enforced.join(", ")
            },
            limits.reason
        );
    }
    if let Some(m) = &v.market {
        let forged: u64 = m.relays.iter().map(|r| r.forged).sum();
        let refused: u64 = m.relays.iter().map(|r| r.rejected).sum();
        outln!(
            "market:    discovered {}: {} listed, {} withdrawn, {} refused, {} forged{} (`archy market status`)",
            m.at,
            m.listed,
            m.withdrawn,
            refused,
            forged,
            if m.incomplete { ", incomplete" } else { "" }
        );
    }
    for a in &v.alarms {
        outln!("ALARM {} at {}: {}", a.kind, a.raised_at, a.message);
    }
}
