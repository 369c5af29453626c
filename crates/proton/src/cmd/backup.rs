//! `proton backup FILE` / `proton restore FILE`: the archive is `proton_ops::backup`'s;
//! this prints what it wrote and what to do next.

use crate::cli::{BackupArgs, RestoreArgs};
use crate::output::UserError;
use proton_core::host::Root;
use proton_core::spec::SPEC_PATH;
use proton_ops::backup::BackupError;

/// A complete message goes out as it is, with its hint and exit code; a step that
/// failed (`opening …`, `copying …`) with its chain of causes.
fn explain(e: BackupError) -> anyhow::Error {
    if !e.is_complete() {
        return e.into();
    }
    UserError {
        message: e.to_string(),
        hint: e.hint().map(str::to_owned),
        code: if e.is_bad_input() { 2 } else { 1 },
    }
    .into()
}

pub fn backup(root: &Root, args: &BackupArgs) -> anyhow::Result<()> {
    let w = proton_ops::backup::backup(
        root,
        &args.file,
        args.encrypt,
        args.passphrase_file.as_deref(),
    )
    .map_err(explain)?;
    println!(
        "Backup of gateway `{}` written to {} (0600{}).",
        w.gateway,
        args.file.display(),
        if w.encrypted {
            ", encrypted with the passphrase: age format"
        } else {
            ""
        }
    );
    for e in &w.entries {
        println!("  /{e}");
    }
    if !w.k3s {
        println!("  (no K3s datastore here: K3s is not installed)");
    }
    println!("It holds the gateway's private key and K3s's secrets: store it like the key itself.");
    println!(
        "Restore on a new machine: proton restore {}",
        args.file.display()
    );
    Ok(())
}

pub fn restore(root: &Root, args: &RestoreArgs) -> anyhow::Result<()> {
    let r = proton_ops::backup::restore(
        root,
        &args.file,
        args.passphrase_file.as_deref(),
        args.force,
        args.public_ip,
    )
    .map_err(explain)?;
    println!(
        "Gateway `{}` restored (public key {}).",
        r.gateway, r.public_key
    );
    for dest in &r.files {
        println!("  {}", dest.display());
    }
    println!();
    println!("Next:");
    if args.public_ip.is_none() {
        println!(
            "  check gateway.public_ip in {} (this machine's address)",
            root.path(SPEC_PATH).display()
        );
    }
    match (r.endpoint_moved_from, args.public_ip) {
        (Some(was), Some(now)) => {
            println!(
                "  gateway.endpoint was the address {was}; it is now {now}, so new invitations and client configs carry it."
            );
            println!(
                "  peers configured with {was} come back only where the gateway can reach their last endpoint (not behind a NAT): a DNS name as the endpoint survives a move"
            );
        }
        _ => println!(
            "  point the endpoint name at this machine; peers re-resolve it and reconnect unchanged"
        ),
    }
    println!(
        "  proton apply                              firewall, K3s (same token and datastore), add-ons"
    );
    println!("  systemctl enable --now proton-gateway     (or: proton gateway run)");
    Ok(())
}
