//! Replacing the VPS, in the lab (root; skipped otherwise). The gateway's endpoint is a
//! host name, `gw.proton.test`, resolved through a hosts file of our own bind-mounted
//! wherever it is resolved (never DNS). A worker joins and runs its agent; two phones run
//! the config `proton client add` printed with wireguard-go, as wg-quick would (`wg
//! setconf`, the address, the link up): c1 with a public address, p1 behind the NAT.
//! `proton backup`; then the machine is lost: the daemon killed, the gateway's network
//! namespace deleted and its filesystem removed. A new namespace with another public
//! address takes its place (`Lab::add_node`), the name moves there, `proton restore
//! --public-ip` and the daemon start in it. Nobody touches a worker or a phone:
//!
//! - w1 (behind the NAT): `proton agent` re-resolves the name every 30 s.
//! - c1 (public address): runs nothing but wireguard-go. The restored DB holds its last
//!   endpoint (`peers.last_endpoint`); the daemon starts the device with it and its
//!   keepalive makes the gateway initiate; c1 takes the authenticated handshake from the
//!   new address and roams its endpoint there (WireGuard's roaming).
//! - p1 (behind the NAT): the gateway's initiation from the new address matches no
//!   conntrack entry of the NAT, so roaming cannot reach it; it comes back by running
//!   what wireguard-tools' reresolve-dns.sh does (see [`reresolve_loop`]).

use proton_core::host::Root;
use proton_core::wgconf::WgQuickConfig;
use proton_lab::{Lab, Role, Side};
use proton_test_support::lab::{LabGuard, output_with_stdin, root_and_tools};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

const NAME: &str = "gw.proton.test";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `argv` run with `hosts` bind-mounted on /etc/hosts (in the node's private mount
/// namespace, so only this command sees it).
fn with_hosts(hosts: &str, argv: &[&str]) -> Vec<String> {
    let mut v = vec![
        "sh".to_string(),
        "-c".into(),
        format!("mount --bind {hosts} /etc/hosts && exec \"$@\""),
        "sh".into(),
    ];
    v.extend(argv.iter().map(|a| a.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// One quick ping: the tunnel answers now.
fn answers(lab: &LabGuard, node: &str) -> bool {
    lab.exec(node, &["ping", "-c", "1", "-W", "2", "10.7.7.1"])
        .status
        .success()
}

/// What `contrib/reresolve-dns/reresolve-dns.sh` in WireGuard/wireguard-tools does
/// (its README: run it from cron every thirty seconds or so), for the one peer of the
/// phone's config: when the latest handshake with `key` is more than 135 s old (or never
/// happened), `wg set wg0 peer KEY endpoint HOST:PORT`, which resolves the name again.
/// Written here in sh rather than copied; arguments: the key, the endpoint.
fn reresolve_loop() -> String {
    r#"while :; do
  hs=$(wg show wg0 latest-handshakes | awk -v k="$1" '$1 == k { print $2 }')
  if [ -n "$hs" ] && [ $(( $(date +%s) - hs )) -gt 135 ]; then
    echo "$(date +%s) handshake stale: wg set wg0 peer $1 endpoint $2"
    wg set wg0 peer "$1" endpoint "$2"
  fi
  sleep 30
done"#
        .to_string()
}

/// A phone: the config `proton client add NAME` printed, stored as the phone's file, run
/// as wg-quick runs it but with wireguard-go (the name resolved once, by `wg setconf`).
fn phone_up(lab: &LabGuard, l: &mut Lab, name: &str, hosts: &str) -> (String, WgQuickConfig) {
    let out = lab.proton("gw", &["client", "add", name, "--no-qr"], None);
    assert!(out.status.success(), "client add {name}: {}", text(&out));
    let conf = String::from_utf8_lossy(&out.stdout).into_owned();
    let parsed = WgQuickConfig::parse(&conf).unwrap();
    let dir = Lab::dir(&lab.0).join(name);
    let path = dir.join("wg0.conf");
    std::fs::write(&path, &conf).unwrap();
    l.spawn(
        name,
        "wireguard-go",
        &["env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "wg0"],
    )
    .unwrap();
    let sock = dir.join("wireguard/wg0.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "{name}: wireguard-go never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let strip = dir.join("wg0.setconf");
    std::fs::write(&strip, parsed.render_wg_setconf()).unwrap();
    let address = parsed.interface.addresses[0].to_string();
    lab.ok(
        name,
        &strs(&with_hosts(
            hosts,
            &["wg", "setconf", "wg0", strip.to_str().unwrap()],
        )),
    );
    lab.ok(name, &["ip", "addr", "add", &address, "dev", "wg0"]);
    lab.ok(name, &["ip", "link", "set", "wg0", "up"]);
    (path.display().to_string(), parsed)
}

/// The gateway's endpoint as the phone's WireGuard has it now.
fn phone_endpoint(lab: &LabGuard, node: &str) -> String {
    lab.ok(node, &["wg", "show", "wg0", "endpoints"])
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_gateway_restored_in_a_new_namespace_gets_its_workers_and_phones_back_untouched() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "rs", 0, 1, 0);
    let mut l = Lab::load(&lab.0).unwrap();
    let dir = Lab::dir(&lab.0).display().to_string();
    let hosts = format!("{dir}/hosts.restore");
    let (old, new) = (lab.public_ip(1), lab.public_ip(3));
    std::fs::write(&hosts, format!("{old} {NAME}\n")).unwrap();
    l.add_node("c1", Role::Client, Side::Public, &lab.public_ip(101))
        .unwrap();
    let p1_ip = l.lan_net.replace(".0/24", ".31");
    l.add_node("p1", Role::Client, Side::Home, &p1_ip).unwrap();

    // The gateway is known by its name: invitations and client configs carry it.
    let spec_path = format!("{}/etc/proton/proton.toml", lab.root("gw"));
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    let endpoint_line = format!("endpoint = \"{old}:51820\"");
    assert!(spec.contains(&endpoint_line), "{spec}");
    let spec = spec.replace(
        &endpoint_line,
        &format!("endpoint = \"{NAME}:51820\"\npublic_ip = \"{old}\""),
    );
    std::fs::write(&spec_path, spec).unwrap();

    // w1 joins through the name and runs its agent.
    let invitation = lab.invite("w1");
    let w1_root = lab.root("w1");
    let mut join = Command::new(BIN);
    join.args(["lab", "exec", "w1", "--name", &lab.0, "--stdin", "--"])
        .args(with_hosts(&hosts, &[BIN, "--root", &w1_root, "join"]));
    let out = output_with_stdin(&mut join, &invitation);
    assert!(out.status.success(), "join: {}", text(&out));
    let agent_conf = format!("{w1_root}/etc/proton/agent.conf");
    let w1_before = std::fs::read(&agent_conf).unwrap();
    assert!(
        String::from_utf8_lossy(&w1_before).contains(&format!("Endpoint = {NAME}:51820")),
        "{}",
        String::from_utf8_lossy(&w1_before)
    );
    let agent_pid = l
        .spawn(
            "w1",
            "agent",
            &strs(&with_hosts(&hosts, &[BIN, "--root", &w1_root, "agent"])),
        )
        .unwrap();

    // The phones, and p1's re-resolver (started now, as a timer would be).
    let (c1_path, _) = phone_up(&lab, &mut l, "c1", &hosts);
    let (p1_path, p1_conf) = phone_up(&lab, &mut l, "p1", &hosts);
    let c1_before = std::fs::read(&c1_path).unwrap();
    let p1_before = std::fs::read(&p1_path).unwrap();
    let gw_peer = &p1_conf.peers[0];
    let gw_key_b64 = gw_peer.public_key.to_base64();
    let p1_endpoint = gw_peer.endpoint.as_ref().unwrap().to_string();
    assert_eq!(p1_endpoint, format!("{NAME}:51820"));
    let script = reresolve_loop();
    l.spawn(
        "p1",
        "reresolve",
        &strs(&with_hosts(
            &hosts,
            &["sh", "-c", &script, "sh", &gw_key_b64, &p1_endpoint],
        )),
    )
    .unwrap();

    for node in ["w1", "c1", "p1"] {
        assert!(
            lab.ping(node, "10.7.7.1"),
            "{node} never reached the gateway"
        );
    }
    for node in ["c1", "p1"] {
        assert_eq!(phone_endpoint(&lab, node), format!("{old}:51820"));
    }
    let gw_key = lab.ok("gw", &["wg", "show", "wg0", "public-key"]);
    assert_eq!(gw_key.trim(), gw_key_b64);
    // The daemon stores each endpoint its device learned every 2 s.
    std::thread::sleep(Duration::from_secs(5));

    // The backup, taken while the daemon runs, kept off the machine.
    let backup = format!("{dir}/gw.backup");
    let out = lab.proton("gw", &["backup", &backup], None);
    assert!(out.status.success(), "backup: {}", text(&out));

    // The machine is lost: daemon killed, namespace deleted, filesystem removed.
    // (A namespace's inode number is reused once it is freed: the old one's interfaces
    // and address tell it apart instead.)
    assert!(
        lab.exec("gw", &["ip", "link", "show", "wg0"])
            .status
            .success()
    );
    let lost_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    l.destroy_node("gw").unwrap();
    assert!(!Path::new(&lab.root("gw")).exists());
    assert!(!answers(&lab, "w1"), "the old gateway still answers");
    assert!(!answers(&lab, "c1"), "the old gateway still answers");

    // The new machine: a new namespace with another public address; the name moves.
    l.add_node("gw", Role::Gateway, Side::Public, &new).unwrap();
    assert!(
        !lab.exec("gw", &["ip", "link", "show", "wg0"])
            .status
            .success(),
        "the old namespace's wg0 is still there"
    );
    let addrs = lab.ok("gw", &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(
        addrs.contains(&format!("{new}/24")) && !addrs.contains(&format!("{old}/")),
        "{addrs}"
    );
    std::fs::write(&hosts, format!("{new} {NAME}\n")).unwrap();
    let out = lab.proton("gw", &["restore", &backup, "--public-ip", &new], None);
    assert!(out.status.success(), "restore: {}", text(&out));

    // The restored DB holds where each peer was last seen.
    let root = Root::new(lab.root("gw"));
    let restored = proton_core::spec::Spec::load(&root).unwrap();
    let seen = proton_store::Store::open_existing(&root, &restored.network.cidr)
        .unwrap()
        .last_endpoints()
        .unwrap();
    let c1_seen: SocketAddr = *seen
        .values()
        .find(|a| a.ip().to_string() == lab.public_ip(101))
        .expect("c1's last endpoint in the restored DB");
    eprintln!("restored last endpoints: {seen:?}; c1 at {c1_seen}");

    let started = Instant::now();
    proton_lab::scenario::start_gateway(Path::new(BIN), &mut l).unwrap();
    assert_eq!(lab.ok("gw", &["wg", "show", "wg0", "public-key"]), gw_key);

    // Each comes back on its own: c1 by roaming, w1 by its agent, p1 by its re-resolver.
    let mut back: Vec<(&str, Duration)> = Vec::new();
    let deadline = started + Duration::from_secs(240);
    while back.len() < 3 {
        for node in ["c1", "w1", "p1"] {
            if !back.iter().any(|(n, _)| *n == node) && answers(&lab, node) {
                eprintln!("{node} back after {:?}", started.elapsed());
                back.push((node, started.elapsed()));
            }
        }
        assert!(
            Instant::now() < deadline,
            "not back after 240 s: only {back:?}; p1's re-resolver: {}",
            std::fs::read_to_string(l.log_path("p1", "reresolve")).unwrap_or_default()
        );
    }
    for node in ["c1", "p1"] {
        assert_eq!(phone_endpoint(&lab, node), format!("{new}:51820"), "{node}");
    }
    // p1's re-resolver acted after the loss (a first pass may also act at its start,
    // before any handshake, as upstream's does).
    let reresolved = std::fs::read_to_string(l.log_path("p1", "reresolve")).unwrap();
    assert!(
        reresolved.lines().any(|l| l.contains("handshake stale")
            && l.split(' ').next().and_then(|t| t.parse::<u64>().ok()) >= Some(lost_at)),
        "p1's re-resolver never acted after the loss: {reresolved}"
    );

    assert_eq!(
        std::fs::read(&agent_conf).unwrap(),
        w1_before,
        "w1's config"
    );
    assert_eq!(std::fs::read(&c1_path).unwrap(), c1_before, "c1's config");
    assert_eq!(std::fs::read(&p1_path).unwrap(), p1_before, "p1's config");
    let agent = Lab::load(&lab.0)
        .unwrap()
        .status()
        .into_iter()
        .find(|p| p.0 == "w1" && p.2 == "agent")
        .unwrap();
    assert_eq!(
        (agent.1, agent.3),
        (agent_pid, true),
        "w1's agent restarted"
    );
    let out = lab.proton("gw", &["peer", "list"], None);
    for peer in ["w1", "c1", "p1"] {
        assert!(text(&out).contains(peer), "{peer}: {}", text(&out));
    }
}
