//! The gateway's endpoint name to an address.

use proton_core::spec::Endpoint;
use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("resolving the gateway endpoint {endpoint}")]
    Lookup {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{endpoint} resolves to no address")]
    NoAddress { endpoint: String },
}

impl ResolveError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ResolveError::Lookup { .. } => None,
            ResolveError::NoAddress { .. } => Some("check the gateway's DNS name"),
        }
    }
}

/// The first IPv4 address of the endpoint (the tunnel runs over IPv4 NAT), else the
/// first of any family.
pub fn resolve(endpoint: &Endpoint) -> Result<SocketAddr, ResolveError> {
    let text = endpoint.to_string();
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            endpoint: text.clone(),
            source,
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or(ResolveError::NoAddress { endpoint: text })
}
