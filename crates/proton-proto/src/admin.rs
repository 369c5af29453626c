//! The gateway daemon's admin socket, `/run/proton/admin.sock`: the requests the CLI
//! sends, the replies (the live [`GatewayStatus`] among them, typed from the device to
//! `proton status --json`), and the blocking client [`request`]. The daemon serves it
//! (`proton_gateway::admin`).
//!
//! One JSON request per line, one JSON response per line.
//!
//! WireGuard only tells us when the last *handshake* happened, and a healthy idle peer
//! re-handshakes only every two minutes — keepalives do not handshake. So "is this peer
//! still there?" is answered from its receive counter instead: the daemon samples the
//! device and remembers when each peer's `rx_bytes` last moved ("last heard"). A peer
//! with persistent keepalive is heard at least every keepalive interval; silence for
//! three intervals means its packets no longer arrive (NAT mapping gone, link cut,
//! port blocked). [`Liveness`] judges that.

use ipnet::{IpNet, Ipv4Net};
use proton_core::datapath::DataPathStats;
use proton_core::host::Root;
use proton_core::keys::PublicKey;
use proton_core::peer::{PeerName, Role};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Host path of the admin socket.
pub const ADMIN_SOCKET: &str = "/run/proton/admin.sock";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum AdminRequest {
    /// The DB changed: bring the device in line now, answer when done.
    Reconcile,
    /// Live state of the interface and its peers.
    Status,
    /// The spec changed: re-read it and apply what needs no new device.
    Reload,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum AdminResponse {
    Reconciled {
        added: usize,
        updated: usize,
        removed: usize,
    },
    Status(GatewayStatus),
    Reloaded(Reloaded),
    Error {
        error: String,
    },
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the gateway daemon is not running (no socket at {0})")]
    NotRunning(PathBuf),
    #[error("talking to the gateway daemon at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Connected, but no answer in time: the daemon is stopped (SIGSTOP), stuck or
    /// overloaded.
    #[error(
        "the gateway daemon did not answer within {1} s (it is running but stuck or overloaded): see `journalctl -u proton-gateway`; `systemctl restart proton-gateway` restarts it"
    )]
    NoAnswer(PathBuf, u64),
    /// The daemon closed the connection before answering: it stopped or crashed.
    #[error(
        "the gateway daemon closed the connection without answering (it stopped or crashed): see `journalctl -u proton-gateway`"
    )]
    Closed(PathBuf),
    #[error("the gateway daemon answered something unreadable: {0}")]
    Protocol(String),
}

/// How long the CLI waits for the daemon's answer. A reconcile of 10,000 peers takes a
/// fraction of a second (a few seconds in a debug build); longer means something is
/// wrong, and the user should hear so.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// A status reads every peer off the device: longer, for very big gateways.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends one request to the daemon under `root` and waits for its answer.
pub fn request(root: &Root, req: &AdminRequest) -> Result<AdminResponse, AdminError> {
    let path = root.path(ADMIN_SOCKET);
    let io = |source| AdminError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(AdminError::NotRunning(path));
        }
        Err(e) => return Err(io(e)),
    };
    let wait = match req {
        AdminRequest::Status => STATUS_TIMEOUT,
        _ => ANSWER_TIMEOUT,
    };
    stream
        .set_read_timeout(Some(wait))
        .and_then(|_| stream.set_write_timeout(Some(wait)))
        .map_err(io)?;
    let mut line = serde_json::to_string(req).expect("requests serialize");
    line.push('\n');
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    let closed = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::UnexpectedEof
        )
    };
    let classify = |e: std::io::Error| {
        if timed_out(&e) {
            AdminError::NoAnswer(path.clone(), wait.as_secs())
        } else if closed(&e) {
            AdminError::Closed(path.clone())
        } else {
            io(e)
        }
    };
    stream.write_all(line.as_bytes()).map_err(classify)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(classify)?;
    if !answer.ends_with('\n') {
        // End of stream before a whole line: the daemon went away mid-answer.
        return Err(AdminError::Closed(path));
    }
    serde_json::from_str(&answer).map_err(|e| AdminError::Protocol(e.to_string()))
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// Spec keys whose new value the daemon now uses.
    pub applied: Vec<String>,
    /// Spec keys that changed but need `systemctl restart proton-gateway`.
    pub need_restart: Vec<String>,
}

/// Asks a running daemon to apply the DB now (after a CLI changed it); what happened,
/// for stderr. The DB is the source of truth and the daemon polls it: a daemon that
/// cannot be asked loses nothing.
pub fn reconcile_now(root: &Root) -> Option<String> {
    reconciled_message(request(root, &AdminRequest::Reconcile))
}

/// The line [`reconcile_now`] says for the daemon's answer to `Reconcile`.
pub fn reconciled_message(answer: Result<AdminResponse, AdminError>) -> Option<String> {
    Some(match answer {
        Ok(AdminResponse::Reconciled {
            added,
            updated,
            removed,
        }) => {
            format!("gateway: applied live ({added} added, {updated} updated, {removed} removed)")
        }
        Ok(AdminResponse::Error { error }) => {
            format!("gateway: could not apply the change: {error}")
        }
        Ok(_) => return None,
        Err(AdminError::NotRunning(_)) => {
            "gateway: the daemon is not running; the change applies when it starts".into()
        }
        Err(e) => format!(
            "gateway: {e}\ngateway: the change is saved and will be applied when the daemon is back"
        ),
    })
}

/// Tells a running daemon the spec changed (`proton apply`); what it applied live and
/// what needs a restart, for stderr. Nothing when no daemon runs: it reads the spec at
/// start.
pub fn reload_now(root: &Root) -> Vec<String> {
    reloaded_message(request(root, &AdminRequest::Reload))
}

/// The lines [`reload_now`] says for the daemon's answer to `Reload`.
pub fn reloaded_message(answer: Result<AdminResponse, AdminError>) -> Vec<String> {
    match answer {
        Ok(AdminResponse::Reloaded(r)) => {
            let mut lines = Vec::new();
            if !r.applied.is_empty() {
                lines.push(format!("gateway: applied live: {}", r.applied.join(", ")));
            }
            if !r.need_restart.is_empty() {
                lines.push(format!(
                    "gateway: {} changed: takes effect after `systemctl restart proton-gateway` (a new WireGuard device; sessions re-handshake)",
                    r.need_restart.join(", ")
                ));
            }
            lines
        }
        Ok(AdminResponse::Error { error }) => {
            vec![format!("gateway: could not apply the spec live: {error}")]
        }
        Ok(_) | Err(AdminError::NotRunning(_)) => Vec::new(),
        Err(e) => vec![format!(
            "gateway: {e}; it reads the spec when it starts again"
        )],
    }
}

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
    pub name: Option<PeerName>,
    pub role: Option<Role>,
    pub public_key: PublicKey,
    /// As the device has them: Proton sets one /32, but `wg set` may add any range.
    pub allowed_ips: Vec<IpNet>,
    pub endpoint: Option<SocketAddr>,
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
    pub address: Ipv4Net,
    /// The spec's persistent keepalive (0: off); staleness is judged from it.
    pub keepalive_secs: u16,
    pub peers: Vec<PeerLive>,
    pub counters: Counters,
    /// The userspace data plane's offloads and counters (absent: kernel backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath: Option<DataPath>,
}

/// Which offloads the userspace data plane uses, and how many packets its syscalls
/// moved since it came up (the data plane's own counters, flattened: the JSON has them
/// at the top level), with the per-syscall averages: above 1 the offloads are at work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataPath {
    #[serde(flatten)]
    pub stats: DataPathStats,
    /// tun_read_packets / tun_reads.
    pub segments_per_tun_read: f64,
    /// tun_write_packets / tun_writes.
    pub packets_per_tun_write: f64,
    /// udp_send_datagrams / udp_sends.
    pub datagrams_per_udp_send: f64,
    /// udp_recv_datagrams / udp_recvs.
    pub segments_per_udp_receive: f64,
}

impl From<DataPathStats> for DataPath {
    fn from(s: DataPathStats) -> Self {
        let per = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        DataPath {
            segments_per_tun_read: per(s.tun_read_packets, s.tun_reads),
            packets_per_tun_write: per(s.tun_write_packets, s.tun_writes),
            datagrams_per_udp_send: per(s.udp_send_datagrams, s.udp_sends),
            segments_per_udp_receive: per(s.udp_recv_datagrams, s.udp_recvs),
            stats: s,
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

impl GatewayStatus {
    /// A gateway with three workers (online, stale, never handshook), for tests of
    /// the code that reads a status.
    #[cfg(any(test, feature = "test-support"))]
    pub fn sample() -> GatewayStatus {
        let live = |name: &str, n: u8, hs: Option<u64>, heard: Option<u64>| PeerLive {
            name: Some(name.parse().expect("a valid name")),
            role: Some(Role::Worker),
            public_key: PublicKey::from_bytes([n; 32]),
            allowed_ips: vec![format!("10.7.7.{}/32", n + 1).parse().expect("a range")],
            endpoint: Some(
                format!("198.18.3.{}:40001", n + 1)
                    .parse()
                    .expect("an address"),
            ),
            last_handshake_secs: hs,
            last_heard_secs: heard,
            rx_bytes: 2048,
            tx_bytes: 10,
            reach: Some("gateway, workers, cluster".into()),
        };
        GatewayStatus {
            interface: "wg0".into(),
            backend: "userspace".into(),
            listen_port: 51820,
            address: "10.7.7.1/24".parse().expect("a range"),
            keepalive_secs: 25,
            peers: vec![
                live("w1", 1, Some(100), Some(3)),
                live("w2", 2, Some(130), Some(90)),
                live("w3", 3, None, None),
            ],
            counters: Counters::default(),
            datapath: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form both sides read: names, roles, keys, ranges and endpoints are the
    /// plain strings the daemon sent before the fields were typed.
    #[test]
    fn a_status_reply_renders_typed_fields_as_strings_and_parses_back() {
        let status = GatewayStatus::sample();
        let reply = AdminResponse::Status(status.clone());
        let line = serde_json::to_string(&reply).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["response"], "status");
        assert_eq!(v["address"], "10.7.7.1/24");
        let p = &v["peers"][0];
        assert_eq!(p["name"], "w1");
        assert_eq!(p["role"], "worker");
        assert_eq!(p["public_key"], status.peers[0].public_key.to_base64());
        assert_eq!(p["allowed_ips"], serde_json::json!(["10.7.7.2/32"]));
        assert_eq!(p["endpoint"], "198.18.3.2:40001");
        assert_eq!(
            v["peers"][2]["last_handshake_secs"],
            serde_json::Value::Null
        );
        assert_eq!(serde_json::from_str::<AdminResponse>(&line).unwrap(), reply);
        // An unknown key (an invitee's throw-away key) has no name or role.
        let mut anon = status.peers[0].clone();
        anon.name = None;
        anon.role = None;
        let v = serde_json::to_value(&anon).unwrap();
        assert_eq!(v["name"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<PeerLive>(v).unwrap(), anon);
    }

    #[test]
    fn a_daemon_answer_becomes_the_line_the_cli_says() {
        let reconciled = AdminResponse::Reconciled {
            added: 1,
            updated: 0,
            removed: 2,
        };
        assert_eq!(
            reconciled_message(Ok(reconciled)).as_deref(),
            Some("gateway: applied live (1 added, 0 updated, 2 removed)")
        );
        let gone = || Err(AdminError::NotRunning("/run/proton/admin.sock".into()));
        assert!(reconciled_message(gone()).unwrap().contains("not running"));
        assert!(reloaded_message(gone()).is_empty());
        let reloaded = AdminResponse::Reloaded(Reloaded {
            applied: vec!["network.dns".into()],
            need_restart: vec!["network.mtu".into()],
        });
        let lines = reloaded_message(Ok(reloaded));
        assert_eq!(lines[0], "gateway: applied live: network.dns");
        assert!(lines[1].starts_with("gateway: network.mtu changed: takes effect after"));
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
}
