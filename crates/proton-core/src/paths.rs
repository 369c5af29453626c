//! Host paths of the files more than one crate reads or writes, declared once.

/// The gateway's private key (`0600`): written by `proton init`, read by the daemon and
/// by every command that renders the gateway's configuration.
pub const GATEWAY_KEY: &str = "/etc/proton/gateway.key";
/// A joined worker's own WireGuard key (`0600`).
pub const NODE_KEY: &str = "/etc/proton/node.key";
/// The worker's tunnel for `proton agent`, in wg-quick format (`0600`: it holds the key),
/// with a `# Proton-Interface = NAME` line above `[Interface]`
/// (see [`crate::wgconf::recorded_interface`]).
pub const AGENT_CONF: &str = "/etc/proton/agent.conf";

/// Where the Debian package puts its systemd units. A unit found here is not written
/// again under /etc/systemd/system (that copy would hide the package's future versions).
pub const PACKAGED_UNIT_DIR: &str = "/usr/lib/systemd/system";

/// Whether the Debian package installed unit `name` (e.g. `proton-agent.service`).
pub fn packaged_unit(root: &crate::host::Root, name: &str) -> bool {
    root.exists(format!("{PACKAGED_UNIT_DIR}/{name}"))
}
