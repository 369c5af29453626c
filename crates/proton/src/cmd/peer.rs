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
            if peer.role == proton_store::Role::Worker {
                forget_k3s_node(&ctx, peer.name.as_str())?;
            }
        }
        PeerCommand::Rename { old, new } => {
            let new: PeerName = new
                .parse()
                .map_err(|e: proton_store::StoreError| bad_input(e.to_string(), None))?;
            // A worker that got K3s join data is a Node named after the peer, and K8s
            // cannot rename a Node: renaming only here would make `peer remove` forget
            // the wrong node later.
            let worker = ctx
                .store
                .peer_by_name(&old)?
                .is_some_and(|p| p.role == proton_store::Role::Worker);
            if worker && proton_k3s::tokens::recorded_token_id(root, &old)?.is_some() {
                return Err(bad_input(
                    format!(
                        "`{old}` joined K3s as node `{old}`, and Kubernetes cannot rename a node"
                    ),
                    Some(format!(
                        "keep the name, or `proton peer remove {old}` and invite the machine again as `{new}`"
                    )),
                ));
            }
            let peer = ctx.store.rename_peer(&old, &new, "cli")?;
            println!("Renamed `{old}` to `{}`.", peer.name);
        }
    }
    Ok(())
}

/// The cluster side of removing a worker (after its key is already off the tunnel, so a
/// failure here never leaves a revoked machine connected): its Node, its node-password
/// secret (or a rebuilt machine could never rejoin under that name) and its bootstrap
/// token. Skipped when this gateway runs no K3s.
fn forget_k3s_node(ctx: &GatewayContext, name: &str) -> anyhow::Result<()> {
    let root = &ctx.root;
    if proton_gateway::k3s::server_version(root, &ctx.spec).is_none() {
        return Ok(());
    }
    let k3s = proton_gateway::k3s::k3s_program(root);
    match proton_k3s::tokens::forget_node(&proton_k3s::SystemRunner, root, &k3s, name) {
        Ok(done) => {
            println!(
                "Deleted K8s node `{name}` and its secret {name}.node-password.k3s{}.",
                match &done.token_id {
                    Some(id) => format!(", and its bootstrap token {id}"),
                    None => String::new(),
                }
            );
            if let Some(w) = done.token_warning {
                eprintln!(
                    "warning: the bootstrap token could not be deleted (expired tokens are already gone): {w}"
                );
            }
            Ok(())
        }
        Err(e) => Err(crate::output::failure(
            format!("`{name}` is off the tunnel, but its cluster objects remain: {e}"),
            format!(
                "when K3s answers again: k3s kubectl delete node {name}; k3s kubectl -n kube-system delete secret {name}.node-password.k3s"
            ),
        )),
    }
}
