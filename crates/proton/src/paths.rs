//! Host paths the CLI writes beyond those owned by the library crates.

pub use proton_core::paths::GATEWAY_KEY;
/// The gateway daemon's systemd unit, as `proton init` writes it (from-source installs).
pub use proton_ops::uninstall::GATEWAY_UNIT;
/// Where the Debian package puts the binary (`[package.metadata.deb]`).
pub const PACKAGED_BIN: &str = "/usr/bin/proton";
/// Where the Debian package puts its systemd units. A unit found here is not written
/// again under /etc/systemd/system (that copy would hide the package's future versions).
pub const PACKAGED_UNIT_DIR: &str = "/usr/lib/systemd/system";

/// The binary the units Proton writes should run: this very executable (`/usr/bin/proton`
/// from the package, `~/.cargo/bin/proton` after `cargo install`, …), so a unit never
/// names a path nothing put there.
pub fn proton_bin() -> String {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| PACKAGED_BIN.to_string())
}

/// Whether the Debian package installed unit `name` (e.g. `proton-gateway.service`).
pub fn packaged_unit(root: &proton_core::host::Root, name: &str) -> bool {
    root.exists(format!("{PACKAGED_UNIT_DIR}/{name}"))
}
