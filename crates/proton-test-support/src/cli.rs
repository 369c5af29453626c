//! The real binary on a temp root, for the CLI tests that need no network and no root.
//! `bin` is the `proton` binary (`env!("CARGO_BIN_EXE_proton")` in the `proton` crate's
//! tests).

use std::path::Path;
use std::process::{Command, Output};

/// `proton --root ROOT ARGS…`, with no `PROTON_*` settings leaking in from the caller.
pub fn proton(bin: &str, root: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PROTON_ROOT")
        .env_remove("PROTON_KUBECONFIG")
        .output()
        .expect("the proton binary runs")
}

/// A gateway made by `proton init` in a fresh temp dir (removed when dropped).
pub fn gateway(bin: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = proton(bin, dir.path(), &["init", "--endpoint", "203.0.113.5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}
