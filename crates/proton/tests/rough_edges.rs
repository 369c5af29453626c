//! Rough edges a newcomer hit (issue 17), each checked through the real binary.

mod cli;

use cli::proton;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn invite_no_qr_prints_the_invitation_alone_so_it_pipes_into_join() {
    let gw = cli::gateway();
    let out = proton(gw.path(), &["invite", "home-1", "--no-qr"]);
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
    let out = proton(gw.path(), &["invite", "home-2"]);
    assert!(stdout(&out).starts_with("proton1-"), "{}", stdout(&out));
}

#[test]
fn init_takes_the_acme_email_and_next_names_apply() {
    let dir = tempfile::tempdir().unwrap();
    let out = proton(
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
    let dry = proton(dir.path(), &["apply", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));

    // Without it, Next says to set it.
    let dir = tempfile::tempdir().unwrap();
    let out = proton(dir.path(), &["init", "--endpoint", "vps.example.com"]);
    assert!(stdout(&out).contains("--acme-email"), "{}", stdout(&out));

    // A bad address is bad input: one error line, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let out = proton(
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
