//! `proton client add`: a plain WireGuard config for a phone or laptop.

use crate::cli::ClientCommand;
use crate::cmd::gateway::notify_daemon;
use crate::context::GatewayContext;
use crate::output::bad_input;
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use proton_store::{Grant, PeerName, Role};

pub fn run(root: &Root, cmd: ClientCommand) -> anyhow::Result<()> {
    let ClientCommand::Add {
        name,
        full_tunnel,
        admin,
        qr_png,
    } = cmd;
    let name: PeerName = name
        .parse()
        .map_err(|e: proton_store::StoreError| bad_input(e.to_string(), None))?;
    let mut ctx = GatewayContext::load(root)?;
    let gateway_key = ctx.private_key()?.public_key();
    // Made here because a phone app cannot run `proton join`; shown once, never stored.
    let key = PrivateKey::generate();
    let grants: &[Grant] = if admin { &[Grant::Admin] } else { &[] };
    let peer = ctx
        .store
        .add_peer_granted(&name, Role::Client, key.public_key(), grants, "cli")?;
    let spec = &ctx.spec;
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
    // The PNG is written before anything is shown or the daemon hears of the peer: when it
    // cannot be written, the peer is taken out again, so a failed command leaves no client
    // whose key nobody has.
    if let Some(path) = &qr_png
        && let Err(e) = crate::qr::write_png(&text, path, 8)
    {
        ctx.store.remove_peer(name.as_str(), "cli")?;
        return Err(bad_input(
            format!("cannot write the QR code to {}: {e:#}", path.display()),
            Some("choose a writable --qr-png path; nothing was added".into()),
        ));
    }
    notify_daemon(root);
    eprintln!(
        "Client `{name}` added at {}. This config holds its private key: it is shown once and not stored.",
        peer.address
    );
    println!("{}", text.as_str());
    println!("{}", crate::qr::terminal(&text)?);
    if let Some(path) = qr_png {
        eprintln!("QR code written to {} (mode 0600)", path.display());
    }
    Ok(())
}
