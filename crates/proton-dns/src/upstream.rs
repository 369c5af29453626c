//! The gateway's own resolvers, and relaying a query to them.

use proton_core::host::Root;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one upstream gets before the next is tried.
const TRY: Duration = Duration::from_secs(2);
/// glibc reads at most three `nameserver` lines (resolv.conf(5), MAXNS).
const MAX_SERVERS: usize = 3;

/// The `nameserver` addresses of a resolv.conf text, in order (at most three, as glibc).
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // An IPv6 link-local address may carry a zone (`fe80::1%eth0`); skip those.
        .filter_map(|w| w.parse().ok())
        .take(MAX_SERVERS)
        .collect()
}

/// Where forwarded queries go: `fixed` (the spec's `network.dns`) when set, else the
/// gateway root's /etc/resolv.conf, read at each query (DHCP may rewrite it). The
/// resolver's own address is never an upstream (a loop).
pub struct Upstreams {
    root: Root,
    fixed: Vec<IpAddr>,
    own: Ipv4Addr,
}

impl Upstreams {
    pub fn new(root: Root, fixed: Vec<IpAddr>, own: Ipv4Addr) -> Upstreams {
        Upstreams { root, fixed, own }
    }

    pub fn servers(&self) -> Vec<SocketAddr> {
        let list = if self.fixed.is_empty() {
            self.root
                .read_optional("/etc/resolv.conf")
                .ok()
                .flatten()
                .map(|t| parse_resolv_conf(&t))
                .unwrap_or_default()
        } else {
            self.fixed.clone()
        };
        list.into_iter()
            .filter(|a| *a != IpAddr::V4(self.own))
            .map(|a| SocketAddr::new(a, crate::DNS_PORT))
            .collect()
    }

    /// The first upstream answer to `query` (the raw message), over the same transport
    /// the client used; `None` when none answered.
    pub async fn forward(&self, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        for server in self.servers() {
            let answer = if tcp {
                tokio::time::timeout(TRY * 2, over_tcp(server, query)).await
            } else {
                tokio::time::timeout(TRY, over_udp(server, query)).await
            };
            match answer {
                Ok(Ok(a)) if a.len() >= 2 && query.len() >= 2 && a[..2] == query[..2] => {
                    return Some(a);
                }
                Ok(Err(e)) => tracing::debug!(%server, "upstream resolver failed: {e}"),
                _ => tracing::debug!(%server, "upstream resolver did not answer"),
            }
        }
        None
    }
}

async fn over_udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    // Connected: only datagrams from the server itself are received.
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        if n >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(query).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut out = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut out).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_as_glibc_reads_them() {
        let text = "# generated\nsearch example.org\nnameserver 192.0.2.53\n nameserver\t2001:db8::53\nnameserver fe80::1%eth0\nnameserver bogus\noptions edns0\nnameserver 192.0.2.54\nnameserver 192.0.2.55\n";
        assert_eq!(
            parse_resolv_conf(text),
            [
                "192.0.2.53".parse::<IpAddr>().unwrap(),
                "2001:db8::53".parse().unwrap(),
                "192.0.2.54".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn the_spec_overrides_resolv_conf_and_the_resolver_never_forwards_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        root.write(
            "/etc/resolv.conf",
            b"nameserver 10.7.7.1\nnameserver 192.0.2.53\n",
            0o644,
        )
        .unwrap();
        let own = Ipv4Addr::new(10, 7, 7, 1);
        let from_file = Upstreams::new(root.clone(), vec![], own);
        assert_eq!(from_file.servers(), ["192.0.2.53:53".parse().unwrap()]);
        let fixed = Upstreams::new(root, vec!["198.51.100.1".parse().unwrap()], own);
        assert_eq!(fixed.servers(), ["198.51.100.1:53".parse().unwrap()]);
    }

    #[tokio::test]
    async fn a_query_is_relayed_to_the_first_upstream_that_answers() {
        // A stand-in upstream on loopback that answers with the query's id and a marker.
        let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = up.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = up.recv_from(&mut buf).await.unwrap();
            let mut reply = buf[..n].to_vec();
            reply.extend_from_slice(b"answer");
            up.send_to(&reply, from).await.unwrap();
        });
        let got = over_udp(addr, b"\x12\x34query").await.unwrap();
        assert_eq!(got, b"\x12\x34queryanswer");
    }
}
