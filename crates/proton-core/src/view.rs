//! The tunnel network as every consumer needs it, resolved once from the [`Spec`]
//! (the raw, serde-shaped form): the gateway's interface address, port, fwmark and MTU,
//! the keepalive peers are told, and the wg-quick configs Proton writes for the gateway,
//! a client and a worker. The spec's "0 means none" values become `Option`s here, once.

use crate::keys::{PrivateKey, PublicKey};
use crate::net::Cidr;
use crate::spec::{Endpoint, Spec};
use crate::wgconf::{PeerSection, WgQuickConfig};
use ipnet::{IpNet, Ipv4Net};
use std::net::Ipv4Addr;

/// `network.persistent_keepalive` as WireGuard takes it: `0` is none.
pub fn keepalive(raw: u16) -> Option<u16> {
    Some(raw).filter(|k| *k != 0)
}

/// The gateway's tunnel network, made once from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    cidr: Cidr,
    gateway: Ipv4Addr,
    gateway_name: String,
    endpoint: Endpoint,
    fwmark: Option<u32>,
    mtu: u16,
    keepalive: Option<u16>,
}

impl Network {
    pub fn new(spec: &Spec) -> Network {
        let n = &spec.network;
        Network {
            cidr: n.cidr,
            gateway: spec.gateway_address(),
            gateway_name: spec.gateway.name.clone(),
            endpoint: spec.gateway.endpoint.clone(),
            fwmark: Some(n.fwmark).filter(|m| *m != 0),
            mtu: n.mtu,
            keepalive: keepalive(n.persistent_keepalive),
        }
    }

    pub fn cidr(&self) -> &Cidr {
        &self.cidr
    }

    /// The gateway's interface address: its host address with the network's prefix.
    pub fn gateway_address(&self) -> Ipv4Net {
        self.cidr.with_host(self.gateway)
    }

    /// A peer's interface address: its host address with the network's prefix.
    pub fn peer_address(&self, host: Ipv4Addr) -> Ipv4Net {
        self.cidr.with_host(host)
    }

    /// The gateway's listen port (the public endpoint's).
    pub fn port(&self) -> u16 {
        self.endpoint.port
    }

    /// `None`: no fwmark (the spec's `0`/`off`).
    pub fn fwmark(&self) -> Option<u32> {
        self.fwmark
    }

    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// `None`: peers keep no keepalive (the spec's `0`).
    pub fn keepalive(&self) -> Option<u16> {
        self.keepalive
    }

    /// The gateway's wg-quick configuration, with `peers` as given.
    pub fn gateway_config(
        &self,
        key: PrivateKey,
        peers: impl IntoIterator<Item = PeerSection>,
    ) -> WgQuickConfig {
        let mut cfg = WgQuickConfig::default();
        cfg.interface.private_key = Some(key);
        cfg.interface.addresses = vec![self.gateway_address().into()];
        cfg.interface.listen_port = Some(self.port());
        cfg.interface.fwmark = self.fwmark;
        cfg.interface.mtu = Some(self.mtu);
        cfg.peers.extend(peers);
        cfg
    }

    /// A client's wg-quick configuration: address `host`, resolvers `dns`, the gateway
    /// as its one peer routing `allowed_ips`.
    pub fn client_config(
        &self,
        key: PrivateKey,
        host: Ipv4Addr,
        dns: Vec<String>,
        gateway_key: PublicKey,
        allowed_ips: Vec<IpNet>,
    ) -> WgQuickConfig {
        let mut cfg = WgQuickConfig::default();
        cfg.interface.private_key = Some(key);
        cfg.interface.addresses = vec![self.peer_address(host).into()];
        cfg.interface.dns = dns;
        cfg.interface.mtu = Some(self.mtu);
        let mut gw = PeerSection::new(gateway_key);
        gw.name = Some(format!("{} (gateway)", self.gateway_name));
        gw.endpoint = Some(self.endpoint.clone());
        gw.allowed_ips = allowed_ips;
        gw.persistent_keepalive = self.keepalive;
        cfg.peers.push(gw);
        cfg
    }
}

/// A worker's tunnel as the gateway's answer and the invitation give it (a worker has
/// no spec).
#[derive(Debug, Clone)]
pub struct WorkerNetwork<'a> {
    /// The worker's address with the network's prefix.
    pub address: Ipv4Net,
    pub network: &'a Cidr,
    pub mtu: u16,
    pub keepalive: Option<u16>,
    pub gateway_key: PublicKey,
    pub endpoint: &'a Endpoint,
}

impl WorkerNetwork<'_> {
    /// The worker's wg-quick configuration: the gateway is its one peer, for the network.
    pub fn config(&self, key: PrivateKey) -> WgQuickConfig {
        let mut conf = WgQuickConfig::default();
        conf.interface.private_key = Some(key);
        conf.interface.addresses = vec![self.address.into()];
        conf.interface.mtu = Some(self.mtu);
        let mut gw = PeerSection::new(self.gateway_key);
        gw.name = Some("gateway".into());
        gw.endpoint = Some(self.endpoint.clone());
        gw.allowed_ips = vec![self.network.net().into()];
        gw.persistent_keepalive = self.keepalive;
        conf.peers.push(gw);
        conf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_none_once() {
        assert_eq!(keepalive(0), None);
        assert_eq!(keepalive(25), Some(25));
        let mut spec = Spec::new("gw.example.org:51820".parse().unwrap());
        spec.network.fwmark = 0;
        spec.network.persistent_keepalive = 0;
        let n = Network::new(&spec);
        assert_eq!((n.fwmark(), n.keepalive()), (None, None));
        assert_eq!(
            n.gateway_address().to_string(),
            format!(
                "{}/{}",
                spec.gateway_address(),
                spec.network.cidr.net().prefix_len()
            )
        );
        assert_eq!(n.port(), 51820);
    }
}
