//! `archy swarm status`: bytes by source, fallbacks, strikes, peers; `archy swarm fetch`:
//! one catalog artifact into the store, and where its bytes came from.

use archy_api::{SwarmFetch, SwarmStatus};

use super::Target;
use super::print::json_or;

pub async fn run(target: &Target) -> anyhow::Result<()> {
    let swarm = target.client()?.swarm().await?;
    json_or(target.json, &swarm, print);
    Ok(())
}

pub async fn fetch(target: &Target, hash: &str) -> anyhow::Result<()> {
    let fetched = target.client()?.swarm_fetch(hash).await?;
    json_or(target.json, &fetched, print_fetch);
    Ok(())
}

fn print_fetch(v: &SwarmFetch) {
    outln!(
        "blob:      {} ({} B, {})",
        v.hash,
        v.size,
        v.named_by.join(", ")
    );
    if v.already_present {
        outln!("held:      already in the store; nothing moved");
        return;
    }
    outln!(
        "received:  {} B from peers, {} B from the origin over iroh, {} B over HTTP, in {} ms{}",
        v.bytes_from_peers,
        v.bytes_from_origin_iroh,
        v.bytes_from_origin_http,
        v.elapsed_ms,
        if v.coalesced {
            " (joined a fetch already running)"
        } else {
            ""
        }
    );
    for p in &v.peer_paths {
        let how = match (p.direct_bytes > 0, p.relayed_bytes > 0) {
            (true, false) => "direct",
            (false, true) => "relayed",
            (true, true) => "relayed, then direct",
            (false, false) => "nothing received",
        };
        outln!(
            "peer:      {} {how}: {} B direct, {} B through the relay",
            p.peer,
            p.direct_bytes,
            p.relayed_bytes
        );
    }
    for f in &v.fallbacks {
        outln!("left:      {} ({}): {}", f.provider, f.reason, f.detail);
    }
}

fn print(v: &SwarmStatus) {
    let m = &v.metrics;
    outln!("endpoint:  {}", v.endpoint_id);
    if let Some(url) = &v.blobs_url {
        outln!("blobs:     {url}");
    }
    if let Some(url) = &v.relay_url {
        outln!("relay:     {url}");
    }
    outln!(
        "received:  {} B from the origin over iroh, {} B over HTTP, {} B from peers",
        m.bytes_from_origin_iroh,
        m.bytes_from_http,
        m.bytes_from_peers
    );
    outln!(
        "served:    {} B over iroh, {} B over HTTP",
        m.bytes_served_iroh,
        m.bytes_served_http
    );
    let mut reasons: Vec<(&str, u64)> = m
        .fallbacks
        .by_reason()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    reasons.sort();
    let reasons: Vec<String> = reasons
        .into_iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    outln!(
        "fallbacks: {} (HTTP fallbacks {}, detour {} ms, coalesced fetches {})",
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(", ")
        },
        m.http_fallbacks,
        m.detour_ms,
        m.coalesced_fetches
    );
    outln!(
        "integrity: {} verification failure(s), {} strike(s)",
        m.verification_failures,
        m.strikes
    );
    for st in &v.strikes {
        outln!("  strike: peer {} on {}: {}", st.peer, st.hash, st.detail);
    }
    for p in &v.peers {
        outln!(
            "peer:      {} {}{}",
            p.id,
            serde_json::to_string(&p.addrs).unwrap_or_default(),
            p.relay_url
                .as_ref()
                .map(|u| format!(" via {u}"))
                .unwrap_or_default()
        );
    }
    for (hash, h) in &m.per_hash {
        outln!(
            "blob {}…  origin {} B (HTTP {} B), peers {} B, served {} B, failures {}",
            hash.get(..16).unwrap_or(hash),
            h.bytes_from_origin_iroh,
            h.bytes_from_origin_http,
            h.bytes_from_peers,
            h.bytes_served_iroh.saturating_add(h.bytes_served_http),
            h.verification_failures
        );
    }
}
