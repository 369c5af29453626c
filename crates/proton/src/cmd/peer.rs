//! `proton peer list|remove|rename`.

use crate::cli::PeerCommand;
use crate::cmd::gateway::notify_daemon;
use crate::context::GatewayContext;
use crate::output::bad_input;
use proton_core::host::Root;
use proton_store::PeerName;

pub fn run(root: &Root, cmd: PeerCommand) -> anyhow::Result<()> {
    let mut ctx = GatewayContext::load(root)?;
    match cmd {
        PeerCommand::List { json } => {
            let peers = ctx.store.list_peers(false)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&peers)?);
                return Ok(());
            }
            println!(
                "{:<20} {:<8} {:<16} {:<8} PUBLIC KEY",
                "NAME", "ROLE", "ADDRESS", "STATE"
            );
            for p in peers {
                let state = format!("{:?}", p.state).to_lowercase();
                println!(
                    "{:<20} {:<8} {:<16} {:<8} {}",
                    p.name, p.role, p.address, state, p.public_key
                );
            }
        }
        PeerCommand::Remove { name } => {
            let peer = ctx.store.remove_peer(&name, "cli")?;
            println!(
                "Removed `{}` ({}); its address is free again.",
                peer.name, peer.address
            );
            notify_daemon(root);
        }
        PeerCommand::Rename { old, new } => {
            let new: PeerName = new
                .parse()
                .map_err(|e: proton_store::StoreError| bad_input(e.to_string(), None))?;
            let peer = ctx.store.rename_peer(&old, &new, "cli")?;
            println!("Renamed `{old}` to `{}`.", peer.name);
        }
    }
    Ok(())
}
