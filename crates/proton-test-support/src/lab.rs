//! The lab tests' set-up: a [`LabGuard`] that builds a lab through the real binary
//! (unique name per test process), runs commands in its nodes, and removes it on drop,
//! even when the test fails.

use std::process::{Command, Output};

pub fn root_and_tools() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let tools = ["wg", "wireguard-go", "nft", "iperf3", "python3"]
        .iter()
        .all(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
    if !(root && tools) {
        eprintln!(
            "skipping: needs root and wireguard-tools, wireguard-go, nftables, iperf3, python3"
        );
    }
    root && tools
}

/// A lab by name (`.0`), made and removed with the `proton` binary it was given.
pub struct LabGuard(pub String, &'static str);

impl LabGuard {
    /// A lab the test made itself (`proton lab up` run with `bin`): removed on drop.
    pub fn adopt(bin: &'static str, name: String) -> LabGuard {
        LabGuard(name, bin)
    }

    /// The `proton` binary this lab runs.
    pub fn bin(&self) -> &'static str {
        self.1
    }

    /// `proton lab up` with `bin` (`env!("CARGO_BIN_EXE_proton")`): `workers` joined,
    /// `spare` worker namespaces left un-joined, `clients` wireguard-go phones.
    pub fn up(
        bin: &'static str,
        tag: &str,
        workers: usize,
        spare: usize,
        clients: usize,
    ) -> LabGuard {
        let name = format!("{tag}{}", std::process::id() % 100000);
        let _ = Command::new(bin)
            .args(["lab", "down", "--name", &name])
            .output();
        let out = Command::new(bin)
            .args([
                "lab",
                "up",
                "--name",
                &name,
                "--workers",
                &workers.to_string(),
                "--spare-workers",
                &spare.to_string(),
                "--clients",
                &clients.to_string(),
            ])
            .output()
            .unwrap();
        let guard = LabGuard(name, bin);
        assert!(
            out.status.success(),
            "lab up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        guard
    }

    pub fn exec(&self, node: &str, argv: &[&str]) -> Output {
        Command::new(self.1)
            .args(["lab", "exec", node, "--name", &self.0, "--"])
            .args(argv)
            .output()
            .unwrap()
    }

    pub fn ok(&self, node: &str, argv: &[&str]) -> String {
        let out = self.exec(node, argv);
        assert!(
            out.status.success(),
            "{node}: {argv:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `proton --root <node root> …` inside a node.
    pub fn proton(&self, node: &str, args: &[&str], stdin: Option<&str>) -> Output {
        self.proton_at(node, &self.root(node), args, stdin)
    }

    /// The directory that is `/` for Proton in a node.
    pub fn root(&self, node: &str) -> String {
        format!("/run/proton-lab/{}/{node}/root", self.0)
    }

    /// `proton --root <root> …` inside a node: another "machine" sharing the node's
    /// network when `root` is not the node's own.
    pub fn proton_at(&self, node: &str, root: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut argv = vec![self.1, "--root", root];
        argv.extend_from_slice(args);
        let mut cmd = Command::new(self.1);
        cmd.args(["lab", "exec", node, "--name", &self.0]);
        if stdin.is_some() {
            cmd.arg("--stdin");
        }
        cmd.arg("--").args(&argv);
        match stdin {
            None => cmd.output().unwrap(),
            Some(text) => output_with_stdin(&mut cmd, text),
        }
    }

    /// `proton invite NAME` on the gateway; the one-line invitation it printed.
    pub fn invite(&self, name: &str) -> String {
        let out = self.proton("gw", &["invite", name, "--no-qr"], None);
        assert!(
            out.status.success(),
            "invite {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("proton1-"))
            .expect("`proton invite` printed an invitation")
            .to_string()
    }

    pub fn state(&self) -> serde_json::Value {
        let text =
            std::fs::read_to_string(format!("/run/proton-lab/{}/state.json", self.0)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn pids(&self, what: &str) -> Vec<u32> {
        self.state()["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[2] == what)
            .map(|p| p[1].as_u64().unwrap() as u32)
            .collect()
    }

    pub fn public_ip(&self, index: u8) -> String {
        self.state()["public_net"]
            .as_str()
            .unwrap()
            .replace(".0/24", &format!(".{index}"))
    }

    pub fn ping(&self, node: &str, target: &str) -> bool {
        self.exec(node, &["ping", "-c", "2", "-w", "15", target])
            .status
            .success()
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Command::new(self.1)
            .args(["lab", "down", "--name", &self.0])
            .output();
    }
}

pub fn wg_dump(lab: &LabGuard) -> Vec<Vec<String>> {
    lab.ok("gw", &["wg", "show", "wg0", "dump"])
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

/// Runs `cmd` with `input` on its standard input (secrets never go in argv) and collects
/// its output.
pub fn output_with_stdin(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
