//! `proton lab`: the real binary, run inside the lab's namespaces. The scenario is
//! `proton_lab::scenario`'s; this prints.

use crate::cli::LabCommand;
use crate::output::failure;
use anyhow::Context;
use proton_lab::Lab;
use proton_lab::scenario::{self, ScenarioError};

/// The lab `--name` defaults to.
const DEFAULT_LAB: &str = "proton";

fn step(msg: &str) {
    eprintln!("lab: {msg}");
}

fn explain(e: ScenarioError) -> anyhow::Error {
    match e.hint() {
        Some(hint) => failure(e.to_string(), hint),
        None => e.into(),
    }
}

pub fn run(cmd: LabCommand) -> anyhow::Result<()> {
    match cmd {
        LabCommand::Up {
            workers,
            clients,
            spare_workers,
            name,
        } => {
            let exe = std::env::current_exe()?;
            let lab = scenario::up(&exe, &name, workers, spare_workers, clients, &mut |m| {
                step(m)
            })
            .map_err(explain)?;
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
                    std::env::current_exe()
                        .ok()
                        .and_then(|exe| {
                            scenario::proton_in(&exe, &lab, "gw", &["status"], None).ok()
                        })
                        .unwrap_or_default()
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
            let node_root = format!("PROTON_ROOT={}", lab.node_root(&node).display());
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
