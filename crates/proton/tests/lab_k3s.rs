//! K3s in the lab, through the real binary: a worker joins a gateway that runs K3s with
//! only the invitation and gets its agent configured and installed; removing it forgets
//! its node; the firewall `proton apply` writes keeps the kube API on the tunnel.
//!
//! K3s cannot be downloaded here, so the gateway's `k3s` is a fixture (tests/fixtures/
//! fake-k3s, answering `--version`, `token create|delete`, `kubectl delete` as K3s
//! v1.34.2+k3s1 does: `token create` prints a random secure token `K10<CA hash>::<id>.
//! <secret>` and `token delete` takes only the bare ID; logging its calls) placed where
//! `proton apply` would have installed K3s, and the worker's
//! installer is the local script fixture (air-gapped mode) recording its environment.
//! Needs root; skipped otherwise.

use proton_test_support::lab::{LabGuard, output_with_stdin, root_and_tools};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn node_root(lab: &LabGuard, node: &str) -> PathBuf {
    PathBuf::from(format!("/run/proton-lab/{}/{node}/root", lab.0))
}

fn copy_exec(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn invitation(lab: &LabGuard, name: &str) -> String {
    let out = lab.proton("gw", &["invite", name, "--no-qr"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .find(|l| l.starts_with("proton1-"))
        .expect("an invitation line")
        .to_string()
}

#[test]
fn a_worker_joins_k3s_with_only_the_invitation_and_removal_forgets_its_node() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tk", 0, 1, 0);
    let gw = node_root(&lab, "gw");
    let w1 = node_root(&lab, "w1");
    // The gateway's K3s server, as `proton apply` would have left it.
    copy_exec(&fixture("fake-k3s"), &gw.join("usr/local/bin/k3s"));
    std::fs::write(gw.join("usr/local/bin/k3s-version"), "v1.34.2+k3s1\n").unwrap();
    // The admin kubeconfig whose CA `k3s token create` hashes into the token.
    std::fs::create_dir_all(gw.join("etc/rancher/k3s")).unwrap();
    std::fs::copy(fixture("k3s.yaml"), gw.join("etc/rancher/k3s/k3s.yaml")).unwrap();
    // The worker is air-gapped: the install script is a local file.
    copy_exec(&fixture("k3s-install.sh"), &w1.join("opt/k3s/install.sh"));
    let rec = tempfile::tempdir().unwrap();

    let inv = invitation(&lab, "w1");
    let out = output_with_stdin(
        Command::new(BIN)
            .args(["lab", "exec", "w1", "--name", &lab.0, "--stdin", "--"])
            .arg("env")
            .arg(format!("RECORD_DIR={}", rec.path().display()))
            .args([BIN, "--root", w1.to_str().unwrap(), "join"])
            .args([
                "--k3s-install-script",
                "/opt/k3s/install.sh",
                "--k3s-skip-download",
            ]),
        &inv,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "join: {stdout}{stderr}");
    assert!(
        stdout.contains("K3s agent v1.34.2+k3s1 installed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("  | [INFO]  Using v1.34.2+k3s1"),
        "progress: {stderr}"
    );

    // The one token the gateway minted, as K3s printed it: `K10` + the sha256 of the
    // cluster CA (the agent pins the CA with it) + `::<id>.<secret>`.
    let minted = std::fs::read_to_string(gw.join("usr/local/bin/k3s-tokens")).unwrap();
    let minted: Vec<&str> = minted.lines().collect();
    assert_eq!(minted.len(), 1, "{minted:?}");
    let id = minted[0].split(' ').next().unwrap().to_string();
    assert_eq!(minted[0], format!("{id} 30m proton:w1"));
    let ca_hash = ca_sha256(&gw.join("etc/rancher/k3s/k3s.yaml"));
    let cfg_path = w1.join("etc/rancher/k3s/config.yaml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let token = cfg
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token in:\n{cfg}"))
        .to_string();
    let secret = token
        .strip_prefix(&format!("K10{ca_hash}::{id}."))
        .unwrap_or_else(|| panic!("{token} is not K10{ca_hash}::{id}.<secret>"));
    assert!(
        secret.len() == 16
            && secret
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{token}"
    );
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the token was printed"
    );

    // The agent's config.yaml: the server over the tunnel, this node's tunnel address,
    // flannel over wg0, the whole secure token; 0600.
    for line in [
        "server: https://10.7.7.1:6443",
        &format!("token: {token}"),
        "node-name: w1",
        "node-ip: 10.7.7.2",
        "flannel-iface: wg0",
    ] {
        assert!(cfg.lines().any(|l| l == line), "{line} in:\n{cfg}");
    }
    let mode = std::fs::metadata(&cfg_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // The installer got the server's version, agent mode, air-gap, and the URL and token
    // only in its environment, never in argv.
    let record = std::fs::read_to_string(rec.path().join("record")).unwrap();
    let mut lines = record.lines();
    assert_eq!(lines.next(), Some("args:"), "{record}");
    for want in [
        "INSTALL_K3S_VERSION=v1.34.2+k3s1",
        "INSTALL_K3S_EXEC=agent",
        "INSTALL_K3S_SKIP_DOWNLOAD=true",
        "K3S_URL=https://10.7.7.1:6443",
        &format!("K3S_TOKEN={token}"),
    ] {
        assert!(record.lines().any(|l| l == want), "{want} in:\n{record}");
    }

    // The gateway minted a short-lived per-node token (never its own) and kept its ID.
    let calls = std::fs::read_to_string(gw.join("usr/local/bin/k3s-calls.log")).unwrap();
    assert!(
        calls
            .lines()
            .any(|l| l == "token create --ttl 30m --description proton:w1"),
        "{calls}"
    );
    let id_file = gw.join("var/lib/proton/k3s-tokens/w1");
    assert_eq!(
        std::fs::read_to_string(&id_file).unwrap(),
        format!("{id}\n")
    );

    // Removing the worker deletes its Node, its node-password secret and its token.
    let out = lab.proton("gw", &["peer", "remove", "w1"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Deleted K8s node `w1`"),
        "{}",
        text(&out.stdout)
    );
    let calls = std::fs::read_to_string(gw.join("usr/local/bin/k3s-calls.log")).unwrap();
    for want in [
        "kubectl delete node w1 --ignore-not-found --request-timeout=20s",
        "kubectl -n kube-system delete secret w1.node-password.k3s --ignore-not-found --request-timeout=20s",
    ] {
        assert!(calls.lines().any(|l| l == want), "{want} in:\n{calls}");
    }
    // Exactly that token's bare ID, once: K3s's `token delete` takes nothing else.
    let deletes: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("token delete"))
        .collect();
    assert_eq!(deletes, [format!("token delete {id}")], "{calls}");
    assert!(
        !text(&out.stderr).contains("could not be deleted"),
        "the token deletion failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let left = std::fs::read_to_string(gw.join("usr/local/bin/k3s-tokens")).unwrap();
    assert_eq!(left, "", "the token is gone from the cluster");
    assert!(!id_file.exists());
}

#[test]
fn a_rejoin_with_k3s_installed_reloads_units_and_sysctls_before_restarting_the_agent() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "tr", 0, 1, 0);
    let gw = node_root(&lab, "gw");
    let w1 = node_root(&lab, "w1");
    copy_exec(&fixture("fake-k3s"), &gw.join("usr/local/bin/k3s"));
    std::fs::write(gw.join("usr/local/bin/k3s-version"), "v1.34.2+k3s1\n").unwrap();
    std::fs::create_dir_all(gw.join("etc/rancher/k3s")).unwrap();
    std::fs::copy(fixture("k3s.yaml"), gw.join("etc/rancher/k3s/k3s.yaml")).unwrap();
    // The worker already runs the K3s agent at the server's version, from an earlier join
    // whose unit drop-in differs from today's (and with no sysctl file).
    copy_exec(&fixture("fake-k3s"), &w1.join("usr/local/bin/k3s"));
    std::fs::write(w1.join("usr/local/bin/k3s-version"), "v1.34.2+k3s1\n").unwrap();
    let dropin = w1.join("etc/systemd/system/k3s-agent.service.d/10-proton.conf");
    std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    std::fs::write(
        &dropin,
        "# an older drop-in\n[Unit]\nAfter=wg-quick@wg0.service\n",
    )
    .unwrap();
    copy_exec(&fixture("k3s-install.sh"), &w1.join("opt/k3s/install.sh"));
    let rec = tempfile::tempdir().unwrap();

    let inv = invitation(&lab, "w1");
    let out = output_with_stdin(
        Command::new(BIN)
            .args(["lab", "exec", "w1", "--name", &lab.0, "--stdin", "--"])
            .arg("env")
            .arg(format!("RECORD_DIR={}", rec.path().display()))
            .args([BIN, "--root", w1.to_str().unwrap(), "join"])
            .args([
                "--k3s-install-script",
                "/opt/k3s/install.sh",
                "--k3s-skip-download",
            ]),
        &inv,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "join: {stdout}{stderr}");
    assert!(
        stdout.contains("K3s v1.34.2+k3s1 was already installed here."),
        "{stdout}"
    );
    assert!(
        !rec.path().join("record").exists(),
        "the installer ran although that version is installed"
    );
    // systemd must re-read the changed drop-in and the sysctl file must be applied before
    // k3s-agent restarts, in that order (under --root they are printed, not run).
    let cmds: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("not run (--root is not /): "))
        .filter(|c| c.starts_with("sys"))
        .collect();
    assert_eq!(
        cmds,
        [
            "sysctl --system",
            "systemctl daemon-reload",
            "systemctl restart k3s-agent"
        ],
        "{stdout}"
    );
}

/// Stops `proton agent` with SIGTERM (it takes its device down), as systemd would.
struct AgentProcess(std::process::Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

#[test]
fn a_userspace_worker_joined_with_another_interface_runs_its_tunnel_and_flannel_on_it() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "ti", 0, 1, 0);
    let gw = node_root(&lab, "gw");
    let w1 = node_root(&lab, "w1");
    copy_exec(&fixture("fake-k3s"), &gw.join("usr/local/bin/k3s"));
    std::fs::write(gw.join("usr/local/bin/k3s-version"), "v1.34.2+k3s1\n").unwrap();
    std::fs::create_dir_all(gw.join("etc/rancher/k3s")).unwrap();
    std::fs::copy(fixture("k3s.yaml"), gw.join("etc/rancher/k3s/k3s.yaml")).unwrap();
    copy_exec(&fixture("k3s-install.sh"), &w1.join("opt/k3s/install.sh"));
    let rec = tempfile::tempdir().unwrap();

    let inv = invitation(&lab, "w1");
    let out = output_with_stdin(
        Command::new(BIN)
            .args(["lab", "exec", "w1", "--name", &lab.0, "--stdin", "--"])
            .arg("env")
            .arg(format!("RECORD_DIR={}", rec.path().display()))
            .args([BIN, "--root", w1.to_str().unwrap(), "join"])
            .args(["--backend", "userspace", "--interface", "wg7"])
            .args([
                "--k3s-install-script",
                "/opt/k3s/install.sh",
                "--k3s-skip-download",
            ]),
        &inv,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "join: {stdout}{stderr}");
    let cfg = std::fs::read_to_string(w1.join("etc/rancher/k3s/config.yaml")).unwrap();
    assert!(
        cfg.lines().any(|l| l == "flannel-iface: wg7"),
        "flannel on the join's interface:\n{cfg}"
    );

    // `proton agent`, as proton-agent.service runs it, brings up that same interface.
    let uapi = format!("/run/proton-lab/{}/w1/agent-uapi", lab.0);
    let _agent = AgentProcess(
        Command::new("ip")
            .args(["netns", "exec", &format!("{}-w1", lab.0), BIN])
            .args(["--root", w1.to_str().unwrap(), "agent", "--uapi-dir", &uapi])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !lab
        .exec("w1", &["ip", "link", "show", "wg7"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "proton agent brought up no wg7: {}",
            lab.ok("w1", &["ip", "-br", "link"])
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        !lab.exec("w1", &["ip", "link", "show", "wg0"])
            .status
            .success(),
        "and no wg0"
    );
    assert!(
        lab.ping("w1", "10.7.7.1"),
        "the tunnel on wg7 reaches the gateway"
    );
}

/// The hex sha256 of the CA bytes in a kubeconfig's `certificate-authority-data`, what
/// K3s puts in a secure token (k3s-io/k3s pkg/clientaccess/token.go `hashCA`).
fn ca_sha256(kubeconfig: &Path) -> String {
    use base64::Engine;
    let yaml = std::fs::read_to_string(kubeconfig).unwrap();
    let b64 = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&pem).unwrap();
    let out = child.wait_with_output().unwrap();
    text(&out.stdout).split(' ').next().unwrap().to_string()
}

/// Kills a process started in a lab node when the test ends, pass or fail.
struct Kill(String);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.0).status();
    }
}

#[test]
fn the_applied_firewall_keeps_the_kube_api_on_the_tunnel() {
    if !root_and_tools() {
        return;
    }
    // A standard lab: its gateway has no K3s, so w1 joined for the tunnel only.
    let lab = LabGuard::up(BIN, "tw", 1, 0, 0);
    let gw = node_root(&lab, "gw");
    let spec_path = gw.join("etc/proton/proton.toml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    std::fs::write(
        &spec_path,
        spec.replacen("[k3s]\nenabled = true", "[k3s]\nenabled = false", 1),
    )
    .unwrap();
    let out = lab.proton("gw", &["apply"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("wrote /etc/proton/firewall.nft"),
        "{}",
        text(&out.stdout)
    );

    // Listeners standing in for the kube API and for a port Proton does not own (the
    // admin's SSH), on every address of the gateway.
    let pid = lab.ok(
        "gw",
        &[
            "sh",
            "-c",
            "python3 -m http.server 6443 --bind 0.0.0.0 >/dev/null 2>&1 & echo $!",
        ],
    );
    let _kill = Kill(pid.trim().to_string());
    let pid = lab.ok(
        "gw",
        &[
            "sh",
            "-c",
            "python3 -m http.server 2222 --bind 0.0.0.0 >/dev/null 2>&1 & echo $!",
        ],
    );
    let _kill_other = Kill(pid.trim().to_string());
    let probe_port = |node: &str, host: &str, port: u16| {
        lab.exec(
            node,
            &[
                "python3",
                "-c",
                &format!("import socket; socket.create_connection(('{host}', {port}), timeout=3)"),
            ],
        )
        .status
        .success()
    };
    let probe = |node: &str, host: &str| probe_port(node, host, 6443);
    let up = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        probe("gw", "127.0.0.1") && probe_port("gw", "127.0.0.1", 2222)
    });
    assert!(up, "the stand-in listeners did not start");
    let public = lab.public_ip(1);
    assert!(
        probe_port("nat", &public, 2222),
        "the NAT side reaches the gateway's public address (else this test proves nothing)"
    );
    // The daemon loads Proton's table itself: a gateway without `apply` is closed too.
    assert!(
        !probe("nat", &public),
        "the NAT side must not reach 6443 (daemon's table)"
    );

    // The ruleset file exactly as `proton apply` wrote it, loaded in the gateway's netns.
    let rules = gw.join("etc/proton/firewall.nft");
    lab.ok("gw", &["nft", "-f", rules.to_str().unwrap()]);
    // The file's sets are empty; the running daemon sees the table was loaded again and
    // refills them (within its one-second check).
    assert!(
        (0..10).any(|_| probe("w1", "10.7.7.1")),
        "a joined worker reaches 6443 over the tunnel"
    );
    assert!(probe("gw", "127.0.0.1"), "loopback reaches 6443");
    assert!(!probe("nat", &public), "the NAT side must not reach 6443");
    assert!(
        lab.ping("w1", "10.7.7.1"),
        "WireGuard's UDP port stays open"
    );
    // Loading it again replaces the table atomically: still exactly one.
    lab.ok("gw", &["nft", "-f", rules.to_str().unwrap()]);
    let tables = lab.ok("gw", &["nft", "list", "tables"]);
    assert_eq!(
        tables.lines().filter(|l| *l == "table inet proton").count(),
        1,
        "{tables}"
    );
    assert!(!probe("nat", &public));
}

/// A join whose answer is asked for again (a re-run with the same invitation: the
/// gateway already holds this machine's key and repeats the answer with a fresh token)
/// leaves exactly one live bootstrap token: the repeat deletes the one it replaces.
#[test]
fn a_repeated_answer_leaves_one_live_bootstrap_token() {
    if !root_and_tools() {
        return;
    }
    let lab = LabGuard::up(BIN, "to", 0, 1, 0);
    let gw = node_root(&lab, "gw");
    let w1 = node_root(&lab, "w1");
    copy_exec(&fixture("fake-k3s"), &gw.join("usr/local/bin/k3s"));
    std::fs::write(gw.join("usr/local/bin/k3s-version"), "v1.34.2+k3s1\n").unwrap();
    std::fs::create_dir_all(gw.join("etc/rancher/k3s")).unwrap();
    std::fs::copy(fixture("k3s.yaml"), gw.join("etc/rancher/k3s/k3s.yaml")).unwrap();
    copy_exec(&fixture("k3s-install.sh"), &w1.join("opt/k3s/install.sh"));
    let rec = tempfile::tempdir().unwrap();
    let inv = invitation(&lab, "w1");
    let join = || {
        output_with_stdin(
            Command::new(BIN)
                .args(["lab", "exec", "w1", "--name", &lab.0, "--stdin", "--"])
                .arg("env")
                .arg(format!("RECORD_DIR={}", rec.path().display()))
                .args([BIN, "--root", w1.to_str().unwrap(), "join"])
                .args([
                    "--k3s-install-script",
                    "/opt/k3s/install.sh",
                    "--k3s-skip-download",
                ]),
            &inv,
        )
    };
    let live = || -> Vec<String> {
        std::fs::read_to_string(gw.join("usr/local/bin/k3s-tokens"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    let recorded = || {
        std::fs::read_to_string(gw.join("var/lib/proton/k3s-tokens/w1"))
            .unwrap()
            .trim()
            .to_string()
    };
    let out = join();
    assert!(out.status.success(), "join: {}", text(&out.stderr));
    let first = live();
    assert_eq!(first, [recorded()], "one token after the join");

    let out = join();
    assert!(
        out.status.success() && text(&out.stderr).contains("finishing the job"),
        "the re-run got the repeated answer: {}",
        text(&out.stderr)
    );
    let second = live();
    assert_eq!(
        second.len(),
        1,
        "one live token after the repeat: {second:?}"
    );
    assert_ne!(second, first, "the repeat carried a fresh token");
    assert_eq!(second[0], recorded(), "its ID is the one recorded");
    let calls = std::fs::read_to_string(gw.join("usr/local/bin/k3s-calls.log")).unwrap();
    let deletes: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("token delete"))
        .collect();
    assert_eq!(deletes, [format!("token delete {}", first[0])], "{calls}");
}
