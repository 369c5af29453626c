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
    client_dns: Vec<String>,
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
            // With the resolver on, the gateway's tunnel address and the zone as search
            // domain (wg-quick passes non-IP entries to resolvconf as search domains);
            // without it, `network.dns` as written.
            client_dns: if spec.dns.enabled {
                vec![spec.gateway_address().to_string(), spec.dns.zone.clone()]
            } else {
                n.dns.iter().map(|d| d.to_string()).collect()
            },
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

    /// The `DNS =` entries of a client's config.
    pub fn client_dns(&self) -> &[String] {
        &self.client_dns
    }

    /// A client's wg-quick configuration: address `host`, the network's resolvers, the
    /// gateway as its one peer. Split tunnel routes the VPN network; `full_tunnel`
    /// routes everything, `::/0` too: the gateway carries no IPv6 (its firewall drops it
    /// from the tunnel), so the client's IPv6 goes nowhere instead of around the tunnel.
    pub fn client_config(
        &self,
        key: PrivateKey,
        host: Ipv4Addr,
        gateway_key: PublicKey,
        full_tunnel: bool,
    ) -> WgQuickConfig {
        let allowed_ips: Vec<IpNet> = if full_tunnel {
            vec![
                IpNet::V4(Ipv4Net::default()),
                IpNet::V6(ipnet::Ipv6Net::default()),
            ]
        } else {
            vec![self.cidr.net().into()]
        };
        let mut cfg = WgQuickConfig::default();
        cfg.interface.private_key = Some(key);
        cfg.interface.addresses = vec![self.peer_address(host).into()];
        cfg.interface.dns = self.client_dns.clone();
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
    fn a_client_config_routes_the_vpn_or_everything_and_resolves_through_the_tunnel() {
        let mut spec = Spec::new("vpn.example.org".parse().unwrap());
        spec.dns.enabled = true;
        let net = Network::new(&spec);
        let gw = PrivateKey::generate().public_key();
        let host = "10.7.7.5".parse().unwrap();
        let split = net
            .client_config(PrivateKey::generate(), host, gw, false)
            .render();
        assert!(split.contains("AllowedIPs = 10.7.7.0/24\n"), "{}", *split);
        assert!(
            split.contains(&format!("DNS = 10.7.7.1, {}", spec.dns.zone)),
            "{}",
            *split
        );
        let full = net
            .client_config(PrivateKey::generate(), host, gw, true)
            .render();
        assert!(full.contains("AllowedIPs = 0.0.0.0/0, ::/0\n"), "{}", *full);
        spec.dns.enabled = false;
        spec.network.dns = vec!["9.9.9.9".parse().unwrap()];
        assert_eq!(Network::new(&spec).client_dns(), ["9.9.9.9"]);
    }

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
