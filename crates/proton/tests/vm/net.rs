//! Helpers for the scenarios that run inside the VM: commands in a network namespace,
//! a veth pair between two namespaces, a kernel WireGuard peer set up with `wg` the way
//! wg-quick does it, `wg show` dumps, and a pinger that counts lost replies.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// `cmd`, prefixed with `ip netns exec NS` when `ns` is given.
pub fn command(ns: Option<&str>, cmd: &[&str]) -> Command {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).args(cmd);
            c
        }
        None => {
            let mut c = Command::new(cmd[0]);
            c.args(&cmd[1..]);
            c
        }
    };
    c.stdin(Stdio::null());
    c
}

pub fn run(ns: Option<&str>, cmd: &[&str]) -> Output {
    command(ns, cmd)
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs `cmd`, panics with its output unless it succeeds, returns its stdout.
pub fn ok(ns: Option<&str>, cmd: &[&str]) -> String {
    let out = run(ns, cmd);
    assert!(
        out.status.success(),
        "{ns:?} {cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Three pings that must all be answered (within 30 s: TCG is slow).
pub fn ping(ns: Option<&str>, to: &str) {
    ok(ns, &["ping", "-c", "3", "-w", "30", to]);
}

/// Two namespaces joined by a veth: `gw` (None: the VM's own namespace) holds
/// 192.0.2.1/24, `peer` holds 192.0.2.2/24. Dropping it removes the namespaces.
pub struct Pair {
    gw: Option<String>,
    peer: String,
}

impl Pair {
    pub fn new(gw: Option<&str>, peer: &str) -> Pair {
        let pair = Pair {
            gw: gw.map(str::to_string),
            peer: peer.to_string(),
        };
        let (a, b) = (format!("v{peer}a"), format!("v{peer}b"));
        for ns in gw.iter().chain([&peer]) {
            ok(None, &["ip", "netns", "add", ns]);
            ok(Some(ns), &["ip", "link", "set", "lo", "up"]);
        }
        ok(
            None,
            &["ip", "link", "add", &a, "type", "veth", "peer", "name", &b],
        );
        ok(None, &["ip", "link", "set", &b, "netns", peer]);
        if let Some(gw) = gw {
            ok(None, &["ip", "link", "set", &a, "netns", gw]);
        }
        ok(gw, &["ip", "addr", "add", "192.0.2.1/24", "dev", &a]);
        ok(gw, &["ip", "link", "set", &a, "up"]);
        ok(
            Some(peer),
            &["ip", "addr", "add", "192.0.2.2/24", "dev", &b],
        );
        ok(Some(peer), &["ip", "link", "set", &b, "up"]);
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = run(None, &["ip", "link", "del", &format!("v{}a", self.peer)]);
        for ns in self.gw.iter().chain([&self.peer]) {
            let _ = run(None, &["ip", "netns", "del", ns]);
        }
    }
}

/// A kernel WireGuard interface in `ns` from a `wg setconf` text, with its address and
/// MTU, brought up: what wg-quick does, minus routes (the address's prefix routes).
pub fn kernel_peer(ns: &str, iface: &str, setconf: &str, address: &str, mtu: u16) {
    let path = PathBuf::from(format!("/tmp/{ns}-{iface}.conf"));
    proton_core::host::write_atomic(&path, setconf.as_bytes(), 0o600).unwrap();
    let p = path.to_str().unwrap();
    ok(Some(ns), &["ip", "link", "add", iface, "type", "wireguard"]);
    ok(Some(ns), &["wg", "setconf", iface, p]);
    ok(Some(ns), &["ip", "addr", "add", address, "dev", iface]);
    ok(
        Some(ns),
        &["ip", "link", "set", iface, "mtu", &mtu.to_string(), "up"],
    );
}

/// `wg show IFACE dump`: the interface line, then one tab-split line per peer
/// (key, psk, endpoint, allowed IPs, handshake epoch, rx, tx, keepalive).
pub fn wg_dump(ns: Option<&str>, iface: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let text = ok(ns, &["wg", "show", iface, "dump"]);
    let mut lines = text
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>());
    let head = lines.next().expect("interface line");
    (head, lines.collect())
}

/// The dump line of the peer with base64 key `key`.
pub fn wg_peer(ns: Option<&str>, iface: &str, key: &str) -> Vec<String> {
    wg_dump(ns, iface)
        .1
        .into_iter()
        .find(|p| p[0] == key)
        .unwrap_or_else(|| panic!("peer {key} not on {iface}"))
}

/// (handshake epoch seconds, rx, tx) of a dump line.
pub fn hs_rx_tx(p: &[String]) -> (u64, u64, u64) {
    (
        p[4].parse().unwrap(),
        p[5].parse().unwrap(),
        p[6].parse().unwrap(),
    )
}

/// One ping after another from `ns` to `to` until stopped, each given 5 s to answer
/// (TCG under load is slow; a reset session stays silent for 15 s or more); counts
/// answered and lost ones. A reply later than 5 s counts as lost.
pub struct Pinger {
    child: Child,
    stop: PathBuf,
}

impl Pinger {
    pub fn start(ns: &str, to: &str) -> Pinger {
        let stop = PathBuf::from(format!("/tmp/stop-pinger-{ns}"));
        let _ = std::fs::remove_file(&stop);
        let script = format!(
            "while [ ! -e {s} ]; do if ping -c 1 -W 5 {to} >/dev/null 2>&1; then echo ok; else echo lost; fi; done",
            s = stop.display()
        );
        let child = command(Some(ns), &["sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Pinger { child, stop }
    }

    /// Stops after the ping in flight; (answered, lost).
    pub fn stop(self) -> (usize, usize) {
        std::fs::write(&self.stop, "").unwrap();
        let out = self.child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        (
            text.lines().filter(|l| *l == "ok").count(),
            text.lines().filter(|l| *l == "lost").count(),
        )
    }
}

/// A session kept, judged from two reads of the same peer: counters never went back
/// (a removed and re-added peer starts from zero), and the handshake is the same one or
/// a scheduled rekey (WireGuard renews keys every 120 s; a reset would handshake again
/// within seconds of the next packet).
pub fn assert_session_kept(before: (u64, u64, u64), after: (u64, u64, u64), what: &str) {
    assert!(
        after.1 > before.1 && after.2 > before.2,
        "{what}: counters reset or stalled: {before:?} -> {after:?}"
    );
    assert!(
        after.0 == before.0 || after.0 >= before.0 + 120,
        "{what}: the session was renegotiated early (handshake {} -> {})",
        before.0,
        after.0
    );
}
