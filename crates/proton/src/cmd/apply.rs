//! `proton apply`: make the gateway's host match the spec. The planner, its pending
//! journal and the execution are [`proton_ops::apply`]'s; this prints them, tells the
//! running daemon, and retries the removed workers' K8s node deletions last (once K3s
//! is installed and configured).

use crate::cli::ApplyArgs;
use crate::output::{bad_input, say, with_hint};
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
    proton_ops::node_cleanup::pending(root).map_err(|e| with_hint(&e, e.hint(), e.is_bad_input()))
}

/// Retries the K8s cleanups `peer remove` could not finish (`proton_ops::node_cleanup`).
/// Returns how many nodes were deleted; a failure is the run's error.
fn finish_node_cleanups(root: &Root) -> anyhow::Result<usize> {
    let done = proton_ops::node_cleanup::finish_pending(root, &mut crate::context::print_deleted())
        .map_err(|e| with_hint(&e, e.hint(), e.is_bad_input()))?;
    if let Some(warning) = done.warning() {
        eprintln!("{warning}");
    }
    Ok(done.deleted())
}
