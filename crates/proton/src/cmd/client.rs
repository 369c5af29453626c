//! `proton client add`: a plain WireGuard config for a phone or laptop.

use crate::cli::ClientCommand;
use crate::cmd::gateway::notify_daemon;
use crate::context::GatewayContext;
use crate::output::bad_input;
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use proton_store::{PeerName, Role};
use std::io::Write;

pub fn run(root: &Root, cmd: ClientCommand) -> anyhow::Result<()> {
    let ClientCommand::Add {
        name,
        full_tunnel,
        qr_png,
    } = cmd;
    let name: PeerName = name
        .parse()
        .map_err(|e: proton_store::StoreError| bad_input(e.to_string(), None))?;
    // This process holds a fresh private key: no core dump of it.
    proton_gateway::hardening::no_core_dumps();
    let ctx = &mut GatewayContext::load(root)?;
    let gateway_key = ctx.private_key()?.public_key();
    // Made here because a phone app cannot run `proton join`; shown once, never stored.
    let key = PrivateKey::generate();
    let public = key.public_key();
    let spec = ctx.spec.clone();
    // The peer is committed only once its config is out (written to stdout, and to the
    // PNG when asked): a command killed or failing before that leaves no client whose
    // private key nobody ever saw; one killed after it leaves a config that works.
    let (peer, ()) = ctx.store.add_peer_then(
        &name,
        Role::Client,
        public,
        "cli",
        |peer| -> anyhow::Result<()> {
            let mut cfg = WgQuickConfig::default();
            cfg.interface.private_key = Some(key);
            cfg.interface.addresses = vec![spec.network.cidr.with_host(peer.address).into()];
            cfg.interface.dns = spec.network.dns.iter().map(|d| d.to_string()).collect();
            cfg.interface.mtu = Some(spec.network.mtu);
            let mut gw = PeerSection::new(gateway_key);
            gw.name = Some(format!("{} (gateway)", spec.gateway.name));
            gw.endpoint = Some(spec.gateway.endpoint.clone());
            gw.allowed_ips = if full_tunnel {
                // `::/0` too: the gateway carries no IPv6 (its firewall drops it from the
                // tunnel), so the phone's IPv6 goes nowhere instead of around the tunnel.
                vec!["0.0.0.0/0".parse()?, "::/0".parse()?]
            } else {
                vec![spec.network.cidr.net().into()]
            };
            gw.persistent_keepalive = Some(spec.network.persistent_keepalive).filter(|k| *k != 0);
            cfg.peers.push(gw);
            let text = cfg.render();
            if let Some(path) = &qr_png
                && let Err(e) = crate::qr::write_png(&text, path, 8)
            {
                return Err(bad_input(
                    format!("cannot write the QR code to {}: {e:#}", path.display()),
                    Some("choose a writable --qr-png path; nothing was added".into()),
                ));
            }
            let qr = crate::qr::terminal(&text)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", text.as_str())
                .and_then(|_| writeln!(out, "{qr}"))
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
            Ok(())
        },
    )?;
    eprintln!(
        "Client `{name}` added at {}. The config above holds its private key: it is shown once and not stored.",
        peer.address
    );
    if let Some(path) = qr_png {
        eprintln!("QR code written to {} (mode 0600)", path.display());
    }
    notify_daemon(root);
    Ok(())
}
