//! Deleting removed workers' Kubernetes side: the pending list kept in the state DB
//! (`proton_store::NodeCleanup`), worked through by `peer remove`, `apply` and `invite`.
//!
//! `peer remove` takes a worker off the tunnel first and records its node as pending in
//! the same transaction; the Node, its node-password secret and its bootstrap token are
//! deleted afterwards through `k3s`, and the record goes only once that succeeded. So a
//! K3s outage at removal time leaves a record that the next `peer remove` or `apply`
//! retries, instead of a Node that lingers and a name a rebuilt machine can never
//! rejoin under (k3s#7797).

use proton_core::host::Root;
use proton_core::spec::Spec;
use proton_k3s::tokens::Forgotten;
use proton_store::{Store, StoreError};

/// What happens to a failed cleanup, and how to force it (completes "... is ").
pub const RETRY_HINT: &str = "kept and retried by the next `proton peer remove` or `proton apply`; run `proton apply` once K3s answers again";

/// What one pass did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Nodes deleted in this pass.
    pub done: Vec<String>,
    /// The node whose cleanup failed, and why. The pass stops there: the others need
    /// the same API server, so trying them too would only repeat the wait.
    pub failed: Option<(String, String)>,
    /// Pending records not tried because of that failure.
    pub left: usize,
}

impl Outcome {
    /// `" (N more pending)"` when a failure left other records untried.
    pub fn left_note(&self) -> String {
        match self.left {
            0 => String::new(),
            n => format!(" ({n} more pending)"),
        }
    }
}

/// Tries the pending cleanups, `first` before the others (the node the caller cares
/// about), or only `first` when `only` is set. `deleted` hears of each node deleted
/// (its record is gone by then), with what went with it.
pub fn run_pending(
    root: &Root,
    spec: &Spec,
    store: &mut Store,
    first: Option<&str>,
    only: bool,
    deleted: &mut dyn FnMut(&str, &Forgotten),
) -> Result<Outcome, StoreError> {
    let mut names: Vec<String> = store
        .node_cleanups()?
        .into_iter()
        .map(|c| c.name.to_string())
        .collect();
    if let Some(first) = first {
        match names.iter().position(|n| n == first) {
            Some(i) => {
                let name = names.remove(i);
                if only {
                    names.clear();
                }
                names.insert(0, name);
            }
            None if only => return Ok(Outcome::default()),
            None => {}
        }
    }
    let mut out = Outcome::default();
    let k3s = proton_gateway::k3s::server_version(root, spec)
        .map(|_| proton_gateway::k3s::k3s_program(root));
    for (i, name) in names.iter().enumerate() {
        let result = match &k3s {
            Some(k3s) => {
                proton_k3s::tokens::forget_node(&proton_core::host::SystemRunner, root, k3s, name)
                    .map_err(|e| e.to_string())
            }
            None => Err("K3s is not installed here (k3s --version failed)".to_string()),
        };
        match result {
            Ok(done) => {
                store.node_cleanup_done(name, "cli")?;
                deleted(name, &done);
                out.done.push(name.clone());
            }
            Err(e) => {
                store.node_cleanup_failed(name, &e)?;
                out.left = names.len() - i - 1;
                out.failed = Some((name.clone(), e));
                break;
            }
        }
    }
    Ok(out)
}
