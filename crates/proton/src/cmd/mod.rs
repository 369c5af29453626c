//! One module per command group; each turns parsed arguments into library calls.

mod apply;
mod backup;
mod client;
mod config;
mod dashboard;
mod expose;
pub mod gateway;
mod generate;
mod health;
mod init;
mod invite;
mod join;
mod join_k3s;
mod kubeconfig;
mod lab;
mod peer;
mod uninstall;

use crate::cli::{Cli, Command, GatewayCommand};
use clap::CommandFactory;
use proton_core::host::{Host, Root};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let root = Root::new(&cli.global.root);
    // Whether host-wide commands run or are printed is decided here, once.
    let host = Host::new(root.clone());
    match cli.command {
        Command::Init(args) => init::run(&root, &args),
        Command::Config(c) => config::run(&root, c),
        Command::Gateway(GatewayCommand::Run(args)) => gateway::run(&root, &args),
        Command::Invite(args) => invite::run(&root, &args),
        Command::Join(args) => join::join(&root, &args),
        Command::Agent(args) => join::agent(&root, &args),
        Command::Peer(c) => peer::run(&root, c),
        Command::Client(c) => client::run(&root, c),
        Command::Dashboard(c) => dashboard::run(&root, c),
        Command::Expose(args) => expose::run(&root, &args),
        Command::Lab(c) => lab::run(c),
        Command::Status(args) => health::status(&root, &args),
        Command::Doctor(args) => health::doctor(&root, &args),
        Command::Reresolve(args) => health::reresolve(&root, &args),
        Command::Apply(args) => apply::run(&host, &args),
        Command::Kubeconfig(args) => kubeconfig::run(&root, &args),
        Command::Backup(args) => backup::backup(&root, &args),
        Command::Restore(args) => backup::restore(&root, &args),
        Command::Uninstall(args) => uninstall::run(&root, &args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "proton", &mut std::io::stdout());
            Ok(())
        }
        Command::Generate(c) => generate::run(c),
    }
}
