//! Replacing the VPS, in the lab (root; skipped otherwise): `proton backup` on the
//! gateway, the gateway machine lost (daemon killed, a new filesystem), its public
//! address moved and the gateway's host name moved with it (a hosts file of our own,
//! bind-mounted in the worker, as lab_status.rs does; never DNS), `proton restore` on the
//! new filesystem, the daemon started there: the worker comes back on its own, its
//! configuration and its agent untouched, and the gateway has the same identity.

mod common;

use common::{BIN, LabGuard, root_and_tools};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A process started in a node with a pid file; stopped when the test ends.
struct Bg(String, std::process::Child);

impl Drop for Bg {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        let _ = self.1.wait();
    }
}

fn spawn_in(lab: &LabGuard, node: &str, pidfile: &str, script: &str) -> Bg {
    Bg(
        pidfile.to_owned(),
        Command::new(BIN)
            .args(["lab", "exec", node, "--name", &lab.0, "--", "sh", "-c"])
            .arg(format!("echo $$ > {pidfile} && exec {script}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn a_gateway_restored_on_a_new_machine_gets_its_workers_back_untouched() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up("rs", 0, 1, 0);
    let dir = format!("/run/proton-lab/{}", lab.0);
    let hosts = format!("{dir}/hosts.restore");
    let (old, new) = (lab.public_ip(1), lab.public_ip(3));
    std::fs::write(&hosts, format!("{old} gw.proton.test\n")).unwrap();

    // w1 joins, then runs its agent against the gateway's host name.
    let out = lab.proton("gw", &["invite", "w1", "--no-qr"], None);
    assert!(out.status.success(), "{}", text(&out));
    let invitation = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .unwrap()
        .to_string();
    let out = lab.proton("w1", &["join"], Some(&invitation));
    assert!(out.status.success(), "join: {}", text(&out));
    let w1_root = lab.root("w1");
    let agent_conf = format!("{w1_root}/etc/proton/agent.conf");
    let conf = std::fs::read_to_string(&agent_conf).unwrap();
    let conf: Vec<String> = conf
        .lines()
        .map(|l| {
            if l.starts_with("Endpoint") {
                "Endpoint = gw.proton.test:51820".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&agent_conf, conf.join("\n") + "\n").unwrap();
    let agent_pid = format!("{dir}/w1-agent.pid");
    let _agent = spawn_in(
        &lab,
        "w1",
        &agent_pid,
        &format!("sh -c 'mount --bind {hosts} /etc/hosts && exec {BIN} --root {w1_root} agent'"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lab.ping("w1", "10.7.7.1") {
        assert!(Instant::now() < deadline, "w1 never reached the gateway");
    }
    let gw_key = lab.ok("gw", &["wg", "show", "wg0", "public-key"]);
    let w1_before = std::fs::read(&agent_conf).unwrap();
    let agent_before = std::fs::read_to_string(&agent_pid).unwrap();

    // The backup, taken while the daemon runs.
    let backup = format!("{dir}/gw.backup");
    let out = lab.proton("gw", &["backup", &backup], None);
    assert!(out.status.success(), "backup: {}", text(&out));

    // The machine is lost: daemon gone, its filesystem gone.
    for pid in lab.pids("gateway") {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_dir_all(lab.root("gw")).unwrap();
    assert!(!lab.ping("w1", "10.7.7.1"), "the old gateway still answers");

    // The new machine has another public address; the name moves there.
    lab.ok(
        "gw",
        &["sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1"],
    );
    lab.ok(
        "gw",
        &["ip", "addr", "add", &format!("{new}/24"), "dev", "eth0"],
    );
    lab.ok(
        "gw",
        &["ip", "addr", "del", &format!("{old}/24"), "dev", "eth0"],
    );
    std::fs::write(&hosts, format!("{new} gw.proton.test\n")).unwrap();

    let new_root = format!("{dir}/gw/root-new");
    let out = lab.proton_at(
        "gw",
        &new_root,
        &["restore", &backup, "--public-ip", &new],
        None,
    );
    assert!(out.status.success(), "restore: {}", text(&out));
    let _daemon = spawn_in(
        &lab,
        "gw",
        &format!("{dir}/gw-new.pid"),
        &format!("{BIN} --root {new_root} gateway run --backend userspace"),
    );

    // w1's agent re-resolves the name every 30 s, then handshakes with the same key.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !lab.ping("w1", "10.7.7.1") {
        assert!(
            Instant::now() < deadline,
            "w1 never came back to the restored gateway"
        );
    }
    assert_eq!(lab.ok("gw", &["wg", "show", "wg0", "public-key"]), gw_key);
    assert_eq!(
        std::fs::read(&agent_conf).unwrap(),
        w1_before,
        "w1's config was touched"
    );
    assert_eq!(
        std::fs::read_to_string(&agent_pid).unwrap(),
        agent_before,
        "w1's agent was restarted"
    );
    let out = lab.proton_at("gw", &new_root, &["peer", "list"], None);
    assert!(text(&out).contains("w1"), "{}", text(&out));
}
