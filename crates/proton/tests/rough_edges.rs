//! Rough edges a newcomer hit (issue 17), each checked through the real binary.

use proton_test_support::cli::{self, proton};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn invite_no_qr_prints_the_invitation_alone_so_it_pipes_into_join() {
    let gw = cli::gateway(BIN);
    let out = proton(BIN, gw.path(), &["invite", "home-1", "--no-qr"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one line on stdout: {text:?}");
    assert!(
        text.starts_with("proton1-") && text.ends_with('\n'),
        "{text:?}"
    );
    // The explanation is still there, for the person at the terminal.
    assert!(stderr(&out).contains("single use"), "{}", stderr(&out));
    assert!(stderr(&out).contains("proton join"), "{}", stderr(&out));
    // With the QR code, the invitation is still the first line.
    let out = proton(BIN, gw.path(), &["invite", "home-2"]);
    assert!(stdout(&out).starts_with("proton1-"), "{}", stdout(&out));
}

#[test]
fn init_takes_the_acme_email_and_next_names_apply() {
    let dir = tempfile::tempdir().unwrap();
    let out = proton(
        BIN,
        dir.path(),
        &[
            "init",
            "--endpoint",
            "vps.example.com",
            "--acme-email",
            "ops@example.org",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let spec = std::fs::read_to_string(dir.path().join("etc/proton/proton.toml")).unwrap();
    assert!(spec.contains("acme_email = \"ops@example.org\""), "{spec}");
    let next = stdout(&out);
    let next = &next[next.find("Next:").expect("a Next: section")..];
    assert!(next.contains("proton apply --dry-run"), "{next}");
    assert!(next.contains("\n  proton apply "), "{next}");
    assert!(
        !next.contains("acme_email"),
        "no reminder once it is set: {next}"
    );
    // The spec is ready for apply: no "tls.acme_email is required" from the dry run.
    let dry = proton(BIN, dir.path(), &["apply", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));

    // Without it, Next says to set it.
    let dir = tempfile::tempdir().unwrap();
    let out = proton(BIN, dir.path(), &["init", "--endpoint", "vps.example.com"]);
    assert!(stdout(&out).contains("--acme-email"), "{}", stdout(&out));

    // A bad address is bad input: one error line, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let out = proton(
        BIN,
        dir.path(),
        &[
            "init",
            "--endpoint",
            "vps.example.com",
            "--acme-email",
            "ops",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: tls.acme_email"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `proton join` at a terminal: paste the invitation, press Enter — it must go on with
/// that line, not wait for an end-of-file. The terminal here is a real pseudo-terminal
/// that is never closed; the pasted line is not an invitation, so join answers at once
/// with the invitation error (before this fix it waited forever).
#[test]
fn join_at_a_terminal_reads_the_pasted_line_and_prompts_for_it() {
    use std::io::Write;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, slave) = unsafe {
        let (mut m, mut s) = (0, 0);
        let rc = libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        );
        assert_eq!(rc, 0, "openpty");
        (
            std::fs::File::from(OwnedFd::from_raw_fd(m)),
            OwnedFd::from_raw_fd(s),
        )
    };
    let root = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_proton"))
        .arg("--root")
        .arg(root.path())
        .arg("join")
        .env_remove("PROTON_ROOT")
        .stdin(std::process::Stdio::from(slave))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    master.write_all(b"proton2-not-an-invitation\n").unwrap();
    // Wait for it to finish; the terminal stays open the whole time.
    let mut finished = None;
    for _ in 0..300 {
        if let Some(st) = child.try_wait().unwrap() {
            finished = Some(st);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if finished.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        finished.is_some(),
        "join still waiting after the line was pasted: {err}"
    );
    assert!(
        err.starts_with("Paste the invitation from `proton invite` and press Enter: "),
        "{err}"
    );
    assert!(
        err.contains("error: this is not a Proton invitation"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(2));
    drop(master);
}

#[test]
fn join_reads_the_first_line_of_a_pipe_and_says_when_there_is_none() {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_proton"));
    cmd.arg("--root").arg(root.path()).arg("join");
    // Blank lines before it are skipped; the line is the invitation (not one here).
    let out = output_with_stdin(&mut cmd, "\n\nproton2-x\n");
    assert!(
        stderr(&out).starts_with("error: this is not a Proton invitation"),
        "{}",
        stderr(&out)
    );
    let out = output_with_stdin(&mut cmd, "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: no invitation on standard input"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--no-qr | ssh"), "{}", stderr(&out));
    assert!(
        std::fs::read_dir(root.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

fn output_with_stdin(cmd: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .env_remove("PROTON_ROOT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
