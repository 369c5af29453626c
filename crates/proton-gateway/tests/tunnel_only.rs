//! The join API's listener answers on the tunnel interface only: a packet that reaches
//! the gateway's tunnel address through another interface (here: the "public" veth)
//! is refused, while a listener bound the ordinary way would have accepted it.
//!
//! Needs root (network namespaces); skipped with a message otherwise.

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        sh(&["ip", "netns", "add", name]);
        Netns(name.to_string())
    }
    fn exec(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend_from_slice(args);
        sh(&full);
    }
    fn enter(&self) {
        let f = std::fs::File::open(format!("/run/netns/{}", self.0)).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Listens in `ns` on 10.77.0.1:port (bound to `tun0` or not), returns after accepting
/// at most one connection or timing out.
fn listen_in(ns: &Netns, port: u16, tunnel_only: bool) -> std::thread::JoinHandle<()> {
    let name = ns.0.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        Netns(name.clone()).enter_and_forget();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let addr = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), port);
            let listener = if tunnel_only {
                proton_gateway::listen::bind_tunnel_only(addr, "tun0").unwrap()
            } else {
                tokio::net::TcpListener::bind(addr).await.unwrap()
            };
            ready_tx.send(()).unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(3), listener.accept()).await;
        });
    });
    ready_rx.recv().unwrap();
    handle
}

impl Netns {
    /// Enters the namespace without deleting it when this handle goes away.
    fn enter_and_forget(self) {
        self.enter();
        std::mem::forget(self);
    }
}

fn connect_from(ns: &Netns, port: u16) -> bool {
    let name = ns.0.clone();
    std::thread::spawn(move || {
        Netns(name).enter_and_forget();
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), port);
        TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)).is_ok()
    })
    .join()
    .unwrap()
}

#[test]
fn join_api_listener_refuses_packets_from_the_public_interface() {
    if !is_root() {
        eprintln!("skipping: needs root for network namespaces");
        return;
    }
    let id = std::process::id();
    let gw = Netns::new(&format!("pgw-t{id}"));
    let out = Netns::new(&format!("pout-t{id}"));
    sh(&[
        "ip",
        "link",
        "add",
        &format!("pa{id}"),
        "type",
        "veth",
        "peer",
        "name",
        &format!("pb{id}"),
    ]);
    sh(&["ip", "link", "set", &format!("pa{id}"), "netns", &gw.0]);
    sh(&["ip", "link", "set", &format!("pb{id}"), "netns", &out.0]);
    gw.exec(&[
        "ip",
        "addr",
        "add",
        "192.0.2.1/24",
        "dev",
        &format!("pa{id}"),
    ]);
    gw.exec(&["ip", "link", "set", &format!("pa{id}"), "up"]);
    gw.exec(&["ip", "link", "set", "lo", "up"]);
    gw.exec(&["ip", "tuntap", "add", "dev", "tun0", "mode", "tun"]);
    gw.exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", "tun0"]);
    gw.exec(&["ip", "link", "set", "tun0", "up"]);
    out.exec(&[
        "ip",
        "addr",
        "add",
        "192.0.2.2/24",
        "dev",
        &format!("pb{id}"),
    ]);
    out.exec(&["ip", "link", "set", &format!("pb{id}"), "up"]);
    // Someone on the public side routes the tunnel network at the gateway's public address.
    out.exec(&["ip", "route", "add", "10.77.0.0/24", "via", "192.0.2.1"]);

    // Control: an ordinary listener on the tunnel address is reachable from outside.
    let h = listen_in(&gw, 18001, false);
    assert!(
        connect_from(&out, 18001),
        "control: the plain listener should be reachable"
    );
    h.join().unwrap();

    // Proton's listener is not.
    let h = listen_in(&gw, 18002, true);
    assert!(
        !connect_from(&out, 18002),
        "the join API answered from the public side"
    );
    h.join().unwrap();
}
