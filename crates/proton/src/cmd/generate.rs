//! `proton generate`: what the Debian package ships beside the binary — man pages,
//! shell completions and systemd units — generated from this binary, so they cannot
//! drift from `--help` or from the units `init`/`join`/`apply` write.

use crate::cli::{Cli, GenerateCommand};
use crate::paths::PACKAGED_BIN;
use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::Path;

pub fn run(cmd: GenerateCommand) -> anyhow::Result<()> {
    let (dir, files) = match cmd {
        GenerateCommand::Man { dir } => {
            let files = man_pages()?;
            (dir, files)
        }
        GenerateCommand::Completions { dir } => (dir, completions()?),
        GenerateCommand::Units { dir } => (dir, units()),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in files {
        let path = dir.join(&name);
        write(&path, &bytes)?;
        println!("{}", path.display());
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The command as packaged: hidden commands stay out of the pages.
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// `proton.1`, then `proton-<sub>.1` for every visible subcommand, nested ones too
/// (`proton-gateway-run.1`), as clap_mangen names them.
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        let man = clap_mangen::Man::new(cmd.clone())
            .manual("Proton Manual")
            .source(format!("proton {}", env!("CARGO_PKG_VERSION")));
        let mut page = Vec::new();
        man.render(&mut page)?;
        out.push((man.get_filename(), page));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&command(), &mut out)?;
    Ok(out)
}

/// The file name each shell's completion loader looks for.
pub const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "proton"),
    (Shell::Zsh, "_proton"),
    (Shell::Fish, "proton.fish"),
];

pub fn completions() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (shell, name) in COMPLETIONS {
        let mut cmd = Cli::command();
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd, "proton", &mut text);
        out.push((name.to_string(), text));
    }
    Ok(out)
}

pub fn units() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "proton-gateway.service".into(),
            proton_ops::init::gateway_unit(PACKAGED_BIN).into_bytes(),
        ),
        (
            "proton-agent.service".into(),
            proton_join::units::agent_unit(PACKAGED_BIN).into_bytes(),
        ),
        (
            "proton-firewall.service".into(),
            proton_k3s::gateway::firewall_unit().into_bytes(),
        ),
    ]
}
