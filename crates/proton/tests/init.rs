//! `proton init` and `proton config wireguard`, driven through the real binary in a
//! temp root, as a user would run them.

use proton_test_support::cli::proton;

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_spec_key_db_and_unit_then_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = proton(BIN, root, &["init", "--endpoint", "vps.example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("public key:"), "{stdout}");
    assert!(stdout.contains("10.7.7.1/24"), "{stdout}");

    let key = root.join("etc/proton/gateway.key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&root.join("var/lib/proton/proton.db")), 0o600);
    assert!(root.join("etc/proton/proton.toml").is_file());
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/proton-gateway.service")).unwrap();
    // systemd's default soft limit (1024 descriptors) is what peers exhausted.
    let nofile: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("the unit raises the file limit")
        .parse()
        .unwrap();
    assert!(nofile >= 65536, "{unit}");
    // The private key never reaches the terminal.
    let secret = std::fs::read_to_string(&key).unwrap();
    assert!(!stdout.contains(secret.trim()));
    assert!(!stderr(&out).contains(secret.trim()));

    let before = std::fs::read(&key).unwrap();
    let again = proton(BIN, root, &["init", "--endpoint", "vps.example.com"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key was not touched"
    );

    let forced = proton(
        BIN,
        root,
        &["init", "--endpoint", "vps.example.com", "--force"],
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(&key).unwrap(), before, "a new key");
    let kept = files_under(root)
        .into_iter()
        .filter(|f| f.contains("gateway.key.replaced-"))
        .count();
    assert_eq!(kept, 1, "the old key is kept aside, not deleted");
}

#[test]
fn bad_input_gives_one_line_and_leaves_nothing_behind() {
    let cases: &[(&[&str], &str)] = &[
        (&["--endpoint", "vps.example.com:0"], "port"),
        (&["--endpoint", "vps.example.com:70000"], "port"),
        (&["--endpoint", "bad host!"], "endpoint"),
        (
            &["--endpoint", "vps.example.com", "--cidr", "10.7.7.0/31"],
            "too small",
        ),
        (
            &["--endpoint", "vps.example.com", "--cidr", "10.7.7.9/24"],
            "10.7.7.0/24",
        ),
        (
            &["--endpoint", "vps.example.com", "--name", "Not_A_Name"],
            "name",
        ),
    ];
    for (args, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut full = vec!["init"];
        full.extend_from_slice(args);
        let out = proton(BIN, dir.path(), &full);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{args:?}: {err}");
        assert!(
            err.to_lowercase().contains(needle),
            "{args:?} should mention {needle}: {err}"
        );
        assert!(
            files_under(dir.path()).is_empty(),
            "{args:?} left {:?}",
            files_under(dir.path())
        );
    }
}

#[test]
fn config_wireguard_is_read_by_wg_quick_strip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(
        proton(BIN, root, &["init", "--endpoint", "203.0.113.7:51999"])
            .status
            .success()
    );
    let out = proton(BIN, root, &["config", "wireguard"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Address = 10.7.7.1/24"), "{text}");
    assert!(text.contains("ListenPort = 51999"), "{text}");
    assert!(text.contains("FwMark = 0x4000"), "{text}");
    if Command::new("wg-quick").arg("-h").output().is_err() {
        eprintln!("skipping the wg-quick part: wireguard-tools is not installed");
        return;
    }
    let conf = root.join("wg0.conf");
    std::fs::write(&conf, &text).unwrap();
    let strip = Command::new("wg-quick")
        .arg("strip")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(strip.status.success(), "{}", stderr(&strip));
    let stripped = String::from_utf8(strip.stdout).unwrap();
    assert!(stripped.contains("PrivateKey = "));
    assert!(!stripped.contains("Address"));
}

#[test]
fn help_teaches_and_completions_print() {
    let dir = tempfile::tempdir().unwrap();
    let help = proton(BIN, dir.path(), &["init", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--endpoint") && text.contains("--force"),
        "{text}"
    );
    let bash = proton(BIN, dir.path(), &["completions", "bash"]);
    assert!(bash.status.success());
    assert!(String::from_utf8_lossy(&bash.stdout).contains("proton"));
}
