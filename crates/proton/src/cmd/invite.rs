//! `proton invite`: a single-use, expiring invitation.

use crate::cli::InviteArgs;
use crate::cmd::gateway::notify_daemon;
use crate::context::GatewayContext;
use crate::output::bad_input;
use proton_core::host::Root;
use proton_core::invite::Invitation;
use proton_store::{PeerName, Role};
use std::net::Ipv4Addr;

/// Parses `30s`, `45m`, `1h`, `2d` into seconds (1 s to 30 d).
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    parse_span(text, 30, "30d")
}

/// Parses `30s`, `45m`, `1h`, `2d` into seconds, from 1 s to `max_days` days.
pub fn parse_span(text: &str, max_days: u64, max_text: &str) -> Result<u64, String> {
    let t = text.trim();
    let shown = proton_core::clip(t);
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{shown}` is not a duration: write it like 30m, 1h or 2d"))?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "`{shown}`: unknown unit `{}` (use s, m, h or d)",
                proton_core::clip(unit)
            ));
        }
    };
    // Saturating: a huge number must be refused, not overflow (a panic, or a wrapped TTL).
    let secs = n.saturating_mul(unit_secs);
    if secs == 0 || secs > max_days * 86400 {
        return Err(format!("`{shown}`: choose between 1s and {max_text}"));
    }
    Ok(secs)
}

pub fn run(root: &Root, args: &InviteArgs) -> anyhow::Result<()> {
    let name: PeerName = args
        .name
        .parse()
        .map_err(|e: proton_store::InvalidPeer| bad_input(e.to_string(), None))?;
    let role: Role = args
        .role
        .parse()
        .map_err(|e: proton_store::InvalidPeer| bad_input(e.to_string(), None))?;
    if role == Role::Gateway {
        return Err(bad_input("--role: use worker or client", None));
    }
    let ttl = parse_ttl(&args.ttl).map_err(|e| bad_input(format!("--ttl {e}"), None))?;
    let mut ctx = GatewayContext::load(root)?;
    finish_node_cleanup(&mut ctx, &name)?;
    let gateway_key = ctx.private_key()?.public_key();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let inv = Invitation::new(
        ctx.spec.gateway.endpoint.clone(),
        gateway_key,
        ctx.spec.network.cidr,
        Ipv4Addr::UNSPECIFIED,
        now + ttl,
    );
    let (peer, _) = ctx.store.reserve_invitation(
        &name,
        role,
        inv.throwaway.public_key(),
        &inv.secret_hash(),
        (now + ttl) as i64,
        "cli",
    )?;
    let inv = inv.with_address(peer.address);
    let text = inv.encode();
    notify_daemon(root);
    // stdout: the invitation (and its QR code) only, so that
    // `proton invite NAME --no-qr | ssh worker proton join` works; the rest is for the
    // person at the terminal.
    eprintln!(
        "Invitation for `{name}` ({role}, {}), single use, valid for {}:",
        peer.address, args.ttl
    );
    println!("{}", text.as_str());
    if !args.no_qr {
        println!();
        println!("{}", crate::qr::terminal(&text)?);
    }
    eprintln!("On that machine, as root:  proton join   (then paste the invitation)");
    Ok(())
}

/// A removed worker of this name whose K8s node is not deleted yet: delete it now, or
/// refuse. Inviting anyway would be wrong either way: the old node-password secret makes
/// K3s refuse the new machine (k3s#7797), and a later retry of the cleanup would delete
/// the Node the new machine joined as.
fn finish_node_cleanup(ctx: &mut GatewayContext, name: &PeerName) -> anyhow::Result<()> {
    if !ctx.store.node_cleanup_pending(name.as_str())? {
        return Ok(());
    }
    eprintln!("`{name}` was removed but its K8s node is not deleted yet; deleting it first.");
    let out = crate::cmd::node_cleanup::run_pending(ctx, Some(name.as_str()), true)?;
    match out.failed {
        Some((_, e)) => Err(crate::output::failure(
            format!("cannot invite `{name}` yet: its old K8s node is not deleted: {e}"),
            "once K3s answers, run `proton apply` (or invite again); or choose another name",
        )),
        None => Ok(()),
    }
}
