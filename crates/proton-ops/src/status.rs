//! `proton status`: the gateway's interface and every peer with its liveness, the
//! cluster when K3s runs here; on a worker, its tunnel and the gateway. One typed
//! report, rendered as a table for people or as stable JSON for scripts.

use crate::OpsError;
use crate::kube::{self, ClusterView};
use crate::worker::{self, TunnelKind, WorkerTunnel};
use ipnet::{IpNet, Ipv4Net};
use proton_core::host::Root;
use proton_core::spec::{SPEC_PATH, Spec};
use proton_proto::admin::{
    self, AdminRequest, AdminResponse, Counters, DataPath, GatewayStatus, Liveness, PeerLive,
    REJECT_AFTER,
};
use serde::Serialize;
use std::fmt::Write;
use std::time::Duration;

/// One peer row: the peer as the daemon reports it, with the address people look for
/// and its liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerRow {
    #[serde(flatten)]
    pub peer: PeerLive,
    /// Its first allowed range (Proton gives each peer one /32).
    pub address: Option<IpNet>,
    pub state: Liveness,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayReport {
    pub interface: String,
    pub backend: String,
    pub listen_port: u16,
    pub address: Ipv4Net,
    /// Silence after which a peer counts as stale (3x keepalive unless overridden).
    pub stale_after_secs: u64,
    pub peers: Vec<PeerRow>,
    pub counters: Counters,
    /// The userspace data plane's offloads and syscall/packet counters (absent: kernel
    /// backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datapath: Option<DataPath>,
    pub cluster: ClusterView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayLink {
    pub public_key: String,
    /// As configured (a host name stays a name).
    pub endpoint: String,
    /// Where the interface sends packets now.
    pub live_endpoint: Option<String>,
    pub last_handshake_secs: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub state: Liveness,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerReport {
    pub interface: String,
    pub tunnel: TunnelKind,
    pub config: String,
    pub address: String,
    pub stale_after_secs: u64,
    /// `None`: the interface is down (or lacks the gateway peer).
    pub gateway: Option<GatewayLink>,
}

/// What `proton status` reports on this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
// One value per `proton status`, made once and printed: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Status {
    Gateway(GatewayReport),
    Worker(WorkerReport),
}

/// Asks the running daemon for its live state.
pub fn daemon_status(root: &Root) -> Result<GatewayStatus, OpsError> {
    match admin::request(root, &AdminRequest::Status)? {
        AdminResponse::Status(s) => Ok(s),
        AdminResponse::Error { error } => Err(OpsError::Daemon(error)),
        other => Err(OpsError::Daemon(format!("unexpected answer {other:?}"))),
    }
}

/// Joins the daemon's live peers with liveness judged against `stale_after`.
pub fn gateway_report(
    s: GatewayStatus,
    stale_after: Duration,
    cluster: ClusterView,
) -> GatewayReport {
    let peers = s
        .peers
        .into_iter()
        .map(|p| PeerRow {
            state: Liveness::of(p.last_handshake_secs, p.last_heard_secs, stale_after),
            address: p.allowed_ips.first().copied(),
            peer: p,
        })
        .collect();
    GatewayReport {
        interface: s.interface,
        backend: s.backend,
        listen_port: s.listen_port,
        address: s.address,
        stale_after_secs: stale_after.as_secs(),
        peers,
        counters: s.counters,
        datapath: s.datapath,
        cluster,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The worker's view: its tunnel and the gateway link. A worker's gateway session
/// re-handshakes every two minutes while keepalives flow, so a handshake older than
/// WireGuard's reject-after time (180 s) means the link is gone.
pub fn worker_report(t: &WorkerTunnel, stale_after: Option<Duration>) -> WorkerReport {
    let stale_after = stale_after.unwrap_or(REJECT_AFTER);
    let link = worker::gateway_link(t).ok().flatten();
    let now = unix_now();
    WorkerReport {
        interface: t.interface.clone(),
        tunnel: t.kind,
        config: t.config_path.clone(),
        address: t.address.clone(),
        stale_after_secs: stale_after.as_secs(),
        gateway: link.map(|l| {
            let age = l.latest_handshake.map(|at| now.saturating_sub(at));
            GatewayLink {
                public_key: l.public_key,
                endpoint: t.endpoint.to_string(),
                live_endpoint: l.endpoint,
                last_handshake_secs: age,
                rx_bytes: l.rx_bytes,
                tx_bytes: l.tx_bytes,
                state: Liveness::of(age, age, stale_after),
            }
        }),
    }
}

/// `proton status` on this machine: a gateway if it has a spec, else a joined worker.
pub fn gather(root: &Root, iface: &str, stale_after: Option<Duration>) -> Result<Status, OpsError> {
    if root.exists(SPEC_PATH) {
        let spec = Spec::load(root)?;
        let live = daemon_status(root)?;
        let threshold =
            stale_after.unwrap_or_else(|| admin::stale_after(spec.network.persistent_keepalive));
        return Ok(Status::Gateway(gateway_report(
            live,
            threshold,
            kube::probe(root),
        )));
    }
    match worker::load(root, iface)? {
        Some(t) => Ok(Status::Worker(worker_report(&t, stale_after))),
        None => Err(OpsError::NotSetUp(
            root.path(SPEC_PATH).display().to_string(),
        )),
    }
}

/// `12s`, `3m04s`, `2h05m`, `3d04h`; `never` for none.
pub fn age(secs: Option<u64>) -> String {
    match secs {
        None => "never".into(),
        Some(s) if s < 60 => format!("{s}s ago"),
        Some(s) if s < 3600 => format!("{}m{:02}s ago", s / 60, s % 60),
        Some(s) if s < 86400 => format!("{}h{:02}m ago", s / 3600, (s % 3600) / 60),
        Some(s) => format!("{}d{:02}h ago", s / 86400, (s % 86400) / 3600),
    }
}

/// `1.5 KiB` style sizes.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn render_cluster(out: &mut String, c: &ClusterView) {
    match c {
        ClusterView::NotRunning { reason } => {
            let _ = writeln!(out, "cluster: not running ({reason})");
        }
        ClusterView::Unreachable { error } => {
            let _ = writeln!(out, "cluster: K3s installed but not answering: {error}");
        }
        ClusterView::Running {
            server_version,
            nodes,
            addons,
            certificates,
            skew,
            ..
        } => {
            let _ = writeln!(
                out,
                "cluster: K3s {}",
                server_version.as_deref().unwrap_or("(version unknown)")
            );
            let _ = writeln!(
                out,
                "  {:<20} {:<9} {:<16} {:<16} ROLE",
                "NODE", "READY", "VERSION", "ADDRESS"
            );
            for n in nodes {
                let _ = writeln!(
                    out,
                    "  {:<20} {:<9} {:<16} {:<16} {}",
                    n.name,
                    if n.ready { "Ready" } else { "NotReady" },
                    n.kubelet_version,
                    n.internal_ip.as_deref().unwrap_or("-"),
                    if n.control_plane { "server" } else { "agent" }
                );
            }
            for s in skew {
                let _ = writeln!(
                    out,
                    "  ! {} runs {} but the server runs {}",
                    s.node, s.kubelet, s.server
                );
            }
            if !addons.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:<20} {:<16} {:<12} JOB",
                    "ADD-ON", "NAMESPACE", "VERSION"
                );
                for a in addons {
                    let _ = writeln!(
                        out,
                        "  {:<20} {:<16} {:<12} {}",
                        a.name,
                        a.namespace,
                        a.version.as_deref().unwrap_or("-"),
                        a.job
                    );
                }
            }
            for c in certificates {
                let _ = writeln!(
                    out,
                    "  certificate {}/{}: {}{}",
                    c.namespace,
                    c.name,
                    if c.ready { "ready" } else { "NOT READY" },
                    c.not_after
                        .as_deref()
                        .map(|t| format!(", valid until {t}"))
                        .or_else(|| c.message.as_deref().map(|m| format!(" ({m})")))
                        .unwrap_or_default()
                );
            }
        }
    }
}

/// The table for people.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    match status {
        Status::Gateway(g) => {
            let _ = writeln!(
                out,
                "gateway: {} {} ({}), UDP port {}, stale after {}s of silence",
                g.interface, g.address, g.backend, g.listen_port, g.stale_after_secs
            );
            let _ = writeln!(
                out,
                "{:<14} {:<7} {:<15} {:<22} {:<13} {:<13} {:>10} {:>10}  {:<30} STATE",
                "PEER", "ROLE", "ADDRESS", "ENDPOINT", "HANDSHAKE", "HEARD", "RX", "TX", "REACH"
            );
            for p in &g.peers {
                let _ = writeln!(
                    out,
                    "{:<14} {:<7} {:<15} {:<22} {:<13} {:<13} {:>10} {:>10}  {:<30} {}",
                    p.peer.name.as_ref().map_or("(invitee)", |n| n.as_str()),
                    p.peer.role.map_or("-", |r| r.as_str()),
                    p.address.map_or("-".into(), |a| a.to_string()),
                    p.peer.endpoint.map_or("-".into(), |e| e.to_string()),
                    age(p.peer.last_handshake_secs),
                    age(p.peer.last_heard_secs),
                    bytes(p.peer.rx_bytes),
                    bytes(p.peer.tx_bytes),
                    p.peer.reach.as_deref().unwrap_or("-"),
                    p.state.as_str()
                );
            }
            if g.peers.is_empty() {
                let _ = writeln!(out, "(no peers: invite one with `proton invite NAME`)");
            }
            let _ = writeln!(
                out,
                "joins: {} redeemed, {} refused since the daemon started",
                g.counters.joins, g.counters.failed_joins
            );
            render_cluster(&mut out, &g.cluster);
        }
        Status::Worker(w) => {
            let how = match w.tunnel {
                TunnelKind::Agent => "proton agent",
                TunnelKind::WgQuick => "wg-quick",
            };
            let _ = writeln!(
                out,
                "worker: {} {} ({how}, {})",
                w.interface, w.address, w.config
            );
            match &w.gateway {
                None => {
                    let _ = writeln!(
                        out,
                        "gateway: the tunnel is down (no interface {} with the gateway peer)",
                        w.interface
                    );
                }
                Some(g) => {
                    let _ = writeln!(
                        out,
                        "gateway: {} -> {}  handshake {}  rx {}  tx {}  {}",
                        g.endpoint,
                        g.live_endpoint.as_deref().unwrap_or("(none)"),
                        age(g.last_handshake_secs),
                        bytes(g.rx_bytes),
                        bytes(g.tx_bytes),
                        g.state.as_str()
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_judges_each_peer_and_renders_both_ways() {
        let status = GatewayStatus::sample();
        let r = gateway_report(
            status,
            admin::stale_after(25),
            ClusterView::NotRunning {
                reason: "no kubeconfig".into(),
            },
        );
        let states: Vec<_> = r.peers.iter().map(|p| p.state).collect();
        assert_eq!(states, [Liveness::Online, Liveness::Stale, Liveness::Never]);
        let st = Status::Gateway(r);
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["role"], "gateway");
        assert_eq!(json["stale_after_secs"], 75);
        assert_eq!(json["peers"][1]["state"], "stale");
        assert_eq!(json["peers"][0]["address"], "10.7.7.2/32");
        // The row is the daemon's peer, flattened, plus address and state: the keys
        // `proton status --json` printed before the status was typed, unchanged.
        let row = &json["peers"][0];
        for key in [
            "name",
            "role",
            "address",
            "endpoint",
            "public_key",
            "last_handshake_secs",
            "last_heard_secs",
            "rx_bytes",
            "tx_bytes",
            "state",
            "reach",
        ] {
            assert!(row.get(key).is_some(), "{key} missing: {row}");
        }
        assert_eq!(row["name"], "w1");
        assert_eq!(row["role"], "worker");
        assert_eq!(row["endpoint"], "198.18.3.2:40001");
        assert_eq!(row["state"], "online");
        assert_eq!(json["address"], "10.7.7.1/24");
        assert_eq!(json["cluster"]["state"], "not_running");
        let table = render(&st);
        assert!(table.contains("w2"), "{table}");
        assert!(table.contains("1m30s ago"), "{table}");
        assert!(table.contains("cluster: not running"), "{table}");
        assert_eq!(bytes(2048), "2.0 KiB");
    }
}
