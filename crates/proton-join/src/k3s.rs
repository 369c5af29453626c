//! The K3s half of a join: when the gateway's redeem answer carries K3s join data
//! (server URL over the tunnel, the server's version, a per-node bootstrap token), write
//! the agent's files and run the official installer with the same version.
//!
//! Runs after the tunnel is permanent: the agent's `flannel-iface` is the WireGuard
//! interface, and its unit drop-in waits for it.

use crate::JoinError;
pub use crate::join::K3sProgress;
use crate::join::{JoinOptions, Joined, Progress};
use proton_core::host::Root;
use proton_k3s::config::CONFIG_PATH;
use proton_k3s::install::{InstallOutcome, Installer, Role, ScriptSource};
use proton_k3s::{AgentParams, Plan, TunnelUnit, agent_files, pod_mtu};

/// Writes the agent's files as soon as the redeem answer is in (the token is in that
/// answer only: a run interrupted later keeps it). Returns the files that changed.
pub(crate) fn write_agent(
    root: &Root,
    opts: &JoinOptions,
    joined: &Joined,
    kernel: bool,
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<String>, JoinError> {
    let Some(k3s) = &joined.k3s else {
        return Ok(Vec::new());
    };
    if opts.k3s.skip {
        return Ok(Vec::new());
    }
    let params = AgentParams {
        server_url: k3s.server_url.clone(),
        token: k3s.token.clone(),
        node_name: joined.name.clone(),
        tunnel_ip: joined.address.addr(),
        interface: opts.interface.clone(),
        version: k3s.version.clone(),
        tunnel_unit: if kernel {
            TunnelUnit::WgQuick
        } else {
            TunnelUnit::Named("proton-agent.service".into())
        },
    };
    let plan = Plan {
        files: agent_files(&params).map_err(JoinError::K3sFiles)?,
        commands: vec![],
    };
    let changed = plan.write_files(root).map_err(JoinError::K3sFiles)?;
    report(Progress::K3s(K3sProgress::Written {
        config: root.path(CONFIG_PATH),
        server_url: &k3s.server_url,
        node_ip: joined.address.addr(),
        interface: &opts.interface,
        mtu: joined.mtu,
        pod_mtu: pod_mtu(joined.mtu),
    }));
    Ok(changed)
}

/// Runs the installer once the tunnel is permanent (`changed`: from [`write_agent`]).
pub(crate) fn install_agent(
    root: &Root,
    opts: &JoinOptions,
    joined: &Joined,
    changed: &[String],
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<(), JoinError> {
    let Some(k3s) = &joined.k3s else {
        if root.exists(CONFIG_PATH) {
            // A re-run after the invitation was redeemed: the answer with the token went
            // to the first run, which wrote the agent's config.
            report(Progress::K3s(K3sProgress::KeptConfig {
                config: root.path(CONFIG_PATH),
            }));
        } else {
            report(Progress::K3s(K3sProgress::NotOffered));
        }
        return Ok(());
    };
    if opts.k3s.skip {
        report(Progress::K3s(K3sProgress::Skipped));
        return Ok(());
    }
    let source = opts.k3s.install_script.clone();
    if let ScriptSource::Url(url) = &source
        && !root.is_system()
    {
        let what = format!("the K3s install script from {url}");
        report(Progress::K3s(K3sProgress::NotRun(&what)));
        return Ok(());
    }
    let mut installer = Installer::new(
        root.clone(),
        source,
        k3s.version.clone(),
        Role::Agent {
            server_url: k3s.server_url.clone(),
            token: k3s.token.clone(),
        },
    );
    installer.skip_download = opts.k3s.skip_download;
    report(Progress::K3s(K3sProgress::Installing {
        version: &k3s.version,
    }));
    let outcome = installer
        .install(&mut |line| report(Progress::K3s(K3sProgress::InstallerOutput(line))))
        .map_err(|source| JoinError::K3sInstall {
            version: k3s.version.clone(),
            source,
        })?;
    let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
    match outcome {
        InstallOutcome::Installed => {
            report(Progress::K3s(K3sProgress::Installed {
                version: &k3s.version,
                server_url: &k3s.server_url,
                node: &joined.name,
            }));
            // The script reloaded systemd and started the agent; it never applies
            // Proton's sysctl file.
            let sysctl: Vec<_> = proton_k3s::after_write_commands("k3s-agent", &changed)
                .into_iter()
                .filter(|c| c.program == "sysctl")
                .collect();
            run_commands(&proton_core::host::SystemRunner, root, &sysctl, report)?;
        }
        InstallOutcome::AlreadyInstalled => {
            report(Progress::K3s(K3sProgress::AlreadyInstalled {
                version: &k3s.version,
            }));
            // A re-join: a changed drop-in needs `daemon-reload` and a changed sysctl file
            // `sysctl --system` before the restart, or the agent restarts with the old unit.
            run_commands(
                &proton_core::host::SystemRunner,
                root,
                &proton_k3s::after_write_commands("k3s-agent", &changed),
                report,
            )?;
        }
    }
    Ok(())
}

/// Runs the commands after the agent's files changed, in order (`sysctl --system`,
/// `systemctl daemon-reload`, `systemctl restart k3s-agent`, see
/// [`proton_k3s::after_write_commands`]); reported as not run under a root other than `/`.
fn run_commands(
    runner: &dyn proton_core::host::Runner,
    root: &Root,
    commands: &[proton_k3s::PlannedCommand],
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<(), JoinError> {
    for cmd in commands {
        if !root.is_system() {
            report(Progress::K3s(K3sProgress::NotRun(&cmd.to_string())));
            continue;
        }
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let out = runner
            .run(&cmd.program, &args, &[], None)
            .map_err(|source| JoinError::CommandNotRun {
                command: cmd.to_string(),
                source,
            })?;
        if !out.success() {
            let why = out
                .stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("failed")
                .to_string();
            return Err(JoinError::CommandFailed {
                command: cmd.to_string(),
                why,
            });
        }
        if cmd.args.first().map(String::as_str) == Some("restart") {
            report(Progress::K3s(K3sProgress::Restarted));
        }
    }
    Ok(())
}
