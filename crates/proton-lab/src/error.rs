//! The lab's one error type: each variant is one line a person can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root (network namespaces, mounts): run it with sudo")]
    NotRoot,
    #[error("lab name `{0}`: use 1-24 characters from a-z, 0-9 and `-`, starting with a letter")]
    BadName(String),
    #[error("lab `{lab}`: {field} = {value} is out of range (at most {max})")]
    TooMany {
        lab: String,
        field: &'static str,
        value: usize,
        max: usize,
    },
    #[error(
        "a lab named `{0}` is already up: `proton lab down --name {0}` first, or pick another --name"
    )]
    Exists(String),
    #[error(
        "network namespace `{0}` already exists and is not part of this lab: pick another --name"
    )]
    NamespaceTaken(String),
    #[error(
        "no lab named `{0}` is up (no /run/proton-lab/{0}/state.json): `proton lab up --name {0}`"
    )]
    Missing(String),
    #[error("lab `{lab}` has no node `{node}` (nodes: {known})")]
    NoSuchNode {
        lab: String,
        node: String,
        known: String,
    },
    #[error(
        "node `{node}`: its anchor process (pid {pid}) is gone, so its namespaces are too: `proton lab down --name {lab}` and up again"
    )]
    AnchorGone { lab: String, node: String, pid: u32 },
    #[error(
        "node `{node}`: a process named `{name}` is already running (pid {pid}): stop it first"
    )]
    ProcessRunning {
        node: String,
        name: String,
        pid: u32,
    },
    #[error("node `{node}`: no process named `{name}` was started")]
    NoSuchProcess { node: String, name: String },
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("`{cmd}` could not start: {source} (is it installed?)")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: unreadable lab state ({reason}): remove the directory by hand after checking `ip netns list`", path.display())]
    State { path: PathBuf, reason: String },
    #[error("lab up stopped at step {0} by the test hook `Lab::up_failing_at`")]
    Injected(usize),
    #[error("lab `{lab}` could not be removed completely: {left}")]
    Leftovers { lab: String, left: String },
}

impl LabError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LabError {
        let path = path.into();
        move |source| LabError::Io { path, source }
    }
}

impl From<proton_core::host::HostError> for LabError {
    fn from(e: proton_core::host::HostError) -> Self {
        LabError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
