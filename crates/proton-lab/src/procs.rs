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
