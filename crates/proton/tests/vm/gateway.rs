//! Inside the VM: the real `proton` binary as a user runs it. `proton gateway run
//! --backend kernel` in namespace `gw`; a worker in namespace `wk` joins with an
//! invitation and runs its tunnel on kernel WireGuard (the wg-quick file `proton join
//! --backend kernel` writes, applied with `wg`) or on Proton's userspace data plane
//! (`proton join --backend userspace`, then `proton agent`); 100 peers are added and
//! removed live (5 through `proton client add`/`proton peer remove`, 95 through the DB
//! and one admin-socket reconcile) while the worker pings.

use crate::net::*;
use proton_core::host::Root;
use proton_core::wgconf::WgQuickConfig;
use proton_proto::admin::{AdminRequest, AdminResponse};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/bin/proton";

fn proton(ns: &str, root: &Path, args: &[&str]) -> String {
    let mut cmd = vec![BIN, "--root", root.to_str().unwrap()];
    cmd.extend_from_slice(args);
    ok(Some(ns), &cmd)
}

/// A long-running proton process in a namespace, stopped with SIGTERM on drop; its
/// stderr goes to a file shown when a check fails.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn spawn(ns: &str, root: &Path, args: &[&str], log: &str) -> Daemon {
        let log = PathBuf::from(log);
        let mut cmd = vec![BIN, "--root", root.to_str().unwrap()];
        cmd.extend_from_slice(args);
        let child = command(Some(ns), &cmd)
            .env("PROTON_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no clean-up at all, as after a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and whether it exited cleanly.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = run(None, &["kill", "-TERM", &child.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait().unwrap() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        if std::thread::panicking() {
            eprintln!("--- {}:\n{}", self.log.display(), self.log());
        }
    }
}

/// The daemon's live status (read through the backend), once it answers.
fn status(root: &Path) -> serde_json::Value {
    match proton_proto::admin::request(&Root::new(root), &AdminRequest::Status) {
        Ok(AdminResponse::Status(s)) => serde_json::to_value(s).expect("status serializes"),
        other => panic!("status: {other:?}"),
    }
}

fn wait_for_daemon(root: &Path, daemon: &Daemon) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(AdminResponse::Status(s)) =
            proton_proto::admin::request(&Root::new(root), &AdminRequest::Status)
        {
            return serde_json::to_value(s).expect("status serializes");
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not start:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn status_peer(root: &Path, key: &str) -> serde_json::Value {
    status(root)["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["public_key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("peer {key} not in the daemon's status"))
}

/// Peers changed through the CLI, of the 100.
const CLI_PEERS: usize = 5;

/// A CLI change that the running daemon applies at once (it says so on stderr).
fn cli_change(root: &Path, args: &[&str]) {
    let mut cmd = vec![BIN, "--root", root.to_str().unwrap()];
    cmd.extend_from_slice(args);
    let out = run(Some("gw"), &cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("gateway: applied live"),
        "{args:?}: {err}"
    );
}

/// Asks the daemon to apply the DB now, as the CLI does.
fn reconcile(root: &Path) {
    match proton_proto::admin::request(&Root::new(root), &AdminRequest::Reconcile) {
        Ok(AdminResponse::Reconciled { .. }) => {}
        other => panic!("reconcile: {other:?}"),
    }
}

const AGENT_UAPI: &str = "/run/wk-uapi";

/// The worker's peers as `wg show wg0 dump` sees them: kernel, or the agent's socket
/// bind-mounted where `wg` looks (in `ip netns exec`'s private mount namespace).
fn worker_dump(worker: &str) -> Vec<Vec<String>> {
    if worker == "kernel" {
        return wg_dump(Some("wk"), "wg0").1;
    }
    let script = format!(
        "mkdir -p /run/wireguard && mount --bind {AGENT_UAPI} /run/wireguard && wg show wg0 dump"
    );
    ok(Some("wk"), &["sh", "-c", &script])
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// The whole scenario; `worker` is the worker's data plane: `kernel` or `userspace`.
pub fn scenario(worker: &str) {
    let _net = Pair::new(Some("gw"), "wk");
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let (gwr, wkr) = (dir.path().join("gw"), dir.path().join("wk"));
    std::fs::create_dir_all(&gwr).unwrap();
    std::fs::create_dir_all(&wkr).unwrap();
    proton("gw", &gwr, &["init", "--endpoint", "192.0.2.1"]);
    let mut gateway = Daemon::spawn(
        "gw",
        &gwr,
        &["gateway", "run", "--backend", "kernel"],
        "/tmp/gateway.log",
    );
    let st = wait_for_daemon(&gwr, &gateway);
    assert_eq!(st["backend"], "kernel", "{st}");
    assert_eq!(st["listen_port"], 51820, "{st}");
    let link = ok(Some("gw"), &["ip", "-d", "-o", "link", "show", "wg0"]);
    assert!(link.contains("wireguard") && link.contains(",UP"), "{link}");
    println!("gateway: daemon up on kernel WireGuard: {st}");

    // The worker joins with an invitation; the join's temporary tunnel runs on the
    // data plane the permanent one will use (kernel here for `--backend kernel`).
    let inv = proton("gw", &gwr, &["invite", "w1", "--no-qr"]);
    let inv = inv
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .expect("an invitation line")
        .to_string();
    let mut join = command(
        Some("wk"),
        &[
            BIN,
            "--root",
            wkr.to_str().unwrap(),
            "join",
            "--backend",
            worker,
            "--timeout",
            "120",
        ],
    );
    let mut child = join
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{inv}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "join: {}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gateway.log()
    );
    println!("worker: {}", String::from_utf8_lossy(&out.stdout).trim());

    // The permanent tunnel.
    let conf_path = if worker == "kernel" {
        "etc/wireguard/wg0.conf"
    } else {
        "etc/proton/agent.conf"
    };
    let conf = WgQuickConfig::parse(&std::fs::read_to_string(wkr.join(conf_path)).unwrap())
        .expect("the worker's tunnel config");
    let address = conf.interface.addresses[0].to_string();
    let worker_ip = address.split('/').next().unwrap().to_string();
    let _agent = if worker == "kernel" {
        kernel_peer(
            "wk",
            "wg0",
            &conf.render_wg_setconf(),
            &address,
            conf.interface.mtu.unwrap_or(1420),
        );
        None
    } else {
        // Its own UAPI directory: /run is shared by the VM's namespaces, and `wg show
        // wg0` on the gateway must not find the worker's socket.
        let agent = Daemon::spawn(
            "wk",
            &wkr,
            &["agent", "--uapi-dir", AGENT_UAPI],
            "/tmp/agent.log",
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !run(Some("wk"), &["ip", "link", "show", "wg0"])
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "agent: no wg0:\n{}", agent.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(agent)
    };
    if !run(Some("wk"), &["ping", "-c", "3", "-w", "30", "10.7.7.1"])
        .status
        .success()
    {
        for (ns, cmd) in [
            ("wk", "wg show all dump; ip addr; ip route"),
            (
                "gw",
                "wg show all dump; ip addr; ip route; nft list ruleset",
            ),
        ] {
            let out = run(Some(ns), &["sh", "-c", cmd]);
            eprintln!(
                "--- {ns}: {cmd}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    ping(Some("wk"), "10.7.7.1");
    ping(Some("gw"), &worker_ip);
    println!("worker ({worker}) at {worker_ip}: ping both ways through the kernel gateway");

    // Stats: the daemon's status (through the kernel backend), `wg show` on the
    // gateway, and `wg show` on the worker (kernel, or the agent's UAPI socket).
    let worker_key = conf
        .interface
        .private_key
        .as_ref()
        .unwrap()
        .public_key()
        .to_base64();
    let sp = status_peer(&gwr, &worker_key);
    let line = wg_peer(Some("gw"), "wg0", &worker_key);
    let (hs, rx, tx) = hs_rx_tx(&line);
    assert_eq!(sp["name"], "w1", "{sp}");
    assert_eq!(sp["allowed_ips"][0], format!("{worker_ip}/32"), "{sp}");
    assert!(sp["last_handshake_secs"].is_u64(), "a handshake: {sp}");
    assert!(hs > 0, "wg show: a handshake: {line:?}");
    assert!(sp["rx_bytes"].as_u64().unwrap() > 0 && sp["tx_bytes"].as_u64().unwrap() > 0);
    assert!(rx >= sp["rx_bytes"].as_u64().unwrap() && tx >= sp["tx_bytes"].as_u64().unwrap());
    assert_eq!(sp["endpoint"], line[2], "{sp} vs {line:?}");
    assert!(line[2].starts_with("192.0.2.2:"), "{line:?}");
    let wpeers = worker_dump(worker);
    assert_eq!(wpeers.len(), 1, "the worker has the gateway as its peer");
    assert_eq!(wpeers[0][2], "192.0.2.1:51820");
    assert_ne!(wpeers[0][4], "0", "the worker saw a handshake: {wpeers:?}");
    println!("stats: daemon {sp}; wg show rx {rx} tx {tx}");

    // SIGKILL: the kernel keeps the tunnel without the daemon; a restarted daemon adopts
    // the link (same ifindex) and the worker's session survives.
    let index = || {
        let link = ok(Some("gw"), &["ip", "-o", "link", "show", "wg0"]);
        link.split(':').next().unwrap().to_string()
    };
    let idx = index();
    let before = hs_rx_tx(&wg_peer(Some("gw"), "wg0", &worker_key));
    gateway.kill();
    ping(Some("wk"), "10.7.7.1");
    let mut gateway = Daemon::spawn(
        "gw",
        &gwr,
        &["gateway", "run", "--backend", "kernel"],
        "/tmp/gateway-restarted.log",
    );
    wait_for_daemon(&gwr, &gateway);
    assert_eq!(
        index(),
        idx,
        "the restarted daemon adopted wg0, not recreated it"
    );
    ping(Some("wk"), "10.7.7.1");
    ping(Some("gw"), &worker_ip);
    let line = wg_peer(Some("gw"), "wg0", &worker_key);
    assert_session_kept(
        before,
        hs_rx_tx(&line),
        "worker across a gateway SIGKILL and restart",
    );
    println!(
        "gateway: SIGKILL, tunnel kept by the kernel, restart adopted wg0, worker session kept"
    );

    // 100 peers come and go live while the worker pings the gateway: 5 phones through
    // the CLI (`proton client add`, `proton peer remove`: one reconcile each), 95 more
    // written to the DB as the CLI writes them, then one reconcile over the admin socket
    // (one large kernel change). Under TCG a CLI run takes seconds; 200 would take many
    // minutes and prove nothing more.
    let before = hs_rx_tx(&wg_peer(Some("gw"), "wg0", &worker_key));
    let pinger = Pinger::start("wk", "10.7.7.1");
    let t = Instant::now();
    for i in 1..=CLI_PEERS {
        cli_change(&gwr, &["client", "add", &format!("c{i}")]);
    }
    let spec = proton_core::spec::Spec::load(&Root::new(&gwr)).unwrap();
    let mut store =
        proton_store::Store::open_existing(&Root::new(&gwr), &spec.network.cidr).unwrap();
    for i in CLI_PEERS + 1..=100 {
        let name = format!("c{i}").parse().unwrap();
        let key = proton_core::keys::PrivateKey::generate().public_key();
        store
            .add_peer(&name, proton_store::Role::Client, key, "vm-test")
            .unwrap();
    }
    reconcile(&gwr);
    let added = t.elapsed();
    assert_eq!(wg_dump(Some("gw"), "wg0").1.len(), 101, "wg show: w1 + 100");
    assert_eq!(status(&gwr)["peers"].as_array().unwrap().len(), 101);
    let t = Instant::now();
    for i in CLI_PEERS + 1..=100 {
        store.remove_peer(&format!("c{i}"), "vm-test").unwrap();
    }
    reconcile(&gwr);
    for i in 1..=CLI_PEERS {
        cli_change(&gwr, &["peer", "remove", &format!("c{i}")]);
    }
    let removed = t.elapsed();
    let (_, left) = wg_dump(Some("gw"), "wg0");
    assert_eq!(left.len(), 1, "only w1 is left: {left:?}");
    ping(Some("gw"), &worker_ip);
    let (answered, lost) = pinger.stop();
    assert_eq!(
        lost, 0,
        "pings lost while peers changed ({answered} answered)"
    );
    assert!(answered > 0);
    let line = wg_peer(Some("gw"), "wg0", &worker_key);
    assert_session_kept(before, hs_rx_tx(&line), "worker during 100 adds/removes");
    let sp = status_peer(&gwr, &worker_key);
    assert!(sp["rx_bytes"].as_u64().unwrap() > before.1, "{sp}");
    println!(
        "100 peers added in {added:.1?}, removed in {removed:.1?}; {answered} pings answered, 0 lost; worker session kept"
    );

    let list: serde_json::Value =
        serde_json::from_str(&proton("gw", &gwr, &["peer", "list", "--json"])).unwrap();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] != "gateway")
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, vec![serde_json::json!("w1")], "{list}");

    assert!(
        gateway.stop(),
        "SIGTERM stops the gateway cleanly:\n{}",
        gateway.log()
    );
    assert!(
        !run(Some("gw"), &["ip", "link", "show", "wg0"])
            .status
            .success(),
        "the gateway removes its kernel interface on stop"
    );
    println!("gateway stopped cleanly and removed wg0");
}
