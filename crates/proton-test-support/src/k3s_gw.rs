//! A gateway rendered under a temp root for the K3s CLI tests (no root privileges): the
//! spec points the installer at the local script fixture (air-gapped mode), which records
//! its environment and installs the fake `k3s` under the root. The fixtures are the
//! `proton` crate's `tests/fixtures` (`k3s-install.sh`, `fake-k3s`; each names the
//! upstream file it copies).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub struct Gw {
    pub dir: tempfile::TempDir,
    /// Where the installer fixture writes its record.
    pub rec: tempfile::TempDir,
    bin: &'static str,
    fixtures: PathBuf,
}

impl Gw {
    /// `proton init` with `bin`, then a spec with a public IP, an ACME e-mail and the
    /// installer fixture (from `crate_dir`'s `tests/fixtures`: the `proton` crate's
    /// `env!("CARGO_MANIFEST_DIR")`) at /opt/k3s/install.sh (air-gapped: skip_download).
    /// Not applied yet.
    pub fn new(bin: &'static str, crate_dir: &str) -> Gw {
        let gw = Gw {
            dir: tempfile::tempdir().unwrap(),
            rec: tempfile::tempdir().unwrap(),
            bin,
            fixtures: Path::new(crate_dir).join("tests/fixtures"),
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
        std::fs::copy(gw.fixture("k3s-install.sh"), &script).unwrap();
        gw
    }

    /// A file of the fixtures directory.
    pub fn fixture(&self, name: &str) -> PathBuf {
        self.fixtures.join(name)
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
        Command::new(self.bin)
            .arg("--root")
            .arg(self.dir.path())
            .args(args)
            .env_remove("PROTON_ROOT")
            .env("RECORD_DIR", self.rec.path())
            .env("FAKE_K3S_SRC", self.fixture("fake-k3s"))
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

    /// The installer fixture's record of its last run (and forgets it).
    pub fn take_record(&self) -> Option<String> {
        let p = self.rec.path().join("record");
        let r = std::fs::read_to_string(&p).ok();
        let _ = std::fs::remove_file(p);
        r
    }

    /// Every file under the root: contents and mode (a digest of them, to keep
    /// assertion messages short).
    pub fn snapshot(&self) -> std::collections::BTreeMap<PathBuf, (u64, u32)> {
        fn walk(dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, (u64, u32)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                let meta = e.metadata().unwrap();
                if meta.is_dir() {
                    walk(&p, out);
                } else {
                    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    std::hash::Hash::hash(&std::fs::read(&p).unwrap(), &mut h);
                    out.insert(p.clone(), (std::hash::Hasher::finish(&h), mode));
                }
            }
        }
        let mut out = std::collections::BTreeMap::new();
        walk(self.dir.path(), &mut out);
        out
    }
}
