//! `proton uninstall [--dry-run] [--k3s]`: what is removed, and how, is
//! `proton_ops::uninstall`'s; this prints each step.

use crate::cli::UninstallArgs;
use crate::output::failure;
use proton_core::host::Root;
use proton_ops::uninstall::{K3S_UNINSTALL, Removal, Step, execute, k3s_kept, plan, present};

pub fn run(root: &Root, args: &UninstallArgs) -> anyhow::Result<()> {
    let r = plan(root, args.k3s);
    let commands: Vec<&Vec<String>> = r.commands.iter().filter(|c| present(root, c)).collect();
    let k3s_kept = k3s_kept(root);
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
        if r.is_empty() {
            println!("Nothing of Proton's is installed here.");
        }
        println!("(dry run: nothing was changed)");
        note_k3s(root, args, &r, &k3s_kept);
        return Ok(());
    }
    execute(root, &r, &commands, &mut |s| match s {
        Step::Ran(c) => println!("ran: {}", c.join(" ")),
        Step::NotRun(c) => println!("not run (--root is not /): {}", c.join(" ")),
        Step::Failed { command, stderr } => {
            eprintln!("warning: `{}` failed: {stderr}", command.join(" "))
        }
        Step::CouldNotRun { command, error } => {
            eprintln!("warning: could not run `{}`: {error}", command.join(" "))
        }
        Step::RanScript(path) => println!("ran: {path}"),
        Step::ScriptNotRun(path) => println!("not run (--root is not /): {path}"),
        Step::Removed(p) => println!("removed {}", p.display()),
        Step::RemovedDir(p) => println!("removed {}/", p.display()),
    })
    .map_err(|e| match e.hint() {
        Some(hint) => failure(e.to_string(), hint),
        None => anyhow::Error::from(e),
    })?;
    if r.is_empty() {
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
