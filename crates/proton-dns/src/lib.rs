//! Proton's DNS on the tunnel: a resolver on the gateway's tunnel address (udp+tcp 53,
//! bound to the WireGuard interface with `SO_BINDTODEVICE`, so it never answers on the
//! public address), in the spirit of Tailscale's MagicDNS:
//!
//! - every peer by name in the zone (`dns.zone`, default `proton.internal`):
//!   `w1.proton.internal` → 10.7.7.2, live from the store;
//! - the host names of `proton expose --vpn-only` services (and the dashboard routes) →
//!   the gateway's tunnel address, so VPN clients reach them *through* the tunnel, with
//!   their tunnel address as the source the VPN allow-list checks;
//! - everything else relayed unchanged to the gateway's own resolvers (`network.dns`, or
//!   the `nameserver`s of the gateway's /etc/resolv.conf).
//!
//! Messages are parsed and built with `hickory-proto` (the Hickory DNS project's wire
//! format crate); forwarded queries are relayed as bytes, so the upstream's answer
//! (EDNS, DNSSEC records, truncation) reaches the client as the upstream wrote it.
#![deny(unsafe_code)]

pub mod answer;
pub mod source;
pub mod upstream;

pub use answer::{Decision, Names, decide};
pub use source::Source;

use hickory_proto::op::Message;
use proton_core::net::Cidr;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// DNS's port.
pub const DNS_PORT: u16 = 53;
/// The largest UDP message read (EDNS payloads above 4096 are not used in practice).
const UDP_MAX: usize = 4096;
/// How long a TCP client may stay idle between queries (RFC 7766 suggests seconds).
const TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds UDP and TCP on `addr`, restricted to the interface `device`.
pub fn bind_tunnel_only(
    addr: SocketAddrV4,
    device: &str,
) -> std::io::Result<(UdpSocket, TcpListener)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let udp = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    udp.bind_device(Some(device.as_bytes()))?;
    udp.bind(&SocketAddr::V4(addr).into())?;
    udp.set_nonblocking(true)?;
    let tcp = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    tcp.set_reuse_address(true)?;
    tcp.bind_device(Some(device.as_bytes()))?;
    tcp.bind(&SocketAddr::V4(addr).into())?;
    tcp.listen(128)?;
    tcp.set_nonblocking(true)?;
    Ok((
        UdpSocket::from_std(udp.into())?,
        TcpListener::from_std(tcp.into())?,
    ))
}

/// What the server needs besides its sockets.
pub struct Resolver {
    pub names: Source,
    /// Only sources in this network get answers (the socket is bound to the tunnel
    /// interface already; this is the second lock).
    pub network: Cidr,
    pub upstreams: upstream::Upstreams,
}

impl Resolver {
    /// The reply to one message from `from`, or `None` to stay silent (not DNS at all).
    pub async fn handle(&self, bytes: &[u8], from: IpAddr, tcp: bool) -> Option<Vec<u8>> {
        let query = Message::from_vec(bytes).ok()?;
        let inside = matches!(from, IpAddr::V4(a) if self.network.contains(a));
        let reply = if !inside {
            answer::refused(&query)
        } else {
            match decide(&query, &self.names.names()) {
                Decision::Answer(m) => m,
                Decision::Forward => match self.upstreams.forward(bytes, tcp).await {
                    Some(raw) => return Some(raw),
                    None => answer::server_failure(&query),
                },
            }
        };
        let mut out = reply.to_vec().ok()?;
        if !tcp && out.len() > 512 && query.edns.is_none() {
            out = reply.truncate().to_vec().ok()?;
        }
        Some(out)
    }
}

/// Serves `udp` and `tcp` until `stop` resolves.
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    resolver: Arc<Resolver>,
    stop: impl std::future::Future<Output = ()>,
) {
    let udp = Arc::new(udp);
    let udp_task = {
        let (udp, resolver) = (udp.clone(), resolver.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; UDP_MAX];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                let bytes = buf[..n].to_vec();
                let (udp, resolver) = (udp.clone(), resolver.clone());
                tokio::spawn(async move {
                    if let Some(out) = resolver.handle(&bytes, from.ip(), false).await {
                        let _ = udp.send_to(&out, from).await;
                    }
                });
            }
        })
    };
    let tcp_task = {
        let resolver = resolver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, from)) = tcp.accept().await else {
                    continue;
                };
                let resolver = resolver.clone();
                tokio::spawn(async move {
                    let _ = serve_tcp(stream, from.ip(), &resolver).await;
                });
            }
        })
    };
    stop.await;
    udp_task.abort();
    tcp_task.abort();
}

/// Length-prefixed messages on one connection (RFC 1035 4.2.2), one after another.
async fn serve_tcp(
    mut stream: TcpStream,
    from: IpAddr,
    resolver: &Resolver,
) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let mut bytes = vec![0u8; u16::from_be_bytes(len) as usize];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut bytes))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        let Some(out) = resolver.handle(&bytes, from, true).await else {
            return Ok(());
        };
        let Ok(n) = u16::try_from(out.len()) else {
            return Ok(());
        };
        stream.write_all(&n.to_be_bytes()).await?;
        stream.write_all(&out).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    use proton_core::host::Root;
    use proton_core::keys::PrivateKey;
    use proton_store::{Role, Store};

    fn query(name: &str) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    #[tokio::test]
    async fn tunnel_sources_get_answers_others_are_refused_and_no_upstream_is_servfail() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let cidr: Cidr = "10.7.7.0/24".parse().unwrap();
        let (mut store, _) =
            Store::create(&root, &cidr, "proton", PrivateKey::generate().public_key()).unwrap();
        store
            .add_peer(
                &"w1".parse().unwrap(),
                Role::Worker,
                PrivateKey::generate().public_key(),
                "t",
            )
            .unwrap();
        let resolver = Resolver {
            names: Source::new(root.clone(), cidr, "proton.internal", cidr.gateway()),
            network: cidr,
            upstreams: upstream::Upstreams::new(root, vec![], cidr.gateway()),
        };
        let ask = async |name: &str, from: &str, tcp: bool| {
            let out = resolver
                .handle(&query(name), from.parse().unwrap(), tcp)
                .await
                .unwrap();
            Message::from_vec(&out).unwrap()
        };
        for tcp in [false, true] {
            let m = ask("w1.proton.internal", "10.7.7.3", tcp).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(
                matches!(&m.answers[0].data, RData::A(a) if a.0 == std::net::Ipv4Addr::new(10, 7, 7, 2))
            );
        }
        let m = ask("w1.proton.internal", "198.18.0.9", false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
        // No resolv.conf under this root: a name to forward gets SERVFAIL, not silence.
        let m = ask("example.org", "10.7.7.3", false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        // Not DNS: no answer at all.
        assert!(
            resolver
                .handle(b"\x00", "10.7.7.3".parse().unwrap(), false)
                .await
                .is_none()
        );
    }
}
