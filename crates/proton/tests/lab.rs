//! The lab, driven through the real binary as a user would: a gateway, workers behind a
//! real NAT masquerade, a wireguard-go "phone". Needs root; skipped otherwise.
//! Each test builds its own lab (unique name) and removes it, even on failure.

use proton_test_support::lab::{LabGuard, root_and_tools, wg_dump};
use std::process::Command;
use std::time::Duration;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

#[test]
fn workers_behind_nat_and_a_phone_reach_the_gateway_and_removal_cuts_them_off() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "ta", 2, 0, 1);
    // Ping both ways over the tunnel; the gateway reaches the NAT'd worker.
    assert!(lab.ping("w1", "10.7.7.1"), "worker -> gateway");
    assert!(lab.ping("gw", "10.7.7.2"), "gateway -> worker behind NAT");
    // A TCP stream over the tunnel (iperf3 for one second).
    let server = {
        let name = lab.0.clone();
        std::thread::spawn(move || {
            Command::new(BIN)
                .args([
                    "lab", "exec", "gw", "--name", &name, "--", "timeout", "20", "iperf3", "-s",
                    "-1", "-B", "10.7.7.1",
                ])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    let client = lab.ok("w1", &["iperf3", "-c", "10.7.7.1", "-t", "1", "-J"]);
    let report: serde_json::Value = serde_json::from_str(&client).unwrap();
    assert!(
        report["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0,
        "TCP bytes crossed the tunnel"
    );
    server.join().unwrap();

    // `wg show` (wireguard-tools) lists the peers; the workers' endpoints are the NAT's.
    let dump = wg_dump(&lab);
    assert_eq!(dump.len(), 3, "two workers and a phone: {dump:?}");
    let nat = lab.public_ip(2);
    let workers: Vec<_> = dump
        .iter()
        .filter(|p| p[3] == "10.7.7.2/32" || p[3] == "10.7.7.3/32")
        .collect();
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert!(
            w[2].starts_with(&format!("{nat}:")),
            "gateway sees the NAT'd endpoint: {w:?}"
        );
        assert_ne!(w[4], "0", "a handshake happened: {w:?}");
    }

    // The phone stand-in (wireguard-go with the `client add` text) reaches the gateway.
    assert!(lab.ping("c1", "10.7.7.1"), "phone -> gateway");

    // The join API answers over the tunnel, never on the public address.
    let probe = |node: &str, host: &str| {
        lab.exec(
            node,
            &[
                "python3",
                "-c",
                &format!("import socket; socket.create_connection(('{host}', 51821), timeout=3)"),
            ],
        )
        .status
        .success()
    };
    assert!(
        probe("w1", "10.7.7.1"),
        "the join API answers through the tunnel"
    );
    assert!(
        !probe("c1", &lab.public_ip(1)),
        "the join API must not answer on the public address"
    );

    // Removing a worker cuts it off live.
    let out = lab.proton("gw", &["peer", "remove", "w2"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !lab.exec("w2", &["ping", "-c", "3", "-W", "1", "10.7.7.1"])
            .status
            .success(),
        "a removed worker still reaches the gateway"
    );
    assert!(lab.ping("w1", "10.7.7.1"), "the other worker is unaffected");
}

#[test]
fn a_restarted_gateway_comes_back_with_every_peer_and_invitations_survive_a_sigkill() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tb", 1, 1, 0);
    let before: Vec<String> = wg_dump(&lab).into_iter().map(|p| p[0].clone()).collect();
    assert_eq!(before.len(), 1);

    // An invitation reserved, then the gateway killed hard before it is redeemed.
    let out = lab.proton("gw", &["invite", "w2", "--no-qr"], None);
    assert!(out.status.success());
    let invitation = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .unwrap()
        .to_string();
    // Before redeeming, the throw-away key reaches the join API and nothing else.
    fence_probe(&lab, &invitation);

    for pid in lab.pids("gateway") {
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    // Start it again (as systemd would), in the gateway's node, the way the lab starts
    // it (its pid recorded, so `lab down` stops it). The killed daemon's socket is still
    // there: gone first, so the wait below is for the new one.
    let _ = std::fs::remove_file(format!("{}/run/proton/admin.sock", lab.root("gw")));
    let mut l = proton_lab::Lab::load(&lab.0).unwrap();
    proton_lab::scenario::start_gateway(std::path::Path::new(BIN), &mut l).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<String> = wg_dump(&lab).into_iter().map(|p| p[0].clone()).collect();
    assert!(
        before.iter().all(|k| after.contains(k)),
        "every joined peer is back: {after:?}"
    );
    // The restarted gateway has no session and, behind the NAT, no endpoint for w1: w1's
    // WireGuard starts a new handshake after 15 s of sending without an answer
    // (KEEPALIVE + REKEY_TIMEOUT), so give it well over that.
    assert!(
        lab.exec("w1", &["ping", "-c", "1", "-w", "45", "10.7.7.1"])
            .status
            .success(),
        "the joined worker reaches the restarted gateway"
    );

    // The invitation made before the crash still works on the spare worker.
    let join = lab.proton(
        "w2",
        &["join", "--timeout", "40", "--backend", "kernel"],
        Some(&invitation),
    );
    assert!(
        join.status.success(),
        "join after a gateway crash: {}",
        String::from_utf8_lossy(&join.stderr)
    );
    // With the kernel data plane, the permanent tunnel is a wg-quick file (0600) that
    // the real wg-quick reads.
    let conf = format!("/run/proton-lab/{}/w2/root/etc/wireguard/wg0.conf", lab.0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let strip = Command::new("wg-quick")
        .args(["strip", &conf])
        .output()
        .unwrap();
    assert!(
        strip.status.success(),
        "{}",
        String::from_utf8_lossy(&strip.stderr)
    );
    let stripped = String::from_utf8_lossy(&strip.stdout);
    assert!(
        stripped.contains(&format!("Endpoint = {}:51820", lab.public_ip(1))),
        "{stripped}"
    );
    assert!(stripped.contains("AllowedIPs = 10.7.7.0/24"), "{stripped}");
    let list = lab.proton("gw", &["peer", "list", "--json"], None);
    let peers: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let w2 = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "w2")
        .unwrap();
    assert_eq!(w2["state"], "active");
}

/// Brings up wireguard-go in the spare worker `w2` with an invitation's throw-away key and
/// checks what it can reach: the join API yes; a ping to the gateway or to a joined worker
/// no. Then removes that tunnel again.
fn fence_probe(lab: &LabGuard, invitation: &str) {
    let inv = proton_core::invite::Invitation::decode(invitation).unwrap();
    let dir = format!("/run/proton-lab/{}/w2", lab.0);
    let mut conf = proton_core::wgconf::WgQuickConfig::default();
    conf.interface.private_key = Some(inv.throwaway.clone());
    let mut gw = proton_core::wgconf::PeerSection::new(inv.gateway_key);
    gw.allowed_ips = vec![inv.network.net().into()];
    gw.endpoint = Some(inv.endpoint.clone());
    gw.persistent_keepalive = Some(1);
    conf.peers.push(gw);
    let path = format!("{dir}/probe.conf");
    proton_core::host::write_atomic(
        std::path::Path::new(&path),
        conf.render_wg_setconf().as_bytes(),
        0o600,
    )
    .unwrap();
    let name = lab.0.clone();
    let wgo = std::thread::spawn(move || {
        Command::new(BIN).args(["lab", "exec", "w2", "--name", &name, "--", "sh", "-c",
            &format!("wireguard-go wgt0 && sleep 1 && wg setconf wgt0 {path} && ip addr add {}/24 dev wgt0 && ip link set wgt0 up && sleep 25", inv.address)]).output()
    });
    std::thread::sleep(Duration::from_secs(3));
    let connect = |host: &str, port: u16| {
        lab.exec(
            "w2",
            &[
                "python3",
                "-c",
                &format!("import socket; socket.create_connection(('{host}', {port}), timeout=8)"),
            ],
        )
        .status
        .success()
    };
    assert!(
        connect("10.7.7.1", 51821),
        "an invitee reaches the join API"
    );
    assert!(
        !lab.exec("w2", &["ping", "-c", "2", "-W", "2", "10.7.7.1"])
            .status
            .success(),
        "an invitee must not ping the gateway"
    );
    assert!(
        !lab.exec("w2", &["ping", "-c", "2", "-W", "2", "10.7.7.2"])
            .status
            .success(),
        "an invitee must not reach a joined worker"
    );
    let _ = Command::new("pkill")
        .args(["-f", "wireguard-go wgt0"])
        .status();
    let _ = lab.exec("w2", &["ip", "link", "del", "wgt0"]);
    let _ = wgo.join();
}
