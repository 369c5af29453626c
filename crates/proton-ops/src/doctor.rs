//! `proton doctor`: every check that explains a silent network failure, each judged
//! pass / warn / fail, and every failure with the exact command that fixes it.
//!
//! The judgements are pure functions of what was read (file text, `nft -j` output,
//! `kubectl` JSON), tested on samples; `gateway()` and `worker()` gather the inputs on
//! the running host and call them.

use crate::OpsError;
use crate::kube;
use crate::nft::{self, PortVerdict};
use crate::probe;
use crate::status;
use crate::worker::{self, TunnelKind, WorkerTunnel};
use proton_core::backend::Backend;
use proton_core::host::Root;
use proton_core::spec::{SPEC_PATH, Spec};
use proton_proto::admin::{REJECT_AFTER, stale_after as default_stale_after};
use serde::Serialize;
use std::net::IpAddr;

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

/// The state of K3s's unit, `None` when K3s is not installed under `root` (neither its
/// binary nor its unit file). systemd is asked only for the real root: under another
/// root (a rendered tree, a test) or on a host without systemctl there is no systemd
/// that runs that tree's K3s, so the API the cluster probe reached stands in for it:
/// answering is `active`, not answering is `not answering its API`, and without a
/// cluster view (a worker) the state is `unknown`.
fn unit_state(root: &Root, unit: &str, cluster: Option<&kube::ClusterView>) -> Option<String> {
    let installed = root.exists(proton_k3s::install::DEFAULT_K3S_BIN)
        || [
            format!("/etc/systemd/system/{unit}.service"),
            format!("/lib/systemd/system/{unit}.service"),
            format!("/usr/lib/systemd/system/{unit}.service"),
        ]
        .iter()
        .any(|p| root.exists(p));
    if !installed {
        return None;
    }
    if root.is_system() && probe::has_tool("systemctl") {
        let out = std::process::Command::new("systemctl")
            .args(["is-active", unit])
            .output()
            .ok()?;
        return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    Some(
        match cluster {
            Some(kube::ClusterView::Running { .. }) => "active",
            Some(kube::ClusterView::Unreachable { .. }) => "not answering its API",
            _ => "unknown",
        }
        .to_string(),
    )
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

/// Proton's own table, `None` when it is missing.
fn proton_table() -> Result<Option<ProtonTable>, String> {
    if !probe::has_tool("nft") {
        return Err("nft is not installed".into());
    }
    match probe::run(&["nft", "-j", "list", "table", "inet", "proton"]) {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => Ok(Some(ProtonTable::parse(&v))),
            // nft 1.0.6 writes broken JSON for a table with `flags owner` (another
            // program holding the name): read the rules' comments from the text form.
            Err(_) => {
                let text = probe::run(&["nft", "list", "table", "inet", "proton"])
                    .map_err(|e| e.to_string())?;
                Ok(Some(ProtonTable::parse_text(&text)))
            }
        },
        // nft exits non-zero ("No such file or directory") when the table is missing.
        Err(_) => Ok(None),
    }
}

/// The addresses of pending invitations (fenced to the join API).
fn pending_invitees(root: &Root, spec: &Spec) -> Vec<String> {
    proton_store::Store::open_existing(root, &spec.network.cidr)
        .and_then(|s| s.active_peers())
        .map(|peers| {
            peers
                .into_iter()
                .filter(|p| p.state == proton_store::PeerState::Invited)
                .map(|p| p.address.to_string())
                .collect()
        })
        .unwrap_or_default()
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
    let live = status::daemon_status(root);
    // gotatun binds its UDP socket with the first peer (see proton-wg's userspace.rs).
    let idle_userspace = live
        .as_ref()
        .is_ok_and(|s| s.backend == "userspace" && s.peers.is_empty());
    findings.push(udp_bound(
        port,
        udp.iter().any(|t| probe::udp_port_bound(t, port)),
        idle_userspace,
    ));
    findings.push(firewall(port, ruleset_verdict(port, &n.interface)));
    let table = proton_table();
    findings.push(firewall_table(
        table.as_ref().map(Option::as_ref).map_err(Clone::clone),
    ));
    findings.push(invitee_fence(
        table.as_ref().map(Option::as_ref).map_err(Clone::clone),
        &pending_invitees(root, &spec),
    ));
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
    let cluster = kube::probe(root);
    findings.push(k3s_service(
        "k3s",
        spec.k3s.enabled,
        unit_state(root, "k3s", Some(&cluster)).as_deref(),
    ));
    findings.extend(version_skew(&cluster));
    findings.extend(cluster_health(&cluster));
    findings.extend(cluster_network(
        &cluster,
        &n.cidr,
        spec.public_ip(),
        spec.ingress.enabled,
    ));
    let host = spec.gateway.endpoint.host_string();
    findings.push(endpoint(
        &host,
        resolve_ips(&host, port),
        probe::is_local_address,
        spec.public_ip(),
    ));
    match live {
        Ok(live) => {
            let threshold =
                stale_after.unwrap_or_else(|| default_stale_after(n.persistent_keepalive));
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
pub fn worker(root: &Root, t: &WorkerTunnel, stale_after: Option<std::time::Duration>) -> Report {
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
                Backend::Kernel
            } else {
                Backend::Userspace
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
        k3s_service(
            "k3s-agent",
            false,
            unit_state(root, "k3s-agent", None).as_deref(),
        ),
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
        Some(t) => Ok(worker(root, &t, stale_after)),
        None => Err(OpsError::NotSetUp(
            root.path(SPEC_PATH).display().to_string(),
        )),
    }
}

mod checks;
pub use checks::*;

#[cfg(test)]
mod tests;
