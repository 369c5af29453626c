//! The K3s half of `proton join`: when the gateway's redeem answer carries K3s join data
//! (server URL over the tunnel, the server's version, a per-node bootstrap token), write
//! the agent's files and run the official installer with the same version.
//!
//! Runs after the tunnel is permanent: the agent's `flannel-iface` is the WireGuard
//! interface, and its unit drop-in waits for it.

use crate::cli::JoinArgs;
use crate::output::failure;
use proton_core::host::Root;
use proton_gateway::api::RedeemResponse;
use proton_k3s::config::CONFIG_PATH;
use proton_k3s::install::{InstallOutcome, Installer, Role, ScriptSource};
use proton_k3s::{AgentParams, Plan, TunnelUnit, agent_files, pod_mtu};

/// Where the script comes from: an absolute path (resolved under the root) or a URL.
pub fn script_source(text: &str) -> ScriptSource {
    if text.starts_with('/') {
        ScriptSource::Path(text.into())
    } else {
        ScriptSource::Url(text.to_string())
    }
}

/// Writes the agent's files as soon as the redeem answer is in (the token is in that
/// answer only: a run interrupted later keeps it). Returns the files that changed.
pub fn write_agent(
    root: &Root,
    args: &JoinArgs,
    answer: &RedeemResponse,
    kernel: bool,
) -> anyhow::Result<Vec<String>> {
    let Some(k3s) = &answer.k3s else {
        return Ok(Vec::new());
    };
    if args.no_k3s {
        return Ok(Vec::new());
    }
    let tunnel: ipnet::Ipv4Net = answer.address.parse()?;
    let params = AgentParams {
        server_url: k3s.server_url.clone(),
        token: k3s.token.clone(),
        node_name: answer.name.clone(),
        tunnel_ip: tunnel.addr(),
        interface: args.interface.clone(),
        version: k3s.version.clone(),
        tunnel_unit: if kernel {
            TunnelUnit::WgQuick
        } else {
            TunnelUnit::Named("proton-agent.service".into())
        },
    };
    let plan = Plan {
        files: agent_files(&params)?,
        commands: vec![],
    };
    let changed = plan.write_files(root)?;
    println!(
        "K3s agent: {} written (server {}, node-ip {}, flannel-iface {}, pod MTU {} - 50 = {}).",
        root.path(CONFIG_PATH).display(),
        k3s.server_url,
        tunnel.addr(),
        args.interface,
        answer.mtu,
        pod_mtu(answer.mtu)
    );
    Ok(changed)
}

/// Runs the installer once the tunnel is permanent (`changed`: from [`write_agent`]).
pub fn install_agent(
    root: &Root,
    args: &JoinArgs,
    answer: &RedeemResponse,
    changed: &[String],
) -> anyhow::Result<()> {
    let Some(k3s) = &answer.k3s else {
        if root.exists(CONFIG_PATH) {
            // A re-run after the invitation was redeemed: the answer with the token went
            // to the first run, which wrote the agent's config.
            println!(
                "K3s: the agent's config from the first run is kept ({}); if k3s-agent is not running, re-run the K3s install script with INSTALL_K3S_EXEC=agent.",
                root.path(CONFIG_PATH).display()
            );
        } else {
            println!(
                "The gateway offers no K3s (not installed there yet): only the tunnel was made."
            );
        }
        return Ok(());
    };
    if args.no_k3s {
        println!("--no-k3s: the K3s agent was not installed (the bootstrap token expires unused).");
        return Ok(());
    }
    let token = k3s.token.clone();
    let source = script_source(&args.k3s_install_script);
    if let ScriptSource::Url(url) = &source
        && !root.is_system()
    {
        println!("not run (--root is not /): the K3s install script from {url}");
        return Ok(());
    }
    let mut installer = Installer::new(
        root.clone(),
        source,
        k3s.version.clone(),
        Role::Agent {
            server_url: k3s.server_url.clone(),
            token,
        },
    );
    installer.skip_download = args.k3s_skip_download;
    eprintln!(
        "installing the K3s agent {} (this can take a few minutes) ...",
        k3s.version
    );
    let outcome = installer
        .install(&mut |line| eprintln!("  | {line}"))
        .map_err(|e| {
            failure(
                format!("the tunnel is up, but installing the K3s agent failed: {e}"),
                format!(
                    "fix the cause and re-run the script with INSTALL_K3S_VERSION={} INSTALL_K3S_EXEC=agent (server and token are in {CONFIG_PATH}; the token expires 30 minutes after the join)",
                    k3s.version
                ),
            )
        })?;
    let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
    match outcome {
        InstallOutcome::Installed => {
            println!(
                "K3s agent {} installed: this node joins {} as `{}`.",
                k3s.version, k3s.server_url, answer.name
            );
            // The script reloaded systemd and started the agent; it never applies
            // Proton's sysctl file.
            let sysctl: Vec<_> = proton_k3s::after_write_commands("k3s-agent", &changed)
                .into_iter()
                .filter(|c| c.program == "sysctl")
                .collect();
            run_commands(root, &sysctl)?;
        }
        InstallOutcome::AlreadyInstalled => {
            println!("K3s {} was already installed here.", k3s.version);
            // A re-join: a changed drop-in needs `daemon-reload` and a changed sysctl file
            // `sysctl --system` before the restart, or the agent restarts with the old unit.
            run_commands(
                root,
                &proton_k3s::after_write_commands("k3s-agent", &changed),
            )?;
        }
    }
    Ok(())
}

/// Runs the commands after the agent's files changed, in order (`sysctl --system`,
/// `systemctl daemon-reload`, `systemctl restart k3s-agent`, see
/// [`proton_k3s::after_write_commands`]); printed as "not run" under a root other than `/`.
fn run_commands(root: &Root, commands: &[proton_k3s::PlannedCommand]) -> anyhow::Result<()> {
    run_commands_with(&proton_k3s::SystemRunner, root, commands)
}

fn run_commands_with(
    runner: &dyn proton_k3s::Runner,
    root: &Root,
    commands: &[proton_k3s::PlannedCommand],
) -> anyhow::Result<()> {
    for cmd in commands {
        if !root.is_system() {
            println!("not run (--root is not /): {cmd}");
            continue;
        }
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let out = runner
            .run(&cmd.program, &args, &[], None)
            .map_err(|e| anyhow::anyhow!("could not run `{cmd}`: {e}"))?;
        if !out.success() {
            let why = out
                .stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("failed")
                .to_string();
            anyhow::bail!("`{cmd}` failed: {why}");
        }
        if cmd.args.first().map(String::as_str) == Some("restart") {
            println!("Restarted k3s-agent with the new configuration.");
        }
    }
    Ok(())
}
