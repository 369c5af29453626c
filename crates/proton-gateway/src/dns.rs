//! The daemon's resolver on the tunnel address (see `proton-dns`): started with the
//! device, stopped with the daemon. A resolver that cannot bind (port 53 taken on the
//! tunnel address) is a warning: the tunnel itself must still come up.

use proton_core::host::Root;
use proton_core::spec::Spec;
use std::net::SocketAddrV4;
use std::sync::Arc;

/// Binds udp+tcp 53 on the gateway's tunnel address (and the WireGuard interface) and
/// serves until `stop` changes; `None` when `dns.enabled` is off or binding failed.
pub fn spawn(
    root: &Root,
    spec: &Spec,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !spec.dns.enabled {
        return None;
    }
    let addr = SocketAddrV4::new(spec.gateway_address(), proton_dns::DNS_PORT);
    let (udp, tcp) = match proton_dns::bind_tunnel_only(addr, &spec.network.interface) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("DNS on the tunnel is off: binding {addr} (udp+tcp): {e}");
            return None;
        }
    };
    let cidr = spec.network.cidr;
    let resolver = Arc::new(proton_dns::Resolver {
        names: proton_dns::Source::new(root.clone(), cidr, &spec.dns.zone, spec.gateway_address()),
        network: cidr,
        upstreams: proton_dns::upstream::Upstreams::new(
            root.clone(),
            spec.network.dns.clone(),
            spec.gateway_address(),
        ),
    });
    tracing::info!(%addr, zone = %spec.dns.zone, "DNS on the tunnel");
    Some(tokio::spawn(proton_dns::serve(
        udp,
        tcp,
        resolver,
        async move {
            let _ = stop.changed().await;
        },
    )))
}
