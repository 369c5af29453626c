//! The judgements behind `proton doctor`: pure functions of what was read, so each one
//! is tested on sample input. Every warning and failure carries its exact fix.

use super::{Finding, fail, pass, skip, warn};
use crate::kube::ClusterView;
use crate::nft::PortVerdict;
use crate::status::{self, PeerRow};
use crate::worker::{TunnelKind, WorkerTunnel};
use proton_core::backend::Backend;
use proton_proto::admin::Liveness;
use std::net::IpAddr;

/// Where K3s's persistent sysctl settings live (written by `proton apply`).
const SYSCTL_FILE: &str = "/etc/sysctl.d/90-proton.conf";

pub fn wireguard(module: bool, tun: bool, backend: Backend) -> Finding {
    const C: &str = "wireguard";
    match (module, tun, backend) {
        (true, _, _) => pass(C, "the kernel module is loaded"),
        (false, true, Backend::Kernel) => fail(
            C,
            "network.backend is kernel but the wireguard module is not loaded",
            "modprobe wireguard  (or set network.backend = \"auto\" in /etc/proton/proton.toml)",
        ),
        (false, true, _) => pass(
            C,
            "no kernel module; the userspace backend runs on /dev/net/tun",
        ),
        (false, false, _) => fail(
            C,
            "neither the wireguard module nor /dev/net/tun is available",
            "modprobe wireguard  (or: mkdir -p /dev/net && mknod /dev/net/tun c 10 200)",
        ),
    }
}

/// `value` is the text of `/proc/sys/net/ipv4/ip_forward`; `required` on the gateway.
pub fn forwarding(value: Option<&str>, required: bool) -> Finding {
    const C: &str = "ipv4 forwarding";
    let fix = format!(
        "sysctl -w net.ipv4.ip_forward=1 && echo 'net.ipv4.ip_forward = 1' >> {SYSCTL_FILE}"
    );
    match value {
        Some("1") => pass(C, "net.ipv4.ip_forward = 1"),
        Some(v) if required => fail(
            C,
            format!("net.ipv4.ip_forward = {v}: the gateway cannot route between peers"),
            fix,
        ),
        Some(v) => warn(
            C,
            format!("net.ipv4.ip_forward = {v}: pods on this node cannot be reached"),
            fix,
        ),
        None => warn(C, "cannot read /proc/sys/net/ipv4/ip_forward", fix),
    }
}

/// `idle_userspace`: the daemon runs the userspace backend with no peer at all, which
/// binds its UDP socket only when the first peer (an invitation) arrives.
pub fn udp_bound(port: u16, bound: bool, idle_userspace: bool) -> Finding {
    const C: &str = "udp port bound";
    if bound {
        pass(C, format!("a socket listens on udp/{port}"))
    } else if idle_userspace {
        skip(
            C,
            format!(
                "no peer yet: the userspace backend binds udp/{port} with the first one (proton invite NAME)"
            ),
        )
    } else {
        fail(
            C,
            format!("nothing listens on udp/{port}"),
            "systemctl restart proton-gateway  (then: journalctl -u proton-gateway -n 50)",
        )
    }
}

pub fn firewall(port: u16, verdict: Result<PortVerdict, String>) -> Finding {
    const C: &str = "udp port firewall";
    match verdict {
        Ok(PortVerdict::Open) => pass(C, format!("nftables lets udp/{port} in")),
        Ok(PortVerdict::Blocked { chain, why, fix }) => {
            fail(C, format!("udp/{port} is dropped in {chain}: {why}"), fix)
        }
        Ok(PortVerdict::Uncertain { chain, why }) => warn(
            C,
            format!("{chain}: {why}"),
            format!(
                "make sure that rule lets udp/{port} in from anywhere (nft -a list chain {chain})"
            ),
        ),
        Err(e) => warn(
            C,
            format!("cannot read the ruleset: {e}"),
            "apt-get install nftables",
        ),
    }
}

pub fn fwmark(iface: &str, expected: u32, actual: Result<Option<u32>, String>) -> Finding {
    const C: &str = "fwmark";
    let fix = format!(
        "wg set {iface} fwmark {expected:#x}  (proton-gateway sets it from network.fwmark at start)"
    );
    match actual {
        _ if expected == 0 => skip(C, "network.fwmark is 0 (not used)"),
        Ok(Some(m)) if m == expected => pass(C, format!("{iface} marks its packets {m:#x}")),
        Ok(Some(m)) => fail(
            C,
            format!("{iface} has fwmark {m:#x}, the spec says {expected:#x}"),
            fix,
        ),
        Ok(None) => fail(
            C,
            format!("{iface} has no fwmark, the spec says {expected:#x}"),
            fix,
        ),
        Err(e) => warn(
            C,
            format!("cannot read it: {e}"),
            format!(
                "bring the tunnel up if {iface} is missing (see the mtu check); if `wg` itself is missing: apt-get install wireguard-tools"
            ),
        ),
    }
}

/// Tunnel MTU against the configured one, the underlay (WireGuard over IPv6 adds 80
/// bytes) and flannel's VXLAN (50 bytes below the tunnel).
pub fn mtu(
    iface: &str,
    tunnel: Option<u16>,
    expected: u16,
    underlay: Option<(String, u16)>,
    flannel: Option<u16>,
) -> Finding {
    const C: &str = "mtu";
    let Some(t) = tunnel else {
        return fail(
            C,
            format!("interface {iface} does not exist: the tunnel is down"),
            "systemctl restart proton-gateway  (a worker: systemctl restart proton-agent or wg-quick@wg0)",
        );
    };
    if t != expected {
        return warn(
            C,
            format!("{iface} MTU is {t}, the configuration says {expected}"),
            format!("ip link set dev {iface} mtu {expected}"),
        );
    }
    if let Some((dev, u)) = &underlay
        && u32::from(*u) < u32::from(t) + 80
    {
        return fail(
            C,
            format!(
                "{iface} MTU {t} + 80 bytes of WireGuard overhead exceeds {dev}'s MTU {u}: large packets vanish"
            ),
            format!(
                "set network.mtu = {} (MTU in the wg-quick file on workers) and restart the tunnel",
                u.saturating_sub(80)
            ),
        );
    }
    if let Some(f) = flannel
        && u32::from(f) + 50 > u32::from(t)
    {
        return fail(
            C,
            format!("flannel.1 MTU {f} does not leave VXLAN's 50 bytes inside {iface} MTU {t}"),
            format!(
                "ip link set dev flannel.1 mtu {}; restart K3s so flannel recomputes it from {iface}",
                t - 50
            ),
        );
    }
    pass(
        C,
        match flannel {
            Some(f) => format!("{iface} {t}, flannel.1 {f}, consistent"),
            None => format!("{iface} {t}, fits the underlay (no flannel.1 yet)"),
        },
    )
}

pub fn conntrack(kernel: bool, tool: bool) -> Finding {
    const C: &str = "conntrack";
    match (kernel, tool) {
        (true, true) => pass(C, "nf_conntrack loaded and the conntrack tool installed"),
        (false, _) => warn(
            C,
            "nf_conntrack is not loaded (K3s and NAT need it)",
            "modprobe nf_conntrack",
        ),
        (true, false) => warn(
            C,
            "the conntrack tool is missing (K3s's preflight wants it)",
            "apt-get install conntrack",
        ),
    }
}

/// `state` is `systemctl is-active UNIT`; `None` when K3s is not installed.
pub fn k3s_service(unit: &str, wanted: bool, state: Option<&str>) -> Finding {
    const C: &str = "k3s service";
    match state {
        None if wanted => warn(C, "K3s is not installed yet", "proton apply"),
        None => skip(C, "K3s is not installed here"),
        Some("active") => pass(C, format!("{unit} is active")),
        Some("unknown") => warn(
            C,
            format!("{unit} is installed but its state is unknown (no systemd to ask)"),
            format!("systemctl status {unit}"),
        ),
        Some(s) => fail(
            C,
            format!("{unit} is {s}"),
            format!("systemctl restart {unit}  (then: journalctl -u {unit} -n 50)"),
        ),
    }
}

pub fn version_skew(cluster: &ClusterView) -> Vec<Finding> {
    const C: &str = "k3s version skew";
    match cluster {
        ClusterView::Running {
            skew,
            nodes,
            server_version,
            ..
        } if skew.is_empty() => vec![pass(
            C,
            format!(
                "{} node(s), all compatible with the server {}",
                nodes.len(),
                server_version.as_deref().unwrap_or("?")
            ),
        )],
        ClusterView::Running { skew, .. } => skew
            .iter()
            .map(|s| {
                let fix = format!(
                    "on {}: curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION={} sh -s - agent",
                    s.node, s.server
                );
                if s.newer {
                    fail(
                        C,
                        format!(
                            "{} runs kubelet {}, newer than the server {}",
                            s.node, s.kubelet, s.server
                        ),
                        fix,
                    )
                } else {
                    warn(
                        C,
                        format!(
                            "{} runs kubelet {}, more than 3 minors behind {}",
                            s.node, s.kubelet, s.server
                        ),
                        fix,
                    )
                }
            })
            .collect(),
        ClusterView::NotRunning { reason } => {
            vec![skip(C, format!("cluster: not running ({reason})"))]
        }
        ClusterView::Unreachable { error } => vec![fail(
            C,
            format!("K3s does not answer: {error}"),
            "systemctl restart k3s  (then: journalctl -u k3s -n 50)",
        )],
    }
}

/// Nodes, add-on install jobs and certificates as the API reports them; nothing when
/// the cluster is not running (the skew check already says why).
pub fn cluster_health(cluster: &ClusterView) -> Vec<Finding> {
    let ClusterView::Running {
        nodes,
        addons,
        certificates,
        ..
    } = cluster
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    const N: &str = "k3s nodes";
    let down: Vec<_> = nodes.iter().filter(|n| !n.ready).collect();
    if let Some(server) = down.iter().find(|n| n.control_plane) {
        out.push(fail(
            N,
            format!("the server node {} is NotReady", server.name),
            "systemctl restart k3s  (then: journalctl -u k3s -n 50)",
        ));
    } else if !down.is_empty() {
        let names: Vec<&str> = down.iter().map(|n| n.name.as_str()).collect();
        out.push(warn(
            N,
            format!("NotReady: {}", names.join(", ")),
            format!(
                "on {}: proton doctor (its tunnel), then systemctl restart k3s-agent",
                names.join(", ")
            ),
        ));
    } else {
        out.push(pass(N, format!("{} node(s), all Ready", nodes.len())));
    }
    const A: &str = "k3s add-ons";
    let failed: Vec<_> = addons.iter().filter(|a| a.job == "failed").collect();
    let missing: Vec<_> = addons.iter().filter(|a| a.job == "missing").collect();
    if let Some(a) = failed.first() {
        let names: Vec<&str> = failed.iter().map(|a| a.name.as_str()).collect();
        out.push(fail(
            A,
            format!("the helm install job failed: {}", names.join(", ")),
            format!(
                "read why: k3s kubectl -n {} logs job/helm-install-{}; correct it in /etc/proton/proton.toml, then proton apply",
                a.namespace, a.name
            ),
        ));
    } else if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|a| a.name.as_str()).collect();
        out.push(warn(
            A,
            format!("no helm install job yet: {}", names.join(", ")),
            "journalctl -u k3s -n 50 | grep -i helm  (K3s's helm controller starts one per chart)",
        ));
    } else if !addons.is_empty() {
        out.push(pass(
            A,
            format!("{} add-on(s), none failed to install", addons.len()),
        ));
    }
    const T: &str = "certificates";
    let unready: Vec<_> = certificates.iter().filter(|c| !c.ready).collect();
    if let Some(c) = unready.first() {
        let names: Vec<String> = unready
            .iter()
            .map(|c| format!("{}/{}", c.namespace, c.name))
            .collect();
        out.push(warn(
            T,
            format!(
                "not ready: {}{}",
                names.join(", "),
                c.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
            format!(
                "point its host name's DNS at this gateway, then: k3s kubectl -n {} describe certificate {}",
                c.namespace, c.name
            ),
        ));
    } else if !certificates.is_empty() {
        out.push(pass(
            T,
            format!("{} certificate(s), all ready", certificates.len()),
        ));
    }
    out
}

/// Whether the spec's endpoint name leads to this host.
pub fn endpoint(
    host: &str,
    resolved: Result<Vec<IpAddr>, String>,
    is_local: impl Fn(IpAddr) -> bool,
    public_ip: Option<IpAddr>,
) -> Finding {
    const C: &str = "endpoint";
    match resolved {
        Err(e) => fail(
            C,
            format!("{host} does not resolve: {e}"),
            format!("create a DNS A record {host} -> this host's public IPv4 address"),
        ),
        Ok(ips) if ips.is_empty() => fail(
            C,
            format!("{host} resolves to no address"),
            format!("create a DNS A record {host} -> this host's public IPv4 address"),
        ),
        Ok(ips) => {
            let shown = ips
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if ips.iter().any(|i| is_local(*i) || Some(*i) == public_ip) {
                pass(C, format!("{host} -> {shown}, this host"))
            } else {
                warn(
                    C,
                    format!("{host} -> {shown}, not an address of this host"),
                    format!(
                        "point {host} at this host (behind a 1:1 NAT, set gateway.public_ip in /etc/proton/proton.toml)"
                    ),
                )
            }
        }
    }
}

pub fn silent_peers(peers: &[PeerRow], stale_after: u64) -> Finding {
    const C: &str = "silent peers";
    let silent: Vec<String> = peers
        .iter()
        .filter(|p| p.peer.name.is_some() && p.state != Liveness::Online)
        .map(|p| {
            format!(
                "{} ({})",
                p.peer.name.as_ref().map_or("?", |n| n.as_str()),
                status::age(p.peer.last_heard_secs.or(p.peer.last_handshake_secs))
            )
        })
        .collect();
    if silent.is_empty() {
        pass(C, format!("every peer heard within {stale_after}s"))
    } else {
        warn(
            C,
            format!("silent for more than {stale_after}s: {}", silent.join(", ")),
            "on each of them: proton doctor (NAT mapping, link, or its tunnel service); a removed machine: proton peer remove NAME",
        )
    }
}

/// The worker's link to the gateway.
pub fn gateway_link(t: &WorkerTunnel, report: &status::WorkerReport) -> Finding {
    const C: &str = "gateway link";
    let restart = match t.kind {
        TunnelKind::Agent => "systemctl restart proton-agent".to_string(),
        TunnelKind::WgQuick => format!("systemctl restart wg-quick@{}", t.interface),
    };
    match &report.gateway {
        None => fail(C, format!("the tunnel {} is down", t.interface), restart),
        Some(g) if g.state == Liveness::Online => pass(
            C,
            format!(
                "handshake {} via {}",
                status::age(g.last_handshake_secs),
                g.live_endpoint.as_deref().unwrap_or("?")
            ),
        ),
        Some(g) => fail(
            C,
            format!(
                "no handshake with the gateway for longer than {}s (last: {})",
                report.stale_after_secs,
                status::age(g.last_handshake_secs)
            ),
            format!(
                "check that this network lets UDP out to {} and run `proton doctor` on the gateway; then {restart}",
                t.endpoint
            ),
        ),
    }
}

/// The configured endpoint name still leads where the tunnel sends packets.
pub fn endpoint_current(
    t: &WorkerTunnel,
    resolved: Result<Vec<IpAddr>, String>,
    live: Option<&str>,
) -> Finding {
    const C: &str = "endpoint current";
    if t.endpoint.ip().is_some() {
        return skip(
            C,
            format!("{} is an address, nothing to re-resolve", t.endpoint),
        );
    }
    let fix = match t.kind {
        TunnelKind::Agent => {
            "systemctl restart proton-agent  (the agent re-resolves every 30 s)".to_string()
        }
        TunnelKind::WgQuick => {
            "proton reresolve  (proton-reresolve.timer runs it every 30 s)".to_string()
        }
    };
    match (resolved, live) {
        (Err(e), _) => fail(
            C,
            format!("{} does not resolve: {e}", t.endpoint),
            "check this machine's DNS (resolvectl status)",
        ),
        (Ok(ips), Some(live)) => {
            let live_ip = live
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']));
            if ips.iter().any(|i| Some(i.to_string().as_str()) == live_ip) {
                pass(C, format!("{} still resolves to {live}", t.endpoint))
            } else {
                let shown = ips
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                fail(
                    C,
                    format!(
                        "{} now resolves to {shown}, the tunnel still sends to {live}",
                        t.endpoint
                    ),
                    fix,
                )
            }
        }
        (Ok(_), None) => skip(C, "the tunnel has no live endpoint yet"),
    }
}

/// What the cluster's networking must look like for Proton's design, checked on a real
/// cluster (this machine has no K3s; tested on kubectl JSON shaped as the API server's):
/// - every node's InternalIP is in `network.cidr` (`node-ip` = its tunnel address), so
///   the kubelet, the API and pod traffic stay on the tunnel;
/// - flannel's `flannel.alpha.coreos.com/public-ip` of every node is that tunnel address,
///   so VXLAN goes through WireGuard and never over the internet;
/// - Traefik's address is the gateway's public address: the ingress IPs of its Service
///   when it is a LoadBalancer, else (Proton's host ports) the ExternalIP of the node it
///   runs on (K3s's cloud controller sets it from `node-external-ip`);
/// - Traefik runs on the gateway (the control-plane node), where the firewall and the
///   public address are.
///
/// `ingress`: whether the spec turns Traefik on; `public_ip`: the gateway's public
/// address when known. Nothing when the cluster is not running.
pub fn cluster_network(
    cluster: &ClusterView,
    cidr: &proton_core::net::Cidr,
    public_ip: Option<IpAddr>,
    ingress: bool,
) -> Vec<Finding> {
    let ClusterView::Running { nodes, traefik, .. } = cluster else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let in_cidr = |ip: &Option<String>| {
        ip.as_deref()
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .is_some_and(|a| cidr.contains(a))
    };
    const A: &str = "k3s node addresses";
    let outside: Vec<String> = nodes
        .iter()
        .filter(|n| !in_cidr(&n.internal_ip))
        .map(|n| {
            format!(
                "{} ({})",
                n.name,
                n.internal_ip.as_deref().unwrap_or("no InternalIP")
            )
        })
        .collect();
    if outside.is_empty() {
        out.push(pass(
            A,
            format!("every node's InternalIP is in {}", cidr.net()),
        ));
    } else {
        out.push(fail(
            A,
            format!(
                "InternalIP outside the tunnel {}: {}",
                cidr.net(),
                outside.join(", ")
            ),
            "node-ip must be the node's tunnel address: re-run `proton join` on that worker (or `proton apply` on the gateway), then systemctl restart k3s-agent (k3s on the gateway)",
        ));
    }
    const F: &str = "flannel public-ip";
    let wrong: Vec<String> = nodes
        .iter()
        .filter(|n| {
            n.flannel_public_ip.is_none()
                || n.flannel_public_ip != n.internal_ip
                || !in_cidr(&n.flannel_public_ip)
        })
        .map(|n| {
            format!(
                "{} ({})",
                n.name,
                n.flannel_public_ip.as_deref().unwrap_or("no annotation")
            )
        })
        .collect();
    if wrong.is_empty() {
        out.push(pass(F, "every node's VXLAN address is its tunnel address"));
    } else {
        out.push(fail(
            F,
            format!(
                "{} is not the node's tunnel address: {}",
                crate::kube::FLANNEL_PUBLIC_IP,
                wrong.join(", ")
            ),
            "flannel-iface must be the WireGuard interface and flannel-external-ip unset in /etc/rancher/k3s/config.yaml (proton join / proton apply write it); then restart k3s-agent (k3s on the gateway)",
        ));
    }
    if !ingress {
        return out;
    }
    const T: &str = "traefik";
    let gateway = nodes.iter().find(|n| n.control_plane);
    let Some(t) = traefik.as_ref().filter(|t| !t.pods.is_empty()) else {
        out.push(warn(
            T,
            "no Traefik pod in ingress-traefik yet",
            "k3s kubectl -n kube-system logs job/helm-install-proton-traefik  (K3s's helm controller installs it)",
        ));
        return out;
    };
    let elsewhere: Vec<String> = t
        .pods
        .iter()
        .filter(|(_, node)| gateway.is_none_or(|g| &g.name != node))
        .map(|(pod, node)| format!("{pod} on {node}"))
        .collect();
    if elsewhere.is_empty() {
        out.push(pass(
            T,
            format!(
                "runs on the gateway node {}",
                gateway.map_or("?", |g| g.name.as_str())
            ),
        ));
    } else {
        out.push(fail(
            T,
            format!("not on the gateway: {}", elsewhere.join(", ")),
            "its nodeSelector must name the gateway's node (k3s.node_name): proton apply",
        ));
    }
    const P: &str = "traefik address";
    let Some(public) = public_ip else {
        out.push(skip(
            P,
            "the gateway's public address is not known (gateway.public_ip)",
        ));
        return out;
    };
    let (what, addrs): (&str, Vec<String>) = if t.service_type.as_deref() == Some("LoadBalancer") {
        ("its LoadBalancer ingress", t.lb_ingress.clone())
    } else {
        let node = t.pods.first().map(|(_, n)| n.as_str());
        (
            "its node's ExternalIP",
            nodes
                .iter()
                .find(|n| Some(n.name.as_str()) == node)
                .map(|n| n.external_ips.clone())
                .unwrap_or_default(),
        )
    };
    if addrs.len() == 1 && addrs[0] == public.to_string() {
        out.push(pass(P, format!("{what} is the public address {public}")));
    } else {
        let shown = if addrs.is_empty() {
            "none".to_string()
        } else {
            addrs.join(", ")
        };
        out.push(fail(
            P,
            format!("{what} is {shown}, not the public address {public}"),
            "node-external-ip must be the public address and the embedded cloud controller on (no disable-cloud-controller) in /etc/rancher/k3s/config.yaml: proton apply, then systemctl restart k3s",
        ));
    }
    out
}

/// What Proton's own table (`nft -j list table inet proton`) holds, read once for the
/// two checks below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtonTable {
    /// The comments of its rules (each rule Proton writes carries one that names it).
    pub comments: Vec<String>,
    /// The addresses the sets admit from the tunnel (workers, clients, admins).
    pub admitted: Vec<String>,
}

impl ProtonTable {
    /// Reads `nft -j list table inet proton`.
    pub fn parse(json: &serde_json::Value) -> ProtonTable {
        let mut t = ProtonTable::default();
        for item in json["nftables"].as_array().into_iter().flatten() {
            if let Some(c) = item["rule"]["comment"].as_str() {
                t.comments.push(c.to_string());
            }
            if item["set"]["table"] == "proton" {
                for e in item["set"]["elem"].as_array().into_iter().flatten() {
                    if let Some(a) = e.as_str() {
                        t.admitted.push(a.to_string());
                    }
                }
            }
        }
        t
    }

    /// Reads the rules' comments from `nft list table inet proton` (the sets' contents
    /// are left out: the fallback for when nft's JSON is unreadable).
    pub fn parse_text(text: &str) -> ProtonTable {
        let comments = text
            .split("comment \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(String::from)
            .collect();
        ProtonTable {
            comments,
            admitted: Vec::new(),
        }
    }

    fn has(&self, comment: &str) -> bool {
        self.comments.iter().any(|c| c.starts_with(comment))
    }
}

const RESTORE: &str = "proton apply  (or systemctl restart proton-firewall); a running proton-gateway restores it within seconds, so if it stays missing see journalctl -u proton-gateway -n 50";

/// Proton's nftables table: present, with the rules that keep the cluster's ports on
/// the tunnel, VXLAN to workers and full-tunnel NAT. `table`: `None` when it is missing.
pub fn firewall_table(table: Result<Option<&ProtonTable>, String>) -> Finding {
    const C: &str = "firewall table";
    let t = match table {
        Ok(Some(t)) => t,
        Ok(None) => {
            return fail(
                C,
                "the nftables table inet proton is missing: 6443, 10250, the join API and metrics answer on the public address",
                RESTORE,
            );
        }
        Err(e) => {
            return warn(
                C,
                format!("cannot read the ruleset: {e}"),
                "apt-get install nftables",
            );
        }
    };
    let missing: Vec<&str> = [
        "tunnel and loopback only",
        "flannel VXLAN: workers over the tunnel only",
        "NodePorts: tunnel, loopback and pods only",
        "full-tunnel clients reach the internet",
    ]
    .into_iter()
    .filter(|c| !t.has(c))
    .collect();
    if missing.is_empty() {
        pass(
            C,
            "inet proton: cluster ports tunnel-only, VXLAN from workers, NodePorts closed, full-tunnel NAT",
        )
    } else {
        fail(
            C,
            format!("inet proton lacks: {}", missing.join("; ")),
            RESTORE,
        )
    }
}

/// The invitee fence: an unredeemed invitation's key reaches only the join API. It is
/// in place when the table has its fence rules and no invitee address is admitted by a
/// set. `invitees`: the addresses of pending invitations.
pub fn invitee_fence(table: Result<Option<&ProtonTable>, String>, invitees: &[String]) -> Finding {
    const C: &str = "invitee fence";
    let t = match table {
        Ok(Some(t)) => t,
        Ok(None) if invitees.is_empty() => {
            return fail(
                C,
                "no nftables table inet proton, so no fence (no invitation is pending)",
                RESTORE,
            );
        }
        Ok(None) => {
            return fail(
                C,
                format!(
                    "no nftables table inet proton: {} pending invitation(s) are not fenced (the daemon keeps their keys off the device until it is back)",
                    invitees.len()
                ),
                RESTORE,
            );
        }
        Err(e) => {
            return warn(
                C,
                format!("cannot read the ruleset: {e}"),
                "apt-get install nftables",
            );
        }
    };
    if !t.has("the invitee fence") {
        return fail(C, "inet proton has no fence rule", RESTORE);
    }
    let leaked: Vec<&String> = invitees.iter().filter(|a| t.admitted.contains(a)).collect();
    if !leaked.is_empty() {
        let list: Vec<&str> = leaked.iter().map(|s| s.as_str()).collect();
        return fail(
            C,
            format!(
                "invitee address(es) {} are admitted by a set of inet proton",
                list.join(", ")
            ),
            "systemctl restart proton-gateway  (it rewrites the sets from the DB)",
        );
    }
    pass(
        C,
        format!(
            "invitees reach only the join API ({} pending)",
            invitees.len()
        ),
    )
}
