//! `proton client add|disable|enable`: plain WireGuard configs for phones and laptops,
//! and switching them off and on without losing their key.

use crate::cli::ClientCommand;
use crate::cmd::gateway::notify_daemon;
use crate::context::GatewayContext;
use crate::output::bad_input;
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::view::Network;
use proton_store::{Allow, Grant, NewPeer, PeerName, Role};
use std::io::Write;
use std::path::PathBuf;

/// The longest `--expires`.
const MAX_EXPIRY_DAYS: u64 = 3650;

pub fn run(root: &Root, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add {
            name,
            full_tunnel,
            admin,
            allow,
            qr_png,
            no_qr,
            expires,
        } => add(
            root,
            name,
            Options {
                full_tunnel,
                admin,
                allow: parse_allows(&allow)?,
                qr_png,
                no_qr,
                expires,
            },
        ),
        ClientCommand::Disable { name } => switch(root, &name, true),
        ClientCommand::Enable { name } => switch(root, &name, false),
        ClientCommand::Allow { name, grants } => change(root, &name, &parse_allows(&grants)?, &[]),
        ClientCommand::Deny { name, grants } => change(root, &name, &[], &parse_allows(&grants)?),
    }
}

/// What `client add` was asked for beyond the name.
struct Options {
    full_tunnel: bool,
    admin: bool,
    allow: Vec<Allow>,
    qr_png: Option<PathBuf>,
    no_qr: bool,
    expires: Option<String>,
}

/// `PEER:PORT[/udp]` arguments; the first bad one is the error, before anything changes.
fn parse_allows(args: &[String]) -> anyhow::Result<Vec<Allow>> {
    args.iter()
        .map(|a| {
            a.parse()
                .map_err(|e: proton_store::InvalidPeer| bad_input(e.to_string(), None))
        })
        .collect()
}

/// `client allow|deny`: changes a client's named grants; the daemon applies them live.
fn change(root: &Root, name: &str, add: &[Allow], remove: &[Allow]) -> anyhow::Result<()> {
    let mut ctx = GatewayContext::load(root)?;
    must_be_client(&ctx, name, "allow|deny")?;
    let (now, changed) = ctx.store.change_allows(name, add, remove, "cli")?;
    let list: Vec<String> = now.iter().map(ToString::to_string).collect();
    let list = if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    };
    if changed {
        println!("`{name}` may now also reach: {list}.");
        notify_daemon(root);
    } else {
        let was = if remove.is_empty() {
            "already had that"
        } else {
            "had no such grant"
        };
        println!("`{name}` {was}; it may also reach: {list}.");
    }
    Ok(())
}

fn add(root: &Root, name: String, opts: Options) -> anyhow::Result<()> {
    let Options {
        full_tunnel,
        admin,
        allow,
        qr_png,
        no_qr,
        expires,
    } = opts;
    let name: PeerName = name
        .parse()
        .map_err(|e: proton_store::InvalidPeer| bad_input(e.to_string(), None))?;
    let expires_in = expires
        .as_deref()
        .map(|t| crate::cmd::invite::parse_span(t, MAX_EXPIRY_DAYS, "3650d"))
        .transpose()
        .map_err(|e| bad_input(format!("--expires {e}"), None))?;
    // This process holds a fresh private key: no core dump of it.
    proton_gateway::hardening::no_core_dumps();
    let ctx = &mut GatewayContext::load(root)?;
    let gateway_key = ctx.private_key()?.public_key();
    // Made here because a phone app cannot run `proton join`; shown once, never stored.
    let key = PrivateKey::generate();
    let public = key.public_key();
    let spec = ctx.spec.clone();
    let expires_at = expires_in.map(|s| proton_store::system_now() + s as i64);
    let grants: &[Grant] = if admin { &[Grant::Admin] } else { &[] };
    // The peer is committed only once its config is out (written to stdout, and to the
    // PNG when asked): a command killed or failing before that leaves no client whose
    // private key nobody ever saw; one killed after it leaves a config that works.
    let (peer, qr_note) = ctx.store.add_peer_then(
        &name,
        Role::Client,
        public,
        &NewPeer {
            expires_at,
            grants,
            allows: &allow,
        },
        "cli",
        |peer| -> anyhow::Result<Option<String>> {
            let cfg =
                Network::new(&spec).client_config(key, peer.address, gateway_key, full_tunnel);
            let text = cfg.render();
            if let Some(path) = &qr_png
                && let Err(e) = crate::qr::write_png(&text, path, 8)
            {
                return Err(bad_input(
                    format!("cannot write the QR code to {}: {e:#}", path.display()),
                    Some("choose a writable --qr-png path; nothing was added".into()),
                ));
            }
            let art = if no_qr {
                None
            } else {
                Some(crate::qr::terminal(&text)?)
            };
            let note = match &art {
                Some(a) if qr_png.is_none() => crate::qr::too_big_note(a),
                _ => None,
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", text.as_str())
                .and_then(|_| match &art {
                    Some(a) => writeln!(out, "{a}"),
                    None => Ok(()),
                })
                .and_then(|_| out.flush())
                .map_err(|e| {
                    if let Some(path) = &qr_png {
                        let _ = std::fs::remove_file(path);
                    }
                    bad_input(
                        format!("could not write the config to standard output: {e}"),
                        Some("nothing was added; run the command again".into()),
                    )
                })?;
            Ok(note)
        },
    )?;
    eprintln!(
        "Client `{name}` added at {}. The config above holds its private key: it is shown once and not stored.",
        peer.address
    );
    if let Some(at) = expires_at {
        eprintln!(
            "It expires at {} (UTC): the gateway then takes it off the tunnel.",
            utc(at)
        );
    }
    if let Some(note) = qr_note {
        eprintln!("{note}");
    }
    if let Some(path) = qr_png {
        eprintln!("QR code written to {} (mode 0600)", path.display());
    }
    notify_daemon(root);
    Ok(())
}

/// Refuses, with one line, a name that is not a live client (`what`: the subcommands).
fn must_be_client(ctx: &GatewayContext, name: &str, what: &str) -> anyhow::Result<()> {
    match ctx.store.peer_by_name(name)? {
        Some(p) if p.role == Role::Client => Ok(()),
        Some(p) => Err(bad_input(
            format!("`{name}` is a {}, not a client", p.role),
            Some(format!(
                "`proton client {what}` is for clients; remove a worker with `proton peer remove`"
            )),
        )),
        None => Err(bad_input(
            format!("there is no client `{name}`"),
            Some("see `proton peer list`".into()),
        )),
    }
}

fn switch(root: &Root, name: &str, disable: bool) -> anyhow::Result<()> {
    let mut ctx = GatewayContext::load(root)?;
    must_be_client(&ctx, name, "disable|enable")?;
    let (peer, changed) = ctx.store.set_disabled(name, disable, "cli")?;
    let word = if disable { "disabled" } else { "enabled" };
    if !changed {
        println!("Client `{name}` is already {word}.");
        return Ok(());
    }
    notify_daemon(root);
    if disable {
        println!(
            "Disabled `{name}` ({}): off the tunnel; its key and address are kept. `proton client enable {name}` lets the same config in again.",
            peer.address
        );
    } else {
        println!(
            "Enabled `{name}` ({}): its config connects again.",
            peer.address
        );
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM` in UTC for unix seconds (no time-zone database needed).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(super::utc(1_798_761_599), "2026-12-31 23:59");
    }
}
