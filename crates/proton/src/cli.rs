//! The command line, declared with clap's derive API. Every command's `--help` says
//! what it does, where it runs, and what to run next.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "proton",
    version,
    about = "Turn one VPS into the WireGuard gateway of a K3s cluster whose workers sit behind NAT",
    long_about = "Proton turns one VPS into the WireGuard VPN server, K3s control plane and \
traffic entry point of a cluster whose other machines sit behind NAT.\n\n\
On the VPS:   proton init --endpoint vps.example.com, then proton apply\n\
Invite:       proton invite home-1   (prints a one-line invitation and a QR code)\n\
On a worker:  proton join <INVITATION>\n\
Try it all on one machine first: proton lab up --workers 2",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Treat DIR as the filesystem root for every file Proton reads or writes
    /// (`/etc/proton/proton.toml` becomes `DIR/etc/proton/proton.toml`). For tests,
    /// rendering a host into a directory, and the lab.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "PROTON_ROOT",
        default_value = "/"
    )]
    pub root: PathBuf,
    /// More log output (-v info, -vv debug, -vvv trace). PROTON_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the gateway: the spec, the gateway's key pair and the state database.
    ///
    /// Run once on the VPS. Writes /etc/proton/proton.toml (edit it afterwards),
    /// /etc/proton/gateway.key (0600, made here from the OS RNG, never leaves this
    /// machine) and /var/lib/proton/proton.db. Refuses to replace an existing gateway
    /// unless --force (the old files are kept beside the new ones).
    Init(InitArgs),
    /// Print configuration rendered from the spec and the state database.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script, e.g. `proton completions bash > /etc/bash_completion.d/proton`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The gateway's public address as workers will dial it: a DNS name, an IPv4 address
    /// or [IPv6], with an optional :PORT (default 51820).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub endpoint: String,
    /// The gateway's name (also its Kubernetes node name).
    #[arg(long, default_value = "proton")]
    pub name: String,
    /// The VPN network; the gateway takes its first host address.
    #[arg(long, value_name = "CIDR", default_value = "10.7.7.0/24")]
    pub cidr: String,
    /// Replace an existing gateway (new key: every peer must rejoin). The old files are
    /// renamed with a `.replaced-<time>` suffix, never deleted.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The gateway's wg-quick(8) configuration (contains the private key: it is for
    /// `wg-quick` on this machine, or to inspect with `wg-quick strip`).
    Wireguard,
}
