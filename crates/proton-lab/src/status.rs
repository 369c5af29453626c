//! `proton lab status`: what exists and what runs, as a table or JSON.

use crate::lab::Lab;
use crate::procs;
use crate::state::Role;
use serde::Serialize;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabStatus {
    pub name: String,
    pub public_net: String,
    pub lan_net: String,
    pub nodes: Vec<NodeStatus>,
    pub processes: Vec<ProcessStatus>,
    /// Every recorded namespace exists and every anchor runs.
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: Role,
    pub netns: String,
    pub address: Option<Ipv4Addr>,
    pub lan_address: Option<Ipv4Addr>,
    pub netns_exists: bool,
    pub anchor_pid: Option<u32>,
    pub anchor_alive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessStatus {
    pub node: String,
    pub name: String,
    pub pid: u32,
    pub alive: bool,
    pub argv: Vec<String>,
    pub log: PathBuf,
}

impl Lab {
    pub fn status(&self) -> LabStatus {
        let nodes: Vec<NodeStatus> = self
            .nodes
            .iter()
            .map(|n| NodeStatus {
                name: n.name.clone(),
                role: n.role,
                netns: n.netns.clone(),
                address: n.address,
                lan_address: n.lan_address,
                netns_exists: Path::new("/run/netns").join(&n.netns).exists(),
                anchor_pid: n.anchor.map(|a| a.pid),
                anchor_alive: n.anchor.is_some_and(procs::alive),
            })
            .collect();
        let healthy = nodes.iter().all(|n| n.netns_exists && n.anchor_alive);
        LabStatus {
            name: self.name.clone(),
            public_net: self.public_net.to_string(),
            lan_net: self.lan_net.to_string(),
            processes: self
                .processes
                .iter()
                .map(|p| ProcessStatus {
                    node: p.node.clone(),
                    name: p.name.clone(),
                    pid: p.id.pid,
                    alive: procs::alive(p.id),
                    argv: p.argv.clone(),
                    log: p.log.clone(),
                })
                .collect(),
            nodes,
            healthy,
        }
    }
}

impl LabStatus {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serializes")
    }
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "lab {}: internet {}, home LAN {}{}",
            self.name,
            self.public_net,
            self.lan_net,
            if self.healthy {
                ""
            } else {
                "  (DAMAGED: `proton lab down` then up)"
            }
        )?;
        writeln!(
            f,
            "{:<6} {:<9} {:<16} {:<18} STATE",
            "NODE", "ROLE", "ADDRESS", "NETNS"
        )?;
        for n in &self.nodes {
            let addr = match (n.address, n.lan_address) {
                (Some(a), Some(l)) => format!("{a} / {l}"),
                (Some(a), None) => a.to_string(),
                _ => "-".into(),
            };
            let state = match (n.netns_exists, n.anchor_alive) {
                (true, true) => "ok",
                (false, _) => "netns missing",
                (true, false) => "anchor dead",
            };
            writeln!(
                f,
                "{:<6} {:<9} {:<16} {:<18} {state}",
                n.name,
                n.role.to_string(),
                addr,
                n.netns
            )?;
        }
        if !self.processes.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:<6} {:<14} {:<8} {:<8} LOG",
                "NODE", "PROCESS", "PID", "STATE"
            )?;
            for p in &self.processes {
                let state = if p.alive { "running" } else { "dead" };
                writeln!(
                    f,
                    "{:<6} {:<14} {:<8} {:<8} {}",
                    p.node,
                    p.name,
                    p.pid,
                    state,
                    p.log.display()
                )?;
            }
        }
        Ok(())
    }
}
