//! The node's internal values (swarm counters, orchestrator states, sqlite rows) in the
//! API contract's terms (`archy_api`). One function per type, field by field, so a field
//! added on either side is a compile error here rather than a silent gap on the wire.

use archy_api as wire;

use crate::db;

pub(super) fn container_state(s: archy_orchestrator::ContainerState) -> wire::ContainerState {
    use archy_orchestrator::ContainerState as S;
    match s {
        S::Created => wire::ContainerState::Created,
        S::Running => wire::ContainerState::Running,
        S::Paused => wire::ContainerState::Paused,
        S::Stopping => wire::ContainerState::Stopping,
        S::Exited => wire::ContainerState::Exited,
        S::Stopped => wire::ContainerState::Stopped,
        S::Dead => wire::ContainerState::Dead,
        S::Unknown => wire::ContainerState::Unknown,
    }
}

pub(super) fn container(c: archy_orchestrator::ContainerRuntime) -> wire::ContainerRuntime {
    wire::ContainerRuntime {
        name: c.name,
        state: container_state(c.state),
    }
}

pub(super) fn limits(l: archy_orchestrator::LimitSupport) -> wire::LimitSupport {
    let archy_orchestrator::LimitSupport {
        memory,
        cpu,
        pids,
        reason,
    } = l;
    wire::LimitSupport {
        memory,
        cpu,
        pids,
        reason,
    }
}

fn fallbacks(f: archy_swarm::FallbackCounts) -> wire::FallbackCounts {
    let archy_swarm::FallbackCounts {
        peer_connect,
        peer_stall,
        peer_slow,
        peer_bad_data,
        peer_missing,
        peer_error,
        origin_iroh_failed,
    } = f;
    wire::FallbackCounts {
        peer_connect,
        peer_stall,
        peer_slow,
        peer_bad_data,
        peer_missing,
        peer_error,
        origin_iroh_failed,
    }
}

fn hash_metrics(h: archy_swarm::HashMetrics) -> wire::HashMetrics {
    let archy_swarm::HashMetrics {
        bytes_from_origin_iroh,
        bytes_from_origin_http,
        bytes_from_peers,
        bytes_served_iroh,
        bytes_served_http,
        fallbacks: f,
        verification_failures,
        strikes,
    } = h;
    wire::HashMetrics {
        bytes_from_origin_iroh,
        bytes_from_origin_http,
        bytes_from_peers,
        bytes_served_iroh,
        bytes_served_http,
        fallbacks: fallbacks(f),
        verification_failures,
        strikes,
    }
}

pub(super) fn swarm_metrics(m: archy_swarm::SwarmMetrics) -> wire::SwarmMetrics {
    let archy_swarm::SwarmMetrics {
        bytes_from_iroh,
        bytes_from_http,
        http_fallbacks,
        verification_failures,
        bytes_from_origin_iroh,
        bytes_from_peers,
        bytes_served_iroh,
        bytes_served_http,
        fallbacks: f,
        strikes,
        coalesced_fetches,
        detour_ms,
        per_hash,
    } = m;
    wire::SwarmMetrics {
        bytes_from_iroh,
        bytes_from_http,
        http_fallbacks,
        verification_failures,
        bytes_from_origin_iroh,
        bytes_from_peers,
        bytes_served_iroh,
        bytes_served_http,
        fallbacks: fallbacks(f),
        strikes,
        coalesced_fetches,
        detour_ms,
        per_hash: per_hash
            .into_iter()
            .map(|(hash, h)| (hash, hash_metrics(h)))
            .collect(),
    }
}

pub(super) fn strike(s: archy_swarm::Strike) -> wire::Strike {
    let archy_swarm::Strike { hash, peer, detail } = s;
    wire::Strike { hash, peer, detail }
}

pub(super) fn peer(p: archy_swarm::PeerAddr) -> wire::PeerAddr {
    wire::PeerAddr {
        id: p.id,
        addrs: p.addrs.iter().map(ToString::to_string).collect(),
        relay_url: p.relay_url,
    }
}

pub(super) fn alarm(a: db::Alarm) -> wire::Alarm {
    let db::Alarm {
        kind,
        message,
        raised_at,
    } = a;
    wire::Alarm {
        kind,
        message,
        raised_at,
    }
}

pub(super) fn market_row(r: db::MarketRow) -> wire::MarketRow {
    let db::MarketRow {
        author,
        app_id,
        event_id,
        created_at,
        version,
        name,
        did,
        withdrawn,
    } = r;
    wire::MarketRow {
        author,
        app_id,
        event_id,
        created_at,
        version,
        name,
        did,
        withdrawn: withdrawn.map(|(deletion, at)| wire::Withdrawal { deletion, at }),
    }
}

/// What one relay sent in a discovery pass.
pub(super) fn relay_report(relay: String, r: archy_marketplace::RelayReport) -> wire::RelayReport {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let archy_marketplace::RelayReport {
        examined,
        rejected,
        rejected_by_reason,
        forged,
        errors,
    } = r;
    wire::RelayReport {
        relay,
        examined: count(examined),
        rejected: count(rejected),
        rejected_by_reason: rejected_by_reason
            .into_iter()
            .map(|(reason, n)| (reason, count(n)))
            .collect(),
        forged: count(forged),
        errors,
    }
}

/// The publishers' own relays a pass used.
pub(super) fn outbox_relays(found: &archy_marketplace::Discovery) -> Vec<wire::OutboxRelay> {
    found
        .outbox
        .iter()
        .map(|(relay, publishers)| wire::OutboxRelay {
            relay: relay.clone(),
            publishers: publishers.clone(),
        })
        .collect()
}

/// The relays publishers announced that a pass did not use.
pub(super) fn outbox_refused(found: &archy_marketplace::Discovery) -> Vec<wire::OutboxRefusal> {
    found
        .outbox_refused
        .iter()
        .map(|r| wire::OutboxRefusal {
            publisher: r.publisher.clone(),
            relay: r.relay.clone(),
            reason: r.reason.clone(),
        })
        .collect()
}

/// A stored score; an explanation sqlite cannot give back as terms reads as none.
pub(super) fn score(s: db::ScoreRow) -> wire::ScoreRow {
    let db::ScoreRow {
        author,
        score,
        explanation,
        computed_at,
    } = s;
    wire::ScoreRow {
        author,
        score,
        explanation: serde_json::from_value(explanation).unwrap_or_default(),
        computed_at,
    }
}

/// What a verified manifest lets the app do, for the operator who approves it.
pub(super) fn permissions(m: &archy_registry::Manifest) -> wire::Permissions {
    use archy_registry::manifest::{NetworkMode, PidMode};
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    wire::Permissions {
        containers: m
            .containers
            .iter()
            .map(|c| wire::ContainerPermissions {
                name: c.name.clone(),
                ports: c
                    .ports
                    .iter()
                    .map(|p| wire::PortPermission {
                        host: p.host,
                        container: p.container,
                        protocol: p.protocol.as_str().to_owned(),
                    })
                    .collect(),
                volumes: c
                    .volumes
                    .iter()
                    .map(|v| wire::VolumePermission {
                        name: v.name.clone(),
                        path: v.path.clone(),
                        read_only: v.read_only,
                    })
                    .collect(),
                capabilities: c.capabilities.clone(),
                privileged: c.privileged,
                host_network: c.network == NetworkMode::Host,
                host_pid: c.pid == PidMode::Host,
                read_only_root: c.read_only_root,
                user: c.user.clone(),
            })
            .collect(),
        dependencies: m
            .dependencies
            .iter()
            .map(|d| format!("{} {}", d.id, d.version))
            .collect(),
        secrets: count(m.secrets.len()),
        disk_mb: m.resources.disk_mb,
        memory_mb: m.resources.memory_mb,
        millicpus: m.resources.millicpus,
        pids_limit: m.resources.pids_limit,
    }
}
