//! `proton apply` and `proton kubeconfig` on a gateway rendered under a temp root, with
//! the K3s installer as a local script fixture (air-gapped mode) that records its
//! environment and installs a fake `k3s` under the root. No root privileges needed:
//! under a root other than `/`, host commands are printed as "not run", never run.
//!
//! `UPDATE_GOLDEN=1 cargo nextest run -p proton --test apply` regenerates tests/golden/apply.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proton_test_support::k3s_gw::{Gw, text};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

const MANIFESTS: &str = "var/lib/rancher/k3s/server/manifests";

#[test]
fn first_apply_writes_every_file_as_golden_and_installs_the_pinned_version() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    let out = gw.run(&["apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    // Progress of the installer is shown as it runs.
    assert!(
        stderr.contains("  | [INFO]  Using v1.34.2+k3s1 as release"),
        "{stderr}"
    );
    let record = gw.take_record().expect("the installer ran");
    assert!(record.starts_with("args:\n"), "no arguments: {record}");
    for line in [
        "INSTALL_K3S_VERSION=v1.34.2+k3s1",
        "INSTALL_K3S_EXEC=server",
        "INSTALL_K3S_SKIP_DOWNLOAD=true",
    ] {
        assert!(record.lines().any(|l| l == line), "{line} in {record}");
    }
    assert!(!record.contains("K3S_TOKEN"), "{record}");
    // Host commands are listed, not run, under a temp root.
    assert!(stdout.contains("not run (--root is not /): systemctl daemon-reload"));
    assert!(stdout.contains("Pod network MTU over wg0: 1420 - 50 (VXLAN) = 1370"));

    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/apply");
    let written: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("wrote /"))
        .collect();
    assert_eq!(written.len(), 15, "{stdout}");
    for rel in written {
        let actual = std::fs::read_to_string(gw.path(rel)).unwrap();
        let g = golden.join(rel);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(g.parent().unwrap()).unwrap();
            std::fs::write(&g, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&g)
            .unwrap_or_else(|_| panic!("no golden file {}", g.display()));
        assert_eq!(actual, expected, "{rel} differs from its golden file");
        let mode = std::fs::metadata(gw.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        let want = if rel == "etc/rancher/k3s/config.yaml" || rel.starts_with(MANIFESTS) {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode, want, "{rel}");
    }
    // Client addresses reach Traefik (README "Client addresses"): its pod binds host
    // ports 80/443 on the node named in K3s's config (portmap DNAT, no SNAT), that node's
    // ExternalIP comes from node-external-ip through the embedded cloud controller (so no
    // disable-cloud-controller), and ServiceLB (klipper-lb masquerades) is not in the path.
    let config = std::fs::read_to_string(gw.path("etc/rancher/k3s/config.yaml")).unwrap();
    let traefik =
        std::fs::read_to_string(gw.path(&format!("{MANIFESTS}/proton-traefik.yaml"))).unwrap();
    let node = config
        .lines()
        .find_map(|l| l.strip_prefix("node-name: "))
        .expect("node-name");
    let pinned = traefik
        .lines()
        .find_map(|l| l.trim().strip_prefix("kubernetes.io/hostname: "))
        .expect("Traefik's nodeSelector");
    assert_eq!(pinned, node, "Traefik runs on the gateway node");
    for port in ["hostPort: 80", "hostPort: 443", "type: ClusterIP"] {
        assert!(
            traefik.lines().any(|l| l.trim() == port),
            "{port} in {traefik}"
        );
    }
    assert!(!traefik.contains("LoadBalancer"), "{traefik}");
    assert!(!config.contains("disable-cloud-controller"), "{config}");
    assert!(
        config.lines().any(|l| l.starts_with("node-external-ip: ")),
        "{config}"
    );
    assert!(
        config
            .lines()
            .any(|l| l == "- svccontroller.k3s.cattle.io/enablelb=true"),
        "{config}"
    );
}

#[test]
fn second_apply_changes_nothing_and_dry_run_touches_nothing() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    let before = gw.snapshot();
    let dry = gw.ok(&["apply", "--dry-run"]);
    assert_eq!(gw.snapshot(), before, "--dry-run changed the tree");
    assert!(gw.take_record().is_none(), "--dry-run ran the installer");
    assert!(dry.contains("+++ b/etc/rancher/k3s/config.yaml"), "{dry}");
    assert!(dry.contains("+node-ip: 10.7.7.1\n"), "{dry}");
    assert!(dry.contains("+advertise-address: 10.7.7.1\n"), "{dry}");
    assert!(dry.contains("+node-external-ip: 203.0.113.7\n"), "{dry}");
    assert!(dry.contains("run: nft -f "), "{dry}");
    assert!(
        dry.contains("run: K3s install script /opt/k3s/install.sh (INSTALL_K3S_VERSION=v1.34.2+k3s1, INSTALL_K3S_EXEC=server, INSTALL_K3S_SKIP_DOWNLOAD=true; now: not installed)"),
        "{dry}"
    );

    gw.ok(&["apply"]);
    assert!(gw.take_record().is_some());
    let applied = gw.snapshot();
    let again = gw.ok(&["apply"]);
    assert_eq!(
        again.trim(),
        "Nothing to change: the host matches the spec.",
        "{again}"
    );
    assert!(gw.take_record().is_none(), "the installer ran again");
    assert_eq!(gw.snapshot(), applied);
    let dry = gw.ok(&["apply", "--dry-run"]);
    assert_eq!(dry.trim(), "Nothing to change: the host matches the spec.");
}

#[test]
fn a_changed_k3s_file_restarts_k3s_and_a_new_version_reinstalls_instead() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    gw.ok(&["apply"]);
    gw.take_record();
    gw.edit_spec(&[("gogc = 10", "gogc = 20")]);
    let dry = gw.ok(&["apply", "--dry-run"]);
    assert!(dry.contains("-GOGC=10\n+GOGC=20\n"), "{dry}");
    assert!(dry.contains("run: systemctl restart k3s\n"), "{dry}");
    let out = gw.ok(&["apply"]);
    assert!(out.contains("wrote /etc/default/k3s"), "{out}");
    assert!(
        out.contains("not run (--root is not /): systemctl restart k3s"),
        "{out}"
    );
    assert!(
        gw.take_record().is_none(),
        "config change alone ran the installer"
    );

    gw.edit_spec(&[("v1.34.2+k3s1", "v1.34.3+k3s1"), ("gogc = 20", "gogc = 30")]);
    let out = gw.ok(&["apply"]);
    let record = gw.take_record().expect("new version: the installer runs");
    assert!(
        record.contains("INSTALL_K3S_VERSION=v1.34.3+k3s1"),
        "{record}"
    );
    assert!(
        !out.contains("restart k3s"),
        "the installer restarts K3s itself: {out}"
    );
    assert!(gw.ok(&["apply"]).contains("Nothing to change"));
}

#[test]
fn turning_an_add_on_off_empties_its_file_so_k3s_prunes_it() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    gw.ok(&["apply"]);
    let dash = gw.path(&format!("{MANIFESTS}/proton-dashboard.yaml"));
    let kinds = |p: &Path| {
        let f = proton_addons::ManifestFile {
            name: "proton-dashboard.yaml".into(),
            yaml: std::fs::read_to_string(p).unwrap(),
        };
        proton_addons::object_refs(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect::<Vec<_>>()
    };
    assert!(kinds(&dash).contains(&"HelmChart".to_string()));

    gw.edit_spec(&[(
        "[dashboard]\nenabled = true",
        "[dashboard]\nenabled = false",
    )]);
    let before = gw.snapshot();
    let dry = gw.ok(&["apply", "--dry-run"]);
    assert_eq!(gw.snapshot(), before);
    assert!(
        dry.contains("--- a/var/lib/rancher/k3s/server/manifests/proton-dashboard.yaml"),
        "{dry}"
    );
    assert!(dry.contains("-kind: HelmChart"), "{dry}");
    assert!(dry.contains("K3s prunes: HelmChart kube-system/"), "{dry}");
    assert!(dry.contains("K3s prunes: ServiceAccount"), "{dry}");

    let out = gw.ok(&["apply"]);
    assert!(out.contains("K3s prunes: HelmChart"), "{out}");
    assert!(
        dash.exists(),
        "the file must stay for K3s to prune its objects"
    );
    assert!(
        kinds(&dash).is_empty(),
        "objects left in the dashboard file"
    );
    for name in proton_addons::FILE_NAMES {
        assert!(gw.path(&format!("{MANIFESTS}/{name}")).exists(), "{name}");
    }
    assert!(gw.ok(&["apply"]).contains("Nothing to change"));
}

#[test]
fn a_bad_spec_or_a_failing_installer() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    gw.edit_spec(&[(
        "skip_download = true",
        "skip_download = true\nextra_args = [\"--node-ip=1.2.3.4\"]",
    )]);
    let before = gw.snapshot();
    let out = gw.run(&["apply"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("node-ip"), "{err}");
    assert_eq!(gw.snapshot(), before, "a bad spec changed files");
    gw.edit_spec(&[("\nextra_args = [\"--node-ip=1.2.3.4\"]", "")]);

    // The installer fails: its last lines are quoted; the next run finishes the job.
    std::fs::write(gw.rec.path().join("fail"), "").unwrap();
    let out = gw.run(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("the K3s install script failed (exit 3)"),
        "{err}"
    );
    assert!(err.contains("line 30\n[ERROR] Download failed"), "{err}");
    std::fs::remove_file(gw.rec.path().join("fail")).unwrap();
    let out = gw.ok(&["apply"]);
    assert!(out.contains("K3s v1.34.2+k3s1 installed"), "{out}");
    assert!(
        !out.contains("wrote "),
        "files were already in place: {out}"
    );
    assert!(gw.ok(&["apply"]).contains("Nothing to change"));
}

#[test]
fn kubeconfig_points_at_the_tunnel_and_merges_without_disturbing_others() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    let missing = gw.run(&["kubeconfig"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("proton apply"));

    let k3s_yaml = gw.path("etc/rancher/k3s/k3s.yaml");
    std::fs::create_dir_all(k3s_yaml.parent().unwrap()).unwrap();
    std::fs::copy(gw.fixture("k3s.yaml"), &k3s_yaml).unwrap();
    let out = gw.run(&["kubeconfig"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("cluster-admin"),
        "warns it is admin"
    );
    let printed = text(&out.stdout);
    assert!(
        printed.contains("server: https://10.7.7.1:6443"),
        "{printed}"
    );
    assert!(printed.contains("current-context: proton"), "{printed}");
    assert!(!printed.contains("default"), "{printed}");
    assert!(printed.contains("client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IY0NBUUVFSUZha2VLZXkKLS0tLS1FTkQgRUMgUFJJVkFURSBLRVktLS0tLQo="));

    // --merge FILE keeps the other clusters, contexts, users and the current context.
    let target = gw.path("home/admin/other.yaml");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(gw.fixture("existing-kubeconfig.yaml"), &target).unwrap();
    gw.ok(&["kubeconfig", "--merge", target.to_str().unwrap()]);
    let merged = std::fs::read_to_string(&target).unwrap();
    for kept in [
        "name: work-eks",
        "name: kind-dev",
        "namespace: payments",
        "current-context: work",
        "token: kind-token",
        "colors: true",
        "command: aws",
    ] {
        assert!(merged.contains(kept), "{kept} lost:\n{merged}");
    }
    assert!(merged.contains("server: https://10.7.7.1:6443"), "{merged}");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Merging twice replaces ours by name: no duplicates.
    gw.ok(&["kubeconfig", "--merge", target.to_str().unwrap()]);
    let twice = std::fs::read_to_string(&target).unwrap();
    assert_eq!(twice, merged);

    // --merge alone: ~/.kube/config (HOME under the root), created 0600.
    gw.ok(&["kubeconfig", "--merge"]);
    let default = gw.path("home/admin/.kube/config");
    let created = std::fs::read_to_string(&default).unwrap();
    assert!(created.contains("current-context: proton"), "{created}");
}

#[test]
fn dry_run_says_what_it_will_create_change_and_run_before_the_diffs() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    let dry = gw.ok(&["apply", "--dry-run"]);
    let (summary, details) = dry
        .split_once("\nDetails:\n")
        .expect("a summary, then details");
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines[0], "Summary (dry run, nothing is changed):", "{dry}");
    let line = |what: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{what} ")))
            .unwrap_or_else(|| panic!("a `{what}` line: {summary}"))
            .to_string()
    };
    assert!(
        line("create").contains("/etc/rancher/k3s/config.yaml"),
        "{summary}"
    );
    assert!(
        line("create").contains("/etc/proton/firewall.nft"),
        "{summary}"
    );
    assert!(line("run").contains("nft -f "), "{summary}");
    assert!(line("install").contains("K3s v1.34.2+k3s1"), "{summary}");
    assert!(
        !summary.contains("change "),
        "nothing exists yet to change: {summary}"
    );
    // Then the diffs, as before.
    assert!(
        details.contains("+++ b/etc/rancher/k3s/config.yaml"),
        "{details}"
    );

    gw.ok(&["apply"]);
    gw.edit_spec(&[("gogc = 10", "gogc = 20")]);
    let dry = gw.ok(&["apply", "--dry-run"]);
    assert!(
        dry.starts_with("Summary (dry run, nothing is changed):\n  change  1 file(s): /etc/default/k3s\n  run     1 command(s): systemctl restart k3s\n\nDetails:\n"),
        "{dry}"
    );
}

/// Not air-gapped: the system-upgrade-controller add-on and its two Plans are written with
/// the pinned version; raising `k3s.version` on an installed K3s changes the Plans (the
/// server Plan, then the agent Plan that waits for it) and runs no installer.
#[test]
fn a_new_version_on_an_installed_k3s_goes_to_the_upgrade_plans_not_the_installer() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    gw.edit_spec(&[("skip_download = true", "skip_download = false")]);
    gw.ok(&["apply"]);
    let first = gw.take_record().expect("first install: the installer runs");
    assert!(
        first.contains("INSTALL_K3S_VERSION=v1.34.2+k3s1"),
        "{first}"
    );
    let plans_path = gw.path(&format!("{MANIFESTS}/proton-k3s-upgrade.yaml"));
    let controller =
        std::fs::read_to_string(gw.path(&format!("{MANIFESTS}/proton-system-upgrade.yaml")))
            .unwrap();
    assert!(
        controller.contains("image: rancher/system-upgrade-controller:v0.20.1"),
        "{controller}"
    );
    let versions = |p: &Path| {
        let f = proton_addons::ManifestFile {
            name: "proton-k3s-upgrade.yaml".into(),
            yaml: std::fs::read_to_string(p).unwrap(),
        };
        let names: Vec<String> = proton_addons::object_refs(&f)
            .unwrap()
            .into_iter()
            .map(|r| format!("{} {}", r.kind, r.name))
            .collect();
        assert_eq!(names, ["Plan server-plan", "Plan agent-plan"]);
        f.yaml
            .lines()
            .filter(|l| l.trim_start().starts_with("version: "))
            .map(|l| l.trim().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        versions(&plans_path),
        ["version: v1.34.2+k3s1", "version: v1.34.2+k3s1"]
    );
    assert!(gw.ok(&["apply"]).contains("Nothing to change"));

    gw.edit_spec(&[("v1.34.2+k3s1", "v1.35.0+k3s1")]);
    let dry = gw.ok(&["apply", "--dry-run"]);
    assert!(
        dry.contains("upgrade: K3s v1.34.2+k3s1 -> v1.35.0+k3s1: the system-upgrade-controller's Plans upgrade the server first"),
        "{dry}"
    );
    assert!(!dry.contains("K3s install script"), "{dry}");
    let out = gw.ok(&["apply"]);
    assert!(gw.take_record().is_none(), "the installer ran: {out}");
    assert!(
        out.contains("wrote /var/lib/rancher/k3s/server/manifests/proton-k3s-upgrade.yaml"),
        "{out}"
    );
    assert_eq!(
        versions(&plans_path),
        ["version: v1.35.0+k3s1", "version: v1.35.0+k3s1"]
    );

    // Air-gapped again: the Plans and controller are emptied (K3s prunes them) and the
    // installer carries the version.
    gw.edit_spec(&[("skip_download = false", "skip_download = true")]);
    let out = gw.ok(&["apply"]);
    assert!(
        out.contains("K3s prunes: Plan system-upgrade/agent-plan"),
        "{out}"
    );
    let record = gw.take_record().expect("air-gapped: the installer runs");
    assert!(
        record.contains("INSTALL_K3S_VERSION=v1.35.0+k3s1"),
        "{record}"
    );
}
