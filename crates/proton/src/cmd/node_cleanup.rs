//! Deleting removed workers' Kubernetes side (`proton_ops::node_cleanup`), worked
//! through by `peer remove`, `apply` and `invite`; this prints each node deleted.

use crate::context::GatewayContext;
use proton_ops::node_cleanup::Outcome;

/// Tries the pending cleanups, `first` before the others, or only `first` when `only`
/// is set. Prints one line per deleted node.
pub fn run_pending(
    ctx: &mut GatewayContext,
    first: Option<&str>,
    only: bool,
) -> anyhow::Result<Outcome> {
    let root = ctx.root.clone();
    Ok(proton_ops::node_cleanup::run_pending(
        &root,
        &ctx.spec,
        &mut ctx.store,
        first,
        only,
        &mut |name, done| {
            let line = format!(
                "Deleted K8s node `{name}` and its secret {name}.node-password.k3s{}.",
                match &done.token_id {
                    Some(id) => format!(", and its bootstrap token {id}"),
                    None => String::new(),
                }
            );
            // With `only` (from `invite`), stdout carries the invitation alone.
            if only {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            if let Some(w) = &done.token_warning {
                eprintln!(
                    "warning: the bootstrap token could not be deleted (expired tokens are already gone): {w}"
                );
            }
        },
    )?)
}
