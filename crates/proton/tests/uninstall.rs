//! `proton uninstall` under a temp root: after `init` + `apply` (K3s from the installer
//! fixture), `--dry-run` lists exactly Proton's files and changes nothing; the real run
//! removes exactly those, leaves unrelated files (and K3s, unless --k3s) alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proton_test_support::k3s_gw::Gw;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proton");

fn files(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

const UNRELATED: [&str; 4] = [
    "etc/systemd/system/nginx.service",
    "etc/sysctl.d/99-local.conf",
    "etc/rancher/k3s/registries.yaml",
    "etc/wireguard/wg1.conf",
];

#[test]
fn uninstall_removes_exactly_protons_files() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    gw.ok(&["apply"]);
    gw.ok(&["client", "add", "phone"]);
    for u in UNRELATED {
        let p = gw.path(u);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "not Proton's\n").unwrap();
    }
    let before = files(gw.dir.path());
    let protons: BTreeSet<PathBuf> = before
        .iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.starts_with("etc/proton/")
                || s.starts_with("var/lib/proton/")
                || s.starts_with("etc/systemd/system/proton-")
                || s.ends_with("10-proton.conf")
                || s == "etc/sysctl.d/90-proton.conf"
                || s == "etc/profile.d/proton.sh"
        })
        .cloned()
        .collect();
    assert!(protons.len() >= 9, "{protons:#?}");

    let dry = gw.ok(&["uninstall", "--dry-run"]);
    assert_eq!(files(gw.dir.path()), before, "dry run changed files");
    let root = gw.dir.path().display().to_string();
    for f in [
        "etc/systemd/system/proton-gateway.service",
        "etc/systemd/system/proton-firewall.service",
        "etc/systemd/system/k3s.service.d/10-proton.conf",
        "etc/sysctl.d/90-proton.conf",
        "etc/profile.d/proton.sh",
    ] {
        assert!(
            dry.contains(&format!("would remove: {root}/{f}\n")),
            "{f}: {dry}"
        );
    }
    assert!(
        dry.contains(&format!(
            "would remove: {root}/etc/proton/ (and everything in it)"
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!(
            "would remove: {root}/var/lib/proton/ (and everything in it)"
        )),
        "{dry}"
    );
    assert!(
        dry.contains("would run: nft delete table inet proton"),
        "{dry}"
    );
    assert!(dry.contains("would run: ip link delete dev wg0"), "{dry}");
    assert!(
        dry.contains(
            "would run: systemctl disable --now proton-gateway.service proton-firewall.service"
        ),
        "{dry}"
    );
    for u in UNRELATED {
        assert!(!dry.contains(u), "{u} listed: {dry}");
    }
    assert!(dry.contains("K3s stays"), "{dry}");

    let out = gw.ok(&["uninstall"]);
    assert!(
        out.contains("not run (--root is not /): nft delete table inet proton"),
        "{out}"
    );
    let after = files(gw.dir.path());
    let gone: BTreeSet<PathBuf> = before.difference(&after).cloned().collect();
    assert_eq!(gone, protons, "removed exactly Proton's files");
    for u in UNRELATED {
        assert!(gw.path(u).exists(), "{u} was removed");
    }
    // K3s (not asked to go) keeps its binary and the configuration it runs with.
    assert!(gw.path("usr/local/bin/k3s").exists());
    assert!(gw.path("etc/rancher/k3s/config.yaml").exists());
    assert!(!gw.path("etc/proton").exists() && !gw.path("var/lib/proton").exists());

    // Twice: nothing left to do.
    let again = gw.ok(&["uninstall", "--dry-run"]);
    assert!(
        again.contains("Nothing of Proton's is installed here."),
        "{again}"
    );
}

#[test]
fn k3s_goes_only_when_asked_and_with_its_own_uninstaller() {
    let gw = Gw::new(BIN, env!("CARGO_MANIFEST_DIR"));
    gw.ok(&["apply"]);
    let dry = gw.ok(&["uninstall", "--dry-run"]);
    assert!(!dry.contains("k3s-uninstall.sh"), "{dry}");
    // K3s's install script writes its uninstaller beside the binary.
    let script = gw.path("usr/local/bin/k3s-uninstall.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let dry = gw.ok(&["uninstall", "--dry-run", "--k3s"]);
    assert!(
        dry.contains("would run: /usr/local/bin/k3s-uninstall.sh   (K3s's own uninstaller)"),
        "{dry}"
    );
    let out = gw.ok(&["uninstall", "--k3s"]);
    assert!(out.contains("not run (--root is not /): "), "{out}");
    assert!(out.contains("k3s-uninstall.sh"), "{out}");
}
