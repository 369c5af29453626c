//! VPN clients as people manage them, in the lab with a real wireguard-go phone:
//! `client disable` takes it off the tunnel (it cannot handshake) and `client enable`
//! lets the same config back in; a client added with a short `--expires` is cut off by
//! the daemon once the time has passed. Needs root; skipped otherwise.

use proton_test_support::lab::{LabGuard, root_and_tools, wg_dump};
use std::time::{Duration, Instant};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

/// The phone `node` drops its config and uses `config` (a `client add` text) instead:
/// new key, new address, same wireguard-go interface.
fn switch_phone(lab: &LabGuard, node: &str, config: &str) {
    let parsed = proton_core::wgconf::WgQuickConfig::parse(config).unwrap();
    let path = format!("/run/proton-lab/{}/{node}/switch.setconf", lab.0);
    proton_core::host::write_atomic(
        std::path::Path::new(&path),
        parsed.render_wg_setconf().as_bytes(),
        0o600,
    )
    .unwrap();
    let address = parsed.interface.addresses[0].to_string();
    lab.ok(node, &["wg", "setconf", "wg0", &path]);
    lab.ok(node, &["ip", "addr", "flush", "dev", "wg0"]);
    lab.ok(node, &["ip", "addr", "add", &address, "dev", "wg0"]);
}

fn on_device(lab: &LabGuard, key: &str) -> bool {
    wg_dump(lab).iter().any(|p| p[0] == key)
}

fn public_key(lab: &LabGuard, name: &str) -> String {
    let out = lab.proton("gw", &["peer", "list", "--json"], None);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_disabled_client_cannot_handshake_until_enabled_and_an_expired_one_is_cut_off() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tc", 0, 0, 1);
    assert!(lab.ping("c1", "10.7.7.1"), "phone -> gateway");
    let key = public_key(&lab, "c1");

    // Disabled: the daemon takes its key off the device; the phone gets no answer.
    ok(lab.proton("gw", &["client", "disable", "c1"], None));
    assert!(
        !on_device(&lab, &key),
        "a disabled client is still on the device"
    );
    assert!(
        !lab.exec("c1", &["ping", "-c", "3", "-W", "1", "10.7.7.1"])
            .status
            .success(),
        "a disabled client still reaches the gateway"
    );
    // Its handshake initiations go unanswered: the phone's last handshake does not move.
    let before = lab.ok("c1", &["wg", "show", "wg0", "latest-handshakes"]);
    assert!(
        !lab.exec("c1", &["ping", "-c", "1", "-W", "6", "10.7.7.1"])
            .status
            .success()
    );
    assert_eq!(
        lab.ok("c1", &["wg", "show", "wg0", "latest-handshakes"]),
        before,
        "a disabled client completed a handshake"
    );

    // Enabled: the same config, untouched on the phone, connects again.
    ok(lab.proton("gw", &["client", "enable", "c1"], None));
    assert!(on_device(&lab, &key));
    assert!(
        lab.ping("c1", "10.7.7.1"),
        "an enabled client reaches the gateway"
    );

    // An expiring client: reachable now, cut off by the daemon once its time passed.
    let config = ok(lab.proton(
        "gw",
        &["client", "add", "guest", "--no-qr", "--expires", "25s"],
        None,
    ));
    switch_phone(&lab, "c1", &config);
    let guest = public_key(&lab, "guest");
    assert!(
        lab.ping("c1", "10.7.7.1"),
        "the guest reaches the gateway before expiry"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while on_device(&lab, &guest) {
        assert!(
            Instant::now() < deadline,
            "the daemon never took the expired client off the device"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        !lab.exec("c1", &["ping", "-c", "3", "-W", "1", "10.7.7.1"])
            .status
            .success(),
        "an expired client still reaches the gateway"
    );
    let rows: serde_json::Value =
        serde_json::from_str(&ok(lab.proton("gw", &["peer", "list", "--json"], None))).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "guest")
        .unwrap();
    assert_eq!(row["expired"], true, "{row}");
}
