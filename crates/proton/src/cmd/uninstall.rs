//! `proton uninstall [--dry-run] [--k3s]`: remove what Proton wrote, and nothing else.
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
//! Under `--root DIR` other than `/`, files are removed under DIR and host commands are
//! printed as "not run".

use crate::cli::UninstallArgs;
use crate::output::failure;
use proton_core::host::Root;
use proton_core::spec::Spec;
use proton_k3s::config::{
    AGENT_DEFAULTS_PATH, AGENT_DROPIN_PATH, CONFIG_PATH, PROFILE_PATH, SERVER_DEFAULTS_PATH,
    SERVER_DROPIN_PATH, SYSCTL_PATH,
};
use proton_k3s::gateway::{FIREWALL_UNIT_PATH, MANIFESTS_DIR};
use proton_k3s::{Runner, SystemRunner};

/// Proton's own directories: removed with everything in them.
pub const DIRS: [&str; 2] = ["/etc/proton", "/var/lib/proton"];
/// The systemd units Proton writes.
pub const UNITS: [&str; 5] = [
    crate::paths::GATEWAY_UNIT,
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
const K3S_UNINSTALL: [&str; 2] = [
    "/usr/local/bin/k3s-uninstall.sh",
    "/usr/local/bin/k3s-agent-uninstall.sh",
];

struct Removal {
    files: Vec<String>,
    dirs: Vec<String>,
    commands: Vec<Vec<String>>,
    k3s_script: Option<String>,
    interface: String,
}

fn unit_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn plan(root: &Root, args: &UninstallArgs) -> Removal {
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
    let k3s_script = args
        .k3s
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
    }
}

/// The nftables table and the interface exist on this host (only asked on `/`).
fn present(root: &Root, cmd: &[String]) -> bool {
    if !root.is_system() {
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

pub fn run(root: &Root, args: &UninstallArgs) -> anyhow::Result<()> {
    let r = plan(root, args);
    let commands: Vec<&Vec<String>> = r.commands.iter().filter(|c| present(root, c)).collect();
    let k3s_kept: Vec<&str> = [
        CONFIG_PATH,
        SERVER_DEFAULTS_PATH,
        AGENT_DEFAULTS_PATH,
        MANIFESTS_DIR,
    ]
    .into_iter()
    .filter(|p| root.exists(p))
    .collect();
    if args.dry_run {
        for c in &commands {
            println!("would run: {}", c.join(" "));
        }
        if let Some(s) = &r.k3s_script {
            println!("would run: {s}   (K3s's own uninstaller)");
        }
        for d in &r.dirs {
            println!(
                "would remove: {}/ (and everything in it)",
                root.path(d).display()
            );
        }
        for f in &r.files {
            println!("would remove: {}", root.path(f).display());
        }
        if r.dirs.is_empty() && r.files.is_empty() && r.k3s_script.is_none() {
            println!("Nothing of Proton's is installed here.");
        }
        println!("(dry run: nothing was changed)");
        note_k3s(root, args, &r, &k3s_kept);
        return Ok(());
    }
    for c in &commands {
        let argv: Vec<&str> = c[1..].iter().map(String::as_str).collect();
        if !root.is_system() {
            println!("not run (--root is not /): {}", c.join(" "));
            continue;
        }
        match SystemRunner.run(&c[0], &argv, &[], None) {
            Ok(o) if o.success() => println!("ran: {}", c.join(" ")),
            // Going on: a unit that was never enabled, an interface already gone.
            Ok(o) => eprintln!("warning: `{}` failed: {}", c.join(" "), o.stderr.trim()),
            Err(e) => eprintln!("warning: could not run `{}`: {e}", c.join(" ")),
        }
    }
    if let Some(s) = &r.k3s_script {
        let path = root.path(s).display().to_string();
        if root.is_system() {
            let out = SystemRunner
                .run(&path, &[], &[], None)
                .map_err(|e| failure(format!("could not run {path}: {e}"), "run it yourself"))?;
            if !out.success() {
                return Err(failure(
                    format!("{path} failed: {}", out.stderr.trim()),
                    "Proton's own files are kept; fix the cause and run `proton uninstall --k3s` again",
                ));
            }
            println!("ran: {path}");
        } else {
            println!("not run (--root is not /): {path}");
        }
    }
    for f in &r.files {
        root.remove(f)?;
        println!("removed {}", root.path(f).display());
    }
    for d in &r.dirs {
        std::fs::remove_dir_all(root.path(d))?;
        println!("removed {}/", root.path(d).display());
    }
    for d in [
        "/etc/systemd/system/k3s.service.d",
        "/etc/systemd/system/k3s-agent.service.d",
    ] {
        // Only if Proton's drop-in was all it held.
        let _ = std::fs::remove_dir(root.path(d));
    }
    if r.dirs.is_empty() && r.files.is_empty() && r.k3s_script.is_none() {
        println!("Nothing of Proton's is installed here.");
    } else {
        println!(
            "Proton is uninstalled (interface {}, firewall table inet proton, files above).",
            r.interface
        );
    }
    note_k3s(root, args, &r, &k3s_kept);
    println!("The proton binary itself stays: remove the package (apt remove proton) or the file.");
    Ok(())
}

fn note_k3s(root: &Root, args: &UninstallArgs, r: &Removal, kept: &[&str]) {
    if args.k3s && r.k3s_script.is_none() {
        println!(
            "K3s's uninstaller ({}) is not here: K3s is not installed, or not by its script.",
            K3S_UNINSTALL.join(" / ")
        );
    }
    if !args.k3s && !kept.is_empty() {
        println!(
            "K3s stays, with the configuration Proton wrote for it ({}): `proton uninstall --k3s` removes K3s with its own uninstaller.",
            kept.iter()
                .map(|p| root.path(p).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
