//! A peer's name and role: the words the CLI, the state DB and the status reply share.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A name or role that does not parse; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPeer(pub String);

/// A peer's name: an RFC 1123 label, since worker names become Kubernetes node names.
/// Serialized as the plain string; deserializing validates it like parsing does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerName(String);

impl PeerName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name read back from the state DB, which only ever stored parsed names: taken
    /// as it is, so a row is never refused over a rule that changed since it was written.
    pub fn from_stored(name: String) -> PeerName {
        PeerName(name)
    }
}

impl FromStr for PeerName {
    type Err = InvalidPeer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::spec::validate_label(s).map_err(InvalidPeer)?;
        Ok(PeerName(s.to_string()))
    }
}

impl TryFrom<String> for PeerName {
    type Error = InvalidPeer;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PeerName> for String {
    fn from(n: PeerName) -> String {
        n.0
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// What a peer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Gateway,
    Worker,
    Client,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Worker => "worker",
            Role::Client => "client",
        }
    }
}

impl FromStr for Role {
    type Err = InvalidPeer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gateway" => Ok(Role::Gateway),
            "worker" => Ok(Role::Worker),
            "client" => Ok(Role::Client),
            other => Err(InvalidPeer(format!(
                "`{}` is not a role: use worker or client",
                crate::clip(other)
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The transport a named grant opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    pub fn as_str(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

impl FromStr for L4 {
    type Err = InvalidPeer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(L4::Tcp),
            "udp" => Ok(L4::Udp),
            other => Err(InvalidPeer(format!(
                "unknown protocol {other:?}: use tcp or udp"
            ))),
        }
    }
}

/// A named grant: a client may open connections to one port of one peer, beyond what
/// its role reaches (`client add --allow w1:8080`, `--allow w1:53/udp`). Written
/// `PEER:PORT[/tcp|/udp]`, TCP when no protocol is given; the target is a peer's name
/// (the gateway by its own name, or the word `gateway`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Allow {
    pub target: PeerName,
    pub port: u16,
    pub proto: L4,
}

impl FromStr for Allow {
    type Err = InvalidPeer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            InvalidPeer(format!(
                "{s:?} is not a grant: {why} (write PEER:PORT or PEER:PORT/udp, e.g. w1:8080)"
            ))
        };
        let (target, rest) = s.split_once(':').ok_or_else(|| bad("no `:PORT`"))?;
        let (port, proto) = match rest.split_once('/') {
            Some((port, proto)) => (port, proto.parse().map_err(|e: InvalidPeer| bad(&e.0))?),
            None => (rest, L4::Tcp),
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
        let target: PeerName = target.parse().map_err(|e: InvalidPeer| bad(&e.0))?;
        Ok(Allow {
            target,
            port,
            proto,
        })
    }
}

impl TryFrom<String> for Allow {
    type Error = InvalidPeer;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Allow> for String {
    fn from(a: Allow) -> String {
        a.to_string()
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.target, self.port, self.proto.as_str())
    }
}

/// A named grant as the firewall sees it: from a client's address to a peer's address,
/// one transport and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flow {
    pub from: std::net::Ipv4Addr,
    pub to: std::net::Ipv4Addr,
    pub proto: L4,
    pub port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_roles_are_plain_strings_in_json_and_names_are_checked_on_the_way_in() {
        let name: PeerName = "w1".parse().unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""w1""#);
        assert_eq!(serde_json::from_str::<PeerName>(r#""w1""#).unwrap(), name);
        assert!(serde_json::from_str::<PeerName>(r#""Bad_Name""#).is_err());
        assert_eq!(serde_json::to_string(&Role::Worker).unwrap(), r#""worker""#);
        assert_eq!(
            serde_json::from_str::<Role>(r#""client""#).unwrap(),
            Role::Client
        );
    }

    #[test]
    fn a_grant_is_peer_colon_port_tcp_by_default_and_bad_ones_say_how_to_write_it() {
        let a: Allow = "w1:8080".parse().unwrap();
        assert_eq!((a.target.as_str(), a.port, a.proto), ("w1", 8080, L4::Tcp));
        assert_eq!(a.to_string(), "w1:8080/tcp");
        let u: Allow = "gw:53/udp".parse().unwrap();
        assert_eq!(u.proto, L4::Udp);
        assert_eq!(u.to_string().parse::<Allow>().unwrap(), u);
        for bad in [
            "w1",
            "w1:",
            "w1:0",
            "w1:70000",
            "w1:22/sctp",
            "Bad_Name:22",
            ":22",
        ] {
            let e = bad.parse::<Allow>().unwrap_err().0;
            assert!(e.contains("PEER:PORT"), "{bad}: {e}");
        }
    }
}
