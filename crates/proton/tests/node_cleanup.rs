//! A worker removed while K3s does not answer: its K8s node stays on the pending list
//! (the DB), `peer list` shows it, a new invitation for the name is refused, and the
//! next `peer remove`, `apply` or `invite` finishes the cleanup once K3s is back.
//!
//! A gateway rendered under a temp root (no root privileges), K3s installed by the
//! installer fixture as the fake `k3s`, which fails while `k3s-down` exists beside it.

use proton_test_support::k3s_gw::{Gw, text};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

/// A gateway with K3s applied (the fake `k3s` installed at the pinned version).
fn applied() -> Gw {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    gw.ok(&["apply"]);
    assert!(gw.path("usr/local/bin/k3s").exists());
    gw
}

/// Runs a command that must fail with exit code 1, one `error:` line and a hint;
/// returns (stdout, error line, hint line).
fn fails(gw: &Gw, args: &[&str]) -> (String, String, String) {
    let out = gw.run(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    let hint = stderr
        .lines()
        .skip_while(|l| !l.starts_with("error:"))
        .nth(1)
        .unwrap_or_default();
    assert!(hint.starts_with("hint: "), "{args:?}: {stderr}");
    (text(&out.stdout), errors[0].to_string(), hint.to_string())
}

fn k3s_down(gw: &Gw, down: bool) {
    let marker = gw.path("usr/local/bin/k3s-down");
    if down {
        std::fs::write(marker, "").unwrap();
    } else {
        std::fs::remove_file(marker).unwrap();
    }
}

/// The `k3s` calls since the last look.
fn take_calls(gw: &Gw) -> String {
    let p = gw.path("usr/local/bin/k3s-calls.log");
    let calls = std::fs::read_to_string(&p).unwrap_or_default();
    let _ = std::fs::remove_file(p);
    calls
}

fn invite(gw: &Gw, name: &str) {
    gw.ok(&["invite", name, "--role", "worker", "--no-qr"]);
}

/// `peer list --json`: (name, state) of every entry, and the `removing` entries.
fn list(gw: &Gw) -> (Vec<(String, String)>, Vec<serde_json::Value>) {
    let rows: serde_json::Value = serde_json::from_str(&gw.ok(&["peer", "list", "--json"]))
        .expect("peer list --json is JSON");
    let rows = rows.as_array().expect("an array").clone();
    let names = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let removing = rows
        .into_iter()
        .filter(|r| r["state"] == "removing")
        .collect();
    (names, removing)
}

fn deleted(calls: &str, node: &str) -> bool {
    calls.contains(&format!("kubectl delete node {node} --ignore-not-found --request-timeout=20s"))
        && calls.contains(&format!(
            "kubectl -n kube-system delete secret {node}.node-password.k3s --ignore-not-found --request-timeout=20s"
        ))
}

#[test]
fn a_failed_node_cleanup_is_kept_shown_refused_for_reinvites_and_finished_by_the_next_remove() {
    let gw = applied();
    invite(&gw, "w1");
    invite(&gw, "w2");
    gw.ok(&["client", "add", "phone"]);
    // A token `join` made for w1 earlier: its ID is what `peer remove` deletes.
    std::fs::create_dir_all(gw.path("var/lib/proton/k3s-tokens")).unwrap();
    std::fs::write(gw.path("var/lib/proton/k3s-tokens/w1"), "abc123\n").unwrap();
    // ... and the token itself, in the fake `k3s`'s store (`k3s token delete` of an ID
    // that does not exist fails, as K3s's does).
    std::fs::write(
        gw.path("usr/local/bin/k3s-tokens"),
        "abc123 30m proton:w1\n",
    )
    .unwrap();
    take_calls(&gw);

    k3s_down(&gw, true);
    let (stdout, error, hint) = fails(&gw, &["peer", "remove", "w1"]);
    assert!(stdout.contains("Removed `w1`"), "{stdout}");
    assert!(
        error.contains("`w1` is off the tunnel, but deleting its K8s node failed")
            && error.contains("127.0.0.1:6443 was refused"),
        "{error}"
    );
    assert!(
        hint.contains("retried") && hint.contains("proton apply"),
        "{hint}"
    );
    // The token record stays until the cluster side succeeded.
    assert!(gw.path("var/lib/proton/k3s-tokens/w1").exists());

    let (names, removing) = list(&gw);
    assert!(
        !names.contains(&("w1".into(), "invited".into())),
        "{names:?}"
    );
    assert_eq!(removing.len(), 1, "{removing:?}");
    assert_eq!(removing[0]["name"], "w1");
    assert_eq!(removing[0]["node_cleanup"]["attempts"], 1);
    assert!(
        removing[0]["node_cleanup"]["last_error"]
            .as_str()
            .unwrap()
            .contains("was refused"),
        "{removing:?}"
    );
    let table = gw.ok(&["peer", "list"]);
    assert!(
        table.contains("Pending cleanup") && table.contains("  w1 "),
        "{table}"
    );

    // The name cannot be given to a new machine while the old node may still exist.
    let (_, error, _) = fails(&gw, &["invite", "w1", "--role", "worker", "--no-qr"]);
    assert!(error.contains("cannot invite `w1` yet"), "{error}");
    let (names, _) = list(&gw);
    let w1: Vec<_> = names.iter().filter(|(n, _)| n == "w1").collect();
    assert_eq!(w1, [&("w1".to_string(), "removing".to_string())]);

    // Removing another worker while K3s is still down: its own failure, the older one
    // left pending.
    let (_, error, _) = fails(&gw, &["peer", "remove", "w2"]);
    assert!(
        error.contains("`w2`") && error.contains("1 more pending"),
        "{error}"
    );
    assert_eq!(list(&gw).1.len(), 2);

    // K3s is back: removing any peer (here a client) finishes both.
    k3s_down(&gw, false);
    take_calls(&gw);
    let out = gw.run(&["peer", "remove", "phone"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    let calls = take_calls(&gw);
    assert!(deleted(&calls, "w1") && deleted(&calls, "w2"), "{calls}");
    assert!(calls.contains("token delete abc123"), "{calls}");
    assert!(!stderr.contains("could not be deleted"), "{stderr}");
    assert!(stdout.contains("Deleted K8s node `w1`"), "{stdout}");
    assert!(stdout.contains("Deleted K8s node `w2`"), "{stdout}");
    assert!(list(&gw).1.is_empty());
    assert!(!gw.path("var/lib/proton/k3s-tokens/w1").exists());
    assert!(!gw.ok(&["peer", "list"]).contains("Pending cleanup"));
    // And the name is free again.
    invite(&gw, "w1");
}

#[test]
fn apply_and_a_new_invitation_finish_pending_node_cleanups() {
    let gw = applied();
    invite(&gw, "w3");
    invite(&gw, "w4");
    k3s_down(&gw, true);
    fails(&gw, &["peer", "remove", "w3"]);
    fails(&gw, &["peer", "remove", "w4"]);

    // `apply` while K3s is still down: the host part is done, the cleanup fails loudly.
    let (_, error, hint) = fails(&gw, &["apply"]);
    assert!(
        error.contains("deleting the K8s node of removed worker `w3` failed (1 more pending)"),
        "{error}"
    );
    assert!(hint.contains("re-run `proton apply`"), "{hint}");
    let dry = gw.ok(&["apply", "--dry-run"]);
    assert!(dry.contains("would delete K8s node `w3`"), "{dry}");

    // Running the same `peer remove` again retries it (the peer is gone already).
    let (stdout, error, _) = fails(&gw, &["peer", "remove", "w4"]);
    assert!(stdout.contains("`w4` is already removed"), "{stdout}");
    assert!(error.contains("`w4`"), "{error}");
    assert_eq!(list(&gw).1.len(), 2);

    k3s_down(&gw, false);
    take_calls(&gw);
    // A new invitation for w4 deletes the old node first (and only that one).
    let out = gw.run(&["invite", "w4", "--role", "worker", "--no-qr"]);
    assert!(out.status.success());
    // stdout is the invitation alone (it pipes into `proton join`); the rest on stderr.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim().starts_with("proton1-") && stdout.trim().lines().count() == 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Deleted K8s node `w4`"), "{err}");
    let calls = take_calls(&gw);
    assert!(deleted(&calls, "w4") && !deleted(&calls, "w3"), "{calls}");

    let out = gw.ok(&["apply"]);
    assert!(out.contains("Deleted K8s node `w3`"), "{out}");
    assert!(deleted(&take_calls(&gw), "w3"));
    assert!(list(&gw).1.is_empty());
    // Nothing pending: the next apply has nothing to do.
    let out = gw.ok(&["apply"]);
    assert!(out.contains("Nothing to change"), "{out}");
    assert!(!take_calls(&gw).contains("delete"));

    // With K3s disabled, `apply` cannot delete a pending node: it says so, does not fail,
    // and keeps the record.
    invite(&gw, "w5");
    k3s_down(&gw, true);
    fails(&gw, &["peer", "remove", "w5"]);
    let spec = gw.path("etc/proton/proton.toml");
    let s = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        s.replacen("[k3s]\nenabled = true", "[k3s]\nenabled = false", 1),
    )
    .unwrap();
    let out = gw.run(&["apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("1 removed worker(s) still have a K8s node to delete"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(list(&gw).1.len(), 1);
}
