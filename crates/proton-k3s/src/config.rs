//! The files that make a host a K3s server (the gateway) or agent (a worker).

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::Error;

pub const CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";
/// Read by the unit via `EnvironmentFile=-/etc/default/%N`. Not `k3s.service.env`: the
/// install script rewrites that file keeping only `K3S_*`/`CONTAINERD_*` lines, so a
/// `GOGC` there would vanish at the next install or upgrade.
pub const SERVER_DEFAULTS_PATH: &str = "/etc/default/k3s";
pub const AGENT_DEFAULTS_PATH: &str = "/etc/default/k3s-agent";
pub const SERVER_DROPIN_PATH: &str = "/etc/systemd/system/k3s.service.d/10-proton.conf";
pub const AGENT_DROPIN_PATH: &str = "/etc/systemd/system/k3s-agent.service.d/10-proton.conf";
pub const PROFILE_PATH: &str = "/etc/profile.d/proton.sh";
pub const SYSCTL_PATH: &str = "/etc/sysctl.d/90-proton.conf";
/// The admin kubeconfig K3s writes on the server.
pub const ADMIN_KUBECONFIG_PATH: &str = "/etc/rancher/k3s/k3s.yaml";

/// Flannel's VXLAN header and outer headers take 50 bytes of every packet.
pub const VXLAN_OVERHEAD: u16 = 50;

/// The pod network MTU flannel will use over the WireGuard interface: the interface
/// MTU minus the VXLAN overhead (wg 1420 → pods 1370). Flannel derives it itself from
/// `flannel-iface`, which is why that flag must name the WireGuard interface on every
/// node, the server included; Proton only computes it to show and check it.
pub fn pod_mtu(wg_mtu: u16) -> u16 {
    wg_mtu.saturating_sub(VXLAN_OVERHEAD)
}

/// Which systemd unit brings the WireGuard interface up, so K3s can be ordered after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelUnit {
    /// The Proton daemon owns the interface (`proton-gateway.service`).
    ProtonGateway,
    /// `wg-quick@<iface>.service` (workers).
    WgQuick,
    /// Any other unit name.
    Named(String),
}

impl TunnelUnit {
    pub fn unit_name(&self, interface: &str) -> String {
        match self {
            TunnelUnit::ProtonGateway => "proton-gateway.service".into(),
            TunnelUnit::WgQuick => format!("wg-quick@{interface}.service"),
            TunnelUnit::Named(n) => n.clone(),
        }
    }
}

/// Inputs for the gateway's K3s server.
#[derive(Debug, Clone)]
pub struct ServerParams {
    pub node_name: String,
    pub tunnel_ip: Ipv4Addr,
    pub tunnel_cidr: String,
    pub public_ip: Option<IpAddr>,
    pub public_name: Option<String>,
    pub interface: String,
    pub wg_mtu: u16,
    pub disable_traefik: bool,
    pub gogc: u32,
    pub version: String,
    pub tunnel_unit: TunnelUnit,
    /// Labels this node registers with (`node-label`), e.g. the ServiceLB pool Proton's
    /// Traefik Service is bound to: without them on the gateway node, ServiceLB runs that
    /// Service nowhere and 80/443 never open.
    pub node_labels: Vec<(String, String)>,
    /// Extra `config.yaml` keys (flag name → value), appended verbatim. Must not name
    /// a key Proton sets itself.
    pub extra_args: Vec<(String, String)>,
}

/// Inputs for a worker's K3s agent. The token is a bootstrap secret: zeroized on drop,
/// never in `Debug`, argv or logs.
#[derive(Clone)]
pub struct AgentParams {
    pub server_url: String,
    pub token: Zeroizing<String>,
    pub node_name: String,
    pub tunnel_ip: Ipv4Addr,
    pub interface: String,
    pub version: String,
    pub tunnel_unit: TunnelUnit,
}

impl std::fmt::Debug for AgentParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentParams")
            .field("server_url", &self.server_url)
            .field("token", &"<redacted>")
            .field("node_name", &self.node_name)
            .field("tunnel_ip", &self.tunnel_ip)
            .field("interface", &self.interface)
            .field("version", &self.version)
            .finish()
    }
}

/// One file a plan will write.
#[derive(Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub path: String,
    pub contents: String,
    pub mode: u32,
    /// Whether the contents are secret (never shown in a diff).
    pub secret: bool,
}

impl std::fmt::Debug for PlannedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body: &dyn std::fmt::Debug = if self.secret {
            &"<redacted>"
        } else {
            &self.contents
        };
        f.debug_struct("PlannedFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("contents", body)
            .finish()
    }
}

/// K3s `config.yaml`: keys are the CLI flag names.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ServerConfig<'a> {
    node_name: &'a str,
    node_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_external_ip: Option<String>,
    advertise_address: String,
    tls_san: Vec<String>,
    flannel_iface: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    node_label: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    disable: Vec<String>,
    write_kubeconfig_mode: &'static str,
    #[serde(flatten)]
    extra: std::collections::BTreeMap<String, serde_norway::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AgentConfig<'a> {
    server: &'a str,
    token: &'a str,
    node_name: &'a str,
    node_ip: String,
    flannel_iface: &'a str,
}

fn yaml<T: Serialize>(value: &T) -> String {
    // Serializing plain structs of strings/bools cannot fail.
    serde_norway::to_string(value).expect("plain struct serializes")
}

const PROTON_KEYS: &[&str] = &[
    "node-name",
    "node-ip",
    "node-external-ip",
    "advertise-address",
    "tls-san",
    "flannel-iface",
    "disable",
    // The embedded cloud controller is what turns `node-external-ip` into the node's
    // ExternalIP (k3s-io/k3s pkg/cloudprovider/instances.go: the addresses come from the
    // node's `k3s.io/internal-ip`/`k3s.io/external-ip` annotations) and clears the
    // `node.cloudprovider.kubernetes.io/uninitialized` taint; it must stay on.
    "disable-cloud-controller",
    // flannel-external-ip would make flannel's public-ip the public address: VXLAN
    // must stay on the tunnel (flannel-iface).
    "flannel-external-ip",
    "write-kubeconfig-mode",
];

fn server_config_yaml(p: &ServerParams) -> Result<String, Error> {
    use serde_norway::Value;
    let mut disable: Vec<String> = Vec::new();
    if p.disable_traefik {
        disable.push("traefik".into());
    }
    // A flag given several times (`--kube-apiserver-arg`) becomes a YAML list, as K3s's
    // config file expects for repeatable flags; `disable` adds to Proton's own list.
    let mut node_label: Vec<String> = p
        .node_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut extra = std::collections::BTreeMap::<String, Value>::new();
    for (k, v) in &p.extra_args {
        let own = match k.as_str() {
            "disable" => Some(&mut disable),
            "node-label" => Some(&mut node_label),
            _ => None,
        };
        if let Some(list) = own {
            if !list.contains(v) {
                list.push(v.clone());
            }
            continue;
        }
        if PROTON_KEYS.contains(&k.as_str()) {
            return Err(Error::ExtraArgConflict(k.clone()));
        }
        match extra.get_mut(k) {
            None => {
                extra.insert(k.clone(), Value::String(v.clone()));
            }
            Some(Value::Sequence(list)) => list.push(Value::String(v.clone())),
            Some(first) => {
                let prev = first.clone();
                *first = Value::Sequence(vec![prev, Value::String(v.clone())]);
            }
        }
    }
    let mut tls_san = Vec::new();
    if let Some(name) = &p.public_name {
        tls_san.push(name.clone());
    }
    tls_san.push(p.tunnel_ip.to_string());
    if let Some(ip) = p.public_ip {
        tls_san.push(ip.to_string());
    }
    let cfg = ServerConfig {
        node_name: &p.node_name,
        node_ip: p.tunnel_ip.to_string(),
        node_external_ip: p.public_ip.map(|ip| ip.to_string()),
        advertise_address: p.tunnel_ip.to_string(),
        tls_san,
        flannel_iface: &p.interface,
        node_label,
        disable,
        write_kubeconfig_mode: "0600",
        extra,
    };
    Ok(format!(
        "# Written by Proton (proton apply); edits are overwritten.\n\
         # node-ip/advertise-address are the tunnel address {ip} ({cidr}): workers reach the API\n\
         # only through WireGuard. advertise-address is pinned, else it follows node-external-ip.\n\
         # flannel-iface={iface}: pod VXLAN goes through the tunnel, MTU {wg} - {oh} = {pod}.\n\
         # The embedded cloud controller stays on: it sets the node's ExternalIP from\n\
         # node-external-ip (the address Traefik's host ports answer on).\n{body}",
        ip = p.tunnel_ip,
        cidr = p.tunnel_cidr,
        iface = p.interface,
        wg = p.wg_mtu,
        oh = VXLAN_OVERHEAD,
        pod = pod_mtu(p.wg_mtu),
        body = yaml(&cfg),
    ))
}

/// Drop-in ordering K3s after the tunnel. K3s exits at start when `flannel-iface` does
/// not exist, so besides `After=`/`Wants=` it waits (up to 60 s) for the interface.
fn dropin(interface: &str, unit: &str) -> String {
    format!(
        "# Written by Proton: K3s needs the WireGuard interface ({interface}) before it starts.\n\
         [Unit]\n\
         After={unit}\n\
         Wants={unit}\n\
         \n\
         [Service]\n\
         ExecStartPre=/bin/sh -c 'for i in $(seq 60); do [ -e /sys/class/net/{interface} ] && exit 0; sleep 1; done; echo \"{interface} missing\" >&2; exit 1'\n"
    )
}

fn defaults_file(gogc: u32) -> String {
    format!(
        "# Written by Proton. Read by the K3s unit (EnvironmentFile=-/etc/default/%N);\n\
         # kept out of k3s.service.env, which the install script rewrites.\n\
         GOGC={gogc}\n"
    )
}

const PROFILE: &str = "# Written by Proton: kubectl on the gateway uses K3s's admin kubeconfig.\n\
                       export KUBECONFIG=/etc/rancher/k3s/k3s.yaml\n";
const SYSCTL: &str = "# Written by Proton: this node routes between the WireGuard tunnel and pods.\n\
                      net.ipv4.ip_forward=1\n";

fn public(path: &str, contents: String) -> PlannedFile {
    PlannedFile {
        path: path.into(),
        contents,
        mode: 0o644,
        secret: false,
    }
}

/// Every file of the gateway's K3s server.
pub fn server_files(p: &ServerParams) -> Result<Vec<PlannedFile>, Error> {
    check_name("node_name", &p.node_name)?;
    check_name("interface", &p.interface)?;
    Ok(vec![
        PlannedFile {
            path: CONFIG_PATH.into(),
            contents: server_config_yaml(p)?,
            mode: 0o600,
            secret: false,
        },
        public(SERVER_DEFAULTS_PATH, defaults_file(p.gogc)),
        public(
            SERVER_DROPIN_PATH,
            dropin(&p.interface, &p.tunnel_unit.unit_name(&p.interface)),
        ),
        public(PROFILE_PATH, PROFILE.into()),
        public(SYSCTL_PATH, SYSCTL.into()),
    ])
}

/// Every file of a worker's K3s agent. `config.yaml` holds the token: mode 0600, secret.
pub fn agent_files(p: &AgentParams) -> Result<Vec<PlannedFile>, Error> {
    check_name("node_name", &p.node_name)?;
    check_name("interface", &p.interface)?;
    let cfg = AgentConfig {
        server: &p.server_url,
        token: &p.token,
        node_name: &p.node_name,
        node_ip: p.tunnel_ip.to_string(),
        flannel_iface: &p.interface,
    };
    Ok(vec![
        PlannedFile {
            path: CONFIG_PATH.into(),
            contents: format!("# Written by Proton (proton join).\n{}", yaml(&cfg)),
            mode: 0o600,
            secret: true,
        },
        public(
            AGENT_DROPIN_PATH,
            dropin(&p.interface, &p.tunnel_unit.unit_name(&p.interface)),
        ),
        public(SYSCTL_PATH, SYSCTL.into()),
    ])
}

/// Names end up in unit files and shell: keep them to a safe alphabet.
fn check_name(field: &'static str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            field,
            value: value.into(),
        })
    }
}

/// Whether K3s must be restarted after these files changed: the install script only
/// restarts when it installed something, not when Proton's files alone changed.
pub fn needs_restart(changed: &[&str]) -> bool {
    changed.iter().any(|p| {
        *p == CONFIG_PATH
            || *p == SERVER_DEFAULTS_PATH
            || *p == AGENT_DEFAULTS_PATH
            || *p == SERVER_DROPIN_PATH
            || *p == AGENT_DROPIN_PATH
    })
}

/// The commands to run after Proton's files changed: `daemon-reload` when a unit
/// drop-in changed, `sysctl --system` when the sysctl file changed, and a restart of
/// `unit` (`k3s` or `k3s-agent`) when [`needs_restart`] says so. Empty when nothing
/// relevant changed.
pub fn after_write_commands(unit: &str, changed: &[&str]) -> Vec<crate::PlannedCommand> {
    use crate::PlannedCommand as C;
    let mut cmds = Vec::new();
    if changed.contains(&SYSCTL_PATH) {
        cmds.push(C::new("sysctl", &["--system"]));
    }
    if changed.contains(&SERVER_DROPIN_PATH) || changed.contains(&AGENT_DROPIN_PATH) {
        cmds.push(C::new("systemctl", &["daemon-reload"]));
    }
    if needs_restart(changed) {
        cmds.push(C::new("systemctl", &["restart", unit]));
    }
    cmds
}
