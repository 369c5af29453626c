//! `proton lab` as the README tells a newcomer to use it: `lab up` names what is missing
//! before it starts, its hints work when pasted (`--name` included), `proton` works
//! inside `lab exec`, and `lab status | head` ends quietly.

use proton_test_support::lab::{LabGuard, root_and_tools};
use std::process::{Command, Stdio};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

#[test]
fn lab_up_names_the_install_line_for_missing_tools_and_makes_nothing() {
    // A PATH with only `env` and `ip` on it: everything else the lab runs is missing.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["env", "ip"] {
        let real = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(tool))
            .find(|p| p.exists());
        if let Some(real) = real {
            std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
        }
    }
    let name = format!("tm{}", std::process::id() % 100000);
    let out = Command::new(BIN)
        .args(["lab", "up", "--name", &name, "--clients", "1"])
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "error: the lab needs nft, wg, wireguard-go, sysctl (not found on PATH)",
            "hint: apt-get install -y nftables wireguard-tools wireguard-go procps",
        ],
        "{err}"
    );
    assert!(
        !std::path::Path::new(&format!("/run/proton-lab/{name}")).exists(),
        "nothing was made"
    );
    // Without clients, wireguard-go is not needed.
    let out = Command::new(BIN)
        .args(["lab", "up", "--name", &name, "--clients", "0"])
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("wireguard-go"), "{err}");
}

#[test]
fn hints_name_the_lab_and_proton_runs_inside_lab_exec() {
    if !root_and_tools() {
        return;
    }
    let name = format!("tx{}", std::process::id() % 100000);
    let _ = Command::new(BIN)
        .args(["lab", "down", "--name", &name])
        .output();
    let out = Command::new(BIN)
        .args(["lab", "up", "--name", &name, "--workers", "1"])
        .args(["--clients", "0"])
        .output()
        .unwrap();
    let lab = LabGuard::adopt(BIN, name.clone());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hints = String::from_utf8_lossy(&out.stdout).into_owned();
    let commands: Vec<&str> = hints
        .lines()
        .flat_map(|l| l.split(';'))
        .filter_map(|l| {
            l.trim()
                .trim_start_matches("Try:")
                .trim()
                .strip_prefix("proton lab ")
        })
        .collect();
    assert!(commands.len() >= 4, "{hints}");
    for c in &commands {
        assert!(
            c.contains(&format!("--name {name}")),
            "`{c}` names the lab: {hints}"
        );
    }

    // Pasted as printed: `proton lab exec --name X w1 -- proton status` asks w1's Proton.
    let status = lab.ok("w1", &["proton", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["role"], "worker", "{v}");
    let peers = lab.ok("gw", &["proton", "peer", "list"]);
    assert!(peers.contains("w1"), "{peers}");

    // `proton lab status | head -1`, once head has its line and is gone: the pipe's
    // reader is closed before lab status writes.
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["lab", "status", "--name", &name])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "quiet: {err}");
    assert_eq!(
        out.status.signal(),
        Some(13),
        "ends by SIGPIPE, not a panic"
    );
}

/// The README's two set-up commands work on a fresh Debian machine as written: the
/// first installs exactly what `lab up` checks for (the line `lab up` itself names when
/// everything is missing), the second is `.ci/run`, which installs the tests' packages
/// and cargo-nextest itself.
#[test]
fn the_readme_set_up_commands_install_what_they_need() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["lab", "up", "--name", "treadme", "--clients", "1"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let apt = err
        .lines()
        .find_map(|l| l.strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("lab up names the install line: {err}"));
    assert!(apt.starts_with("apt-get install -y "), "{apt}");

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let setup = &readme[readme.find("## Set-up: the two commands").unwrap()..];
    let block = setup
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let commands: Vec<&str> = block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        commands,
        [
            format!("{apt} && cargo run --release -- lab up --workers 2 --clients 1").as_str(),
            ".ci/run"
        ],
        "{block}"
    );

    let ci =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/run")).unwrap();
    let install = &ci[ci.find("apt-get install").unwrap()..];
    let install = &install[..install.find(">/dev/null").unwrap()];
    for pkg in apt.trim_start_matches("apt-get install -y ").split(' ') {
        assert!(
            install.split_whitespace().any(|w| w == pkg),
            ".ci/run installs {pkg}: {install}"
        );
    }
    assert!(ci.contains("cargo install cargo-nextest --locked"), "{ci}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/run"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, ".ci/run is executable");
}
