//! `proton uninstall` on a lab gateway and a lab worker (root; skipped otherwise): after
//! the daemon and the agent stop (what the printed `systemctl disable --now` does on a
//! real machine), it deletes Proton's nftables table in the node's own network
//! namespace and Proton's files under the node's root, and leaves what is not Proton's
//! alone: another nftables table, another interface, another file.

use proton_test_support::lab::{LabGuard, root_and_tools};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stops the lab's `what` processes in a node and waits until they are gone.
fn stop(lab: &LabGuard, what: &str) {
    let pids = lab.pids(what);
    assert!(!pids.is_empty(), "no {what} running");
    for pid in &pids {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(Instant::now() < deadline, "{what} did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn uninstall_removes_protons_table_and_files_in_the_node_and_nothing_else() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "un", 1, 0, 0);
    for node in ["gw", "w1"] {
        lab.ok(node, &["nft", "add", "table", "inet", "mine"]);
        lab.ok(
            node,
            &[
                "ip", "link", "add", "keep0", "type", "veth", "peer", "name", "keep1",
            ],
        );
        std::fs::write(format!("{}/etc/mine.conf", lab.root(node)), "mine\n").unwrap();
    }
    let tables = |node: &str| lab.ok(node, &["nft", "list", "tables"]);
    assert!(
        tables("gw").contains("table inet proton"),
        "{}",
        tables("gw")
    );

    // The gateway: the daemon stopped first, as `systemctl disable --now` would.
    stop(&lab, "gateway");
    let dry = lab.proton("gw", &["uninstall", "--dry-run"], None);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("would run: nft delete table inet proton"),
        "{}",
        text(&dry)
    );
    assert!(
        tables("gw").contains("table inet proton"),
        "a dry run deleted it"
    );
    let gw_root = lab.root("gw");
    assert!(Path::new(&format!("{gw_root}/etc/proton/gateway.key")).exists());

    let out = lab.proton("gw", &["uninstall"], None);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ran: nft delete table inet proton"), "{said}");
    assert!(
        said.contains("not run (--root is not /): systemctl"),
        "host-wide commands are only printed under a lab root: {said}"
    );
    let t = tables("gw");
    assert!(!t.contains("table inet proton"), "{t}");
    assert!(
        t.contains("table inet mine"),
        "another table was touched: {t}"
    );
    lab.ok("gw", &["ip", "link", "show", "keep0"]);
    for gone in ["etc/proton", "var/lib/proton"] {
        assert!(!Path::new(&format!("{gw_root}/{gone}")).exists(), "{gone}");
    }
    assert_eq!(
        std::fs::read_to_string(format!("{gw_root}/etc/mine.conf")).unwrap(),
        "mine\n"
    );

    // The worker: its agent stopped, then its key, tunnel config and units go.
    stop(&lab, "agent");
    let w1_root = lab.root("w1");
    assert!(Path::new(&format!("{w1_root}/etc/proton/agent.conf")).exists());
    let out = lab.proton("w1", &["uninstall"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!Path::new(&format!("{w1_root}/etc/proton")).exists());
    assert!(
        !lab.exec("w1", &["ip", "link", "show", "wg0"])
            .status
            .success(),
        "the tunnel interface is gone"
    );
    assert!(tables("w1").contains("table inet mine"));
    lab.ok("w1", &["ip", "link", "show", "keep0"]);
    assert_eq!(
        std::fs::read_to_string(format!("{w1_root}/etc/mine.conf")).unwrap(),
        "mine\n"
    );

    // Again: nothing of Proton's is left to remove.
    let again = lab.proton("gw", &["uninstall"], None);
    assert!(
        text(&again).contains("Nothing of Proton's is installed here."),
        "{}",
        text(&again)
    );
}
