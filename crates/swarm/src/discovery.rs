//! Local-network discovery (opt-in, [`crate::SwarmConfig::local_discovery`]): swarm nodes
//! on one LAN find each other over mDNS (iroh's `iroh-mdns-address-lookup`, under a
//! service name of our own so only swarm nodes answer). Found nodes are candidates, no
//! more: the fetch policy verifies their bytes like anyone else's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use iroh::EndpointId;
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use tracing::debug;

use crate::{Error, PeerAddr, Result};

/// The mDNS service name swarm nodes advertise under.
pub const LOCAL_SERVICE_NAME: &str = "archy-swarm";

/// Swarm nodes seen on the local network, by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalPeers(Arc<Mutex<HashMap<EndpointId, PeerAddr>>>);

impl LocalPeers {
    pub(crate) fn list(&self) -> Vec<PeerAddr> {
        let mut peers: Vec<PeerAddr> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers
    }
}

/// The mDNS service for an endpoint with id `me` (to hand to the endpoint builder).
pub(crate) fn mdns(me: EndpointId) -> Result<MdnsAddressLookup> {
    MdnsAddressLookup::builder()
        .service_name(LOCAL_SERVICE_NAME)
        .build(me)
        .map_err(|e| Error::Endpoint(format!("local discovery (mDNS): {e}")))
}

/// Follows what `mdns` sees into a [`LocalPeers`] (the task ends with the service).
pub(crate) async fn follow(mdns: &MdnsAddressLookup, me: EndpointId) -> LocalPeers {
    let peers = LocalPeers::default();
    let mut events = mdns.subscribe().await;
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let mut map = seen.0.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                DiscoveryEvent::Discovered { endpoint_info, .. } => {
                    let addr = endpoint_info.into_endpoint_addr();
                    if addr.id == me {
                        continue;
                    }
                    // A LAN neighbour is reached directly: no relay URL is taken from it.
                    let peer = PeerAddr {
                        id: addr.id.to_string(),
                        addrs: addr.ip_addrs().copied().collect(),
                        relay_url: None,
                    };
                    debug!(peer = %peer.id, addrs = ?peer.addrs, "local swarm node found");
                    map.insert(addr.id, peer);
                }
                DiscoveryEvent::Expired { endpoint_id } => {
                    map.remove(&endpoint_id);
                }
                _ => {}
            }
        }
    });
    peers
}
