//! A broken state database or spec through the real binary, without a network: a 0-byte
//! or foreign `proton.db` is refused by every command and left exactly as it is (it must
//! never open as a new, empty network), a deleted one is called deleted, and a spec whose
//! network range moved away from the peers' is refused with the way back.

use proton_test_support::cli::{gateway, proton};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn db(root: &Path) -> PathBuf {
    root.join("var/lib/proton/proton.db")
}

/// The DB file's bytes and which of its sidecars exist.
fn on_disk(root: &Path) -> (Vec<u8>, Vec<bool>) {
    let db = db(root);
    let sides = ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())).exists())
        .collect();
    (std::fs::read(&db).unwrap(), sides)
}

/// Every command that reads the state database.
const COMMANDS: &[&[&str]] = &[
    &["peer", "list"],
    &["peer", "list", "--json"],
    &["peer", "remove", "nobody"],
    &["peer", "rename", "nobody", "somebody"],
    &["client", "add", "phone"],
    &["invite", "w1", "--no-qr"],
    &["config", "wireguard"],
    &["gateway", "run", "--backend", "userspace"],
];

/// Each command fails with one `error:` line containing `want`, and the file stays as
/// it was.
fn every_command_refuses(root: &Path, want: &str) {
    let before = on_disk(root);
    for args in COMMANDS {
        let out = proton(BIN, root, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {}", text(&out));
        assert!(err.contains(want), "{args:?}: {}", text(&out));
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{args:?}: one error line: {err}"
        );
        assert_eq!(on_disk(root), before, "{args:?} changed the DB file");
    }
}

#[test]
fn a_zero_byte_db_is_refused_by_every_command_and_stays_zero_bytes() {
    let gw = gateway(BIN);
    std::fs::write(db(gw.path()), b"").unwrap();
    every_command_refuses(
        gw.path(),
        "is not a Proton state database (the file is empty",
    );
    assert_eq!(std::fs::metadata(db(gw.path())).unwrap().len(), 0);
}

#[test]
fn a_foreign_file_in_place_of_the_db_is_refused_and_left_alone() {
    let gw = gateway(BIN);
    std::fs::write(
        db(gw.path()),
        b"PRAGMA nothing; -- an SQL dump, not a database\n",
    )
    .unwrap();
    every_command_refuses(gw.path(), "not an SQLite database");
}

#[test]
fn a_deleted_db_says_it_was_deleted_and_does_not_advise_init() {
    let gw = gateway(BIN);
    for side in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", db(gw.path()).display()));
    }
    for args in &COMMANDS[..7] {
        let out = proton(BIN, gw.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("is missing, but this gateway was set up") && err.contains("backup"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("run `proton init"), "{args:?}: {err}");
        assert!(!db(gw.path()).exists(), "{args:?} created a DB");
    }
}

#[test]
fn init_refuses_a_range_that_would_break_the_host_and_creates_nothing() {
    for (cidr, why) in [
        ("0.0.0.0/0", "too large"),
        ("10.0.0.0/8", "too large"),
        ("203.0.113.0/24", "not a private range"),
        ("10.42.0.0/24", "overlaps K3s's pod range"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = proton(
            BIN,
            dir.path(),
            &["init", "--endpoint", "203.0.113.5", "--cidr", cidr],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cidr} accepted");
        assert!(
            err.contains("network.cidr") && err.contains(why),
            "{cidr}: {err}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{cidr}: files made"
        );
    }
    // The 10,000-peer size.
    let dir = tempfile::tempdir().unwrap();
    let out = proton(
        BIN,
        dir.path(),
        &["init", "--endpoint", "203.0.113.5", "--cidr", "10.7.0.0/18"],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_spec_edited_to_a_new_range_is_refused_while_peers_have_addresses_in_the_old() {
    let gw = gateway(BIN);
    let out = proton(BIN, gw.path(), &["client", "add", "phone"]);
    assert!(out.status.success(), "{}", text(&out));
    let spec = gw.path().join("etc/proton/proton.toml");
    let original = std::fs::read_to_string(&spec).unwrap();
    assert!(original.contains("cidr = \"10.7.7.0/24\""));
    // What the old "network is full" advice led to: a wider range, the gateway moved.
    std::fs::write(&spec, original.replace("10.7.7.0/24", "10.7.0.0/16")).unwrap();
    let before = on_disk(gw.path()).0;
    for args in &COMMANDS[..7] {
        let out = proton(BIN, gw.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            err.contains("network.cidr is 10.7.0.0/16")
                && err.contains("put network.cidr back to 10.7.7.0/24")
                && err.contains("Changing the network range"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(on_disk(gw.path()).0, before);
    std::fs::write(&spec, original).unwrap();
    let out = proton(BIN, gw.path(), &["peer", "list"]);
    assert!(
        out.status.success() && text(&out).contains("phone"),
        "{}",
        text(&out)
    );
}

/// Errors that quote input quote a short prefix of it, not all of it.
#[test]
fn errors_quote_a_short_prefix_of_long_input() {
    let gw = gateway(BIN);
    let long_name = "n".repeat(300);
    let huge = "x".repeat(10 << 20);
    for args in [
        vec!["client", "add", long_name.as_str()],
        vec!["invite", long_name.as_str(), "--no-qr"],
        vec!["peer", "remove", long_name.as_str()],
        vec!["peer", "rename", "proton", long_name.as_str()],
        vec!["invite", "w1", "--ttl", long_name.as_str(), "--no-qr"],
    ] {
        let out = proton(BIN, gw.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.len() < 400 && err.contains("nnnnnnnnnn…"),
            "{args:?}: {err}"
        );
    }
    // A 10 MB value in the spec, and a 300-character one in a wg-quick file.
    let spec = gw.path().join("etc/proton/proton.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("interface = \"wg0\"", &format!("interface = \"{huge}\"")),
    )
    .unwrap();
    let out = proton(BIN, gw.path(), &["peer", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.len() < 400 && err.contains("xxxxxxxxxx…"),
        "{} bytes",
        err.len()
    );
    std::fs::write(
        &spec,
        text.replace("interface = \"wg0\"", &format!("interface = {huge}")),
    )
    .unwrap();
    let err =
        String::from_utf8_lossy(&proton(BIN, gw.path(), &["peer", "list"]).stderr).to_string();
    assert!(err.len() < 400, "{} bytes", err.len());
    let bad = format!("[Interface]\nMTU = {}\n", "9".repeat(300));
    let e = proton_core::wgconf::WgQuickConfig::parse(&bad)
        .unwrap_err()
        .to_string();
    assert!(e.len() < 120 && e.contains('…'), "{e}");
    let e = proton_core::invite::Invitation::decode(&"proton1-".repeat(1000)).unwrap_err();
    assert!(e.to_string().len() < 120, "{e}");
}

/// `gateway run` where no gateway was made, or where its key was lost: one line naming
/// what is missing (said once, not once per cause), and what to do (init, or restore a
/// backup) on its own `hint:` line; exit 1.
#[test]
fn gateway_run_without_a_gateway_says_so_once_and_how_to_make_or_restore_one() {
    let empty = tempfile::tempdir().unwrap();
    let out = proton(
        BIN,
        empty.path(),
        &["gateway", "run", "--backend", "userspace"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("proton.toml does not exist"),
        "{err}"
    );
    assert_eq!(
        err.matches("does not exist").count(),
        1,
        "said twice: {err}"
    );

    let gw = gateway(BIN);
    std::fs::remove_file(gw.path().join("etc/proton/gateway.key")).unwrap();
    let out = proton(
        BIN,
        gw.path(),
        &["gateway", "run", "--backend", "userspace"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("gateway.key is missing"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("hint: ")
            && lines[1].contains("proton init")
            && lines[1].contains("proton restore"),
        "{err}"
    );
}
