//! `proton doctor`: every check that explains a silent network failure, each judged
//! pass / warn / fail, and every failure with the exact command that fixes it.
//!
//! The judgements are pure functions of what was read (file text, `nft -j` output,
//! `kubectl` JSON), tested on samples; `gateway()` and `worker()` gather the inputs on
//! the running host and call them.

use crate::OpsError;
use crate::kube::{self, ClusterView};
use crate::nft::{self, PortVerdict};
use crate::probe;
use crate::status::{self, PeerRow};
use crate::worker::{self, TunnelKind, WorkerTunnel};
use proton_core::host::Root;
use proton_core::spec::{BackendChoice, SPEC_PATH, Spec};
use proton_gateway::observe::{self, Liveness, REJECT_AFTER};
use serde::Serialize;
use std::net::IpAddr;

/// Where K3s's persistent sysctl settings live (written by `proton apply`).
const SYSCTL_FILE: &str = "/etc/sysctl.d/90-proton.conf";

/// How bad a finding is. Ordered: the worst decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Not applicable here (e.g. K3s not installed and not wanted).
    Skip,
    Pass,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Skip => "skip",
            Level::Pass => "pass",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub level: Level,
    pub detail: String,
    /// The exact fix; present on every warning and failure.
    pub fix: Option<String>,
}

fn pass(check: &str, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        level: Level::Pass,
        detail: detail.into(),
        fix: None,
    }
}
fn skip(check: &str, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        level: Level::Skip,
        detail: detail.into(),
        fix: None,
    }
}
fn warn(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        level: Level::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}
fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        level: Level::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub role: &'static str,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn worst(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Pass)
    }

    /// 0: all pass, 1: warnings, 2: failures (the Nagios convention).
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Level::Skip | Level::Pass => 0,
            Level::Warn => 1,
            Level::Fail => 2,
        }
    }

    /// One line per check, each warning and failure followed by its fix.
    pub fn render(&self) -> String {
        let mut out = format!("proton doctor ({}):\n", self.role);
        for f in &self.findings {
            out.push_str(&format!(
                "  [{:<4}] {:<22} {}\n",
                f.level.as_str(),
                f.check,
                f.detail
            ));
            if let Some(fix) = &f.fix {
                out.push_str(&format!("         fix: {fix}\n"));
            }
        }
        let count = |l| self.findings.iter().filter(|f| f.level == l).count();
        out.push_str(&format!(
            "{} passed, {} warnings, {} failures\n",
            count(Level::Pass),
            count(Level::Warn),
            count(Level::Fail)
        ));
        out
    }
}

// ---- judgements -------------------------------------------------------------------

pub fn wireguard(module: bool, tun: bool, backend: BackendChoice) -> Finding {
    const C: &str = "wireguard";
    match (module, tun, backend) {
        (true, _, _) => pass(C, "the kernel module is loaded"),
        (false, true, BackendChoice::Kernel) => fail(
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

pub fn udp_bound(port: u16, bound: bool) -> Finding {
    const C: &str = "udp port bound";
    if bound {
        pass(C, format!("a socket listens on udp/{port}"))
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
            "apt-get install wireguard-tools",
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
        .filter(|p| p.name.is_some() && p.state != Liveness::Online)
        .map(|p| {
            format!(
                "{} ({})",
                p.name.as_deref().unwrap_or("?"),
                status::age(p.last_heard_secs.or(p.last_handshake_secs))
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

// ---- gathering ----------------------------------------------------------------------

fn module_loaded() -> bool {
    std::path::Path::new("/sys/module/wireguard").exists()
}

fn tun_present() -> bool {
    std::path::Path::new("/dev/net/tun").exists()
}

fn conntrack_kernel() -> bool {
    std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists()
}

fn unit_state(unit: &str) -> Option<String> {
    let installed = [
        format!("/etc/systemd/system/{unit}.service"),
        format!("/lib/systemd/system/{unit}.service"),
        format!("/usr/lib/systemd/system/{unit}.service"),
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists());
    if !installed || !probe::has_tool("systemctl") {
        return None;
    }
    let out = std::process::Command::new("systemctl")
        .args(["is-active", unit])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn underlay() -> Option<(String, u16)> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    let dev = probe::default_route_interface(&table)?;
    let m = probe::interface_mtu(&dev)?;
    Some((dev, m))
}

fn resolve_ips(host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    probe::resolve(&format!("{host}:{port}"))
        .map(|v| v.into_iter().map(|a| a.ip()).collect())
        .map_err(|e| e.to_string())
}

fn ruleset_verdict(port: u16, tunnel: &str) -> Result<PortVerdict, String> {
    let text = probe::run(&["nft", "-j", "list", "ruleset"]).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(nft::udp_port_verdict(&v, port, tunnel))
}

/// Every check on the gateway. `stale_after` overrides 3x keepalive.
pub fn gateway(root: &Root, stale_after: Option<std::time::Duration>) -> Result<Report, OpsError> {
    let spec = Spec::load(root)?;
    let n = &spec.network;
    let port = spec.listen_port();
    let mut findings = vec![
        wireguard(module_loaded(), tun_present(), n.backend),
        forwarding(
            probe::read_trimmed("/proc/sys/net/ipv4/ip_forward").as_deref(),
            true,
        ),
    ];
    let udp = [
        std::fs::read_to_string("/proc/net/udp").unwrap_or_default(),
        std::fs::read_to_string("/proc/net/udp6").unwrap_or_default(),
    ];
    findings.push(udp_bound(
        port,
        udp.iter().any(|t| probe::udp_port_bound(t, port)),
    ));
    findings.push(firewall(port, ruleset_verdict(port, &n.interface)));
    findings.push(fwmark(
        &n.interface,
        n.fwmark,
        crate::wgshow::fwmark(&n.interface).map_err(|e| e.to_string()),
    ));
    findings.push(mtu(
        &n.interface,
        probe::interface_mtu(&n.interface),
        n.mtu,
        underlay(),
        probe::interface_mtu("flannel.1"),
    ));
    findings.push(conntrack(conntrack_kernel(), probe::has_tool("conntrack")));
    findings.push(k3s_service(
        "k3s",
        spec.k3s.enabled,
        unit_state("k3s").as_deref(),
    ));
    let cluster = kube::probe(root);
    findings.extend(version_skew(&cluster));
    let host = spec.gateway.endpoint.host_string();
    findings.push(endpoint(
        &host,
        resolve_ips(&host, port),
        probe::is_local_address,
        spec.public_ip(),
    ));
    match status::daemon_status(root) {
        Ok(live) => {
            let threshold =
                stale_after.unwrap_or_else(|| observe::stale_after(n.persistent_keepalive));
            let report = status::gateway_report(live, threshold, cluster);
            findings.push(silent_peers(&report.peers, report.stale_after_secs));
        }
        Err(e) => findings.push(fail(
            "gateway daemon",
            e.to_string(),
            "systemctl restart proton-gateway  (then: journalctl -u proton-gateway -n 50)",
        )),
    }
    Ok(Report {
        role: "gateway",
        findings,
    })
}

/// Every check on a joined worker.
pub fn worker(t: &WorkerTunnel, stale_after: Option<std::time::Duration>) -> Report {
    let report = status::worker_report(t, stale_after.or(Some(REJECT_AFTER)));
    let live = report
        .gateway
        .as_ref()
        .and_then(|g| g.live_endpoint.clone());
    let findings = vec![
        wireguard(
            module_loaded(),
            tun_present(),
            if t.kind == TunnelKind::WgQuick {
                BackendChoice::Kernel
            } else {
                BackendChoice::Userspace
            },
        ),
        forwarding(
            probe::read_trimmed("/proc/sys/net/ipv4/ip_forward").as_deref(),
            false,
        ),
        mtu(
            &t.interface,
            probe::interface_mtu(&t.interface),
            t.mtu.unwrap_or(1420),
            underlay(),
            probe::interface_mtu("flannel.1"),
        ),
        gateway_link(t, &report),
        endpoint_current(
            t,
            resolve_ips(&t.endpoint.host_string(), t.endpoint.port),
            live.as_deref(),
        ),
        conntrack(conntrack_kernel(), probe::has_tool("conntrack")),
        k3s_service("k3s-agent", false, unit_state("k3s-agent").as_deref()),
    ];
    Report {
        role: "worker",
        findings,
    }
}

/// `proton doctor` on this machine.
pub fn run(
    root: &Root,
    iface: &str,
    stale_after: Option<std::time::Duration>,
) -> Result<Report, OpsError> {
    if root.exists(SPEC_PATH) {
        return gateway(root, stale_after);
    }
    match worker::load(root, iface)? {
        Some(t) => Ok(worker(&t, stale_after)),
        None => Err(OpsError::NotSetUp(
            root.path(SPEC_PATH).display().to_string(),
        )),
    }
}

#[cfg(test)]
mod tests;
