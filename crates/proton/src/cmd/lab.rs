//! `proton lab`: the real binary, run inside the lab's namespaces. The scenario, and
//! what it says, is `proton_lab::scenario`'s; this prints.

use crate::cli::LabCommand;
use crate::output::with_hint;
use proton_lab::Lab;
use proton_lab::scenario::{self, ScenarioError};

fn explain(e: ScenarioError) -> anyhow::Error {
    with_hint(&e, e.hint(), false)
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
                eprintln!("lab: {m}")
            })
            .map_err(explain)?;
            print!("{}", scenario::up_report(&lab, workers));
            Ok(())
        }
        LabCommand::Status { name } => {
            let lab = Lab::load(&name)?;
            let exe = std::env::current_exe().ok();
            print!("{}", scenario::status_report(exe.as_deref(), &lab));
            Ok(())
        }
        LabCommand::Exec {
            node,
            name,
            stdin,
            command,
        } => {
            let lab = Lab::load(&name)?;
            // Pass standard input through only when asked (e.g. an invitation for
            // `proton join`): an open but silent stdin must not hang the command.
            let mut input = String::new();
            if stdin {
                use std::io::Read;
                std::io::stdin().read_to_string(&mut input)?;
            }
            let exe = std::env::current_exe()?;
            let out = scenario::exec(&exe, &lab, &node, &command, Some(&input)).map_err(explain)?;
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
