//! Process identity and signals, by pid + start time so a reused pid is never hit.

use crate::state::ProcId;
use rustix::process::{Pid, Signal as RSignal};
use std::time::{Duration, Instant};

/// Signals the lab sends to the processes it supervises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    Int,
    Hup,
    Stop,
    Cont,
}

impl Signal {
    fn raw(self) -> RSignal {
        match self {
            Signal::Term => RSignal::TERM,
            Signal::Kill => RSignal::KILL,
            Signal::Int => RSignal::INT,
            Signal::Hup => RSignal::HUP,
            Signal::Stop => RSignal::STOP,
            Signal::Cont => RSignal::CONT,
        }
    }
}

/// `(state, start_time)` from `/proc/<pid>/stat`; the comm field may hold spaces and
/// parentheses, so fields are counted after the last `)`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: field 3 (state) is index 0, field 22 (starttime) index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The identity of a live process.
pub(crate) fn identify(pid: u32) -> Option<ProcId> {
    stat(pid).map(|(_, start_time)| ProcId { pid, start_time })
}

/// Whether this very process is still running (not gone, not a zombie, not a reused pid).
pub fn alive(id: ProcId) -> bool {
    matches!(stat(id.pid), Some((state, start)) if start == id.start_time && state != 'Z' && state != 'X')
}

/// Sends `signal` to the process group led by `id` (supervised processes lead their
/// own group, so children they fork get it too), if `id` is still that process.
pub(crate) fn signal_group(id: ProcId, signal: Signal) {
    if !alive(id) {
        return;
    }
    if let Some(pid) = Pid::from_raw(id.pid as i32)
        && rustix::process::kill_process_group(pid, signal.raw()).is_err()
    {
        let _ = rustix::process::kill_process(pid, signal.raw());
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; returns once the process is gone.
pub(crate) fn terminate(id: ProcId, grace: Duration) {
    signal_group(id, Signal::Term);
    if wait_gone(id, grace) {
        return;
    }
    signal_group(id, Signal::Kill);
    wait_gone(id, Duration::from_secs(5));
}

pub(crate) fn wait_gone(id: ProcId, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !alive(id) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The inode that names a network namespace (`/run/netns/<name>` is a bind mount of it).
pub(crate) fn netns_inode(netns: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(std::path::Path::new("/run/netns").join(netns))
        .ok()
        .map(|m| m.ino())
}

/// Every process living in one of these network namespaces, whoever started it: a
/// command run with `exec` may have left a daemon behind (`wireguard-go` forks itself
/// into the background), which no record names.
pub(crate) fn in_namespaces(inodes: &[u64]) -> Vec<ProcId> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .ok()
                .and_then(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("net:[")?
                        .strip_suffix(']')?
                        .parse::<u64>()
                        .ok()
                })
                .is_some_and(|ino| inodes.contains(&ino))
        })
        .filter_map(identify)
        .filter(|id| alive(*id))
        .collect()
}

/// SIGTERM to each, up to `grace` for all to exit, then SIGKILL the rest.
pub(crate) fn terminate_all(ids: &[ProcId], grace: Duration) {
    for id in ids {
        if alive(*id)
            && let Some(pid) = Pid::from_raw(id.pid as i32)
        {
            let _ = rustix::process::kill_process(pid, Signal::Term.raw());
        }
    }
    let deadline = Instant::now() + grace;
    while ids.iter().any(|id| alive(*id)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for id in ids {
        if alive(*id)
            && let Some(pid) = Pid::from_raw(id.pid as i32)
        {
            let _ = rustix::process::kill_process(pid, Signal::Kill.raw());
        }
    }
    for id in ids {
        wait_gone(*id, Duration::from_secs(5));
    }
}
