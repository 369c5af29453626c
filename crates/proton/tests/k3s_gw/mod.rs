//! A gateway rendered under a temp root for the K3s CLI tests (no root privileges): the
//! spec points the installer at the local script fixture (air-gapped mode), which records
//! its environment and installs the fake `k3s` under the root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_proton");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub struct Gw {
    pub dir: tempfile::TempDir,
    /// Where the installer fixture writes its record.
    pub rec: tempfile::TempDir,
}

impl Gw {
    /// `proton init`, then a spec with a public IP, an ACME e-mail and the installer
    /// fixture at /opt/k3s/install.sh (air-gapped: skip_download). Not applied yet.
    pub fn new() -> Gw {
        let gw = Gw {
            dir: tempfile::tempdir().unwrap(),
            rec: tempfile::tempdir().unwrap(),
        };
        gw.ok(&["init", "--endpoint", "vps.example.org"]);
        gw.edit_spec(&[
            (
                "endpoint = \"vps.example.org:51820\"\n",
                "endpoint = \"vps.example.org:51820\"\npublic_ip = \"203.0.113.7\"\n",
            ),
            ("\"https://get.k3s.io\"", "\"/opt/k3s/install.sh\""),
            ("skip_download = false", "skip_download = true"),
            ("[tls]\n", "[tls]\nacme_email = \"ops@example.org\"\n"),
        ]);
        let script = gw.path("opt/k3s/install.sh");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::copy(fixture("k3s-install.sh"), &script).unwrap();
        gw
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn edit_spec(&self, edits: &[(&str, &str)]) {
        let p = self.path("etc/proton/proton.toml");
        let mut s = std::fs::read_to_string(&p).unwrap();
        for (from, to) in edits {
            assert!(s.contains(from), "spec has no {from:?}:\n{s}");
            s = s.replacen(from, to, 1);
        }
        std::fs::write(&p, s).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--root")
            .arg(self.dir.path())
            .args(args)
            .env_remove("PROTON_ROOT")
            .env("RECORD_DIR", self.rec.path())
            .env("FAKE_K3S_SRC", fixture("fake-k3s"))
            .env("FAKE_K3S_DIR", self.path("usr/local/bin"))
            .env("HOME", "/home/admin")
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}
