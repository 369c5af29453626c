//! `proton apply`: make the gateway's host match the spec. The planner, its pending
//! journal and the execution are [`proton_ops::apply`]'s; this prints them, tells the
//! running daemon, and retries the removed workers' K8s node deletions last (once K3s
//! is installed and configured).

use crate::cli::ApplyArgs;
use crate::output::{bad_input, failure};
use proton_core::host::{Host, Root};
use proton_core::spec::Spec;
use proton_ops::apply::{
    self, ApplyError, Event, HostPlan, InstallEvent, describe_install, describe_upgrade,
    object_name,
};

/// One `error:` line and its `hint:`; a bad spec is bad input (exit code 2).
fn user(e: ApplyError) -> anyhow::Error {
    if e.is_bad_input() {
        return bad_input(e.to_string(), None);
    }
    match e.hint() {
        Some(hint) => failure(e.to_string(), hint),
        None => e.into(),
    }
}

fn dry_run(root: &Root, p: &HostPlan) -> anyhow::Result<()> {
    let cleanups = pending_node_cleanups(root)?.len();
    print!("{}", p.summary(root, cleanups).map_err(user)?);
    let text = p.diff(root).map_err(user)?;
    print!("{text}");
    for r in &p.removals {
        println!("K3s prunes: {} {}", r.kind, object_name(r));
    }
    if let Some(i) = &p.install {
        println!("run: {}", describe_install(i, &p.installed));
    }
    if let Some(u) = &p.upgrade_by_plans {
        println!("upgrade: {}", describe_upgrade(u));
    }
    if text.is_empty() && p.removals.is_empty() && p.install.is_none() && cleanups == 0 {
        println!("Nothing to change: the host matches the spec.");
    } else {
        println!("(dry run: nothing was changed)");
    }
    Ok(())
}

pub fn run(host: &Host, args: &ApplyArgs) -> anyhow::Result<()> {
    let root = host.root();
    let spec = Spec::load(root).map_err(|e| bad_input(e.to_string(), None))?;
    let p = apply::plan(host, &spec).map_err(user)?;
    if args.dry_run {
        dry_run(root, &p)?;
        for c in pending_node_cleanups(root)? {
            println!(
                "would delete K8s node `{}` (removed worker, cleanup pending)",
                c.name
            );
        }
        return Ok(());
    }
    let written = apply::execute(host, &p, &mut |event| match event {
        Event::Warning(w) => eprintln!("warning: {w}"),
        Event::Wrote(f) => println!("wrote {f}"),
        Event::Prunes(r) => println!("K3s prunes: {} {}", r.kind, object_name(r)),
        Event::Ran(cmd) => println!("ran: {cmd}"),
    })
    .map_err(user)?;
    if p.loaded_firewall(host) {
        // The file's sets are empty (only the join API answers on the tunnel): the
        // running daemon refills them now rather than at its next check.
        crate::cmd::gateway::notify_daemon(root);
    }
    apply::clear_journal(root).map_err(user)?;
    apply::install(host, &p, &mut |event| match event {
        InstallEvent::NotRun(line) => println!("{line}"),
        InstallEvent::Starting(v) => {
            eprintln!("installing K3s {v} (server; this can take a few minutes) ...")
        }
        InstallEvent::Line(line) => eprintln!("  | {line}"),
        InstallEvent::Installed(v) => println!("K3s {v} installed and started."),
    })
    .map_err(user)?;
    let cleaned = finish_node_cleanups(root)?;
    if let Some(u) = &p.upgrade_by_plans {
        println!("upgrade: {}", describe_upgrade(u));
    }
    crate::cmd::gateway::reload_daemon(root);
    if written.is_empty() && p.steps.is_empty() && p.install.is_none() && cleaned == 0 {
        println!("Nothing to change: the host matches the spec.");
        return Ok(());
    }
    if spec.k3s.enabled && written.iter().any(|f| f == proton_k3s::config::CONFIG_PATH) {
        let mtu = spec.network.mtu;
        println!(
            "Pod network MTU over {}: {mtu} - 50 (VXLAN) = {}; flannel derives it from flannel-iface.",
            spec.network.interface,
            proton_k3s::pod_mtu(mtu)
        );
    }
    println!(
        "Applied: {} file(s) written, {} command(s), {cleaned} removed node(s) deleted.",
        written.len(),
        p.steps.len() + usize::from(p.install.is_some())
    );
    Ok(())
}

/// Removed workers whose K8s node is not deleted yet (none without a state DB).
fn pending_node_cleanups(root: &Root) -> anyhow::Result<Vec<proton_store::NodeCleanup>> {
    proton_ops::node_cleanup::pending(root)
        .map_err(|e| crate::output::with_hint(&e, e.hint(), e.is_bad_input()))
}

/// Retries the K8s cleanups `peer remove` could not finish (`proton_ops::node_cleanup`).
/// Returns how many nodes were deleted; a failure is the run's error.
fn finish_node_cleanups(root: &Root) -> anyhow::Result<usize> {
    let done = proton_ops::node_cleanup::finish_pending(root, &mut crate::context::print_deleted())
        .map_err(|e| crate::output::with_hint(&e, e.hint(), e.is_bad_input()))?;
    if let Some(warning) = done.warning() {
        eprintln!("{warning}");
    }
    Ok(done.deleted())
}
