//! A running gateway whose state database is truncated to 0 bytes under it (a full disk,
//! a careless `> proton.db`): the daemon must keep every peer on the device instead of
//! reading "no peers" and removing them all. Needs root; skipped otherwise.

mod common;

use common::{LabGuard, root_and_tools, wg_dump};
use proton_core::host::Root;
use proton_gateway::admin::{AdminRequest, AdminResponse, request};

#[test]
fn a_running_gateway_whose_db_is_truncated_keeps_every_peer() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up("tz", 1, 0, 1);
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
