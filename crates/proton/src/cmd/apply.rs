//! `proton apply`: make the gateway's host match the spec. The planner, its pending
//! journal and the execution are [`proton_ops::apply`]'s; this prints them, tells the
//! running daemon, and retries the removed workers' K8s node deletions last (once K3s
//! is installed and configured).

use crate::cli::ApplyArgs;
use crate::cmd::node_cleanup;
use crate::output::{bad_input, failure, say, with_hint};
use proton_core::host::{Host, Root};
use proton_core::spec::Spec;
use proton_ops::apply::{self, ApplyError, describe_upgrade};

/// One `error:` line and its `hint:`; a bad spec is bad input (exit code 2).
fn user(e: ApplyError) -> anyhow::Error {
    with_hint(&e, e.hint(), e.is_bad_input())
}

pub fn run(host: &Host, args: &ApplyArgs) -> anyhow::Result<()> {
    let root = host.root();
    let spec = Spec::load(root).map_err(|e| bad_input(e.to_string(), None))?;
    let p = apply::plan(host, &spec).map_err(user)?;
    if args.dry_run {
        let cleanups = pending_node_cleanups(root)?;
        print!("{}", p.dry_run_report(root, &cleanups).map_err(user)?);
        return Ok(());
    }
    let written = apply::execute(host, &p, &mut |event| say(&event.line())).map_err(user)?;
    if p.loaded_firewall(host) {
        // The file's sets are empty (only the join API answers on the tunnel): the
        // running daemon refills them now rather than at its next check.
        crate::cmd::gateway::notify_daemon(root);
    }
    apply::clear_journal(root).map_err(user)?;
    apply::install(host, &p, &mut |event| say(&event.line())).map_err(user)?;
    let cleaned = finish_node_cleanups(root)?;
    if let Some(u) = &p.upgrade_by_plans {
        println!("upgrade: {}", describe_upgrade(u));
    }
    crate::cmd::gateway::reload_daemon(root);
    print!("{}", p.applied_report(&spec, &written, cleaned));
    Ok(())
}

/// Removed workers whose K8s node is not deleted yet (none without a state DB).
fn pending_node_cleanups(root: &Root) -> anyhow::Result<Vec<proton_store::NodeCleanup>> {
    if !root.exists(proton_store::DB_PATH) {
        return Ok(Vec::new());
    }
    Ok(crate::context::GatewayContext::load(root)?
        .store
        .node_cleanups()?)
}

/// Retries the K8s cleanups `peer remove` could not finish (K3s is up to date by now).
/// Returns how many nodes were deleted; a failure is the run's error, the rest of the
/// run having been applied.
fn finish_node_cleanups(root: &Root) -> anyhow::Result<usize> {
    let pending = pending_node_cleanups(root)?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut ctx = crate::context::GatewayContext::load(root)?;
    if proton_gateway::k3s::server_version(root, &ctx.spec).is_none() {
        // K3s disabled or not installed: nothing here can delete them, and failing every
        // run for it would block the rest; they stay listed by `peer list`.
        eprintln!(
            "warning: {} removed worker(s) still have a K8s node to delete, but K3s is not installed here; they stay pending",
            pending.len()
        );
        return Ok(0);
    }
    let out = node_cleanup::run_pending(&mut ctx, None, false)?;
    if let Some((name, e)) = &out.failed {
        return Err(failure(
            format!(
                "the host is applied, but deleting the K8s node of removed worker `{name}` failed{}: {e}",
                out.left_note()
            ),
            "it stays pending (see `proton peer list`): re-run `proton apply` once K3s answers",
        ));
    }
    Ok(out.done.len())
}
