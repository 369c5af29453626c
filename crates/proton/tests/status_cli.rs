//! `proton status`, `doctor` and `reresolve` outside the lab (no root needed): each
//! refuses with one clear line and a hint when there is nothing to look at.

use proton_test_support::cli::proton;

use std::process::Output;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn nothing_set_up_is_one_clear_error_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [&["status"][..], &["status", "--json"], &["doctor"]] {
        let out = proton(BIN, dir.path(), cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("error: this machine is neither a Proton gateway"),
            "{err}"
        );
        assert!(err.contains("hint: on the VPS: proton init"), "{err}");
        if cmd.contains(&"--json") {
            // A script reading stdout gets JSON on failure too: the error object
            // (issue 17), with the text form's exit code.
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(v["error"]["exit_code"], 1, "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("this machine is neither a Proton gateway")),
                "{v}"
            );
        } else {
            assert!(
                out.stdout.is_empty(),
                "nothing on stdout for scripts to misread"
            );
        }
    }
    let out = proton(BIN, dir.path(), &["reresolve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no tunnel configuration for wg0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_gateway_whose_daemon_is_down_says_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let init = proton(BIN, dir.path(), &["init", "--endpoint", "vps.example.com"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let out = proton(BIN, dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the gateway daemon is not running"), "{err}");
    assert!(
        err.contains("hint: systemctl start proton-gateway"),
        "{err}"
    );
    // Doctor still runs every local check and reports the daemon as a failure.
    let out = proton(BIN, dir.path(), &["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let daemon = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "gateway daemon")
        .expect("a finding for the daemon");
    assert_eq!(daemon["level"], "fail");
    assert!(
        daemon["fix"]
            .as_str()
            .unwrap()
            .contains("systemctl restart proton-gateway")
    );
}
