//! The installer step against a local HTTP server serving a recording script fixture.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;

use proton_core::host::Root;
use proton_k3s::Error;
use proton_k3s::install::{InstallOutcome, Installer, Role, ScriptSource};
use zeroize::Zeroizing;

const FIXTURE: &str = include_str!("fixtures/install.sh");

/// Serves `body` on 127.0.0.1:<random> for every request; returns the URL.
fn serve(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/install.sh")
}

/// A temp root; the script records into `<root>/rec`.
struct Lab {
    _dir: tempfile::TempDir,
    root: Root,
    rec: std::path::PathBuf,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    Lab {
        root: Root::new(dir.path()),
        rec,
        _dir: dir,
    }
}

fn installer(lab: &Lab, source: ScriptSource, role: Role) -> Installer {
    let mut i = Installer::new(lab.root.clone(), source, "v1.33.4+k3s1", role);
    i.k3s_bin = "/usr/local/bin/k3s".into();
    i
}

fn record(lab: &Lab) -> String {
    let mut s = String::new();
    std::fs::File::open(lab.rec.join("record"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}

fn fake_k3s(root: &Root, version: &str) {
    let script =
        format!("#!/bin/sh\necho 'k3s version {version} (0123abcd)'\necho 'go version go1.24'\n");
    root.write("/usr/local/bin/k3s", script.as_bytes(), 0o755)
        .unwrap();
}

/// Runs an install, collecting its progress lines.
fn run(_lab: &Lab, i: &Installer) -> (Result<InstallOutcome, Error>, Vec<String>) {
    let mut lines = Vec::new();
    let r = i.install(&mut |l| lines.push(l.to_string()));
    (r, lines)
}

/// The fixture with its record directory filled in (each test has its own).
fn fixture_with_dir(rec: &Path) -> &'static str {
    Box::leak(
        FIXTURE
            .replace("${RECORD_DIR:?}", rec.to_str().unwrap())
            .into_boxed_str(),
    )
}

#[test]
fn server_install_from_url_pins_version_and_exec() {
    let lab = lab();
    let url = serve(fixture_with_dir(&lab.rec));
    let i = installer(&lab, ScriptSource::Url(url), Role::Server);
    let (r, lines) = run(&lab, &i);
    assert_eq!(r.unwrap(), InstallOutcome::Installed);
    let rec = record(&lab);
    assert!(rec.contains("INSTALL_K3S_VERSION=v1.33.4+k3s1\n"), "{rec}");
    assert!(rec.contains("INSTALL_K3S_EXEC=server\n"), "{rec}");
    assert!(!rec.contains("SKIP_DOWNLOAD"), "{rec}");
    assert!(!rec.contains("K3S_TOKEN"), "{rec}");
    assert!(rec.starts_with("args:\n"), "{rec}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Using v1.33.4+k3s1 as release")),
        "{lines:?}"
    );
    // The downloaded script was kept under the root.
    assert!(lab.root.exists(proton_k3s::install::SCRIPT_PATH));
}

#[test]
fn air_gapped_agent_from_local_path_token_only_in_env() {
    let lab = lab();
    lab.root
        .write(
            "/opt/k3s/install.sh",
            fixture_with_dir(&lab.rec).as_bytes(),
            0o755,
        )
        .unwrap();
    let role = Role::Agent {
        server_url: "https://10.7.7.1:6443".into(),
        token: Zeroizing::new("K107f99992b20751cd3004ecd26ed4fd409f96346027917dd063a66fec17b9a692a::abcdef.0123456789abcdef".into()),
    };
    let mut i = installer(&lab, ScriptSource::Path("/opt/k3s/install.sh".into()), role);
    i.skip_download = true;
    i.skip_start = true;
    assert!(!format!("{i:?}").contains("0123456789abcdef"));
    let (r, _) = run(&lab, &i);
    assert_eq!(r.unwrap(), InstallOutcome::Installed);
    let rec = record(&lab);
    assert!(rec.contains("INSTALL_K3S_SKIP_DOWNLOAD=true\n"), "{rec}");
    assert!(rec.contains("INSTALL_K3S_SKIP_START=true\n"), "{rec}");
    assert!(rec.contains("INSTALL_K3S_EXEC=agent\n"), "{rec}");
    assert!(rec.contains("K3S_URL=https://10.7.7.1:6443\n"), "{rec}");
    assert!(rec.contains("K3S_TOKEN=K107f99992b20751cd3004ecd26ed4fd409f96346027917dd063a66fec17b9a692a::abcdef.0123456789abcdef\n"), "{rec}");
    let args = rec.lines().next().unwrap();
    assert_eq!(args, "args:", "token or anything else leaked into argv");
}

#[test]
fn skipped_when_that_version_already_runs() {
    let lab = lab();
    fake_k3s(&lab.root, "v1.33.4+k3s1");
    let url = serve(fixture_with_dir(&lab.rec));
    let i = installer(&lab, ScriptSource::Url(url.clone()), Role::Server);
    assert_eq!(i.installed_version().as_deref(), Some("v1.33.4+k3s1"));
    let (r, _) = run(&lab, &i);
    assert_eq!(r.unwrap(), InstallOutcome::AlreadyInstalled);
    assert!(!lab.rec.join("record").exists(), "the script ran anyway");
    // Another version installed: the script runs (upgrade).
    fake_k3s(&lab.root, "v1.32.0+k3s1");
    let (r, _) = run(&lab, &i);
    assert_eq!(r.unwrap(), InstallOutcome::Installed);
}

#[test]
fn failure_quotes_the_last_lines() {
    let lab = lab();
    std::fs::write(lab.rec.join("fail"), "").unwrap();
    let url = serve(fixture_with_dir(&lab.rec));
    let i = installer(&lab, ScriptSource::Url(url), Role::Server);
    let (r, lines) = run(&lab, &i);
    let err = r.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InstallFailed { .. }));
    assert!(msg.contains("exit 3"), "{msg}");
    assert!(msg.contains("[ERROR] Download failed"), "{msg}");
    assert!(msg.contains("line 30") && msg.contains("line 12"), "{msg}");
    assert!(
        !msg.contains("line 11\n"),
        "more than 20 lines quoted: {msg}"
    );
    assert!(lines.len() > 30);
}

#[test]
fn missing_local_script_and_unreachable_url_are_clear() {
    let lab = lab();
    let i = installer(
        &lab,
        ScriptSource::Path("/nope/install.sh".into()),
        Role::Server,
    );
    assert!(matches!(run(&lab, &i).0, Err(Error::ScriptMissing(_))));
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let i = installer(
        &lab,
        ScriptSource::Url(format!("http://127.0.0.1:{port}/x")),
        Role::Server,
    );
    let err = run(&lab, &i).0.unwrap_err().to_string();
    assert!(
        err.contains("127.0.0.1") && err.contains("local script path"),
        "{err}"
    );
}

#[test]
fn version_parsing() {
    use proton_k3s::install::parse_version;
    assert_eq!(
        parse_version("k3s version v1.33.4+k3s1 (c4fd8fb4)\ngo version go1.24.5\n").as_deref(),
        Some("v1.33.4+k3s1")
    );
    assert_eq!(parse_version(""), None);
}
