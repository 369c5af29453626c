//! `proton join` (make this machine a peer) and `proton agent` (run its tunnel): read the
//! invitation, hand it to `proton_join`, print what it reports.

use crate::cli::{DaemonArgs, JoinArgs};
use crate::cmd::gateway::shutdown_signal;
use crate::output::{bad_input, with_hint};
use proton_core::host::Root;
use proton_core::invite::Invitation;
use proton_join::agent::{Agent, AgentOptions};
use proton_join::k3s::K3sProgress;
use proton_join::{JoinOptions, K3sOptions, Progress, TunnelKind};
use std::time::Duration;

/// The invitation: the argument, else the first non-blank line of standard input. At a
/// terminal it asks for it and reads that one line (paste, Enter), never waiting for an
/// end-of-file nobody knows to type; from a pipe (`proton invite w1 --no-qr | ssh w1
/// proton join`) it reads the same one line.
fn read_invitation(arg: &Option<String>) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if let Some(text) = arg.as_deref().filter(|t| *t != "-") {
        return Ok(text.to_string());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Paste the invitation from `proton invite` and press Enter: ");
        let _ = std::io::stderr().flush();
    }
    let mut lines = stdin.lock();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Err(bad_input(
                "no invitation on standard input",
                Some(
                    "paste the line `proton invite NAME` printed, or pipe it: \
                     proton invite NAME --no-qr | ssh root@WORKER proton join"
                        .into(),
                ),
            ));
        }
        if !line.trim().is_empty() {
            return Ok(line.trim().to_string());
        }
    }
}

fn options(args: &JoinArgs) -> anyhow::Result<JoinOptions> {
    let backend = crate::cmd::gateway::backend_arg(&args.backend)?;
    Ok(JoinOptions {
        interface: args.interface.clone(),
        timeout: Duration::from_secs(args.timeout),
        backend,
        k3s: K3sOptions {
            skip: args.no_k3s,
            install_script: crate::cmd::join_k3s::script_source(&args.k3s_install_script),
            skip_download: args.k3s_skip_download,
        },
        proton_bin: crate::paths::proton_bin(),
    })
}

pub fn join(root: &Root, args: &JoinArgs) -> anyhow::Result<()> {
    let opts = options(args)?;
    let text = read_invitation(&args.invitation)?;
    let inv = Invitation::decode(&text).map_err(|e| bad_input(e.to_string(), None))?;
    proton_join::join(root, &inv, &opts, &mut print)
        .map(drop)
        .map_err(|e| with_hint(&e, e.hint(), e.is_bad_input()))
}

fn print(p: Progress<'_>) {
    match p {
        Progress::Joining {
            endpoint,
            address,
            via,
        } => eprintln!("joining {endpoint} as {address} through {via} ..."),
        Progress::Resumed => {
            eprintln!("(the gateway already holds this machine's key: finishing the job)")
        }
        Progress::OwnKey => {
            eprintln!("switched to this machine's own key; checking the tunnel ...")
        }
        Progress::Joined(j) => println!("Joined as `{}` ({}) at {}.", j.name, j.role, j.address),
        Progress::ReresolveTimerNotEnabled => eprintln!(
            "warning: could not enable proton-reresolve.timer; see `systemctl status proton-reresolve.timer`"
        ),
        Progress::Tunnel(t) => match (&t.kind, t.enabled) {
            (TunnelKind::WgQuick { config }, true) => println!(
                "The tunnel runs as wg-quick@{} ({config}) and survives reboots.",
                t.interface
            ),
            (TunnelKind::Agent, true) => {
                println!("The tunnel runs as {} and survives reboots.", t.unit)
            }
            (TunnelKind::WgQuick { .. }, false) => {
                println!("Start the tunnel with: wg-quick up {}", t.interface)
            }
            (TunnelKind::Agent, false) => println!("Start the tunnel with: proton agent"),
        },
        Progress::K3s(k) => print_k3s(k),
    }
}

fn print_k3s(k: K3sProgress<'_>) {
    match k {
        K3sProgress::Written {
            config,
            server_url,
            node_ip,
            interface,
            mtu,
            pod_mtu,
        } => println!(
            "K3s agent: {} written (server {server_url}, node-ip {node_ip}, flannel-iface {interface}, pod MTU {mtu} - 50 = {pod_mtu}).",
            config.display()
        ),
        K3sProgress::KeptConfig { config } => println!(
            "K3s: the agent's config from the first run is kept ({}); if k3s-agent is not running, re-run the K3s install script with INSTALL_K3S_EXEC=agent.",
            config.display()
        ),
        K3sProgress::NotOffered => println!(
            "The gateway offers no K3s (not installed there yet): only the tunnel was made."
        ),
        K3sProgress::Skipped => println!(
            "--no-k3s: the K3s agent was not installed (the bootstrap token expires unused)."
        ),
        K3sProgress::NotRun(what) => println!("not run (--root is not /): {what}"),
        K3sProgress::Installing { version } => {
            eprintln!("installing the K3s agent {version} (this can take a few minutes) ...")
        }
        K3sProgress::InstallerOutput(line) => eprintln!("  | {line}"),
        K3sProgress::Installed {
            version,
            server_url,
            node,
        } => println!("K3s agent {version} installed: this node joins {server_url} as `{node}`."),
        K3sProgress::AlreadyInstalled { version } => {
            println!("K3s {version} was already installed here.")
        }
        K3sProgress::Restarted => println!("Restarted k3s-agent with the new configuration."),
    }
}

/// `proton agent`: the worker's tunnel from agent.conf, until SIGTERM.
pub fn agent(root: &Root, args: &DaemonArgs) -> anyhow::Result<()> {
    let opts = AgentOptions {
        uapi_dir: args.uapi_dir.clone(),
    };
    let fail = |e: proton_join::agent::AgentError| with_hint(&e, e.hint(), false);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let agent = Agent::start(root, &opts).await.map_err(fail)?;
        eprintln!(
            "agent: tunnel up to {} ({})",
            agent.endpoint(),
            agent.resolved()
        );
        agent.run(shutdown_signal()).await.map_err(fail)
    })
}
