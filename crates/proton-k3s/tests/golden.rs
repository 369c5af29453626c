//! Golden tests: every file Proton writes for K3s, rendered under a temp root.
//! `UPDATE_GOLDEN=1 cargo test -p proton-k3s --test golden` regenerates them.

use std::path::Path;

use proton_core::host::{Root, mode_of};
use proton_k3s::*;
use zeroize::Zeroizing;

fn server() -> ServerParams {
    ServerParams {
        node_name: "proton".into(),
        tunnel_ip: "10.7.7.1".parse().unwrap(),
        tunnel_cidr: "10.7.7.0/24".into(),
        public_ip: Some("203.0.113.7".parse().unwrap()),
        public_name: Some("vps.example.org".into()),
        interface: "wg0".into(),
        wg_mtu: 1420,
        disable_traefik: true,
        gogc: 10,
        version: "v1.33.4+k3s1".into(),
        tunnel_unit: TunnelUnit::ProtonGateway,
        node_labels: vec![(
            "svccontroller.k3s.cattle.io/lbpool".into(),
            "proton-gateway".into(),
        )],
        extra_args: vec![],
    }
}

fn agent() -> AgentParams {
    AgentParams {
        server_url: "https://10.7.7.1:6443".into(),
        token: Zeroizing::new("K107f99992b20751cd3004ecd26ed4fd409f96346027917dd063a66fec17b9a692a::abcdef.0123456789abcdef".into()),
        node_name: "homelab-1".into(),
        tunnel_ip: "10.7.7.2".parse().unwrap(),
        interface: "wg0".into(),
        version: "v1.33.4+k3s1".into(),
        tunnel_unit: TunnelUnit::WgQuick,
    }
}

/// Writes the files under a temp root, then compares each to `tests/golden/<set>/…`.
fn check(set: &str, files: Vec<PlannedFile>) {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let plan = Plan {
        files,
        commands: vec![],
    };
    let written = plan.write_files(&root).unwrap();
    assert_eq!(written.len(), plan.files.len());
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(set);
    for f in &plan.files {
        let actual = std::fs::read_to_string(root.path(&f.path)).unwrap();
        assert_eq!(mode_of(&root.path(&f.path)).unwrap(), f.mode, "{}", f.path);
        let g = golden.join(f.path.trim_start_matches('/'));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(g.parent().unwrap()).unwrap();
            std::fs::write(&g, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&g)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", g.display()));
        assert_eq!(actual, expected, "{} differs from its golden file", f.path);
    }
    // A second pass changes nothing: the plan is idempotent.
    assert!(plan.changed(&root).unwrap().is_empty());
    assert_eq!(plan.dry_run(&root).unwrap(), "");
}

#[test]
fn server_files_match_golden() {
    check("server", server_files(&server()).unwrap());
}

#[test]
fn agent_files_match_golden() {
    let files = agent_files(&agent()).unwrap();
    let cfg = files
        .iter()
        .find(|f| f.path == config::CONFIG_PATH)
        .unwrap();
    assert_eq!(cfg.mode, 0o600);
    assert!(cfg.secret);
    assert!(!format!("{files:?}").contains("0123456789abcdef"));
    assert!(!format!("{:?}", agent()).contains("0123456789abcdef"));
    check("agent", files);
}

#[test]
fn server_without_traefik_disable_or_public_address() {
    let mut p = server();
    p.disable_traefik = false;
    p.public_ip = None;
    p.public_name = None;
    let files = server_files(&p).unwrap();
    let cfg = &files[0].contents;
    assert!(!cfg.contains("disable:"), "{cfg}");
    assert!(!cfg.contains("node-external-ip:"), "{cfg}");
    assert!(cfg.contains("advertise-address: 10.7.7.1"));
}

/// The path client addresses take to Traefik (README "Client addresses") needs the node's
/// ExternalIP to be the public address: K3s's embedded cloud controller sets it from
/// `node-external-ip` (k3s-io/k3s pkg/cloudprovider/instances.go@v1.34.2+k3s1, from the
/// `k3s.io/external-ip` annotation the agent writes), and with `disable-cloud-controller`
/// nothing does (k3s-io/k3s#12060). Flannel's public-ip must stay the tunnel address
/// (`flannel-iface`, no `flannel-external-ip`).
#[test]
fn server_keeps_the_cloud_controller_for_the_external_ip() {
    let files = server_files(&server()).unwrap();
    let cfg = &files[0].contents;
    let keys: Vec<&str> = cfg
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && !l.starts_with('-'))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(!keys.contains(&"disable-cloud-controller"), "{cfg}");
    assert!(!keys.contains(&"flannel-external-ip"), "{cfg}");
    assert!(
        cfg.lines().any(|l| l == "node-external-ip: 203.0.113.7"),
        "{cfg}"
    );
    assert!(cfg.lines().any(|l| l == "flannel-iface: wg0"), "{cfg}");
    for key in ["disable-cloud-controller", "flannel-external-ip"] {
        let mut p = server();
        p.extra_args = vec![(key.into(), "true".into())];
        assert!(
            matches!(server_files(&p), Err(Error::ExtraArgConflict(k)) if k == key),
            "{key} accepted"
        );
    }
}

#[test]
fn extra_args_conflicting_with_proton_are_refused() {
    let mut p = server();
    p.extra_args = vec![("node-ip".into(), "1.2.3.4".into())];
    assert!(matches!(server_files(&p), Err(Error::ExtraArgConflict(k)) if k == "node-ip"));
    p.extra_args = vec![("kube-apiserver-arg".into(), "v=2".into())];
    assert!(
        server_files(&p).unwrap()[0]
            .contents
            .contains("kube-apiserver-arg: v=2")
    );
}

#[test]
fn bad_names_are_refused() {
    let mut p = server();
    p.interface = "wg0; rm -rf /".into();
    assert!(matches!(
        server_files(&p),
        Err(Error::InvalidName {
            field: "interface",
            ..
        })
    ));
}

#[test]
fn dry_run_shows_diffs_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let mut p = server();
    let old = Plan {
        files: server_files(&p).unwrap(),
        commands: vec![],
    };
    old.write_files(&root).unwrap();
    p.gogc = 20;
    let new = Plan {
        files: server_files(&p).unwrap(),
        commands: vec![PlannedCommand::new("systemctl", &["restart", "k3s"])],
    };
    let out = new.dry_run(&root).unwrap();
    assert!(out.contains("-GOGC=10\n+GOGC=20\n"), "{out}");
    assert!(out.contains("run: systemctl restart k3s"), "{out}");
    assert!(
        root.read_to_string(config::SERVER_DEFAULTS_PATH)
            .unwrap()
            .contains("GOGC=10"),
        "the dry run wrote"
    );
    let changed = new.changed(&root).unwrap();
    assert_eq!(changed, vec![config::SERVER_DEFAULTS_PATH.to_string()]);
    let refs: Vec<&str> = changed.iter().map(String::as_str).collect();
    assert!(needs_restart(&refs));
    assert!(!needs_restart(&[config::PROFILE_PATH, config::SYSCTL_PATH]));
    // Secret files never show their contents in a dry run.
    let agent_plan = Plan {
        files: agent_files(&agent()).unwrap(),
        commands: vec![],
    };
    let out = agent_plan.dry_run(&root).unwrap();
    assert!(
        out.contains("contents hidden") && !out.contains("0123456789abcdef"),
        "{out}"
    );
}

#[test]
fn pod_mtu_is_wg_minus_vxlan() {
    assert_eq!(pod_mtu(1420), 1370);
    assert_eq!(pod_mtu(1280), 1230);
}

#[test]
fn commands_after_a_write_follow_what_changed() {
    let show = |changed: &[&str]| -> Vec<String> {
        after_write_commands("k3s", changed)
            .iter()
            .map(|c| c.to_string())
            .collect()
    };
    assert!(show(&[config::PROFILE_PATH]).is_empty());
    assert_eq!(show(&[config::CONFIG_PATH]), ["systemctl restart k3s"]);
    assert_eq!(
        show(&[config::SYSCTL_PATH, config::SERVER_DROPIN_PATH]),
        [
            "sysctl --system",
            "systemctl daemon-reload",
            "systemctl restart k3s"
        ]
    );
}

#[test]
fn conntrack_is_looked_up_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let missing = install::missing_host_tools(&root);
    assert_eq!(missing.len(), 1);
    assert!(missing[0].fix.contains("apt-get install -y conntrack"));
    root.write("/usr/sbin/conntrack", b"", 0o755).unwrap();
    assert!(install::missing_host_tools(&root).is_empty());
}
