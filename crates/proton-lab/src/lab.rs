//! Bringing a lab up (step by step, rolled back on failure) and down.

use crate::error::LabError;
use crate::procs;
use crate::state::{self, Node, Process, Role, Uplink, lab_dir};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// Prefix of every namespace (`<name>-gw`…) and the state directory's name.
    pub name: String,
    pub workers: usize,
    pub clients: usize,
}

impl LabConfig {
    pub fn new(name: impl Into<String>, workers: usize, clients: usize) -> LabConfig {
        LabConfig {
            name: name.into(),
            workers,
            clients,
        }
    }
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig::new(DEFAULT_NAME, 2, 1)
    }
}

/// The lab name `proton lab` uses when none is given.
pub const DEFAULT_NAME: &str = "proton";
pub const MAX_WORKERS: usize = 200;
pub const MAX_CLIENTS: usize = 150;

/// A lab that is up (or partly up), as recorded in its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    pub(crate) name: String,
    /// Picks the lab's address ranges; distinct among the labs on this machine.
    pub(crate) index: u8,
    pub(crate) public_net: Ipv4Net,
    pub(crate) lan_net: Ipv4Net,
    pub(crate) nodes: Vec<Node>,
    pub(crate) processes: Vec<Process>,
}

/// Runs a host command (always `ip …` with `-n`/`netns exec`: nothing touches the
/// host's own namespace), failing with its stderr.
pub(crate) fn run(argv: &[&str]) -> Result<Output, LabError> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: argv[0].to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: argv.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn netns_exists(netns: &str) -> bool {
    Path::new("/run/netns").join(netns).exists()
}

fn validate(cfg: &LabConfig) -> Result<(), LabError> {
    let n = &cfg.name;
    let ok = (1..=24).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(LabError::BadName(n.clone()));
    }
    for (field, value, max) in [
        ("workers", cfg.workers, MAX_WORKERS),
        ("clients", cfg.clients, MAX_CLIENTS),
    ] {
        if value > max {
            return Err(LabError::TooMany {
                lab: n.clone(),
                field,
                value,
                max,
            });
        }
    }
    Ok(())
}

/// The node names a config makes, in creation order.
fn node_names(cfg: &LabConfig) -> Vec<String> {
    let mut names: Vec<String> = ["inet", "gw", "nat"].map(String::from).to_vec();
    names.extend((1..=cfg.workers).map(|i| format!("w{i}")));
    names.extend((1..=cfg.clients).map(|i| format!("c{i}")));
    names
}

/// The first range index no other lab on this machine uses (caller holds the lock).
fn free_index() -> u8 {
    let mut used = std::collections::HashSet::new();
    if let Ok(dir) = std::fs::read_dir(state::LAB_DIR) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(Some(lab)) = state::read_state::<Lab>(&name) {
                used.insert(lab.index);
            }
        }
    }
    // 10..=250 keeps clear of the 192.168.0/1.x ranges people recognise as home LANs;
    // past 241 labs ranges repeat, which is harmless: labs share no link or route.
    (10..=250u8).find(|i| !used.contains(i)).unwrap_or(10)
}

impl Lab {
    /// Builds the topology: the internet bridge, the gateway, the NAT router with
    /// `workers` behind it, `clients` on the internet. Refuses if a lab of that name
    /// exists; on any failure removes everything made so far before returning.
    /// `progress` gets one line per step.
    pub fn up(cfg: &LabConfig, progress: &mut dyn FnMut(&str)) -> Result<Lab, LabError> {
        Lab::up_failing_at(cfg, None, progress)
    }

    /// Test hook: [`Lab::up`] that fails with [`LabError::Injected`] when step
    /// `fail_at_step` (1-based) begins, to prove a failed `up` leaves nothing behind.
    #[doc(hidden)]
    pub fn up_failing_at(
        cfg: &LabConfig,
        fail_at_step: Option<usize>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Lab, LabError> {
        validate(cfg)?;
        if !rustix::process::geteuid().is_root() {
            return Err(LabError::NotRoot);
        }
        let mut lab = {
            let _lock = state::global_lock()?;
            if lab_dir(&cfg.name).exists() {
                return Err(LabError::Exists(cfg.name.clone()));
            }
            for node in node_names(cfg) {
                let netns = format!("{}-{node}", cfg.name);
                if netns_exists(&netns) {
                    return Err(LabError::NamespaceTaken(netns));
                }
            }
            let index = free_index();
            let lab = Lab {
                name: cfg.name.clone(),
                index,
                public_net: Ipv4Net::new(Ipv4Addr::new(198, 18, index, 0), 24).expect("/24"),
                lan_net: Ipv4Net::new(Ipv4Addr::new(192, 168, index, 0), 24).expect("/24"),
                nodes: Vec::new(),
                processes: Vec::new(),
            };
            proton_core::host::Root::default().create_dir_all(lab_dir(&lab.name), 0o755)?;
            lab.save()?;
            lab
        };
        let mut steps = Steps {
            next: 1,
            fail_at: fail_at_step,
            progress,
        };
        match lab.build(cfg, &mut steps) {
            Ok(()) => Ok(lab),
            Err(e) => {
                (steps.progress)("failed: removing what was made");
                let _ = lab.teardown();
                Err(e)
            }
        }
    }

    /// The lab `name` as recorded by `up`.
    pub fn load(name: &str) -> Result<Lab, LabError> {
        state::read_state(name)?.ok_or_else(|| LabError::Missing(name.to_string()))
    }

    /// Removes everything lab `name` made — its processes, anchors, namespaces (their
    /// links, bridges and firewall rules go with them) and its run directory — and
    /// nothing else. Works on a half-made or half-removed lab.
    pub fn down(name: &str) -> Result<(), LabError> {
        match state::read_state::<Lab>(name) {
            Ok(Some(lab)) => lab.teardown(),
            // No state: `up` died before recording anything, so the directory is all.
            Ok(None) if lab_dir(name).exists() => remove_dir(name),
            Ok(None) => Err(LabError::Missing(name.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Names of the labs with a state directory on this machine.
    pub fn list() -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(state::LAB_DIR)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    pub(crate) fn save(&self) -> Result<(), LabError> {
        state::write_state(&self.name, self)
    }

    fn teardown(&self) -> Result<(), LabError> {
        for p in &self.processes {
            procs::terminate(p.id, Duration::from_secs(5));
        }
        for n in &self.nodes {
            if let Some(a) = n.anchor {
                procs::terminate(a, Duration::from_secs(2));
            }
        }
        let mut left = Vec::new();
        for n in self.nodes.iter().rev() {
            if netns_exists(&n.netns)
                && let Err(e) = run(&["ip", "netns", "del", &n.netns])
            {
                left.push(e.to_string());
            }
        }
        if let Err(e) = remove_dir(&self.name) {
            left.push(e.to_string());
        }
        for p in &self.processes {
            if procs::alive(p.id) {
                left.push(format!("process {} ({}) still runs", p.id.pid, p.name));
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(LabError::Leftovers {
                lab: self.name.clone(),
                left: left.join("; "),
            })
        }
    }

    fn build(&mut self, cfg: &LabConfig, steps: &mut Steps) -> Result<(), LabError> {
        let (p, l) = (
            self.public_net.network().octets(),
            self.lan_net.network().octets(),
        );
        let public = move |host: u8| Ipv4Addr::new(p[0], p[1], p[2], host);
        let lan = move |host: u8| Ipv4Addr::new(l[0], l[1], l[2], host);
        let (gw_ip, nat_ip, router_lan) = (public(1), public(2), lan(1));

        steps.begin("internet: a bridge in its own namespace")?;
        let inet = self.add_node("inet", Role::Internet)?;
        run(&["ip", "-n", &inet, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &inet, "link", "set", "br0", "up"])?;

        steps.begin(&format!("gateway: public address {gw_ip}"))?;
        self.add_node("gw", Role::Gateway)?;
        self.attach("gw", "eth0", gw_ip, "inet", "br0", "p-gw")?;

        steps.begin(&format!(
            "NAT router: {nat_ip} outside, masquerade, home LAN {}",
            self.lan_net
        ))?;
        let nat = self.add_node("nat", Role::Nat)?;
        self.attach("nat", "wan0", nat_ip, "inet", "br0", "p-nat")?;
        run(&["ip", "-n", &nat, "link", "add", "lan0", "type", "bridge"])?;
        let lan_cidr = format!("{router_lan}/24");
        run(&["ip", "-n", &nat, "addr", "add", &lan_cidr, "dev", "lan0"])?;
        run(&["ip", "-n", &nat, "link", "set", "lan0", "up"])?;
        self.node_mut("nat").lan_address = Some(router_lan);
        self.save()?;
        run(&[
            "ip",
            "netns",
            "exec",
            &nat,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        crate::netfilter::masquerade(&nat, "wan0", "lan0")?;

        for i in 1..=cfg.workers {
            let name = format!("w{i}");
            let ip = lan(10 + i as u8);
            steps.begin(&format!("worker {name}: {ip} behind the NAT"))?;
            let ns = self.add_node(&name, Role::Worker)?;
            self.attach(&name, "eth0", ip, "nat", "lan0", &format!("p-{name}"))?;
            run(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &router_lan.to_string(),
            ])?;
        }
        for i in 1..=cfg.clients {
            let name = format!("c{i}");
            let ip = public(100 + i as u8);
            steps.begin(&format!("client {name}: {ip}, a phone on a mobile network"))?;
            self.add_node(&name, Role::Client)?;
            self.attach(&name, "eth0", ip, "inet", "br0", &format!("p-{name}"))?;
        }
        steps.begin("ready")?;
        Ok(())
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .expect("node was added before")
    }

    /// Creates the namespace (recorded only once it is ours), its directories and its
    /// anchor. Forwarding is off and IPv6 disabled everywhere unless set later: the only
    /// router is the NAT router, and no IPv6 path may bypass it.
    fn add_node(&mut self, name: &str, role: Role) -> Result<String, LabError> {
        let netns = format!("{}-{name}", self.name);
        run(&["ip", "netns", "add", &netns])?;
        self.nodes.push(Node {
            name: name.to_string(),
            role,
            netns: netns.clone(),
            address: None,
            lan_address: None,
            interface: None,
            uplink: None,
            anchor: None,
        });
        self.save()?;
        run(&["ip", "-n", &netns, "link", "set", "lo", "up"])?;
        let mut sysctl = vec![
            "ip",
            "netns",
            "exec",
            &netns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=0",
        ];
        if Path::new("/proc/sys/net/ipv6").exists() {
            sysctl.extend([
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        run(&sysctl)?;
        let root = self.node_root(name);
        proton_core::host::Root::default().create_dir_all(&root, 0o700)?;
        let anchor = crate::node::start_anchor(&self.name, name, &netns)?;
        self.node_mut(name).anchor = Some(anchor);
        self.save()?;
        Ok(netns)
    }

    /// A veth from node `node` (`ifname`, `addr`/24, up) to a port of `bridge` in node
    /// `bridge_node`. Both ends are created inside lab namespaces, never on the host.
    fn attach(
        &mut self,
        node: &str,
        ifname: &str,
        addr: Ipv4Addr,
        bridge_node: &str,
        bridge: &str,
        port: &str,
    ) -> Result<(), LabError> {
        let ns = format!("{}-{node}", self.name);
        let bns = format!("{}-{bridge_node}", self.name);
        run(&[
            "ip", "-n", &bns, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns",
            &ns,
        ])?;
        run(&[
            "ip", "-n", &bns, "link", "set", port, "master", bridge, "up",
        ])?;
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            ifname,
        ])?;
        run(&["ip", "-n", &ns, "link", "set", ifname, "up"])?;
        let n = self.node_mut(node);
        n.address = Some(addr);
        n.interface = Some(ifname.to_string());
        n.uplink = Some(Uplink {
            netns: bns,
            port: port.to_string(),
        });
        self.save()
    }
}

fn remove_dir(name: &str) -> Result<(), LabError> {
    let dir = lab_dir(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(dir)(e)),
    }
}

struct Steps<'a> {
    next: usize,
    fail_at: Option<usize>,
    progress: &'a mut dyn FnMut(&str),
}

impl Steps<'_> {
    fn begin(&mut self, what: &str) -> Result<(), LabError> {
        let k = self.next;
        self.next += 1;
        if self.fail_at == Some(k) {
            return Err(LabError::Injected(k));
        }
        (self.progress)(what);
        Ok(())
    }
}
