//! `proton peer list|remove|rename`.

use crate::cli::PeerCommand;
use crate::cmd::gateway::notify_daemon;
use crate::cmd::node_cleanup;
use crate::context::GatewayContext;
use crate::output::bad_input;
use proton_core::host::Root;
use proton_store::PeerName;

pub fn run(root: &Root, cmd: PeerCommand) -> anyhow::Result<()> {
    let mut ctx = GatewayContext::load(root)?;
    match cmd {
        PeerCommand::List { json } => {
            let peers = ctx.store.list_peers(false)?;
            let pending = ctx.store.node_cleanups()?;
            let grants = ctx.store.grants_by_name()?;
            let allows = ctx.store.allows_by_name()?;
            let allows_of = |p: &proton_store::Peer| -> Vec<String> {
                allows
                    .get(p.name.as_str())
                    .map(|a| a.iter().map(ToString::to_string).collect())
                    .unwrap_or_default()
            };
            let reach = |p: &proton_store::Peer| {
                proton_k3s::firewall::reach(
                    p.role.as_str(),
                    p.state == proton_store::PeerState::Invited,
                    grants
                        .get(p.name.as_str())
                        .is_some_and(|g| g.contains(&"admin")),
                    &allows_of(p),
                )
            };
            if json {
                // Still one array (scripts keep working); a removed worker whose node is
                // not deleted yet is an entry in state `removing`, with no address.
                let mut rows = serde_json::to_value(&peers)?;
                let now = proton_store::system_now();
                if let Some(rows) = rows.as_array_mut() {
                    // `disabled_at`/`expires_at` are in each row; `expired` says whether
                    // the daemon has cut the peer off by now.
                    for (row, p) in rows.iter_mut().zip(&peers) {
                        row["expired"] = p.expired(now).into();
                        row["reach"] = reach(p).into();
                        row["grants"] = serde_json::json!(
                            grants.get(p.name.as_str()).cloned().unwrap_or_default()
                        );
                        row["allow"] = serde_json::json!(allows_of(p));
                    }
                    for c in &pending {
                        rows.push(serde_json::json!({
                            "name": c.name,
                            "role": "worker",
                            "state": "removing",
                            "address": null,
                            "public_key": null,
                            "node_cleanup": c,
                        }));
                    }
                }
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!(
                "{:<20} {:<8} {:<16} {:<8} {:<16} {:<44} REACH",
                "NAME", "ROLE", "ADDRESS", "STATE", "EXPIRES (UTC)", "PUBLIC KEY"
            );
            let now = proton_store::system_now();
            for p in &peers {
                let state = if p.disabled_at.is_some() {
                    "disabled".to_string()
                } else if p.expired(now) {
                    "expired".to_string()
                } else {
                    format!("{:?}", p.state).to_lowercase()
                };
                let expires = p
                    .expires_at
                    .map(crate::cmd::client::utc)
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<20} {:<8} {:<16} {:<8} {:<16} {:<44} {}",
                    p.name,
                    p.role,
                    p.address,
                    state,
                    expires,
                    p.public_key.to_base64(),
                    reach(p)
                );
            }
            print_pending(&pending);
        }
        PeerCommand::Remove { name } => {
            // Running the same command again after its cleanup failed finishes it.
            if ctx.store.peer_by_name(&name)?.is_none() && ctx.store.node_cleanup_pending(&name)? {
                println!("`{name}` is already removed; deleting its K8s node again.");
                return forget_k3s_nodes(&mut ctx, &name);
            }
            // With K3s here, a worker's node is recorded as pending in the removal's own
            // transaction, so a K3s outage (or a crash) below cannot lose the cleanup.
            let k3s = proton_gateway::k3s::server_version(root, &ctx.spec).is_some();
            let peer = if k3s {
                ctx.store.remove_peer_queue_node_cleanup(&name, "cli")?
            } else {
                ctx.store.remove_peer(&name, "cli")?
            };
            println!(
                "Removed `{}` ({}); its address is free again.",
                peer.name, peer.address
            );
            notify_daemon(root);
            if k3s {
                forget_k3s_nodes(&mut ctx, peer.name.as_str())?;
            }
        }
        PeerCommand::Rename { old, new } => {
            let new: PeerName = new
                .parse()
                .map_err(|e: proton_store::InvalidPeer| bad_input(e.to_string(), None))?;
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

/// The cluster side of removing a worker, after its key is already off the tunnel (so a
/// failure here never leaves a revoked machine connected): its Node, its node-password
/// secret (or a rebuilt machine could never rejoin under that name) and its bootstrap
/// token. Older pending cleanups are retried after it. A failure for `name` itself is
/// the command's error; one for an older record is a warning (it stays pending).
fn forget_k3s_nodes(ctx: &mut GatewayContext, name: &str) -> anyhow::Result<()> {
    let out = node_cleanup::run_pending(ctx, Some(name), false)?;
    let note = out.left_note();
    match out.failed {
        Some((failed, e)) if failed == name => Err(crate::output::failure(
            format!("`{name}` is off the tunnel, but deleting its K8s node failed{note}: {e}"),
            format!(
                "the cleanup of node `{name}` is {}",
                proton_ops::node_cleanup::RETRY_HINT
            ),
        )),
        Some((failed, e)) => {
            eprintln!(
                "warning: the K8s node of `{failed}` (removed earlier) is still not deleted{note}: {e}; it is {}",
                proton_ops::node_cleanup::RETRY_HINT
            );
            Ok(())
        }
        None => Ok(()),
    }
}

/// `peer list`'s footer: removed workers whose node is not deleted yet.
fn print_pending(pending: &[proton_store::NodeCleanup]) {
    if pending.is_empty() {
        return;
    }
    println!();
    println!(
        "Pending cleanup (removed workers whose K8s node is not deleted yet; `proton apply` retries):"
    );
    for c in pending {
        let why = match &c.last_error {
            Some(e) => format!("{} failed attempt(s), last: {e}", c.attempts),
            None => "not tried yet".to_string(),
        };
        println!("  {:<20} {why}", c.name);
    }
}
