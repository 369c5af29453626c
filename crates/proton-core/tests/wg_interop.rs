//! Our keys and configs, read by the real wireguard-tools (`wg`, `wg-quick`).
//! Skipped with a printed reason when wireguard-tools is not installed; CI installs it.

use proton_core::keys::{PrivateKey, PublicKey};
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use std::io::Write;
use std::process::{Command, Stdio};

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("skipping: `{tool}` (wireguard-tools) is not installed");
    }
    found
}

/// Runs `wg <args>` with `input` on stdin (secrets never go in argv).
fn wg(args: &[&str], input: &str) -> String {
    let mut child = Command::new("wg")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "wg {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn wg_pubkey_agrees_with_our_public_key() {
    if !have("wg") {
        return;
    }
    for _ in 0..5 {
        let key = PrivateKey::generate();
        let theirs = wg(&["pubkey"], &key.expose_base64());
        assert_eq!(theirs, key.public_key().to_base64());
    }
    // And a key made by `wg genkey` is one we read.
    let genkey = wg(&["genkey"], "");
    let ours = PrivateKey::from_base64(&genkey).unwrap();
    assert_eq!(wg(&["pubkey"], &genkey), ours.public_key().to_base64());
}

fn sample() -> WgQuickConfig {
    let mut c = WgQuickConfig::default();
    c.interface.private_key = Some(PrivateKey::generate());
    c.interface.addresses = vec![
        "10.7.7.1/24".parse().unwrap(),
        "fd07::1/64".parse().unwrap(),
    ];
    c.interface.listen_port = Some(51820);
    c.interface.fwmark = Some(0x4000);
    c.interface.mtu = Some(1420);
    c.interface.dns = vec!["10.7.7.1".into()];
    c.interface.post_up = vec!["sysctl -w net.ipv4.ip_forward=1".into()];
    for (i, endpoint) in [
        "[2001:db8::7]:51820",
        "home.example.com:4500",
        "198.51.100.9:51820",
    ]
    .iter()
    .enumerate()
    {
        let mut p = PeerSection::new(PrivateKey::generate().public_key());
        p.name = Some(format!("peer-{i}"));
        p.allowed_ips = vec![format!("10.7.7.{}/32", i + 2).parse().unwrap()];
        p.endpoint = Some(endpoint.parse().unwrap());
        p.persistent_keepalive = Some(25);
        c.peers.push(p);
    }
    c.peers[0].preshared_key = Some(proton_core::keys::PresharedKey::generate());
    c
}

/// Normalises a setconf text to (key, value) lines, comments and blanks dropped.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None => (l.to_ascii_lowercase(), String::new()),
        })
        .collect()
}

#[test]
fn wg_quick_strip_reads_our_config_as_we_do() {
    if !have("wg-quick") {
        return;
    }
    let cfg = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wg0.conf");
    std::fs::write(&path, cfg.render().as_bytes()).unwrap();
    let out = Command::new("wg-quick")
        .arg("strip")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stripped = String::from_utf8(out.stdout).unwrap();
    assert_eq!(pairs(&stripped), pairs(&cfg.render_wg_setconf()));
    // And what the tool printed parses back to the same peers.
    let back = WgQuickConfig::parse(&stripped).unwrap();
    assert_eq!(back.peers.len(), 3);
    assert_eq!(back.peers[1].endpoint, cfg.peers[1].endpoint);
    let pk: PublicKey = cfg.interface.private_key.as_ref().unwrap().public_key();
    assert_eq!(back.interface.private_key.unwrap().public_key(), pk);
}
