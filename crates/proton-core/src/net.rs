//! The tunnel network and the host addresses in it.
//!
//! A [`Cidr`] is an IPv4 network such as `10.7.7.0/24`. The gateway takes the first host
//! address (`10.7.7.1`); peers get the others. The network and broadcast addresses are
//! never handed out. [`Cidr::first_free`] is the pure half of address allocation; the
//! store makes it race-free by running it inside one write transaction.

use ipnet::Ipv4Net;
use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The smallest network Proton accepts: a /30 has two host addresses, the gateway and
/// one peer.
pub const MAX_PREFIX: u8 = 30;

/// Why a network was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("`{0}` is not an IPv4 network in CIDR form (write it like 10.7.7.0/24)")]
    Syntax(String),
    #[error("`{text}` has host bits set: the network address is {network}")]
    HostBits { text: String, network: Ipv4Net },
    #[error(
        "/{0} is too small: it leaves no address for a peer after the gateway (use /{max} or larger, e.g. /24)",
        max = MAX_PREFIX
    )]
    TooSmall(u8),
}

/// An IPv4 tunnel network, e.g. `10.7.7.0/24`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(Ipv4Net);

impl Cidr {
    pub fn new(net: Ipv4Net) -> Result<Self, CidrError> {
        if net.prefix_len() > MAX_PREFIX {
            return Err(CidrError::TooSmall(net.prefix_len()));
        }
        if net.trunc() != net {
            return Err(CidrError::HostBits {
                text: net.to_string(),
                network: net.trunc(),
            });
        }
        Ok(Cidr(net))
    }

    pub fn net(&self) -> Ipv4Net {
        self.0
    }
    pub fn network(&self) -> Ipv4Addr {
        self.0.network()
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        self.0.broadcast()
    }
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }
    /// The gateway's address: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }
    /// Whether `addr` lies in the network (including network and broadcast).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.0.contains(&addr)
    }
    /// Whether `addr` may be given to a peer: inside, and neither network, broadcast
    /// nor gateway address.
    pub fn is_assignable(&self, addr: Ipv4Addr) -> bool {
        self.contains(addr)
            && addr != self.network()
            && addr != self.broadcast()
            && addr != self.gateway()
    }
    /// How many addresses peers can get (hosts minus the gateway).
    pub fn peer_capacity(&self) -> u64 {
        (1u64 << (32 - self.prefix_len())) - 3
    }
    /// Addresses peers may get, lowest first.
    pub fn assignable(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let first = u32::from(self.gateway()) + 1;
        let last = u32::from(self.broadcast()) - 1;
        (first..=last).map(Ipv4Addr::from)
    }
    /// The lowest assignable address not in `used`, so released addresses are reused.
    pub fn first_free(&self, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        self.assignable().find(|a| !used.contains(a))
    }
    /// `addr/prefix`, e.g. `10.7.7.1/24`, the form an interface address takes.
    pub fn with_host(&self, addr: Ipv4Addr) -> Ipv4Net {
        Ipv4Net::new(addr, self.prefix_len()).expect("prefix already validated")
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let net: Ipv4Net = s.trim().parse().map_err(|_| CidrError::Syntax(s.into()))?;
        Cidr::new(net)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({})", self.0)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_shape() {
        let c: Cidr = "10.7.7.0/24".parse().unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 7, 7, 1));
        assert_eq!(c.peer_capacity(), 253);
        let all: Vec<_> = c.assignable().collect();
        assert_eq!(all.first(), Some(&Ipv4Addr::new(10, 7, 7, 2)));
        assert_eq!(all.last(), Some(&Ipv4Addr::new(10, 7, 7, 254)));
        assert_eq!(all.len(), 253);
        assert!(!c.is_assignable(Ipv4Addr::new(10, 7, 7, 0)));
        assert!(!c.is_assignable(Ipv4Addr::new(10, 7, 7, 1)));
        assert!(!c.is_assignable(Ipv4Addr::new(10, 7, 7, 255)));
        assert!(!c.is_assignable(Ipv4Addr::new(10, 7, 8, 2)));
    }

    #[test]
    fn first_free_reuses_released_addresses_and_runs_out() {
        let c: Cidr = "10.0.0.0/29".parse().unwrap();
        let mut used = HashSet::new();
        while let Some(a) = c.first_free(&used) {
            used.insert(a);
        }
        assert_eq!(used.len() as u64, c.peer_capacity());
        used.remove(&Ipv4Addr::new(10, 0, 0, 4));
        assert_eq!(c.first_free(&used), Some(Ipv4Addr::new(10, 0, 0, 4)));
    }

    #[test]
    fn bad_networks_say_why() {
        assert!(matches!(
            "10.7.7.0/31".parse::<Cidr>(),
            Err(CidrError::TooSmall(31))
        ));
        assert!(matches!(
            "10.7.7.5/24".parse::<Cidr>(),
            Err(CidrError::HostBits { .. })
        ));
        assert!(matches!(
            "10.7.7.0".parse::<Cidr>(),
            Err(CidrError::Syntax(_))
        ));
        let msg = "10.7.7.5/24".parse::<Cidr>().unwrap_err().to_string();
        assert!(msg.contains("10.7.7.0/24"), "{msg}");
    }
}
