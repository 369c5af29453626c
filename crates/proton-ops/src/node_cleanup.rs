//! Deleting removed workers' Kubernetes side: the pending list kept in the state DB
//! (`proton_store::NodeCleanup`), worked through by `peer remove`, `apply` and `invite`.
//!
//! `peer remove` takes a worker off the tunnel first and records its node as pending in
//! the same transaction; the Node, its node-password secret and its bootstrap token are
//! deleted afterwards through `k3s`, and the record goes only once that succeeded. So a
//! K3s outage at removal time leaves a record that the next `peer remove` or `apply`
//! retries, instead of a Node that lingers and a name a rebuilt machine can never
//! rejoin under (k3s#7797).

use crate::gateway::{Gateway, GatewayError};
use proton_core::host::Root;
use proton_core::spec::Spec;
use proton_k3s::tokens::Forgotten;
use proton_store::{NodeCleanup, Store, StoreError};
use std::io::Write;

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

/// The line for a node deleted: the Node, its node-password secret and, when one was
/// recorded, its bootstrap token.
pub fn deleted_line(name: &str, done: &Forgotten) -> String {
    format!(
        "Deleted K8s node `{name}` and its secret {name}.node-password.k3s{}.",
        match &done.token_id {
            Some(id) => format!(", and its bootstrap token {id}"),
            None => String::new(),
        }
    )
}

/// A `deleted` callback for [`run_pending`]: each node's line to `lines`, a failed token
/// deletion as a warning to `warnings`. Write errors are ignored: the node is deleted.
pub fn reporter<'a>(
    lines: &'a mut dyn Write,
    warnings: &'a mut dyn Write,
) -> impl FnMut(&str, &Forgotten) + 'a {
    move |name, done| {
        let _ = writeln!(lines, "{}", deleted_line(name, done));
        if let Some(w) = token_warning(done) {
            let _ = writeln!(warnings, "{w}");
        }
    }
}

/// The warning when a node's bootstrap token could not be deleted.
pub fn token_warning(done: &Forgotten) -> Option<String> {
    done.token_warning.as_ref().map(|w| {
        format!(
            "warning: the bootstrap token could not be deleted (expired tokens are already gone): {w}"
        )
    })
}

/// Removed workers whose K8s node is not deleted yet (none without a state DB).
pub fn pending(root: &Root) -> Result<Vec<NodeCleanup>, GatewayError> {
    if !root.exists(proton_store::DB_PATH) {
        return Ok(Vec::new());
    }
    Ok(Gateway::load(root)?.store.node_cleanups()?)
}

/// What [`finish_pending`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// This many nodes deleted (all that were pending).
    Deleted(usize),
    /// This many pending, but K3s is not installed here: nothing can delete them, and
    /// failing every run for it would block the rest; they stay listed by `peer list`.
    NoK3s(usize),
}

impl Finished {
    pub fn deleted(&self) -> usize {
        match self {
            Finished::Deleted(n) => *n,
            Finished::NoK3s(_) => 0,
        }
    }

    /// What to warn about (stderr), if anything.
    pub fn warning(&self) -> Option<String> {
        match self {
            Finished::NoK3s(n) => Some(format!(
                "warning: {n} removed worker(s) still have a K8s node to delete, but K3s is not installed here; they stay pending"
            )),
            Finished::Deleted(_) => None,
        }
    }
}

/// Why `apply` could not finish the pending cleanups.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Gateway(GatewayError),
    #[error(
        "the host is applied, but deleting the K8s node of removed worker `{name}` failed{left}: {error}"
    )]
    Failed {
        name: String,
        /// [`Outcome::left_note`].
        left: String,
        error: String,
    },
}

crate::gateway::from_gateway_errors!(FinishError);

impl FinishError {
    pub fn hint(&self) -> Option<String> {
        match self {
            FinishError::Gateway(e) => e.hint(),
            FinishError::Failed { .. } => Some(
                "it stays pending (see `proton peer list`): re-run `proton apply` once K3s answers"
                    .into(),
            ),
        }
    }

    pub fn is_bad_input(&self) -> bool {
        matches!(self, FinishError::Gateway(e) if e.is_bad_input())
    }
}

/// `proton apply`'s last step: retries the K8s cleanups `peer remove` could not finish
/// (K3s is up to date by now). A failure is the run's error, the rest of the run having
/// been applied.
pub fn finish_pending(
    root: &Root,
    deleted: &mut dyn FnMut(&str, &Forgotten),
) -> Result<Finished, FinishError> {
    let pending = pending(root)?;
    if pending.is_empty() {
        return Ok(Finished::Deleted(0));
    }
    let mut gw = Gateway::load(root)?;
    if proton_gateway::k3s::server_version(root, &gw.spec).is_none() {
        return Ok(Finished::NoK3s(pending.len()));
    }
    let out = gw.run_pending_cleanups(None, false, deleted)?;
    let left = out.left_note();
    match out.failed {
        Some((name, error)) => Err(FinishError::Failed { name, left, error }),
        None => Ok(Finished::Deleted(out.done.len())),
    }
}

impl Gateway {
    /// [`run_pending`] on this gateway's spec and DB.
    pub fn run_pending_cleanups(
        &mut self,
        first: Option<&str>,
        only: bool,
        deleted: &mut dyn FnMut(&str, &Forgotten),
    ) -> Result<Outcome, StoreError> {
        run_pending(
            &self.root,
            &self.spec,
            &mut self.store,
            first,
            only,
            deleted,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deleted_line_names_the_token_when_there_was_one_and_warns_when_it_stayed() {
        let (mut lines, mut warnings) = (Vec::new(), Vec::new());
        {
            let mut report = reporter(&mut lines, &mut warnings);
            report("w1", &Forgotten::default());
            report(
                "w2",
                &Forgotten {
                    token_id: Some("abc123".into()),
                    token_warning: Some("k3s said no".into()),
                },
            );
        }
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            "Deleted K8s node `w1` and its secret w1.node-password.k3s.\n\
             Deleted K8s node `w2` and its secret w2.node-password.k3s, and its bootstrap token abc123.\n"
        );
        assert_eq!(
            String::from_utf8(warnings).unwrap(),
            "warning: the bootstrap token could not be deleted (expired tokens are already gone): k3s said no\n"
        );
    }
}
