//! Running things inside a node: its anchor (the private mount namespace), commands,
//! and supervised processes.

use crate::error::LabError;
use crate::lab::Lab;
use crate::procs::{self, Signal};
use crate::state::{self, Node, ProcId, Process, lab_dir};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The anchor: inside the node's netns, a new mount namespace whose `/run` is a private
/// tmpfs (so `/run/wireguard/*.sock` and `/run/proton` are the node's own, like on a
/// separate machine) with only this lab's directory bound back in from the host (node
/// roots and logs live there). The lab directory is opened before the tmpfs hides it and
/// bound from that descriptor. Then it sleeps, holding the namespaces for `nsenter`.
const ANCHOR_SCRIPT: &str = r#"set -e
exec 3<"$1"
mount -t tmpfs -o mode=0755,size=64m proton-lab-run /run
mkdir -p /run/wireguard /run/proton /run/lock "$1"
mount --no-canonicalize --bind /proc/self/fd/3 "$1"
exec 3<&-
touch /run/.proton-lab-anchor
exec sleep infinity
"#;

/// Set on anchors and on everything run in a node: tells a program which lab and node
/// it is in, and lets anyone find a lab's processes (`/proc/<pid>/environ`) without
/// trusting its records.
pub const LAB_ENV: &str = "PROTON_LAB";
pub const NODE_ENV: &str = "PROTON_LAB_NODE";

/// Reaps a child in the background so a long-lived caller (a test) never keeps
/// zombies; a short-lived caller (the CLI) exits and the child is reparented.
fn reap(mut child: Child) {
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

pub(crate) fn start_anchor(lab: &str, node: &str, netns: &str) -> Result<ProcId, LabError> {
    let dir = lab_dir(lab);
    let log_path = dir.join(node).join("anchor.log");
    let log = std::fs::File::create(&log_path).map_err(LabError::io(&log_path))?;
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
            ])
            .args(["--", "sh", "-c", ANCHOR_SCRIPT, "proton-lab-anchor"])
            .arg(&dir)
            .env(LAB_ENV, lab)
            .env(NODE_ENV, node)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(LabError::io(&log_path))?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|source| LabError::Spawn {
                cmd: "ip netns exec … unshare".into(),
                source,
            })?
    };
    let pid = child.id();
    reap(child);
    let id = procs::identify(pid);
    // Ready once its /run is the private tmpfs with the marker in it.
    let marker = PathBuf::from(format!("/proc/{pid}/root/run/.proton-lab-anchor"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let gone = id.is_none_or(|id| !procs::alive(id));
        if gone {
            let why = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(LabError::Command {
                cmd: format!("anchor of node {node} (unshare --mount in {netns})"),
                stderr: why.trim().to_string(),
            });
        }
        if marker.exists() {
            return Ok(id.expect("checked alive"));
        }
        if Instant::now() >= deadline {
            if let Some(id) = id {
                procs::terminate(id, Duration::from_secs(1));
            }
            return Err(LabError::Command {
                cmd: format!("anchor of node {node}"),
                stderr: "not ready after 10 s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A command to run in a node: argv, extra environment, optional standard input.
/// Keep secrets out of argv (it is recorded in the lab state and visible in `ps`):
/// pass them on stdin or in the environment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NodeCommand {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
}

impl std::fmt::Debug for NodeCommand {
    // Env values and stdin may carry secrets (an invitation): show names and sizes only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCommand")
            .field("argv", &self.argv)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .finish()
    }
}

impl NodeCommand {
    pub fn new<I, S>(argv: I) -> NodeCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NodeCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            ..NodeCommand::default()
        }
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> NodeCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> NodeCommand {
        self.stdin = Some(input.into());
        self
    }

    pub fn argv(&self) -> &[String] {
        &self.argv
    }
}

impl Lab {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Result<&Node, LabError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| LabError::NoSuchNode {
                lab: self.name.clone(),
                node: name.to_string(),
                known: self
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Processes started with [`Lab::spawn`] (alive or not).
    pub fn processes(&self) -> &[Process] {
        &self.processes
    }

    pub fn process(&self, node: &str, name: &str) -> Option<&Process> {
        self.processes
            .iter()
            .find(|p| p.node == node && p.name == name)
    }

    /// The lab's run directory, `/run/proton-lab/<lab>`.
    pub fn dir(&self) -> PathBuf {
        lab_dir(&self.name)
    }

    /// The node's state root, for `proton --root`: `/run/proton-lab/<lab>/<node>/root`.
    /// The same path works on the host and inside the node.
    pub fn node_root(&self, node: &str) -> PathBuf {
        self.dir().join(node).join("root")
    }

    pub fn log_path(&self, node: &str, name: &str) -> PathBuf {
        self.dir().join(node).join(format!("{name}.log"))
    }

    /// A path as the node sees it, reachable from the host (through the anchor's root),
    /// e.g. `node_path("gw", "/run/wireguard/wg0.sock")`. The node's `/run` is private:
    /// the host's `/run/wireguard` is a different directory.
    pub fn node_path(&self, node: &str, path: impl AsRef<Path>) -> Result<PathBuf, LabError> {
        let anchor = self.anchor(node)?;
        let rel = path.as_ref().strip_prefix("/").unwrap_or(path.as_ref());
        Ok(PathBuf::from(format!("/proc/{}/root", anchor.pid)).join(rel))
    }

    fn anchor(&self, node: &str) -> Result<ProcId, LabError> {
        let n = self.node(node)?;
        let gone = |pid| LabError::AnchorGone {
            lab: self.name.clone(),
            node: node.to_string(),
            pid,
        };
        let a = n.anchor.ok_or_else(|| gone(0))?;
        if !procs::alive(a) {
            return Err(gone(a.pid));
        }
        Ok(a)
    }

    /// `nsenter` into the node's network and mount namespaces. The working directory
    /// inside is `/`.
    fn enter(&self, node: &str, cmd: &NodeCommand) -> Result<Command, LabError> {
        let anchor = self.anchor(node)?;
        let mut c = Command::new("nsenter");
        c.args([
            "--target",
            &anchor.pid.to_string(),
            "--mount",
            "--net",
            "--",
        ])
        .args(&cmd.argv)
        .env(LAB_ENV, &self.name)
        .env(NODE_ENV, node)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)));
        Ok(c)
    }

    /// Runs a command in a node and waits for it (whatever its exit status).
    pub fn exec(&self, node: &str, cmd: &NodeCommand) -> Result<Output, LabError> {
        let mut c = self.enter(node, cmd)?;
        c.stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|source| LabError::Spawn {
            cmd: "nsenter".into(),
            source,
        })?;
        let writer = match (child.stdin.take(), cmd.stdin.clone()) {
            (Some(mut pipe), Some(input)) => Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            })),
            _ => None,
        };
        let out = child
            .wait_with_output()
            .map_err(LabError::io(format!("/proc/{}", std::process::id())))?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(out)
    }

    /// Runs a command in a node; its stdout if it exits 0, else an error with its stderr.
    pub fn exec_ok(&self, node: &str, cmd: &NodeCommand) -> Result<String, LabError> {
        let out = self.exec(node, cmd)?;
        if !out.status.success() {
            return Err(LabError::Command {
                cmd: format!("{} (in node {node})", cmd.argv.join(" ")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Shorthand for `exec` with just an argv.
    pub fn run(&self, node: &str, argv: &[&str]) -> Result<Output, LabError> {
        self.exec(node, &NodeCommand::new(argv.iter().copied()))
    }

    /// Starts a long-running process in a node, output to [`Lab::log_path`]`(node, name)`,
    /// in its own process group, recorded in the state so `down` (from any process) stops
    /// it. `name` is unique per node while the process runs; a dead one is replaced.
    pub fn spawn(
        &mut self,
        node: &str,
        name: &str,
        cmd: &NodeCommand,
    ) -> Result<Process, LabError> {
        let _lock = state::global_lock()?;
        // Another process (a second CLI call) may have spawned since we loaded.
        if let Some(fresh) = state::read_state::<Lab>(&self.name)? {
            self.processes = fresh.processes;
        }
        if let Some(p) = self.process(node, name)
            && procs::alive(p.id)
        {
            return Err(LabError::ProcessRunning {
                node: node.into(),
                name: name.into(),
                pid: p.id.pid,
            });
        }
        let log_path = self.log_path(node, name);
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(LabError::io(&log_path))?;
        let mut c = self.enter(node, cmd)?;
        {
            use std::os::unix::process::CommandExt;
            c.process_group(0);
        }
        c.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(LabError::io(&log_path))?)
            .stderr(log);
        let child = c.spawn().map_err(|source| LabError::Spawn {
            cmd: "nsenter".into(),
            source,
        })?;
        let pid = child.id();
        let id = procs::identify(pid);
        reap(child);
        let id = id.ok_or_else(|| LabError::Command {
            cmd: format!("{} (in node {node})", cmd.argv.join(" ")),
            stderr: format!("exited at once; see {}", log_path.display()),
        })?;
        let record = Process {
            node: node.into(),
            name: name.into(),
            id,
            argv: cmd.argv.clone(),
            log: log_path,
        };
        self.processes
            .retain(|p| !(p.node == node && p.name == name));
        self.processes.push(record.clone());
        self.save()?;
        Ok(record)
    }

    /// Sends a signal to a supervised process's group (e.g. `Kill` to simulate a crash);
    /// the record stays, so `status` shows it dead and `spawn` may reuse the name.
    pub fn signal(&self, node: &str, name: &str, signal: Signal) -> Result<(), LabError> {
        let p = self
            .process(node, name)
            .ok_or_else(|| LabError::NoSuchProcess {
                node: node.into(),
                name: name.into(),
            })?;
        procs::signal_group(p.id, signal);
        Ok(())
    }

    /// Whether a supervised process is running.
    pub fn is_running(&self, node: &str, name: &str) -> bool {
        self.process(node, name).is_some_and(|p| procs::alive(p.id))
    }

    /// Stops a supervised process (SIGTERM, SIGKILL after `grace`), waits for it to
    /// go, and forgets it.
    pub fn stop(&mut self, node: &str, name: &str, grace: Duration) -> Result<(), LabError> {
        let p = self
            .process(node, name)
            .ok_or_else(|| LabError::NoSuchProcess {
                node: node.into(),
                name: name.into(),
            })?
            .clone();
        procs::terminate(p.id, grace);
        let _lock = state::global_lock()?;
        if let Some(fresh) = state::read_state::<Lab>(&self.name)? {
            self.processes = fresh.processes;
        }
        self.processes
            .retain(|q| !(q.node == node && q.name == name));
        self.save()
    }
}
