use std::net::SocketAddr;
use std::str::FromStr;

use iroh::{EndpointAddr, EndpointId, RelayUrl};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where to dial a swarm node: its endpoint id, the socket addresses it listens on, and
/// the relay server it can be reached through (its home relay), when it uses one. The id
/// authenticates the connection (TLS with the node's key), so addresses learned from
/// anywhere are safe to try; a relay URL is checked first ([`crate::check_relay_url`]),
/// since dialing through it opens a connection to that host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddr {
    pub id: String,
    pub addrs: Vec<SocketAddr>,
    /// Absent in configs and tracker payloads from before relays (and with relays off), so
    /// they parse and read as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
}

impl PeerAddr {
    pub fn endpoint_id(&self) -> Result<EndpointId> {
        EndpointId::from_str(&self.id)
            .map_err(|e| Error::Endpoint(format!("{:?} is not an iroh endpoint id: {e}", self.id)))
    }

    /// The relay URL, checked; `None` when the peer names none.
    pub fn relay(&self) -> Result<Option<RelayUrl>> {
        self.relay_url
            .as_deref()
            .map(crate::check_relay_url)
            .transpose()
            .map_err(|e| Error::Endpoint(format!("peer {}: {e}", self.id)))
    }

    pub(crate) fn to_endpoint_addr(&self) -> Result<EndpointAddr> {
        let mut addr = EndpointAddr::new(self.endpoint_id()?);
        for a in &self.addrs {
            addr = addr.with_ip_addr(*a);
        }
        if let Some(relay) = self.relay()? {
            addr = addr.with_relay_url(relay);
        }
        Ok(addr)
    }
}
