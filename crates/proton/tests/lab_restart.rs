//! A userspace gateway restart is not an outage, and a spec edit needs no restart where
//! the device can stay: in the lab (root; skipped otherwise).

use proton_test_support::lab::{LabGuard, root_and_tools, wg_dump};
use std::process::Command;
use std::time::{Duration, Instant};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

/// A gateway daemon this test started in the `gw` node (its pid, and the `lab exec`
/// that runs it); stopped by its pid on drop.
struct Daemon(u32, std::process::Child);

impl Daemon {
    fn start(lab: &LabGuard) -> Daemon {
        let pidfile = format!("/run/proton-lab/{}/gw/restarted.pid", lab.0);
        let _ = std::fs::remove_file(&pidfile);
        let log = format!("/run/proton-lab/{}/gw/restarted.log", lab.0);
        let script = format!(
            "echo $$ > {pidfile}; exec {BIN} --root {} gateway run --backend userspace >{log} 2>&1",
            lab.root("gw")
        );
        let child = Command::new(BIN)
            .args([
                "lab", "exec", "gw", "--name", &lab.0, "--", "sh", "-c", &script,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = wait_for("the restarted daemon's pid", || {
            std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse().ok())
        });
        let sock = format!("{}/run/proton/admin.sock", lab.root("gw"));
        wait_for("the restarted daemon's admin socket", || {
            std::path::Path::new(&sock).exists().then_some(())
        });
        Daemon(pid, child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        signal(self.0, "TERM");
        wait_gone(self.0);
        let _ = self.1.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

fn wait_gone(pid: u32) {
    wait_for("the daemon to exit", || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// w1's row in the gateway's `wg show dump`.
fn w1_row(lab: &LabGuard) -> Vec<String> {
    wg_dump(lab)
        .into_iter()
        .find(|p| p[3] == "10.7.7.2/32")
        .expect("w1 is on the device")
}

#[test]
fn a_restarted_gateway_reaches_a_live_peer_at_once_and_spec_edits_apply_live() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "hr", 1, 0, 0);
    // Right after `lab up` the first echo can meet an ICMP error (the join's key swap is
    // still settling) and ping gives up at once; w1 being live is the premise, not the test.
    assert!(
        (0..5).any(|_| {
            lab.ping("w1", "10.7.7.1") || {
                std::thread::sleep(Duration::from_secs(1));
                false
            }
        }),
        "w1 reaches the gateway"
    );
    let before = w1_row(&lab);
    assert_ne!(before[2], "(none)", "the gateway learned w1's endpoint");
    // The daemon stores endpoints as it samples the device (every 2 s).
    std::thread::sleep(Duration::from_secs(5));

    // w1 sends nothing from here on (its keepalives and handshakes are dropped), so an
    // endpoint on the restarted gateway can only come from what the gateway remembered.
    lab.ok(
        "w1",
        &[
            "sh",
            "-c",
            "nft add table ip hrblock && nft add chain ip hrblock out '{ type filter hook output priority 0; policy accept; }' && nft add rule ip hrblock out udp dport 51820 drop",
        ],
    );
    let first = lab.pids("gateway")[0];
    signal(first, "TERM");
    wait_gone(first);
    let daemon = Daemon::start(&lab);
    let after = w1_row(&lab);
    assert_eq!(
        after[2], before[2],
        "the restarted gateway starts with w1's last endpoint"
    );
    // The gateway initiates: its ping makes the handshake, through w1's NAT mapping (a
    // first attempt made while w1's answers were dropped is retried after 5 s, WireGuard's
    // REKEY_TIMEOUT).
    lab.ok("w1", &["nft", "delete", "table", "ip", "hrblock"]);
    assert!(
        lab.exec("gw", &["ping", "-c", "1", "-w", "12", "10.7.7.2"])
            .status
            .success(),
        "the restarted gateway reaches w1 without waiting for w1 to handshake"
    );

    // A keepalive edit reaches the device through `proton apply`, without a restart.
    let spec_path = format!("{}/etc/proton/proton.toml", lab.root("gw"));
    let edit = |from: &str, to: &str| {
        let spec = std::fs::read_to_string(&spec_path).unwrap();
        assert!(spec.contains(from), "{spec}");
        std::fs::write(&spec_path, spec.replace(from, to)).unwrap();
    };
    assert_eq!(after[7], "25");
    // No K3s in this lab: `apply` then manages only the firewall file.
    edit("enabled = true", "enabled = false");
    edit("persistent_keepalive = 25", "persistent_keepalive = 7");
    let apply = lab.proton("gw", &["apply"], None);
    let err = String::from_utf8_lossy(&apply.stderr);
    assert!(apply.status.success(), "apply: {err}");
    assert!(
        err.contains("applied live: network.persistent_keepalive"),
        "{err}"
    );
    assert_eq!(w1_row(&lab)[7], "7", "the device has the new keepalive");
    // A key that needs a new device is named, not half-applied.
    edit("mtu = 1420", "mtu = 1380");
    let apply = lab.proton("gw", &["apply"], None);
    let err = String::from_utf8_lossy(&apply.stderr);
    assert!(
        err.contains("network.mtu changed: takes effect after `systemctl restart proton-gateway`"),
        "{err}"
    );
    // SIGHUP does the same as `proton apply`'s request.
    edit("persistent_keepalive = 7", "persistent_keepalive = 9");
    signal(daemon.0, "HUP");
    wait_for("keepalive 9 on the device", || {
        (w1_row(&lab)[7] == "9").then_some(())
    });
}
