//! What a join says as it goes: each [`Progress`] as the [`Line`] `proton join` prints,
//! on stdout what was made (the tunnel, the K3s agent), on stderr what is under way.

use crate::join::{K3sProgress, Progress, TunnelKind};
use proton_core::say::Line;

impl Progress<'_> {
    /// The line `proton join` prints for this step, on its stream.
    pub fn line(&self) -> Line {
        match self {
            Progress::Joining {
                endpoint,
                address,
                via,
            } => Line::Err(format!(
                "joining {endpoint} as {address} through {via} ..."
            )),
            Progress::Resumed => Line::Err(
                "(the gateway already holds this machine's key: finishing the job)".into(),
            ),
            Progress::OwnKey => {
                Line::Err("switched to this machine's own key; checking the tunnel ...".into())
            }
            Progress::Joined(j) => Line::Out(format!(
                "Joined as `{}` ({}) at {}.",
                j.name, j.role, j.address
            )),
            Progress::ReresolveTimerNotEnabled => Line::Err(
                "warning: could not enable proton-reresolve.timer; see `systemctl status proton-reresolve.timer`"
                    .into(),
            ),
            Progress::Tunnel(t) => Line::Out(match (&t.kind, t.enabled) {
                (TunnelKind::WgQuick { config }, true) => format!(
                    "The tunnel runs as wg-quick@{} ({config}) and survives reboots.",
                    t.interface
                ),
                (TunnelKind::Agent, true) => {
                    format!("The tunnel runs as {} and survives reboots.", t.unit)
                }
                (TunnelKind::WgQuick { .. }, false) => {
                    format!("Start the tunnel with: wg-quick up {}", t.interface)
                }
                (TunnelKind::Agent, false) => "Start the tunnel with: proton agent".into(),
            }),
            Progress::K3s(k) => k.line(),
        }
    }
}

impl K3sProgress<'_> {
    /// The line `proton join` prints for this K3s step, on its stream.
    pub fn line(&self) -> Line {
        match self {
            K3sProgress::Written {
                config,
                server_url,
                node_ip,
                interface,
                mtu,
                pod_mtu,
            } => Line::Out(format!(
                "K3s agent: {} written (server {server_url}, node-ip {node_ip}, flannel-iface {interface}, pod MTU {mtu} - 50 = {pod_mtu}).",
                config.display()
            )),
            K3sProgress::KeptConfig { config } => Line::Out(format!(
                "K3s: the agent's config from the first run is kept ({}); if k3s-agent is not running, re-run the K3s install script with INSTALL_K3S_EXEC=agent.",
                config.display()
            )),
            K3sProgress::NotOffered => Line::Out(
                "The gateway offers no K3s (not installed there yet): only the tunnel was made."
                    .into(),
            ),
            K3sProgress::Skipped => Line::Out(
                "--no-k3s: the K3s agent was not installed (the bootstrap token expires unused)."
                    .into(),
            ),
            K3sProgress::NotRun(what) => Line::Out(format!("not run (--root is not /): {what}")),
            K3sProgress::Installing { version } => Line::Err(format!(
                "installing the K3s agent {version} (this can take a few minutes) ..."
            )),
            K3sProgress::InstallerOutput(line) => Line::Err(format!("  | {line}")),
            K3sProgress::Installed {
                version,
                server_url,
                node,
            } => Line::Out(format!(
                "K3s agent {version} installed: this node joins {server_url} as `{node}`."
            )),
            K3sProgress::AlreadyInstalled { version } => {
                Line::Out(format!("K3s {version} was already installed here."))
            }
            K3sProgress::Restarted => {
                Line::Out("Restarted k3s-agent with the new configuration.".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::Tunnel;

    #[test]
    fn what_was_made_goes_to_stdout_what_runs_to_stderr() {
        let t = Tunnel {
            interface: "wg0".into(),
            kind: TunnelKind::WgQuick {
                config: "/etc/wireguard/wg0.conf".into(),
            },
            unit: "wg-quick@wg0.service".into(),
            enabled: true,
        };
        assert_eq!(
            Progress::Tunnel(&t).line(),
            Line::Out(
                "The tunnel runs as wg-quick@wg0 (/etc/wireguard/wg0.conf) and survives reboots."
                    .into()
            )
        );
        let k = Progress::K3s(K3sProgress::InstallerOutput("[INFO] done"));
        assert_eq!(k.line(), Line::Err("  | [INFO] done".into()));
    }
}
