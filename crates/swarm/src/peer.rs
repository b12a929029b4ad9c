use std::net::SocketAddr;
use std::str::FromStr;

use iroh::{EndpointAddr, EndpointId};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where to dial a swarm node: its endpoint id and the socket addresses it listens on.
/// The id authenticates the connection (TLS with the node's key), so addresses learned
/// from anywhere are safe to try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddr {
    pub id: String,
    pub addrs: Vec<SocketAddr>,
}

impl PeerAddr {
    pub fn endpoint_id(&self) -> Result<EndpointId> {
        EndpointId::from_str(&self.id)
            .map_err(|e| Error::Endpoint(format!("{:?} is not an iroh endpoint id: {e}", self.id)))
    }

    pub(crate) fn to_endpoint_addr(&self) -> Result<EndpointAddr> {
        let mut addr = EndpointAddr::new(self.endpoint_id()?);
        for a in &self.addrs {
            addr = addr.with_ip_addr(*a);
        }
        Ok(addr)
    }
}
