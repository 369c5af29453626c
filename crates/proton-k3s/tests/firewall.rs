//! The firewall ruleset: checked by `nft -c`, then proven in network namespaces.
//!
//! Topology (all inside namespaces this test makes and removes):
//! `pub` (192.0.2.2) ──veth── `gw` (192.0.2.1 on pub0, 10.7.7.1 on wg0) ──veth── `wk` (10.7.7.2)
//! The `wg0` veth stands in for the WireGuard interface: the ruleset keys on its name.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use proton_k3s::firewall::{self, FirewallParams};
use proton_k3s::{RecordingRunner, SystemRunner};

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

    let script = firewall::ruleset(&params()).unwrap();
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
