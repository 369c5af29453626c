//! Invitations through the real binary, without a network: every bad invitation gives
//! one clear line, a non-zero exit and changes nothing; 50 invitations at once get 50
//! distinct addresses.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn proton(root: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_proton"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PROTON_ROOT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or("").to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn gateway() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = proton(dir.path(), &["init", "--endpoint", "203.0.113.5"], None);
    assert!(out.status.success());
    dir
}

fn invite(root: &Path, name: &str, ttl: &str) -> String {
    let out = proton(root, &["invite", name, "--ttl", ttl, "--no-qr"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .unwrap()
        .to_string()
}

fn peers(root: &Path) -> String {
    String::from_utf8(proton(root, &["peer", "list", "--json"], None).stdout).unwrap()
}

#[test]
fn bad_invitations_are_refused_with_one_line_and_change_nothing() {
    let gw = gateway();
    let good = invite(gw.path(), "home-1", "1h");
    let expired = invite(gw.path(), "home-2", "1s");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let state_before = peers(gw.path());

    let mut tampered = good.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases = [
        (expired.as_str(), "expired"),
        (tampered.as_str(), "damaged"),
        (&good[..good.len() - 7], "damaged or mistyped"),
        (&good[..20], "truncated"),
        ("hello", "not a Proton invitation"),
    ];
    for (text, needle) in cases {
        let worker = tempfile::tempdir().unwrap();
        let out = proton(worker.path(), &["join"], Some(text));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{needle}: {err}");
        assert!(
            err.lines().next().unwrap().starts_with("error: ") && err.contains(needle),
            "{needle}: {err}"
        );
        assert!(
            std::fs::read_dir(worker.path()).unwrap().next().is_none(),
            "{needle}: the worker wrote files"
        );
    }
    // A good invitation, but the tunnel's interface name is taken (`lo` always is).
    let worker = tempfile::tempdir().unwrap();
    let out = proton(worker.path(), &["join", "--interface", "lo"], Some(&good));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("`lo` already exists"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(worker.path()).unwrap().next().is_none(),
        "an interface clash wrote files"
    );
    assert_eq!(
        peers(gw.path()),
        state_before,
        "the gateway's state did not change"
    );
}

#[test]
fn fifty_invitations_at_once_get_fifty_distinct_addresses() {
    let gw = gateway();
    let root = gw.path().to_path_buf();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || invite(&root, &format!("w{i}"), "1h"))
        })
        .collect();
    let invitations: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let list: serde_json::Value = serde_json::from_str(&peers(&root)).unwrap();
    let addrs: std::collections::HashSet<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "worker")
        .map(|p| p["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(addrs.len(), 50);
    assert_eq!(
        invitations
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        50
    );
}
