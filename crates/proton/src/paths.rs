//! Host paths the CLI writes beyond those owned by the library crates.

/// The gateway's private key (`0600`).
pub const GATEWAY_KEY: &str = "/etc/proton/gateway.key";
/// The gateway daemon's systemd unit.
pub const GATEWAY_UNIT: &str = "/etc/systemd/system/proton-gateway.service";
/// Where the units expect the binary.
pub const PROTON_BIN: &str = "/usr/local/bin/proton";
