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

/// The shortest prefix a tunnel network may have: a /16 (65,533 peers). A /18 holds the
/// 10,000 peers Proton is sized for with room to spare; a /16 is the largest block that
/// fits next to K3s's own /16s in 10.0.0.0/8, and all of 192.168.0.0/16. Anything wider
/// shadows more of the private space the hosts' own networks use, for peers no gateway
/// has been tested with (~29 kB a peer: a full /16 is already ~1.9 GB).
pub const MIN_PREFIX: u8 = 16;

/// Where a tunnel network may lie: RFC 1918's private ranges, and RFC 6598's shared
/// address space (100.64.0.0/10, what carrier NAT and other VPNs such as Tailscale use;
/// it is never routed on the Internet, and does not collide with home and office LANs,
/// which are almost always RFC 1918).
pub const PRIVATE_RANGES: [Ipv4Net; 4] = [
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
];

/// K3s's default cluster (pod) and service ranges (`--cluster-cidr`, `--service-cidr`;
/// k3s-io/k3s pkg/cli/cmds/server.go). The tunnel must not overlap them: the node's
/// routes to pods and services would fight the tunnel's.
pub const K3S_RANGES: [(&str, Ipv4Net); 2] = [
    (
        "K3s's pod range",
        Ipv4Net::new_assert(Ipv4Addr::new(10, 42, 0, 0), 16),
    ),
    (
        "K3s's service range",
        Ipv4Net::new_assert(Ipv4Addr::new(10, 43, 0, 0), 16),
    ),
];

/// Whether two networks share an address.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

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
    /// Whether this may be a gateway's tunnel network: a prefix of [`MIN_PREFIX`] or
    /// longer, inside one of [`PRIVATE_RANGES`], clear of [`K3S_RANGES`]. The message is
    /// one line saying what is wrong and what to use.
    pub fn check_tunnel_range(&self) -> Result<(), String> {
        let net = self.0;
        if net.prefix_len() < MIN_PREFIX {
            return Err(format!(
                "{net} is too large: use a /{MIN_PREFIX} or smaller (a /24 holds 253 peers, a /18 16,381); a wide range takes over routes the host needs (a /0 sends all its traffic into the tunnel)"
            ));
        }
        if !PRIVATE_RANGES.iter().any(|r| r.contains(&net)) {
            return Err(format!(
                "{net} is not a private range: use one inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10 (e.g. 10.7.7.0/24); a public range would send traffic for those Internet addresses into the tunnel"
            ));
        }
        if let Some((what, r)) = K3S_RANGES.iter().find(|(_, r)| overlaps(net, *r)) {
            return Err(format!(
                "{net} overlaps {what} {r}: choose a range outside 10.42.0.0/16 and 10.43.0.0/16 (e.g. 10.7.7.0/24)"
            ));
        }
        Ok(())
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
        let net: Ipv4Net = s
            .trim()
            .parse()
            .map_err(|_| CidrError::Syntax(crate::clip(s)))?;
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
    fn tunnel_ranges_are_private_clear_of_k3s_and_not_wider_than_a_16() {
        for good in [
            "10.7.7.0/24",
            "10.7.0.0/18",
            "10.8.0.0/16",
            "172.16.0.0/16",
            "172.31.255.0/30",
            "192.168.0.0/16",
            "100.64.0.0/16",
            "100.127.0.0/24",
            "10.41.255.0/24",
            "10.44.0.0/24",
        ] {
            let c: Cidr = good.parse().unwrap();
            assert_eq!(c.check_tunnel_range(), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("0.0.0.0/0", "too large"),
            ("10.0.0.0/8", "too large"),
            ("10.40.0.0/14", "too large"),
            ("172.16.0.0/12", "too large"),
            ("8.8.8.0/24", "not a private range"),
            ("203.0.113.0/24", "not a private range"),
            ("172.32.0.0/24", "not a private range"),
            ("100.128.0.0/24", "not a private range"),
            ("169.254.0.0/16", "not a private range"),
            ("127.0.0.0/16", "not a private range"),
            ("10.42.0.0/16", "overlaps K3s's pod range 10.42.0.0/16"),
            ("10.42.7.0/24", "overlaps K3s's pod range"),
            ("10.43.0.0/24", "overlaps K3s's service range 10.43.0.0/16"),
        ] {
            let c: Cidr = bad.parse().unwrap();
            let e = c.check_tunnel_range().unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
        // The 10,000-peer target fits a /18.
        let c: Cidr = "10.7.0.0/18".parse().unwrap();
        assert!(c.peer_capacity() >= 10_000);
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
