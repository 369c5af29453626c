//! Test support: network namespaces that clean up after themselves, and running code
//! inside one. Needs root; tests skip with a message otherwise.

use std::os::fd::AsFd;
use std::process::{Command, Output};

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        sh(&["ip", "netns", "add", name]);
        let ns = Netns(name.to_string());
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend_from_slice(args);
        sh(&full)
    }

    pub fn try_exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap()
    }

    /// Moves the calling thread into this namespace (threads it spawns follow).
    pub fn enter(&self) {
        let f = std::fs::File::open(format!("/run/netns/{}", self.0)).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Two namespaces joined by a veth pair: `a` is 192.0.2.1/24, `b` is 192.0.2.2/24.
pub fn pair(tag: &str) -> (Netns, Netns) {
    let id = std::process::id();
    let a = Netns::new(&format!("pwa-{tag}-{id}"));
    let b = Netns::new(&format!("pwb-{tag}-{id}"));
    let (va, vb) = (format!("va{tag}{id}"), format!("vb{tag}{id}"));
    let (va, vb) = (&va[..va.len().min(15)], &vb[..vb.len().min(15)]);
    sh(&["ip", "link", "add", va, "type", "veth", "peer", "name", vb]);
    sh(&["ip", "link", "set", va, "netns", &a.0]);
    sh(&["ip", "link", "set", vb, "netns", &b.0]);
    a.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", va]);
    a.exec(&["ip", "link", "set", va, "up"]);
    b.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", vb]);
    b.exec(&["ip", "link", "set", vb, "up"]);
    (a, b)
}

/// Runs `f` on a thread inside `ns`, with a multi-threaded tokio runtime whose
/// workers are created there too.
pub fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    let path = format!("/run/netns/{}", ns.0);
    std::thread::spawn(move || {
        let file = std::fs::File::open(path).unwrap();
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        f(&rt)
    })
    .join()
    .unwrap()
}

/// A wireguard-go process; killed on drop.
pub struct WireguardGo {
    pub iface: String,
    child: std::process::Child,
}

impl WireguardGo {
    pub fn start(ns: &Netns, iface: &str) -> WireguardGo {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, "wireguard-go", "-f", iface])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("wireguard-go runs");
        let sock = format!("/var/run/wireguard/{iface}.sock");
        for _ in 0..100 {
            if std::path::Path::new(&sock).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            std::path::Path::new(&sock).exists(),
            "wireguard-go made no socket"
        );
        WireguardGo {
            iface: iface.to_string(),
            child,
        }
    }
}

impl Drop for WireguardGo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.iface));
    }
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `wg <args>` run where `/var/run/wireguard` is `dir` (a private mount namespace),
/// so the real tool talks to a socket outside the standard directory.
pub fn wg_with_socket_dir(dir: &std::path::Path, args: &str) -> String {
    let script = format!(
        "mkdir -p /run/wireguard && mount --bind {} /run/wireguard && wg {args}",
        dir.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wg {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
