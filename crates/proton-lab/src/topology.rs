use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where labs keep their state.
pub const LAB_DIR: &str = "/run/proton-lab";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root (network namespaces): run it with sudo")]
    NotRoot,
    #[error("a lab named `{0}` is already up: `proton lab down --name {0}` first")]
    Exists(String),
    #[error("no lab named `{0}` is up")]
    Missing(String),
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("lab state: {0}")]
    State(String),
}

#[derive(Debug, Clone)]
pub struct LabConfig {
    pub name: String,
    pub workers: usize,
    pub clients: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Internet,
    Gateway,
    Nat,
    Worker,
    Client,
}

/// Where a node's `eth0` is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The internet's bridge: a public address.
    Public,
    /// The home LAN behind the NAT router.
    Home,
}

/// One namespace of the lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub netns: String,
    pub role: Role,
    /// The node's address on its network ("public" or home LAN).
    pub address: Option<String>,
}

/// A lab that is up (or partly up), as recorded in its state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    pub name: String,
    pub public_net: String,
    pub lan_net: String,
    pub nodes: Vec<Node>,
    /// Processes started in nodes: (node, pid, what).
    pub processes: Vec<(String, u32, String)>,
}

fn run(cmd: &[&str]) -> Result<Output, LabError> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output()?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: cmd.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A per-lab number so two labs use different address ranges.
fn lab_octet(name: &str) -> u8 {
    let h = name
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    (h % 200 + 20) as u8
}

impl Lab {
    pub fn dir(name: &str) -> PathBuf {
        Path::new(LAB_DIR).join(name)
    }

    fn state_path(name: &str) -> PathBuf {
        Lab::dir(name).join("state.json")
    }

    fn save(&self) -> Result<(), LabError> {
        std::fs::create_dir_all(Lab::dir(&self.name))?;
        let text =
            serde_json::to_string_pretty(self).map_err(|e| LabError::State(e.to_string()))?;
        std::fs::write(Lab::state_path(&self.name), text)?;
        Ok(())
    }

    pub fn load(name: &str) -> Result<Lab, LabError> {
        let text = std::fs::read_to_string(Lab::state_path(name))
            .map_err(|_| LabError::Missing(name.into()))?;
        serde_json::from_str(&text).map_err(|e| LabError::State(e.to_string()))
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The state root of a node, for `proton --root`.
    pub fn node_root(&self, node: &str) -> PathBuf {
        Lab::dir(&self.name).join(node).join("root")
    }

    fn node_wireguard_dir(&self, node: &str) -> PathBuf {
        Lab::dir(&self.name).join(node).join("wireguard")
    }

    pub fn gateway_public_ip(&self) -> String {
        self.public_net.replace(".0/24", ".1")
    }

    pub fn nat_public_ip(&self) -> String {
        self.public_net.replace(".0/24", ".2")
    }

    /// Builds the topology. On any failure, everything made so far is removed.
    pub fn up(cfg: &LabConfig, progress: &mut dyn FnMut(&str)) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        if Lab::state_path(&cfg.name).exists() {
            return Err(LabError::Exists(cfg.name.clone()));
        }
        let x = lab_octet(&cfg.name);
        let mut lab = Lab {
            name: cfg.name.clone(),
            public_net: format!("198.18.{x}.0/24"),
            lan_net: format!("192.168.{x}.0/24"),
            nodes: Vec::new(),
            processes: Vec::new(),
        };
        lab.save()?;
        match lab.build(cfg, x, progress) {
            Ok(()) => Ok(lab),
            Err(e) => {
                let _ = Lab::down(&cfg.name);
                Err(e)
            }
        }
    }

    fn add_ns(
        &mut self,
        node: &str,
        role: Role,
        address: Option<String>,
    ) -> Result<String, LabError> {
        let netns = format!("{}-{node}", self.name);
        run(&["ip", "netns", "add", &netns])?;
        self.nodes.push(Node {
            name: node.to_string(),
            netns: netns.clone(),
            role,
            address,
        });
        self.save()?;
        run(&["ip", "-n", &netns, "link", "set", "lo", "up"])?;
        std::fs::create_dir_all(self.node_root(node))?;
        std::fs::create_dir_all(self.node_wireguard_dir(node))?;
        Ok(netns)
    }

    /// A veth from `ns` (named `ifname`, address `addr`) to a bridge port in `bridge_ns`.
    fn wire(
        &self,
        ns: &str,
        ifname: &str,
        addr: &str,
        bridge_ns: &str,
        bridge: &str,
        port: &str,
    ) -> Result<(), LabError> {
        run(&[
            "ip", "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", port,
            "netns", bridge_ns,
        ])?;
        run(&[
            "ip", "-n", bridge_ns, "link", "set", port, "master", bridge, "up",
        ])?;
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", ifname])?;
        run(&["ip", "-n", ns, "link", "set", ifname, "up"])?;
        Ok(())
    }

    fn build(
        &mut self,
        cfg: &LabConfig,
        x: u8,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), LabError> {
        progress("internet (bridge)");
        let inet = self.add_ns("inet", Role::Internet, None)?;
        run(&["ip", "-n", &inet, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &inet, "link", "set", "br0", "up"])?;

        progress("gateway (public address)");
        self.add_node("gw", Role::Gateway, Side::Public, &format!("198.18.{x}.1"))?;

        progress("NAT router (masquerade)");
        let nat_ip = format!("198.18.{x}.2");
        let nat = self.add_ns("nat", Role::Nat, Some(nat_ip.clone()))?;
        self.wire(&nat, "wan0", &format!("{nat_ip}/24"), &inet, "br0", "p-nat")?;
        run(&["ip", "-n", &nat, "link", "add", "lan0", "type", "bridge"])?;
        run(&[
            "ip",
            "-n",
            &nat,
            "addr",
            "add",
            &format!("192.168.{x}.1/24"),
            "dev",
            "lan0",
        ])?;
        run(&["ip", "-n", &nat, "link", "set", "lan0", "up"])?;
        run(&[
            "ip",
            "netns",
            "exec",
            &nat,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        masquerade(&nat)?;

        for i in 1..=cfg.workers {
            let name = format!("w{i}");
            progress(&format!("worker {name} (behind the NAT)"));
            let ip = format!("192.168.{x}.{}", 10 + i);
            self.add_node(&name, Role::Worker, Side::Home, &ip)?;
        }
        for i in 1..=cfg.clients {
            let name = format!("c{i}");
            progress(&format!("client {name} (a phone on a mobile network)"));
            let ip = format!("198.18.{x}.{}", 100 + i);
            self.add_node(&name, Role::Client, Side::Public, &ip)?;
        }
        Ok(())
    }

    /// Adds node `name` (a new namespace with its own empty state root) to a lab that
    /// is up: its `eth0` at `address` (/24) on the internet's bridge (`Side::Public`) or
    /// on the home LAN behind the NAT, routed through it (`Side::Home`). With
    /// [`Lab::destroy_node`], a machine replaced by another under the same name.
    pub fn add_node(
        &mut self,
        name: &str,
        role: Role,
        side: Side,
        address: &str,
    ) -> Result<(), LabError> {
        if self.node(name).is_some() {
            return Err(LabError::State(format!("node `{name}` exists")));
        }
        let (bridge_node, bridge) = match side {
            Side::Public => ("inet", "br0"),
            Side::Home => ("nat", "lan0"),
        };
        let bridge_ns = self
            .node(bridge_node)
            .ok_or_else(|| LabError::Missing(format!("{}/{bridge_node}", self.name)))?
            .netns
            .clone();
        let ns = self.add_ns(name, role, Some(address.to_string()))?;
        self.wire(
            &ns,
            "eth0",
            &format!("{address}/24"),
            &bridge_ns,
            bridge,
            &format!("p-{name}"),
        )?;
        if side == Side::Home {
            let router = self.lan_net.replace(".0/24", ".1");
            run(&["ip", "-n", &ns, "route", "add", "default", "via", &router])?;
        }
        Ok(())
    }

    /// The machine `name` is lost: its recorded processes killed (SIGKILL), its
    /// namespace deleted (its veth with it) and its directory, state root included,
    /// removed; the lab forgets it.
    pub fn destroy_node(&mut self, name: &str) -> Result<(), LabError> {
        let node = self
            .node(name)
            .cloned()
            .ok_or_else(|| LabError::Missing(format!("{}/{name}", self.name)))?;
        for (_, pid, _) in self.processes.iter().filter(|p| p.0 == name) {
            kill_and_wait(*pid, libc::SIGKILL);
        }
        self.processes.retain(|p| p.0 != name);
        run(&["ip", "netns", "del", &node.netns])?;
        self.nodes.retain(|n| n.name != name);
        self.save()?;
        std::fs::remove_dir_all(Lab::dir(&self.name).join(name))?;
        // The kernel frees a namespace (and the veth into it) after its last process is
        // gone, in the background: wait until its bridge port is, so the name is free.
        let port = format!("p-{name}");
        let bridges: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| matches!(n.role, Role::Internet | Role::Nat))
            .map(|n| n.netns.clone())
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while bridges.iter().any(|ns| {
            Command::new("ip")
                .args(["-n", ns, "link", "show", &port])
                .output()
                .is_ok_and(|o| o.status.success())
        }) {
            if std::time::Instant::now() > deadline {
                return Err(LabError::State(format!(
                    "namespace {} is still held by a process",
                    node.netns
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    fn wrap(&self, node: &str, argv: &[&str]) -> Result<Command, LabError> {
        let n = self
            .node(node)
            .ok_or_else(|| LabError::Missing(format!("{}/{node}", self.name)))?;
        // A private mount namespace in which /run/wireguard is this node's own.
        let dir = self.node_wireguard_dir(node);
        std::fs::create_dir_all("/run/wireguard")?;
        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let script = format!(
            "mount --bind {} /run/wireguard && exec {}",
            shell_quote(&dir.display().to_string()),
            quoted.join(" ")
        );
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &n.netns,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]);
        Ok(cmd)
    }

    /// Runs a command in a node and waits for it, feeding `stdin`.
    pub fn exec(&self, node: &str, argv: &[&str], stdin: Option<&str>) -> Result<Output, LabError> {
        let mut cmd = self.wrap(node, argv)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let input = stdin.unwrap_or("").to_string();
        let mut pipe = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
        let out = child.wait_with_output()?;
        let _ = writer.join();
        Ok(out)
    }

    /// Starts a long-running process in a node (logging to `<lab>/<node>/<what>.log`),
    /// recorded so `down` stops it.
    pub fn spawn(&mut self, node: &str, what: &str, argv: &[&str]) -> Result<u32, LabError> {
        use std::os::unix::process::CommandExt;
        let log = Lab::dir(&self.name).join(node).join(format!("{what}.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = self.wrap(node, argv)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let child = cmd.spawn()?;
        let pid = child.id();
        self.processes
            .push((node.to_string(), pid, what.to_string()));
        self.save()?;
        Ok(pid)
    }

    pub fn log_path(&self, node: &str, what: &str) -> PathBuf {
        Lab::dir(&self.name).join(node).join(format!("{what}.log"))
    }

    /// Stops one recorded process (SIGTERM, then SIGKILL after 5 s) and forgets it.
    pub fn stop(&mut self, node: &str, what: &str, signal: i32) -> Result<(), LabError> {
        let found: Vec<_> = self
            .processes
            .iter()
            .filter(|p| p.0 == node && p.2 == what)
            .cloned()
            .collect();
        for (_, pid, _) in found {
            kill_and_wait(pid, signal);
        }
        self.processes.retain(|p| !(p.0 == node && p.2 == what));
        self.save()
    }

    /// Whether each recorded process is alive.
    pub fn status(&self) -> Vec<(String, u32, String, bool)> {
        self.processes
            .iter()
            .map(|(n, pid, w)| {
                (
                    n.clone(),
                    *pid,
                    w.clone(),
                    Path::new(&format!("/proc/{pid}")).exists(),
                )
            })
            .collect()
    }

    /// Removes everything the lab `name` made, and nothing else; works on a half-made lab.
    pub fn down(name: &str) -> Result<(), LabError> {
        let lab = Lab::load(name)?;
        for (_, pid, _) in &lab.processes {
            kill_and_wait(*pid, libc::SIGTERM);
        }
        for n in lab.nodes.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", &n.netns]).output();
        }
        std::fs::remove_dir_all(Lab::dir(name))?;
        Ok(())
    }
}

fn kill_and_wait(pid: u32, signal: i32) {
    let alive = || Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
    if !alive() {
        return;
    }
    let _ = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .output();
    for _ in 0..50 {
        if !alive() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-9".to_string(), pid.to_string()])
        .output();
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2) == Some("Z"))
        .unwrap_or(true)
}

/// A real netfilter masquerade on the router's outside leg: nftables, else iptables.
fn masquerade(ns: &str) -> Result<(), LabError> {
    let rules = "table ip proton_lab_nat {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"wan0\" masquerade\n  }\n  chain fwd {\n    type filter hook forward priority filter; policy drop;\n    iifname \"lan0\" oifname \"wan0\" accept\n    iifname \"wan0\" oifname \"lan0\" ct state established,related accept\n  }\n}\n";
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(rules.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        return Ok(());
    }
    run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "wan0",
        "-j",
        "MASQUERADE",
    ])?;
    run(&[
        "ip", "netns", "exec", ns, "iptables", "-P", "FORWARD", "DROP",
    ])?;
    run(&[
        "ip", "netns", "exec", ns, "iptables", "-A", "FORWARD", "-i", "lan0", "-o", "wan0", "-j",
        "ACCEPT",
    ])?;
    run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "iptables",
        "-A",
        "FORWARD",
        "-i",
        "wan0",
        "-o",
        "lan0",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
    ])?;
    Ok(())
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
