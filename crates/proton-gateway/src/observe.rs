//! What the gateway knows about its own health: the live status it reports over the
//! admin socket (`proton status`, `proton doctor`) and the counters behind the metrics.
//!
//! WireGuard only tells us when the last *handshake* happened, and a healthy idle peer
//! re-handshakes only every two minutes — keepalives do not handshake. So "is this peer
//! still there?" is answered from its receive counter instead: the daemon samples the
//! device and remembers when each peer's `rx_bytes` last moved ("last heard"). A peer
//! with persistent keepalive is heard at least every keepalive interval; silence for
//! three intervals means its packets no longer arrive (NAT mapping gone, link cut,
//! port blocked).

use proton_core::keys::PublicKey;
use proton_wg::PeerStatus;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// WireGuard's REJECT_AFTER_TIME: a session older than this is dead. Used as the
/// staleness threshold when no keepalive is configured.
pub const REJECT_AFTER: Duration = Duration::from_secs(180);

/// The default silence threshold: three keepalive intervals, or REJECT_AFTER without
/// keepalive.
pub fn stale_after(keepalive_secs: u16) -> Duration {
    if keepalive_secs == 0 {
        REJECT_AFTER
    } else {
        Duration::from_secs(3 * u64::from(keepalive_secs))
    }
}

/// One peer's liveness as people read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Heard from within the threshold.
    Online,
    /// Handshook once, silent for longer than the threshold.
    Stale,
    /// Never completed a handshake.
    Never,
}

impl Liveness {
    /// Classifies a peer from its handshake age and last-heard age (seconds).
    pub fn of(handshake: Option<u64>, heard: Option<u64>, stale_after: Duration) -> Liveness {
        let limit = stale_after.as_secs();
        match (handshake, heard) {
            (None, _) => Liveness::Never,
            (Some(_), Some(h)) if h <= limit => Liveness::Online,
            // Not heard since the daemon started sampling: the handshake is all we have.
            (Some(hs), None) if hs <= limit => Liveness::Online,
            _ => Liveness::Stale,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Online => "online",
            Liveness::Stale => "stale",
            Liveness::Never => "never",
        }
    }
}

/// A peer as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLive {
    /// From the DB; `None` for a key the DB does not know (an invitee's throw-away key).
    pub name: Option<String>,
    pub role: Option<String>,
    pub public_key: String,
    pub allowed_ips: Vec<String>,
    pub endpoint: Option<String>,
    pub last_handshake_secs: Option<u64>,
    /// Seconds since the peer's receive counter last moved; `None`: not since the
    /// daemon started.
    pub last_heard_secs: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// What the firewall lets this peer reach (`proton_k3s::firewall::reach`).
    #[serde(default)]
    pub reach: Option<String>,
}

/// The gateway's live state, as the admin socket returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub interface: String,
    pub backend: String,
    pub listen_port: u16,
    /// The gateway's tunnel address with prefix, e.g. `10.7.7.1/24`.
    pub address: String,
    /// The spec's persistent keepalive (0: off); staleness is judged from it.
    pub keepalive_secs: u16,
    pub peers: Vec<PeerLive>,
    pub counters: Counters,
    /// The userspace data plane's offloads and counters (absent: kernel backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath: Option<DataPath>,
}

/// Which offloads the userspace data plane uses, and how many packets its syscalls
/// moved since it came up: per-syscall averages above 1 show the offloads at work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataPath {
    /// TUN TCP segmentation offload (TSO split on read, GRO coalesce on write).
    pub tun_tso: bool,
    /// TUN UDP segmentation offload (Linux >= 6.2).
    pub tun_uso: bool,
    /// UDP GSO on the WireGuard socket (one sendmsg per run of datagrams).
    pub udp_gso: bool,
    /// UDP GRO on the WireGuard socket.
    pub udp_gro: bool,
    pub tun_reads: u64,
    pub tun_read_packets: u64,
    pub tun_writes: u64,
    pub tun_write_packets: u64,
    pub udp_sends: u64,
    pub udp_send_datagrams: u64,
    pub udp_recvs: u64,
    pub udp_recv_datagrams: u64,
    /// tun_read_packets / tun_reads.
    pub segments_per_tun_read: f64,
    /// tun_write_packets / tun_writes.
    pub packets_per_tun_write: f64,
    /// udp_send_datagrams / udp_sends.
    pub datagrams_per_udp_send: f64,
    /// udp_recv_datagrams / udp_recvs.
    pub segments_per_udp_receive: f64,
}

impl From<proton_wg::DataPathStats> for DataPath {
    fn from(s: proton_wg::DataPathStats) -> DataPath {
        let per = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        DataPath {
            tun_tso: s.tun_tso,
            tun_uso: s.tun_uso,
            udp_gso: s.udp_gso,
            udp_gro: s.udp_gro,
            tun_reads: s.tun_reads,
            tun_read_packets: s.tun_read_packets,
            tun_writes: s.tun_writes,
            tun_write_packets: s.tun_write_packets,
            udp_sends: s.udp_sends,
            udp_send_datagrams: s.udp_send_datagrams,
            udp_recvs: s.udp_recvs,
            udp_recv_datagrams: s.udp_recv_datagrams,
            segments_per_tun_read: per(s.tun_read_packets, s.tun_reads),
            packets_per_tun_write: per(s.tun_write_packets, s.tun_writes),
            datagrams_per_udp_send: per(s.udp_send_datagrams, s.udp_sends),
            segments_per_udp_receive: per(s.udp_recv_datagrams, s.udp_recvs),
        }
    }
}

/// Counters since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub joins: u64,
    pub failed_joins: u64,
    pub reconciles: u64,
    pub reconcile_seconds_sum: f64,
    pub last_reconcile_seconds: f64,
}

/// The daemon's memory of what it observed: last-heard times and counters.
#[derive(Default)]
pub struct Observer {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per peer: the receive counter last seen, and when it last moved.
    heard: HashMap<PublicKey, (u64, Option<Instant>)>,
    counters: Counters,
}

impl Observer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a sample of the device's peers; returns each peer's last-heard age.
    pub fn sample(&self, peers: &[PeerStatus]) -> Vec<Option<Duration>> {
        self.sample_at(peers, Instant::now())
    }

    fn sample_at(&self, peers: &[PeerStatus], now: Instant) -> Vec<Option<Duration>> {
        let mut inner = self.lock();
        inner
            .heard
            .retain(|k, _| peers.iter().any(|p| p.public_key == *k));
        peers
            .iter()
            .map(|p| {
                let entry = inner.heard.entry(p.public_key).or_insert_with(|| {
                    // First sight: the last handshake is the latest moment we know it
                    // was heard (a handshake is a received packet).
                    let at = p
                        .last_handshake
                        .filter(|_| p.rx_bytes > 0)
                        .and_then(|age| now.checked_sub(age));
                    (p.rx_bytes, at)
                });
                if p.rx_bytes != entry.0 {
                    *entry = (p.rx_bytes, Some(now));
                }
                entry.1.map(|at| now.saturating_duration_since(at))
            })
            .collect()
    }

    pub fn join_succeeded(&self) {
        self.lock().counters.joins += 1;
    }

    pub fn join_failed(&self) {
        self.lock().counters.failed_joins += 1;
    }

    pub fn reconciled(&self, took: Duration) {
        let mut inner = self.lock();
        inner.counters.reconciles += 1;
        inner.counters.reconcile_seconds_sum += took.as_secs_f64();
        inner.counters.last_reconcile_seconds = took.as_secs_f64();
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }
}

/// Samples the device: live peers joined with their DB names and last-heard ages.
/// `store`: the state DB if it can be read (without it, peers have no names);
/// `keepalive_secs`: the keepalive in use now (live reloads change it).
pub(crate) async fn gateway_status(
    device: &proton_wg::Device,
    observer: &Observer,
    store: Option<proton_store::Store>,
    spec: &proton_core::spec::Spec,
    keepalive_secs: u16,
) -> GatewayStatus {
    use proton_store::{Grant, Peer, PeerState};
    // One read of every peer, not one query per live peer (10,000 peers: seconds).
    let known: HashMap<PublicKey, Peer> = store
        .as_ref()
        .and_then(|s| s.list_peers(false).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.public_key, p))
        .collect();
    let live = device.peers().await;
    let heard = observer.sample(&live);
    let admins = store
        .as_ref()
        .and_then(|s| s.granted_addresses(Grant::Admin).ok())
        .unwrap_or_default();
    let peers = live
        .into_iter()
        .zip(heard)
        .map(|(p, heard)| {
            let known = known.get(&p.public_key);
            PeerLive {
                name: known.map(|k| k.name.to_string()),
                role: known.map(|k| k.role.as_str().to_string()),
                public_key: p.public_key.to_base64(),
                allowed_ips: p.allowed_ips.iter().map(|n| n.to_string()).collect(),
                endpoint: p.endpoint.map(|e| e.to_string()),
                last_handshake_secs: p.last_handshake.map(|d| d.as_secs()),
                last_heard_secs: heard.map(|d| d.as_secs()),
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
                reach: known.as_ref().map(|k| {
                    proton_k3s::firewall::reach(
                        k.role.as_str(),
                        k.state == PeerState::Invited,
                        admins.contains(&k.address),
                    )
                    .to_string()
                }),
            }
        })
        .collect();
    GatewayStatus {
        interface: device.name().to_string(),
        backend: device.backend().to_string(),
        listen_port: device.listen_port().await,
        address: spec
            .network
            .cidr
            .with_host(spec.gateway_address())
            .to_string(),
        keepalive_secs,
        peers,
        counters: observer.counters(),
        datapath: device.datapath_stats().map(Into::into),
    }
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
            label(p.name.as_deref().unwrap_or("")),
            label(p.role.as_deref().unwrap_or("")),
            label(&p.public_key)
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
        ("tun_tso", d.tun_tso),
        ("tun_uso", d.tun_uso),
        ("udp_gso", d.udp_gso),
        ("udp_gro", d.udp_gro),
    ] {
        let _ = writeln!(
            out,
            "proton_datapath_offload{{offload=\"{name}\"}} {}",
            on as u8
        );
    }
    for (name, value, help) in [
        ("tun_reads", d.tun_reads, "TUN reads."),
        (
            "tun_read_packets",
            d.tun_read_packets,
            "IP packets the TUN reads yielded (after the TSO split).",
        ),
        ("tun_writes", d.tun_writes, "TUN writes."),
        (
            "tun_write_packets",
            d.tun_write_packets,
            "IP packets the TUN writes carried (before GRO coalescing).",
        ),
        (
            "udp_sends",
            d.udp_sends,
            "sendmsg calls on the WireGuard UDP socket.",
        ),
        (
            "udp_send_datagrams",
            d.udp_send_datagrams,
            "WireGuard datagrams those sends carried (GSO).",
        ),
        (
            "udp_receives",
            d.udp_recvs,
            "Datagrams the kernel handed over (a GRO datagram counts once).",
        ),
        (
            "udp_receive_datagrams",
            d.udp_recv_datagrams,
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
    use proton_core::keys::PrivateKey;

    fn peer(key: PublicKey, rx: u64, hs: Option<u64>) -> PeerStatus {
        PeerStatus {
            public_key: key,
            allowed_ips: vec![],
            endpoint: None,
            keepalive: Some(25),
            preshared_key: None,
            last_handshake: hs.map(Duration::from_secs),
            rx_bytes: rx,
            tx_bytes: 0,
        }
    }

    #[test]
    fn last_heard_follows_the_receive_counter_not_the_handshake() {
        let obs = Observer::default();
        let key = PrivateKey::generate().public_key();
        let t0 = Instant::now();
        // First sight: heard at the handshake, 10 s ago.
        let a = obs.sample_at(&[peer(key, 100, Some(10))], t0);
        assert_eq!(a, vec![Some(Duration::from_secs(10))]);
        // Keepalives keep arriving: heard now, although the handshake is older.
        let b = obs.sample_at(&[peer(key, 132, Some(40))], t0 + Duration::from_secs(30));
        assert_eq!(b, vec![Some(Duration::ZERO)]);
        // The link is cut: the counter stops, the age grows.
        let c = obs.sample_at(&[peer(key, 132, Some(140))], t0 + Duration::from_secs(130));
        assert_eq!(c, vec![Some(Duration::from_secs(100))]);
        assert_eq!(
            Liveness::of(Some(140), Some(100), stale_after(25)),
            Liveness::Stale
        );
        // A peer that never handshook was never heard.
        let other = PrivateKey::generate().public_key();
        let d = obs.sample_at(&[peer(other, 0, None)], t0 + Duration::from_secs(131));
        assert_eq!(d, vec![None]);
        assert_eq!(Liveness::of(None, None, stale_after(25)), Liveness::Never);
    }

    #[test]
    fn thresholds_come_from_the_keepalive() {
        assert_eq!(stale_after(25), Duration::from_secs(75));
        assert_eq!(stale_after(0), REJECT_AFTER);
        let t = stale_after(25);
        assert_eq!(Liveness::of(Some(120), Some(20), t), Liveness::Online);
        assert_eq!(Liveness::of(Some(20), Some(76), t), Liveness::Stale);
        assert_eq!(Liveness::of(Some(70), None, t), Liveness::Online);
    }

    #[test]
    fn metrics_escape_labels_and_count_states() {
        let status = GatewayStatus {
            interface: "wg0".into(),
            backend: "userspace".into(),
            listen_port: 51820,
            address: "10.7.7.1/24".into(),
            keepalive_secs: 25,
            peers: vec![PeerLive {
                name: Some("we\"ird\\name".into()),
                role: Some("worker".into()),
                public_key: "k".into(),
                allowed_ips: vec![],
                endpoint: None,
                last_handshake_secs: Some(3),
                last_heard_secs: Some(1),
                rx_bytes: 10,
                tx_bytes: 20,
                reach: None,
            }],
            counters: Counters {
                joins: 2,
                failed_joins: 1,
                ..Default::default()
            },
            datapath: None,
        };
        let text = render_metrics(&status);
        assert!(
            text.contains("proton_peers{state=\"online\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("proton_peers{state=\"stale\"} 0\n"));
        assert!(text.contains(r#"peer="we\"ird\\name""#), "{text}");
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
            address: "10.7.7.1/24".into(),
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
