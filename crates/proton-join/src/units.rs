//! The systemd units `proton join` writes: the userspace tunnel (`proton agent`) and, for
//! a wg-quick tunnel, the timer that re-resolves the gateway's name (`proton reresolve`).

pub const AGENT_UNIT: &str = "/etc/systemd/system/proton-agent.service";
pub const RERESOLVE_SERVICE: &str = "/etc/systemd/system/proton-reresolve.service";
pub const RERESOLVE_TIMER: &str = "/etc/systemd/system/proton-reresolve.timer";
pub use proton_core::paths::packaged_unit;

/// The worker's tunnel unit, running `proton_bin` (the same text in the Debian package,
/// with /usr/bin/proton).
pub fn agent_unit(proton_bin: &str) -> String {
    format!(
        "# Written by `proton join` (or shipped by the proton package): this worker's
# WireGuard tunnel to the gateway.
[Unit]
Description=Proton agent (WireGuard tunnel to the gateway)
Documentation=man:proton-agent(1)
Wants=network-online.target
After=network-online.target
Before=k3s-agent.service

[Service]
Type=simple
ExecStart={proton_bin} agent
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"
    )
}

/// The oneshot unit the re-resolve timer starts.
pub fn reresolve_service_unit(proton_bin: &str, iface: &str) -> String {
    format!(
        "# Written by `proton join`: re-points the tunnel when the gateway's name moves.
[Unit]
Description=Proton: re-resolve the gateway endpoint of {iface}
After=wg-quick@{iface}.service
Requisite=wg-quick@{iface}.service

[Service]
Type=oneshot
ExecStart={proton_bin} reresolve --interface {iface}
"
    )
}

/// Every 30 s, like `proton agent`.
pub fn reresolve_timer_unit(iface: &str) -> String {
    format!(
        "# Written by `proton join`: see proton-reresolve.service.
[Unit]
Description=Proton: re-resolve the gateway endpoint of {iface} every 30 s

[Timer]
OnActiveSec=30s
OnUnitActiveSec=30s
AccuracySec=5s

[Install]
WantedBy=timers.target
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_name_the_interface_and_the_binary() {
        let unit = reresolve_service_unit("/usr/local/bin/proton", "wg0");
        assert!(unit.contains("ExecStart=/usr/local/bin/proton reresolve --interface wg0"));
        assert!(unit.contains("Requisite=wg-quick@wg0.service"));
        assert!(reresolve_timer_unit("wg0").contains("OnUnitActiveSec=30s"));
        assert!(agent_unit("/usr/bin/proton").contains("ExecStart=/usr/bin/proton agent\n"));
    }
}
