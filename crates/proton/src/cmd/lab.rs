//! `proton lab`: the real binary, run inside the lab's namespaces.

use crate::cli::LabCommand;
use crate::output::failure;
use anyhow::Context;
use proton_lab::{Lab, LabConfig};
use std::time::{Duration, Instant};

fn exe() -> anyhow::Result<String> {
    Ok(std::env::current_exe()?.display().to_string())
}

fn root_of(lab: &Lab, node: &str) -> String {
    lab.node_root(node).display().to_string()
}

/// Runs `proton --root <node root> args…` in a node and returns stdout, or fails with
/// the command's stderr.
pub fn proton_in(
    lab: &Lab,
    node: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<String> {
    let exe = exe()?;
    let root = root_of(lab, node);
    let mut argv = vec![exe.as_str(), "--root", root.as_str()];
    argv.extend_from_slice(args);
    let out = lab.exec(node, &argv, stdin)?;
    if !out.status.success() {
        anyhow::bail!(
            "`proton {}` in {node} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(failure(
        format!("timed out waiting for {what}"),
        "see the logs under /run/proton-lab/<lab>/",
    ))
}

/// The lab `--name` defaults to.
const DEFAULT_LAB: &str = "proton";

fn step(msg: &str) {
    eprintln!("lab: {msg}");
}

/// Starts the gateway daemon in the `gw` node and waits until it answers.
pub fn start_gateway(lab: &mut Lab) -> anyhow::Result<()> {
    let exe = exe()?;
    let root = root_of(lab, "gw");
    lab.spawn(
        "gw",
        "gateway",
        &[
            &exe,
            "--root",
            &root,
            "gateway",
            "run",
            "--backend",
            "userspace",
        ],
    )?;
    let sock = lab.node_root("gw").join("run/proton/admin.sock");
    wait_for("the gateway daemon", Duration::from_secs(20), || {
        sock.exists()
    })
}

/// Invites `worker` on the gateway and joins it with only the invitation string; then
/// starts its agent.
pub fn join_worker(lab: &mut Lab, worker: &str) -> anyhow::Result<()> {
    // `invite --no-qr` prints the invitation alone: its whole stdout is join's stdin,
    // as in `proton invite w1 --no-qr | ssh w1 proton join`.
    let invitation = proton_in(lab, "gw", &["invite", worker, "--no-qr"], None)?;
    if !invitation.starts_with("proton1-") {
        anyhow::bail!("`proton invite` printed no invitation: {invitation:?}");
    }
    proton_in(lab, worker, &["join"], Some(&invitation))?;
    let exe = exe()?;
    let root = root_of(lab, worker);
    lab.spawn(worker, "agent", &[&exe, "--root", &root, "agent"])?;
    Ok(())
}

/// Gives client `name` a `proton client add` config and runs it with wireguard-go.
pub fn connect_client(lab: &mut Lab, name: &str) -> anyhow::Result<String> {
    let conf = proton_in(lab, "gw", &["client", "add", name], None)?;
    let text: String = conf
        .lines()
        .take_while(|l| !l.contains('█') && !l.contains('▀') && !l.contains('▄'))
        .collect::<Vec<_>>()
        .join("\n");
    let parsed = proton_core::wgconf::WgQuickConfig::parse(&text)
        .context("parsing the printed client config")?;
    let dir = Lab::dir(&lab.name).join(name);
    let path = dir.join("wg0.conf");
    proton_core::host::write_atomic(&path, parsed.render().as_bytes(), 0o600)?;
    lab.spawn(
        name,
        "wireguard-go",
        &["env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "wg0"],
    )?;
    let sock = dir.join("wireguard/wg0.sock");
    wait_for("wireguard-go", Duration::from_secs(10), || sock.exists())?;
    let strip = dir.join("wg0.setconf");
    proton_core::host::write_atomic(&strip, parsed.render_wg_setconf().as_bytes(), 0o600)?;
    let address = parsed.interface.addresses[0].to_string();
    for argv in [
        vec!["wg", "setconf", "wg0", strip.to_str().unwrap()],
        vec!["ip", "addr", "add", &address, "dev", "wg0"],
        vec!["ip", "link", "set", "wg0", "up"],
    ] {
        let out = lab.exec(name, &argv, None)?;
        if !out.status.success() {
            anyhow::bail!(
                "{argv:?} in {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(address)
}

/// What `lab up` runs, and the Debian package each comes from.
const LAB_TOOLS: [(&str, &str); 5] = [
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("wg", "wireguard-tools"),
    ("wireguard-go", "wireguard-go"),
    ("sysctl", "procps"),
];

fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Checks every tool before anything is made, so a missing one is named up front with
/// the line that installs it, instead of a timeout half-way through.
fn check_tools(clients: usize) -> anyhow::Result<()> {
    let missing: Vec<(&str, &str)> = LAB_TOOLS
        .iter()
        .copied()
        // Only the phone stand-ins run wireguard-go.
        .filter(|(tool, _)| clients > 0 || *tool != "wireguard-go")
        .filter(|(tool, _)| !on_path(tool))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let tools: Vec<&str> = missing.iter().map(|(t, _)| *t).collect();
    let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    pkgs.dedup();
    Err(failure(
        format!("the lab needs {} (not found on PATH)", tools.join(", ")),
        format!("apt-get install -y {}", pkgs.join(" ")),
    ))
}

pub fn up(name: &str, workers: usize, spare: usize, clients: usize) -> anyhow::Result<Lab> {
    check_tools(clients)?;
    let cfg = LabConfig {
        name: name.to_string(),
        workers: workers + spare,
        clients,
    };
    let mut lab = Lab::up(&cfg, &mut |m| step(m))?;
    let result = (|| -> anyhow::Result<()> {
        step("gateway: proton init");
        let endpoint = format!("{}:51820", lab.gateway_public_ip());
        proton_in(&lab, "gw", &["init", "--endpoint", &endpoint], None)?;
        step("gateway: proton gateway run (userspace WireGuard)");
        start_gateway(&mut lab)?;
        for i in 1..=workers {
            let w = format!("w{i}");
            step(&format!(
                "{w}: proton invite on the gateway, proton join on the worker"
            ));
            join_worker(&mut lab, &w)?;
        }
        for i in 1..=clients {
            let c = format!("c{i}");
            step(&format!("{c}: proton client add, run by wireguard-go"));
            connect_client(&mut lab, &c)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = Lab::down(name);
        return Err(e);
    }
    Ok(lab)
}

pub fn run(cmd: LabCommand) -> anyhow::Result<()> {
    match cmd {
        LabCommand::Up {
            workers,
            clients,
            spare_workers,
            name,
        } => {
            let lab = up(&name, workers, spare_workers, clients)?;
            println!(
                "Lab `{name}` is up: gateway at {} (public), workers behind NAT {}.",
                lab.gateway_public_ip(),
                lab.nat_public_ip()
            );
            // Every hint names this lab, so it can be pasted as is.
            let n = if name == DEFAULT_LAB {
                String::new()
            } else {
                format!(" --name {name}")
            };
            let mut hints = Vec::new();
            if workers > 0 {
                hints.push(format!("proton lab exec{n} w1 -- ping -c 3 10.7.7.1"));
                hints.push(format!("proton lab exec{n} w1 -- proton status"));
            }
            hints.push(format!("proton lab exec{n} gw -- wg show"));
            hints.push(format!("proton lab exec{n} gw -- proton peer list"));
            hints.push(format!("proton lab status{n};  proton lab down{n}"));
            for (i, h) in hints.iter().enumerate() {
                println!("{}{h}", if i == 0 { "Try:  " } else { "      " });
            }
            Ok(())
        }
        LabCommand::Status { name } => {
            let lab = Lab::load(&name)?;
            println!("{:<6} {:<10} {:<18} NETNS", "NODE", "ROLE", "ADDRESS");
            for n in &lab.nodes {
                println!(
                    "{:<6} {:<10} {:<18} {}",
                    n.name,
                    format!("{:?}", n.role).to_lowercase(),
                    n.address.clone().unwrap_or_default(),
                    n.netns
                );
            }
            println!();
            for (node, pid, what, alive) in lab.status() {
                println!(
                    "{node:<6} {what:<14} pid {pid:<8} {}",
                    if alive { "running" } else { "DEAD" }
                );
            }
            if lab.node("gw").is_some() {
                println!();
                print!(
                    "{}",
                    // The gateway's own view: every peer with its liveness.
                    proton_in(&lab, "gw", &["status"], None).unwrap_or_default()
                );
            }
            Ok(())
        }
        LabCommand::Exec {
            node,
            name,
            stdin,
            command,
        } => {
            let lab = Lab::load(&name)?;
            // Inside a node, `proton` is this binary and its root is the node's, so
            // `proton lab exec w1 -- proton status` asks w1's own Proton.
            let exe = std::env::current_exe()?;
            let bin_dir = exe.parent().context("the proton binary's directory")?;
            let mut path = std::ffi::OsString::from(bin_dir);
            if let Some(old) = std::env::var_os("PATH") {
                path.push(":");
                path.push(old);
            }
            let path = format!("PATH={}", path.to_string_lossy());
            let node_root = format!("PROTON_ROOT={}", root_of(&lab, &node));
            let mut argv: Vec<&str> = vec!["env", &path, &node_root];
            argv.extend(command.iter().map(String::as_str));
            // Pass standard input through only when asked (e.g. an invitation for
            // `proton join`): an open but silent stdin must not hang the command.
            let mut input = String::new();
            if stdin {
                use std::io::Read;
                std::io::stdin().read_to_string(&mut input)?;
            }
            let out = lab.exec(&node, &argv, Some(&input))?;
            use std::io::Write;
            std::io::stdout().write_all(&out.stdout)?;
            std::io::stderr().write_all(&out.stderr)?;
            if !out.status.success() {
                std::process::exit(out.status.code().unwrap_or(1));
            }
            Ok(())
        }
        LabCommand::Down { name } => {
            Lab::down(&name)?;
            println!("Lab `{name}` removed.");
            Ok(())
        }
    }
}
