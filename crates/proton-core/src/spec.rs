//! The spec: `/etc/proton/proton.toml`, the desired state of a gateway.
//!
//! Every field has a default except the public endpoint; unknown keys are refused (a
//! typo must not silently fall back to a default). Errors name the field, the bad value
//! and the fix, on one line.

use crate::clip;
use crate::host::Root;
use crate::net::Cidr;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// Host path of the spec.
pub const SPEC_PATH: &str = "/etc/proton/proton.toml";
/// Host path of the gateway's private key; [`crate::paths::GATEWAY_KEY`] under its
/// older name, for the daemon.
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

mod endpoint;
pub use endpoint::{Endpoint, EndpointHost, validate_dns_name, validate_label};

fn field(field: &str, message: impl Into<String>) -> SpecError {
    SpecError::Field {
        field: field.to_string(),
        message: message.into(),
    }
}

pub use crate::backend::Backend;

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
    #[serde(default)]
    pub dns: DnsSpec,
}

/// The resolver on the gateway's tunnel address (udp+tcp 53, never the public side):
/// peers by name in `zone`, `proton expose --vpn-only` hosts at the tunnel address, the
/// rest forwarded to `network.dns` when set, else to the gateway's /etc/resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSpec {
    pub enabled: bool,
    /// Peers are `NAME.ZONE`. Under `internal`, the name ICANN reserved for private use.
    pub zone: String,
}

/// `dns.zone`'s default.
pub const DEFAULT_DNS_ZONE: &str = "proton.internal";

impl Default for DnsSpec {
    fn default() -> Self {
        DnsSpec {
            enabled: true,
            zone: DEFAULT_DNS_ZONE.into(),
        }
    }
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
    pub backend: Backend,
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
            backend: Backend::Auto,
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
    parsed.map_err(|_| {
        format!(
            "`{}` is not a firewall mark (write it like 0x4000, or off)",
            clip(t)
        )
    })
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
            chart_version: TRAEFIK_CHART_VERSION.into(),
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
            chart_version: CERT_MANAGER_CHART_VERSION.into(),
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSpec {
    pub enabled: bool,
    pub kind: DashboardKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Default for DashboardSpec {
    fn default() -> Self {
        DashboardSpec {
            enabled: true,
            kind: DashboardKind::Headlamp,
            chart_version: None,
            host: None,
        }
    }
}

/// Pinned Traefik chart (traefik/traefik-helm-chart), `ingress.chart_version`'s default.
pub const TRAEFIK_CHART_VERSION: &str = "41.3.0";
/// Pinned cert-manager chart, `tls.chart_version`'s default.
pub const CERT_MANAGER_CHART_VERSION: &str = "v1.21.1";
/// Pinned Headlamp chart (kubernetes-sigs/headlamp), the default dashboard.
pub const HEADLAMP_CHART_VERSION: &str = "0.39.0";
/// Pinned Kubernetes Dashboard chart (archived upstream; kept as an option).
pub const KUBERNETES_DASHBOARD_CHART_VERSION: &str = "7.14.0";

impl DashboardSpec {
    /// The chart version to install: the explicit one, else the pin for `kind`.
    pub fn chart_version(&self) -> &str {
        self.chart_version.as_deref().unwrap_or(match self.kind {
            DashboardKind::Headlamp => HEADLAMP_CHART_VERSION,
            DashboardKind::KubernetesDashboard => KUBERNETES_DASHBOARD_CHART_VERSION,
        })
    }
}

/// Names the TOML key at byte `at` as `section.key` (toml's own messages for a bad
/// value do not say which key held it). Array-of-table headers count as sections.
fn key_path_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string());
    let section = text[..line_start]
        .lines()
        .chain(std::iter::once(line))
        .rfind(|l| l.trim_start().starts_with('['))
        .map(|l| {
            l.trim()
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        });
    match (section, key) {
        (Some(s), Some(k)) => Some(format!("{s}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(s), None) => Some(s),
        (None, None) => None,
    }
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
            dashboard: DashboardSpec::default(),
            dns: DnsSpec::default(),
        }
    }

    /// Parses and validates the TOML text of a spec.
    pub fn from_toml_str(text: &str) -> Result<Spec, SpecError> {
        let spec: Spec = toml::from_str(text).map_err(|e| {
            // toml's messages may span lines; the spec's errors are one line each.
            // They may also quote a whole value (a 10 MB string): cut them.
            let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            let msg = match msg.char_indices().nth(160) {
                Some((at, _)) => format!("{}…", &msg[..at]),
                None => msg,
            };
            let message = match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    match key_path_at(text, span.start) {
                        Some(key) => format!("line {line}: {key}: {msg}"),
                        None => format!("line {line}: {msg}"),
                    }
                }
                None => msg,
            };
            SpecError::File {
                path: "proton.toml".into(),
                message,
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
        n.cidr
            .check_tunnel_range()
            .map_err(|m| field("network.cidr", m))?;
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
                    clip(&n.interface)
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
                format!(
                    "`{}` is not a K3s release: write it like v1.34.2+k3s1",
                    clip(v)
                ),
            ));
        }
        validate_label(&self.ingress.class).map_err(|m| field("ingress.class", m))?;
        for (name, host) in [
            ("ingress.dashboard_host", &self.ingress.dashboard_host),
            ("dashboard.host", &self.dashboard.host),
        ] {
            if let Some(host) = host {
                validate_dns_name(host).map_err(|m| field(name, m))?;
            }
        }
        if let Some(v) = &self.dashboard.chart_version
            && (v.is_empty() || v.contains(char::is_whitespace))
        {
            return Err(field(
                "dashboard.chart_version",
                format!(
                    "`{}` is not a chart version: write it like 0.39.0, or remove it for the pinned default",
                    clip(v)
                ),
            ));
        }
        if validate_dns_name(&self.dns.zone).is_err() || self.dns.zone.ends_with('.') {
            return Err(field(
                "dns.zone",
                format!(
                    "`{}` is not a DNS zone: letters, digits, `-` and dots, no trailing dot (e.g. proton.internal)",
                    self.dns.zone
                ),
            ));
        }
        let script = &self.k3s.install_script;
        let script_ok = script.starts_with("https://")
            || script.starts_with("http://")
            || (script.starts_with('/') && !script.contains(char::is_whitespace));
        if !script_ok || script.contains(char::is_whitespace) {
            return Err(field(
                "k3s.install_script",
                format!(
                    "`{}` is not a URL or an absolute path: use https://get.k3s.io or e.g. /opt/k3s/install.sh",
                    clip(script)
                ),
            ));
        }
        for (i, arg) in self.k3s.extra_args.iter().enumerate() {
            if arg.is_empty() || arg.contains('\n') {
                return Err(field(
                    &format!("k3s.extra_args[{i}]"),
                    "is empty or spans lines: give one flag per string, e.g. \"--disable=servicelb\"",
                ));
            }
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
                format!("`{}` is not an e-mail address", clip(email)),
            ));
        }
        Ok(())
    }

    /// The ACME e-mail `apply` needs: `Ok(None)` when certificates are not wanted (TLS
    /// or ingress off), an error when they are and no address is set. Kept out of
    /// [`Spec::validate`] because `proton init` may not know the address yet.
    pub fn require_acme_email(&self) -> Result<Option<&str>, SpecError> {
        if !(self.tls.enabled && self.ingress.enabled) {
            return Ok(self.tls.acme_email.as_deref());
        }
        match &self.tls.acme_email {
            Some(e) => Ok(Some(e)),
            None => Err(field(
                "tls.acme_email",
                "is required while tls.enabled and ingress.enabled are true: Let's Encrypt needs a contact address (add acme_email = \"you@example.org\" under [tls], or set tls.enabled = false)",
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
            "# Proton's spec: the desired state of this gateway. Edit it, then run `proton apply`: it applies\n\
             # the change (to the running gateway daemon live) and says when a key needs\n\
             # `systemctl restart proton-gateway` (network cidr, interface, backend, fwmark, mtu, the endpoint's port).\n\
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
                "[tls]" if self.tls.acme_email.is_some() => Some(
                    "# Let's Encrypt through cert-manager; acme_email is your contact address.",
                ),
                "[tls]" => Some(
                    "# Let's Encrypt through cert-manager. Before `proton apply`, add your contact address\n# below [tls]:  acme_email = \"you@example.org\"",
                ),
                "[dns]" => Some(
                    "# DNS on the tunnel (10.7.7.1:53): peers as NAME.ZONE, VPN-only hosts through the tunnel,\n# the rest forwarded to network.dns, else to this machine's /etc/resolv.conf.",
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
