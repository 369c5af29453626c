//! Proton's nftables table (`inet proton`) on a lab gateway, driven through the real
//! binary: the daemon restores it after `nft flush ruleset` (what restarting Debian's
//! nftables service does), keeps an invitee's key off the device while the table cannot
//! be loaded (the fence fails closed), and `proton doctor` says so. Needs root.

mod common;

use common::{LabGuard, root_and_tools, wg_dump};
use std::time::Duration;

/// Polls `f` every 200 ms for up to `secs` seconds.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 5 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

fn table(lab: &LabGuard) -> String {
    let out = lab.exec("gw", &["nft", "list", "table", "inet", "proton"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn doctor(lab: &LabGuard) -> String {
    let out = lab.proton("gw", &["doctor"], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_daemon_restores_a_flushed_table_and_the_fence_fails_closed() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up("tf", 1, 1, 0);
    // No `proton apply` ran: the daemon made the table and admitted w1 as a worker.
    let t = table(&lab);
    assert!(t.contains("tunnel and loopback only"), "{t}");
    assert!(
        t.contains("elements = { 10.7.7.2 }"),
        "w1 is in the workers set: {t}"
    );
    let d = doctor(&lab);
    assert!(d.contains("[pass] firewall table"), "{d}");
    assert!(d.contains("[pass] invitee fence"), "{d}");

    // `nft flush ruleset`: every table gone; the daemon notices and restores all of it.
    lab.ok("gw", &["nft", "flush", "ruleset"]);
    assert!(
        eventually(10, || {
            let t = table(&lab);
            t.contains("the invitee fence") && t.contains("elements = { 10.7.7.2 }")
        }),
        "the daemon restored the table with its sets: {}",
        table(&lab)
    );
    assert!(lab.ping("w1", "10.7.7.1"), "w1 still reaches the gateway");

    // Now the table cannot be loaded: another program holds its name (an nftables
    // "owner" table, which only the socket that made it may change) for 25 s.
    let name = lab.0.clone();
    let holder = std::thread::spawn(move || {
        std::process::Command::new(common::BIN)
            .args(["lab", "exec", "gw", "--name", &name, "--", "sh", "-c"])
            .arg("(printf 'flush ruleset\\nadd table inet proton { flags owner ; }\\n'; sleep 25) | nft -i >/dev/null 2>&1")
            .output()
            .unwrap()
    });
    assert!(
        eventually(10, || {
            let t = table(&lab);
            t.contains("table inet proton") && !t.contains("chain")
        }),
        "the holder took the table's name: {}",
        table(&lab)
    );
    let invite = lab.proton("gw", &["invite", "w2", "--no-qr"], None);
    assert!(invite.status.success());
    let stderr = String::from_utf8_lossy(&invite.stderr).into_owned();
    assert!(
        !stderr.contains("applied live") && stderr.contains("invitee fence is not in place"),
        "invite says the key is kept off: {stderr}"
    );
    let invitation = String::from_utf8_lossy(&invite.stdout)
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .unwrap()
        .to_string();
    let inv = proton_core::invite::Invitation::decode(&invitation).unwrap();
    let throwaway = inv.throwaway.public_key().to_base64();
    let on_device = |lab: &LabGuard| wg_dump(lab).iter().any(|p| p[0] == throwaway);
    assert!(
        !on_device(&lab),
        "an invitee's key must not reach the device without the fence"
    );
    let d = doctor(&lab);
    assert!(d.contains("[FAIL] firewall table"), "{d}");
    assert!(d.contains("[FAIL] invitee fence"), "{d}");
    assert!(lab.ping("w1", "10.7.7.1"), "joined peers keep working");
    assert!(!on_device(&lab));

    // The holder lets go: the daemon loads the table, then puts the invitee on.
    holder.join().unwrap();
    assert!(
        eventually(15, || on_device(&lab)),
        "once the fence is back the invitee's key goes on the device"
    );
    let t = table(&lab);
    assert!(t.contains("the invitee fence"), "{t}");
    let d = doctor(&lab);
    assert!(d.contains("[pass] firewall table"), "{d}");
    assert!(d.contains("[pass] invitee fence"), "{d}");
}
