//! `proton uninstall [--dry-run] [--k3s]`: remove what Proton wrote, and nothing else.
//! The binary prints each step ([`Step`]) as it happens.
//!
//! Files: Proton's own directories `/etc/proton` and `/var/lib/proton` (everything in
//! them is Proton's: spec, keys, state DB, firewall file, token IDs, set-aside
//! `.replaced-*` copies), its systemd units (gateway, firewall, agent, reresolve) and its
//! K3s unit drop-ins, `/etc/sysctl.d/90-proton.conf`, `/etc/profile.d/proton.sh`, and the
//! wg-quick file `proton join --backend kernel` wrote. Host state: the units are stopped
//! and disabled first, then the nftables table `inet proton` and the WireGuard interface
//! are deleted, and systemd and sysctl reloaded. Each only when present.
//!
//! K3s stays unless `--k3s`: then K3s's own `k3s-uninstall.sh` (server) or
//! `k3s-agent-uninstall.sh` (agent) runs, which the install script writes next to the
//! binary (`/usr/local/bin`) and which removes K3s's files, including the `config.yaml`,
//! `/etc/default/k3s` and add-on manifests Proton wrote for it. Without `--k3s` those stay
//! (they are K3s's configuration now), and the command says so.
//!
//! Under `--root DIR` other than `/`, files are removed under DIR and host-wide commands
//! (systemctl, sysctl, K3s's uninstaller) are printed as "not run". The table and the
//! interface belong to a network namespace: they are deleted there too when the command
//! runs in a named network namespace (`ip netns exec`: a lab node), never in the
//! machine's own.

use proton_core::host::{HostError, Root};
use proton_core::host::{Runner, SystemRunner};
use proton_core::say::Line;
use proton_core::spec::Spec;
use proton_k3s::config::{
    AGENT_DEFAULTS_PATH, AGENT_DROPIN_PATH, CONFIG_PATH, PROFILE_PATH, SERVER_DEFAULTS_PATH,
    SERVER_DROPIN_PATH, SYSCTL_PATH,
};
use proton_k3s::gateway::{FIREWALL_UNIT_PATH, MANIFESTS_DIR};

/// The gateway daemon's systemd unit, as `proton init` writes it (from-source installs).
pub const GATEWAY_UNIT: &str = "/etc/systemd/system/proton-gateway.service";
/// Proton's own directories: removed with everything in them.
pub const DIRS: [&str; 2] = ["/etc/proton", "/var/lib/proton"];
/// The systemd units Proton writes.
pub const UNITS: [&str; 5] = [
    GATEWAY_UNIT,
    FIREWALL_UNIT_PATH,
    "/etc/systemd/system/proton-agent.service",
    "/etc/systemd/system/proton-reresolve.service",
    "/etc/systemd/system/proton-reresolve.timer",
];
/// Other single files Proton writes.
pub const FILES: [&str; 4] = [
    SERVER_DROPIN_PATH,
    AGENT_DROPIN_PATH,
    SYSCTL_PATH,
    PROFILE_PATH,
];
/// K3s's own uninstall scripts, as its install script writes them.
pub const K3S_UNINSTALL: [&str; 2] = [
    "/usr/local/bin/k3s-uninstall.sh",
    "/usr/local/bin/k3s-agent-uninstall.sh",
];

/// What `proton uninstall` removes here (host paths; each only when present).
#[derive(Debug)]
pub struct Removal {
    pub files: Vec<String>,
    pub dirs: Vec<String>,
    /// Host commands, in order: stop the units, delete the table and the interface, reload.
    pub commands: Vec<Vec<String>>,
    /// K3s's own uninstaller, with `--k3s` when it is here.
    pub k3s_script: Option<String>,
    pub interface: String,
    /// `--k3s`: K3s was asked to go too.
    pub k3s: bool,
    /// Without `--k3s`: the configuration Proton wrote for K3s that stays ([`k3s_kept`]).
    pub k3s_kept: Vec<&'static str>,
}

impl Removal {
    /// Nothing of Proton's is installed here.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.files.is_empty() && self.k3s_script.is_none()
    }
}

fn unit_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// What is Proton's on this host; K3s's uninstaller only with `k3s`.
pub fn plan(root: &Root, k3s: bool) -> Removal {
    // The interface: the gateway's spec, else wg0 (a worker's default).
    let spec = Spec::load(root).ok();
    let interface = spec
        .as_ref()
        .map(|s| s.network.interface.clone())
        .unwrap_or_else(|| "wg0".into());
    let wg_quick = format!("/etc/wireguard/{interface}.conf");
    let mut files: Vec<String> = UNITS
        .iter()
        .chain(FILES.iter())
        .map(|p| p.to_string())
        .filter(|p| root.exists(p))
        .collect();
    // The wg-quick file only when Proton wrote it (its header says so).
    if root
        .read_optional(&wg_quick)
        .ok()
        .flatten()
        .is_some_and(|t| t.contains("proton"))
    {
        files.push(wg_quick.clone());
    }
    let dirs: Vec<String> = DIRS
        .iter()
        .map(|d| d.to_string())
        .filter(|d| root.exists(d))
        .collect();
    let mut commands = Vec::new();
    let mut units: Vec<String> = UNITS
        .iter()
        .filter(|u| root.exists(u))
        .map(|u| unit_name(u).to_owned())
        .collect();
    if files.contains(&wg_quick) {
        units.push(format!("wg-quick@{interface}.service"));
    }
    if !units.is_empty() {
        let mut c = vec!["systemctl".into(), "disable".into(), "--now".into()];
        c.extend(units);
        commands.push(c);
    }
    commands.push(vec![
        "nft".into(),
        "delete".into(),
        "table".into(),
        "inet".into(),
        "proton".into(),
    ]);
    commands.push(vec![
        "ip".into(),
        "link".into(),
        "delete".into(),
        "dev".into(),
        interface.clone(),
    ]);
    commands.push(vec!["systemctl".into(), "daemon-reload".into()]);
    if files.iter().any(|f| f == SYSCTL_PATH) {
        commands.push(vec!["sysctl".into(), "--system".into()]);
    }
    let k3s_script = k3s
        .then(|| {
            K3S_UNINSTALL
                .iter()
                .find(|s| root.exists(s))
                .map(|s| s.to_string())
        })
        .flatten();
    Removal {
        files,
        dirs,
        commands,
        k3s_script,
        interface,
        k3s,
        k3s_kept: k3s_kept(root),
    }
}

/// Whether `cmd` takes effect here: everything on `/`; under another root only what is
/// local to the named network namespace this process runs in (`nft`, `ip`; a lab node).
pub fn runs_here(root: &Root, cmd: &[String]) -> bool {
    root.is_system()
        || (matches!(cmd.first().map(String::as_str), Some("nft" | "ip"))
            && proton_core::host::in_named_netns())
}

/// The nftables table and the interface exist here (asked only where the command runs).
pub fn present(root: &Root, cmd: &[String]) -> bool {
    if !runs_here(root, cmd) {
        return true;
    }
    let probe: Vec<&str> = match cmd.first().map(String::as_str) {
        Some("nft") => vec!["list", "table", "inet", "proton"],
        Some("ip") => vec!["link", "show", "dev", cmd[4].as_str()],
        _ => return true,
    };
    SystemRunner
        .run(&cmd[0], &probe, &[], None)
        .is_ok_and(|o| o.success())
}

/// The configuration Proton wrote for K3s that stays with K3s (without `--k3s`).
pub fn k3s_kept(root: &Root) -> Vec<&'static str> {
    [
        CONFIG_PATH,
        SERVER_DEFAULTS_PATH,
        AGENT_DEFAULTS_PATH,
        MANIFESTS_DIR,
    ]
    .into_iter()
    .filter(|p| root.exists(p))
    .collect()
}

/// One step of the removal, as it happens.
#[derive(Debug)]
pub enum Step<'a> {
    /// A host command ran and succeeded.
    Ran(&'a [String]),
    /// Under a `--root` other than `/`: printed, not run.
    NotRun(&'a [String]),
    /// A host command failed; the removal goes on (a unit never enabled, an interface
    /// already gone).
    Failed {
        command: &'a [String],
        stderr: String,
    },
    /// A host command could not be started; the removal goes on.
    CouldNotRun {
        command: &'a [String],
        error: std::io::Error,
    },
    /// K3s's uninstaller ran (its path under the root).
    RanScript(String),
    /// Under a `--root` other than `/`: K3s's uninstaller, not run.
    ScriptNotRun(String),
    /// A file removed (its path under the root).
    Removed(std::path::PathBuf),
    /// A directory removed with everything in it.
    RemovedDir(std::path::PathBuf),
}

/// Why the removal stopped.
#[derive(Debug, thiserror::Error)]
pub enum UninstallError {
    #[error("could not run {path}: {source}")]
    ScriptNotStarted {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} failed: {stderr}")]
    ScriptFailed { path: String, stderr: String },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl UninstallError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            UninstallError::ScriptNotStarted { .. } => Some("run it yourself"),
            UninstallError::ScriptFailed { .. } => Some(
                "Proton's own files are kept; fix the cause and run `proton uninstall --k3s` again",
            ),
            _ => None,
        }
    }
}

const NOTHING_HERE: &str = "Nothing of Proton's is installed here.\n";

impl Removal {
    /// The host commands that have something to act on here ([`present`]).
    pub fn present_commands(&self, root: &Root) -> Vec<&Vec<String>> {
        self.commands.iter().filter(|c| present(root, c)).collect()
    }

    /// What `uninstall --dry-run` prints: each command and path it would remove.
    pub fn dry_run_report(&self, root: &Root, commands: &[&Vec<String>]) -> String {
        let mut out = String::new();
        for c in commands {
            out.push_str(&format!("would run: {}\n", c.join(" ")));
        }
        if let Some(s) = &self.k3s_script {
            out.push_str(&format!("would run: {s}   (K3s's own uninstaller)\n"));
        }
        for d in &self.dirs {
            out.push_str(&format!(
                "would remove: {}/ (and everything in it)\n",
                root.path(d).display()
            ));
        }
        for f in &self.files {
            out.push_str(&format!("would remove: {}\n", root.path(f).display()));
        }
        if self.is_empty() {
            out.push_str(NOTHING_HERE);
        }
        out.push_str("(dry run: nothing was changed)\n");
        out.push_str(&self.k3s_note(root));
        out
    }

    /// What `uninstall` prints once everything ran.
    pub fn done_report(&self, root: &Root) -> String {
        let mut out = if self.is_empty() {
            NOTHING_HERE.to_owned()
        } else {
            format!(
                "Proton is uninstalled (interface {}, firewall table inet proton, files above).\n",
                self.interface
            )
        };
        out.push_str(&self.k3s_note(root));
        out.push_str(
            "The proton binary itself stays: remove the package (apt remove proton) or the file.\n",
        );
        out
    }

    /// What becomes of K3s: its uninstaller is not here, or it stays with Proton's
    /// configuration for it.
    fn k3s_note(&self, root: &Root) -> String {
        let mut out = String::new();
        if self.k3s && self.k3s_script.is_none() {
            out.push_str(&format!(
                "K3s's uninstaller ({}) is not here: K3s is not installed, or not by its script.\n",
                K3S_UNINSTALL.join(" / ")
            ));
        }
        if !self.k3s && !self.k3s_kept.is_empty() {
            let kept: Vec<String> = self
                .k3s_kept
                .iter()
                .map(|p| root.path(p).display().to_string())
                .collect();
            out.push_str(&format!(
                "K3s stays, with the configuration Proton wrote for it ({}): `proton uninstall --k3s` removes K3s with its own uninstaller.\n",
                kept.join(", ")
            ));
        }
        out
    }
}

impl Step<'_> {
    /// The line `uninstall` prints for this step; a command that failed is a warning
    /// on stderr.
    pub fn line(&self) -> Line {
        match self {
            Step::Ran(c) => Line::Out(format!("ran: {}", c.join(" "))),
            Step::NotRun(c) => Line::Out(format!("not run (--root is not /): {}", c.join(" "))),
            Step::Failed { command, stderr } => {
                Line::Err(format!("warning: `{}` failed: {stderr}", command.join(" ")))
            }
            Step::CouldNotRun { command, error } => Line::Err(format!(
                "warning: could not run `{}`: {error}",
                command.join(" ")
            )),
            Step::RanScript(path) => Line::Out(format!("ran: {path}")),
            Step::ScriptNotRun(path) => Line::Out(format!("not run (--root is not /): {path}")),
            Step::Removed(p) => Line::Out(format!("removed {}", p.display())),
            Step::RemovedDir(p) => Line::Out(format!("removed {}/", p.display())),
        }
    }
}

/// Runs `commands` (those [`present`] here, from [`plan`]), then K3s's uninstaller, then
/// removes the files and directories; each step goes to `step` as it happens.
pub fn execute(
    root: &Root,
    r: &Removal,
    commands: &[&Vec<String>],
    step: &mut dyn FnMut(Step<'_>),
) -> Result<(), UninstallError> {
    for c in commands {
        let argv: Vec<&str> = c[1..].iter().map(String::as_str).collect();
        if !runs_here(root, c) {
            step(Step::NotRun(c));
            continue;
        }
        match SystemRunner.run(&c[0], &argv, &[], None) {
            Ok(o) if o.success() => step(Step::Ran(c)),
            Ok(o) => step(Step::Failed {
                command: c,
                stderr: o.stderr.trim().to_owned(),
            }),
            Err(error) => step(Step::CouldNotRun { command: c, error }),
        }
    }
    if let Some(s) = &r.k3s_script {
        let path = root.path(s).display().to_string();
        if root.is_system() {
            let out = SystemRunner.run(&path, &[], &[], None).map_err(|source| {
                UninstallError::ScriptNotStarted {
                    path: path.clone(),
                    source,
                }
            })?;
            if !out.success() {
                return Err(UninstallError::ScriptFailed {
                    path,
                    stderr: out.stderr.trim().to_owned(),
                });
            }
            step(Step::RanScript(path));
        } else {
            step(Step::ScriptNotRun(path));
        }
    }
    for f in &r.files {
        root.remove(f)?;
        step(Step::Removed(root.path(f)));
    }
    for d in &r.dirs {
        std::fs::remove_dir_all(root.path(d))?;
        step(Step::RemovedDir(root.path(d)));
    }
    for d in [
        "/etc/systemd/system/k3s.service.d",
        "/etc/systemd/system/k3s-agent.service.d",
    ] {
        // Only if Proton's drop-in was all it held.
        let _ = std::fs::remove_dir(root.path(d));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_lists_only_what_proton_wrote_here() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        root.create_dir_all("/etc/proton", 0o700).unwrap();
        root.write(GATEWAY_UNIT, b"[Unit]\n", 0o644).unwrap();
        root.write(SYSCTL_PATH, b"net.ipv4.ip_forward = 1\n", 0o644)
            .unwrap();
        root.write(
            "/etc/wireguard/wg0.conf",
            b"# written by proton join\n",
            0o600,
        )
        .unwrap();
        root.write("/etc/wireguard/wg1.conf", b"# someone else's\n", 0o600)
            .unwrap();
        let r = plan(&root, true);
        assert_eq!(r.dirs, ["/etc/proton"]);
        assert_eq!(
            r.files,
            [GATEWAY_UNIT, SYSCTL_PATH, "/etc/wireguard/wg0.conf"]
        );
        assert_eq!(r.k3s_script, None, "no K3s uninstaller here");
        assert_eq!(r.interface, "wg0");
        let commands: Vec<String> = r.commands.iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            commands,
            [
                "systemctl disable --now proton-gateway.service wg-quick@wg0.service",
                "nft delete table inet proton",
                "ip link delete dev wg0",
                "systemctl daemon-reload",
                "sysctl --system",
            ]
        );
        assert!(!r.is_empty());
        assert!(plan(&Root::new(tempfile::tempdir().unwrap().path()), false).is_empty());
    }
}
