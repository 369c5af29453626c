//! The lab's scenario: the real `proton` binary (spawned by path) run inside the lab's
//! namespaces: `proton init` and the gateway daemon in `gw`, each worker joined with
//! only an invitation string, each client a `proton client add` config run by
//! wireguard-go. Every tool is checked before anything is made.

use crate::{Lab, LabConfig, LabError};
use std::path::Path;
use std::time::{Duration, Instant};

/// Why the scenario stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("`proton {args}` in {node} failed: {stderr}")]
    Proton {
        args: String,
        node: String,
        stderr: String,
    },
    #[error("`proton invite` printed no invitation: {0:?}")]
    NoInvitation(String),
    #[error("parsing the printed client config")]
    ClientConfig(#[source] proton_core::wgconf::WgConfError),
    #[error("{argv:?} in {node}: {stderr}")]
    Command {
        argv: Vec<String>,
        node: String,
        stderr: String,
    },
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("the lab needs {tools} (not found on PATH)")]
    MissingTools { tools: String, install: String },
    #[error(transparent)]
    Host(#[from] proton_core::host::HostError),
}

impl ScenarioError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            ScenarioError::Timeout(_) => Some("see the logs under /run/proton-lab/<lab>/"),
            ScenarioError::MissingTools { install, .. } => Some(install),
            _ => None,
        }
    }
}

/// The lab `proton lab` acts on without `--name`.
pub const DEFAULT_NAME: &str = "proton";

/// What `proton lab up` prints once the lab is up: where it is, then commands to try,
/// each naming this lab so it can be pasted as is.
pub fn up_report(lab: &Lab, workers: usize) -> String {
    let mut out = format!(
        "Lab `{}` is up: gateway at {} (public), workers behind NAT {}.\n",
        lab.name,
        lab.gateway_public_ip(),
        lab.nat_public_ip()
    );
    let n = if lab.name == DEFAULT_NAME {
        String::new()
    } else {
        format!(" --name {}", lab.name)
    };
    let mut hints = Vec::new();
    if workers > 0 {
        hints.push(format!("proton lab exec{n} w1 -- ping -c 3 10.7.7.1"));
        hints.push(format!("proton lab exec{n} w1 -- proton status"));
    }
    hints.push(format!("proton lab exec{n} gw -- wg show"));
    hints.push(format!("proton lab exec{n} gw -- proton peer list"));
    hints.push(format!("proton lab status{n};  proton lab down{n}"));
    for (i, h) in hints.iter().enumerate() {
        out.push_str(if i == 0 { "Try:  " } else { "      " });
        out.push_str(h);
        out.push('\n');
    }
    out
}

/// What `proton lab status` prints: the nodes, the processes started in them, and the
/// gateway's own `proton status` (run with `exe`) when there is a gateway.
pub fn status_report(exe: Option<&Path>, lab: &Lab) -> String {
    let mut out = format!("{:<6} {:<10} {:<18} NETNS\n", "NODE", "ROLE", "ADDRESS");
    for n in &lab.nodes {
        out.push_str(&format!(
            "{:<6} {:<10} {:<18} {}\n",
            n.name,
            format!("{:?}", n.role).to_lowercase(),
            n.address.clone().unwrap_or_default(),
            n.netns
        ));
    }
    out.push('\n');
    for (node, pid, what, alive) in lab.status() {
        out.push_str(&format!(
            "{node:<6} {what:<14} pid {pid:<8} {}\n",
            if alive { "running" } else { "DEAD" }
        ));
    }
    if lab.node("gw").is_some() {
        out.push('\n');
        // The gateway's own view: every peer with its liveness.
        if let Some(text) = exe.and_then(|exe| proton_in(exe, lab, "gw", &["status"], None).ok()) {
            out.push_str(&text);
        }
    }
    out
}

/// Runs `command` in `node` as `proton lab exec` does: there `proton` is `exe` (its
/// directory first on `PATH`) and its root is the node's (`PROTON_ROOT`), so `proton
/// status` in w1 asks w1's own Proton.
pub fn exec(
    exe: &Path,
    lab: &Lab,
    node: &str,
    command: &[String],
    stdin: Option<&str>,
) -> Result<std::process::Output, ScenarioError> {
    let mut path = std::ffi::OsString::from(exe.parent().unwrap_or(Path::new("/")));
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    let path = format!("PATH={}", path.to_string_lossy());
    let node_root = format!("PROTON_ROOT={}", lab.node_root(node).display());
    let mut argv: Vec<&str> = vec!["env", &path, &node_root];
    argv.extend(command.iter().map(String::as_str));
    Ok(lab.exec(node, &argv, stdin)?)
}

fn root_of(lab: &Lab, node: &str) -> String {
    lab.node_root(node).display().to_string()
}

/// Runs `<exe> --root <node root> args…` in a node and returns stdout, or fails with
/// the command's stderr.
pub fn proton_in(
    exe: &Path,
    lab: &Lab,
    node: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, ScenarioError> {
    let exe = exe.display().to_string();
    let root = root_of(lab, node);
    let mut argv = vec![exe.as_str(), "--root", root.as_str()];
    argv.extend_from_slice(args);
    let out = lab.exec(node, &argv, stdin)?;
    if !out.status.success() {
        return Err(ScenarioError::Proton {
            args: args.join(" "),
            node: node.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for(
    what: &str,
    timeout: Duration,
    mut ok: impl FnMut() -> bool,
) -> Result<(), ScenarioError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(ScenarioError::Timeout(what.to_owned()))
}

/// Starts the gateway daemon in the `gw` node and waits until it answers.
pub fn start_gateway(exe: &Path, lab: &mut Lab) -> Result<(), ScenarioError> {
    let exe = exe.display().to_string();
    let root = root_of(lab, "gw");
    lab.spawn(
        "gw",
        "gateway",
        &[
            &exe,
            "--root",
            &root,
            "gateway",
            "run",
            "--backend",
            "userspace",
        ],
    )?;
    let sock = lab.node_root("gw").join("run/proton/admin.sock");
    wait_for("the gateway daemon", Duration::from_secs(20), || {
        sock.exists()
    })
}

/// Invites `worker` on the gateway and joins it with only the invitation string; then
/// starts its agent.
pub fn join_worker(exe: &Path, lab: &mut Lab, worker: &str) -> Result<(), ScenarioError> {
    // `invite --no-qr` prints the invitation alone: its whole stdout is join's stdin,
    // as in `proton invite w1 --no-qr | ssh w1 proton join`.
    let invitation = proton_in(exe, lab, "gw", &["invite", worker, "--no-qr"], None)?;
    if !invitation.starts_with("proton1-") {
        return Err(ScenarioError::NoInvitation(invitation));
    }
    proton_in(exe, lab, worker, &["join"], Some(&invitation))?;
    let exe = exe.display().to_string();
    let root = root_of(lab, worker);
    lab.spawn(worker, "agent", &[&exe, "--root", &root, "agent"])?;
    Ok(())
}

/// Gives client `name` a `proton client add` config and runs it with wireguard-go.
/// Returns the client's tunnel address.
pub fn connect_client(exe: &Path, lab: &mut Lab, name: &str) -> Result<String, ScenarioError> {
    let conf = proton_in(exe, lab, "gw", &["client", "add", name], None)?;
    let text: String = conf
        .lines()
        .take_while(|l| !l.contains('█') && !l.contains('▀') && !l.contains('▄'))
        .collect::<Vec<_>>()
        .join("\n");
    let parsed =
        proton_core::wgconf::WgQuickConfig::parse(&text).map_err(ScenarioError::ClientConfig)?;
    let dir = Lab::dir(&lab.name).join(name);
    let path = dir.join("wg0.conf");
    proton_core::host::write_atomic(&path, parsed.render().as_bytes(), 0o600)?;
    lab.spawn(
        name,
        "wireguard-go",
        &["env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "wg0"],
    )?;
    let sock = dir.join("wireguard/wg0.sock");
    wait_for("wireguard-go", Duration::from_secs(10), || sock.exists())?;
    let strip = dir.join("wg0.setconf");
    proton_core::host::write_atomic(&strip, parsed.render_wg_setconf().as_bytes(), 0o600)?;
    let address = parsed.interface.addresses[0].to_string();
    for argv in [
        vec!["wg", "setconf", "wg0", strip.to_str().unwrap()],
        vec!["ip", "addr", "add", &address, "dev", "wg0"],
        vec!["ip", "link", "set", "wg0", "up"],
    ] {
        let out = lab.exec(name, &argv, None)?;
        if !out.status.success() {
            return Err(ScenarioError::Command {
                argv: argv.iter().map(|a| a.to_string()).collect(),
                node: name.to_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
    }
    Ok(address)
}

/// What `lab up` runs, and the Debian package each comes from.
const LAB_TOOLS: [(&str, &str); 5] = [
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("wg", "wireguard-tools"),
    ("wireguard-go", "wireguard-go"),
    ("sysctl", "procps"),
];

fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Checks every tool before anything is made, so a missing one is named up front with
/// the line that installs it, instead of a timeout half-way through.
pub fn check_tools(clients: usize) -> Result<(), ScenarioError> {
    let missing: Vec<(&str, &str)> = LAB_TOOLS
        .iter()
        .copied()
        // Only the phone stand-ins run wireguard-go.
        .filter(|(tool, _)| clients > 0 || *tool != "wireguard-go")
        .filter(|(tool, _)| !on_path(tool))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let tools: Vec<&str> = missing.iter().map(|(t, _)| *t).collect();
    let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    pkgs.dedup();
    Err(ScenarioError::MissingTools {
        tools: tools.join(", "),
        install: format!("apt-get install -y {}", pkgs.join(" ")),
    })
}

/// Builds lab `name` and runs the scenario in it, telling `step` each stage; a failure
/// takes the lab down again.
pub fn up(
    exe: &Path,
    name: &str,
    workers: usize,
    spare: usize,
    clients: usize,
    step: &mut dyn FnMut(&str),
) -> Result<Lab, ScenarioError> {
    check_tools(clients)?;
    let cfg = LabConfig {
        name: name.to_string(),
        workers: workers + spare,
        clients,
    };
    let mut lab = Lab::up(&cfg, &mut *step)?;
    let result = (|| -> Result<(), ScenarioError> {
        step("gateway: proton init");
        let endpoint = format!("{}:51820", lab.gateway_public_ip());
        proton_in(exe, &lab, "gw", &["init", "--endpoint", &endpoint], None)?;
        step("gateway: proton gateway run (userspace WireGuard)");
        start_gateway(exe, &mut lab)?;
        for i in 1..=workers {
            let w = format!("w{i}");
            step(&format!(
                "{w}: proton invite on the gateway, proton join on the worker"
            ));
            join_worker(exe, &mut lab, &w)?;
        }
        for i in 1..=clients {
            let c = format!("c{i}");
            step(&format!("{c}: proton client add, run by wireguard-go"));
            connect_client(exe, &mut lab, &c)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = Lab::down(name);
        return Err(e);
    }
    Ok(lab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hints_of_a_named_lab_name_it() {
        let lab = Lab {
            name: "l2".into(),
            public_net: "198.18.9.0/24".into(),
            lan_net: "192.168.9.0/24".into(),
            nodes: Vec::new(),
            processes: Vec::new(),
        };
        let text = up_report(&lab, 0);
        assert_eq!(
            text,
            "Lab `l2` is up: gateway at 198.18.9.1 (public), workers behind NAT 198.18.9.2.\n\
             Try:  proton lab exec --name l2 gw -- wg show\n      \
             proton lab exec --name l2 gw -- proton peer list\n      \
             proton lab status --name l2;  proton lab down --name l2\n"
        );
    }
}
