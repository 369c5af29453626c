//! `proton status`, `proton doctor`, the metrics endpoint and endpoint re-resolution,
//! in the lab (root; skipped otherwise): faults are made for real — an nftables drop
//! in the NAT router cuts a worker, forwarding is switched off in the gateway's
//! namespace, a drop rule blocks the UDP port, the gateway's address moves under a
//! host name kept in a hosts file of our own (bind-mounted in the node; never DNS).

use proton_test_support::lab::{LabGuard, root_and_tools};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn status_json(lab: &LabGuard, node: &str, extra: &[&str]) -> Value {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(extra);
    let out = lab.proton(node, &args, None);
    assert!(out.status.success(), "status: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn peer<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
}

fn node_address(lab: &LabGuard, node: &str) -> String {
    lab.state()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string()
}

fn root_of(lab: &LabGuard, node: &str) -> String {
    format!("/run/proton-lab/{}/{node}/root", lab.0)
}

/// Invites `worker` on the gateway and runs `proton join` in it with `extra` flags.
fn join(lab: &LabGuard, worker: &str, extra: &[&str]) {
    let out = lab.proton("gw", &["invite", worker, "--no-qr"], None);
    assert!(out.status.success(), "{}", text(&out));
    let invitation = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .unwrap()
        .to_string();
    let mut args = vec!["join"];
    args.extend_from_slice(extra);
    let out = lab.proton(worker, &args, Some(&invitation));
    assert!(out.status.success(), "join {worker}: {}", text(&out));
}

#[test]
fn status_json_follows_a_join_a_cut_link_and_a_removal() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "st", 2, 0, 0);
    assert!(lab.ping("w1", "10.7.7.1") && lab.ping("w2", "10.7.7.1"));

    // Joined: both workers online, seen through the NAT, with traffic and a handshake.
    let st = status_json(&lab, "gw", &[]);
    assert_eq!(st["role"], "gateway");
    assert_eq!(st["interface"], "wg0");
    assert_eq!(st["listen_port"], 51820);
    assert_eq!(
        st["stale_after_secs"], 75,
        "3x the spec's keepalive of 25 s"
    );
    assert_eq!(st["cluster"]["state"], "not_running");
    let nat = lab.public_ip(2);
    for (name, addr) in [("w1", "10.7.7.2/32"), ("w2", "10.7.7.3/32")] {
        let p = peer(&st, name).unwrap_or_else(|| panic!("{name} in {st}"));
        assert_eq!(p["state"], "online", "{p}");
        assert_eq!(p["role"], "worker");
        assert_eq!(p["address"], addr);
        assert!(
            p["endpoint"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{nat}:"))
        );
        assert!(p["rx_bytes"].as_u64().unwrap() > 0 && p["last_handshake_secs"].is_u64());
    }
    // The worker's own view of its link.
    let w = status_json(&lab, "w1", &[]);
    assert_eq!(w["role"], "worker");
    assert_eq!(w["gateway"]["state"], "online", "{w}");
    assert_eq!(
        w["gateway"]["live_endpoint"],
        format!("{}:51820", lab.public_ip(1))
    );

    // Cut w2's link in the home router: its packets no longer reach the gateway.
    let w2 = node_address(&lab, "w2");
    lab.ok("nat", &["nft", "add", "table", "inet", "cut"]);
    lab.ok(
        "nat",
        &[
            "nft",
            "add",
            "chain",
            "inet",
            "cut",
            "block",
            "{ type filter hook forward priority 0; }",
        ],
    );
    for dir in ["saddr", "daddr"] {
        lab.ok(
            "nat",
            &[
                "nft", "add", "rule", "inet", "cut", "block", "ip", dir, &w2, "drop",
            ],
        );
    }
    // A 10 s threshold (instead of 75 s) keeps the test short; w1 pings so that it is
    // heard within it, as keepalives would within 75 s.
    let deadline = Instant::now() + Duration::from_secs(90);
    let stale = loop {
        assert!(lab.ping("w1", "10.7.7.1"));
        let st = status_json(&lab, "gw", &["--stale-after", "10"]);
        if peer(&st, "w2").unwrap()["state"] == "stale" {
            break st;
        }
        assert!(Instant::now() < deadline, "w2 never went stale: {st}");
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(stale["stale_after_secs"], 10);
    assert_eq!(peer(&stale, "w1").unwrap()["state"], "online", "{stale}");
    assert!(
        peer(&stale, "w2").unwrap()["last_heard_secs"]
            .as_u64()
            .unwrap()
            > 10
    );
    let table = lab.proton("gw", &["status", "--stale-after", "10"], None);
    let line = String::from_utf8_lossy(&table.stdout)
        .lines()
        .find(|l| l.starts_with("w2 "))
        .map(String::from)
        .unwrap_or_default();
    assert!(line.ends_with("stale"), "table: {}", text(&table));

    // Removed: gone from the status, the other worker untouched.
    let out = lab.proton("gw", &["peer", "remove", "w2"], None);
    assert!(out.status.success(), "{}", text(&out));
    let st = status_json(&lab, "gw", &[]);
    assert!(peer(&st, "w2").is_none(), "{st}");
    assert_eq!(st["peers"].as_array().unwrap().len(), 1);
    assert_eq!(peer(&st, "w1").unwrap()["state"], "online");
}

/// Runs `proton doctor` in the gateway: (exit code, output).
fn doctor(lab: &LabGuard) -> (i32, String) {
    let out = lab.proton("gw", &["doctor"], None);
    (out.status.code().unwrap_or(-1), text(&out))
}

/// The metrics text parsed by the official Prometheus client's parser (Debian's
/// python3-prometheus-client): `[[sample name, labels, value], ...]`.
fn parse_prometheus(metrics: &str) -> Option<Vec<(String, Value, f64)>> {
    let script = "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
print(json.dumps([[s.name, s.labels, s.value] for f in p(sys.stdin.read()) for s in f.samples]))";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No module named") {
            eprintln!("skipping the parser check: needs python3-prometheus-client");
            return None;
        }
        panic!("the Prometheus parser rejected the metrics: {err}\n{metrics}");
    }
    let rows: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    Some(rows)
}

#[test]
fn doctor_flags_forwarding_off_and_a_blocked_port_and_metrics_stay_inside_the_tunnel() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "dr", 1, 0, 0);
    let (code, out) = doctor(&lab);
    assert!(code < 2 && !out.contains("[FAIL]"), "healthy lab: {out}");
    assert!(out.contains("[pass] ipv4 forwarding"), "{out}");
    assert!(out.contains("[pass] udp port firewall"), "{out}");

    // Forwarding switched off in the gateway's namespace.
    lab.ok("gw", &["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    let (code, out) = doctor(&lab);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[FAIL] ipv4 forwarding"), "{out}");
    assert!(
        out.contains("fix: sysctl -w net.ipv4.ip_forward=1"),
        "{out}"
    );
    lab.ok("gw", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);

    // The UDP port blocked by a drop rule.
    lab.ok("gw", &["nft", "add", "table", "inet", "blk"]);
    lab.ok(
        "gw",
        &[
            "nft",
            "add",
            "chain",
            "inet",
            "blk",
            "input",
            "{ type filter hook input priority 0; }",
        ],
    );
    lab.ok(
        "gw",
        &[
            "nft", "add", "rule", "inet", "blk", "input", "udp", "dport", "51820", "drop",
        ],
    );
    let (code, out) = doctor(&lab);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[FAIL] udp port firewall"), "{out}");
    assert!(!out.contains("[FAIL] ipv4 forwarding"), "{out}");
    // The printed fix is exact: running it clears the failure.
    let fix = out
        .lines()
        .skip_while(|l| !l.contains("[FAIL] udp port firewall"))
        .nth(1)
        .and_then(|l| l.trim().strip_prefix("fix: "))
        .and_then(|l| l.split("  (or:").next())
        .unwrap_or_else(|| panic!("no fix line: {out}"))
        .to_string();
    assert!(
        fix.starts_with("nft delete rule inet blk input handle "),
        "{fix}"
    );
    lab.ok("gw", &fix.split_whitespace().collect::<Vec<_>>());
    let (code, out) = doctor(&lab);
    assert!(
        code < 2 && out.contains("[pass] udp port firewall"),
        "{out}"
    );

    // Metrics: readable through the tunnel, valid Prometheus text.
    let fetch = |node: &str, host: &str| {
        lab.exec(
            node,
            &[
                "python3",
                "-c",
                &format!(
                    "import urllib.request; print(urllib.request.urlopen('http://{host}:9586/metrics', timeout=3).read().decode(), end='')"
                ),
            ],
        )
    };
    assert!(lab.ping("w1", "10.7.7.1"));
    // One refused join: a redeem from a caller that holds no invitation.
    let refused = lab.exec(
        "w1",
        &[
            "python3",
            "-c",
            "import urllib.request, urllib.error, json\n\
body = json.dumps({'secret': 'x', 'public_key': 'A' * 43 + '='}).encode()\n\
req = urllib.request.Request('http://10.7.7.1:51821/v1/redeem', body, {'Content-Type': 'application/json'})\n\
try:\n    urllib.request.urlopen(req, timeout=5); print('accepted')\n\
except urllib.error.HTTPError as e:\n    print(e.code)",
        ],
    );
    let code = String::from_utf8_lossy(&refused.stdout).trim().to_string();
    assert!(
        code.starts_with('4'),
        "the join API refused it: {}",
        text(&refused)
    );
    let out = fetch("w1", "10.7.7.1");
    assert!(out.status.success(), "{}", text(&out));
    let metrics = String::from_utf8_lossy(&out.stdout).into_owned();
    if let Some(samples) = parse_prometheus(&metrics) {
        let value = |name: &str, label: Option<(&str, &str)>| {
            samples
                .iter()
                .find(|(n, l, _)| n == name && label.is_none_or(|(k, v)| l[k] == v))
                .map(|s| s.2)
        };
        assert_eq!(value("proton_peers", Some(("state", "online"))), Some(1.0));
        assert_eq!(value("proton_joins_total", None), Some(1.0));
        assert_eq!(value("proton_join_failures_total", None), Some(1.0));
        assert!(value("proton_peer_receive_bytes_total", Some(("peer", "w1"))).unwrap() > 0.0);
        assert!(value("proton_peer_last_handshake_seconds", Some(("peer", "w1"))).is_some());
        assert!(value("proton_reconcile_duration_seconds_count", None).unwrap() >= 1.0);
    }

    // Not from the NAT side: neither on the public address, nor by routing the tunnel
    // address at the gateway from outside (the socket is bound to wg0).
    assert!(!fetch("nat", &lab.public_ip(1)).status.success());
    lab.ok(
        "nat",
        &[
            "ip",
            "route",
            "add",
            "10.7.7.0/24",
            "via",
            &lab.public_ip(1),
        ],
    );
    let out = fetch("nat", "10.7.7.1");
    assert!(
        !out.status.success(),
        "metrics answered from the NAT side: {}",
        text(&out)
    );
}

/// A shell command in a node whose /etc/hosts is `hosts` (a private bind mount).
fn with_hosts(lab: &LabGuard, node: &str, hosts: &str, script: &str) -> Output {
    lab.exec(
        node,
        &[
            "sh",
            "-c",
            &format!("mount --bind {hosts} /etc/hosts && {script}"),
        ],
    )
}

/// Stops the agent started with a pid file when the test ends.
struct Agent(String, std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        let _ = self.1.wait();
    }
}

fn set_endpoint(path: &str, endpoint: &str) {
    let conf = std::fs::read_to_string(path).unwrap();
    let new: Vec<String> = conf
        .lines()
        .map(|l| {
            if l.starts_with("Endpoint") {
                format!("Endpoint = {endpoint}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(path, new.join("\n") + "\n").unwrap();
}

fn endpoints(lab: &LabGuard, node: &str) -> String {
    lab.ok(node, &["wg", "show", "wg0", "endpoints"])
}

#[test]
fn workers_follow_the_gateway_name_to_a_new_address() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "rr", 0, 2, 0);
    let dir = format!("/run/proton-lab/{}", lab.0);
    let hosts = format!("{dir}/hosts.test");
    let (old, new) = (lab.public_ip(1), lab.public_ip(3));
    std::fs::write(&hosts, format!("{old} gw.proton.test\n")).unwrap();

    // w1: the userspace agent, its endpoint a host name.
    join(&lab, "w1", &[]);
    let w1_root = root_of(&lab, "w1");
    set_endpoint(
        &format!("{w1_root}/etc/proton/agent.conf"),
        "gw.proton.test:51820",
    );
    let pidfile = format!("{dir}/w1-agent.pid");
    let agent = Agent(
        pidfile.clone(),
        Command::new(BIN)
            .args(["lab", "exec", "w1", "--name", &lab.0, "--", "sh", "-c"])
            .arg(format!(
                "mount --bind {hosts} /etc/hosts && echo $$ > {pidfile} && exec {BIN} --root {w1_root} agent"
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );

    // w2: the kernel path — the wg-quick file (wg-quick runs wireguard-go here, as it
    // does without the module) and the re-resolve timer written by join.
    join(&lab, "w2", &["--backend", "kernel"]);
    let w2_root = root_of(&lab, "w2");
    let conf = format!("{w2_root}/etc/wireguard/wg0.conf");
    assert!(
        std::fs::read_to_string(format!(
            "{w2_root}/etc/systemd/system/proton-reresolve.timer"
        ))
        .unwrap()
        .contains("OnUnitActiveSec=30s")
    );
    set_endpoint(&conf, "gw.proton.test:51820");
    let out = with_hosts(&lab, "w2", &hosts, &format!("wg-quick up {conf}"));
    assert!(out.status.success(), "wg-quick up: {}", text(&out));

    assert!(lab.ping("w1", "10.7.7.1"), "agent via the name");
    // gotatun (the join's device) stamps handshakes with TAI64 base 2^62+37, wireguard-go
    // and the kernel with 2^62+10: the gateway takes the first wireguard-go handshakes
    // with the same key as replays for 27 s. Wait that out.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lab.ping("w2", "10.7.7.1") {
        assert!(Instant::now() < deadline, "wg-quick via the name");
    }
    let reresolve = |lab: &LabGuard| {
        with_hosts(
            lab,
            "w2",
            &hosts,
            &format!("{BIN} --root {w2_root} reresolve"),
        )
    };
    let out = reresolve(&lab);
    assert!(
        text(&out).contains(&format!("still resolves to {old}:51820")),
        "{}",
        text(&out)
    );

    // The gateway moves to a new address; the name follows; the old address is gone.
    lab.ok(
        "gw",
        &["sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1"],
    );
    lab.ok(
        "gw",
        &["ip", "addr", "add", &format!("{new}/24"), "dev", "eth0"],
    );
    std::fs::write(&hosts, format!("{new} gw.proton.test\n")).unwrap();
    lab.ok(
        "gw",
        &["ip", "addr", "del", &format!("{old}/24"), "dev", "eth0"],
    );

    // Doctor on the wg-quick worker sees the tunnel pointing at a stale address.
    let out = with_hosts(
        &lab,
        "w2",
        &hosts,
        &format!("{BIN} --root {w2_root} doctor"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("[FAIL] endpoint current"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("fix: proton reresolve"),
        "{}",
        text(&out)
    );

    let out = reresolve(&lab);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("moved from {old}:51820 to {new}:51820")),
        "{}",
        text(&out)
    );
    assert!(endpoints(&lab, "w2").contains(&format!("{new}:51820")));
    assert!(lab.ping("w2", "10.7.7.1"), "wg-quick worker after the move");

    // The agent re-resolves on its own (every 30 s).
    let deadline = Instant::now() + Duration::from_secs(75);
    while !endpoints(&lab, "w1").contains(&format!("{new}:51820")) {
        assert!(
            Instant::now() < deadline,
            "the agent never followed: {}",
            endpoints(&lab, "w1")
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(lab.ping("w1", "10.7.7.1"), "agent worker after the move");
    let _ = lab.exec("w2", &["wg-quick", "down", &conf]);
    drop(agent);
}
