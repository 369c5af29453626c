//! The firewall ruleset: checked by `nft -c`, then proven in network namespaces.
//!
//! Topology (all inside namespaces this test makes and removes):
//! `pub` (192.0.2.2) ──veth── `gw` (192.0.2.1 on pub0, 10.7.7.1 on wg0) ──veth── `wk` (10.7.7.2)
//! The `wg0` veth stands in for the WireGuard interface: the ruleset keys on its name.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use proton_core::host::{RecordingRunner, SystemRunner};
use proton_k3s::firewall::{self, FirewallParams, Members};

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !root {
        eprintln!("skipped: needs root for network namespaces and nftables");
    }
    root
}

/// Namespaces deleted on drop, even when an assertion fails.
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn netns(tag: &str, names: &[&str]) -> (Netns, Vec<String>) {
    let full: Vec<String> = names
        .iter()
        .map(|n| format!("pk3s-{tag}-{n}-{}", std::process::id()))
        .collect();
    for ns in &full {
        sh(&["ip", "netns", "add", ns]);
    }
    (Netns(full.clone()), full)
}

/// Runs `f` on a thread that has joined network namespace `ns` (setns only affects
/// the calling thread); sockets made there stay in that namespace.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd, affecting only this short-lived thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

fn params() -> FirewallParams {
    FirewallParams::gateway("wg0", "10.7.7.0/24".parse().unwrap(), 51820, 51821, 9586)
}

/// The daemon's sets in these tests: `wk` (10.7.7.2) is a worker, 10.7.7.3 a phone.
/// A worker, a phone, and a named grant of the phone's (to an address no test sends
/// to, so it only proves that real `nft` takes the set and its updates).
fn members() -> Members {
    Members {
        workers: ["10.7.7.2".parse().unwrap()].into(),
        clients: ["10.7.7.3".parse().unwrap()].into(),
        grants: [proton_core::peer::Flow {
            from: "10.7.7.3".parse().unwrap(),
            to: "10.7.7.9".parse().unwrap(),
            proto: proton_core::peer::L4::Udp,
            port: 9,
        }]
        .into(),
        ..Members::default()
    }
}

#[test]
fn ruleset_text_is_what_we_document() {
    let r = firewall::ruleset(&params()).unwrap();
    assert!(r.starts_with("#!/usr/sbin/nft -f\n"));
    assert!(r.contains("table inet proton\ndelete table inet proton\ntable inet proton {"));
    assert!(r.contains("policy accept;"), "{r}");
    assert!(
        r.contains("iifname \"wg0\" ip saddr 10.7.7.0/24 accept"),
        "{r}"
    );
    assert!(
        r.contains("iifname { \"cni0\", \"flannel.1\" } ip saddr 10.42.0.0/16 accept"),
        "pods reach the kube API through the ClusterIP: {r}"
    );
    assert!(r.contains("udp dport 51820 accept"));
    assert!(r.contains("tcp dport { 80, 443 } accept"));
    assert!(
        r.contains("tcp dport { 6443, 9586, 10250, 51821 } counter drop"),
        "{r}"
    );
    let mut bad = params();
    bad.interface = "wg0\" accept; #".into();
    assert!(firewall::ruleset(&bad).is_err());
}

/// The rules the other issues need are in the same table, from the same generator:
/// VXLAN from workers only, NodePorts closed before DNAT, the fence, the reach policy,
/// full-tunnel NAT; the sets hold what the daemon passed.
#[test]
fn one_table_holds_vxlan_nodeports_fence_reach_and_nat() {
    let r = firewall::ruleset_with(&params(), &members()).unwrap();
    assert!(
        r.contains("iifname \"wg0\" ip saddr @workers udp dport 8472 accept"),
        "{r}"
    );
    assert!(r.contains("udp dport 8472 counter drop"), "{r}");
    assert!(
        r.contains("th dport 30000-32767 fib daddr type local ct state new counter drop"),
        "{r}"
    );
    assert!(
        r.contains("type filter hook prerouting priority mangle;"),
        "{r}"
    );
    assert!(
        r.contains("ip saddr != @clients counter drop comment \"the invitee fence"),
        "{r}"
    );
    assert!(r.contains("tcp dport 51821 accept"), "{r}");
    assert!(r.contains("udp dport { 53 } accept"), "{r}");
    assert!(r.contains("tcp dport { 53, 80, 443 } accept"), "{r}");
    assert!(
        r.contains("ip saddr 10.7.7.0/24 ip daddr != { 10.7.7.0/24, 10.42.0.0/16, 10.43.0.0/16 } oifname != \"wg0\" masquerade"),
        "{r}"
    );
    assert!(
        r.contains("iifname \"wg0\" meta nfproto ipv6 counter drop"),
        "{r}"
    );
    assert!(
        r.contains("set workers { type ipv4_addr; elements = { 10.7.7.2 }; }"),
        "{r}"
    );
    assert!(
        r.contains("set clients { type ipv4_addr; elements = { 10.7.7.3 }; }"),
        "{r}"
    );
    // What `apply` writes: the same rules, empty sets (the daemon fills them).
    let file = firewall::ruleset(&params()).unwrap();
    assert!(file.contains("set workers { type ipv4_addr; }"), "{file}");
    assert_eq!(
        file.lines().filter(|l| l.contains("chain ")).count(),
        r.lines().filter(|l| l.contains("chain ")).count()
    );
}

#[test]
fn apply_goes_through_the_runner_with_the_script_on_stdin() {
    let runner = RecordingRunner::new();
    let script = firewall::ruleset(&params()).unwrap();
    firewall::apply(&runner, Some("labgw"), &script).unwrap();
    firewall::apply(&runner, None, &firewall::removal()).unwrap();
    let calls = runner.calls();
    assert_eq!(calls[0].display(), "ip netns exec labgw nft -f -");
    assert_eq!(calls[0].stdin.as_deref(), Some(script.as_str()));
    assert_eq!(calls[1].display(), "nft -f -");
}

#[test]
fn nft_accepts_the_ruleset_in_check_mode() {
    if !is_root() {
        return;
    }
    let (_guard, ns) = netns("chk", &["gw"]);
    let script = firewall::ruleset(&params()).unwrap();
    firewall::check(&SystemRunner, Some(&ns[0]), &script).unwrap();
    // Applying twice works (the add+delete prologue), and removal leaves no table.
    firewall::apply(&SystemRunner, Some(&ns[0]), &script).unwrap();
    firewall::apply(&SystemRunner, Some(&ns[0]), &script).unwrap();
    firewall::apply(&SystemRunner, Some(&ns[0]), &firewall::removal()).unwrap();
    firewall::apply(&SystemRunner, Some(&ns[0]), &firewall::removal()).unwrap();
    // A broken script is reported, not ignored.
    let err = firewall::check(
        &SystemRunner,
        Some(&ns[0]),
        "table inet proton { nonsense }",
    )
    .unwrap_err();
    assert!(err.to_string().contains("nft rejected"), "{err}");
}

fn connect(ns: &str, addr: &str) -> std::io::Result<()> {
    let addr: SocketAddr = addr.parse().unwrap();
    in_netns(ns, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|_| ())
    })
}

#[test]
fn kube_api_answers_on_tunnel_and_loopback_not_public() {
    if !is_root() {
        return;
    }
    let (_guard, ns) = netns("fw", &["gw", "pub", "wk", "pod"]);
    let (gw, public, wk, pod) = (&ns[0], &ns[1], &ns[2], &ns[3]);
    sh(&[
        "ip", "-n", gw, "link", "add", "pub0", "type", "veth", "peer", "name", "eth0", "netns",
        public,
    ]);
    sh(&[
        "ip", "-n", gw, "link", "add", "wg0", "type", "veth", "peer", "name", "eth0", "netns", wk,
    ]);
    // A pod on the gateway, behind flannel's bridge name.
    sh(&[
        "ip", "-n", gw, "link", "add", "cni0", "type", "veth", "peer", "name", "eth0", "netns", pod,
    ]);
    for (n, dev, addr) in [
        (gw, "pub0", "192.0.2.1/24"),
        (public, "eth0", "192.0.2.2/24"),
        (gw, "wg0", "10.7.7.1/24"),
        (wk, "eth0", "10.7.7.2/24"),
        (gw, "cni0", "10.42.0.1/24"),
        (pod, "eth0", "10.42.0.5/24"),
    ] {
        sh(&["ip", "-n", n, "addr", "add", addr, "dev", dev]);
        sh(&["ip", "-n", n, "link", "set", dev, "up"]);
    }
    sh(&["ip", "-n", gw, "link", "set", "lo", "up"]);
    sh(&[
        "ip",
        "-n",
        pod,
        "route",
        "add",
        "default",
        "via",
        "10.42.0.1",
    ]);
    // Listeners in the gateway namespace on every address: kube API, ingress, and a
    // port Proton does not own (stands in for the admin's SSH).
    let listeners: Vec<TcpListener> = in_netns(gw, || {
        [6443u16, 10250, 443, 2222]
            .iter()
            .map(|p| TcpListener::bind(("0.0.0.0", *p)).unwrap())
            .collect()
    });
    // Before the firewall, the public side reaches 6443 (so the test can fail).
    connect(public, "192.0.2.1:6443").expect("no firewall yet: 6443 open");

    let script = firewall::ruleset_with(&params(), &members()).unwrap();
    firewall::apply(&SystemRunner, Some(gw), &script).unwrap();

    connect(wk, "10.7.7.1:6443").expect("tunnel side must reach the kube API");
    connect(gw, "127.0.0.1:6443").expect("loopback must reach the kube API");
    let err = connect(public, "192.0.2.1:6443").expect_err("public side reached 6443");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::TimedOut,
        "dropped, not refused: {err}"
    );
    connect(public, "192.0.2.1:443").expect("ingress 443 stays public");
    connect(wk, "10.7.7.1:10250").expect("tunnel side must reach the kubelet");
    let err = connect(public, "192.0.2.1:10250").expect_err("public side reached the kubelet");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    // Pods reach the kube API through the ClusterIP, i.e. from a pod address on the CNI
    // bridge; the same pod range arriving on the public side is dropped.
    connect(pod, "10.7.7.1:6443").expect("a pod on the gateway must reach the kube API");
    connect(pod, "192.0.2.1:10250").expect("a pod must reach the kubelet");
    sh(&[
        "ip",
        "-n",
        public,
        "addr",
        "add",
        "10.42.9.9/32",
        "dev",
        "eth0",
    ]);
    sh(&[
        "ip",
        "-n",
        public,
        "route",
        "add",
        "192.0.2.1/32",
        "dev",
        "eth0",
        "src",
        "10.42.9.9",
    ]);
    sh(&[
        "ip",
        "-n",
        gw,
        "route",
        "add",
        "10.42.9.9/32",
        "dev",
        "pub0",
    ]);
    connect(public, "192.0.2.1:2222").expect("pod-range source on the public side: routing works");
    let err = connect(public, "192.0.2.1:6443")
        .expect_err("a pod address from the public side reached 6443");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");

    // Arriving on the tunnel interface is not enough: the source must be in network.cidr.
    // From 10.99.0.2 on the same link, 2222 (not Proton's) answers, so routing works
    // both ways, and 6443 is dropped.
    sh(&["ip", "-n", wk, "addr", "add", "10.99.0.2/24", "dev", "eth0"]);
    sh(&[
        "ip",
        "-n",
        wk,
        "route",
        "add",
        "10.7.7.1/32",
        "dev",
        "eth0",
        "src",
        "10.99.0.2",
    ]);
    sh(&["ip", "-n", gw, "route", "add", "10.99.0.0/24", "dev", "wg0"]);
    connect(wk, "10.7.7.1:2222").expect("outside source: routing works");
    let err = connect(wk, "10.7.7.1:6443").expect_err("a source outside network.cidr reached 6443");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    connect(public, "192.0.2.1:2222").expect("ports Proton does not own stay open");

    firewall::apply(&SystemRunner, Some(gw), &firewall::removal()).unwrap();
    connect(public, "192.0.2.1:6443").expect("removal reopens 6443");
    drop(listeners);
}

/// Sends one datagram `tag` from `from` (bound to `src`) to `to`.
fn send_udp(ns: &str, src: &str, to: &str, tag: &'static str) {
    let (src, to): (SocketAddr, SocketAddr) = (src.parse().unwrap(), to.parse().unwrap());
    in_netns(ns, move || {
        let s = UdpSocket::bind(src).unwrap();
        s.send_to(tag.as_bytes(), to).unwrap();
    })
}

/// Every datagram that arrives on `sock` until none came for two seconds.
fn received(sock: &UdpSocket) -> BTreeSet<String> {
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut got = BTreeSet::new();
    let mut buf = [0u8; 64];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        got.insert(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    got
}

/// K3s: flannel's VXLAN port "should not be exposed to the world". Proton accepts it
/// only on the tunnel interface from a worker's address (the daemon's `workers` set):
/// not from the public side, not from a phone (client role) on the tunnel.
#[test]
fn vxlan_is_open_to_workers_over_the_tunnel_only() {
    if !is_root() {
        return;
    }
    let (_guard, ns) = netns("vx", &["gw", "pub", "wk"]);
    let (gw, public, wk) = (&ns[0], &ns[1], &ns[2]);
    sh(&[
        "ip", "-n", gw, "link", "add", "pub0", "type", "veth", "peer", "name", "eth0", "netns",
        public,
    ]);
    sh(&[
        "ip", "-n", gw, "link", "add", "wg0", "type", "veth", "peer", "name", "eth0", "netns", wk,
    ]);
    for (n, dev, addr) in [
        (gw, "pub0", "192.0.2.1/24"),
        (public, "eth0", "192.0.2.2/24"),
        (gw, "wg0", "10.7.7.1/24"),
        (wk, "eth0", "10.7.7.2/24"),
    ] {
        sh(&["ip", "-n", n, "addr", "add", addr, "dev", dev]);
        sh(&["ip", "-n", n, "link", "set", dev, "up"]);
    }
    // The phone: a second tunnel address on the same link (client role).
    sh(&["ip", "-n", wk, "addr", "add", "10.7.7.3/24", "dev", "eth0"]);
    let vxlan = in_netns(gw, || {
        UdpSocket::bind(("0.0.0.0", firewall::VXLAN_PORT)).unwrap()
    });
    // Without the table, the world reaches 8472 (so this test can fail).
    send_udp(public, "192.0.2.2:0", "192.0.2.1:8472", "public");
    assert_eq!(received(&vxlan), BTreeSet::from(["public".to_string()]));

    let script = firewall::ruleset_with(&params(), &members()).unwrap();
    firewall::apply(&SystemRunner, Some(gw), &script).unwrap();
    send_udp(public, "192.0.2.2:0", "192.0.2.1:8472", "public");
    send_udp(wk, "10.7.7.3:0", "10.7.7.1:8472", "phone");
    send_udp(wk, "10.7.7.2:0", "10.7.7.1:8472", "worker");
    assert_eq!(
        received(&vxlan),
        BTreeSet::from(["worker".to_string()]),
        "8472/udp: a worker over the tunnel only"
    );
    // A worker the daemon has not admitted (yet) is no different from a phone.
    let mut none = members();
    none.workers.clear();
    none.grants.clear();
    firewall::apply(
        &SystemRunner,
        Some(gw),
        &firewall::ruleset_with(&params(), &none).unwrap(),
    )
    .unwrap();
    send_udp(wk, "10.7.7.2:0", "10.7.7.1:8472", "worker");
    assert!(received(&vxlan).is_empty());
    // The daemon's delta admits it again, in place.
    firewall::apply(
        &SystemRunner,
        Some(gw),
        &firewall::members_update(&none, &members()),
    )
    .unwrap();
    send_udp(wk, "10.7.7.2:0", "10.7.7.1:8472", "worker");
    assert_eq!(received(&vxlan), BTreeSet::from(["worker".to_string()]));
}

/// What `flannel.1` and `cni0` carry is trusted only where the pod subnet is routed: a
/// packet on the CNI bridge claiming a pod address that lives behind `flannel.1` (a
/// spoofed source) is dropped, and one from the bridge's own subnet is accepted.
#[test]
fn pod_sources_are_bound_to_the_interface_their_subnet_is_routed_through() {
    if !is_root() {
        return;
    }
    let (_guard, ns) = netns("rpf", &["gw", "pod"]);
    let (gw, pod) = (&ns[0], &ns[1]);
    sh(&[
        "ip", "-n", gw, "link", "add", "cni0", "type", "veth", "peer", "name", "eth0", "netns", pod,
    ]);
    sh(&[
        "ip",
        "-n",
        gw,
        "link",
        "add",
        "flannel.1",
        "type",
        "veth",
        "peer",
        "name",
        "fl-end",
    ]);
    sh(&["ip", "-n", gw, "link", "set", "flannel.1", "up"]);
    sh(&["ip", "-n", gw, "link", "set", "fl-end", "up"]);
    for (n, dev, addr) in [(gw, "cni0", "10.42.0.1/24"), (pod, "eth0", "10.42.0.5/24")] {
        sh(&["ip", "-n", n, "addr", "add", addr, "dev", dev]);
        sh(&["ip", "-n", n, "link", "set", dev, "up"]);
    }
    // A worker's pod subnet, routed through flannel's VXLAN device (as flannel does).
    sh(&[
        "ip",
        "-n",
        gw,
        "route",
        "add",
        "10.42.7.0/24",
        "dev",
        "flannel.1",
    ]);
    sh(&[
        "ip",
        "-n",
        pod,
        "addr",
        "add",
        "10.42.7.7/32",
        "dev",
        "eth0",
    ]);
    for c in ["all", "default", "cni0"] {
        sh(&[
            "ip",
            "netns",
            "exec",
            gw,
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{c}.rp_filter=0"),
        ]);
    }
    let sock = in_netns(gw, || UdpSocket::bind(("0.0.0.0", 5353)).unwrap());
    send_udp(pod, "10.42.7.7:0", "10.42.0.1:5353", "spoofed");
    assert_eq!(
        received(&sock),
        BTreeSet::from(["spoofed".to_string()]),
        "without the table the spoofed source arrives (so this test can fail)"
    );
    let script = firewall::ruleset_with(&params(), &members()).unwrap();
    firewall::apply(&SystemRunner, Some(gw), &script).unwrap();
    send_udp(pod, "10.42.7.7:0", "10.42.0.1:5353", "spoofed");
    send_udp(pod, "10.42.0.5:0", "10.42.0.1:5353", "pod");
    assert_eq!(received(&sock), BTreeSet::from(["pod".to_string()]));
}
