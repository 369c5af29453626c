//! `proton peer list|remove|rename` (`proton_ops::peers`).

use crate::cli::PeerCommand;
use crate::cmd::gateway::notify_daemon;
use crate::context::{load_gateway, print_deleted};
use crate::output::with_hint;
use proton_core::host::Root;
use proton_ops::peers::PeerError;

pub fn run(root: &Root, cmd: PeerCommand) -> anyhow::Result<()> {
    let fail = |e: PeerError| with_hint(&e, e.hint(), e.is_bad_input());
    let gw = &mut load_gateway(root)?;
    match cmd {
        PeerCommand::List { json } => {
            let inventory = gw
                .inventory(proton_store::system_now())
                .map_err(PeerError::from)
                .map_err(fail)?;
            if json {
                println!("{}", inventory.to_json()?);
            } else {
                print!("{inventory}");
            }
        }
        PeerCommand::Remove { name } => {
            let removal = gw.remove_peer(&name).map_err(fail)?;
            println!("{removal}");
            if removal.changed() {
                notify_daemon(root);
            }
            if let Some(node) = removal.node() {
                let still = gw.forget_removed_node(node, &mut print_deleted());
                if let Some(warning) = still.map_err(fail)? {
                    eprintln!("{warning}");
                }
            }
        }
        PeerCommand::Rename { old, new } => {
            let peer = gw.rename_peer(&old, &new).map_err(fail)?;
            println!("Renamed `{old}` to `{}`.", peer.name);
        }
    }
    Ok(())
}
