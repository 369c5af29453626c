//! Endpoints (`host[:port]`) and the name rules the spec checks.

use super::DEFAULT_PORT;
use crate::clip;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// Host part of an endpoint: a DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointHost {
    Name(String),
    Ip(IpAddr),
}

/// A WireGuard endpoint, `host:port`; IPv6 hosts are written `[addr]:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: EndpointHost,
    pub port: u16,
}

impl Endpoint {
    /// Parses `host[:port]`, with `default_port` when no port is given.
    pub fn parse_with_default(text: &str, default_port: u16) -> Result<Endpoint, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "is empty: give a DNS name or IP address, e.g. vps.example.com:51820".into(),
            );
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (addr, after) = rest
                .split_once(']')
                .ok_or("has `[` without `]` (write IPv6 as [2001:db8::1]:51820)")?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or("has text after `]` that is not `:PORT`")?,
                ),
            };
            let ip: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("`{}` is not an IPv6 address", clip(addr)))?;
            (EndpointHost::Ip(IpAddr::V6(ip)), port)
        } else if text.matches(':').count() > 1 {
            let ip: std::net::Ipv6Addr = text.parse().map_err(|_| {
                format!("`{}` is not a host (write IPv6 as [addr]:port)", clip(text))
            })?;
            (EndpointHost::Ip(IpAddr::V6(ip)), None)
        } else {
            let (host, port) = match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            };
            let host = match host.parse::<Ipv4Addr>() {
                Ok(ip) => EndpointHost::Ip(IpAddr::V4(ip)),
                Err(_) => {
                    validate_dns_name(host)?;
                    EndpointHost::Name(host.to_ascii_lowercase())
                }
            };
            (host, port)
        };
        let port = match port {
            None => default_port,
            Some(p) => parse_port(p)?,
        };
        Ok(Endpoint { host, port })
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            EndpointHost::Ip(ip) => Some(ip),
            EndpointHost::Name(_) => None,
        }
    }

    pub fn host_string(&self) -> String {
        match &self.host {
            EndpointHost::Name(n) => n.clone(),
            EndpointHost::Ip(ip) => ip.to_string(),
        }
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u32>() {
        Ok(0) => Err("port 0 is not a port: use 1-65535 (WireGuard's usual is 51820)".into()),
        Ok(n) if n <= 65535 => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is out of range: use 1-65535")),
        Err(_) => Err(format!("port `{}` is not a number: use 1-65535", clip(p))),
    }
}

/// Checks a DNS host name (labels of letters, digits and `-`, dot-separated).
pub fn validate_dns_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid host name (letters, digits, `-` and dots, e.g. vps.example.com)",
            clip(name)
        ))
    }
}

/// Checks an RFC 1123 label: what Kubernetes accepts as a node name segment.
pub fn validate_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid name: use 1-63 lowercase letters, digits and `-`, not starting or ending with `-` (it becomes a Kubernetes node name)",
            clip(name)
        ))
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse_with_default(s, DEFAULT_PORT)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            EndpointHost::Name(n) => write!(f, "{n}:{}", self.port),
            EndpointHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            EndpointHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
