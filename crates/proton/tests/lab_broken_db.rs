//! A running gateway whose state database is truncated to 0 bytes under it (a full disk,
//! a careless `> proton.db`): the daemon must keep every peer on the device instead of
//! reading "no peers" and removing them all. Needs root; skipped otherwise.

use proton_core::host::Root;
use proton_proto::admin::{AdminRequest, AdminResponse, request};
use proton_test_support::lab::{LabGuard, root_and_tools, wg_dump};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

#[test]
fn a_running_gateway_whose_db_is_truncated_keeps_every_peer() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tz", 1, 0, 1);
    let before: Vec<String> = wg_dump(&lab).into_iter().map(|p| p[0].clone()).collect();
    assert_eq!(before.len(), 2, "a worker and a phone: {before:?}");

    let root = Root::new(lab.root("gw"));
    let db = root.path(proton_store::DB_PATH);
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&db)
        .unwrap();

    // Ask the daemon to reconcile now (what every CLI change does) and wait for its answer.
    match request(&root, &AdminRequest::Reconcile).unwrap() {
        AdminResponse::Error { error } => assert!(
            error.contains("not a Proton state database") && error.contains("keeps its peers"),
            "{error}"
        ),
        other => panic!("a reconcile against a 0-byte DB succeeded: {other:?}"),
    }
    let after: Vec<String> = wg_dump(&lab).into_iter().map(|p| p[0].clone()).collect();
    assert_eq!(after, before, "every peer is still on the device");
    assert!(
        lab.ping("w1", "10.7.7.1"),
        "the worker still reaches the gateway"
    );

    // The CLI refuses the file too, and leaves it as it is.
    let out = lab.proton("gw", &["client", "add", "laptop"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the file is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "the file is untouched"
    );
}

/// A reconcile that fails (here: the DB turned readable by others, which every open
/// refuses) is tried again until it succeeds: once the file is private again, the peer
/// added meanwhile reaches the device without any further change to the DB.
#[test]
fn a_failed_reconcile_is_retried_until_the_device_matches_the_db() {
    use std::os::unix::fs::PermissionsExt;
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "ty", 0, 0, 0);
    let root = Root::new(lab.root("gw"));
    let db = root.path(proton_store::DB_PATH);
    let cidr: proton_core::net::Cidr = "10.7.7.0/24".parse().unwrap();
    // Opened while the file is private; the open handle goes on writing after the chmod.
    let mut store = proton_store::Store::open_existing(&root, &cidr).unwrap();
    let chmod = |mode| std::fs::set_permissions(&db, std::fs::Permissions::from_mode(mode));
    chmod(0o644).unwrap();
    let key = proton_core::keys::PrivateKey::generate()
        .public_key()
        .to_base64();
    let peer_key = proton_core::keys::PublicKey::from_base64(&key).unwrap();
    store
        .add_peer(
            &"laptop".parse().unwrap(),
            proton_store::Role::Client,
            peer_key,
            "test",
        )
        .unwrap();
    // The daemon's poll sees the change and fails to read the DB.
    let log = format!("/run/proton-lab/{}/gw/gateway.log", lab.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("readable by others")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never tried the change: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let on_device = || wg_dump(&lab).iter().any(|p| p[0] == key);
    assert!(!on_device(), "the failed reconcile added nothing");
    chmod(0o600).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !on_device() {
        assert!(
            std::time::Instant::now() < deadline,
            "the device never caught up with the DB after the failure ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
