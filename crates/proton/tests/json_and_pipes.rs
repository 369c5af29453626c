//! Output that scripts consume: every `--json` command prints JSON on stdout when it
//! fails too (an `error` object, the text form's exit code), and commands whose output
//! is piped (`proton peer list | head -1`) stop quietly when the reader goes away.

use proton_test_support::cli::{self, proton};
use std::path::Path;
use std::process::{Command, Stdio};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn json_of(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {:?}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// Runs `args` as text and as `--json`: the JSON run prints one `error` object on stdout
/// and both exit with the same code (non-zero). Returns the error object.
fn fails_the_same_with_json(root: &Path, args: &[&str]) -> serde_json::Value {
    let text = proton(BIN, root, args);
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let json = proton(BIN, root, &with_json);
    assert!(!text.status.success(), "{args:?} should fail here");
    assert_eq!(
        text.status.code(),
        json.status.code(),
        "{args:?}: same exit code with --json"
    );
    let v = json_of(&json.stdout);
    let err = &v["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert_eq!(err["exit_code"].as_i64(), json.status.code().map(i64::from));
    // The person at the terminal still gets the usual line.
    assert!(String::from_utf8_lossy(&json.stderr).starts_with("error: "));
    err.clone()
}

#[test]
fn status_json_says_why_when_the_daemon_is_down() {
    let gw = cli::gateway(BIN);
    let err = fails_the_same_with_json(gw.path(), &["status"]);
    assert!(
        err["message"].as_str().unwrap().contains("not running"),
        "{err}"
    );
    assert!(
        err["hint"].as_str().unwrap().contains("proton-gateway"),
        "{err}"
    );
}

#[test]
fn every_json_command_prints_an_error_object_on_failure() {
    // No gateway here: nothing is set up.
    let empty = tempfile::tempdir().unwrap();
    for args in [&["status"][..], &["doctor"][..], &["peer", "list"][..]] {
        fails_the_same_with_json(empty.path(), args);
    }
    // A bad command line with --json: clap's usage error, as JSON too, exit 2.
    let out = proton(
        BIN,
        empty.path(),
        &["peer", "list", "--json", "--no-such-flag"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_of(&out.stdout)["error"]["exit_code"], 2);
}

/// Runs `proton ARGS` with stdout a pipe whose reading end is already closed, as
/// `| head -1` leaves it once head has its line.
fn into_closed_pipe(root: &Path, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_proton"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PROTON_ROOT")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn piped_output_stops_quietly_when_the_reader_is_gone() {
    use std::os::unix::process::ExitStatusExt;
    let gw = cli::gateway(BIN);
    for args in [
        &["peer", "list"][..],
        &["peer", "list", "--json"][..],
        &["config", "wireguard"][..],
        &["completions", "bash"][..],
    ] {
        let out = into_closed_pipe(gw.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: nothing on stderr: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}");
        assert_eq!(
            out.status.signal(),
            Some(libc_sigpipe()),
            "{args:?}: ends by SIGPIPE, like any Unix filter"
        );
    }
}

fn libc_sigpipe() -> i32 {
    13 // SIGPIPE on Linux
}
