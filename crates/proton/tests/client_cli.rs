//! `proton client add`, `proton peer rename|remove` and `proton invite --ttl` through the
//! real binary, without a network: split tunnel by default, `--full-tunnel`, the PNG QR
//! code private (0600) and a failed PNG adding nothing, the private key never stored,
//! renames audited, and bad input one line that changes nothing.

use proton_test_support::cli::{gateway, proton};

use std::path::Path;
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

fn peers(root: &Path) -> String {
    let out = proton(BIN, root, &["peer", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `key` in the config's [Peer] section (the gateway).
fn peer_value(config: &str, key: &str) -> String {
    config
        .split("[Peer]")
        .nth(1)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {config}"))
        .to_string()
}

/// Every byte under `dir`, for "is this secret anywhere on disk?".
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn client_add_is_split_tunnel_unless_asked_and_its_key_is_never_stored() {
    use std::os::unix::fs::PermissionsExt;
    let gw = gateway(BIN);
    let out = proton(BIN, gw.path(), &["client", "add", "phone"]);
    assert!(out.status.success(), "{}", text(&out));
    let config = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(peer_value(&config, "AllowedIPs"), "10.7.7.0/24");
    let private = config
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .unwrap()
        .to_string();
    let disk = all_bytes(gw.path());
    assert!(
        !disk.windows(private.len()).any(|w| w == private.as_bytes()),
        "the client's private key was stored under the root"
    );

    let png = gw.path().join("laptop.png");
    let out = proton(
        BIN,
        gw.path(),
        &[
            "client",
            "add",
            "laptop",
            "--full-tunnel",
            "--qr-png",
            png.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let config = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(peer_value(&config, "AllowedIPs"), "0.0.0.0/0, ::/0");
    let meta = std::fs::metadata(&png).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "the PNG holds a key"
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert!(peers(gw.path()).contains("\"laptop\""));
}

#[test]
fn a_qr_png_that_cannot_be_written_adds_no_client() {
    let gw = gateway(BIN);
    let before = peers(gw.path());
    // A directory where the file should go: the write fails after the key was made.
    let dir = gw.path().join("taken.png");
    std::fs::create_dir(&dir).unwrap();
    let out = proton(
        BIN,
        gw.path(),
        &["client", "add", "phone", "--qr-png", dir.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        err.lines()
            .any(|l| l.starts_with("error: ") && l.contains("QR code")),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PrivateKey"),
        "a config was shown for a client that does not exist"
    );
    assert_eq!(peers(gw.path()), before, "the peer was left behind");
}

#[test]
fn rename_and_remove_refuse_bad_input_and_renames_are_audited() {
    let gw = gateway(BIN);
    assert!(
        proton(BIN, gw.path(), &["client", "add", "phone"])
            .status
            .success()
    );
    assert!(
        proton(BIN, gw.path(), &["client", "add", "tablet"])
            .status
            .success()
    );
    let before = peers(gw.path());
    for args in [
        &["peer", "rename", "phone", "tablet"][..],
        &["peer", "rename", "phone", "Bad Name"],
        &["peer", "rename", "nope", "other"],
        &["peer", "rename", "proton", "gw"],
        &["peer", "remove", "nope"],
        &["peer", "remove", "proton"],
        &["invite", "w1", "--ttl", "0s", "--no-qr"],
        &["invite", "w1", "--ttl", "31d", "--no-qr"],
        &["invite", "w1", "--ttl", "1x", "--no-qr"],
        &["invite", "w1", "--ttl", "99999999999999999d", "--no-qr"],
    ] {
        let out = proton(BIN, gw.path(), args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert_eq!(peers(gw.path()), before, "{args:?} changed the inventory");
    }

    let out = proton(BIN, gw.path(), &["peer", "rename", "phone", "phone-2"]);
    assert!(out.status.success(), "{}", text(&out));
    let list = peers(gw.path());
    assert!(
        list.contains("\"phone-2\"") && !list.contains("\"phone\""),
        "{list}"
    );
    // The rename is in the audit log, with the CLI as its actor.
    let root = proton_core::host::Root::new(gw.path());
    let cidr: proton_core::net::Cidr = "10.7.7.0/24".parse().unwrap();
    let store = proton_store::Store::open_existing(&root, &cidr).unwrap();
    let last = &store.audit_log(1).unwrap()[0];
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("peer.rename", "cli")
    );
}

#[test]
fn a_worker_that_joined_k3s_cannot_be_renamed() {
    let gw = gateway(BIN);
    let out = proton(BIN, gw.path(), &["invite", "home-1", "--no-qr"]);
    assert!(out.status.success(), "{}", text(&out));
    // What the join API records when it mints the worker's K3s bootstrap token.
    let tokens = gw.path().join("var/lib/proton/k3s-tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    std::fs::write(tokens.join("home-1"), "abcdef\n").unwrap();
    let before = peers(gw.path());
    let out = proton(BIN, gw.path(), &["peer", "rename", "home-1", "home-2"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("cannot rename a node"),
        "{err}"
    );
    assert_eq!(peers(gw.path()), before);
    // Without K3s join data, a worker renames like any peer.
    std::fs::remove_file(tokens.join("home-1")).unwrap();
    let out = proton(BIN, gw.path(), &["peer", "rename", "home-1", "home-2"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `proton client add NAME` with its standard output going to `stdout`.
fn client_add_to(root: &Path, name: &str, stdout: std::process::Stdio) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_proton"))
        .arg("--root")
        .arg(root)
        .args(["client", "add", name])
        .env_remove("PROTON_ROOT")
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_client_whose_config_never_got_out_is_not_added() {
    let gw = gateway(BIN);
    // Standard output is a pipe nobody reads any more: the config cannot be shown.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = client_add_to(gw.path(), "phone", writer.into());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "one clear line: {err}");
    assert!(err.contains("nothing was added"), "{err}");
    assert!(
        !peers(gw.path()).contains("\"phone\""),
        "a peer whose private key nobody saw: {}",
        peers(gw.path())
    );
    // The name and the address are free for the next try.
    let again = proton(BIN, gw.path(), &["client", "add", "phone"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("Address = 10.7.7.2/24"));
}

/// A stand-in for the daemon's admin socket under `root` that accepts and then does
/// what `answer` does with each connection.
fn fake_daemon(
    root: &Path,
    answer: impl Fn(std::os::unix::net::UnixStream) + Send + 'static,
) -> std::os::unix::net::UnixListener {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("run/proton");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(dir.join("admin.sock")).unwrap();
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for stream in accepting.incoming().flatten() {
            answer(stream);
        }
    });
    listener
}

#[test]
fn a_frozen_daemon_gets_a_clear_message_and_the_client_is_still_shown() {
    let gw = gateway(BIN);
    // A stopped (SIGSTOP) daemon: the kernel completes the connection, nobody answers.
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let _daemon = fake_daemon(gw.path(), move |s| keep.lock().unwrap().push(s));
    let out = proton(BIN, gw.path(), &["client", "add", "phone"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PrivateKey = "),
        "the config is shown: {}",
        text(&out)
    );
    assert!(err.contains("did not answer within"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert!(
        err.contains("saved and will be applied when the daemon is back"),
        "{err}"
    );
}

/// The value of `key` in the config's [Interface] section.
fn interface_value(config: &str, key: &str) -> Option<String> {
    config
        .split("[Peer]")
        .next()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .map(str::to_string)
}

fn peer_row(root: &Path, name: &str) -> serde_json::Value {
    let rows: serde_json::Value = serde_json::from_str(&peers(root)).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {rows}"))
        .clone()
}

#[test]
fn client_configs_use_the_tunnel_resolver_with_the_zone_as_search_domain() {
    let gw = gateway(BIN);
    for (name, extra) in [("phone", None), ("laptop", Some("--full-tunnel"))] {
        let mut args = vec!["client", "add", name, "--no-qr"];
        args.extend(extra);
        let out = proton(BIN, gw.path(), &args);
        assert!(out.status.success(), "{}", text(&out));
        let config = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            interface_value(&config, "DNS").as_deref(),
            Some("10.7.7.1, proton.internal"),
            "{config}"
        );
        // What wg-quick would read back: one server and one search domain.
        let parsed = proton_core::wgconf::WgQuickConfig::parse(&config).unwrap();
        assert_eq!(parsed.interface.dns, ["10.7.7.1", "proton.internal"]);
    }
    // With the resolver switched off, `network.dns` is used as before.
    let spec = gw.path().join("etc/proton/proton.toml");
    let text_spec = std::fs::read_to_string(&spec).unwrap();
    let text_spec = text_spec.replace("[dns]\nenabled = true", "[dns]\nenabled = false");
    assert!(text_spec.contains("enabled = false"), "{text_spec}");
    std::fs::write(&spec, text_spec).unwrap();
    let out = proton(BIN, gw.path(), &["client", "add", "tablet", "--no-qr"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        interface_value(&String::from_utf8_lossy(&out.stdout), "DNS"),
        None
    );
}

#[test]
fn a_daemon_that_dies_mid_answer_leaves_the_change_saved_and_says_so() {
    use std::io::{BufRead, Write};
    let gw = gateway(BIN);
    // Reads the request, writes half an answer, and is gone.
    let _daemon = fake_daemon(gw.path(), |s| {
        let mut line = String::new();
        let _ = std::io::BufReader::new(&s).read_line(&mut line);
        let _ = (&s).write_all(b"{\"response\":\"reconc");
    });
    let out = proton(BIN, gw.path(), &["client", "add", "phone"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        err.contains("closed the connection without answering"),
        "{err}"
    );
    assert!(!err.contains("unreadable"), "{err}");
    assert!(
        err.contains("saved and will be applied when the daemon is back"),
        "{err}"
    );
    assert!(
        peers(gw.path()).contains("\"phone\""),
        "the change is saved"
    );
}

#[test]
fn no_qr_prints_the_config_only_and_a_config_qr_too_tall_for_24_rows_says_so() {
    let gw = gateway(BIN);
    let out = proton(BIN, gw.path(), &["client", "add", "phone", "--no-qr"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PrivateKey = "));
    assert!(
        !stdout.contains(['█', '▀', '▄']),
        "--no-qr drew a QR:\n{stdout}"
    );
    // Without --no-qr: the drawing, and (a config needs more than 24 rows) the advice.
    let out = proton(BIN, gw.path(), &["client", "add", "laptop"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows = stdout
        .lines()
        .filter(|l| l.contains(['█', '▀', '▄']))
        .count();
    let cols = stdout
        .lines()
        .filter(|l| l.contains(['█', '▀', '▄']))
        .map(|l| l.chars().count())
        .max()
        .unwrap();
    assert!(cols <= 80, "{cols} columns");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        rows > 24,
        stderr.contains("--qr-png FILE"),
        "{rows} rows; stderr: {stderr}"
    );
    assert!(
        rows > 24,
        "a full client config is expected to need > 24 rows"
    );
    // With --qr-png the picture is the way: no advice.
    let png = gw.path().join("tablet.png");
    let out = proton(
        BIN,
        gw.path(),
        &["client", "add", "tablet", "--qr-png", png.to_str().unwrap()],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("--qr-png FILE"));
}

#[test]
fn clients_expire_and_can_be_disabled_and_enabled_keeping_their_key() {
    let gw = gateway(BIN);
    let out = proton(
        BIN,
        gw.path(),
        &["client", "add", "guest", "--no-qr", "--expires", "30d"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expires at"));
    let row = peer_row(gw.path(), "guest");
    let created = row["created_at"].as_i64().unwrap();
    assert_eq!(
        row["expires_at"].as_i64().unwrap() - created,
        30 * 86400,
        "{row}"
    );
    assert_eq!(row["expired"], false);
    let table =
        String::from_utf8_lossy(&proton(BIN, gw.path(), &["peer", "list"]).stdout).to_string();
    assert!(table.contains("EXPIRES"), "{table}");
    let line = table.lines().find(|l| l.starts_with("guest ")).unwrap();
    let date = line.split_whitespace().nth(4).unwrap();
    assert!(
        line.contains(" active ") && date.len() == 10 && &date[4..5] == "-" && &date[7..8] == "-",
        "{line}"
    );

    // Bad --expires: one error line, nothing added.
    let before = peers(gw.path());
    for bad in ["soon", "0d", "99999d"] {
        let out = proton(
            BIN,
            gw.path(),
            &["client", "add", "x", "--no-qr", "--expires", bad],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: --expires"), "{err}");
    }
    assert_eq!(peers(gw.path()), before);

    let key = peer_row(gw.path(), "guest")["public_key"].clone();
    let out = proton(BIN, gw.path(), &["client", "disable", "guest"]);
    assert!(out.status.success(), "{}", text(&out));
    let row = peer_row(gw.path(), "guest");
    assert!(row["disabled_at"].is_i64(), "{row}");
    assert_eq!(row["public_key"], key, "the key is kept");
    let table =
        String::from_utf8_lossy(&proton(BIN, gw.path(), &["peer", "list"]).stdout).to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("guest ") && l.contains(" disabled ")),
        "{table}"
    );
    // Not on the gateway's config (what the device carries).
    let wg = String::from_utf8_lossy(&proton(BIN, gw.path(), &["config", "wireguard"]).stdout)
        .to_string();
    assert!(!wg.contains(key.as_str().unwrap()), "{wg}");
    // Twice is fine and says so.
    let out = proton(BIN, gw.path(), &["client", "disable", "guest"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already disabled"));
    let out = proton(BIN, gw.path(), &["client", "enable", "guest"]);
    assert!(out.status.success(), "{}", text(&out));
    let row = peer_row(gw.path(), "guest");
    assert!(row["disabled_at"].is_null());
    assert_eq!(row["public_key"], key);
    let wg = String::from_utf8_lossy(&proton(BIN, gw.path(), &["config", "wireguard"]).stdout)
        .to_string();
    assert!(wg.contains(key.as_str().unwrap()), "{wg}");

    // Only clients; unknown names are one error line.
    for (name, what) in [("nobody", "no client"), ("proton", "not a client")] {
        let out = proton(BIN, gw.path(), &["client", "disable", name]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(what), "{err}");
    }
}

/// `client allow|deny` say what changed and what the client may reach now; repeating
/// either changes nothing and says so; `peer list --json` carries the grants.
#[test]
fn client_allow_and_deny_say_what_the_client_may_reach_and_repeat_harmlessly() {
    let gw = gateway(BIN);
    for name in ["phone", "laptop"] {
        let out = proton(BIN, gw.path(), &["client", "add", name, "--no-qr"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let run = |args: &[&str]| {
        let out = proton(BIN, gw.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let allow = ["client", "allow", "laptop", "phone:22", "gateway:53/udp"];
    assert_eq!(
        run(&allow),
        "`laptop` may now also reach: phone:22/tcp, proton:53/udp.\n"
    );
    assert!(run(&allow).starts_with("`laptop` already had that;"));
    let list: serde_json::Value = serde_json::from_str(&peers(gw.path())).unwrap();
    let laptop = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "laptop")
        .unwrap();
    assert_eq!(
        laptop["allow"],
        serde_json::json!(["phone:22/tcp", "proton:53/udp"])
    );
    let deny = ["client", "deny", "laptop", "phone:22"];
    assert_eq!(run(&deny), "`laptop` may now also reach: proton:53/udp.\n");
    assert!(run(&deny).starts_with("`laptop` had no such grant;"));
    // A grant for the client itself is refused with one line, exit 1 (a store refusal).
    let out = proton(BIN, gw.path(), &["client", "allow", "laptop", "laptop:22"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not need a grant to reach itself"),
        "{}",
        text(&out)
    );
}
