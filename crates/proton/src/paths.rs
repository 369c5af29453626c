//! Host paths the CLI writes beyond those owned by the library crates.

/// Where the Debian package puts the binary (`[package.metadata.deb]`).
pub const PACKAGED_BIN: &str = "/usr/bin/proton";

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
