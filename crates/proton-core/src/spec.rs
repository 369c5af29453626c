//! The spec: `/etc/proton/proton.toml`, the desired state of a gateway.
//!
//! Every field has a default except the public endpoint; unknown keys are refused (a
//! typo must not silently fall back to a default). Errors name the field, the bad value
//! and the fix, on one line.

use crate::host::Root;
use crate::net::Cidr;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// Host path of the spec.
pub const SPEC_PATH: &str = "/etc/proton/proton.toml";
/// Host path of the gateway's private key (`0600`).
pub const GATEWAY_KEY_PATH: &str = "/etc/proton/gateway.key";
/// WireGuard's customary port.
pub const DEFAULT_PORT: u16 = 51820;

/// Why a spec (or one of its values) was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path} does not exist: run `proton init --endpoint HOST` first")]
    Missing { path: String },
}

fn field(field: &str, message: impl Into<String>) -> SpecError {
    SpecError::Field {
        field: field.to_string(),
        message: message.into(),
    }
}

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
                .map_err(|_| format!("`{addr}` is not an IPv6 address"))?;
            (EndpointHost::Ip(IpAddr::V6(ip)), port)
        } else if text.matches(':').count() > 1 {
            let ip: std::net::Ipv6Addr = text
                .parse()
                .map_err(|_| format!("`{text}` is not a host (write IPv6 as [addr]:port)"))?;
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
        Err(_) => Err(format!("port `{p}` is not a number: use 1-65535")),
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
            "`{name}` is not a valid host name (letters, digits, `-` and dots, e.g. vps.example.com)"
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
            "`{name}` is not a valid name: use 1-63 lowercase letters, digits and `-`, not starting or ending with `-` (it becomes a Kubernetes node name)"
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

/// Which WireGuard implementation runs the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Kernel when the module is available, else userspace.
    #[default]
    Auto,
    Kernel,
    Userspace,
}

/// The whole spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub gateway: GatewaySpec,
    #[serde(default)]
    pub network: NetworkSpec,
    #[serde(default)]
    pub k3s: K3sSpec,
    #[serde(default)]
    pub ingress: IngressSpec,
    #[serde(default)]
    pub tls: TlsSpec,
    #[serde(default)]
    pub dashboard: DashboardSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    #[serde(default = "default_name")]
    pub name: String,
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,
}

fn default_name() -> String {
    "proton".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    pub cidr: Cidr,
    pub interface: String,
    #[serde(with = "fwmark")]
    pub fwmark: u32,
    pub persistent_keepalive: u16,
    pub mtu: u16,
    pub backend: BackendChoice,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            cidr: "10.7.7.0/24".parse().expect("default network"),
            interface: "wg0".into(),
            fwmark: 0x4000,
            persistent_keepalive: 25,
            mtu: 1420,
            backend: BackendChoice::Auto,
            dns: Vec::new(),
        }
    }
}

/// FwMark as `0x4000` text (as wg-quick writes it) or a plain integer.
mod fwmark {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u32),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(n),
            Raw::Text(t) => super::parse_fwmark(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses a firewall mark: `0x4000`, `16384` or `off` (0).
pub fn parse_fwmark(t: &str) -> Result<u32, String> {
    let t = t.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("`{t}` is not a firewall mark (write it like 0x4000, or off)"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct K3sSpec {
    pub enabled: bool,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub gogc: u32,
    pub install_script: String,
    pub skip_download: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

impl Default for K3sSpec {
    fn default() -> Self {
        K3sSpec {
            enabled: true,
            version: "v1.34.2+k3s1".into(),
            node_name: None,
            gogc: 10,
            install_script: "https://get.k3s.io".into(),
            skip_download: false,
            extra_args: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngressSpec {
    pub enabled: bool,
    pub chart_version: String,
    pub class: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_host: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_ports: Vec<ExtraPort>,
}

impl Default for IngressSpec {
    fn default() -> Self {
        IngressSpec {
            enabled: true,
            chart_version: "41.3.0".into(),
            class: "traefik-cert-manager".into(),
            dashboard_host: None,
            extra_ports: Vec::new(),
        }
    }
}

/// An extra Traefik entry point (game servers, RTMP…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraPort {
    pub name: String,
    pub port: u16,
    pub exposed_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSpec {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_email: Option<String>,
    pub chart_version: String,
    pub default_issuer: String,
}

impl Default for TlsSpec {
    fn default() -> Self {
        TlsSpec {
            enabled: true,
            acme_email: None,
            chart_version: "v1.21.1".into(),
            default_issuer: "letsencrypt-prod".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DashboardKind {
    #[default]
    Headlamp,
    KubernetesDashboard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSpec {
    pub enabled: bool,
    pub kind: DashboardKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Spec {
    /// A spec with every default and the given public endpoint.
    pub fn new(endpoint: Endpoint) -> Spec {
        Spec {
            gateway: GatewaySpec {
                name: default_name(),
                endpoint,
                public_ip: None,
            },
            network: NetworkSpec::default(),
            k3s: K3sSpec::default(),
            ingress: IngressSpec::default(),
            tls: TlsSpec::default(),
            dashboard: DashboardSpec {
                enabled: true,
                ..DashboardSpec::default()
            },
        }
    }

    /// Parses and validates the TOML text of a spec.
    pub fn from_toml_str(text: &str) -> Result<Spec, SpecError> {
        let spec: Spec = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            SpecError::File {
                path: "proton.toml".into(),
                message: match line {
                    Some(l) => format!("line {l}: {msg}"),
                    None => msg,
                },
            }
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads and validates `SPEC_PATH` under `root`.
    pub fn load(root: &Root) -> Result<Spec, SpecError> {
        let path = root.path(SPEC_PATH);
        let shown = path.display().to_string();
        let text = root
            .read_optional(SPEC_PATH)
            .map_err(|e| SpecError::File {
                path: shown.clone(),
                message: e.source.to_string(),
            })?
            .ok_or_else(|| SpecError::Missing {
                path: shown.clone(),
            })?;
        Spec::from_toml_str(&text).map_err(|e| match e {
            SpecError::File { message, .. } => SpecError::File {
                path: shown,
                message,
            },
            SpecError::Field { field, message } => SpecError::File {
                path: shown,
                message: format!("{field}: {message}"),
            },
            other => other,
        })
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_label(&self.gateway.name).map_err(|m| field("gateway.name", m))?;
        if self.gateway.endpoint.port == 0 {
            return Err(field(
                "gateway.endpoint",
                "port 0 is not a port: use 1-65535",
            ));
        }
        let n = &self.network;
        let ifname_ok = !n.interface.is_empty()
            && n.interface.len() <= 15
            && !n
                .interface
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace());
        if !ifname_ok {
            return Err(field(
                "network.interface",
                format!(
                    "`{}` is not a Linux interface name: 1-15 characters, no `/`, `:` or spaces (e.g. wg0)",
                    n.interface
                ),
            ));
        }
        if !(1280..=9000).contains(&n.mtu) {
            return Err(field(
                "network.mtu",
                format!(
                    "{} is out of range: use 1280-9000 (1420 suits most links)",
                    n.mtu
                ),
            ));
        }
        if let Some(node) = &self.k3s.node_name {
            validate_label(node).map_err(|m| field("k3s.node_name", m))?;
        }
        let v = &self.k3s.version;
        let version_ok = v.starts_with('v')
            && v.contains("+k3s")
            && v[1..]
                .split('+')
                .next()
                .map(|core| {
                    core.split('.').count() == 3
                        && core.split('.').all(|p| p.parse::<u32>().is_ok())
                })
                .unwrap_or(false);
        if !version_ok {
            return Err(field(
                "k3s.version",
                format!("`{v}` is not a K3s release: write it like v1.34.2+k3s1"),
            ));
        }
        validate_label(&self.ingress.class).map_err(|m| field("ingress.class", m))?;
        for host in [&self.ingress.dashboard_host, &self.dashboard.host]
            .into_iter()
            .flatten()
        {
            validate_dns_name(host).map_err(|m| field("dashboard.host", m))?;
        }
        let reserved = ["web", "websecure", "traefik", "metrics"];
        let mut seen = std::collections::HashSet::new();
        for p in &self.ingress.extra_ports {
            let f = format!("ingress.extra_ports.{}", p.name);
            validate_label(&p.name).map_err(|m| field(&f, m))?;
            if reserved.contains(&p.name.as_str()) {
                return Err(field(
                    &f,
                    "this name belongs to a built-in entry point: choose another",
                ));
            }
            if !seen.insert(p.name.clone()) {
                return Err(field(
                    &f,
                    "appears twice: each entry point needs its own name",
                ));
            }
            if p.port == 0 || p.exposed_port == 0 {
                return Err(field(&f, "port 0 is not a port: use 1-65535"));
            }
        }
        if !["letsencrypt-staging", "letsencrypt-prod"].contains(&self.tls.default_issuer.as_str())
        {
            return Err(field(
                "tls.default_issuer",
                "must be letsencrypt-staging or letsencrypt-prod",
            ));
        }
        if let Some(email) = &self.tls.acme_email
            && (!email.contains('@') || email.contains(char::is_whitespace))
        {
            return Err(field(
                "tls.acme_email",
                format!("`{email}` is not an e-mail address"),
            ));
        }
        Ok(())
    }

    /// `apply` needs an ACME e-mail when certificates are on.
    pub fn require_acme_email(&self) -> Result<&str, SpecError> {
        match &self.tls.acme_email {
            Some(e) => Ok(e),
            None => Err(field(
                "tls.acme_email",
                "is required while tls.enabled = true: Let's Encrypt needs a contact address (or set tls.enabled = false)",
            )),
        }
    }

    /// The gateway's tunnel address: the network's first host address.
    pub fn gateway_address(&self) -> Ipv4Addr {
        self.network.cidr.gateway()
    }

    /// The UDP port WireGuard listens on (the endpoint's port).
    pub fn listen_port(&self) -> u16 {
        self.gateway.endpoint.port
    }

    /// The public IP: explicit, or the endpoint's when it is an address.
    pub fn public_ip(&self) -> Option<IpAddr> {
        self.gateway
            .public_ip
            .or_else(|| self.gateway.endpoint.ip())
    }

    /// The K3s node name of the gateway.
    pub fn node_name(&self) -> &str {
        self.k3s.node_name.as_deref().unwrap_or(&self.gateway.name)
    }

    /// The spec as a commented TOML file a person can edit; parses back to `self`.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("the spec serializes");
        let mut out = String::from(
            "# Proton's spec: the desired state of this gateway. Edit it, then restart the gateway (systemctl restart proton-gateway).\n\
             # Every key has a default except gateway.endpoint; unknown keys are refused.\n",
        );
        for line in body.lines() {
            let comment = match line {
                "[gateway]" => Some(
                    "# This machine: its name (also the K3s node name) and the address workers dial.",
                ),
                "[network]" => Some(
                    "# The VPN: addresses, interface, FwMark (0x4000, kube-proxy's mark, as in the walkthrough),\n# keepalive for NAT'd peers, MTU, and the WireGuard implementation (auto|kernel|userspace).",
                ),
                "[k3s]" => {
                    Some("# K3s server on this machine; agents get the same pinned version.")
                }
                "[ingress]" => {
                    Some("# Traefik ingress pinned to this gateway, client IPs preserved.")
                }
                "[tls]" => Some(
                    "# Let's Encrypt through cert-manager (set acme_email before `proton apply`).",
                ),
                "[dashboard]" => Some(
                    "# Cluster dashboard (headlamp or kubernetes-dashboard), reachable only over the VPN.",
                ),
                _ => None,
            };
            if let Some(c) = comment {
                if !out.ends_with("\n\n") {
                    out.push('\n');
                }
                out.push_str(c);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests;
