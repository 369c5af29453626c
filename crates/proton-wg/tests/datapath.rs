//! The userspace data plane between two (or three) Protons, each in its own network
//! namespace: what goes through the tunnel arrives intact (TCP both ways with sha256,
//! every ping size up to the MTU, IPv6 inside, TCP with ECN, a gateway forwarding worker
//! to worker, `wg set` during a transfer), and the offload counters show that TUN TSO/GRO
//! and UDP GSO/GRO were really used, or, when forced off, that the plain path was.
//! Root only; each test makes its own namespaces and removes them.

use proton_core::keys::PrivateKey;
use proton_test_support::netns::*;
use proton_wg::{DataPathStats, Device, InterfaceConfig, Offloads, PeerConfig};
use std::process::{Command, Stdio};
use std::sync::mpsc;

const XFER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/datapath/xfer.py");

fn skip() -> bool {
    if !is_root() || !have("python3") || !have("sha256sum") {
        eprintln!("skipping: needs root, python3 and sha256sum");
        return true;
    }
    false
}

enum Cmd {
    Stats(mpsc::Sender<DataPathStats>),
    SetKey(PrivateKey, mpsc::Sender<u16>),
    Stop,
}

/// A Proton userspace interface running on its own thread and runtime inside `ns`.
struct Node {
    tx: mpsc::Sender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn up(ns: &Netns, cfg: InterfaceConfig) -> Node {
        let (tx, rx) = mpsc::channel::<Cmd>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns = Netns(ns.0.clone());
        let thread = std::thread::spawn(move || {
            in_netns(&ns, move |rt| {
                rt.block_on(async move {
                    let dev = Device::up(cfg).await.unwrap();
                    ready_tx.send(()).unwrap();
                    // The device's tasks run on the runtime's workers; this thread only
                    // answers the test.
                    while let Ok(cmd) = rx.recv() {
                        match cmd {
                            Cmd::Stats(reply) => {
                                let _ = reply.send(dev.datapath_stats().unwrap());
                            }
                            Cmd::SetKey(k, reply) => {
                                dev.set_private_key(&k).await.unwrap();
                                let _ = reply.send(dev.listen_port().await);
                            }
                            Cmd::Stop => break,
                        }
                    }
                    dev.down().await;
                })
            });
            std::mem::forget(ns);
        });
        ready_rx.recv().expect("device up");
        Node {
            tx,
            thread: Some(thread),
        }
    }

    fn stats(&self) -> DataPathStats {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Cmd::Stats(tx)).unwrap();
        rx.recv().unwrap()
    }
}

impl Node {
    /// Replaces the key (gotatun re-binds its UDP socket); returns the port after.
    fn set_key(&self, key: &PrivateKey) -> u16 {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Cmd::SetKey(key.clone(), tx)).unwrap();
        rx.recv().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn iface(tag: &str) -> String {
    let n = format!("pd{tag}{}", std::process::id());
    n[..n.len().min(15)].to_string()
}

fn config(
    name: &str,
    key: &PrivateKey,
    addr: &str,
    offloads: Offloads,
    uapi: &std::path::Path,
) -> InterfaceConfig {
    let mut cfg = InterfaceConfig::new(name, key.clone(), addr.parse().unwrap());
    cfg.offloads = offloads;
    cfg.uapi_dir = uapi.to_path_buf();
    cfg
}

fn peer(key: &PrivateKey, nets: &[&str], endpoint: Option<&str>) -> PeerConfig {
    let mut p = PeerConfig::new(
        key.public_key(),
        nets.iter().map(|n| n.parse().unwrap()).collect(),
    );
    p.endpoint = endpoint.map(|e| e.parse().unwrap());
    p.keepalive = endpoint.map(|_| 25);
    p
}

/// A gateway (ns `a`, 10.99.0.1, fd99::1, port 51820) and a worker (ns `b`, 10.99.0.2,
/// fd99::2) that dials it at 192.0.2.1.
struct Tunnel {
    gw: Node,
    worker: Node,
    gw_if: String,
    worker_if: String,
    _uapi: tempfile::TempDir,
    a: Netns,
    b: Netns,
}

fn tunnel(tag: &str, offloads: Offloads) -> Tunnel {
    let (a, b) = pair(tag);
    let uapi = tempfile::tempdir().unwrap();
    let (gk, wk) = (PrivateKey::generate(), PrivateKey::generate());
    let (gw_if, worker_if) = (iface(&format!("g{tag}")), iface(&format!("w{tag}")));
    let mut g = config(&gw_if, &gk, "10.99.0.1/24", offloads, uapi.path());
    g.listen_port = Some(51820);
    g.peers = vec![peer(&wk, &["10.99.0.2/32", "fd99::2/128"], None)];
    let mut w = config(&worker_if, &wk, "10.99.0.2/24", offloads, uapi.path());
    w.peers = vec![peer(
        &gk,
        &["10.99.0.0/24", "fd99::/64"],
        Some("192.0.2.1:51820"),
    )];
    let gw = Node::up(&a, g);
    let worker = Node::up(&b, w);
    a.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd99::1/64",
        "dev",
        &gw_if,
        "nodad",
    ]);
    b.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd99::2/64",
        "dev",
        &worker_if,
        "nodad",
    ]);
    let up = b.try_exec(&["ping", "-c", "1", "-w", "20", "10.99.0.1"]);
    assert!(
        up.status.success(),
        "tunnel up: {}",
        String::from_utf8_lossy(&up.stdout)
    );
    Tunnel {
        gw,
        worker,
        gw_if,
        worker_if,
        _uapi: uapi,
        a,
        b,
    }
}

fn random_file(mib: usize) -> (tempfile::NamedTempFile, String) {
    let f = tempfile::NamedTempFile::new().unwrap();
    sh(&[
        "dd",
        "if=/dev/urandom",
        &format!("of={}", f.path().display()),
        "bs=1M",
        &format!("count={mib}"),
        "status=none",
    ]);
    let sum = String::from_utf8(sh(&["sha256sum", f.path().to_str().unwrap()]).stdout).unwrap();
    (f, sum.split_whitespace().next().unwrap().to_string())
}

/// Sends `mib` MiB of random bytes over TCP from `from` to `to_addr` (listening in `to`)
/// and returns (sent sha256, received sha256, received bytes).
fn transfer(
    from: &Netns,
    to: &Netns,
    to_addr: &str,
    port: u16,
    mib: usize,
) -> (String, String, usize) {
    let (file, sum) = random_file(mib);
    let mut recv = Command::new("ip")
        .args([
            "netns",
            "exec",
            &to.0,
            "python3",
            XFER,
            "recv",
            to_addr,
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = from.try_exec(&[
        "python3",
        XFER,
        "send",
        to_addr,
        &port.to_string(),
        file.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "send: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = recv_output(&mut recv);
    (sum, got.0, got.1)
}

fn recv_output(child: &mut std::process::Child) -> (String, usize) {
    use std::io::Read;
    let mut s = String::new();
    child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    assert!(child.wait().unwrap().success(), "receiver failed: {s}");
    let line = s.lines().last().unwrap_or_default().to_string();
    let mut it = line.split_whitespace();
    (
        it.next().unwrap_or_default().to_string(),
        it.next().and_then(|n| n.parse().ok()).unwrap_or(0),
    )
}

fn assert_transfer(from: &Netns, to: &Netns, to_addr: &str, port: u16, mib: usize) {
    let (sent, got, n) = transfer(from, to, to_addr, port, mib);
    assert_eq!(n, mib << 20, "all bytes arrived at {to_addr}");
    assert_eq!(sent, got, "sha256 of what arrived at {to_addr}");
}

fn delta(after: DataPathStats, before: DataPathStats) -> DataPathStats {
    DataPathStats {
        tun_reads: after.tun_reads - before.tun_reads,
        tun_read_packets: after.tun_read_packets - before.tun_read_packets,
        tun_writes: after.tun_writes - before.tun_writes,
        tun_write_packets: after.tun_write_packets - before.tun_write_packets,
        udp_sends: after.udp_sends - before.udp_sends,
        udp_send_datagrams: after.udp_send_datagrams - before.udp_send_datagrams,
        udp_recvs: after.udp_recvs - before.udp_recvs,
        udp_recv_datagrams: after.udp_recv_datagrams - before.udp_recv_datagrams,
        ..after
    }
}

#[test]
fn tcp_both_ways_arrives_intact_and_the_offloads_carry_it() {
    if skip() {
        return;
    }
    let t = tunnel("o", Offloads::Auto);
    let (g0, w0) = (t.gw.stats(), t.worker.stats());
    for s in [g0, w0] {
        assert!(
            s.tun_tso && s.udp_gso && s.udp_gro,
            "this kernel takes TUN TSO and UDP GSO/GRO: {s:?}"
        );
    }
    // Worker -> gateway: the worker's TUN reads super-packets and sends GSO runs; the
    // gateway receives GRO datagrams and writes coalesced packets to its TUN.
    assert_transfer(&t.b, &t.a, "10.99.0.1", 5201, 32);
    let (g1, w1) = (t.gw.stats(), t.worker.stats());
    let (g, w) = (delta(g1, g0), delta(w1, w0));
    eprintln!("worker -> gateway: worker {w:?}\n gateway {g:?}");
    assert!(
        w.tun_read_packets > 2 * w.tun_reads,
        "segments per TUN read: {w:?}"
    );
    assert!(
        w.udp_send_datagrams > 2 * w.udp_sends,
        "datagrams per UDP send: {w:?}"
    );
    assert!(
        g.udp_recv_datagrams > 2 * g.udp_recvs,
        "segments per GRO receive: {g:?}"
    );
    assert!(
        g.tun_write_packets > 2 * g.tun_writes,
        "packets per TUN write: {g:?}"
    );
    // And back.
    assert_transfer(&t.a, &t.b, "10.99.0.2", 5202, 32);
    let (g, w) = (delta(t.gw.stats(), g1), delta(t.worker.stats(), w1));
    eprintln!("gateway -> worker: gateway {g:?}\n worker {w:?}");
    assert!(
        g.tun_read_packets > 2 * g.tun_reads,
        "segments per TUN read: {g:?}"
    );
    assert!(
        g.udp_send_datagrams > 2 * g.udp_sends,
        "datagrams per UDP send: {g:?}"
    );
    assert!(
        w.udp_recv_datagrams > 2 * w.udp_recvs,
        "segments per GRO receive: {w:?}"
    );
    assert!(
        w.tun_write_packets > 2 * w.tun_writes,
        "packets per TUN write: {w:?}"
    );
}

#[test]
fn the_plain_data_plane_works_when_offloads_are_forced_off() {
    if skip() {
        return;
    }
    let t = tunnel("p", Offloads::Plain);
    assert_transfer(&t.b, &t.a, "10.99.0.1", 5203, 16);
    assert_transfer(&t.a, &t.b, "10.99.0.2", 5204, 16);
    for s in [t.gw.stats(), t.worker.stats()] {
        assert!(
            !s.tun_tso && !s.tun_uso && !s.udp_gso && !s.udp_gro,
            "offloads off: {s:?}"
        );
        assert!(
            s.tun_reads > 1000 && s.tun_reads == s.tun_read_packets,
            "one packet per TUN read: {s:?}"
        );
        assert_eq!(
            s.tun_writes, s.tun_write_packets,
            "one packet per TUN write: {s:?}"
        );
        assert_eq!(
            s.udp_sends, s.udp_send_datagrams,
            "one datagram per send: {s:?}"
        );
        assert_eq!(
            s.udp_recvs, s.udp_recv_datagrams,
            "one datagram per receive: {s:?}"
        );
    }
}

#[test]
fn every_ping_size_up_to_the_mtu_crosses_over_ipv4_and_ipv6() {
    if skip() {
        return;
    }
    let t = tunnel("s", Offloads::Auto);
    // MTU 1420: 1392 bytes of ICMP payload over IPv4 (20 + 8), 1372 over IPv6 (40 + 8),
    // sent with don't-fragment.
    for (addr, max) in [("10.99.0.1", "1392"), ("fd99::1", "1372")] {
        let out = t.b.try_exec(&["python3", XFER, "ping", addr, max]);
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && s.trim() == "ok",
            "ping sizes to {addr}: {s} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // One byte more does not fit the tunnel's MTU and is refused, not fragmented.
    let over = t.b.try_exec(&[
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        "1393",
        "10.99.0.1",
    ]);
    assert!(!over.status.success(), "a packet over the MTU is refused");
}

#[test]
fn tcp_over_ipv6_inside_the_tunnel_and_tcp_with_ecn_arrive_intact() {
    if skip() {
        return;
    }
    let t = tunnel("6", Offloads::Auto);
    assert_transfer(&t.b, &t.a, "fd99::1", 5205, 16);
    assert_transfer(&t.a, &t.b, "fd99::2", 5206, 16);
    // ECN on in both namespaces (it is per network namespace): ECN-marked segments must
    // survive the split and coalesce.
    for ns in [&t.a, &t.b] {
        ns.exec(&["sysctl", "-q", "-w", "net.ipv4.tcp_ecn=1"]);
    }
    let (file, sum) = random_file(16);
    let mut recv = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.a.0,
            "python3",
            XFER,
            "recv",
            "10.99.0.1",
            "5207",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = t.b.try_exec(&[
        "python3",
        XFER,
        "send",
        "10.99.0.1",
        "5207",
        file.path().to_str().unwrap(),
    ]);
    assert!(
        sent.status.success(),
        "send: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let (got, n) = recv_output(&mut recv);
    // The connection really negotiated ECN (the sender reads TCP_INFO).
    assert_eq!(
        String::from_utf8_lossy(&sent.stdout).trim(),
        "ecn",
        "ECN negotiated"
    );
    assert_eq!((got, n), (sum, 16 << 20), "ECN transfer intact");
}

#[test]
fn the_gateway_forwards_worker_to_worker_intact() {
    if skip() {
        return;
    }
    let id = std::process::id();
    // Gateway `a` with two legs: 192.0.2.1 to worker `b`, 198.51.100.1 to worker `c`.
    let (a, b) = pair("f");
    let c = Netns::new(&format!("pwc-f-{id}"));
    let (va, vc) = (format!("vf{id}"), format!("vc{id}"));
    sh(&[
        "ip", "link", "add", &va, "type", "veth", "peer", "name", &vc,
    ]);
    sh(&["ip", "link", "set", &va, "netns", &a.0]);
    sh(&["ip", "link", "set", &vc, "netns", &c.0]);
    a.exec(&["ip", "addr", "add", "198.51.100.1/24", "dev", &va]);
    a.exec(&["ip", "link", "set", &va, "up"]);
    c.exec(&["ip", "addr", "add", "198.51.100.2/24", "dev", &vc]);
    c.exec(&["ip", "link", "set", &vc, "up"]);
    a.exec(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    let uapi = tempfile::tempdir().unwrap();
    let (gk, k1, k2) = (
        PrivateKey::generate(),
        PrivateKey::generate(),
        PrivateKey::generate(),
    );
    let mut g = config(
        &iface("gf"),
        &gk,
        "10.99.0.1/24",
        Offloads::Auto,
        uapi.path(),
    );
    g.listen_port = Some(51820);
    g.peers = vec![
        peer(&k1, &["10.99.0.2/32"], None),
        peer(&k2, &["10.99.0.3/32"], None),
    ];
    let mut w1 = config(
        &iface("w1"),
        &k1,
        "10.99.0.2/24",
        Offloads::Auto,
        uapi.path(),
    );
    w1.peers = vec![peer(&gk, &["10.99.0.0/24"], Some("192.0.2.1:51820"))];
    let mut w2 = config(
        &iface("w2"),
        &k2,
        "10.99.0.3/24",
        Offloads::Auto,
        uapi.path(),
    );
    w2.peers = vec![peer(&gk, &["10.99.0.0/24"], Some("198.51.100.1:51820"))];
    let gw = Node::up(&a, g);
    let n1 = Node::up(&b, w1);
    let n2 = Node::up(&c, w2);
    for (ns, dst) in [(&b, "10.99.0.1"), (&c, "10.99.0.1"), (&b, "10.99.0.3")] {
        let up = ns.try_exec(&["ping", "-c", "1", "-w", "20", dst]);
        assert!(up.status.success(), "{dst} reachable");
    }
    let before = gw.stats();
    assert_transfer(&b, &c, "10.99.0.3", 5208, 16);
    assert_transfer(&c, &b, "10.99.0.2", 5209, 16);
    let d = delta(gw.stats(), before);
    eprintln!("gateway forwarding: {d:?}");
    // What the gateway coalesced into its TUN came back out of it as super-packets: with
    // the split broken every read is one packet (ratio 1.0). How many segments a read
    // carries depends on how busy the machine is — 1.76 was seen with the VM test running
    // beside it, where `> 2×` failed — so the bar is a quarter above one per read.
    assert!(
        4 * d.tun_read_packets > 5 * d.tun_reads,
        "forwarded super-packets split: {d:?}"
    );
    drop((n1, n2, gw));
}

#[test]
fn wg_set_peer_changes_during_a_transfer_do_not_disturb_it() {
    if skip() || !have("wg") {
        return;
    }
    let t = tunnel("w", Offloads::Auto);
    let (file, sum) = random_file(64);
    let mut recv = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.a.0,
            "python3",
            XFER,
            "recv",
            "10.99.0.1",
            "5210",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let send = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.b.0,
            "python3",
            XFER,
            "send",
            "10.99.0.1",
            "5210",
            file.path().to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    // While it runs, other peers come and go through the UAPI socket, as `wg set` does.
    let uapi = t._uapi.path().to_path_buf();
    let mut changes = 0;
    for i in 0..20u8 {
        let k = PrivateKey::generate().public_key();
        wg_with_socket_dir(
            &uapi,
            &format!("set {} peer {k} allowed-ips 10.99.1.{}/32", t.gw_if, i + 1),
        );
        wg_with_socket_dir(&uapi, &format!("set {} peer {k} remove", t.gw_if));
        changes += 2;
    }
    let shown = wg_with_socket_dir(&uapi, &format!("show {} peers", t.gw_if));
    let sent = send.wait_with_output().unwrap();
    assert!(sent.status.success(), "sender finished");
    let (got, n) = recv_output(&mut recv);
    assert_eq!(changes, 40);
    assert_eq!(shown.lines().count(), 1, "only the worker is left: {shown}");
    assert_eq!((got, n), (sum, 64 << 20), "transfer intact across wg set");
    let _ = &t.worker_if;
}

/// The socket inode(s) of UDP port `port` in `ns` (from `ss -uanpe`).
fn udp_inodes(ns: &Netns, port: u16) -> Vec<String> {
    let out = ns.exec(&["ss", "-uanHe", "sport", &format!(":{port}")]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("ino:").map(str::to_string))
        .collect()
}

#[test]
fn a_key_change_keeps_the_udp_socket_and_its_port() {
    if skip() {
        return;
    }
    let t = tunnel("k", Offloads::Auto);
    let before = udp_inodes(&t.a, 51820);
    assert_eq!(before.len(), 1, "one socket on 51820: {before:?}");
    // gotatun re-binds on every key change; Proton's factory hands back the same socket
    // (same address, port, fwmark), so there is no window with no socket and no
    // EADDRINUSE race with a closing one.
    for _ in 0..3 {
        assert_eq!(t.gw.set_key(&PrivateKey::generate()), 51820);
    }
    assert_eq!(udp_inodes(&t.a, 51820), before, "the same socket");
    // The worker's port (random, 0 in its config) survives a key change too.
    let wport = t.worker.set_key(&PrivateKey::generate());
    assert_eq!(t.worker.set_key(&PrivateKey::generate()), wport);
}
