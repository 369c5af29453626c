//! `proton invite`: a single-use, expiring invitation (`proton_ops::invite`).

use crate::cli::InviteArgs;
use crate::cmd::gateway::notify_daemon;
use crate::output::with_hint;
use proton_core::host::Root;

pub fn run(root: &Root, args: &InviteArgs) -> anyhow::Result<()> {
    // stdout: the invitation (and its QR code) only, so that
    // `proton invite NAME --no-qr | ssh worker proton join` works; the rest is for the
    // person at the terminal.
    let inv = proton_ops::invite::invite(
        root,
        &args.name,
        &args.role,
        &args.ttl,
        &mut std::io::stderr(),
    )
    .map_err(|e| with_hint(&e, e.hint(), e.is_bad_input()))?;
    notify_daemon(root);
    eprintln!("{}", inv.heading(&args.ttl));
    println!("{}", inv.text.as_str());
    if !args.no_qr {
        println!();
        println!("{}", proton_ops::qr::terminal(&inv.text)?);
    }
    eprintln!("On that machine, as root:  proton join   (then paste the invitation)");
    Ok(())
}
