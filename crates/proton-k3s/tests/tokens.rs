//! Tokens, node removal and restart, recorded through the fake runner.

use proton_core::host::{Output, RecordingRunner};
use proton_k3s::Error;
use proton_k3s::tokens::{create_token, delete_token, remove_node, restart};

/// What `k3s token create` prints at v1.34.2+k3s1 (k3s-io/k3s `pkg/cli/token/token.go`
/// `create`: `fmt.Println(clientaccess.FormatTokenBytes(bt.Token.String(), CAData))`, i.e.
/// `K10` + hex sha256 of the CA + `::` + `<id>.<secret>`, `[a-z0-9]{6}.[a-z0-9]{16}`).
const SECURE: &str =
    "K107f99992b20751cd3004ecd26ed4fd409f96346027917dd063a66fec17b9a692a::k10abc.0123456789abcdef";

fn ok(stdout: &str) -> Output {
    Output {
        status: Some(0),
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

#[test]
fn create_token_runs_k3s_and_returns_a_redacted_secret() {
    let runner = RecordingRunner::new();
    runner.answer(&["k3s", "token", "create"], ok(&format!("{SECURE}\n")));
    let token = create_token(&runner, "k3s", "homelab-1", "15m").unwrap();
    // The agent gets the whole secure token (it pins the CA); delete takes the bare ID.
    assert_eq!(token.expose(), SECURE);
    assert_eq!(token.id(), "k10abc");
    assert!(!format!("{token:?}").contains("0123456789abcdef"));
    let calls = runner.calls();
    assert_eq!(
        calls[0].display(),
        "k3s token create --ttl 15m --description proton:homelab-1"
    );
    delete_token(&runner, "k3s", token.id()).unwrap();
    assert_eq!(runner.calls()[1].display(), "k3s token delete k10abc");
}

#[test]
fn create_token_rejects_garbage_and_failures() {
    let hash = "7f99992b20751cd3004ecd26ed4fd409f96346027917dd063a66fec17b9a692a";
    for garbage in [
        "Usage: k3s token ...".to_string(),
        // A bare bootstrap token pins no CA: K3s never prints it from `token create`.
        "k10abc.0123456789abcdef".into(),
        format!("K10{}::k10abc.0123456789abcdef", &hash[1..]),
        format!("K10{hash}::K10ABC.0123456789abcdef"),
        format!("K10{hash}::k10abc.0123456789abcde"),
        format!("K10{hash}::server:password"),
        format!("K10{hash}::k10abc.0123456789abcdef\nextra"),
    ] {
        let runner = RecordingRunner::new();
        runner.answer(&["k3s", "token", "create"], ok(&format!("{garbage}\n")));
        assert!(
            matches!(
                create_token(&runner, "k3s", "n", "15m"),
                Err(Error::Command { .. })
            ),
            "{garbage:?} accepted"
        );
    }
    let runner = RecordingRunner::new();
    runner.answer(
        &["k3s"],
        Output {
            status: Some(1),
            stdout: String::new(),
            stderr: "level=fatal msg=\"token: server is not running\"\n".into(),
        },
    );
    let err = create_token(&runner, "k3s", "n", "15m")
        .unwrap_err()
        .to_string();
    assert!(err.contains("server is not running"), "{err}");
}

#[test]
fn delete_token_takes_only_a_bare_token_id() {
    let runner = RecordingRunner::new();
    for bad in [SECURE, "k10abc.0123456789abcdef", "K10ABC", "abc12", "-rf"] {
        assert!(delete_token(&runner, "k3s", bad).is_err(), "{bad}");
    }
    assert!(runner.calls().is_empty(), "nothing ran for a non-ID");
}

#[test]
fn remove_node_deletes_node_and_node_password_secret() {
    let runner = RecordingRunner::new();
    remove_node(&runner, "/usr/local/bin/k3s", "homelab-1").unwrap();
    let lines: Vec<String> = runner.calls().iter().map(|c| c.display()).collect();
    assert_eq!(
        lines,
        [
            "/usr/local/bin/k3s kubectl delete node homelab-1 --ignore-not-found --request-timeout=20s",
            "/usr/local/bin/k3s kubectl -n kube-system delete secret homelab-1.node-password.k3s --ignore-not-found --request-timeout=20s",
        ]
    );
}

#[test]
fn restart_uses_systemctl() {
    let runner = RecordingRunner::new();
    restart(&runner, "k3s-agent").unwrap();
    assert_eq!(runner.calls()[0].display(), "systemctl restart k3s-agent");
    let failing = RecordingRunner::new();
    failing.answer(
        &["systemctl"],
        Output {
            status: Some(5),
            stdout: String::new(),
            stderr: "Unit k3s.service not found.\n".into(),
        },
    );
    let err = restart(&failing, "k3s").unwrap_err().to_string();
    assert!(
        err.contains("systemctl restart k3s") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn forget_node_deletes_node_secret_and_recorded_token_and_survives_an_expired_token() {
    use proton_k3s::tokens::{forget_node, record_token_id, recorded_token_id};
    let dir = tempfile::tempdir().unwrap();
    let root = proton_core::host::Root::new(dir.path());
    let runner = RecordingRunner::new();
    runner.answer(&["k3s", "token", "create"], ok(&format!("{SECURE}\n")));
    let token = create_token(&runner, "k3s", "w1", "30m").unwrap();
    record_token_id(&root, "w1", &token).unwrap();
    let stored = std::fs::read_to_string(root.path("/var/lib/proton/k3s-tokens/w1")).unwrap();
    assert_eq!(stored, "k10abc\n", "only the ID is kept, never the secret");

    // An expired token is already gone: its deletion fails, the rest still counts.
    runner.answer(
        &["k3s", "token", "delete"],
        Output {
            status: Some(1),
            stdout: String::new(),
            stderr: "bootstrap token \"k10abc\" not found\n".into(),
        },
    );
    let done = forget_node(&runner, &root, "k3s", "w1").unwrap();
    assert_eq!(done.token_id.as_deref(), Some("k10abc"));
    assert!(done.token_warning.unwrap().contains("not found"));
    let lines: Vec<String> = runner.calls()[1..].iter().map(|c| c.display()).collect();
    assert_eq!(
        lines,
        [
            "k3s kubectl delete node w1 --ignore-not-found --request-timeout=20s",
            "k3s kubectl -n kube-system delete secret w1.node-password.k3s --ignore-not-found --request-timeout=20s",
            "k3s token delete k10abc",
        ]
    );
    assert_eq!(recorded_token_id(&root, "w1").unwrap(), None);

    // The cluster side failing keeps the record, so the removal can be finished later.
    record_token_id(&root, "w1", &token).unwrap();
    let down = RecordingRunner::new();
    down.answer(
        &["k3s", "kubectl"],
        Output {
            status: Some(1),
            stdout: String::new(),
            stderr: "The connection to the server 127.0.0.1:6443 was refused\n".into(),
        },
    );
    assert!(matches!(
        forget_node(&down, &root, "k3s", "w1"),
        Err(Error::Command { .. })
    ));
    assert_eq!(
        recorded_token_id(&root, "w1").unwrap().as_deref(),
        Some("k10abc")
    );
}
