//! What a lab made, recorded in `/run/proton-lab/<lab>/state.json` so that `down`
//! (from any process, later) removes exactly that and nothing else.

use crate::error::LabError;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where labs keep their state, one directory per lab.
pub const LAB_DIR: &str = "/run/proton-lab";

/// What a node plays in the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The "internet": a bridge in its own namespace, no address.
    Internet,
    /// The VPS: a public address on the internet.
    Gateway,
    /// The home router: public address outside, masquerade, home LAN inside.
    Nat,
    /// A home server behind the NAT router (private address only).
    Worker,
    /// A phone on a mobile network: its own public address.
    Client,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Internet => "internet",
            Role::Gateway => "gateway",
            Role::Nat => "nat",
            Role::Worker => "worker",
            Role::Client => "client",
        })
    }
}

/// A process identity that survives pid reuse: the pid plus its kernel start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: u64,
}

/// The bridge port that attaches a node to its network (what [`crate::Lab::set_link`] cuts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uplink {
    /// The namespace holding the bridge (`<lab>-inet` or `<lab>-nat`).
    pub netns: String,
    /// The port's interface name in that namespace (`p-w1`).
    pub port: String,
}

/// One namespace of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Short name used everywhere (`gw`, `nat`, `w1`, `c1`, `inet`).
    pub name: String,
    pub role: Role,
    /// The network namespace (`<lab>-<name>`).
    pub netns: String,
    /// Its address on its network: public for gateway, NAT (outside) and clients;
    /// private (home LAN) for workers; none for the internet bridge.
    pub address: Option<Ipv4Addr>,
    /// The NAT router's inside address (the workers' default route).
    pub lan_address: Option<Ipv4Addr>,
    /// The node's own interface towards its network (`eth0`; `wan0` on the router).
    pub interface: Option<String>,
    pub uplink: Option<Uplink>,
    /// The process that holds the node's private mount namespace.
    pub anchor: Option<ProcId>,
}

/// A supervised process started in a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub node: String,
    /// The caller's label, unique per node (`gateway`, `agent`, `wireguard-go`).
    pub name: String,
    pub id: ProcId,
    pub argv: Vec<String>,
    pub log: PathBuf,
}

/// The directory of lab `name`.
pub fn lab_dir(name: &str) -> PathBuf {
    Path::new(LAB_DIR).join(name)
}

pub(crate) fn state_path(name: &str) -> PathBuf {
    lab_dir(name).join("state.json")
}

/// Holds the machine-wide lab lock (address allocation, state read-modify-write)
/// until dropped. `/run/proton-lab/.lock` is the only file outside a lab's own
/// directory that labs share; like `/run/netns`, it stays.
pub(crate) struct GlobalLock(#[allow(dead_code)] File);

pub(crate) fn global_lock() -> Result<GlobalLock, LabError> {
    proton_core::host::Root::default().create_dir_all(LAB_DIR, 0o755)?;
    let path = Path::new(LAB_DIR).join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(LabError::io(&path))?;
    file.lock().map_err(LabError::io(&path))?;
    Ok(GlobalLock(file))
}

pub(crate) fn read_state<T: serde::de::DeserializeOwned>(
    name: &str,
) -> Result<Option<T>, LabError> {
    let path = state_path(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::io(&path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| LabError::State {
            path,
            reason: e.to_string(),
        })
}

pub(crate) fn write_state<T: Serialize>(name: &str, value: &T) -> Result<(), LabError> {
    let path = state_path(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| LabError::State {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    proton_core::host::write_atomic(&path, text.as_bytes(), 0o644)?;
    Ok(())
}
