//! The metrics endpoint: `GET /metrics` in the Prometheus text format, on the gateway's
//! tunnel address only (port 9586), bound to the WireGuard interface like the join API
//! — a scraper inside the VPN reads it; the internet (and the NAT side) cannot.

use axum::Router;
use axum::routing::get;
use proton_proto::admin::{DataPath, GatewayStatus, Liveness, PeerLive, stale_after};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The metrics port on the tunnel address.
pub const METRICS_PORT: u16 = 9586;

/// Produces the current metrics text.
pub type Render = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    render: Render,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render().await,
                )
            }
        }),
    );
    crate::bounded::serve(
        "metrics",
        listener,
        app,
        crate::bounded::Limits::METRICS,
        shutdown,
    )
    .await
}

/// Escapes a Prometheus label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The status in the Prometheus text exposition format (version 0.0.4).
pub fn render_metrics(status: &GatewayStatus) -> String {
    use std::fmt::Write;
    let threshold = stale_after(status.keepalive_secs);
    let mut out = String::new();
    let mut by_state: HashMap<Liveness, usize> = HashMap::new();
    for p in &status.peers {
        let l = Liveness::of(p.last_handshake_secs, p.last_heard_secs, threshold);
        *by_state.entry(l).or_default() += 1;
    }
    let peer_labels = |p: &PeerLive| {
        format!(
            "peer=\"{}\",role=\"{}\",public_key=\"{}\"",
            label(p.name.as_ref().map_or("", |n| n.as_str())),
            label(p.role.map_or("", |r| r.as_str())),
            label(&p.public_key.to_base64())
        )
    };
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    header(
        &mut out,
        "proton_peers",
        "gauge",
        "Peers on the gateway's interface, by liveness (stale: silent for 3x keepalive).",
    );
    for l in [Liveness::Online, Liveness::Stale, Liveness::Never] {
        let n = by_state.get(&l).copied().unwrap_or(0);
        let _ = writeln!(out, "proton_peers{{state=\"{}\"}} {n}", l.as_str());
    }
    header(
        &mut out,
        "proton_peer_last_handshake_seconds",
        "gauge",
        "Seconds since the peer's last WireGuard handshake (absent: never).",
    );
    for p in &status.peers {
        if let Some(age) = p.last_handshake_secs {
            let _ = writeln!(
                out,
                "proton_peer_last_handshake_seconds{{{}}} {age}",
                peer_labels(p)
            );
        }
    }
    header(
        &mut out,
        "proton_peer_last_heard_seconds",
        "gauge",
        "Seconds since a packet was last received from the peer (absent: not since start).",
    );
    for p in &status.peers {
        if let Some(age) = p.last_heard_secs {
            let _ = writeln!(
                out,
                "proton_peer_last_heard_seconds{{{}}} {age}",
                peer_labels(p)
            );
        }
    }
    header(
        &mut out,
        "proton_peer_receive_bytes_total",
        "counter",
        "Bytes received from the peer.",
    );
    for p in &status.peers {
        let _ = writeln!(
            out,
            "proton_peer_receive_bytes_total{{{}}} {}",
            peer_labels(p),
            p.rx_bytes
        );
    }
    header(
        &mut out,
        "proton_peer_transmit_bytes_total",
        "counter",
        "Bytes sent to the peer.",
    );
    for p in &status.peers {
        let _ = writeln!(
            out,
            "proton_peer_transmit_bytes_total{{{}}} {}",
            peer_labels(p),
            p.tx_bytes
        );
    }
    let c = &status.counters;
    header(
        &mut out,
        "proton_joins_total",
        "counter",
        "Invitations redeemed through the join API since the daemon started.",
    );
    let _ = writeln!(out, "proton_joins_total {}", c.joins);
    header(
        &mut out,
        "proton_join_failures_total",
        "counter",
        "Join API redeem requests refused (wrong secret, expired, used, unknown caller).",
    );
    let _ = writeln!(out, "proton_join_failures_total {}", c.failed_joins);
    header(
        &mut out,
        "proton_reconcile_duration_seconds",
        "summary",
        "Time to bring the device's peers in line with the state DB.",
    );
    let _ = writeln!(
        out,
        "proton_reconcile_duration_seconds_sum {}",
        c.reconcile_seconds_sum
    );
    let _ = writeln!(
        out,
        "proton_reconcile_duration_seconds_count {}",
        c.reconciles
    );
    header(
        &mut out,
        "proton_reconcile_last_duration_seconds",
        "gauge",
        "Duration of the latest reconcile.",
    );
    let _ = writeln!(
        out,
        "proton_reconcile_last_duration_seconds {}",
        c.last_reconcile_seconds
    );
    if let Some(d) = &status.datapath {
        render_datapath(&mut out, d);
    }
    out
}

/// The userspace data plane's offload gauges and syscall/packet counters.
fn render_datapath(out: &mut String, d: &DataPath) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP proton_datapath_offload Kernel offloads the userspace data plane uses (1: on).\n# TYPE proton_datapath_offload gauge"
    );
    for (name, on) in [
        ("tun_tso", d.stats.tun_tso),
        ("tun_uso", d.stats.tun_uso),
        ("udp_gso", d.stats.udp_gso),
        ("udp_gro", d.stats.udp_gro),
    ] {
        let _ = writeln!(
            out,
            "proton_datapath_offload{{offload=\"{name}\"}} {}",
            on as u8
        );
    }
    for (name, value, help) in [
        ("tun_reads", d.stats.tun_reads, "TUN reads."),
        (
            "tun_read_packets",
            d.stats.tun_read_packets,
            "IP packets the TUN reads yielded (after the TSO split).",
        ),
        ("tun_writes", d.stats.tun_writes, "TUN writes."),
        (
            "tun_write_packets",
            d.stats.tun_write_packets,
            "IP packets the TUN writes carried (before GRO coalescing).",
        ),
        (
            "udp_sends",
            d.stats.udp_sends,
            "sendmsg calls on the WireGuard UDP socket.",
        ),
        (
            "udp_send_datagrams",
            d.stats.udp_send_datagrams,
            "WireGuard datagrams those sends carried (GSO).",
        ),
        (
            "udp_receives",
            d.stats.udp_recvs,
            "Datagrams the kernel handed over (a GRO datagram counts once).",
        ),
        (
            "udp_receive_datagrams",
            d.stats.udp_recv_datagrams,
            "WireGuard datagrams in them.",
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP proton_datapath_{name}_total {help}\n# TYPE proton_datapath_{name}_total counter\nproton_datapath_{name}_total {value}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proton_proto::admin::Counters;

    #[test]
    fn metrics_escape_labels_and_count_states() {
        let mut status = GatewayStatus::sample();
        status.peers.truncate(1);
        status.counters = Counters {
            joins: 2,
            failed_joins: 1,
            ..Default::default()
        };
        let text = render_metrics(&status);
        assert!(
            text.contains("proton_peers{state=\"online\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("proton_peers{state=\"stale\"} 0\n"));
        assert!(text.contains(r#"peer="w1",role="worker""#), "{text}");
        // Names are DNS labels; the escaping stays for whatever else becomes a label.
        assert_eq!(label("we\"ird\\name"), r#"we\"ird\\name"#);
        assert!(text.contains("proton_join_failures_total 1\n"));
        assert!(text.contains("proton_joins_total 2\n"));
        assert!(
            !text.contains("proton_datapath"),
            "no data plane metrics without one"
        );
    }

    #[test]
    fn datapath_counters_reach_status_json_and_metrics() {
        let stats = proton_wg::DataPathStats {
            tun_tso: true,
            tun_uso: false,
            udp_gso: true,
            udp_gro: true,
            tun_reads: 10,
            tun_read_packets: 440,
            tun_writes: 20,
            tun_write_packets: 400,
            udp_sends: 11,
            udp_send_datagrams: 440,
            udp_recvs: 25,
            udp_recv_datagrams: 400,
        };
        let status = GatewayStatus {
            interface: "wg0".into(),
            backend: "userspace".into(),
            listen_port: 51820,
            address: "10.7.7.1/24".parse().unwrap(),
            keepalive_secs: 25,
            peers: vec![],
            counters: Counters::default(),
            datapath: Some(stats.into()),
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["datapath"]["segments_per_tun_read"], 44.0);
        assert_eq!(json["datapath"]["packets_per_tun_write"], 20.0);
        assert_eq!(json["datapath"]["datagrams_per_udp_send"], 40.0);
        assert_eq!(json["datapath"]["segments_per_udp_receive"], 16.0);
        assert_eq!(json["datapath"]["tun_uso"], false);
        let back: GatewayStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
        let text = render_metrics(&status);
        assert!(
            text.contains("proton_datapath_offload{offload=\"tun_tso\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("proton_datapath_offload{offload=\"tun_uso\"} 0\n"));
        assert!(text.contains("proton_datapath_tun_read_packets_total 440\n"));
        assert!(text.contains("proton_datapath_udp_receive_datagrams_total 400\n"));
        // An older daemon's status (no datapath) still parses.
        let mut old = serde_json::to_value(&status).unwrap();
        old.as_object_mut().unwrap().remove("datapath");
        let old: GatewayStatus = serde_json::from_value(old).unwrap();
        assert_eq!(old.datapath, None);
    }
}
